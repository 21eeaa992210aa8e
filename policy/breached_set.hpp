#pragma once
// The offline breached-password set: a compact, memory-mapped probabilistic set of SHA-1
// hashes (Have I Been Pwned "SHA1HEX:count" lists), built for the full corpus (~1e9 hashes)
// on one machine. Contract (issue "Password policy engine"): <= 3.2 bytes per hash,
// false-positive rate <= 1e-5, no false negatives, lookup <= 5 us warm, compile in bounded
// memory (<= 2 GiB RAM for 1e9 hashes), the same set of hashes always gives the same bytes,
// and a truncated, corrupt or foreign file is refused at open with a clear error, never a
// crash.
#include <array>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace pwresetd::policy {

using sha1_digest = std::array<unsigned char, 20>;

class breached_set {
public:
    // Maps and validates the file; throws policy_error (password_policy.hpp) naming it.
    static std::unique_ptr<breached_set> open(const std::filesystem::path& file);
    virtual ~breached_set() = default;

    [[nodiscard]] virtual bool contains(const sha1_digest& hash) const = 0;
    // SHA-1 of the UTF-8 bytes, as HIBP computes it.
    [[nodiscard]] bool contains_password(std::string_view password) const;
    [[nodiscard]] virtual std::uint64_t size() const = 0;  // distinct hashes compiled in
};

struct compile_options {
    bool skip_bad = false;                           // skip malformed lines instead of failing
    std::uint64_t memory_budget_bytes = 1ULL << 30;  // RAM the compiler may use
    std::filesystem::path temp_dir;                  // for spill files; empty: output's folder
};

struct compile_stats {
    std::uint64_t lines = 0;
    std::uint64_t hashes = 0;   // distinct
    std::uint64_t skipped = 0;  // malformed lines skipped (skip_bad)
    std::uint64_t output_bytes = 0;
};

// A malformed input line when !skip_bad: the message names the line number.
class compile_error : public std::runtime_error {
public:
    compile_error(const std::string& message, std::uint64_t line)
        : std::runtime_error(message), line_(line) {}
    [[nodiscard]] std::uint64_t line() const noexcept { return line_; }

private:
    std::uint64_t line_;
};

// Reads "SHA1HEX" or "SHA1HEX:count" lines (any order, upper or lower case, CRLF allowed,
// blank lines ignored) and writes the set to `output` atomically (temp file + rename).
compile_stats compile_breached_set(std::istream& input, const std::filesystem::path& output,
                                   const compile_options& options = {});

}  // namespace pwresetd::policy
