// breached_bench: builds a breached-password set from N random SHA-1 hashes and measures it.
// The hashes are generated in-process as "SHA1HEX:count" text and fed through an istream
// into compile_breached_set, the same code path as `pwresetctl breached compile - OUT`,
// without a multi-gigabyte text file. Prints its figures last as key=value pairs.
//
//   breached_bench [--hashes N] [--memory-mib N] [--dir DIR] [--lookups N] [--fp-probes N]
//                  [--keep]
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <istream>
#include <random>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include "policy/breached_set.hpp"

namespace {

using pwresetd::policy::sha1_digest;
using clock_type = std::chrono::steady_clock;

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31U);
}

// Hash number i of a family: present hashes use family 1, absent probes family 2.
sha1_digest synthetic_hash(std::uint64_t family, std::uint64_t i) {
    sha1_digest h{};
    std::array<std::uint64_t, 3> words{};
    for (std::uint64_t w = 0; w < words.size(); ++w) {
        words[w] = splitmix64((family << 62U) ^ (i * 3 + w));
    }
    for (std::size_t b = 0; b < h.size(); ++b) {
        h[b] = static_cast<unsigned char>(words[b / 8] >> (8 * (b % 8)));
    }
    return h;
}

// Produces "SHA1HEX:count\n" for hashes 0..n-1 of family 1, on demand.
class hash_lines : public std::streambuf {
public:
    explicit hash_lines(std::uint64_t n) : n_(n), buffer_(1U << 20U) {}

protected:
    int_type underflow() override {
        if (gptr() < egptr()) {
            return traits_type::to_int_type(*gptr());
        }
        static constexpr char digits[] = "0123456789ABCDEF";
        std::size_t used = 0;
        while (next_ < n_ && buffer_.size() - used >= 64) {
            const sha1_digest h = synthetic_hash(1, next_);
            char* p = buffer_.data() + used;
            for (const unsigned char b : h) {
                *p++ = digits[b >> 4U];
                *p++ = digits[b & 15U];
            }
            *p++ = ':';
            p = std::to_chars(p, p + 20, next_ % 100'000 + 1).ptr;
            *p++ = '\n';
            used = static_cast<std::size_t>(p - buffer_.data());
            ++next_;
        }
        if (used == 0) {
            return traits_type::eof();
        }
        setg(buffer_.data(), buffer_.data(), buffer_.data() + used);
        return traits_type::to_int_type(*gptr());
    }

private:
    std::uint64_t n_;
    std::uint64_t next_ = 0;
    std::vector<char> buffer_;
};

double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

double percentile_us(std::vector<std::uint64_t>& ns, double p) {
    if (ns.empty()) {
        return 0;
    }
    const auto at = static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(at), ns.end());
    return static_cast<double>(ns[at]) / 1000.0;
}

