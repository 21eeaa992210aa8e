#include "policy/banned_list.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/text.hpp"
#include "policy/normalize.hpp"
#include "policy/password_policy.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::literals;
using pwresetd::policy::banned_list;
using pwresetd::policy::char_class;
using pwresetd::policy::classify;
using pwresetd::policy::entra_score;
using pwresetd::policy::evaluate_banned;
using pwresetd::policy::find_runs;
using pwresetd::policy::normalization_substitutions;
using pwresetd::policy::normalize_char;
using pwresetd::policy::policy_error;
using pwresetd::policy::text_span;
using pwresetd::testing::temp_dir;

namespace {

std::u32string decode(std::string_view utf8) {
    const auto d = pwresetd::text::decode_utf8(utf8);
    REQUIRE(d.has_value());
    return {d->begin(), d->end()};
}

std::u32string normalized(std::string_view utf8) {
    auto s = decode(utf8);
    pwresetd::policy::normalize(s);
    return s;
}

std::u32string folded(std::string_view utf8) {
    auto s = decode(utf8);
    pwresetd::policy::fold_case(s);
    return s;
}

banned_list list_of(std::initializer_list<std::string_view> terms) {
    const std::vector<std::string_view> v(terms);
    return banned_list::from_terms(v);
}

std::vector<text_span> runs_of(std::string_view password) {
    return find_runs(folded(password), normalized(password));
}

pwresetd::policy::banned_verdict verdict(const banned_list* list, std::string_view password,
                                         std::size_t threshold = 5) {
    return evaluate_banned(list, folded(password), normalized(password), threshold);
}

// Levenshtein distance, the textbook way, as the reference for the index.
std::size_t edit_distance(std::u32string_view a, std::u32string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// Pronounceable lower-case words of 4..11 letters.
std::string pronounceable(std::mt19937_64& rng) {
    static constexpr std::string_view consonants = "bcdfghjklmnprstvwz";
    static constexpr std::string_view vowels = "aeiouy";
    const std::size_t length = 4 + rng() % 8;
    std::string w;
    while (w.size() < length) {
        w += consonants[rng() % consonants.size()];
        if (w.size() < length) {
            w += vowels[rng() % vowels.size()];
        }
    }
    return w;
}

}  // namespace

TEST_CASE("normalization: the substitution table", "[policy][normalize]") {
    const std::vector<std::pair<char32_t, char32_t>> expected{
        {U'0', U'o'}, {U'1', U'l'}, {U'$', U's'}, {U'@', U'a'}, {U'3', U'e'},
        {U'4', U'a'}, {U'5', U's'}, {U'7', U't'}, {U'8', U'b'}, {U'9', U'g'},
        {U'!', U'i'}, {U'|', U'l'}, {U'+', U't'}};
    REQUIRE(normalization_substitutions.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK(normalization_substitutions[i].from == expected[i].first);
        CHECK(normalization_substitutions[i].to == expected[i].second);
        CHECK(normalize_char(expected[i].first) == expected[i].second);
    }
    for (const char32_t unchanged : {U'2', U'6', U'#', U'%', U'&', U'*', U' ', U'a', U'z'}) {
        CHECK(normalize_char(unchanged) == unchanged);
    }
    CHECK(normalized("P@$$W0RD") == U"password");
    CHECK(normalized("C0ntos0Blank12") == U"contosoblankl2");
    CHECK(normalized("ContoS0Bl@nkf9!") == U"contosoblankfgi");
    CHECK(normalized("|+5") == U"lts");
}

TEST_CASE("normalization: case folding covers ASCII and Latin-1 only", "[policy][normalize]") {
    CHECK(normalized("\xC3\x85\xC3\x84\xC3\x96") == U"\u00E5\u00E4\u00F6");  // ÅÄÖ
    CHECK(normalized("\xC3\x80\xC3\x9E") == U"\u00E0\u00FE");                // ÀÞ
    CHECK(normalized("\xC5\xB8") == U"\u00FF");                              // Ÿ
    CHECK(normalized("\xC3\x97\xC3\xB7") == U"\u00D7\u00F7");                // × ÷ stay
    CHECK(normalized("\xC3\x9F") == U"\u00DF");                              // ß stays
    CHECK(normalized("\xD0\x94") == U"\u0414");  // Cyrillic Д: not folded (documented)
}

TEST_CASE("character classes", "[policy][normalize]") {
    CHECK(classify(U'a') == char_class::lower);
    CHECK(classify(U'Z') == char_class::upper);
    CHECK(classify(U'7') == char_class::digit);
    CHECK(classify(U'#') == char_class::other);
    CHECK(classify(U'\u00E5') == char_class::lower);  // å
    CHECK(classify(U'\u00C5') == char_class::upper);  // Å
    CHECK(classify(U'\u00DF') == char_class::lower);  // ß
    CHECK(classify(U'\u00D7') == char_class::other);  // ×
    CHECK(classify(U'\u0414') == char_class::other);  // Д (documented simplification)
    CHECK(classify(U'\U0001F600') == char_class::other);
    CHECK(classify(U'\u0301') == char_class::other);  // combining acute accent
}

TEST_CASE("fuzzy matching: edit distance 1, never 2", "[policy][banned]") {
    const auto list = list_of({"contoso", "blank", "password"});
    REQUIRE(list.size() == 3);
    CHECK(list.matches(U"contoso"sv));   // exact
    CHECK(list.matches(U"contaso"sv));   // substitute
    CHECK(list.matches(U"xontoso"sv));   // substitute, first
    CHECK(list.matches(U"contosx"sv));   // substitute, last
    CHECK(list.matches(U"contso"sv));    // delete
    CHECK(list.matches(U"ontoso"sv));    // delete, first
    CHECK(list.matches(U"contooso"sv));  // insert
    CHECK(list.matches(U"xcontoso"sv));  // insert, first
    CHECK(list.matches(U"passwrd"sv));
    CHECK(list.matches(U"blan"sv));
    CHECK_FALSE(list.matches(U"cantaso"sv));    // two substitutions
    CHECK_FALSE(list.matches(U"cotnoso"sv));    // transposition = 2 edits
    CHECK_FALSE(list.matches(U"contosoxx"sv));  // two inserts
    CHECK_FALSE(list.matches(U"cntso"sv));      // two deletes
    CHECK_FALSE(list.matches(U"bla"sv));
    CHECK_FALSE(list.matches(U"unrelated"sv));
    CHECK_FALSE(list.matches(U""sv));
}

TEST_CASE("find: windows, and a term plus an edge character is the term alone",
          "[policy][banned]") {
    const auto list = list_of({"blank"});
    CHECK(list.find(U"blank"sv) == std::vector<text_span>{{0, 4}, {0, 5}, {1, 5}});
    // "blankf": the f is not part of the term (Entra scores it on its own).
    const auto f = list.find(U"blankf"sv);
    CHECK(std::find(f.begin(), f.end(), text_span{0, 5}) != f.end());
    CHECK(std::find(f.begin(), f.end(), text_span{0, 6}) == f.end());
    // An insertion inside the term is part of it.
    const auto a = list.find(U"xblaank"sv);
    CHECK(std::find(a.begin(), a.end(), text_span{1, 7}) != a.end());
    CHECK(std::find(a.begin(), a.end(), text_span{0, 7}) == a.end());
    // A substitution at the edge covers the character.
    const auto x = list.find(U"blanx"sv);
    CHECK(std::find(x.begin(), x.end(), text_span{0, 5}) != x.end());
    CHECK(list.find(U"bla"sv).empty());
    CHECK(list_of({}).find(U"blank"sv).empty());
}

TEST_CASE("find agrees with a brute-force reference", "[policy][banned]") {
    std::mt19937_64 rng(20240611);
    std::vector<std::string> terms;
    for (int i = 0; i < 300; ++i) {
        std::string t;
        const std::size_t length = 4 + rng() % 5;
        for (std::size_t k = 0; k < length; ++k) {
            t += static_cast<char>('a' + rng() % 4);  // a small alphabet: many near misses
        }
        terms.push_back(t);
    }
    const std::vector<std::string_view> views(terms.begin(), terms.end());
    const auto list = banned_list::from_terms(views);
    std::vector<std::u32string> wide;
    for (const auto& t : terms) {
        wide.emplace_back(t.begin(), t.end());
    }
    for (int round = 0; round < 200; ++round) {
        std::u32string password;
        const std::size_t length = 3 + rng() % 14;
        for (std::size_t k = 0; k < length; ++k) {
            password += static_cast<char32_t>(U'a' + rng() % 5);
        }
        std::vector<text_span> expected;
        for (std::size_t b = 0; b < password.size(); ++b) {
            for (std::size_t e = b + 1; e <= password.size(); ++e) {
                const std::u32string_view window(password.data() + b, e - b);
                const bool match = std::any_of(wide.begin(), wide.end(), [&](const auto& term) {
                    if (window.size() + 1 < term.size() || window.size() > term.size() + 1) {
                        return false;
                    }
                    const bool edge =
                        window.size() == term.size() + 1 &&
                        (window.substr(1) == term || window.substr(0, term.size()) == term);
                    return !edge && edit_distance(window, term) <= 1;
                });
                if (match) {
                    expected.push_back(
                        {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e)});
                }
            }
        }
        INFO(std::string(password.begin(), password.end()));
        REQUIRE(list.find(password) == expected);
    }
}

