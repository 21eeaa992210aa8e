#include "factors/codes.hpp"

#include <array>
#include <cctype>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace pwresetd::factors {
namespace {

constexpr std::string_view crockford = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr std::size_t recovery_chars = 12;
constexpr std::size_t recovery_group = 4;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// A secret built one character at a time without leaving unwiped copies behind.
class secret_builder {
public:
    explicit secret_builder(std::size_t capacity) { buffer_.reserve(capacity); }
    secret_builder(const secret_builder&) = delete;
    secret_builder& operator=(const secret_builder&) = delete;
    ~secret_builder() { wipe(buffer_.data(), buffer_.capacity()); }
    void push(char c) { buffer_.push_back(c); }
    [[nodiscard]] std::size_t size() const { return buffer_.size(); }
    [[nodiscard]] secret take() const { return secret(std::string_view(buffer_)); }

private:
    std::string buffer_;
};

std::uint32_t hmac_number(const secret& key, std::string_view label, std::string_view username) {
    const auto mac =
        crypto::hmac_sha256(key, std::string(label) + '\0' + text::ascii_lower(username));
    return (static_cast<std::uint32_t>(mac[0]) << 24U) |
           (static_cast<std::uint32_t>(mac[1]) << 16U) |
           (static_cast<std::uint32_t>(mac[2]) << 8U) | static_cast<std::uint32_t>(mac[3]);
}

std::string two_digits(std::uint32_t n) {
    const auto v = n % 100U;
    return {static_cast<char>('0' + v / 10U), static_cast<char>('0' + v % 10U)};
}

std::string masked_domain(std::string_view domain) {
    if (domain.empty()) {
        return "e***.com";
    }
    std::string out(1, static_cast<char>(std::tolower(static_cast<unsigned char>(domain[0]))));
    if (static_cast<unsigned char>(out[0]) >= 0x80) {
        out = "*";  // never cut a UTF-8 sequence in half (an IDN such as "ärlig.se")
    }
    out += "***";
    const auto dot = domain.rfind('.');
    if (dot != std::string_view::npos && dot + 1 < domain.size() && dot > 0) {
        out += text::ascii_lower(domain.substr(dot));
    }
    return out;
}

}  // namespace

secret generate_numeric_code(int digits) {
    if (digits < min_code_digits || digits > max_code_digits) {
        throw std::invalid_argument("generate_numeric_code: digits out of range");
    }
    secret_builder out(static_cast<std::size_t>(digits));
    for (int i = 0; i < digits; ++i) {
        out.push(static_cast<char>('0' + crypto::random_below(10)));
    }
    return out.take();
}

std::optional<secret> normalize_numeric_code(std::string_view typed, int digits) {
    secret_builder out(typed.size());
    for (const char c : typed) {
        if (c == ' ' || c == '-') {
            continue;
        }
        if (!is_digit(c)) {
            return std::nullopt;
        }
        out.push(c);
    }
    if (out.size() != static_cast<std::size_t>(digits)) {
        return std::nullopt;
    }
    return out.take();
}

std::string code_hash(const secret& key, std::string_view context, std::string_view code) {
    std::string message;
    message.reserve(context.size() + 1 + code.size());
    message.append(context).push_back('\0');
    message.append(code);
    const auto mac = crypto::hmac_sha256(key, message);
    wipe(message.data(), message.size());
    return crypto::hex_encode(mac);
}

secret derive_key(const secret& master, std::string_view label) {
    const auto mac = crypto::hmac_sha256(master, label);
    return secret(std::span<const unsigned char>(mac));
}

secret generate_recovery_code() {
    secret_builder out(recovery_chars + 2);
    for (std::size_t i = 0; i < recovery_chars; ++i) {
        if (i > 0 && i % recovery_group == 0) {
            out.push('-');
        }
        out.push(crockford[crypto::random_below(static_cast<std::uint32_t>(crockford.size()))]);
    }
    return out.take();
}

std::optional<secret> normalize_recovery_code(std::string_view typed) {
    secret_builder out(recovery_chars);
    for (const char raw : typed) {
        if (raw == ' ' || raw == '-') {
            continue;
        }
        char c = static_cast<char>(std::tolower(static_cast<unsigned char>(raw)));
        if (c == 'i' || c == 'l') {
            c = '1';
        } else if (c == 'o') {
            c = '0';
        }
        if (crockford.find(c) == std::string_view::npos || out.size() >= recovery_chars) {
            return std::nullopt;
        }
        out.push(c);
    }
    if (out.size() != recovery_chars) {
        return std::nullopt;
    }
    return out.take();
}

std::string mask_email(std::string_view address) {
    const auto at = address.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 >= address.size() ||
        address.find('@', at + 1) != std::string_view::npos) {
        return {};
    }
    std::string out(1, static_cast<char>(std::tolower(static_cast<unsigned char>(address[0]))));
    if (static_cast<unsigned char>(out[0]) >= 0x80) {
        out = "*";  // never cut a UTF-8 sequence in half
    }
    out += "***@";
    out += masked_domain(address.substr(at + 1));
    return out;
}

std::string normalize_phone(std::string_view number, std::string_view country_code) {
    std::string digits;
    bool plus = false;
    for (const char c : number) {
        if (c == '+' && digits.empty() && !plus) {
            plus = true;
        } else if (is_digit(c)) {
            digits.push_back(c);
        } else if (c != ' ' && c != '-' && c != '(' && c != ')' && c != '.' && c != '/') {
            return {};
        }
    }
    if (digits.size() < 4) {
        return {};
    }
    if (plus) {
        return "+" + digits;
    }
    if (digits.starts_with("00")) {
        return "+" + digits.substr(2);
    }
    if (digits.starts_with('0') && !country_code.empty()) {
        return std::string(country_code) + digits.substr(1);
    }
    return digits;
}

std::string mask_phone(std::string_view number, std::string_view country_code) {
    const std::string normalized = normalize_phone(number, country_code);
    if (normalized.empty()) {
        return {};
    }
    const std::string prefix = !country_code.empty() && normalized.starts_with(country_code)
                                   ? std::string(country_code)
                                   : std::string("+**");
    return prefix + " ** *** ** " + normalized.substr(normalized.size() - 2);
}

std::string decoy_email_hint(const secret& key, std::string_view username,
                             std::string_view mail_domain) {
    // Most addresses start like the username: so does the decoy.
    char first = 0;
    for (const char c : username) {
        if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
            first = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            break;
        }
    }
    if (first == 0) {
        first = static_cast<char>('a' + hmac_number(key, "email", username) % 26U);
    }
    return std::string(1, first) + "***@" + masked_domain(mail_domain);
}

std::string decoy_phone_hint(const secret& key, std::string_view username,
                             std::string_view country_code) {
    const std::string prefix =
        country_code.empty() ? std::string("+**") : std::string(country_code);
    return prefix + " ** *** ** " + two_digits(hmac_number(key, "phone", username));
}

std::uint32_t keyed_number(const secret& key, std::string_view label, std::string_view username) {
    return hmac_number(key, label, username);
}

}  // namespace pwresetd::factors