bool parse_count(std::string_view text, std::uint64_t& out) {
    double value = 0;  // accepts 1e8 as well as 100000000
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 0 || value > 1e13) {
        return false;
    }
    out = static_cast<std::uint64_t>(value);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint64_t hashes = 100'000'000;
    std::uint64_t memory_mib = 1024;
    std::uint64_t lookups = 1'000'000;
    std::uint64_t fp_probes = 10'000'000;
    std::filesystem::path dir = std::filesystem::temp_directory_path();
    bool keep = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        bool ok = true;
        if (arg == "--hashes" && has_value) {
            ok = parse_count(argv[++i], hashes);
        } else if (arg == "--memory-mib" && has_value) {
            ok = parse_count(argv[++i], memory_mib) && memory_mib > 0;
        } else if (arg == "--lookups" && has_value) {
            ok = parse_count(argv[++i], lookups);
        } else if (arg == "--fp-probes" && has_value) {
            ok = parse_count(argv[++i], fp_probes);
        } else if (arg == "--dir" && has_value) {
            dir = argv[++i];
        } else if (arg == "--keep") {
            keep = true;
        } else {
            ok = false;
        }
        if (!ok) {
            std::cerr << "usage: breached_bench [--hashes N] [--memory-mib N] [--dir DIR] "
                         "[--lookups N] [--fp-probes N] [--keep]\n";
            return 2;
        }
    }
    const std::filesystem::path output = dir / "breached_bench.bin";

    pwresetd::policy::compile_options options;
    options.memory_budget_bytes = memory_mib << 20U;
    hash_lines lines(hashes);
    std::istream input(&lines);
    std::cerr << "compiling " << hashes << " hashes into " << output << " (budget " << memory_mib
              << " MiB)\n";
    const auto compile_start = clock_type::now();
    const auto stats = pwresetd::policy::compile_breached_set(input, output, options);
    const double compile_s = seconds_since(compile_start);
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-union-access): glibc's rusage fields are unions
    const double peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;

    const auto open_start = clock_type::now();
    const auto set = pwresetd::policy::breached_set::open(output);
    const double open_ms = seconds_since(open_start) * 1000.0;
    std::cerr << "compiled in " << compile_s << " s, opened in " << open_ms << " ms\n";

    std::mt19937_64 rng(42);
    std::vector<std::uint64_t> present_ns;
    std::vector<std::uint64_t> absent_ns;
    present_ns.reserve(lookups);
    absent_ns.reserve(lookups);
    std::uint64_t missing = 0;
    for (std::uint64_t i = 0; i < lookups && hashes > 0; ++i) {
        const sha1_digest present = synthetic_hash(1, rng() % hashes);
        const sha1_digest absent = synthetic_hash(2, rng());
        auto t0 = clock_type::now();
        const bool found = set->contains(present);
        auto t1 = clock_type::now();
        [[maybe_unused]] const bool absent_found = set->contains(absent);
        auto t2 = clock_type::now();
        missing += found ? 0U : 1U;
        present_ns.push_back(static_cast<std::uint64_t>((t1 - t0).count()));
        absent_ns.push_back(static_cast<std::uint64_t>((t2 - t1).count()));
    }
    if (missing != 0) {
        std::cerr << "FALSE NEGATIVES: " << missing << '\n';
        return 1;
    }
    std::vector<std::uint64_t> all_ns = present_ns;
    all_ns.insert(all_ns.end(), absent_ns.begin(), absent_ns.end());

    std::uint64_t false_positives = 0;
    for (std::uint64_t i = 0; i < fp_probes; ++i) {
        false_positives += set->contains(synthetic_hash(3, i)) ? 1U : 0U;
    }
    const double fp_rate =
        fp_probes == 0 ? 0 : static_cast<double>(false_positives) / static_cast<double>(fp_probes);

    const double bytes_per_hash = stats.hashes == 0 ? 0
                                                    : static_cast<double>(stats.output_bytes) /
                                                          static_cast<double>(stats.hashes);
    if (!keep) {
        std::filesystem::remove(output);
    }
    std::printf(
        "hashes=%llu bytes_per_hash=%.4f fp_rate=%.3g compile_s=%.2f compile_hashes_per_s=%.0f "
        "peak_rss_mib=%.0f open_ms=%.1f lookup_p50_us=%.3f lookup_p99_us=%.3f "
        "lookup_present_p50_us=%.3f lookup_present_p99_us=%.3f lookup_absent_p50_us=%.3f "
        "lookup_absent_p99_us=%.3f output_bytes=%llu memory_mib=%llu fp_probes=%llu\n",
        static_cast<unsigned long long>(stats.hashes), bytes_per_hash, fp_rate, compile_s,
        compile_s > 0 ? static_cast<double>(hashes) / compile_s : 0.0, peak_rss_mib, open_ms,
        percentile_us(all_ns, 0.50), percentile_us(all_ns, 0.99), percentile_us(present_ns, 0.50),
        percentile_us(present_ns, 0.99), percentile_us(absent_ns, 0.50),
        percentile_us(absent_ns, 0.99), static_cast<unsigned long long>(stats.output_bytes),
        static_cast<unsigned long long>(memory_mib), static_cast<unsigned long long>(fp_probes));
    return 0;
}
