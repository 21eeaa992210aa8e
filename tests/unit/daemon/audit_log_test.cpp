#include "daemon/audit_log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/audit_chain.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace chain = pwresetd::audit_chain;
using pwresetd::daemon::audit_log;
using pwresetd::testing::read_file;
using pwresetd::testing::temp_dir;
using pwresetd::testing::write_file;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        REQUIRE(nl != std::string::npos);  // every line the log writes ends with "\n"
        out.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

boost::json::object object_of(const std::string& line) {
    return boost::json::parse(line).as_object();
}

// A field as text: a string's value, anything else serialized; "" when absent.
std::string field(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        return "";
    }
    return v->is_string() ? std::string(v->get_string()) : boost::json::serialize(*v);
}

void add(audit_log& log, const std::string& user) {
    log.record(boost::json::object{{"event", "reset.complete"}, {"username", user}});
}

chain::chain_report verify_files(const std::vector<std::filesystem::path>& paths) {
    std::vector<std::string> texts;
    texts.reserve(paths.size());
    for (const auto& p : paths) {
        texts.push_back(read_file(p));
    }
    std::vector<chain::audit_text> in;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        in.push_back({paths[i].filename().string(), texts[i]});
    }
    return chain::verify(in);
}

void check_intact(const std::vector<std::filesystem::path>& paths, std::uint64_t lines) {
    const auto r = verify_files(paths);
    INFO((r.problem ? r.problem->detail : std::string("no problem")));
    CHECK_FALSE(r.problem);
    CHECK(r.total_lines == lines);
}

}  // namespace

TEST_CASE("a new audit file begins the trail with a chain record", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    {
        audit_log log(file);
        add(log, "alice");
        add(log, "bob");
        CHECK(log.head().seq == 3);
    }
    const auto lines = lines_of(read_file(file));
    REQUIRE(lines.size() == 3);
    const auto first = object_of(lines[0]);
    CHECK(field(first, "event") == chain::chain_event);
    CHECK(field(first, "reason") == "new");
    CHECK(field(first, "prev") == chain::genesis_prev);
    CHECK(field(first, "seq") == "1");
    CHECK(lines[0].starts_with("{\"time\":\""));
    const auto second = object_of(lines[1]);
    CHECK(field(second, "prev") == chain::line_hash(lines[0]));
    CHECK(field(second, "username") == "alice");
    CHECK(field(object_of(lines[2]), "prev") == chain::line_hash(lines[1]));
    check_intact({file}, 3);
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777U) == 0640U);
}

TEST_CASE("a restart continues the file from its last line", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    {
        audit_log log(file);
        add(log, "alice");
    }
    std::string last_before;
    {
        last_before = lines_of(read_file(file)).back();
        audit_log log(file);
        CHECK(log.head().hash == chain::line_hash(last_before));
        add(log, "bob");
        add(log, "carol");
    }
    const auto lines = lines_of(read_file(file));
    REQUIRE(lines.size() == 4);  // no second chain record
    CHECK(field(object_of(lines[2]), "prev") == chain::line_hash(last_before));
    CHECK(field(object_of(lines[2]), "seq") == "3");
    check_intact({file}, 4);
}

TEST_CASE("rotation by rename: the new file links to the old one's last line", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    const auto rotated = dir / "audit.jsonl.1";
    audit_log log(file);
    add(log, "alice");
    add(log, "bob");

    SECTION("logrotate's create: a new empty file at the path") {
        std::filesystem::rename(file, rotated);
        write_file(file, "");
        add(log, "carol");
        add(log, "dave");
    }
    SECTION("nothing at the path yet: the old file takes the line until the new one appears") {
        std::filesystem::rename(file, rotated);
        add(log, "carol");
        CHECK_FALSE(std::filesystem::exists(file));
        CHECK(lines_of(read_file(rotated)).size() == 4);
        write_file(file, "");
        add(log, "dave");
    }
    const auto old_lines = lines_of(read_file(rotated));
    const auto new_lines = lines_of(read_file(file));
    REQUIRE_FALSE(new_lines.empty());
    const auto first = object_of(new_lines[0]);
    CHECK(field(first, "event") == chain::chain_event);
    CHECK(field(first, "reason") == "rotated");
    CHECK(field(first, "previous_file") == rotated.string());
    CHECK(field(first, "prev") == chain::line_hash(old_lines.back()));
    CHECK(old_lines.size() + new_lines.size() == 6);
    check_intact({rotated, file}, 6);
    // Each file alone is intact too; the newer one says it continues an earlier file.
    check_intact({rotated}, old_lines.size());
    CHECK(verify_files({file}).first_prev == chain::line_hash(old_lines.back()));
    // The link is checked: the files the other way round are refused.
    const auto swapped = verify_files({file, rotated});
    REQUIRE(swapped.problem);
    CHECK(swapped.problem->kind == chain::problem_kind::reordered);
}

