#include "common/audit_chain.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace chain = pwresetd::audit_chain;
using pwresetd::testing::temp_dir;

namespace {

// A trail as the daemon writes it: a chain record, then `events` event lines.
struct trail {
    std::vector<std::string> lines;
    std::string text() const {
        std::string out;
        for (const auto& l : lines) {
            out += l;
            out += '\n';
        }
        return out;
    }
    std::string last_hash() const { return chain::line_hash(lines.back()); }
    std::uint64_t last_seq() const { return chain::parse_line(lines.back())->seq; }
};

trail make_trail(std::size_t events, std::string prev = std::string(chain::genesis_prev),
                 std::uint64_t first_seq = 1) {
    trail t;
    std::uint64_t seq = first_seq;
    boost::json::object start{{"event", chain::chain_event}, {"reason", "new"}};
    t.lines.push_back(chain::format_line("2026-12-03T10:00:00.000Z", seq, prev, start));
    for (std::size_t i = 0; i < events; ++i) {
        prev = chain::line_hash(t.lines.back());
        ++seq;
        boost::json::object event{{"event", "reset.complete"},
                                  {"username", "user" + std::to_string(i)},
                                  {"outcome", "ok"}};
        t.lines.push_back(chain::format_line("2026-12-03T10:00:01.000Z", seq, prev, event));
    }
    return t;
}

chain::chain_report verify_texts(const std::vector<std::pair<std::string, std::string>>& files) {
    std::vector<chain::audit_text> in;
    in.reserve(files.size());
    for (const auto& [name, text] : files) {
        in.push_back({name, text});
    }
    return chain::verify(in);
}

chain::chain_problem problem_of(const chain::chain_report& r) {
    REQUIRE(r.problem.has_value());
    return *r.problem;
}

std::string without_line(const trail& t, std::size_t index) {
    trail copy = t;
    copy.lines.erase(copy.lines.begin() + static_cast<std::ptrdiff_t>(index));
    return copy.text();
}

}  // namespace

