#pragma once
// Time-based one-time passwords: RFC 4226 (HOTP) and RFC 6238 (TOTP) with SHA-1, SHA-256
// and SHA-512, 6 or 8 digits; base32 (RFC 4648) for the shared key; otpauth:// URIs for
// authenticator apps. Pure functions; replay protection (one accepted code per time step
// per user) is the caller's job with the store's last-accepted step.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::factors {

enum class totp_algorithm { sha1, sha256, sha512 };

std::optional<totp_algorithm> parse_totp_algorithm(std::string_view name);  // "SHA1" ...
std::string_view totp_algorithm_name(totp_algorithm a);                     // "SHA1" ...

struct totp_params {
    totp_algorithm algorithm = totp_algorithm::sha1;
    int digits = 6;      // 6 or 8
    int period = 30;     // seconds
    int skew_steps = 1;  // steps accepted either side of the current one
};

// RFC 4226: the HOTP value for `counter`, zero-padded to `digits` decimal digits.
std::string hotp(std::span<const unsigned char> key, std::uint64_t counter, int digits,
                 totp_algorithm algorithm);

// The RFC 6238 time step T for a Unix time.
std::int64_t totp_step(std::int64_t unix_time, int period);

// Finds the time step in [now - skew, now + skew] whose code equals `code` (each
// comparison in constant time, every candidate always computed). Only steps strictly
// greater than `after_step` are candidates, so a code of an already accepted step can
// never match again. Returns the matching step, or nullopt. A code of the wrong length
// or with non-digits never matches.
std::optional<std::int64_t> totp_match(const secret& key, std::string_view code,
                                       std::int64_t unix_time, const totp_params& params,
                                       std::optional<std::int64_t> after_step = std::nullopt);

// A fresh random key of the size RFC 6238 uses for the algorithm (20, 32 or 64 bytes).
secret generate_totp_key(totp_algorithm algorithm);

// RFC 4648 base32, upper case, no padding.
std::string base32_encode(std::span<const unsigned char> data);
// Accepts upper or lower case, optional '=' padding, and ignores spaces; nullopt if invalid.
std::optional<secret> base32_decode(std::string_view text);

// otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=...&digits=...&period=...
// (Key Uri Format), with issuer and account percent-encoded.
std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view base32_key, const totp_params& params);

}  // namespace pwresetd::factors
