#include "factors/decoy_hints.hpp"

#include "factors/codes.hpp"

namespace pwresetd::factors {

decoy_hints::decoy_hints(const secret& key, std::string mail_domain, std::string country_code)
    : key_(key), mail_domain_(std::move(mail_domain)), country_code_(std::move(country_code)) {}

void decoy_hints::count(counts& c, const std::string& shape) {
    if (c.size() < max_shapes || c.contains(shape)) {
        ++c[shape];
    }
}

const std::string& decoy_hints::most_common(const counts& c) {
    auto best = c.begin();
    for (auto it = c.begin(); it != c.end(); ++it) {
        if (it->second > best->second) {
            best = it;
        }
    }
    return best->first;
}

const std::string& decoy_hints::drawn(const counts& c, std::uint32_t n) {
    unsigned total = 0;
    for (const auto& [shape, k] : c) {
        total += k;
    }
    auto left = n % total;
    for (const auto& [shape, k] : c) {
        if (left < k) {
            return shape;
        }
        left -= k;
    }
    return c.begin()->first;
}

void decoy_hints::observe(std::string_view user, std::string_view name, std::string_view method,
                          std::string_view real_hint) {
    if (real_hint.empty()) {
        return;
    }
    const std::lock_guard lock(mutex_);
    if (seen_.size() >= max_users) {
        return;
    }
    if (!seen_.insert(std::string(method) + '\n' + std::string(user)).second) {
        return;
    }
    if (method == "email") {
        ++email_users_;
        const char first = real_hint.front();
        if (first == first_alnum(name)) {
            ++email_starts_like_name_;
        } else {
            count(email_firsts_, std::string(1, first));
        }
        count(email_tails_, std::string(real_hint.substr(1)));
    } else if (method == "sms") {
        ++phone_users_;
        count(phone_prefixes_, std::string(real_hint.substr(0, real_hint.find(' '))));
    }
}

std::string decoy_hints::email(std::string_view name) const {
    const std::lock_guard lock(mutex_);
    const std::string fixed = decoy_email_hint(key_, name, mail_domain_);
    if (email_users_ == 0) {
        return fixed;
    }
    std::string first(1, fixed.front());
    const bool like_name =
        keyed_number(key_, "email-like-name", name) % email_users_ < email_starts_like_name_;
    if ((!like_name || first_alnum(name) == 0) && !email_firsts_.empty()) {
        first = drawn(email_firsts_, keyed_number(key_, "email-first", name));
    }
    return first + most_common(email_tails_);
}

std::string decoy_hints::phone(std::string_view name) const {
    const std::lock_guard lock(mutex_);
    const std::string fixed = decoy_phone_hint(key_, name, country_code_);
    if (phone_users_ == 0) {
        return fixed;
    }
    return most_common(phone_prefixes_) + fixed.substr(fixed.find(' '));
}

unsigned decoy_hints::observed(std::string_view method) const {
    const std::lock_guard lock(mutex_);
    return method == "email" ? email_users_ : method == "sms" ? phone_users_ : 0;
}

}  // namespace pwresetd::factors