TEST_CASE("a line's hash is the SHA-256 of its bytes without the newline", "[audit_chain]") {
    CHECK(chain::line_hash("{\"a\":1}") == pwresetd::crypto::sha256_hex("{\"a\":1}"));
    CHECK(chain::line_hash("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(chain::genesis_prev == std::string(64, '0'));
}

TEST_CASE("format_line puts time, seq and prev first and keeps them its own", "[audit_chain]") {
    const std::string prev(64, 'a');
    boost::json::object fields{{"event", "x"}, {"prev", "forged"}, {"seq", 99}, {"user", "bob"}};
    const std::string line = chain::format_line("2026-12-03T10:00:00.000Z", 7, prev, fields);
    CHECK(line == "{\"time\":\"2026-12-03T10:00:00.000Z\",\"seq\":7,\"prev\":\"" + prev +
                      "\",\"event\":\"x\",\"user\":\"bob\"}");
    const auto parsed = chain::parse_line(line);
    REQUIRE(parsed);
    CHECK(parsed->seq == 7);
    CHECK(parsed->prev == prev);
    CHECK(parsed->event == "x");
}

TEST_CASE("parse_line wants a JSON object with seq and 64 lowercase hex in prev", "[audit_chain]") {
    const std::string good(64, 'f');
    CHECK(chain::parse_line("{\"seq\":1,\"prev\":\"" + good + "\"}"));
    CHECK_FALSE(chain::parse_line(""));
    CHECK_FALSE(chain::parse_line("not json"));
    CHECK_FALSE(chain::parse_line("[1,2]"));
    CHECK_FALSE(chain::parse_line("{\"seq\":1}"));
    CHECK_FALSE(chain::parse_line("{\"seq\":-1,\"prev\":\"" + good + "\"}"));
    CHECK_FALSE(chain::parse_line("{\"seq\":1,\"prev\":\"" + std::string(64, 'F') + "\"}"));
    CHECK_FALSE(chain::parse_line("{\"seq\":1,\"prev\":\"" + std::string(63, 'f') + "\"}"));
    CHECK_FALSE(chain::parse_line("{\"seq\":\"1\",\"prev\":\"" + good + "\"}"));
}

TEST_CASE("an intact trail verifies, one file or several", "[audit_chain]") {
    const trail a = make_trail(9);
    SECTION("one file") {
        const auto r = verify_texts({{"audit.jsonl", a.text()}});
        CHECK_FALSE(r.problem);
        CHECK(r.total_lines == 10);
        CHECK(r.first_prev == chain::genesis_prev);
        CHECK(r.last.hash == a.last_hash());
        CHECK(r.last.seq == 10);
    }
    SECTION("rotated: the next file begins with a chain record naming the last hash") {
        const trail b = make_trail(4, a.last_hash(), a.last_seq() + 1);
        const trail c = make_trail(2, b.last_hash(), b.last_seq() + 1);
        const auto r =
            verify_texts({{"a", a.text()}, {"empty", ""}, {"b", b.text()}, {"c", c.text()}});
        CHECK_FALSE(r.problem);
        CHECK(r.lines == std::vector<std::uint64_t>{10, 0, 5, 3});
        CHECK(r.total_lines == 18);
        CHECK(r.last.hash == c.last_hash());
    }
    SECTION("a later file alone verifies and says where it links to") {
        const trail b = make_trail(4, a.last_hash(), a.last_seq() + 1);
        const auto r = verify_texts({{"b", b.text()}});
        CHECK_FALSE(r.problem);
        CHECK(r.first_prev == a.last_hash());
    }
}

TEST_CASE("verify names the first edited, deleted or reordered line", "[audit_chain]") {
    const trail t = make_trail(9);  // lines 1..10; index i is line i+1

    SECTION("an edited line") {
        trail edited = t;
        const auto at = edited.lines[4].find("user3");
        REQUIRE(at != std::string::npos);
        edited.lines[4].replace(at, 5, "mallo");
        const auto p = problem_of(verify_texts({{"audit.jsonl", edited.text()}}));
        CHECK(p.kind == chain::problem_kind::edited);
        CHECK(p.line == 5);
        CHECK(p.detail.find("audit.jsonl:5") != std::string::npos);
    }
    SECTION("a deleted line") {
        const auto p = problem_of(verify_texts({{"audit.jsonl", without_line(t, 4)}}));
        CHECK(p.kind == chain::problem_kind::deleted);
        CHECK(p.line == 5);
        CHECK(p.detail.find("1 line deleted") != std::string::npos);
    }
    SECTION("two deleted lines") {
        trail cut = t;
        cut.lines.erase(cut.lines.begin() + 3, cut.lines.begin() + 5);
        const auto p = problem_of(verify_texts({{"f", cut.text()}}));
        CHECK(p.kind == chain::problem_kind::deleted);
        CHECK(p.line == 4);
        CHECK(p.detail.find("2 lines deleted") != std::string::npos);
    }
    SECTION("two lines swapped") {
        trail swapped = t;
        std::swap(swapped.lines[5], swapped.lines[6]);
        const auto p = problem_of(verify_texts({{"f", swapped.text()}}));
        CHECK(p.kind == chain::problem_kind::reordered);
        CHECK(p.line == 6);
        CHECK(p.detail.find("f:7") != std::string::npos);
    }
    SECTION("a line moved back") {
        trail moved = t;
        const std::string line = moved.lines[2];
        moved.lines.erase(moved.lines.begin() + 2);
        moved.lines.insert(moved.lines.begin() + 7, line);
        const auto p = problem_of(verify_texts({{"f", moved.text()}}));
        CHECK(p.kind == chain::problem_kind::reordered);
        CHECK(p.line == 3);
    }
    SECTION("a copied line") {
        trail copied = t;
        copied.lines.insert(copied.lines.begin() + 8, copied.lines[3]);
        const auto p = problem_of(verify_texts({{"f", copied.text()}}));
        CHECK(p.kind == chain::problem_kind::duplicated);
        CHECK(p.line == 9);
        CHECK(p.detail.find("f:4") != std::string::npos);
    }
    SECTION("the first line deleted") {
        const auto p = problem_of(verify_texts({{"f", without_line(t, 0)}}));
        CHECK(p.kind == chain::problem_kind::not_chain_start);
        CHECK(p.line == 1);
    }
    SECTION("a truncated last line") {
        std::string text = t.text();
        text.resize(text.size() - 20);
        const auto p = problem_of(verify_texts({{"f", text}}));
        CHECK(p.kind == chain::problem_kind::truncated);
        CHECK(p.line == 10);
    }
    SECTION("only the newline of the last line missing") {
        std::string text = t.text();
        text.pop_back();
        const auto p = problem_of(verify_texts({{"f", text}}));
        CHECK(p.kind == chain::problem_kind::truncated);
        CHECK(p.line == 10);
    }
    SECTION("a line cut short and glued to the next") {
        trail glued = t;
        glued.lines[3] = glued.lines[3].substr(0, 30) + glued.lines[4];
        glued.lines.erase(glued.lines.begin() + 4);
        const auto p = problem_of(verify_texts({{"f", glued.text()}}));
        CHECK(p.kind == chain::problem_kind::garbled);
        CHECK(p.line == 4);
    }
    SECTION("an empty line") {
        trail blank = t;
        blank.lines.insert(blank.lines.begin() + 2, "");
        const auto p = problem_of(verify_texts({{"f", blank.text()}}));
        CHECK(p.kind == chain::problem_kind::garbled);
        CHECK(p.line == 3);
    }
    SECTION("a line without the chain fields") {
        trail plain = t;
        plain.lines[6] = R"({"time":"2026-12-03T10:00:01.000Z","event":"reset.complete"})";
        const auto p = problem_of(verify_texts({{"f", plain.text()}}));
        CHECK(p.kind == chain::problem_kind::unchained);
        CHECK(p.line == 7);
    }
    SECTION("the last line edited is not seen: nothing follows it") {
        trail last = t;
        last.lines.back().replace(last.lines.back().find("user8"), 5, "userX");
        const auto r = verify_texts({{"f", last.text()}});
        CHECK_FALSE(r.problem);
        CHECK(r.last.hash != t.last_hash());  // only a copy of the last hash shows it
    }
}

TEST_CASE("verify checks the links between files", "[audit_chain]") {
    const trail a = make_trail(5);
    const trail b = make_trail(5, a.last_hash(), a.last_seq() + 1);
    const trail c = make_trail(5, b.last_hash(), b.last_seq() + 1);

    SECTION("files given in the wrong order") {
        const auto p = problem_of(verify_texts({{"b", b.text()}, {"a", a.text()}}));
        CHECK(p.kind == chain::problem_kind::reordered);
        CHECK(p.file == 1);
        CHECK(p.line == 1);
    }
    SECTION("the last line of the older file deleted") {
        const auto p =
            problem_of(verify_texts({{"a", without_line(a, a.lines.size() - 1)}, {"b", b.text()}}));
        CHECK(p.kind == chain::problem_kind::deleted);
        CHECK(p.file == 1);
        CHECK(p.line == 1);
        CHECK(p.detail.find("end of a") != std::string::npos);
    }
    SECTION("the last line of the older file edited") {
        trail edited = a;
        edited.lines.back().replace(edited.lines.back().find("user4"), 5, "userX");
        const auto p = problem_of(verify_texts({{"a", edited.text()}, {"b", b.text()}}));
        CHECK(p.kind == chain::problem_kind::edited);
        CHECK(p.file == 0);
        CHECK(p.line == a.lines.size());
    }
    SECTION("a file missing in between") {
        const auto p = problem_of(verify_texts({{"a", a.text()}, {"c", c.text()}}));
        CHECK(p.kind == chain::problem_kind::deleted);
        CHECK(p.file == 1);
        CHECK(p.detail.find("6 lines missing") != std::string::npos);
    }
    SECTION("a file that starts a new trail") {
        const trail fresh = make_trail(3, std::string(chain::genesis_prev), a.last_seq() + 1);
        const auto p = problem_of(verify_texts({{"a", a.text()}, {"fresh", fresh.text()}}));
        CHECK(p.kind == chain::problem_kind::broken_link);
        CHECK(p.file == 1);
        CHECK(p.line == 1);
    }
    SECTION("a problem inside the later file is named in that file") {
        const auto p = problem_of(verify_texts({{"a", a.text()}, {"b", without_line(b, 2)}}));
        CHECK(p.kind == chain::problem_kind::deleted);
        CHECK(p.file == 1);
        CHECK(p.line == 3);
    }
}

TEST_CASE("read_tail finds where a file's chain stands", "[audit_chain]") {
    const temp_dir dir("pwresetd-audit-chain");
    const auto tail_of = [&](const std::string& bytes) {
        pwresetd::testing::write_file(dir / "f", bytes);
        const int fd = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        auto tail = chain::read_tail(fd);
        ::close(fd);
        return tail;
    };
    using state = chain::file_tail::state;
    const trail t = make_trail(3);

    CHECK(tail_of("").what == state::empty);
    const auto chained = tail_of(t.text());
    CHECK(chained.what == state::chained);
    CHECK(chained.hash == t.last_hash());
    CHECK(chained.seq == 4);

    const auto one_line = tail_of(t.lines[0] + "\n");
    CHECK(one_line.what == state::chained);
    CHECK(one_line.hash == chain::line_hash(t.lines[0]));

    const auto legacy = tail_of(t.text() + "{\"event\":\"old\"}\n");
    CHECK(legacy.what == state::unchained);
    CHECK(legacy.hash == chain::line_hash("{\"event\":\"old\"}"));

    const auto torn = tail_of(t.text() + "{\"time\":\"2026");
    CHECK(torn.what == state::incomplete);
    CHECK_FALSE(torn.ends_with_newline);
    CHECK(torn.hash == chain::line_hash("{\"time\":\"2026"));

    // A last line longer than one read chunk (64 KiB).
    boost::json::object big{{"event", "x"}, {"note", std::string(200000, 'n')}};
    const std::string long_line = chain::format_line("t", 5, t.last_hash(), big);
    const auto long_tail = tail_of(t.text() + long_line + "\n");
    CHECK(long_tail.what == state::chained);
    CHECK(long_tail.hash == chain::line_hash(long_line));

    const auto huge = tail_of(t.text() + std::string(chain::max_tail_line + 10, 'x') + "\n");
    CHECK(huge.what == state::too_long);
    CHECK(huge.ends_with_newline);
}

namespace {

// `t` with line index `at` replaced by `bad` and a chain record linking to it right after,
// as the daemon writes it when it starts on a file whose last line is torn (seq from 1).
trail bridged_at(const trail& t, std::size_t at, const std::string& bad, std::string reason) {
    trail out;
    out.lines.assign(t.lines.begin(), t.lines.begin() + static_cast<std::ptrdiff_t>(at));
    out.lines.push_back(bad);
    boost::json::object start{{"event", chain::chain_event},
                              {"reason", std::move(reason)},
                              {"previous_file", "audit.jsonl"}};
    out.lines.push_back(
        chain::format_line("2026-12-03T11:00:00.000Z", 1, chain::line_hash(bad), start));
    for (std::size_t i = 0; i < 6; ++i) {
        boost::json::object event{{"event", "reset.complete"},
                                  {"username", "after" + std::to_string(i)}};
        out.lines.push_back(chain::format_line("2026-12-03T11:00:01.000Z", i + 2,
                                               chain::line_hash(out.lines.back()), event));
    }
    return out;
}

const std::string torn_line = R"({"time":"2026-12-03T10:00:01.000Z","seq":4,"pr)";

}  // namespace

TEST_CASE("a torn line bridged by a chain record is reported as bridged, and verify goes on",
          "[audit_chain]") {
    const trail t = bridged_at(make_trail(4), 3, torn_line, "incomplete_tail");  // torn: line 4

    SECTION("nothing else wrong: one bridged problem, every chained line checked") {
        const auto r = verify_texts({{"f", t.text()}});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::garbled);
        CHECK(r.problem->line == 4);
        CHECK(r.problem->bridged);
        CHECK(r.problem->detail.find("bridged: f:5, a chain record (incomplete_tail)") !=
              std::string::npos);
        CHECK(r.only_bridged());
        CHECK(r.problem_count == 1);
        CHECK(r.total_lines == t.lines.size() - 1);
        CHECK(r.last.hash == t.last_hash());
    }
    SECTION("a line deleted after the bridge is the verdict, and named") {
        const auto r = verify_texts({{"f", without_line(t, 7)}});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::deleted);
        CHECK(r.problem->line == 8);
        CHECK_FALSE(r.problem->bridged);
        CHECK_FALSE(r.only_bridged());
        REQUIRE(r.problems.size() == 2);
        CHECK(r.problems[0].bridged);
        CHECK(r.problems[0].line == 4);
    }
    SECTION("a line edited after the bridge") {
        trail edited = t;
        edited.lines[6].replace(edited.lines[6].find("after1"), 6, "mallor");
        const auto r = verify_texts({{"f", edited.text()}});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::edited);
        CHECK(r.problem->line == 7);
        CHECK(r.problem_count == 2);
    }
    SECTION("a line deleted before the torn line is still found when a line links across") {
        const auto r = verify_texts({{"f", without_line(t, 1)}});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::deleted);
        CHECK(r.problem->line == 2);
        CHECK_FALSE(r.only_bridged());
    }
    SECTION("the bridge record edited after it was written is found") {
        trail edited = t;
        edited.lines[4].replace(edited.lines[4].find("incomplete_tail"), 15, "unchained_tail!");
        const auto r = verify_texts({{"f", edited.text()}});
        REQUIRE(r.problem);
        CHECK_FALSE(r.only_bridged());
        CHECK(r.problem->kind == chain::problem_kind::edited);
        CHECK(r.problem->line == 5);
    }
    SECTION("a torn line with a plain line after it, not a chain record, is not bridged") {
        trail plain = t;
        plain.lines.erase(plain.lines.begin() + 4);  // the chain record
        const auto r = verify_texts({{"f", plain.text()}});
        REQUIRE(r.problem);
        CHECK_FALSE(r.only_bridged());
        CHECK(r.problem->line == 4);
        CHECK_FALSE(r.problem->bridged);
    }
    SECTION("two bridged lines, in two files") {
        const trail second =
            bridged_at(t, 8, "{\"event\":\"from before the chain\"}", "unchained_tail");
        const trail next = make_trail(2, second.last_hash(), second.last_seq() + 1);
        const auto r = verify_texts({{"a", second.text()}, {"b", next.text()}});
        CHECK(r.only_bridged());
        REQUIRE(r.problems.size() == 2);
        CHECK(r.problems[1].kind == chain::problem_kind::unchained);
        CHECK(r.problems[1].detail.find("(unchained_tail)") != std::string::npos);
        CHECK(r.last.hash == next.last_hash());
    }
}

