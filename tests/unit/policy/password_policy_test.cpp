#include "policy/password_policy.hpp"

#include <openssl/sha.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/breached_set.hpp"
#include "support/temp_dir.hpp"

using pwresetd::policy::context;
using pwresetd::policy::password_policy;
using pwresetd::policy::policy_error;
using pwresetd::policy::rule_info;
using pwresetd::policy::settings;
using pwresetd::policy::violation;
using pwresetd::testing::temp_dir;

namespace {

std::vector<std::string> rule_names(const std::vector<violation>& v) {
    std::vector<std::string> out;
    for (const auto& x : v) {
        out.push_back(x.rule);
    }
    return out;
}

std::vector<std::string> rule_names(const std::vector<rule_info>& v) {
    std::vector<std::string> out;
    for (const auto& x : v) {
        out.push_back(x.rule);
    }
    return out;
}

bool has(const std::vector<violation>& v, const std::string& rule) {
    return std::any_of(v.begin(), v.end(), [&](const violation& x) { return x.rule == rule; });
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += s;
    }
    return out;
}

std::string sha1_hex(std::string_view text) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char b : digest) {
        out += hex[b >> 4U];
        out += hex[b & 15U];
    }
    return out;
}

context user(std::string_view username) {
    return {.username = username, .display_name = {}};
}

settings lenient() {
    settings s;
    s.min_length = 8;
    return s;
}

}  // namespace

TEST_CASE("rules: the active rules in a stable order", "[policy]") {
    const password_policy defaults(settings{});
    const auto r = defaults.rules();
    CHECK(rule_names(r) == std::vector<std::string>{"min_length", "max_length", "contains_username",
                                                    "contains_name", "banned"});
    CHECK(r[0].value == 12);
    CHECK(r[1].value == 256);
    CHECK_FALSE(r[2].value.has_value());

    settings s;
    s.min_length = 10;
    s.max_length = 64;
    s.character_classes = 3;
    s.reject_username = false;
    const password_policy custom(s);
    const auto c = custom.rules();
    CHECK(rule_names(c) ==
          std::vector<std::string>{"min_length", "max_length", "character_classes", "banned"});
    CHECK(c[0].value == 10);
    CHECK(c[1].value == 64);
    CHECK(c[2].value == 3);
    CHECK(custom.config().character_classes == 3);
}

TEST_CASE("settings that cannot work are refused", "[policy]") {
    settings s;
    s.character_classes = 5;
    CHECK_THROWS_AS(password_policy(s), policy_error);
    s = settings{};
    s.min_length = 20;
    s.max_length = 10;
    CHECK_THROWS_AS(password_policy(s), policy_error);
    s = settings{};
    s.banned_score_threshold = 0;
    CHECK_THROWS_AS(password_policy(s), policy_error);
}

TEST_CASE("length: counted in code points", "[policy]") {
    const password_policy policy(settings{});
    const std::string grinning = "\xF0\x9F\x98\x80";  // U+1F600, 4 bytes
    CHECK(policy.check(repeat(grinning + "x", 6)).empty());
    const auto short_one = policy.check(repeat(grinning + "x", 5) + grinning);  // 11
    REQUIRE(rule_names(short_one) == std::vector<std::string>{"min_length"});
    CHECK(short_one[0].value == 12);
    // "é" as e + U+0301 COMBINING ACUTE ACCENT is two code points.
    const std::string e_acute = "e\xCC\x81";
    CHECK(policy.check(repeat(e_acute + "k", 3)).size() == 1);  // 9 code points
    CHECK(policy.check(repeat(e_acute + "k", 4)).empty());      // 12, 16 bytes

    const password_policy at_most([] {
        settings s;
        s.min_length = 4;
        s.max_length = 10;
        return s;
    }());
    CHECK(at_most.check(repeat(grinning, 5) + "lkrw" + grinning).empty());  // 10
    const auto long_one = at_most.check("kfrt-lmwp-z");                     // 11
    REQUIRE(rule_names(long_one) == std::vector<std::string>{"max_length"});
    CHECK(long_one[0].value == 10);
}

