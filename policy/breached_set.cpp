// Opening and querying a compiled breached-password set (layout: breached_format.hpp).
//
// Everything is validated at open, so a lookup never leaves the mapping and never meets a
// surprise: magic, version, header checksum, parameters, every size against the file
// length, the index (starts at 0, non-decreasing, ends at the payload length), the zero
// padding, and XXH64 checksums of the index and of the whole payload.
// Why a full payload checksum at open rather than lazily per block: a corrupt block found
// during a lookup could only be answered wrongly or by failing a password change, while
// the issue wants a bad file refused at open. XXH64 runs at memory speed: measured with
// bench/breached_bench.cpp, the 1e8-hash set (238 MB) maps, populates and verifies in
// ~45 ms, so the full 1e9 corpus (2.4 GB) takes ~0.5 s, once per daemon start; the same
// pass brings the pages in, so the first lookups are already warm.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "policy/breached_format.hpp"
#include "policy/breached_io.hpp"
#include "policy/breached_set.hpp"
#include "policy/password_policy.hpp"

namespace pwresetd::policy {

namespace {

namespace fmt = breached_format;

class file_mapping {
public:
    file_mapping(int fd, std::size_t size) : size_(size) {
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
            breached_io::throw_errno("mmap");
        }
        data_ = static_cast<const unsigned char*>(p);
    }
    file_mapping(const file_mapping&) = delete;
    file_mapping& operator=(const file_mapping&) = delete;
    ~file_mapping() {
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): munmap takes void*.
        ::munmap(const_cast<unsigned char*>(data_), size_);
    }

    [[nodiscard]] const unsigned char* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
    const unsigned char* data_ = nullptr;
    std::size_t size_;
};

std::uint64_t load_be64(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::little) {
        v = __builtin_bswap64(v);
    }
    return v;
}

class mapped_breached_set final : public breached_set {
public:
    mapped_breached_set(const std::filesystem::path& file, breached_io::unique_fd fd,
                        std::size_t size);

    [[nodiscard]] bool contains(const sha1_digest& hash) const override;
    [[nodiscard]] std::uint64_t size() const override { return hash_count_; }

private:
    [[noreturn]] void refuse(const std::string& what) const {
        throw policy_error("breached hashes file '" + file_.string() + "': " + what);
    }
    void validate();
    // The file must be the one mapped: written over in place (truncated, copied onto with
    // cp or >) its pages change or vanish under the mapping, and a read past a truncation
    // is SIGBUS. An answer from a changed file is refused (policy_error: no check passes on
    // it) until a reload maps the new one. The supported way to replace it is
    // `pwresetctl breached compile`, which renames a new file into place.
    void check_unchanged() const {
        struct stat now {};
        if (::fstat(fd_.get(), &now) != 0 || now.st_size != opened_.st_size ||
            now.st_mtim.tv_sec != opened_.st_mtim.tv_sec ||
            now.st_mtim.tv_nsec != opened_.st_mtim.tv_nsec) {
            refuse(
                "changed on disk since it was loaded (written over in place); replace it "
                "with `pwresetctl breached compile` (which renames a new file into place) and "
                "reload");
        }
    }
    [[nodiscard]] std::uint64_t index_at(std::uint64_t block) const noexcept {
        return fmt::load_le64(index_ + block * 8);
    }
    // At least 57 valid bits starting at `bit`; callers keep bit < payload_bits.
    [[nodiscard]] std::uint64_t window(std::uint64_t bit) const noexcept {
        return fmt::load_le64(payload_ + (bit >> 3U)) >> (bit & 7U);
    }

    std::filesystem::path file_;
    breached_io::unique_fd fd_;
    file_mapping map_;
    struct stat opened_ {};
    const unsigned char* index_ = nullptr;
    const unsigned char* payload_ = nullptr;
    std::uint64_t hash_count_ = 0;
    std::uint64_t range_ = 0;
    unsigned rice_bits_ = 0;
    unsigned block_bits_ = 0;  // rice_bits + block_shift
    std::uint64_t rice_mask_ = 0;
};

mapped_breached_set::mapped_breached_set(const std::filesystem::path& file,
                                         breached_io::unique_fd fd, std::size_t size)
    : file_(file), fd_(std::move(fd)), map_(fd_.get(), size) {
    if (::fstat(fd_.get(), &opened_) != 0) {
        breached_io::throw_errno("fstat");
    }
    validate();
}

