#include "common/secret.hpp"

#include <catch2/catch.hpp>

#include <type_traits>

using pwresetd::secret;

TEST_CASE("secret is move-only", "[secret]") {
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<secret>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<secret>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<secret>);
}

TEST_CASE("secret holds bytes exactly and empties the moved-from object", "[secret]") {
    secret a("p\xC3\xA4ss \"word\"");
    REQUIRE(a.view() == "p\xC3\xA4ss \"word\"");
    REQUIRE(a.size() == 12);
    secret b(std::move(a));
    REQUIRE(b.view() == "p\xC3\xA4ss \"word\"");
    REQUIRE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    b.clear();
    REQUIRE(b.empty());
}

TEST_CASE("secret::equals compares content and length", "[secret]") {
    const secret s("123456");
    CHECK(s.equals("123456"));
    CHECK_FALSE(s.equals("123457"));
    CHECK_FALSE(s.equals("12345"));
    CHECK_FALSE(s.equals("1234567"));
    CHECK_FALSE(s.equals(""));
    CHECK(secret().equals(""));
    CHECK(s.equals(secret("123456")));
}
