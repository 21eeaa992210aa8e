#pragma once
// A password, one-time code, TOTP key or bind password. The bytes live in one heap block
// that is wiped (OPENSSL_cleanse) when the secret is destroyed or moved from; the type can
// be moved but not copied, compares in constant time and has no stream operator, so it
// cannot end up in a log line by accident.
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace pwresetd {

class secret {
public:
    secret() = default;
    explicit secret(std::string_view text);
    explicit secret(std::span<const unsigned char> bytes);
    secret(const secret&) = delete;
    secret& operator=(const secret&) = delete;
    secret(secret&& other) noexcept;
    secret& operator=(secret&& other) noexcept;
    ~secret();

    [[nodiscard]] std::string_view view() const noexcept;
    [[nodiscard]] std::span<const unsigned char> bytes() const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return data_.size(); }
    [[nodiscard]] bool empty() const noexcept { return data_.empty(); }

    // Constant time in the length of the longer operand; different lengths are unequal.
    [[nodiscard]] bool equals(std::string_view other) const noexcept;
    [[nodiscard]] bool equals(const secret& other) const noexcept { return equals(other.view()); }

    void clear() noexcept;

private:
    std::vector<unsigned char> data_;
};

// Wipes a buffer that held secret material (request bodies, parser arenas).
void wipe(void* data, std::size_t size) noexcept;

}  // namespace pwresetd