TEST_CASE("score: Microsoft's worked examples", "[policy][banned]") {
    const auto list = list_of({"contoso", "blank"});
    // contoso + blank + l + 2 = 4 < 5
    const auto rejected = verdict(&list, "C0ntos0Blank12");
    CHECK(rejected.score == 4);
    CHECK(rejected.refused);
    // contoso + blank + f + g + i = 5
    const auto accepted = verdict(&list, "ContoS0Bl@nkf9!");
    CHECK(accepted.score == 5);
    CHECK_FALSE(accepted.refused);
}

TEST_CASE("score: edge cases", "[policy][banned]") {
    const auto list = list_of({"contoso", "blank"});
    CHECK(verdict(&list, "contoso").score == 1);
    CHECK(verdict(&list, "contosocontosocontoso").score == 3);  // each occurrence counts
    CHECK(verdict(&list, "contosocontosocontoso").refused);
    CHECK(verdict(&list, "c0nt0s0").score == 1);
    CHECK(verdict(&list, "kontoso").score == 1);      // fuzzy
    CHECK(verdict(&list, "contoso2024").score == 5);  // 1 + 4
    CHECK_FALSE(verdict(&list, "contoso2024").refused);
    CHECK(verdict(&list, "contoso2024", 6).refused);  // the threshold is a setting
    CHECK(verdict(&list, "Contoso-Blank").score == 3);
    // Nothing banned: never refused, even when short (min_length is the length rule).
    const auto clean = verdict(&list, "xyz");
    CHECK(clean.score == 3);
    CHECK_FALSE(clean.refused);
    // No list: runs still count.
    CHECK(verdict(nullptr, "aaaaaaaaaaaa").refused);
    CHECK(verdict(nullptr, "aaaaaaaaaaaa").score == 1);
    CHECK(verdict(nullptr, "qwerty123456").score == 2);
    CHECK_FALSE(verdict(nullptr, "Sommar-stuga-1234").refused);  // 1 + 13 others
    // Long enough that no term could bring it under the threshold: not even looked for.
    const auto long_one = verdict(&list, "contosoblankcontosoblankcontosoblankcontosoblankzz");
    CHECK_FALSE(long_one.refused);
    CHECK(long_one.score >= 5);
}

