#include "common/log.hpp"

#include <catch2/catch.hpp>

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
