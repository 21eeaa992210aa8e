#include "factors/totp.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "common/crypto.hpp"

namespace f = pwresetd::factors;
using f::totp_algorithm;
using pwresetd::secret;

namespace {

std::span<const unsigned char> bytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

constexpr std::string_view rfc_key20 = "12345678901234567890";
constexpr std::string_view rfc_key32 = "12345678901234567890123456789012";
constexpr std::string_view rfc_key64 =
    "1234567890123456789012345678901234567890123456789012345678901234";

std::string decoded_text(std::string_view b32) {
    const auto s = f::base32_decode(b32);
    REQUIRE(s.has_value());
    return std::string(s->view());
}

struct run_result {
    int status = -1;
    std::string output;
};

run_result run(const std::string& command) {
    run_result r;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 256> buf{};
    while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) {
        r.output += buf.data();
    }
    r.status = ::pclose(pipe);
    while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r')) {
        r.output.pop_back();
    }
    return r;
}

std::string utc_text(std::int64_t unix_time) {
    const auto t = static_cast<std::time_t>(unix_time);
    std::tm tm{};
    REQUIRE(::gmtime_r(&t, &tm) != nullptr);
    std::array<char, 64> buf{};
    REQUIRE(std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S UTC", &tm) > 0);
    return buf.data();
}

}  // namespace

TEST_CASE("hotp matches RFC 4226 Appendix D", "[totp]") {
    const std::array<std::string_view, 10> expected = {"755224", "287082", "359152", "969429",
                                                       "338314", "254676", "287922", "162583",
                                                       "399871", "520489"};
    for (std::uint64_t counter = 0; counter < expected.size(); ++counter) {
        INFO("counter " << counter);
        CHECK(f::hotp(bytes(rfc_key20), counter, 6, totp_algorithm::sha1) == expected[counter]);
    }
}

