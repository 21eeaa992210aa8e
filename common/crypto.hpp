#pragma once
// Small cryptographic building blocks over OpenSSL 3: random bytes, SHA-256, encodings,
// constant-time comparison, and AES-256-GCM sealing for secrets kept at rest.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::crypto {

// Cryptographically secure random bytes (RAND_bytes); throws std::runtime_error on failure.
std::vector<unsigned char> random_bytes(std::size_t n);
void random_fill(std::span<unsigned char> out);
// Uniform random integer in [0, bound) without modulo bias.
std::uint32_t random_below(std::uint32_t bound);

using sha256_digest = std::array<unsigned char, 32>;
sha256_digest sha256(std::span<const unsigned char> data);
sha256_digest sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
// HMAC-SHA-256; throws std::runtime_error when `key` is empty or OpenSSL fails.
sha256_digest hmac_sha256(const secret& key, std::string_view data);

std::string hex_encode(std::span<const unsigned char> data);
std::optional<std::vector<unsigned char>> hex_decode(std::string_view hex);
std::string base64url_encode(std::span<const unsigned char> data);  // no padding

// CRYPTO_memcmp; false when the sizes differ.
bool constant_time_equal(std::span<const unsigned char> a, std::span<const unsigned char> b);

// AES-256-GCM. sealed = nonce(12) || ciphertext || tag(16). `context` is authenticated but
// not encrypted (e.g. the owner of the secret), so a sealed blob cannot be moved to
// another owner. `key` must be 32 bytes.
std::vector<unsigned char> seal(const secret& key, std::span<const unsigned char> plaintext,
                                std::string_view context);
// nullopt when the blob is malformed, was sealed under another key, or for another context.
std::optional<secret> open(const secret& key, std::span<const unsigned char> sealed,
                           std::string_view context);

// Reads the 32-byte key at `path`; creates it (mode 0600, 32 random bytes) when it does not
// exist. Throws std::runtime_error naming the file on any other problem (wrong size,
// unreadable).
secret load_or_create_key_file(const std::filesystem::path& path);

}  // namespace pwresetd::crypto
