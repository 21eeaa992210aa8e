// Fuzz target: factors/ — base32 (RFC 4648), otpauth:// URIs with hostile issuer and
// account, totp_match with hostile codes, clocks and replay marks, one-time and recovery
// code normalization, and the masked email / phone hints.
// Input: a parameter byte, then NUL-separated texts: a base32 key, an issuer, an account,
// a typed code, a country code; the rest is raw bytes for base32_encode.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace pwresetd;
using namespace pwresetd::factors;

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1FU;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0FU;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07U;
        } else {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0U) != 0x80U) {
                return false;
            }
            cp = (cp << 6U) | (cc & 0x3FU);
        }
        const std::uint32_t min = len == 2 ? 0x80U : len == 3 ? 0x800U : 0x10000U;
        if (cp < min || cp > 0x10FFFFU || (cp >= 0xD800U && cp <= 0xDFFFU)) {
            return false;
        }
        i += len;
    }
    return true;
}

bool is_unreserved(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;  // otpauth_uri writes upper-case hex only
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) {
            return std::nullopt;
        }
        const auto hi = hex_value(s[i + 1]);
        const auto lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

void check_base32(std::string_view text, std::span<const std::uint8_t> raw) {
    // Any bytes survive an encode/decode round trip, and the encoding has no padding.
    const std::string encoded = base32_encode(raw);
    FUZZ_CHECK(encoded.size() == (raw.size() * 8 + 4) / 5);
    const auto back = base32_decode(encoded);
    FUZZ_CHECK(back.has_value());
    FUZZ_CHECK(std::ranges::equal(back->bytes(), raw));

    // Accepted text is an encoding: re-encoding it gives the same text, minus spaces and
    // padding, in upper case.
    const auto decoded = base32_decode(text);
    if (decoded) {
        std::string canonical;
        for (const char c : text) {
            if (c != ' ' && c != '=') {
                canonical.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
            }
        }
        FUZZ_CHECK(base32_encode(decoded->bytes()) == canonical);
    }
}

void check_uri(std::string_view issuer, std::string_view account, std::string_view key,
               const totp_params& params) {
    const std::string uri = otpauth_uri(issuer, account, key, params);
    static constexpr std::string_view scheme = "otpauth://totp/";
    FUZZ_CHECK(uri.starts_with(scheme));
    const std::string_view rest = std::string_view(uri).substr(scheme.size());
    for (const char c : rest) {
        FUZZ_CHECK(is_unreserved(c) || c == '%' || c == ':' || c == '?' || c == '&' || c == '=');
    }
    const std::size_t query = rest.find('?');
    FUZZ_CHECK(query != std::string_view::npos);
    FUZZ_CHECK(rest.find('?', query + 1) == std::string_view::npos);
    // The label is ISSUER:ACCOUNT with one colon, each part decoding back to what was given.
    const std::string_view label = rest.substr(0, query);
    const std::size_t colon = label.find(':');
    if (issuer.empty()) {
        FUZZ_CHECK(colon == std::string_view::npos);
        FUZZ_CHECK(percent_decode(label) == std::string(account));
    } else {
        FUZZ_CHECK(colon != std::string_view::npos);
        FUZZ_CHECK(label.find(':', colon + 1) == std::string_view::npos);
        FUZZ_CHECK(percent_decode(label.substr(0, colon)) == std::string(issuer));
        FUZZ_CHECK(percent_decode(label.substr(colon + 1)) == std::string(account));
    }
    // Every query parameter is name=value with no stray separator.
    std::string_view q = rest.substr(query + 1);
    while (!q.empty()) {
        const std::size_t amp = q.find('&');
        const std::string_view pair = q.substr(0, amp);
        FUZZ_CHECK(std::count(pair.begin(), pair.end(), '=') == 1);
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    }
}

