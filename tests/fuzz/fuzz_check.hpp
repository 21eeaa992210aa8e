#pragma once
// What the fuzz targets share: a property check that stops the run like a crash (libFuzzer
// saves the input; replay_main exits non-zero), and the input split into typed pieces.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string_view>
#include <system_error>

#include <unistd.h>

// A broken property is a finding: abort, so libFuzzer keeps the input as a crash file.
#define FUZZ_CHECK(condition)                                                                     \
    do {                                                                                          \
        if (!(condition)) {                                                                       \
            std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                         \
        }                                                                                         \
    } while (false)

namespace pwresetd::fuzz {

// Where a target keeps its per-process files: /dev/shm when there is one, so the compiler's
// fsyncs and the many small writes cost nothing (10x the executions for fuzz_breached),
// else the temporary folder.
inline std::filesystem::path scratch_root() {
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) {
        return "/dev/shm";
    }
    return std::filesystem::temp_directory_path();
}

// Reads the fuzzer's bytes front to back; past the end every read gives zeros / "".
class input {
public:
    input(const std::uint8_t* data, std::size_t size) : bytes_(data, size) {}

    std::uint8_t byte() {
        if (bytes_.empty()) {
            return 0;
        }
        const std::uint8_t b = bytes_.front();
        bytes_ = bytes_.subspan(1);
        return b;
    }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v = (v << 8U) | byte();
        }
        return v;
    }
    // Up to the next NUL (dropped) or the end: lets one input carry several strings.
    std::string_view text() {
        const std::string_view all = rest_text();
        const std::size_t nul = all.find('\0');
        const std::string_view out = all.substr(0, nul);
        bytes_ = bytes_.subspan(nul == std::string_view::npos ? all.size() : nul + 1);
        return out;
    }
    [[nodiscard]] std::string_view rest_text() const {
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): bytes as chars.
        return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
    }
    [[nodiscard]] std::span<const std::uint8_t> rest() const { return bytes_; }
    [[nodiscard]] bool empty() const { return bytes_.empty(); }

private:
    std::span<const std::uint8_t> bytes_;
};

}  // namespace pwresetd::fuzz
