#include "factors/decoy_hints.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "factors/codes.hpp"

using namespace pwresetd;
using namespace pwresetd::factors;

TEST_CASE("decoy hints take the fixed shape until a real hint has been shown", "[decoy_hints]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "mail.example.test", "+46");
    CHECK(hints.email("nosuchuser") == decoy_email_hint(key, "nosuchuser", "mail.example.test"));
    CHECK(hints.phone("nosuchuser") == decoy_phone_hint(key, "nosuchuser", "+46"));
}

TEST_CASE("decoy hints look like the real hints shown, whatever mail.from says",
          "[decoy_hints][security]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "pwresetd.example.net", "+46");
    // The users' addresses are in another domain than mail.from, and start like the names.
    for (const std::string name : {"alice", "bob", "carol", "dave"}) {
        hints.observe("user:" + name, name, "email", mask_email(name + "@corp.example.test"));
        hints.observe("user:" + name, name, "sms", mask_phone("+4915112345678", "+46"));
    }
    CHECK(hints.email("zed") == "z***@c***.test");  // as a real zed's would be
    CHECK(hints.email("zed") == hints.email("zed"));
    CHECK(hints.phone("zed").starts_with("+** ** *** ** "));  // like the real (German) numbers
    CHECK(hints.phone("zed") == hints.phone("zed"));

    // Showing one user's hint many times counts once: the shape follows users, not requests.
    for (int i = 0; i < 100; ++i) {
        hints.observe("user:eve", "eve", "email", mask_email("eve@other.example.org"));
    }
    CHECK(hints.observed("email") == 5);
    CHECK(hints.email("zed") == "z***@c***.test");
}

TEST_CASE("when real hints do not start like the names, neither do the decoys",
          "[decoy_hints][security]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "example.test", "");
    // Employee numbers as usernames; addresses by first name.
    const std::string firsts = "ajmks";
    for (std::size_t i = 0; i < firsts.size(); ++i) {
        const std::string user = "x1000" + std::to_string(i);
        hints.observe("user:" + user, user, "email",
                      mask_email(std::string(1, firsts[i]) + "name@example.test"));
    }
    std::set<char> shown;
    for (int i = 0; i < 200; ++i) {
        const auto h = hints.email("x2000" + std::to_string(i));
        REQUIRE(h.substr(1) == "***@e***.test");
        shown.insert(h.front());
    }
    CHECK_FALSE(shown.contains('x'));  // no real hint starts like its name here
    for (const char c : shown) {
        CHECK(firsts.find(c) != std::string::npos);
    }
    CHECK(shown.size() > 2);
}
