#pragma once
// Destination hints for users who have no such destination (made-up names, disabled and
// protected accounts, users without the attribute), shaped like the hints real users get.
//
// A fixed shape — the name's first letter and the domain of mail.from — told made-up names
// from real ones at a glance whenever the users' addresses look otherwise (another domain,
// addresses that do not start like the usernames). So the decoys follow what the real hints
// this process has shown look like, counting each user once:
// - email: the part after the first character ("***@e***.test") is the one most real users
//   show; the first character is the name's own first letter as often as real users' hints
//   start with theirs, else one drawn from the first characters real hints show;
// - sms: the prefix ("+46", "+**") most real users show; the last two digits are drawn.
// Every draw is keyed (HMAC under a key derived from secrets.key_file) by the name, so a
// name gets the same hint each time, on every node that has seen the same users. Before any
// real hint has been shown, the fixed shape is used.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "common/secret.hpp"

namespace pwresetd::factors {

class decoy_hints {
public:
    // `mail_domain`: the domain of mail.from, and `country_code`: factors.sms.country_code,
    // for the fixed shape.
    decoy_hints(const secret& key, std::string mail_domain, std::string country_code);

    // A real user's hint as shown. `user` identifies the account (counted once), `name` is
    // the username it was found by.
    void observe(std::string_view user, std::string_view name, std::string_view method,
                 std::string_view real_hint);

    std::string email(std::string_view name) const;
    std::string phone(std::string_view name) const;

    // Users counted so far (tests).
    unsigned observed(std::string_view method) const;

private:
    using counts = std::map<std::string, unsigned>;
    static constexpr std::size_t max_users = 4096;  // enough to know the shapes; bounded
    static constexpr std::size_t max_shapes = 64;

    static void count(counts& c, const std::string& shape);
    static const std::string& most_common(const counts& c);
    static const std::string& drawn(const counts& c, std::uint32_t n);

    const secret& key_;
    const std::string mail_domain_;
    const std::string country_code_;
    mutable std::mutex mutex_;
    std::unordered_set<std::string> seen_;  // method + user
    unsigned email_users_ = 0;
    unsigned email_starts_like_name_ = 0;
    counts email_firsts_;  // the first character of the others
    counts email_tails_;   // "***@e***.test"
    unsigned phone_users_ = 0;
    counts phone_prefixes_;  // "+46"
};

}  // namespace pwresetd::factors
