#include "common/text.hpp"

#include <catch2/catch.hpp>

namespace text = pwresetd::text;

TEST_CASE("strict UTF-8 validation", "[text]") {
    CHECK(text::is_valid_utf8("plain ascii"));
    CHECK(text::is_valid_utf8("\xC3\xA9t\xC3\xA9"));       // été
    CHECK(text::is_valid_utf8("\xF0\x9F\x94\x91"));        // U+1F511
    CHECK_FALSE(text::is_valid_utf8("\xC0\xAF"));          // overlong '/'
    CHECK_FALSE(text::is_valid_utf8("\xED\xA0\x80"));      // surrogate D800
    CHECK_FALSE(text::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(text::is_valid_utf8("\xE2\x82"));          // truncated
    CHECK_FALSE(text::is_valid_utf8("\xFF"));
    const auto cps = text::decode_utf8("a\xF0\x9F\x94\x91");
    REQUIRE(cps.has_value());
    CHECK(cps->size() == 2);
    CHECK((*cps)[1] == U'\U0001F511');
}

TEST_CASE("control characters are found, C0, DEL and C1", "[text]") {
    CHECK_FALSE(text::has_control_characters("alice.smith@example.test"));
    CHECK_FALSE(text::has_control_characters("\xC3\xA9"));
    CHECK(text::has_control_characters(std::string("al\0ice", 6)));
    CHECK(text::has_control_characters("alice\n"));
    CHECK(text::has_control_characters("alice\x7F"));
    CHECK(text::has_control_characters("alice\xC2\x85"));
}

TEST_CASE("ascii_lower leaves non-ASCII alone", "[text]") {
    CHECK(text::ascii_lower("AliCE\xC3\x89") == "alice\xC3\x89");
}
