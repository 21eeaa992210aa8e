#include "common/log.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace plog = pwresetd::log;

TEST_CASE("log lines are key=value with hostile values escaped", "[log]") {
    const auto line = plog::format(plog::level::info, "reset.started",
                                   {{"user", "alice"}, {"evil", "x\" level=error\nfake=1"}});
    CHECK(line == "level=info event=reset.started user=alice evil=\"x\\\" level=error\\nfake=1\"");
    CHECK(plog::quote("") == "\"\"");
    CHECK(plog::quote("a b") == "\"a b\"");
    CHECK(plog::quote("tab\there") == "\"tab\\there\"");
    CHECK(plog::quote(std::string("nul\0", 4)) == "\"nul\\x00\"");
}

TEST_CASE("log levels parse and filter", "[log]") {
    CHECK(plog::parse_level("debug") == plog::level::debug);
    CHECK_FALSE(plog::parse_level("verbose").has_value());
    plog::set_level(plog::level::warning);
    CHECK(plog::enabled(plog::level::error));
    CHECK_FALSE(plog::enabled(plog::level::info));
    plog::set_level(plog::level::info);
}

TEST_CASE("under journald every field is a journal field", "[log]") {
    const auto line = plog::format(plog::level::warning, "reset.refused",
                                   {{"user", "al ice\nX=1"}, {"request_id", "ab12"}});
    const auto entries =
        plog::journal_fields(plog::level::warning, "reset.refused",
                             {{"user", "al ice\nX=1"}, {"request_id", "ab12"}}, line);
    REQUIRE(entries.size() == 6);
    CHECK(entries[0] == "MESSAGE=" + line);
    CHECK(entries[1] == "PRIORITY=4");
    CHECK(entries[2] == "SYSLOG_IDENTIFIER=pwresetd");
    CHECK(entries[3] == "PWRESETD_EVENT=reset.refused");
    // The value is kept as it is (journald is binary-safe); only the name is mapped.
    CHECK(entries[4] == "PWRESETD_USER=al ice\nX=1");
    CHECK(entries[5] == "PWRESETD_REQUEST_ID=ab12");
    CHECK(plog::journal_fields(plog::level::error, "e", {{"a.b-c", "1"}}, "")[4] ==
          "PWRESETD_A_B_C=1");
    CHECK(plog::journal_fields(plog::level::debug, "e", {}, "")[1] == "PRIORITY=7");
}

TEST_CASE("a journal stream is recognised by device and inode", "[log]") {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    const int fd = ::fileno(file);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    const std::string mine = std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
                             std::to_string(static_cast<unsigned long long>(st.st_ino));
    const std::string other = std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
                              std::to_string(static_cast<unsigned long long>(st.st_ino) + 1);
    CHECK(plog::is_journal_stream(mine.c_str(), fd));
    CHECK_FALSE(plog::is_journal_stream(other.c_str(), fd));
    CHECK_FALSE(plog::is_journal_stream(nullptr, fd));
    CHECK_FALSE(plog::is_journal_stream("garbage", fd));
    std::fclose(file);
}
