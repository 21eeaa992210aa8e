// policy_bench: writes a banned words list of N random pronounceable words (seeded, the same
// list every run) to a temporary file, loads it into a password_policy, and measures
// check() latency over generated candidate passwords: random character strings,
// passphrases, and words of the list dressed up (capitals, l33t, digits and symbols).
// Prints its figures last as key=value pairs on one line.
//
//   policy_bench [--terms N] [--checks N] [--dir DIR] [--keep]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "policy/banned_list.hpp"
#include "policy/password_policy.hpp"

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// splitmix64: the same numbers on every platform and standard library.
class generator {
public:
    explicit generator(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t x = (state_ += 0x9E3779B97F4A7C15ULL);
        x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
        return x ^ (x >> 31U);
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
    template <typename T>
    auto pick(const T& items) {
        return items[below(items.size())];
    }

private:
    std::uint64_t state_;
};

constexpr std::string_view consonants = "bcdfghjklmnprstvwz";
constexpr std::string_view vowels = "aeiouy";

// 2 to 4 syllables of consonant-vowel, sometimes closed by a consonant: 4 to 12 letters.
std::string pronounceable(generator& g) {
    const std::size_t syllables = 2 + g.below(3);
    std::string w;
    for (std::size_t s = 0; s < syllables; ++s) {
        w += g.pick(consonants);
        w += g.pick(vowels);
        if (g.below(3) == 0) {
            w += g.pick(consonants);
        }
    }
    return w;
}

std::string dress_up(std::string w, generator& g) {
    for (char& c : w) {
        const std::size_t r = g.below(10);
        if (r == 0) {
            c = static_cast<char>(c - 'a' + 'A');
        } else if (r == 1) {
            switch (c) {
                case 'a':
                    c = '@';
                    break;
                case 'o':
                    c = '0';
                    break;
                case 's':
                    c = '$';
                    break;
                case 'e':
                    c = '3';
                    break;
                case 'i':
                    c = '1';
                    break;
                default:
                    break;
            }
        }
    }
    return w;
}

std::string random_chars(generator& g, std::size_t length) {
    static constexpr std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%&*+-=?@^_~";
    std::string out;
    for (std::size_t i = 0; i < length; ++i) {
        out += g.pick(alphabet);
    }
    return out;
}

std::string candidate(generator& g, const std::vector<std::string>& terms) {
    std::string p;
    switch (g.below(4)) {
        case 0:  // random characters, 10 to 24
            p = random_chars(g, 10 + g.below(15));
            break;
        case 1:  // passphrase of words outside the list's generator
            for (std::size_t i = 0, n = 3 + g.below(3); i < n; ++i) {
                p += (i > 0 ? "-" : "") + pronounceable(g);
            }
            break;
        case 2:  // a banned term dressed up
            p = dress_up(g.pick(terms), g) + random_chars(g, 1 + g.below(6));
            break;
        default:  // two banned terms and some more
            p = random_chars(g, g.below(3)) + dress_up(g.pick(terms), g) +
                random_chars(g, g.below(3)) + dress_up(g.pick(terms), g) +
                std::to_string(g.below(100));
            break;
    }
    if (p.size() > 64) {
        p.resize(64);
    }
    return p;
}

long peak_rss_mib() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-union-access): glibc's rusage fields are unions
    return usage.ru_maxrss / 1024;
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
    const auto r = std::from_chars(text.data(), text.data() + text.size(), out);
    return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