TEST_CASE("score: the pruned search agrees with the full dynamic program", "[policy][banned]") {
    std::mt19937_64 rng(77);
    std::vector<std::string> terms;
    for (int i = 0; i < 60; ++i) {
        std::string t;
        const std::size_t length = 4 + rng() % 4;
        for (std::size_t k = 0; k < length; ++k) {
            t += static_cast<char>('a' + rng() % 4);
        }
        terms.push_back(t);
    }
    const std::vector<std::string_view> views(terms.begin(), terms.end());
    const auto list = banned_list::from_terms(views);
    std::size_t refused = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string password;
        const std::size_t length = 1 + rng() % 30;
        for (std::size_t k = 0; k < length; ++k) {
            password += "abcdeqwr1234"[rng() % (round % 2 == 0 ? 5 : 12)];
        }
        const std::size_t threshold = 2 + rng() % 6;
        const auto n = normalized(password);
        const auto runs = find_runs(folded(password), n);
        for (const auto* l : {&list, static_cast<const banned_list*>(nullptr)}) {
            const std::size_t full =
                entra_score(n.size(), l ? l->find(n) : std::vector<text_span>{}, runs);
            const auto v = evaluate_banned(l, folded(password), n, threshold);
            INFO(password << " threshold " << threshold << " full " << full);
            REQUIRE(v.refused == (full < threshold && full < n.size()));
            REQUIRE(v.score == std::min(full, threshold));
            refused += v.refused ? 1U : 0U;
        }
    }
    CHECK(refused > 100);
}

