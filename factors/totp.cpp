#include "factors/totp.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <limits>
#include <stdexcept>
#include <utility>

#include "common/crypto.hpp"

namespace pwresetd::factors {
namespace {

constexpr std::size_t max_digits = 8;
using code_buffer = std::array<unsigned char, max_digits>;

// Owns a scratch buffer of key material and wipes it on every exit path.
struct wiped_bytes {
    std::vector<unsigned char> bytes;
    wiped_bytes() = default;
    explicit wiped_bytes(std::vector<unsigned char> b) : bytes(std::move(b)) {}
    wiped_bytes(const wiped_bytes&) = delete;
    wiped_bytes& operator=(const wiped_bytes&) = delete;
    ~wiped_bytes() { wipe(bytes.data(), bytes.size()); }
};

void check_digits(int digits) {
    if (digits != 6 && digits != 8) {
        throw std::invalid_argument("totp: digits must be 6 or 8");
    }
}

void check_params(const totp_params& params) {
    check_digits(params.digits);
    if (params.period <= 0) {
        throw std::invalid_argument("totp: period must be positive");
    }
    if (params.skew_steps < 0) {
        throw std::invalid_argument("totp: skew_steps must not be negative");
    }
}

const EVP_MD* digest_of(totp_algorithm algorithm) {
    switch (algorithm) {
        case totp_algorithm::sha1:
            return EVP_sha1();
        case totp_algorithm::sha256:
            return EVP_sha256();
        case totp_algorithm::sha512:
            return EVP_sha512();
    }
    throw std::invalid_argument("totp: unknown algorithm");
}

// Writes the first `digits` bytes of `out`.
void hotp_into(std::span<const unsigned char> key, std::uint64_t counter, int digits,
               totp_algorithm algorithm, code_buffer& out) {
    // HMAC under an empty key is a code anyone can compute; it can only come from a bug.
    if (key.empty()) {
        throw std::invalid_argument("totp: empty key");
    }
    if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw std::length_error("totp: key too large");
    }
    std::array<unsigned char, 8> message{};
    for (std::size_t i = 0; i < message.size(); ++i) {
        message[message.size() - 1 - i] = static_cast<unsigned char>(counter >> (8U * i));
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_len = 0;
    if (HMAC(digest_of(algorithm), key.data(), static_cast<int>(key.size()), message.data(),
             message.size(), mac.data(), &mac_len) == nullptr ||
        mac_len < 20) {
        wipe(mac.data(), mac.size());
        throw std::runtime_error("totp: HMAC failed");
    }
    // RFC 4226 section 5.3 dynamic truncation: the low nibble of the last byte selects four
    // bytes; the top bit is dropped so signed and unsigned readers agree.
    const std::size_t offset = mac[mac_len - 1] & 0x0fU;
    std::uint32_t value = ((std::uint32_t{mac[offset]} & 0x7fU) << 24U) |
                          (std::uint32_t{mac[offset + 1]} << 16U) |
                          (std::uint32_t{mac[offset + 2]} << 8U) | std::uint32_t{mac[offset + 3]};
    wipe(mac.data(), mac.size());
    for (auto i = static_cast<std::size_t>(digits); i-- > 0;) {
        out[i] = static_cast<unsigned char>('0' + value % 10U);
        value /= 10U;
    }
    wipe(&value, sizeof value);
}

// All ones when lo <= c <= hi, else zero; no branch, so decoding a key has no
// data-dependent timing.
int in_range(int c, int lo, int hi) {
    return ((lo - 1 - c) & (c - hi - 1)) >> 8;
}

int base32_value(unsigned char ch) {
    const int c = ch;
    int v = -1;
    v += in_range(c, 'A', 'Z') & (c - 'A' + 1);
    v += in_range(c, 'a', 'z') & (c - 'a' + 1);
    v += in_range(c, '2', '7') & (c - '2' + 27);
    return v;
}

char base32_char(std::uint32_t v) {
    const std::uint32_t is_digit = (25U - v) >> 31U;
    return static_cast<char>('A' + v - is_digit * ('A' - '2' + 26U));
}

bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void append_percent_encoded(std::string& out, std::string_view text) {
    static constexpr std::string_view hex = "0123456789ABCDEF";
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c)) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4U];
            out += hex[c & 0x0fU];
        }
    }
}

}  // namespace

std::optional<totp_algorithm> parse_totp_algorithm(std::string_view name) {
    if (name == "SHA1") {
        return totp_algorithm::sha1;
    }
    if (name == "SHA256") {
        return totp_algorithm::sha256;
    }
    if (name == "SHA512") {
        return totp_algorithm::sha512;
    }
    return std::nullopt;
}

std::string_view totp_algorithm_name(totp_algorithm a) {
    switch (a) {
        case totp_algorithm::sha1:
            return "SHA1";
        case totp_algorithm::sha256:
            return "SHA256";
        case totp_algorithm::sha512:
            return "SHA512";
    }
    throw std::invalid_argument("totp: unknown algorithm");
}

std::string hotp(std::span<const unsigned char> key, std::uint64_t counter, int digits,
                 totp_algorithm algorithm) {
    check_digits(digits);
    code_buffer code{};
    hotp_into(key, counter, digits, algorithm, code);
    std::string out(code.begin(), code.begin() + digits);
    wipe(code.data(), code.size());
    return out;
}

std::int64_t totp_step(std::int64_t unix_time, int period) {
    if (period <= 0) {
        throw std::invalid_argument("totp: period must be positive");
    }
    // RFC 6238 section 4.2 with T0 = 0; a time before the epoch is step 0, never negative.
    return unix_time < 0 ? 0 : unix_time / period;
}

