#include "policy/breached_format.hpp"

#include <algorithm>

namespace pwresetd::policy::breached_format {

namespace {

constexpr std::uint64_t prime1 = 0x9E3779B185EBCA87ULL;
constexpr std::uint64_t prime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr std::uint64_t prime3 = 0x165667B19E3779F9ULL;
constexpr std::uint64_t prime4 = 0x85EBCA77C2B2AE63ULL;
constexpr std::uint64_t prime5 = 0x27D4EB2F165667C5ULL;

std::uint64_t round(std::uint64_t acc, std::uint64_t input) noexcept {
    acc += input * prime2;
    acc = std::rotl(acc, 31);
    return acc * prime1;
}

std::uint64_t merge_round(std::uint64_t acc, std::uint64_t value) noexcept {
    acc ^= round(0, value);
    return acc * prime1 + prime4;
}

void consume_stripe(std::array<std::uint64_t, 4>& acc, const unsigned char* p) noexcept {
    acc[0] = round(acc[0], load_le64(p));
    acc[1] = round(acc[1], load_le64(p + 8));
    acc[2] = round(acc[2], load_le64(p + 16));
    acc[3] = round(acc[3], load_le64(p + 24));
}

}  // namespace

xxh64::xxh64() noexcept : acc_{prime1 + prime2, prime2, 0, 0 - prime1} {}

void xxh64::update(std::span<const unsigned char> data) noexcept {
    total_ += data.size();
    const unsigned char* p = data.data();
    std::size_t left = data.size();
    if (buffered_ > 0) {
        const std::size_t take = std::min(left, buffer_.size() - buffered_);
        std::memcpy(buffer_.data() + buffered_, p, take);
        buffered_ += take;
        p += take;
        left -= take;
        if (buffered_ < buffer_.size()) {
            return;
        }
        consume_stripe(acc_, buffer_.data());
        buffered_ = 0;
    }
    auto acc = acc_;
    while (left >= 32) {
        consume_stripe(acc, p);
        p += 32;
        left -= 32;
    }
    acc_ = acc;
    if (left > 0) {
        std::memcpy(buffer_.data(), p, left);
        buffered_ = left;
    }
}

std::uint64_t xxh64::digest() const noexcept {
    std::uint64_t h = 0;
    if (total_ >= 32) {
        h = std::rotl(acc_[0], 1) + std::rotl(acc_[1], 7) + std::rotl(acc_[2], 12) +
            std::rotl(acc_[3], 18);
        for (const std::uint64_t a : acc_) {
            h = merge_round(h, a);
        }
    } else {
        h = prime5;
    }
    h += total_;
    const unsigned char* p = buffer_.data();
    std::size_t left = buffered_;
    while (left >= 8) {
        h ^= round(0, load_le64(p));
        h = std::rotl(h, 27) * prime1 + prime4;
        p += 8;
        left -= 8;
    }
    if (left >= 4) {
        h ^= std::uint64_t{load_le32(p)} * prime1;
        h = std::rotl(h, 23) * prime2 + prime3;
        p += 4;
        left -= 4;
    }
    while (left > 0) {
        h ^= std::uint64_t{*p} * prime5;
        h = std::rotl(h, 11) * prime1;
        ++p;
        --left;
    }
    h ^= h >> 33U;
    h *= prime2;
    h ^= h >> 29U;
    h *= prime3;
    h ^= h >> 32U;
    return h;
}

std::uint64_t xxh64_of(std::span<const unsigned char> data) noexcept {
    xxh64 hasher;
    hasher.update(data);
    return hasher.digest();
}

}  // namespace pwresetd::policy::breached_format