double micros(std::uint64_t ns) {
    return static_cast<double>(ns) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t term_count = 1'000'000;
    std::size_t checks = 100'000;
    fs::path dir = fs::temp_directory_path();
    bool keep = false;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        bool ok = true;
        if (args[i] == "--terms" && has_value) {
            ok = parse_number(args[++i], term_count);
        } else if (args[i] == "--checks" && has_value) {
            ok = parse_number(args[++i], checks) && checks > 0;
        } else if (args[i] == "--dir" && has_value) {
            dir = args[++i];
        } else if (args[i] == "--keep") {
            keep = true;
        } else {
            ok = false;
        }
        if (!ok) {
            std::cerr << "usage: policy_bench [--terms N] [--checks N] [--dir DIR] [--keep]\n";
            return 2;
        }
    }

    generator words(20240611);
    std::vector<std::string> terms;
    terms.reserve(term_count);
    {
        std::unordered_set<std::string> seen;
        seen.reserve(term_count);
        while (terms.size() < term_count) {
            auto w = pronounceable(words);
            if (seen.insert(w).second) {
                terms.push_back(std::move(w));
            }
        }
    }
    const fs::path file = dir / ("policy-bench-" + std::to_string(::getpid()) + ".txt");
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out << "# policy_bench: " << term_count << " pronounceable words\n";
        for (const auto& t : terms) {
            out << t << '\n';
        }
        if (!out) {
            std::cerr << "policy_bench: cannot write " << file << '\n';
            return 1;
        }
    }
    std::cout << "list: " << file.string() << " (" << fs::file_size(file) << " bytes)\n";

    std::size_t index_bytes = 0;
    {
        const auto started = clock_type::now();
        const auto list = pwresetd::policy::banned_list::load(file);
        const auto ms = std::chrono::duration<double, std::milli>(clock_type::now() - started);
        index_bytes = list.index_bytes();
        std::cout << "banned_list: terms=" << list.size() << " longest=" << list.longest_term()
                  << " index_bytes=" << index_bytes << " index_entries=" << list.index_entries()
                  << " load_ms=" << ms.count() << '\n';
    }

    pwresetd::policy::settings settings;
    settings.min_length = 8;
    settings.max_length = 256;
    settings.banned_words_file = file;
    const auto load_started = clock_type::now();
    const pwresetd::policy::password_policy policy(settings);
    const auto load_ms =
        std::chrono::duration<double, std::milli>(clock_type::now() - load_started).count();
    if (!keep) {
        fs::remove(file);
    }

    generator g(7);
    std::vector<std::string> candidates;
    candidates.reserve(checks);
    for (std::size_t i = 0; i < checks; ++i) {
        candidates.push_back(candidate(g, terms));
    }
    const pwresetd::policy::context ctx{.username = "alice", .display_name = "Alice Smith"};
    for (std::size_t i = 0; i < std::min<std::size_t>(checks, 2000); ++i) {
        (void)policy.check(candidates[i], ctx);
    }
    std::vector<std::uint64_t> ns;
    ns.reserve(checks);
    std::size_t refused = 0;
    std::size_t banned = 0;
    for (const auto& c : candidates) {
        const auto started = clock_type::now();
        const auto v = policy.check(c, ctx);
        const auto elapsed = clock_type::now() - started;
        ns.push_back(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
        refused += v.empty() ? 0U : 1U;
        banned += std::any_of(v.begin(), v.end(), [](const auto& x) { return x.rule == "banned"; })
                      ? 1U
                      : 0U;
    }
    std::sort(ns.begin(), ns.end());
    const auto at = [&ns](double q) {
        return ns[std::min(ns.size() - 1,
                           static_cast<std::size_t>(q * static_cast<double>(ns.size())))];
    };
    std::cout << "checks: " << checks << " refused=" << refused << " banned=" << banned
              << " p999_us=" << micros(at(0.999)) << '\n';
    std::printf(
        "terms=%zu load_ms=%.0f p50_us=%.2f p99_us=%.2f max_us=%.2f index_bytes=%zu "
        "peak_rss_mib=%ld checks=%zu banned_pct=%.1f\n",
        terms.size(), load_ms, micros(at(0.5)), micros(at(0.99)), micros(ns.back()), index_bytes,
        peak_rss_mib(), checks, 100.0 * static_cast<double>(banned) / static_cast<double>(checks));
    return 0;
}