TEST_CASE("totp matches RFC 6238 Appendix B", "[totp]") {
    struct row {
        std::int64_t time;
        std::int64_t step;
        std::string_view sha1, sha256, sha512;
    };
    const std::array<row, 6> table = {{
        {59, 1, "94287082", "46119246", "90693936"},
        {1111111109, 0x23523EC, "07081804", "68084774", "25091201"},
        {1111111111, 0x23523ED, "14050471", "67062674", "99943326"},
        {1234567890, 0x273EF07, "89005924", "91819424", "93441116"},
        {2000000000, 0x3F940AA, "69279037", "90698825", "38618901"},
        {20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"},
    }};
    const secret k20(rfc_key20), k32(rfc_key32), k64(rfc_key64);
    for (const auto& r : table) {
        INFO("time " << r.time);
        const auto step = f::totp_step(r.time, 30);
        CHECK(step == r.step);
        const auto counter = static_cast<std::uint64_t>(step);
        CHECK(f::hotp(bytes(rfc_key20), counter, 8, totp_algorithm::sha1) == r.sha1);
        CHECK(f::hotp(bytes(rfc_key32), counter, 8, totp_algorithm::sha256) == r.sha256);
        CHECK(f::hotp(bytes(rfc_key64), counter, 8, totp_algorithm::sha512) == r.sha512);

        f::totp_params p{totp_algorithm::sha1, 8, 30, 0};
        CHECK(f::totp_match(k20, r.sha1, r.time, p) == r.step);
        p.algorithm = totp_algorithm::sha256;
        CHECK(f::totp_match(k32, r.sha256, r.time, p) == r.step);
        p.algorithm = totp_algorithm::sha512;
        CHECK(f::totp_match(k64, r.sha512, r.time, p) == r.step);
        CHECK_FALSE(f::totp_match(k20, r.sha512, r.time, p).has_value());
    }
}

TEST_CASE("hotp rejects unsupported digit counts and an empty key", "[totp]") {
    for (const int digits : {0, 5, 7, 9, 10, -6}) {
        CHECK_THROWS_AS(f::hotp(bytes(rfc_key20), 0, digits, totp_algorithm::sha1),
                        std::invalid_argument);
    }
    CHECK(f::hotp(bytes(rfc_key20), 0, 8, totp_algorithm::sha1) == "84755224");
    CHECK_THROWS_AS(f::hotp({}, 0, 6, totp_algorithm::sha1), std::invalid_argument);
    CHECK_THROWS_AS(f::totp_match(secret(), "123456", 0, {}), std::invalid_argument);
}

TEST_CASE("totp_step never goes negative", "[totp]") {
    CHECK(f::totp_step(0, 30) == 0);
    CHECK(f::totp_step(29, 30) == 0);
    CHECK(f::totp_step(30, 30) == 1);
    CHECK(f::totp_step(-1, 30) == 0);
    CHECK(f::totp_step(-100000, 30) == 0);
    CHECK(f::totp_step(119, 60) == 1);
    CHECK_THROWS_AS(f::totp_step(100, 0), std::invalid_argument);
    CHECK_THROWS_AS(f::totp_step(100, -30), std::invalid_argument);
}

TEST_CASE("totp_match accepts the skew window and nothing outside it", "[totp]") {
    const secret key(rfc_key20);
    const std::int64_t t = 1111111109;
    const std::int64_t now = f::totp_step(t, 30);
    const auto code_at = [](std::int64_t step) {
        return f::hotp(bytes(rfc_key20), static_cast<std::uint64_t>(step), 6, totp_algorithm::sha1);
    };
    const f::totp_params p{totp_algorithm::sha1, 6, 30, 1};
    CHECK(code_at(now) == "081804");
    CHECK(f::totp_match(key, code_at(now), t, p) == now);
    CHECK(f::totp_match(key, code_at(now - 1), t, p) == now - 1);
    CHECK(f::totp_match(key, code_at(now + 1), t, p) == now + 1);
    CHECK_FALSE(f::totp_match(key, code_at(now - 2), t, p).has_value());
    CHECK_FALSE(f::totp_match(key, code_at(now + 2), t, p).has_value());

    const f::totp_params exact{totp_algorithm::sha1, 6, 30, 0};
    CHECK(f::totp_match(key, code_at(now), t, exact) == now);
    CHECK_FALSE(f::totp_match(key, code_at(now - 1), t, exact).has_value());
    CHECK_FALSE(f::totp_match(key, code_at(now + 1), t, exact).has_value());

    const f::totp_params wide{totp_algorithm::sha1, 6, 30, 3};
    CHECK(f::totp_match(key, code_at(now - 3), t, wide) == now - 3);
    CHECK(f::totp_match(key, code_at(now + 3), t, wide) == now + 3);
    CHECK_FALSE(f::totp_match(key, code_at(now + 4), t, wide).has_value());

    CHECK_FALSE(f::totp_match(secret("another key 12345678"), code_at(now), t, p).has_value());
}

TEST_CASE("totp_match refuses steps at or before after_step", "[totp]") {
    const secret key(rfc_key20);
    const std::int64_t t = 1111111109;
    const std::int64_t now = f::totp_step(t, 30);
    const auto code_at = [](std::int64_t step) {
        return f::hotp(bytes(rfc_key20), static_cast<std::uint64_t>(step), 6, totp_algorithm::sha1);
    };
    const f::totp_params p{};
    CHECK(f::totp_match(key, code_at(now), t, p, now - 1) == now);
    CHECK_FALSE(f::totp_match(key, code_at(now), t, p, now).has_value());
    CHECK_FALSE(f::totp_match(key, code_at(now), t, p, now + 5).has_value());
    CHECK_FALSE(f::totp_match(key, code_at(now - 1), t, p, now - 1).has_value());
    CHECK(f::totp_match(key, code_at(now + 1), t, p, now) == now + 1);
    // A replayed code stays refused in the next period, while it is still in the window.
    CHECK_FALSE(f::totp_match(key, code_at(now), t + 30, p, now).has_value());
}

TEST_CASE("totp_match returns the latest step when two steps share a code", "[totp]") {
    // Steps 910737 and 910738 of the RFC 4226 key both give 911617 (found by search).
    const secret key(rfc_key20);
    REQUIRE(f::hotp(bytes(rfc_key20), 910737, 6, totp_algorithm::sha1) == "911617");
    REQUIRE(f::hotp(bytes(rfc_key20), 910738, 6, totp_algorithm::sha1) == "911617");
    const f::totp_params p{};
    CHECK(f::totp_match(key, "911617", 910737LL * 30, p) == 910738);
    CHECK(f::totp_match(key, "911617", 910738LL * 30, p) == 910738);
    CHECK(f::totp_match(key, "911617", 910736LL * 30, p) == 910737);
    CHECK_FALSE(f::totp_match(key, "911617", 910737LL * 30, p, 910738).has_value());
}

TEST_CASE("totp_match near the epoch clips the window at step 0", "[totp]") {
    const secret key(rfc_key20);
    const auto code_at = [](std::int64_t step) {
        return f::hotp(bytes(rfc_key20), static_cast<std::uint64_t>(step), 6, totp_algorithm::sha1);
    };
    const f::totp_params p{};
    CHECK(code_at(0) == "755224");
    CHECK(f::totp_match(key, "755224", 10, p) == 0);
    CHECK(f::totp_match(key, code_at(1), 10, p) == 1);
    CHECK_FALSE(f::totp_match(key, code_at(2), 10, p).has_value());
    CHECK(f::totp_match(key, "755224", -500, p) == 0);
    CHECK_FALSE(f::totp_match(key, "755224", 10, p, 0).has_value());
    CHECK(f::totp_match(key, "755224", 10, p, -1) == 0);
}

TEST_CASE("totp_match rejects malformed codes", "[totp]") {
    const secret key(rfc_key20);
    const std::int64_t t = 1111111109;
    const std::int64_t now = f::totp_step(t, 30);
    const f::totp_params six{totp_algorithm::sha1, 6, 30, 1};
    const f::totp_params eight{totp_algorithm::sha1, 8, 30, 1};
    REQUIRE(f::totp_match(key, "081804", t, six) == now);
    REQUIRE(f::totp_match(key, "07081804", t, eight) == now);

    CHECK_FALSE(f::totp_match(key, "07081804", t, six).has_value());
    CHECK_FALSE(f::totp_match(key, "081804", t, eight).has_value());
    for (const std::string_view bad :
         {"", "08180", "0818040", "0818041", " 081804", "081804 ", "081804\n", "08180a", "O81804",
          "+81804", "-81804", "081 804", "０81804"}) {
        INFO("code '" << bad << "'");
        CHECK_FALSE(f::totp_match(key, bad, t, six).has_value());
    }
    CHECK_FALSE(f::totp_match(key, std::string_view("081804\0", 7), t, six).has_value());
    CHECK_FALSE(f::totp_match(key, std::string_view("08180\0", 6), t, six).has_value());
    CHECK_FALSE(f::totp_match(key, std::string(1000, '0'), t, six).has_value());
}

TEST_CASE("totp_match rejects invalid parameters", "[totp]") {
    const secret key(rfc_key20);
    CHECK_THROWS_AS(f::totp_match(key, "1234567", 59, {totp_algorithm::sha1, 7, 30, 1}),
                    std::invalid_argument);
    CHECK_THROWS_AS(f::totp_match(key, "123456", 59, {totp_algorithm::sha1, 6, 0, 1}),
                    std::invalid_argument);
    CHECK_THROWS_AS(f::totp_match(key, "123456", 59, {totp_algorithm::sha1, 6, 30, -1}),
                    std::invalid_argument);
}

TEST_CASE("algorithm names parse exactly", "[totp]") {
    CHECK(f::parse_totp_algorithm("SHA1") == totp_algorithm::sha1);
    CHECK(f::parse_totp_algorithm("SHA256") == totp_algorithm::sha256);
    CHECK(f::parse_totp_algorithm("SHA512") == totp_algorithm::sha512);
    for (const std::string_view bad : {"sha1", "SHA-1", "SHA384", "", "SHA1 ", "MD5"}) {
        CHECK_FALSE(f::parse_totp_algorithm(bad).has_value());
    }
    for (const auto a : {totp_algorithm::sha1, totp_algorithm::sha256, totp_algorithm::sha512}) {
        CHECK(f::parse_totp_algorithm(f::totp_algorithm_name(a)) == a);
    }
    CHECK(f::totp_algorithm_name(totp_algorithm::sha256) == "SHA256");
}

TEST_CASE("generate_totp_key sizes follow RFC 6238 and keys differ", "[totp]") {
    CHECK(f::generate_totp_key(totp_algorithm::sha1).size() == 20);
    CHECK(f::generate_totp_key(totp_algorithm::sha256).size() == 32);
    CHECK(f::generate_totp_key(totp_algorithm::sha512).size() == 64);
    const auto a = f::generate_totp_key(totp_algorithm::sha1);
    const auto b = f::generate_totp_key(totp_algorithm::sha1);
    CHECK_FALSE(a.equals(b));
}

TEST_CASE("base32 matches RFC 4648 section 10", "[base32]") {
    const std::array<std::pair<std::string_view, std::string_view>, 7> vectors = {{
        {"", ""},
        {"f", "MY"},
        {"fo", "MZXQ"},
        {"foo", "MZXW6"},
        {"foob", "MZXW6YQ"},
        {"fooba", "MZXW6YTB"},
        {"foobar", "MZXW6YTBOI"},
    }};
    for (const auto& [plain, encoded] : vectors) {
        INFO("plain '" << plain << "'");
        CHECK(f::base32_encode(bytes(plain)) == encoded);
        CHECK(decoded_text(encoded) == plain);
    }
    CHECK(f::base32_encode(bytes(rfc_key20)) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST_CASE("base32_decode accepts lower case, padding and spaces", "[base32]") {
    CHECK(decoded_text("my======") == "f");
    CHECK(decoded_text("MZXQ====") == "fo");
    CHECK(decoded_text("MZXW6===") == "foo");
    CHECK(decoded_text("MZXW6YQ=") == "foob");
    CHECK(decoded_text("MZXW6YTBOI======") == "foobar");
    CHECK(decoded_text("mzxw6ytboi") == "foobar");
    CHECK(decoded_text("MzXw 6yTb Oi") == "foobar");
    CHECK(decoded_text(" MZXW 6YTB OI== ==== ") == "foobar");
    CHECK(decoded_text("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ") == rfc_key20);
    CHECK(decoded_text("   ") == "");
}

TEST_CASE("base32_decode rejects invalid text", "[base32]") {
    for (const std::string_view bad : {
             "MZXW1",    // '1' is not in the alphabet
             "MZXW8",    // nor '8'
             "MZXW0",    // nor '0'
             "MZX-W6",   // nor '-'
             "MZXW6\n",  // only spaces are ignored
             "MZXW6\t",
             "M",          // 1 symbol: 5 bits, no whole byte
             "MZX",        // 3 symbols
             "MZXW6Y",     // 6 symbols
             "MZXW6YTBO",  // 9 = 8 + 1
             "A",          // the same impossible lengths with zero leftover bits
             "MYA",
             "MZXW6A",
             "MZXW6YTBA",
             "MZ=XW6",  // data after padding
             "=MZXW6",
             "MZX=W6==",          // right padding count, wrong place
             "MY=",               // incomplete padding
             "MY=======",         // too much padding
             "MZXW6YTB========",  // padding after a full quantum
             "========",
             "MZ",            // non-zero leftover bits (canonical "MY")
             "MZXR",          // canonical "MZXQ"
             "MZXW6YTBOJ",    // canonical "MZXW6YTBOI"
             "MZXW\xC3\x96",  // non-ASCII
         }) {
        INFO("text '" << bad << "'");
        CHECK_FALSE(f::base32_decode(bad).has_value());
    }
    CHECK_FALSE(f::base32_decode(std::string_view("MZ\0Q", 4)).has_value());
}

TEST_CASE("base32 round-trips random keys of every size", "[base32]") {
    for (std::size_t n = 0; n <= 70; ++n) {
        const auto data = pwresetd::crypto::random_bytes(n);
        const auto text = f::base32_encode(data);
        CHECK(text.size() == (n * 8 + 4) / 5);
        const auto back = f::base32_decode(text);
        REQUIRE(back.has_value());
        CHECK(pwresetd::crypto::constant_time_equal(back->bytes(), data));
    }
    for (const auto a : {totp_algorithm::sha1, totp_algorithm::sha256, totp_algorithm::sha512}) {
        const auto key = f::generate_totp_key(a);
        const auto back = f::base32_decode(f::base32_encode(key.bytes()));
        REQUIRE(back.has_value());
        CHECK(back->equals(key));
    }
}

TEST_CASE("otpauth_uri follows the Key Uri Format", "[otpauth]") {
    CHECK(f::otpauth_uri("ACME Co:East", "alice@example.com", "JBSWY3DPEHPK3PXP", {}) ==
          "otpauth://totp/ACME%20Co%3AEast:alice%40example.com?secret=JBSWY3DPEHPK3PXP"
          "&issuer=ACME%20Co%3AEast&algorithm=SHA1&digits=6&period=30");
    CHECK(f::otpauth_uri("Example", "bob.smith_2~x-y", "GEZDGNBVGY3TQOJQ",
                         {totp_algorithm::sha512, 8, 60, 1}) ==
          "otpauth://totp/Example:bob.smith_2~x-y?secret=GEZDGNBVGY3TQOJQ&issuer=Example"
          "&algorithm=SHA512&digits=8&period=60");
    CHECK(f::otpauth_uri("", "a:b/c?d&e=f", "MY", {totp_algorithm::sha256, 6, 30, 1}) ==
          "otpauth://totp/a%3Ab%2Fc%3Fd%26e%3Df?secret=MY&algorithm=SHA256&digits=6&period=30");
    CHECK(f::otpauth_uri("Ex", "\xC3\xA9", "MY", {}) ==
          "otpauth://totp/Ex:%C3%A9?secret=MY&issuer=Ex&algorithm=SHA1&digits=6&period=30");
    CHECK_THROWS_AS(f::otpauth_uri("Ex", "a", "MY", {totp_algorithm::sha1, 7, 30, 1}),
                    std::invalid_argument);
}

TEST_CASE("totp agrees with oathtool for random keys", "[totp][oathtool]") {
    constexpr const char* oathtool = "/usr/bin/oathtool";
    if (::access(oathtool, X_OK) != 0) {
        FAIL("oathtool not found at /usr/bin/oathtool: apt-get install oathtool");
    }
    const std::int64_t now = std::time(nullptr);
    const std::array<std::int64_t, 7> times = {
        0,
        59,
        1111111111,
        1704067200,
        4102444799,
        now,
        1000000000 + pwresetd::crypto::random_below(3000000000U)};
    for (const auto a : {totp_algorithm::sha1, totp_algorithm::sha256, totp_algorithm::sha512}) {
        const auto key = f::generate_totp_key(a);
        const auto b32 = f::base32_encode(key.bytes());
        for (const int digits : {6, 8}) {
            for (const int period : {30, 60}) {
                for (const auto t : times) {
                    INFO(f::totp_algorithm_name(a)
                         << " digits " << digits << " period " << period << " at " << utc_text(t));
                    const auto result =
                        run(std::string(oathtool) +
                            " --totp=" + std::string(f::totp_algorithm_name(a)) + " --digits=" +
                            std::to_string(digits) + " --time-step-size=" + std::to_string(period) +
                            "s --base32 " + b32 + " --now '" + utc_text(t) + "' 2>&1");
                    INFO("oathtool said: " << result.output);
                    REQUIRE(result.status == 0);
                    const auto step = f::totp_step(t, period);
                    CHECK(f::hotp(key.bytes(), static_cast<std::uint64_t>(step), digits, a) ==
                          result.output);
                    const f::totp_params p{a, digits, period, 0};
                    CHECK(f::totp_match(key, result.output, t, p) == step);
                }
            }
        }
        if (a == totp_algorithm::sha1) {  // oathtool's HOTP mode is SHA-1 only
            const auto result =
                run(std::string(oathtool) + " --hotp --counter=123456789 --digits=8 --base32 " +
                    b32 + " 2>&1");
            INFO("oathtool said: " << result.output);
            REQUIRE(result.status == 0);
            CHECK(f::hotp(key.bytes(), 123456789, 8, a) == result.output);
        }
    }
}