TEST_CASE("character classes: N of lower, upper, digit, other", "[policy]") {
    settings s = lenient();
    s.character_classes = 3;
    const password_policy policy(s);
    const auto one = policy.check("klmtrvswpq");
    REQUIRE(rule_names(one) == std::vector<std::string>{"character_classes"});
    CHECK(one[0].value == 3);
    CHECK(policy.check("Klmtrvswp8").empty());
    CHECK(policy.check("klmtrvswp8#").empty());
    CHECK(policy.check("KLMTRVSWP#").size() == 1);
    CHECK(policy.check("\xC3\x85klmtrv-swp").empty());          // Å is upper case, - is other
    CHECK(policy.check("klm\xF0\x9F\x98\x80trvswp9").empty());  // the emoji is other
    s.character_classes = 4;
    const password_policy all(s);
    CHECK(all.check("Klmtrvswp8").size() == 1);
    CHECK(all.check("Klmtrvswp8~").empty());
}

TEST_CASE("contains_username: the account part, normalized, case-insensitive", "[policy]") {
    const password_policy policy(lenient());
    const context alice{.username = "alice", .display_name = {}};
    CHECK(rule_names(policy.check("xx-ALICE-yy-zz", alice)) ==
          std::vector<std::string>{"contains_username"});
    CHECK(has(policy.check("xx-4lic3-yy-zz", alice), "contains_username"));
    CHECK(policy.check("xx-alce-yy-zzk", alice).empty());
    CHECK(has(policy.check("xx-alice-yy-zz", user("alice@example.test")), "contains_username"));
    CHECK(has(policy.check("xx-alice-yy-zz", user("EXAMPLE\\alice")), "contains_username"));
    CHECK_FALSE(has(policy.check("xx-example-yy-zz", user("EXAMPLE\\alice")), "contains_username"));
    CHECK_FALSE(
        has(policy.check("xx-example-yy-zz", user("alice@example.test")), "contains_username"));
    // Short user names are ignored, parts of a long one are not.
    CHECK(policy.check("xx-bob-yy-zz-kw", user("bob")).empty());
    CHECK(has(policy.check("xx-smith-yy-zz", user("alice.smith")), "contains_username"));
    CHECK(has(policy.check("xx-li.wu-yy-zz", user("li.wu")), "contains_username"));
    CHECK_FALSE(has(policy.check("xx-li-yy-wu-zz", user("li.wu")), "contains_username"));
}

TEST_CASE("contains_name: display-name parts of 4 or more", "[policy]") {
    const password_policy policy(lenient());
    const context smith{.username = {}, .display_name = "Alice Smith-Jones"};
    CHECK(rule_names(policy.check("xx-jones-yy-zz", smith)) ==
          std::vector<std::string>{"contains_name"});
    CHECK(has(policy.check("xx-SM!TH-yy-zz", smith), "contains_name"));
    CHECK(has(policy.check("xx-@lice-yy-zz", smith), "contains_name"));
    CHECK(policy.check("xx-smyth-yy-zzk", smith).empty());
    // Parts under 4 characters are ignored.
    const context short_parts{.username = {}, .display_name = "Li Wu-Ng"};
    CHECK(policy.check("xx-li-wu-ng-zz", short_parts).empty());
    const context swedish{.username = {},
                          .display_name =
                              "\xC3\x85sa \xC3\x96"
                              "berg"};
    CHECK(has(policy.check("xx-\xC3\xB6"
                           "berg-yy-zz",
                           swedish),
              "contains_name"));
    CHECK(policy.check("xx-\xC3\xA5sa-yy-zz-k", swedish).empty());  // Åsa: 3 characters
    const context separators{.username = {}, .display_name = "doe,john_q.public@corp"};
    CHECK(has(policy.check("xx-public-yy-zz", separators), "contains_name"));
    CHECK(has(policy.check("xx-corp-yy-zzk", separators), "contains_name"));
    CHECK(has(policy.check("xx-john-yy-zzk", separators), "contains_name"));

    settings off = lenient();
    off.reject_username = false;
    const password_policy without(off);
    CHECK(
        without.check("xx-jones-yy-zz", {.username = "jones", .display_name = "Al Jones"}).empty());
}

TEST_CASE("banned: runs are scored even without a list", "[policy]") {
    const password_policy policy(lenient());
    CHECK(rule_names(policy.check("aaaaaaaaaaaa")) == std::vector<std::string>{"banned"});
    CHECK(rule_names(policy.check("qwerty123456")) == std::vector<std::string>{"banned"});
    CHECK(rule_names(policy.check("abcd1234")) == std::vector<std::string>{"banned"});
    CHECK(policy.check("correct horse battery 1234").empty());
    CHECK(policy.check("Tr0ub4dor&3x").empty());
}