void check_totp(const secret& key, std::string_view code, std::int64_t unix_time,
                const totp_params& params, std::optional<std::int64_t> after) {
    const std::int64_t now = totp_step(unix_time, params.period);
    FUZZ_CHECK(now >= 0);
    const auto match = totp_match(key, code, unix_time, params, after);
    const bool well_formed = code.size() == static_cast<std::size_t>(params.digits) &&
                             std::ranges::all_of(code, [](char c) { return c >= '0' && c <= '9'; });
    if (match) {
        FUZZ_CHECK(well_formed);
        FUZZ_CHECK(!after || *match > *after);
        FUZZ_CHECK(*match >= now - params.skew_steps);
        FUZZ_CHECK(*match - params.skew_steps <= now);
        FUZZ_CHECK(hotp(key.bytes(), static_cast<std::uint64_t>(*match), params.digits,
                        params.algorithm) == code);
    }
    // The current code always matches unless the replay mark already covers it.
    const std::string current =
        hotp(key.bytes(), static_cast<std::uint64_t>(now), params.digits, params.algorithm);
    const auto own = totp_match(key, current, unix_time, params, after);
    if (!after || *after < now) {
        FUZZ_CHECK(own.has_value() && *own >= now);
    } else {
        FUZZ_CHECK(!own || *own > *after);
    }
}

void check_codes(std::string_view typed, int digits) {
    if (const auto code = normalize_numeric_code(typed, digits)) {
        std::string expected;
        for (const char c : typed) {
            if (c != ' ' && c != '-') {
                expected.push_back(c);
            }
        }
        FUZZ_CHECK(code->size() == static_cast<std::size_t>(digits));
        FUZZ_CHECK(code->equals(expected));
        FUZZ_CHECK(std::ranges::all_of(code->view(), [](char c) { return c >= '0' && c <= '9'; }));
    }
    if (const auto code = normalize_recovery_code(typed)) {
        static constexpr std::string_view crockford = "0123456789abcdefghjkmnpqrstvwxyz";
        FUZZ_CHECK(code->size() == 12);
        FUZZ_CHECK(std::ranges::all_of(
            code->view(), [](char c) { return crockford.find(c) != std::string_view::npos; }));
        const auto again = normalize_recovery_code(code->view());
        FUZZ_CHECK(again.has_value() && again->equals(*code));
    }
}

void check_hints(std::string_view address, std::string_view country_code) {
    const std::string email = mask_email(address);
    if (!email.empty()) {
        FUZZ_CHECK(email.find("***@") != std::string::npos);
        FUZZ_CHECK(!valid_utf8(address) || valid_utf8(email));
    }
    const std::string phone = normalize_phone(address, country_code);
    const std::string masked = mask_phone(address, country_code);
    FUZZ_CHECK(phone.empty() == masked.empty());
    if (!phone.empty()) {
        FUZZ_CHECK(masked.ends_with(phone.substr(phone.size() - 2)));
        FUZZ_CHECK(!valid_utf8(country_code) || valid_utf8(masked));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const std::uint8_t p = in.byte();
    const std::uint64_t clock = in.u64();
    const std::uint64_t mark = in.u64();
    const std::string_view key_text = in.text();
    const std::string_view issuer = in.text();
    const std::string_view account = in.text();
    const std::string_view code = in.text();
    const std::string_view country_code = in.text();
    const std::span<const std::uint8_t> raw = in.rest();

    totp_params params;
    params.algorithm = static_cast<totp_algorithm>(p % 3);
    params.digits = (p & 0x04U) != 0 ? 8 : 6;
    params.skew_steps = static_cast<int>((p >> 3U) & 0x03U);
    params.period = (p & 0x20U) != 0 ? 30 : 1 + static_cast<int>(clock % 300);

    check_base32(key_text, raw);
    check_uri(issuer, account, key_text, params);

    auto decoded = base32_decode(key_text);
    const secret key = decoded && !decoded->empty()
                           ? std::move(*decoded)
                           : secret(std::string_view("12345678901234567890"));
    const auto unix_time = static_cast<std::int64_t>(clock);
    const std::optional<std::int64_t> after =
        (p & 0x40U) != 0 ? std::optional<std::int64_t>(static_cast<std::int64_t>(mark))
                         : std::nullopt;
    check_totp(key, code, unix_time, params, after);

    check_codes(code, min_code_digits + p % (max_code_digits - min_code_digits + 1));
    check_hints(account, country_code);
    return 0;
}