TEST_CASE("verify goes on after any problem and reports each", "[audit_chain]") {
    const trail t = make_trail(12);
    SECTION("an edit and a later deletion") {
        trail both = t;
        both.lines[3].replace(both.lines[3].find("user2"), 5, "userX");
        both.lines.erase(both.lines.begin() + 9);
        const auto r = verify_texts({{"f", both.text()}});
        REQUIRE(r.problems.size() == 2);
        CHECK(r.problems[0].kind == chain::problem_kind::edited);
        CHECK(r.problems[0].line == 4);
        CHECK(r.problems[1].kind == chain::problem_kind::deleted);
        CHECK(r.problems[1].line == 10);
        CHECK(r.problem->line == 4);  // the first is the verdict
    }
    SECTION("a garbled line inserted between two lines that still link") {
        trail inserted = t;
        inserted.lines.insert(inserted.lines.begin() + 5, "not json");
        const auto r = verify_texts({{"f", inserted.text()}});
        REQUIRE(r.problems.size() == 1);
        CHECK(r.problem->kind == chain::problem_kind::garbled);
        CHECK(r.problem->line == 6);
        CHECK_FALSE(r.problem->bridged);
    }
    SECTION("a line changed into garbage") {
        trail garbage = t;
        garbage.lines[5] = "{\"garbage";
        const auto r = verify_texts({{"f", garbage.text()}});
        REQUIRE(r.problems.size() == 1);
        CHECK(r.problem->line == 6);
        CHECK(r.problem->detail.find("f:7 does not link to it") != std::string::npos);
    }
    SECTION("a garbled line and lines deleted after it") {
        trail cut = t;
        cut.lines[5] = "{\"garbage";
        cut.lines.erase(cut.lines.begin() + 6, cut.lines.begin() + 8);
        const auto r = verify_texts({{"f", cut.text()}});
        REQUIRE(r.problems.size() == 2);
        CHECK(r.problems[1].kind == chain::problem_kind::deleted);
        CHECK(r.problems[1].line == 7);
    }
}

