#include "factors/codes.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <set>
#include <string>

using namespace pwresetd;
using namespace pwresetd::factors;

TEST_CASE("numeric codes have the asked length, only digits, and every digit appears", "[codes]") {
    std::array<int, 10> seen{};
    std::set<std::string> distinct;
    for (int i = 0; i < 2000; ++i) {
        const secret code = generate_numeric_code(6);
        REQUIRE(code.size() == 6);
        for (const char c : code.view()) {
            REQUIRE((c >= '0' && c <= '9'));
            ++seen[static_cast<std::size_t>(c - '0')];
        }
        distinct.emplace(code.view());
    }
    // 12000 digits: each digit ~1200 times; a broken generator would be far off.
    for (const int n : seen) {
        CHECK(n > 1000);
        CHECK(n < 1400);
    }
    CHECK(distinct.size() > 1980);  // collisions among 2000 of 10^6 are rare
    CHECK(generate_numeric_code(10).size() == 10);
    CHECK_THROWS(generate_numeric_code(5));
    CHECK_THROWS(generate_numeric_code(11));
}

TEST_CASE("typed numeric codes are normalized or refused", "[codes]") {
    CHECK(normalize_numeric_code("123456", 6)->view() == "123456");
    CHECK(normalize_numeric_code("123 456", 6)->view() == "123456");
    CHECK(normalize_numeric_code("123-456", 6)->view() == "123456");
    CHECK_FALSE(normalize_numeric_code("12345", 6));
    CHECK_FALSE(normalize_numeric_code("1234567", 6));
    CHECK_FALSE(normalize_numeric_code("12345a", 6));
    CHECK_FALSE(normalize_numeric_code("", 6));
    CHECK_FALSE(normalize_numeric_code("١٢٣٤٥٦", 6));  // Arabic-Indic digits are not digits here
}

TEST_CASE("code hashes are keyed and bound to their context", "[codes]") {
    const secret key(std::string(32, 'k'));
    const secret other(std::string(32, 'o'));
    const auto h = code_hash(key, "flow-a:email", "123456");
    CHECK(h.size() == 64);
    CHECK(h == code_hash(key, "flow-a:email", "123456"));
    CHECK(h != code_hash(key, "flow-b:email", "123456"));
    CHECK(h != code_hash(key, "flow-a:sms", "123456"));
    CHECK(h != code_hash(key, "flow-a:email", "123457"));
    CHECK(h != code_hash(other, "flow-a:email", "123456"));
    // The separator keeps "ab"+"c" and "a"+"bc" apart.
    CHECK(code_hash(key, "ab", "c") != code_hash(key, "a", "bc"));
    CHECK(derive_key(key, "one").view() != derive_key(key, "two").view());
    CHECK(derive_key(key, "one").size() == 32);
}

TEST_CASE("recovery codes: 60 bits of Crockford base32 in groups, normalized when typed",
          "[codes]") {
    std::set<std::string> distinct;
    for (int i = 0; i < 200; ++i) {
        const secret code = generate_recovery_code();
        REQUIRE(code.size() == 14);
        const auto v = code.view();
        CHECK(v[4] == '-');
        CHECK(v[9] == '-');
        for (const char c : v) {
            CHECK(std::string_view("0123456789abcdefghjkmnpqrstvwxyz-").find(c) !=
                  std::string_view::npos);
        }
        const auto canonical = normalize_recovery_code(v);
        REQUIRE(canonical);
        CHECK(canonical->size() == 12);
        distinct.emplace(v);
    }
    CHECK(distinct.size() == 200);
    CHECK(normalize_recovery_code("7K2M 9Q4X HD3A")->view() == "7k2m9q4xhd3a");
    CHECK(normalize_recovery_code("ilo0-0000-0000")->view() == "110000000000");
    CHECK_FALSE(normalize_recovery_code("7k2m-9q4x-hd3"));
    CHECK_FALSE(normalize_recovery_code("7k2m-9q4x-hd3aa"));
    CHECK_FALSE(normalize_recovery_code("7k2m-9q4x-hd3u"));  // u is not in the alphabet
    CHECK_FALSE(normalize_recovery_code(""));
}

TEST_CASE("destination hints hide all but a few characters", "[codes]") {
    CHECK(mask_email("alice@example.test") == "a***@e***.test");
    CHECK(mask_email("Bob.Berg@Mail.Example.COM") == "b***@m***.com");
    CHECK(mask_email("x@localhost") == "x***@l***");
    CHECK(mask_email("not-an-address").empty());
    CHECK(mask_email("@example.test").empty());
    CHECK(mask_email("a@b@c").empty());
    CHECK(mask_email("åsa@example.test") == "****@e***.test");
    // Found by fuzz_totp: the domain's first character was cut out of its UTF-8 sequence,
    // and the hint (JSON in the API) was no longer valid UTF-8.
    CHECK(mask_email("asa@ärlig.se") == "a***@****.se");
    CHECK(mask_email("åsa@ärlig.se") == "****@****.se");
    CHECK(mask_email("x@ü.example") == "x***@****.example");

    CHECK(normalize_phone("+46 70 123 45 67", "") == "+46701234567");
    CHECK(normalize_phone("0046701234567", "") == "+46701234567");
    CHECK(normalize_phone("070-123 45 67", "+46") == "+46701234567");
    CHECK(normalize_phone("070-123 45 67", "") == "0701234567");
    CHECK(normalize_phone("(555) 010.0199", "") == "5550100199");
    CHECK(normalize_phone("123", "+46").empty());
    CHECK(normalize_phone("+46 70 12x", "").empty());
    CHECK(normalize_phone("+4+6701234567", "").empty());

    CHECK(mask_phone("+46701234567", "+46") == "+46 ** *** ** 67");
    CHECK(mask_phone("070 123 45 67", "+46") == "+46 ** *** ** 67");
    CHECK(mask_phone("+4915112345678", "+46") == "+** ** *** ** 78");
    CHECK(mask_phone("+46701234567", "") == "+** ** *** ** 67");
    CHECK(mask_phone("12", "").empty());
}

TEST_CASE("decoy hints are stable per username, keyed, and shaped like real ones", "[codes]") {
    const secret key(std::string(32, 'k'));
    const secret other(std::string(32, 'o'));
    CHECK(decoy_email_hint(key, "nobody", "example.test") == "n***@e***.test");
    CHECK(decoy_email_hint(key, "Nobody", "example.test") == "n***@e***.test");
    CHECK(decoy_email_hint(key, "_x", "example.test") == "x***@e***.test");
    CHECK(decoy_email_hint(key, "nobody", "ärlig.se") == "n***@****.se");
    const auto symbolic = decoy_email_hint(key, "***", "example.test");
    CHECK(symbolic.size() == std::string("a***@e***.test").size());

    const auto phone = decoy_phone_hint(key, "nobody", "+46");
    CHECK(phone.starts_with("+46 ** *** ** "));
    CHECK(phone.size() == std::string("+46 ** *** ** 67").size());
    CHECK(phone == decoy_phone_hint(key, "NOBODY", "+46"));
    CHECK(decoy_phone_hint(key, "nobody", "").starts_with("+** ** *** ** "));
    // Different users get different endings (for most pairs; these two differ).
    std::set<std::string> endings;
    for (const std::string name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
        endings.insert(decoy_phone_hint(key, name, "+46"));
    }
    CHECK(endings.size() > 1);
    bool key_matters = false;
    for (const std::string name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
        key_matters |= decoy_phone_hint(key, name, "+46") != decoy_phone_hint(other, name, "+46");
    }
    CHECK(key_matters);
}
