#include "policy/breached_set.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/breached_format.hpp"
#include "policy/password_policy.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using pwresetd::policy::breached_set;
using pwresetd::policy::compile_breached_set;
using pwresetd::policy::compile_error;
using pwresetd::policy::compile_options;
using pwresetd::policy::policy_error;
using pwresetd::policy::sha1_digest;
using pwresetd::testing::read_file;
using pwresetd::testing::temp_dir;
using pwresetd::testing::write_file;
namespace fmt = pwresetd::policy::breached_format;

namespace {

std::vector<sha1_digest> random_hashes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<sha1_digest> out(n);
    for (auto& h : out) {
        for (auto& b : h) {
            b = static_cast<unsigned char>(rng());
        }
    }
    return out;
}

std::string hex(const sha1_digest& h, bool upper = true) {
    static constexpr char upper_digits[] = "0123456789ABCDEF";
    static constexpr char lower_digits[] = "0123456789abcdef";
    const char* digits = upper ? upper_digits : lower_digits;
    std::string s;
    for (const unsigned char b : h) {
        s += digits[b >> 4U];
        s += digits[b & 15U];
    }
    return s;
}

sha1_digest digest_of(const std::string& hex_text) {
    sha1_digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) {
        d[i] = static_cast<unsigned char>(std::stoul(hex_text.substr(i * 2, 2), nullptr, 16));
    }
    return d;
}

std::string lines_of(const std::vector<sha1_digest>& hashes) {
    std::string text;
    for (std::size_t i = 0; i < hashes.size(); ++i) {
        text += hex(hashes[i], i % 2 == 0);
        if (i % 3 == 0) {
            text += ":" + std::to_string(i + 1);
        }
        text += '\n';
    }
    return text;
}

pwresetd::policy::compile_stats compile_text(const std::string& text, const fs::path& out,
                                             const compile_options& options = {}) {
    std::istringstream in(text);
    return compile_breached_set(in, out, options);
}

// Recomputes every checksum, so only the structural checks can refuse the file.
std::string reseal(std::string bytes) {
    auto* p = reinterpret_cast<unsigned char*>(bytes.data());
    const std::uint64_t blocks = fmt::load_le64(p + fmt::offset::block_count);
    const std::size_t index_bytes = static_cast<std::size_t>((blocks + 1) * 8);
    const unsigned char* index = p + fmt::header_size;
    fmt::store_le64(p + fmt::offset::index_checksum, fmt::xxh64_of({index, index_bytes}));
    fmt::store_le64(
        p + fmt::offset::payload_checksum,
        fmt::xxh64_of({index + index_bytes, bytes.size() - fmt::header_size - index_bytes}));
    fmt::store_le64(p + fmt::offset::header_checksum, fmt::xxh64_of({p, fmt::header_checksummed}));
    return bytes;
}