TEST_CASE("banned: Microsoft's worked examples through the policy", "[policy]") {
    const temp_dir dir;
    const auto file = dir / "banned.txt";
    std::ofstream(file) << "# the tenant's list\ncontoso\n\nblank\n";
    settings s = lenient();
    s.banned_words_file = file;
    const password_policy policy(s);
    CHECK(rule_names(policy.check("C0ntos0Blank12")) == std::vector<std::string>{"banned"});
    CHECK(policy.check("ContoS0Bl@nkf9!").empty());
    CHECK(has(policy.check("c0nt0s0-P1"), "banned"));
    CHECK(policy.check("lantern meadow kettle").empty());

    s.banned_score_threshold = 4;
    const password_policy lower(s);
    CHECK(lower.check("C0ntos0Blank12").empty());
}

TEST_CASE("banned_words_file that cannot be read names the file", "[policy]") {
    const temp_dir dir;
    settings s;
    s.banned_words_file = dir / "no-such-list.txt";
    try {
        const password_policy policy(s);
        FAIL("no error");
    } catch (const policy_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("no-such-list.txt"));
    }
}

TEST_CASE("breached: the offline set", "[policy]") {
    const temp_dir dir;
    const auto file = dir / "breached.bin";
    std::istringstream hashes(sha1_hex("Sunflower-Lantern-1987") + ":12\n" + sha1_hex("unrelated") +
                              ":1\n");
    pwresetd::policy::compile_breached_set(hashes, file);
    settings s = lenient();
    s.breached_hashes_file = file;
    const password_policy policy(s);
    CHECK(rule_names(policy.rules()).back() == "breached");
    CHECK(rule_names(policy.check("Sunflower-Lantern-1987")) ==
          std::vector<std::string>{"breached"});
    CHECK(policy.check("Sunflower-Lantern-1988").empty());

    s.breached_hashes_file = dir / "missing.bin";
    CHECK_THROWS_AS(password_policy(s), policy_error);
}

TEST_CASE("violations come in the rules() order", "[policy]") {
    const temp_dir dir;
    const auto file = dir / "banned.txt";
    std::ofstream(file) << "summer\n";
    settings s;
    s.character_classes = 2;
    s.banned_words_file = file;
    const password_policy policy(s);
    const auto v = policy.check("summer", {.username = "summer", .display_name = "Summer Day"});
    CHECK(rule_names(v) == std::vector<std::string>{"min_length", "character_classes",
                                                    "contains_username", "contains_name",
                                                    "banned"});
    // Over max_length the banned scan is skipped: the password is refused anyway.
    const auto too_long = policy.check(std::string(300, 'a'));
    CHECK(rule_names(too_long) == std::vector<std::string>{"max_length", "character_classes"});
}

TEST_CASE("check: invalid UTF-8 is a caller bug", "[policy]") {
    const password_policy policy(settings{});
    CHECK_THROWS_AS(policy.check("abc\xFF"), std::invalid_argument);
}

TEST_CASE("check: several threads at once get the same answers", "[policy]") {
    const temp_dir dir;
    const auto file = dir / "banned.txt";
    std::ofstream(file) << "contoso\nblank\nsummer\nwinter\n";
    settings s = lenient();
    s.banned_words_file = file;
    s.character_classes = 2;
    const password_policy policy(s);
    const std::vector<std::string> passwords{
        "C0ntos0Blank12", "ContoS0Bl@nkf9!", "Winter2024!!",      "qwertyuiop",
        "Hjkl-m0ose-Rv",  "summer-summer",   "aaaaaaaaaaaaaaaaa", "lantern meadow kettle 7"};
    std::vector<std::vector<std::string>> expected;
    for (const auto& p : passwords) {
        expected.push_back(rule_names(policy.check(p, user("alice"))));
    }
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < mismatches.size(); ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 500; ++round) {
                for (std::size_t i = 0; i < passwords.size(); ++i) {
                    if (rule_names(policy.check(passwords[i], user("alice"))) != expected[i]) {
                        ++mismatches[t];
                    }
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(mismatches == std::vector<int>(4, 0));
    CHECK(expected[0] == std::vector<std::string>{"banned"});
    CHECK(expected[1].empty());
}