TEST_CASE("score: dynamic programming picks the lowest", "[policy][banned]") {
    CHECK(entra_score(0, {}, {}) == 0);
    CHECK(entra_score(6, {}, {}) == 6);
    const std::vector<text_span> overlapping{{0, 4}, {2, 8}, {4, 8}};
    CHECK(entra_score(8, overlapping, {}) == 2);  // [0,4) + [4,8)
    const std::vector<text_span> one{{2, 8}};
    CHECK(entra_score(8, one, {}) == 3);  // 2 characters + [2,8)
    // Any part of a run of at least 4 is a run: [0,3) is left for a term.
    const std::vector<text_span> term{{0, 3}};
    const std::vector<text_span> run{{1, 10}};
    CHECK(entra_score(10, term, run) == 2);
    CHECK(entra_score(10, {}, run) == 2);
    const std::vector<text_span> short_run{{0, 3}};
    CHECK(entra_score(3, {}, short_run) == 3);  // under 4 is not a run
}

TEST_CASE("runs: repeated, sequential and keyboard", "[policy][banned]") {
    using spans = std::vector<text_span>;
    CHECK(runs_of("aaaa") == spans{{0, 4}});
    CHECK(runs_of("xAaaAx") == spans{{1, 5}});
    CHECK(runs_of("!!!!!") == spans{{0, 5}});
    CHECK(runs_of("0o0O") == spans{{0, 4}});  // "oooo" once normalized
    CHECK(runs_of("aaa").empty());
    CHECK(runs_of("1234") == spans{{0, 4}});
    CHECK(runs_of("x98765x") == spans{{1, 6}});
    CHECK(runs_of("aBcD") == spans{{0, 4}});
    CHECK(runs_of("dcba") == spans{{0, 4}});
    CHECK(runs_of("89ab").empty());  // digits and letters are separate sequences
    CHECK(runs_of("1357").empty());
    CHECK(runs_of("abc").empty());
    CHECK(runs_of("qwerty") == spans{{0, 6}});
    CHECK(runs_of("QWER") == spans{{0, 4}});
    CHECK(runs_of("poiu") == spans{{0, 4}});
    CHECK(runs_of("asdf") == spans{{0, 4}});
    CHECK(runs_of("lkjh") == spans{{0, 4}});
    CHECK(runs_of("zxcvbn") == spans{{0, 6}});
    CHECK(runs_of("7890") == spans{{0, 4}});
    CHECK(runs_of("jkl\xC3\xB6") == spans{{0, 4}});   // jklö, Nordic row
    CHECK(runs_of("uiop\xC3\xA5") == spans{{0, 5}});  // uiopå
    CHECK(runs_of("qaz").empty());
    CHECK(runs_of("qwe").empty());
    CHECK(runs_of("op1a").empty());  // rows do not wrap
    CHECK(runs_of("abcd1234") == spans{{0, 4}, {4, 8}});
    CHECK(runs_of("correct horse battery staple").empty());
}

TEST_CASE("parse: comments, blank lines, normalization, counts", "[policy][banned]") {
    std::istringstream input(
        "\xEF\xBB\xBF# a comment\n"
        "contoso\r\n"
        "\n"
        "   \t\n"
        "  #indented comment\n"
        "  Blank  \n"
        "P@ssw0rd\n"
        "password\n"
        "abc\n"
        "ab1\n"
        "\xFF\xFEnot-utf8\n" +
        std::string(65, 'x') + "\n" + std::string(64, 'y') + "\n" +
        "c#sharp\n"
        "sommarstug\xC3\x85\n"
        "last-line-without-newline");
    const auto list = banned_list::parse(input);
    const auto& st = list.stats();
    CHECK(st.lines == 16);
    CHECK(st.terms == 7);
    CHECK(st.duplicates == 1);
    CHECK(st.too_short == 2);
    CHECK(st.too_long == 1);
    CHECK(st.invalid_utf8 == 1);
    std::vector<std::string> terms;
    for (std::size_t i = 0; i < list.size(); ++i) {
        terms.emplace_back(list.term(i));
    }
    CHECK(terms == std::vector<std::string>{"blank", "c#sharp", "contoso",
                                            "last-line-without-newline", "password",
                                            "sommarstug\xC3\xA5", std::string(64, 'y')});
    CHECK(list.longest_term() == 64);
    CHECK(list.matches(normalized("P4ssword")));
    CHECK_FALSE(list.matches(normalized("# a comment")));
}

