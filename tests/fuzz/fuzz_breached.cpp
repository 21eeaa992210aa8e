// Fuzz target: the breached-password set (policy/breached_set.hpp, layout in
// policy/breached_format.hpp). The first byte picks a mode, the rest is:
//   0  a set file as is (open must refuse it cleanly or accept it; lookups stay in bounds)
//   1  a set file whose magic, version and checksums are fixed up first, so the fuzzer
//      gets past them to the counts, offsets, index and Rice-coded payload
//   2  HIBP text for compile_breached_set (skip_bad on or off by the second byte); a file
//      it writes must open, and contain every hash of the well-formed lines
// open() refuses with policy_error; the compiler with compile_error. Anything else that
// escapes, a crash, an out-of-bounds read, or an allocation the size of a declared count
// (libFuzzer's -malloc_limit_mb / -rss_limit_mb) is a finding.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fuzz_check.hpp"
#include "policy/breached_format.hpp"
#include "policy/breached_set.hpp"
#include "policy/password_policy.hpp"

namespace {

namespace fs = std::filesystem;
namespace fmt = pwresetd::policy::breached_format;
using pwresetd::policy::breached_set;
using pwresetd::policy::sha1_digest;

class workspace {
public:
    workspace() {
        std::string pattern =
            (pwresetd::fuzz::scratch_root() / "pwresetd-fuzz-breached-XXXXXX").string();
        FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr);
        dir_ = pattern;
    }
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;
    ~workspace() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    [[nodiscard]] fs::path file(const char* name) const { return dir_ / name; }
    [[nodiscard]] const fs::path& dir() const { return dir_; }

private:
    fs::path dir_;
};

void write_file(const fs::path& file, const std::vector<unsigned char>& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): bytes as chars.
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    FUZZ_CHECK(out.good());
}

// Mode 1: makes the fields the fuzzer cannot guess (magic, version, three XXH64 sums) right
// for whatever the counts declare, as far as the bytes reach.
void fix_up(std::vector<unsigned char>& file) {
    if (file.size() < fmt::header_size) {
        return;
    }
    std::memcpy(file.data(), fmt::magic.data(), fmt::magic.size());
    fmt::store_le32(file.data() + fmt::offset::version, fmt::version);
    const std::uint64_t body = file.size() - fmt::header_size;
    const std::uint64_t block_count = fmt::load_le64(file.data() + fmt::offset::block_count);
    const std::uint64_t payload_bits = fmt::load_le64(file.data() + fmt::offset::payload_bits);
    if (block_count < body / 8) {
        const std::uint64_t index_bytes = (block_count + 1) * 8;
        unsigned char* const index = file.data() + fmt::header_size;
        fmt::store_le64(file.data() + fmt::offset::index_checksum,
                        fmt::xxh64_of({index, index_bytes}));
        const std::uint64_t payload_bytes = (payload_bits / 64 + 2) * 8;
        if (payload_bytes <= body - index_bytes) {
            fmt::store_le64(file.data() + fmt::offset::payload_checksum,
                            fmt::xxh64_of({index + index_bytes, body - index_bytes}));
        }
    }
    fmt::store_le64(file.data() + fmt::offset::header_checksum,
                    fmt::xxh64_of({file.data(), fmt::header_checksummed}));
}

std::unique_ptr<breached_set> try_open(const fs::path& file) {
    try {
        return breached_set::open(file);
    } catch (const pwresetd::policy::policy_error&) {
        return nullptr;
    }
}

sha1_digest digest_of(std::uint64_t first8) {
    sha1_digest d{};
    for (std::size_t i = 0; i < 8; ++i) {
        d[i] = static_cast<unsigned char>(first8 >> (56U - 8U * i));
    }
    return d;
}

// Lookups spread over the whole hash range, so every block of the payload gets decoded.
void probe(const breached_set& set) {
    for (std::uint64_t i = 0; i < 64; ++i) {
        (void)set.contains(digest_of(i * (UINT64_MAX / 63)));
        (void)set.contains(digest_of(i * (UINT64_MAX / 63) + 1));
    }
    (void)set.contains(digest_of(UINT64_MAX));
    (void)set.contains_password("password");
}

// Mode 2: the hash of each well-formed line, as the compiler parses them.
std::optional<std::uint64_t> parse_hibp_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    // Stricter than the compiler where it does not matter: no line near max_line.
    if (line.size() < 40 || line.size() > 1024 || line.size() == 41 ||
        (line.size() > 40 && line[40] != ':')) {
        return std::nullopt;
    }
    for (const char c : line.substr(std::min<std::size_t>(line.size(), 41))) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
    }
    std::uint64_t h = 0;
    for (std::size_t i = 0; i < 40; ++i) {
        const char c = line[i];
        const bool digit = c >= '0' && c <= '9';
        const bool hex = (c | 0x20) >= 'a' && (c | 0x20) <= 'f';
        if (!digit && !hex) {
            return std::nullopt;
        }
        if (i < 16) {
            h = (h << 4U) | static_cast<std::uint64_t>(digit ? c - '0' : (c | 0x20) - 'a' + 10);
        }
    }
    return h;
}

void compile_and_check(const workspace& space, std::string_view text, bool skip_bad) {
    pwresetd::policy::compile_options options;
    options.skip_bad = skip_bad;
    options.memory_budget_bytes = 0;  // the smallest buffers the compiler allows
    options.temp_dir = space.dir();
    const fs::path output = space.file("compiled.bin");
    std::istringstream input{std::string(text)};
    try {
        const auto stats = pwresetd::policy::compile_breached_set(input, output, options);
        const auto set = breached_set::open(output);  // a compiled file must always open
        FUZZ_CHECK(set->size() == stats.hashes);
        FUZZ_CHECK(fs::file_size(output) == stats.output_bytes);
        std::size_t start = 0;
        while (start < text.size()) {
            const std::size_t end = std::min(text.find('\n', start), text.size());
            if (const auto h = parse_hibp_line(text.substr(start, end - start))) {
                FUZZ_CHECK(set->contains(digest_of(*h)));  // no false negatives
            }
            start = end + 1;
        }
        probe(*set);
    } catch (const pwresetd::policy::compile_error&) {
        FUZZ_CHECK(!skip_bad);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const workspace space;
    pwresetd::fuzz::input in(data, size);
    const unsigned mode = in.byte() % 3U;
    if (mode == 2) {
        const bool skip_bad = (in.byte() & 1U) != 0;
        compile_and_check(space, in.rest_text(), skip_bad);
        return 0;
    }
    std::vector<unsigned char> file(in.rest().begin(), in.rest().end());
    if (mode == 1) {
        fix_up(file);
    }
    const fs::path path = space.file("input.bin");
    write_file(path, file);
    if (const auto set = try_open(path)) {
        probe(*set);
    }
    return 0;
}