TEST_CASE("verify of nothing at all is a problem: no chain start", "[audit_chain]") {
    for (const auto& files : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {{"f", ""}}, {{"a", ""}, {"b", ""}}}) {
        const auto r = verify_texts(files);
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::empty);
        CHECK(r.problem->file == 0);
        CHECK(r.problem->detail.find("no chain start") != std::string::npos);
        CHECK_FALSE(r.only_bridged());
    }
    // An empty file beside lines is a rotation with nothing written yet: fine.
    const trail t = make_trail(2);
    CHECK_FALSE(verify_texts({{"a", t.text()}, {"b", ""}}).problem);
}

TEST_CASE("a field that is not UTF-8 is bytes: hashed and verified, not garbled", "[audit_chain]") {
    trail t = make_trail(1);
    // What the daemon writes for a value with bytes that are not UTF-8: Boost.JSON copies them.
    boost::json::object event{{"event", "reset.start"},
                              {"username", std::string("caf\xE9\xFF", 5)}};
    t.lines.push_back(
        chain::format_line("2026-12-03T10:00:02.000Z", 3, t.last_hash(), std::move(event)));
    REQUIRE(t.lines.back().find("caf\xE9\xFF") != std::string::npos);
    const auto parsed = chain::parse_line(t.lines.back());
    REQUIRE(parsed);
    CHECK(parsed->event == "reset.start");
    t.lines.push_back(chain::format_line("2026-12-03T10:00:03.000Z", 4, t.last_hash(),
                                         boost::json::object{{"event", "x"}}));
    const auto r = verify_texts({{"f", t.text()}});
    CHECK_FALSE(r.problem);
    CHECK(r.total_lines == 4);
    // ...and an edit of those bytes is still found.
    trail edited = t;
    edited.lines[2][edited.lines[2].find('\xFF')] = '\xFE';
    const auto e = verify_texts({{"f", edited.text()}});
    REQUIRE(e.problem);
    CHECK(e.problem->kind == chain::problem_kind::edited);
    CHECK(e.problem->line == 3);
}