std::string refusal(const fs::path& file) {
    try {
        (void)breached_set::open(file);
    } catch (const policy_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("XXH64 matches the reference vectors", "[breached]") {
    const auto of = [](std::string_view s) {
        return fmt::xxh64_of({reinterpret_cast<const unsigned char*>(s.data()), s.size()});
    };
    CHECK(of("") == 0xEF46DB3751D8E999ULL);
    CHECK(of("a") == 15154266338359012955ULL);
    CHECK(of("abc") == 0x44BC2CF5AD770999ULL);
    CHECK(of("The quick brown fox jumps over the lazy dog") == 0x0B242D361FDA71BCULL);

    const std::string text(1000, 'x');
    fmt::xxh64 pieces;
    for (std::size_t i = 0; i < text.size(); i += 7) {
        const std::string_view part = std::string_view(text).substr(i, 7);
        pieces.update({reinterpret_cast<const unsigned char*>(part.data()), part.size()});
    }
    CHECK(pieces.digest() == of(text));
}

TEST_CASE("every compiled hash is found, edge values included", "[breached]") {
    const temp_dir dir;
    auto hashes = random_hashes(3000, 1);
    sha1_digest zeros{};
    sha1_digest ones{};
    ones.fill(0xFF);
    hashes.push_back(zeros);
    hashes.push_back(ones);
    hashes.push_back(digest_of("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"));  // "password"
    const auto stats = compile_text(lines_of(hashes), dir / "set.bin");
    CHECK(stats.lines == hashes.size());
    CHECK(stats.hashes == hashes.size());
    CHECK(stats.skipped == 0);
    CHECK(stats.output_bytes == fs::file_size(dir / "set.bin"));

    const auto set = breached_set::open(dir / "set.bin");
    CHECK(set->size() == hashes.size());
    std::size_t missing = 0;
    for (const auto& h : hashes) {
        missing += set->contains(h) ? 0U : 1U;
    }
    CHECK(missing == 0);
    CHECK(set->contains(zeros));
    CHECK(set->contains(ones));
    CHECK(set->contains_password("password"));
    CHECK_FALSE(set->contains_password("a much longer passphrase nobody has leaked, 7f3e"));
}

TEST_CASE("absent hashes are found at most at the false-positive rate", "[breached]") {
    const temp_dir dir;
    const auto hashes = random_hashes(100'000, 2);
    const auto stats = compile_text(lines_of(hashes), dir / "set.bin");
    const double bytes_per_hash =
        static_cast<double>(stats.output_bytes) / static_cast<double>(stats.hashes);
    CHECK(bytes_per_hash <= 3.2);
    CHECK(bytes_per_hash > 2.0);

    const auto set = breached_set::open(dir / "set.bin");
    std::mt19937_64 rng(3);
    std::size_t false_positives = 0;
    sha1_digest probe{};
    for (int i = 0; i < 1'000'000; ++i) {
        for (auto& b : probe) {
            b = static_cast<unsigned char>(rng());
        }
        false_positives += set->contains(probe) ? 1U : 0U;
    }
    // Expected 2^-17 * 1e6 = 7.6; 40 is far in the tail of that Poisson distribution.
    CHECK(false_positives <= 40);
}

TEST_CASE("order, duplicates, case and counts do not change the bytes", "[breached]") {
    const temp_dir dir;
    const auto hashes = random_hashes(5000, 4);
    compile_text(lines_of(hashes), dir / "a.bin");

    auto shuffled = hashes;
    shuffled.insert(shuffled.end(), hashes.begin(), hashes.begin() + 2000);
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(5));
    std::string text;
    for (std::size_t i = 0; i < shuffled.size(); ++i) {
        text += hex(shuffled[i], i % 5 != 0) + (i % 2 == 0 ? ":99\r\n" : "\n");
    }
    const auto stats = compile_text(text, dir / "b.bin");
    CHECK(stats.lines == 7000);
    CHECK(stats.hashes == 5000);
    CHECK(read_file(dir / "a.bin") == read_file(dir / "b.bin"));

    compile_text(lines_of(random_hashes(5000, 6)), dir / "c.bin");
    CHECK(read_file(dir / "a.bin") != read_file(dir / "c.bin"));
}

TEST_CASE("a tiny memory budget spills sorted runs and gives the same bytes", "[breached]") {
    const temp_dir dir;
    const auto spill_dir = dir / "spill";
    fs::create_directory(spill_dir);
    auto hashes = random_hashes(100'000, 7);
    hashes.insert(hashes.end(), hashes.begin(), hashes.begin() + 30'000);
    std::shuffle(hashes.begin(), hashes.end(), std::mt19937_64(8));
    const std::string text = lines_of(hashes);

    const auto in_memory = compile_text(text, dir / "memory.bin");
    CHECK(in_memory.hashes == 100'000);
    // 4 MiB: ~1 MiB for values after the I/O buffers, two runs; 1 byte: the 1024-value
    // floor, 127 runs, more than the merge fan-in, so runs are merged in two levels.
    for (const std::uint64_t budget : {std::uint64_t{4} << 20U, std::uint64_t{1}}) {
        compile_options options;
        options.memory_budget_bytes = budget;
        options.temp_dir = spill_dir;
        const auto stats = compile_text(text, dir / "spilled.bin", options);
        CHECK(stats.hashes == 100'000);
        CHECK(read_file(dir / "memory.bin") == read_file(dir / "spilled.bin"));
        CHECK(fs::is_empty(spill_dir));
    }
    const auto set = breached_set::open(dir / "spilled.bin");
    CHECK(
        std::all_of(hashes.begin(), hashes.end(), [&](const auto& h) { return set->contains(h); }));
}

TEST_CASE("a malformed line is an error naming its line number", "[breached]") {
    const temp_dir dir;
    const std::string good = hex(random_hashes(1, 9)[0]);
    const std::string bad = GENERATE(
        as<std::string>{}, "zzz", "0123456789abcdef0123456789abcdef012345678",
        "0123456789abcdef0123456789abcdef0123456789",
        "0123456789abcdef0123456789abcdef01234567:", "0123456789abcdef0123456789abcdef01234567:12a",
        "0123456789abcdef0123456789abcdef01234567 12", "0123456789abcdef0123456789abcdef0123456g:1",
        " 0123456789abcdef0123456789abcdef01234567", std::string(10000, 'A'),
        std::string(3 << 20, 'A'));
    const std::string text = good + "\n\n" + good + ":3\r\n" + bad + "\n" + good + "\n";
    try {
        compile_text(text, dir / "set.bin");
        FAIL("no compile_error");
    } catch (const compile_error& e) {
        CHECK(e.line() == 4);
        CHECK(std::string(e.what()).rfind("line 4: expected 40 hex digits", 0) == 0);
    }
    CHECK(fs::is_empty(dir.path()));

    compile_options options;
    options.skip_bad = true;
    const auto stats = compile_text(text, dir / "set.bin", options);
    CHECK(stats.lines == 5);
    CHECK(stats.skipped == 1);
    CHECK(stats.hashes == 1);
    CHECK(breached_set::open(dir / "set.bin")->contains(digest_of(good)));
}

TEST_CASE("skip_bad counts every malformed line and keeps the good ones", "[breached]") {
    const temp_dir dir;
    const auto hashes = random_hashes(10, 10);
    std::string text;
    for (const auto& h : hashes) {
        text += hex(h) + ":1\nnot a hash\n";
    }
    compile_options options;
    options.skip_bad = true;
    const auto stats =
        compile_text(text + "trailing junk without newline", dir / "set.bin", options);
    CHECK(stats.lines == 21);
    CHECK(stats.skipped == 11);
    CHECK(stats.hashes == 10);
    const auto set = breached_set::open(dir / "set.bin");
    CHECK(
        std::all_of(hashes.begin(), hashes.end(), [&](const auto& h) { return set->contains(h); }));
}

TEST_CASE("CRLF, blank lines and a missing final newline are accepted", "[breached]") {
    const temp_dir dir;
    const auto hashes = random_hashes(3, 11);
    const std::string text = "\r\n" + hex(hashes[0]) + ":10\r\n\r\n  \t\n" + hex(hashes[1], false) +
                             "\r\n\n" + hex(hashes[2]) + ":7";
    const auto stats = compile_text(text, dir / "set.bin");
    CHECK(stats.lines == 7);
    CHECK(stats.hashes == 3);
    const auto set = breached_set::open(dir / "set.bin");
    CHECK(
        std::all_of(hashes.begin(), hashes.end(), [&](const auto& h) { return set->contains(h); }));

    struct stat st {};
    REQUIRE(::stat((dir / "set.bin").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777U) == 0644U);
}

TEST_CASE("an empty input gives an empty set", "[breached]") {
    const temp_dir dir;
    const auto stats = compile_text("", dir / "empty.bin");
    CHECK(stats.hashes == 0);
    CHECK(stats.lines == 0);
    const auto set = breached_set::open(dir / "empty.bin");
    CHECK(set->size() == 0);
    for (const auto& h : random_hashes(1000, 12)) {
        CHECK_FALSE(set->contains(h));
    }
    compile_text("\n\r\n", dir / "blank.bin");
    CHECK(read_file(dir / "blank.bin") == read_file(dir / "empty.bin"));
}

TEST_CASE("a truncated, corrupt or foreign file is refused at open", "[breached]") {
    const temp_dir dir;
    const auto hashes = random_hashes(2000, 13);
    compile_text(lines_of(hashes), dir / "good.bin");
    const std::string good = read_file(dir / "good.bin");
    const std::size_t index_at = fmt::header_size;
    const std::uint64_t blocks = fmt::load_le64(
        reinterpret_cast<const unsigned char*>(good.data()) + fmt::offset::block_count);
    const std::size_t payload_at = index_at + static_cast<std::size_t>((blocks + 1) * 8);
    const fs::path bad = dir / "bad.bin";

    const auto refused = [&](const std::string& bytes, const std::string& why) {
        write_file(bad, bytes);
        std::string message = refusal(bad);
        INFO(why << ": " << message);
        CHECK(message.find(bad.string()) != std::string::npos);
        return message;
    };

    SECTION("truncated") {
        for (const std::size_t size :
             {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{40},
              fmt::header_size - 1, fmt::header_size, payload_at - 3, payload_at, payload_at + 100,
              good.size() - 8, good.size() - 1}) {
            refused(good.substr(0, size), "size " + std::to_string(size));
        }
        CHECK(refused(good.substr(0, good.size() - 1), "").find("truncated") != std::string::npos);
        CHECK(refused(good.substr(0, 0), "").find("empty") != std::string::npos);
    }
    SECTION("trailing bytes") {
        CHECK(refused(good + std::string(8, '\0'), "").find("trailing") != std::string::npos);
    }
    SECTION("a flipped byte anywhere in the header") {
        for (std::size_t at = 0; at < fmt::header_size; ++at) {
            std::string copy = good;
            copy[at] = static_cast<char>(copy[at] ^ 0x10);
            refused(copy, "header byte " + std::to_string(at));
        }
    }
    SECTION("a flipped byte in the index or the payload") {
        for (const std::size_t at : {index_at, index_at + 13, payload_at - 1, payload_at,
                                     payload_at + 777, good.size() - 9, good.size() - 1}) {
            std::string copy = good;
            copy[at] = static_cast<char>(copy[at] ^ 0x01);
            const std::string message = refused(copy, "byte " + std::to_string(at));
            CHECK(message.find("checksum") != std::string::npos);
        }
    }
    SECTION("foreign files") {
        CHECK(refused("PK\x03\x04 not ours at all, a zip perhaps, long enough to read a header "
                      "from and then some more text",
                      "")
                  .find("bad magic") != std::string::npos);
        refused("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\n", "the text input");
        std::mt19937_64 rng(14);
        for (const std::size_t size : {3U, 64U, 72U, 4096U, 100'000U}) {
            std::string noise(size, '\0');
            for (auto& c : noise) {
                c = static_cast<char>(rng());
            }
            refused(noise, "random bytes");
        }
        std::string noise_with_magic = good.substr(0, 8) + std::string(5000, 'x');
        refused(noise_with_magic, "magic then junk");
        const std::string folder_message = refusal(dir.path());
        CHECK(folder_message.find("not a regular file") != std::string::npos);
        CHECK(refusal(dir / "missing.bin").find("cannot open") != std::string::npos);
    }
    SECTION("a wrong version or magic") {
        std::string copy = good;
        copy[fmt::offset::version] = 2;
        CHECK(refused(reseal(copy), "").find("version 2") != std::string::npos);
        copy = good;
        copy[0] = 'X';
        CHECK(refused(reseal(copy), "").find("magic") != std::string::npos);
    }
    SECTION("sealed but inconsistent headers") {
        const auto with_u64 = [&](std::size_t offset, std::uint64_t value) {
            std::string copy = good;
            fmt::store_le64(reinterpret_cast<unsigned char*>(copy.data()) + offset, value);
            return reseal(copy);
        };
        refused(with_u64(fmt::offset::hash_count, ~std::uint64_t{0}), "huge hash count");
        refused(with_u64(fmt::offset::hash_count, std::uint64_t{1} << 46U), "large hash count");
        refused(with_u64(fmt::offset::block_count, std::uint64_t{1} << 61U), "huge block count");
        refused(with_u64(fmt::offset::entry_count, 1'000'000), "entries above hashes");
        refused(with_u64(fmt::offset::payload_bits, ~std::uint64_t{0}), "huge payload");
        refused(with_u64(fmt::offset::payload_bits, 64), "short payload");
        std::string copy = good;
        copy[fmt::offset::rice_bits] = 60;
        refused(reseal(copy), "rice bits");
    }
    SECTION("a sealed index out of order or out of range") {
        for (const std::uint64_t value : {std::uint64_t{0}, ~std::uint64_t{0}, std::uint64_t{5}}) {
            std::string copy = good;
            fmt::store_le64(
                reinterpret_cast<unsigned char*>(copy.data()) + index_at + std::ptrdiff_t{8} * 7,
                value);
            refused(reseal(copy), "index entry 7 = " + std::to_string(value));
        }
        std::string copy = good;
        fmt::store_le64(reinterpret_cast<unsigned char*>(copy.data()) + index_at, 1);
        refused(reseal(copy), "index not starting at 0");
    }
    SECTION("dirty padding") {
        std::string copy = good;
        copy[copy.size() - 3] = 1;
        CHECK(refused(reseal(copy), "").find("padding") != std::string::npos);
    }
}

TEST_CASE("a sealed file with a scrambled payload opens and answers without a crash",
          "[breached]") {
    const temp_dir dir;
    compile_text(lines_of(random_hashes(2000, 15)), dir / "set.bin");
    std::string bytes = read_file(dir / "set.bin");
    const std::uint64_t blocks = fmt::load_le64(
        reinterpret_cast<const unsigned char*>(bytes.data()) + fmt::offset::block_count);
    const std::size_t payload_at = fmt::header_size + static_cast<std::size_t>((blocks + 1) * 8);
    std::mt19937_64 rng(16);
    for (const unsigned fill : {0x00U, 0xFFU, 0x55U}) {
        for (std::size_t i = payload_at; i + 8 < bytes.size(); ++i) {
            bytes[i] = static_cast<char>(fill == 0x55 ? rng() : fill);
        }
        // Keep the padding clean so that the file passes every check at open.
        const auto bits = fmt::load_le64(reinterpret_cast<const unsigned char*>(bytes.data()) +
                                         fmt::offset::payload_bits);
        const std::size_t used_bytes = static_cast<std::size_t>((bits + 7) / 8);
        for (std::size_t i = payload_at + used_bytes; i < bytes.size(); ++i) {
            bytes[i] = 0;
        }
        if (bits % 8 != 0) {
            auto& last = bytes[payload_at + used_bytes - 1];
            last = static_cast<char>(static_cast<unsigned char>(last) & ((1U << (bits % 8)) - 1));
        }
        write_file(dir / "scrambled.bin", reseal(bytes));
        const auto set = breached_set::open(dir / "scrambled.bin");
        std::size_t found = 0;
        for (const auto& h : random_hashes(20'000, 17)) {
            found += set->contains(h) ? 1U : 0U;
        }
        CHECK(found <= 20'000);
    }
}

namespace {

struct run_result {
    int exit_code = -1;
    std::string err;
};

run_result run_pwresetctl(const temp_dir& dir, const std::string& args,
                          const std::string& stdin_text) {
    const char* binary_dir = std::getenv("PWRESETD_BINARY_DIR");
    REQUIRE(binary_dir != nullptr);
    const fs::path binary = fs::path(binary_dir) / "daemon" / "pwresetctl";
    REQUIRE(fs::exists(binary));
    write_file(dir / "stdin.txt", stdin_text);
    const std::string command = "'" + binary.string() + "' " + args + " < '" +
                                (dir / "stdin.txt").string() + "' > /dev/null 2> '" +
                                (dir / "stderr.txt").string() + "'";
    const int status = std::system(command.c_str());
    REQUIRE(WIFEXITED(status));
    return {WEXITSTATUS(status), read_file(dir / "stderr.txt")};
}

}  // namespace

TEST_CASE("pwresetctl breached compile", "[breached][pwresetctl]") {
    const temp_dir dir;
    const auto hashes = random_hashes(3, 18);
    const std::string out = "'" + (dir / "out.bin").string() + "'";
    const std::string good = lines_of(hashes);

    auto r = run_pwresetctl(dir, "breached compile - " + out, good);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("lines=3 hashes=3 skipped=0") != std::string::npos);
    const auto set = breached_set::open(dir / "out.bin");
    CHECK(
        std::all_of(hashes.begin(), hashes.end(), [&](const auto& h) { return set->contains(h); }));

    write_file(dir / "input.txt", good);
    r = run_pwresetctl(dir,
                       "breached compile --memory-mib 1 '" + (dir / "input.txt").string() + "' '" +
                           (dir / "from-file.bin").string() + "'",
                       "");
    CHECK(r.exit_code == 0);
    CHECK(read_file(dir / "from-file.bin") == read_file(dir / "out.bin"));

    const std::string bad_text = good + "nonsense\n";
    r = run_pwresetctl(dir, "breached compile - '" + (dir / "bad.bin").string() + "'", bad_text);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("line 4: expected 40 hex digits") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "bad.bin"));

    r = run_pwresetctl(dir, "breached compile --skip-bad - '" + (dir / "bad.bin").string() + "'",
                       bad_text);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("skipped=1") != std::string::npos);

    CHECK(run_pwresetctl(dir, "breached compile - ", good).exit_code == 2);
    CHECK(run_pwresetctl(dir, "breached compile --memory-mib x - " + out, good).exit_code == 2);
    CHECK(run_pwresetctl(dir, "frobnicate", "").exit_code == 2);
    CHECK(run_pwresetctl(dir, "--version", "").exit_code == 0);
    CHECK(run_pwresetctl(dir, "--help", "").exit_code == 0);
    CHECK(run_pwresetctl(dir, "breached compile missing.txt " + out, "").exit_code == 1);
}

TEST_CASE("a set written over in place is refused, never read", "[breached][security]") {
    const temp_dir dir;
    const auto hashes = random_hashes(500, 7);
    compile_text(lines_of(hashes), dir / "set.bin");
    const auto set = breached_set::open(dir / "set.bin");
    REQUIRE(set->contains(hashes.front()));

    SECTION("replaced by rename (pwresetctl breached compile): the open set goes on") {
        compile_text(lines_of(random_hashes(10, 8)), dir / "other.bin");
        fs::rename(dir / "other.bin", dir / "set.bin");
        CHECK(set->contains(hashes.front()));
    }
    SECTION("truncated in place: refused instead of a SIGBUS") {
        fs::resize_file(dir / "set.bin", 0);
        CHECK_THROWS_WITH(set->contains(hashes.front()),
                          Catch::Contains("changed on disk since it was loaded"));
    }
    SECTION("rewritten in place with the same size: refused") {
        const std::string bytes = pwresetd::testing::read_file(dir / "set.bin");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a new mtime
        std::ofstream(dir / "set.bin", std::ios::binary | std::ios::trunc) << bytes;
        CHECK_THROWS_WITH(set->contains(hashes.front()),
                          Catch::Contains("changed on disk since it was loaded"));
    }
}