TEST_CASE("a deleted audit file is replaced at once, linked to what was written", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    audit_log log(file);
    add(log, "alice");
    const auto head = log.head();
    std::filesystem::remove(file);
    add(log, "bob");
    const auto lines = lines_of(read_file(file));
    REQUIRE(lines.size() == 2);
    CHECK(field(object_of(lines[0]), "reason") == "replaced");
    CHECK(field(object_of(lines[0]), "prev") == head.hash);
    CHECK(field(object_of(lines[1]), "username") == "bob");
}

TEST_CASE("a restart after a rotation it did not see continues the rotated copy", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    {
        audit_log log(file);
        add(log, "alice");
    }
    std::filesystem::rename(file, dir / "audit.jsonl.1");
    write_file(file, "");  // logrotate's create while the daemon was stopped
    {
        audit_log log(file);
        add(log, "bob");
    }
    const auto first = object_of(lines_of(read_file(file)).front());
    CHECK(field(first, "reason") == "rotated");
    CHECK(field(first, "previous_file") == (dir / "audit.jsonl.1").string());
    check_intact({dir / "audit.jsonl.1", file}, 4);
}

TEST_CASE("a damaged last line is bridged, not fatal", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    {
        audit_log log(file);
        add(log, "alice");
    }
    const std::string intact = read_file(file);

    SECTION("a torn last line (no newline) is ended and linked to") {
        const std::string torn = R"({"time":"2026-12-03T10:00:00.0)";
        write_file(file, intact + torn);
        {
            audit_log log(file);
            add(log, "bob");
        }
        const auto lines = lines_of(read_file(file));
        REQUIRE(lines.size() == 5);
        CHECK(lines[2] == torn);
        const auto bridge = object_of(lines[3]);
        CHECK(field(bridge, "event") == chain::chain_event);
        CHECK(field(bridge, "reason") == "incomplete_tail");
        CHECK(field(bridge, "prev") == chain::line_hash(torn));
        CHECK(field(object_of(lines[4]), "prev") == chain::line_hash(lines[3]));
        // verify still reports the damage, at the torn line
        const auto r = verify_files({file});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::garbled);
        CHECK(r.problem->line == 3);
    }
    SECTION("a last line written before the chain existed") {
        const std::string legacy = R"({"time":"2026-01-01T00:00:00.000Z","event":"old"})";
        write_file(file, intact + legacy + "\n");
        {
            audit_log log(file);
            add(log, "bob");
        }
        const auto lines = lines_of(read_file(file));
        REQUIRE(lines.size() == 5);
        CHECK(field(object_of(lines[3]), "reason") == "unchained_tail");
        CHECK(field(object_of(lines[3]), "prev") == chain::line_hash(legacy));
        const auto r = verify_files({file});
        REQUIRE(r.problem);
        CHECK(r.problem->kind == chain::problem_kind::unchained);
        CHECK(r.problem->line == 3);
    }
}

TEST_CASE("records from many threads form one intact chain", "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    constexpr int threads = 4;
    constexpr int per_thread = 250;
    {
        audit_log log(file);
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&log, t] {
                for (int i = 0; i < per_thread; ++i) {
                    add(log, "u" + std::to_string(t) + "-" + std::to_string(i));
                }
            });
        }
        for (auto& w : workers) {
            w.join();
        }
    }
    check_intact({file}, threads * per_thread + 1);
}

TEST_CASE("a new audit file is 0640 whatever the umask; an existing one keeps its mode",
          "[audit_log]") {
    const temp_dir dir("pwresetd-audit-log");
    const auto file = dir / "audit.jsonl";
    const mode_t old_mask = ::umask(077);  // the unit's UMask=
    { const audit_log log(file); }
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777U) == 0640U);
    REQUIRE(::chmod(file.c_str(), 0600) == 0);
    { const audit_log log(file); }
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777U) == 0600U);
    ::umask(old_mask);
}
