#include "common/secret.hpp"

#include <openssl/crypto.h>

namespace pwresetd {

secret::secret(std::string_view text) : data_(text.begin(), text.end()) {}

secret::secret(std::span<const unsigned char> bytes) : data_(bytes.begin(), bytes.end()) {}

secret::secret(secret&& other) noexcept : data_(std::move(other.data_)) {
    other.data_.clear();
}

secret& secret::operator=(secret&& other) noexcept {
    if (this != &other) {
        clear();
        data_ = std::move(other.data_);
        other.data_.clear();
    }
    return *this;
}

secret::~secret() {
    clear();
}

void secret::clear() noexcept {
    if (!data_.empty()) {
        OPENSSL_cleanse(data_.data(), data_.size());
    }
    data_.clear();
    data_.shrink_to_fit();
}

std::string_view secret::view() const noexcept {
    return {reinterpret_cast<const char*>(data_.data()), data_.size()};
}

std::span<const unsigned char> secret::bytes() const noexcept {
    return {data_.data(), data_.size()};
}

bool secret::equals(std::string_view other) const noexcept {
    // CRYPTO_memcmp takes time that depends only on the length, never on where the bytes
    // differ. A length mismatch still runs one comparison so both paths cost about the same.
    if (data_.size() != other.size()) {
        (void)CRYPTO_memcmp(data_.data(), data_.data(), data_.size());
        return false;
    }
    return data_.empty() || CRYPTO_memcmp(data_.data(), other.data(), data_.size()) == 0;
}

void wipe(void* data, std::size_t size) noexcept {
    if (data != nullptr && size > 0) {
        OPENSSL_cleanse(data, size);
    }
}

}  // namespace pwresetd