TEST_CASE("a line cut short after its prev still links to the line before it", "[audit_chain]") {
    const trail base = make_trail(4);
    // The daemon's next line (seq 6), cut 20 bytes after its prev.
    const std::string whole =
        chain::format_line("2026-12-03T10:00:02.000Z", 6, base.last_hash(),
                           boost::json::object{{"event", "reset.complete"}, {"username", "zed"}});
    const std::string cut = whole.substr(0, whole.find("\"event\"") + 5);
    const trail t = bridged_at(base, base.lines.size(), cut, "incomplete_tail");

    SECTION("intact: bridged, and the link before the cut is checked") {
        const auto r = verify_texts({{"f", t.text()}});
        CHECK(r.only_bridged());
        REQUIRE(r.problem);
        CHECK(r.problem->line == 6);
        CHECK(r.problem->detail.find("cut short after its prev, which links to f:5") !=
              std::string::npos);
    }
    SECTION("the line right before the cut line deleted: found") {
        const auto r = verify_texts({{"f", without_line(t, 4)}});
        CHECK_FALSE(r.only_bridged());
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::deleted);
        CHECK(r.problem->line == 5);
    }
    SECTION("the line right before the cut line edited: found") {
        trail edited = t;
        edited.lines[4].replace(edited.lines[4].find("user3"), 5, "userX");
        const auto r = verify_texts({{"f", edited.text()}});
        CHECK_FALSE(r.only_bridged());
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::edited);
        CHECK(r.problem->line == 5);
    }
    SECTION("cut inside prev: nothing to check, the torn line is still reported") {
        const std::string short_cut = whole.substr(0, whole.find("\"prev\"") + 20);
        const trail s = bridged_at(base, base.lines.size(), short_cut, "incomplete_tail");
        const auto r = verify_texts({{"f", without_line(s, 4)}});
        CHECK(r.only_bridged());  // the documented limit: the line before is unprotected
        CHECK(r.problem->line == 5);
    }
}
