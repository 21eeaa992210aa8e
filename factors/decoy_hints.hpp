#pragma once
// Destination hints for users who have no such destination (made-up names, disabled and
// protected accounts, users without the attribute), shaped like the hints real users get.
//
// A decoy hint is a fixed function of the name, the key and the configuration, never of
// what the process has seen: a hint that changed with traffic, restarts or the node would
// tell a made-up name from a real one (a real user's hint comes from an address that does
// not change). So the shape is configured:
// - email: the first letter of the name ("östen" → "o", as an address would spell it; a
//   name without a Latin letter or digit up front gets a keyed letter), then "***@" and the
//   masked `factors.email.hint_domain` (default: the domain of mail.from);
// - sms: `factors.sms.country_code` (or "+**") and two keyed digits.
// To keep the configuration honest, every real hint shown is compared with the decoy shape:
// a real shape the decoys do not have (another domain, another prefix) is logged once as
// `factors.decoy_hint_mismatch`, naming the setting that fixes it.
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace pwresetd::factors {

class decoy_hints {
public:
    decoy_hints(const secret& key, const std::string& email_domain, std::string country_code);

    std::string email(std::string_view name) const;
    std::string phone(std::string_view name) const;

    // A real user's hint as shown, for the mismatch warning. True when it has the decoys'
    // shape.
    bool observe(std::string_view method, std::string_view real_hint);

private:
    static constexpr std::size_t max_warnings = 16;

    const secret& key_;
    const std::string email_tail_;  // "***@e***.test"
    const std::string phone_prefix_;
    std::mutex mutex_;
    std::set<std::string> warned_;
};

// The letter an address for `name` would most likely start with: its first character when
// that is an ASCII letter or digit, or decomposes to one ("Ö" → 'o'); 0 otherwise.
char address_initial(std::string_view name);

}  // namespace pwresetd::factors