void mapped_breached_set::validate() {
    const unsigned char* const base = map_.data();
    const std::uint64_t file_size = map_.size();
    if (std::memcmp(base, fmt::magic.data(), fmt::magic.size()) != 0) {
        refuse("not a breached-password set (bad magic)");
    }
    if (file_size < fmt::header_size) {
        refuse("truncated: " + std::to_string(file_size) + " bytes, shorter than the " +
               std::to_string(fmt::header_size) + "-byte header");
    }
    const std::uint32_t version = fmt::load_le32(base + fmt::offset::version);
    if (version != fmt::version) {
        refuse("unsupported format version " + std::to_string(version) + " (this build reads " +
               std::to_string(fmt::version) + ")");
    }
    const std::uint64_t stored_header_sum = fmt::load_le64(base + fmt::offset::header_checksum);
    if (fmt::xxh64_of({base, fmt::header_checksummed}) != stored_header_sum) {
        refuse("header checksum mismatch (corrupt header)");
    }

    const unsigned rice_bits = base[fmt::offset::rice_bits];
    const unsigned block_shift = base[fmt::offset::block_shift];
    if (rice_bits < 1 || rice_bits > 32 || block_shift > 20 || base[fmt::offset::reserved] != 0 ||
        base[fmt::offset::reserved + 1] != 0) {
        refuse("unsupported parameters (rice_bits " + std::to_string(rice_bits) + ", block_shift " +
               std::to_string(block_shift) + ")");
    }
    const std::uint64_t hash_count = fmt::load_le64(base + fmt::offset::hash_count);
    const std::uint64_t entry_count = fmt::load_le64(base + fmt::offset::entry_count);
    const std::uint64_t block_count = fmt::load_le64(base + fmt::offset::block_count);
    const std::uint64_t payload_bits = fmt::load_le64(base + fmt::offset::payload_bits);
    if (hash_count >= (std::uint64_t{1} << (64U - rice_bits))) {
        refuse("declared hash count " + std::to_string(hash_count) + " is out of range");
    }
    const std::uint64_t expected_blocks =
        (hash_count >> block_shift) +
        ((hash_count & ((std::uint64_t{1} << block_shift) - 1)) != 0 ? 1 : 0);
    if (entry_count > hash_count || (entry_count == 0) != (hash_count == 0) ||
        block_count != expected_blocks || entry_count > payload_bits / (rice_bits + 1)) {
        refuse("inconsistent counts (hashes " + std::to_string(hash_count) + ", entries " +
               std::to_string(entry_count) + ", blocks " + std::to_string(block_count) +
               ", payload bits " + std::to_string(payload_bits) + ")");
    }

    const std::uint64_t body = file_size - fmt::header_size;
    const std::uint64_t index_words = block_count + 1;
    const std::uint64_t payload_words = payload_bits / 64 + (payload_bits % 64 != 0 ? 1 : 0) + 1;
    if (index_words > body / 8 || payload_words > body / 8 - index_words ||
        (index_words + payload_words) * 8 != body) {
        const bool short_file = index_words > body / 8 || payload_words > body / 8 - index_words;
        refuse(std::string(short_file ? "truncated" : "trailing bytes") + ": the file has " +
               std::to_string(file_size) + " bytes, its header describes " +
               (short_file ? std::string("more")
                           : std::to_string(fmt::header_size + (index_words + payload_words) * 8)));
    }
    index_ = base + fmt::header_size;
    payload_ = index_ + index_words * 8;

    if (fmt::xxh64_of({index_, index_words * 8}) !=
        fmt::load_le64(base + fmt::offset::index_checksum)) {
        refuse("index checksum mismatch (corrupt index)");
    }
    if (fmt::xxh64_of({payload_, payload_words * 8}) !=
        fmt::load_le64(base + fmt::offset::payload_checksum)) {
        refuse("payload checksum mismatch (corrupt payload)");
    }

    std::uint64_t previous = 0;
    if (index_at(0) != 0) {
        refuse("index does not start at bit 0");
    }
    for (std::uint64_t i = 1; i <= block_count; ++i) {
        const std::uint64_t at = index_at(i);
        if (at < previous || at > payload_bits) {
            refuse("index entry " + std::to_string(i) + " is out of order or out of range");
        }
        previous = at;
    }
    if (previous != payload_bits) {
        refuse("index does not end at the payload length");
    }
    const auto used = static_cast<unsigned>(payload_bits % 64);
    const bool dirty_tail =
        used != 0 && (fmt::load_le64(payload_ + (payload_words - 2) * 8) >> used) != 0;
    if (fmt::load_le64(payload_ + (payload_words - 1) * 8) != 0 || dirty_tail) {
        refuse("non-zero padding after the payload");
    }

    hash_count_ = hash_count;
    range_ = hash_count << rice_bits;
    rice_bits_ = rice_bits;
    block_bits_ = rice_bits + block_shift;
    rice_mask_ = (std::uint64_t{1} << rice_bits) - 1;
}

bool mapped_breached_set::contains(const sha1_digest& hash) const {
    check_unchanged();
    if (hash_count_ == 0) {
        return false;
    }
    const std::uint64_t target = fmt::reduce(load_be64(hash.data()), range_);
    const std::uint64_t block = target >> block_bits_;
    std::uint64_t bit = index_at(block);
    const std::uint64_t end = index_at(block + 1);
    std::uint64_t value = block << block_bits_;
    while (bit < end) {
        std::uint64_t quotient = 0;
        std::uint64_t w = window(bit);
        while (w == 0) {
            quotient += 57;
            bit += 57;
            if (bit >= end) {
                return false;
            }
            w = window(bit);
        }
        const auto zeros = static_cast<unsigned>(std::countr_zero(w));
        quotient += zeros;
        bit += zeros + 1;
        if (bit > end || end - bit < rice_bits_) {
            return false;
        }
        const std::uint64_t remainder = zeros + 1 + rice_bits_ <= 57
                                            ? (w >> (zeros + 1)) & rice_mask_
                                            : window(bit) & rice_mask_;
        bit += rice_bits_;
        value += (quotient << rice_bits_) | remainder;
        if (value >= target) {
            return value == target;
        }
    }
    return false;
}

}  // namespace

std::unique_ptr<breached_set> breached_set::open(const std::filesystem::path& file) {
    const auto refuse = [&](const std::string& what) {
        return policy_error("breached hashes file '" + file.string() + "': " + what);
    };
    breached_io::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw refuse(std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw refuse(std::string("cannot stat: ") + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        throw refuse("not a regular file");
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size == 0) {
        throw refuse("empty file");
    }
    if (size < fmt::magic.size()) {
        throw refuse("truncated or not a breached-password set (" + std::to_string(size) +
                     " bytes)");
    }
    try {
        return std::make_unique<mapped_breached_set>(file, std::move(fd),
                                                     static_cast<std::size_t>(size));
    } catch (const std::system_error& e) {
        throw refuse(e.what());
    }
}

}  // namespace pwresetd::policy