std::optional<std::int64_t> totp_match(const secret& key, std::string_view code,
                                       std::int64_t unix_time, const totp_params& params,
                                       std::optional<std::int64_t> after_step) {
    check_params(params);
    if (key.empty()) {
        throw std::invalid_argument("totp: empty key");
    }
    const auto digits = static_cast<std::size_t>(params.digits);

    // Length and character class are known to whoever sent the code; what must not show in
    // the timing is how close it came to a real code, so the work is the same either way.
    code_buffer submitted{};
    bool well_formed = code.size() == digits;
    for (std::size_t i = 0; i < digits; ++i) {
        const auto c = static_cast<unsigned char>(i < code.size() ? code[i] : '\0');
        submitted[i] = c;
        well_formed &= static_cast<unsigned>(c - '0') < 10U;
    }

    const std::int64_t now = totp_step(unix_time, params.period);
    const std::int64_t skew = params.skew_steps;
    const std::int64_t first = now > skew ? now - skew : 0;
    const std::int64_t last = now > std::numeric_limits<std::int64_t>::max() - skew
                                  ? std::numeric_limits<std::int64_t>::max()
                                  : now + skew;
    const std::int64_t floor = after_step.value_or(-1);

    std::int64_t found = -1;
    code_buffer candidate{};
    for (std::int64_t i = 0; i <= last - first; ++i) {
        const std::int64_t step = first + i;
        hotp_into(key.bytes(), static_cast<std::uint64_t>(step), params.digits, params.algorithm,
                  candidate);
        const bool equal = crypto::constant_time_equal(std::span(candidate).first(digits),
                                                       std::span(submitted).first(digits));
        const bool hit = equal & well_formed & (step > floor);
        // If two steps of the window share the code, the latest wins: the caller stores it as
        // the replay mark, which then covers every step the code could stand for.
        found = hit ? step : found;
    }
    wipe(candidate.data(), candidate.size());
    wipe(submitted.data(), submitted.size());
    if (found < 0) {
        return std::nullopt;
    }
    return found;
}

secret generate_totp_key(totp_algorithm algorithm) {
    std::size_t size = 20;
    switch (algorithm) {
        case totp_algorithm::sha1:
            size = 20;
            break;
        case totp_algorithm::sha256:
            size = 32;
            break;
        case totp_algorithm::sha512:
            size = 64;
            break;
    }
    const wiped_bytes random(crypto::random_bytes(size));
    return secret(std::span<const unsigned char>(random.bytes));
}

std::string base32_encode(std::span<const unsigned char> data) {
    std::string out;
    out.reserve((data.size() * 8 + 4) / 5);  // exact, so no reallocation leaves a copy behind
    std::uint32_t buffer = 0;
    unsigned bits = 0;
    for (const unsigned char b : data) {
        buffer = (buffer << 8U) | b;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out += base32_char((buffer >> bits) & 31U);
        }
    }
    if (bits > 0) {
        out += base32_char((buffer << (5 - bits)) & 31U);
    }
    wipe(&buffer, sizeof buffer);
    return out;
}

std::optional<secret> base32_decode(std::string_view text) {
    wiped_bytes out;
    out.bytes.reserve(text.size() * 5 / 8);  // an upper bound, so push_back never reallocates
    std::uint32_t buffer = 0;
    unsigned bits = 0;
    std::size_t symbols = 0;
    std::size_t padding = 0;
    int invalid = 0;
    for (const char ch : text) {
        if (ch == ' ') {
            continue;
        }
        if (ch == '=') {
            ++padding;
            continue;
        }
        if (padding > 0) {
            return std::nullopt;
        }
        const int v = base32_value(static_cast<unsigned char>(ch));
        invalid |= v;
        buffer = (buffer << 5U) | (static_cast<std::uint32_t>(v) & 31U);
        bits += 5;
        ++symbols;
        if (bits >= 8) {
            bits -= 8;
            out.bytes.push_back(static_cast<unsigned char>(buffer >> bits));
        }
    }
    // RFC 4648 section 6: a final quantum has 2, 4, 5 or 7 symbols (1, 3 and 6 cannot come
    // from whole bytes); padding, when present, completes it to 8. Section 3.5: the unused
    // low bits of the last symbol must be zero, otherwise the text is not an encoding.
    const std::size_t tail = symbols % 8;
    const bool length_ok = tail != 1 && tail != 3 && tail != 6;
    const bool padding_ok = padding == 0 || (tail != 0 && padding == 8 - tail);
    const bool canonical = (buffer & ((1U << bits) - 1U)) == 0;
    wipe(&buffer, sizeof buffer);
    if (invalid < 0 || !length_ok || !padding_ok || !canonical) {
        return std::nullopt;
    }
    return secret(std::span<const unsigned char>(out.bytes));
}

std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view base32_key, const totp_params& params) {
    check_params(params);
    std::string uri;
    // Reserved up front so the key is never left behind in a freed, reallocated buffer.
    uri.reserve(128 + 3 * (2 * issuer.size() + account.size() + base32_key.size()));
    uri += "otpauth://totp/";
    if (!issuer.empty()) {
        append_percent_encoded(uri, issuer);
        uri += ':';
    }
    append_percent_encoded(uri, account);
    uri += "?secret=";
    append_percent_encoded(uri, base32_key);
    if (!issuer.empty()) {
        uri += "&issuer=";
        append_percent_encoded(uri, issuer);
    }
    uri += "&algorithm=";
    uri += totp_algorithm_name(params.algorithm);
    uri += "&digits=";
    uri += std::to_string(params.digits);
    uri += "&period=";
    uri += std::to_string(params.period);
    return uri;
}

}  // namespace pwresetd::factors
