#pragma once
// One-time codes sent by email or SMS, recovery codes, and the masked destination hints
// POST /v1/resets shows. Codes come from the CSPRNG and are kept only as keyed hashes
// (HMAC-SHA-256 under a key derived from secrets.key_file, so a copy of the state store
// alone cannot be brute-forced offline).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace pwresetd::factors {

inline constexpr int min_code_digits = 6;
inline constexpr int max_code_digits = 10;
inline constexpr int recovery_code_count = 10;

// A code of `digits` (min_code_digits..max_code_digits) decimal digits, uniformly random.
secret generate_numeric_code(int digits);
// A code as a user typed it, or nullopt when it cannot be one: spaces and hyphens are
// dropped ("123 456" → "123456"); anything but digits, or another length, is refused.
std::optional<secret> normalize_numeric_code(std::string_view typed, int digits);

// Hex HMAC-SHA-256 of `context` and `code` under `key`; the context binds the hash to one
// flow and method (or one user), so a code is worth nothing anywhere else.
std::string code_hash(const secret& key, std::string_view context, std::string_view code);
// A sub-key for one purpose, derived from the 32-byte secrets key (HMAC with a label).
secret derive_key(const secret& master, std::string_view label);

// A recovery code: 12 characters of Crockford's base32 (60 bits) in groups of four,
// "7k2m-9q4x-hd3a"; lowercase, without i, l, o, u.
secret generate_recovery_code();
// The canonical form of a typed recovery code: case, spaces and hyphens ignored, i/l read
// as 1 and o as 0 (Crockford); nullopt when it cannot be one.
std::optional<secret> normalize_recovery_code(std::string_view typed);

// "alice@example.test" → "a***@e***.test". Empty for an unusable address.
std::string mask_email(std::string_view address);
// "+46701234567" → "+46 ** *** ** 67" when the number starts with `country_code`, else
// "+** ** *** ** 67". Empty for a number with fewer than 4 digits.
std::string mask_phone(std::string_view number, std::string_view country_code);
// The number to send to: digits and a leading '+'; "00" becomes '+', and a national
// number (leading 0) takes `country_code` when set. Empty when it has under 4 digits.
std::string normalize_phone(std::string_view number, std::string_view country_code);

// Hints for users without that destination (unknown, decoy, or no attribute): stable per
// username under `key`, shaped like the real ones.
std::string decoy_email_hint(const secret& key, std::string_view username,
                             std::string_view mail_domain);
std::string decoy_phone_hint(const secret& key, std::string_view username,
                             std::string_view country_code);
// A number that is stable per (label, username) under `key` and unpredictable without it;
// usernames compare without ASCII case.
std::uint32_t keyed_number(const secret& key, std::string_view label, std::string_view username);

}  // namespace pwresetd::factors
