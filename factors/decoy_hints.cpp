#include "factors/decoy_hints.hpp"

#include <cctype>
#include <cstdlib>
#include <memory>

#include <uninorm.h>
#include <unistr.h>

#include "common/log.hpp"
#include "factors/codes.hpp"

namespace pwresetd::factors {

char address_initial(std::string_view name) {
    const auto* s = reinterpret_cast<const std::uint8_t*>(name.data());
    std::size_t i = 0;
    // Leading punctuation is skipped, as in "_svc" → 's'.
    while (i < name.size() && static_cast<unsigned char>(name[i]) < 0x80 &&
           std::isalnum(static_cast<unsigned char>(name[i])) == 0) {
        ++i;
    }
    if (i == name.size()) {
        return 0;
    }
    ucs4_t cp = 0;
    const int len = u8_mbtoucr(&cp, s + i, name.size() - i);
    if (len <= 0) {
        return 0;
    }
    std::size_t n = 0;
    std::unique_ptr<std::uint8_t, decltype(&std::free)> decomposed(
        u8_normalize(UNINORM_NFKD, s + i, static_cast<std::size_t>(len), nullptr, &n), &std::free);
    if (!decomposed || n == 0) {
        return 0;
    }
    const auto first = static_cast<unsigned char>(decomposed.get()[0]);
    if (first >= 0x80 || std::isalnum(first) == 0) {
        return 0;
    }
    return static_cast<char>(std::tolower(first));
}

decoy_hints::decoy_hints(const secret& key, const std::string& email_domain,
                         std::string country_code)
    : key_(key),
      email_tail_(decoy_email_hint(key, "x", email_domain).substr(1)),
      phone_prefix_(country_code.empty() ? std::string("+**") : std::move(country_code)) {}

std::string decoy_hints::email(std::string_view name) const {
    char first = address_initial(name);
    if (first == 0) {
        first = static_cast<char>('a' + keyed_number(key_, "email", name) % 26U);
    }
    return std::string(1, first) + email_tail_;
}

std::string decoy_hints::phone(std::string_view name) const {
    const auto n = keyed_number(key_, "phone", name) % 100U;
    return phone_prefix_ + " ** *** ** " + static_cast<char>('0' + n / 10U) +
           static_cast<char>('0' + n % 10U);
}

bool decoy_hints::observe(std::string_view method, std::string_view real_hint) {
    if (real_hint.empty()) {
        return true;
    }
    std::string shape;
    std::string decoy;
    std::string_view setting;
    if (method == "email") {
        shape = std::string(real_hint.substr(1));
        decoy = email_tail_;
        setting = "factors.email.hint_domain";
    } else {
        shape = std::string(real_hint.substr(0, real_hint.find(' ')));
        decoy = phone_prefix_;
        setting = "factors.sms.country_code";
    }
    if (shape == decoy) {
        return true;
    }
    const std::lock_guard lock(mutex_);
    if (warned_.size() < max_warnings && warned_.insert(std::string(method) + shape).second) {
        log::warning("factors.decoy_hint_mismatch",
                     {{"method", method},
                      {"real", shape},
                      {"decoy", decoy},
                      {"fix", "set " + std::string(setting) + " to what most users have"}});
    }
    return false;
}

}  // namespace pwresetd::factors
