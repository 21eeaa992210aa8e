#pragma once
// The on-disk layout of a compiled breached-password set, shared by the compiler
// (breached_compile.cpp) and the reader (breached_set.cpp). Internal to policy/.
//
// Model: a Golomb-Rice coded set. Each SHA-1 becomes h = its first 8 bytes read big-endian
// (SHA-1 output is uniform, so h is too; two SHA-1s sharing their first 64 bits count as
// one, ~0.03 such pairs expected among 1e9 hashes). With n = the number of distinct h in the set, h
// is reduced to v = floor(h * (n << k) / 2^64), a value in [0, n * 2^k). The reduction is monotonic
// in h, so sorting by h sorts by v. A hash not in the set collides with one of the n values with
// probability ~ 2^-k; k = 17 gives 7.6e-6 (the issue asks for <= 1e-5). The value range is cut into
// blocks of 2^(k + b) values (b = 7: 128 entries per block on average); within a block the distinct
// values are Rice-coded as gaps, the first gap from the block's base value (block << (k + b)). A
// lookup reads one index entry pair and decodes one block.
//
// File (all integers little-endian):
//   offset size  field
//        0    8  magic "PWRBSET" 0x1A
//        8    4  version = 1
//       12    1  rice_bits k = 17
//       13    1  block_shift b = 7
//       14    2  reserved, 0
//       16    8  hash_count n: distinct 64-bit hashes compiled in (breached_set::size())
//       24    8  entry_count: distinct reduced values, <= n
//       32    8  block_count = ceil(n / 2^b)
//       40    8  payload_bits: length of the Rice-coded stream
//       48    8  index_checksum: XXH64 (seed 0) of the index bytes
//       56    8  payload_checksum: XXH64 (seed 0) of the payload bytes
//       64    8  header_checksum: XXH64 (seed 0) of bytes 0..63
//       72       index: block_count + 1 u64 bit offsets into the payload; index[0] = 0,
//                non-decreasing, index[block_count] = payload_bits. Block i is the bits
//                [index[i], index[i + 1]).
//        …       payload: ceil(payload_bits / 64) + 1 u64 words. Bits are numbered from the
//                least significant bit of word 0. Each gap g is coded as q = g >> k zero
//                bits, a one bit, then the k low bits of g (least significant first). Bits
//                past payload_bits, and the whole last word (read-ahead padding), are 0.
//   The file ends exactly after the payload.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace pwresetd::policy::breached_format {

inline constexpr std::array<unsigned char, 8> magic = {'P', 'W', 'R', 'B', 'S', 'E', 'T', 0x1A};
inline constexpr std::uint32_t version = 1;
inline constexpr unsigned rice_bits = 17;
inline constexpr unsigned block_shift = 7;
inline constexpr std::size_t header_size = 72;
inline constexpr std::size_t header_checksummed = 64;

namespace offset {
inline constexpr std::size_t version = 8;
inline constexpr std::size_t rice_bits = 12;
inline constexpr std::size_t block_shift = 13;
inline constexpr std::size_t reserved = 14;
inline constexpr std::size_t hash_count = 16;
inline constexpr std::size_t entry_count = 24;
inline constexpr std::size_t block_count = 32;
inline constexpr std::size_t payload_bits = 40;
inline constexpr std::size_t index_checksum = 48;
inline constexpr std::size_t payload_checksum = 56;
inline constexpr std::size_t header_checksum = 64;
}  // namespace offset

inline std::uint64_t load_le64(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) {
        v = __builtin_bswap64(v);
    }
    return v;
}

inline std::uint32_t load_le32(const unsigned char* p) noexcept {
    std::uint32_t v = 0;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) {
        v = __builtin_bswap32(v);
    }
    return v;
}

inline void store_le64(unsigned char* p, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) {
        v = __builtin_bswap64(v);
    }
    std::memcpy(p, &v, sizeof v);
}

inline void store_le32(unsigned char* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) {
        v = __builtin_bswap32(v);
    }
    std::memcpy(p, &v, sizeof v);
}

// floor(h * range / 2^64): maps a uniform 64-bit hash onto [0, range), monotonic in h.
inline std::uint64_t reduce(std::uint64_t h, std::uint64_t range) noexcept {
    __extension__ typedef unsigned __int128 u128;  // GCC and Clang; one MUL instruction
    return static_cast<std::uint64_t>((static_cast<u128>(h) * range) >> 64U);
}

// XXH64 (xxHash, seed 0), streaming; matches the reference (`xxhsum -H64`). Chosen for the
// open-time checksum because it runs at memory speed (see breached_set.cpp).
class xxh64 {
public:
    xxh64() noexcept;
    void update(std::span<const unsigned char> data) noexcept;
    [[nodiscard]] std::uint64_t digest() const noexcept;

private:
    std::array<std::uint64_t, 4> acc_{};
    std::array<unsigned char, 32> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t total_ = 0;
};

[[nodiscard]] std::uint64_t xxh64_of(std::span<const unsigned char> data) noexcept;

}  // namespace pwresetd::policy::breached_format