TEST_CASE("load: an unreadable file is an error naming it", "[policy][banned]") {
    const temp_dir dir;
    const auto missing = dir / "missing.txt";
    try {
        (void)banned_list::load(missing);
        FAIL("no error");
    } catch (const policy_error& e) {
        CHECK_THAT(e.what(), Catch::Contains(missing.string()));
    }
    const auto folder = dir / "folder";
    fs::create_directory(folder);
    CHECK_THROWS_AS(banned_list::load(folder), policy_error);
    const auto good = dir / "good.txt";
    std::ofstream(good) << "contoso\nblank\n";
    CHECK(banned_list::load(good).size() == 2);
    if (::geteuid() != 0) {
        fs::permissions(good, fs::perms::none);
        CHECK_THROWS_WITH(banned_list::load(good), Catch::Contains(good.string()));
    }
}

TEST_CASE("a 1,000,000-term index finds every term and no stranger", "[policy][banned][slow]") {
    std::mt19937_64 rng(1);
    std::vector<std::string> terms;
    std::unordered_set<std::string> set;
    terms.reserve(1'000'000);
    set.reserve(1'000'000);
    while (terms.size() < 1'000'000) {
        auto w = pronounceable(rng);
        if (set.insert(w).second) {
            terms.push_back(std::move(w));
        }
    }
    const std::vector<std::string_view> views(terms.begin(), terms.end());
    const auto list = banned_list::from_terms(views);
    REQUIRE(list.size() == 1'000'000);

    std::size_t missed = 0;
    for (const auto& t : terms) {
        missed += list.matches(std::u32string(t.begin(), t.end())) ? 0U : 1U;
    }
    CHECK(missed == 0);

    // Random pronounceable words of another seed against a reference that spells out every
    // word within one edit (over the generator's letters) and looks it up.
    constexpr std::string_view letters = "bcdfghjklmnprstvwzaeiouy";
    const auto near_a_term = [&](const std::string& w) {
        if (set.count(w) != 0) {
            return true;
        }
        for (std::size_t i = 0; i <= w.size(); ++i) {
            for (const char c : letters) {
                if (set.count(w.substr(0, i) + c + w.substr(i)) != 0 ||
                    (i < w.size() && set.count(w.substr(0, i) + c + w.substr(i + 1)) != 0)) {
                    return true;
                }
            }
            if (i < w.size() && set.count(w.substr(0, i) + w.substr(i + 1)) != 0) {
                return true;
            }
        }
        return false;
    };
    std::mt19937_64 other(2);
    std::size_t hits = 0;
    std::size_t strangers = 0;
    for (int i = 0; i < 20'000; ++i) {
        auto w = pronounceable(other);
        if (i % 2 == 0) {
            w += 'q';
        }
        const bool expected = near_a_term(w);
        INFO(w);
        REQUIRE(list.matches(std::u32string(w.begin(), w.end())) == expected);
        (expected ? hits : strangers) += 1;
    }
    CHECK(hits > 0);
    CHECK(strangers > 0);
    // Inside a password, with one edit: find() reports the window (the lookups it skips
    // by the beginning/end filter must never hide one).
    std::mt19937_64 edits(3);
    for (int i = 0; i < 3000; ++i) {
        std::string t = terms[edits() % terms.size()];
        const std::size_t at = edits() % t.size();
        switch (i % 3) {
            case 0:
                t[at] = letters[edits() % letters.size()];
                break;
            case 1:
                t.insert(at + 1 == t.size() ? at : at + 1, 1, 'q');
                break;
            default:
                t.erase(at, 1);
                break;
        }
        const std::string password = "2#" + t + "6%";
        const auto found = list.find(std::u32string(password.begin(), password.end()));
        INFO(password);
        CHECK(std::find(found.begin(), found.end(),
                        text_span{2, static_cast<std::uint32_t>(2 + t.size())}) != found.end());
    }
    // Digits 2 and 6 are not normalized, so these are at least 2 edits from every term.
    for (int i = 0; i < 1000; ++i) {
        auto w = pronounceable(other);
        w.insert(1, "2");
        w.insert(w.size() - 1, "6");
        CHECK_FALSE(list.matches(std::u32string(w.begin(), w.end())));
    }
}
