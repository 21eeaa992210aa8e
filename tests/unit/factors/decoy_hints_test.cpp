#include "factors/decoy_hints.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "factors/codes.hpp"
#include "support/stderr_capture.hpp"

using namespace pwresetd;
using namespace pwresetd::factors;

TEST_CASE("a decoy hint depends on the name, the key and the settings only",
          "[decoy_hints][security]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "corp.example.test", "+46");
    const auto before = hints.email("zed");
    CHECK(before == "z***@c***.test");
    CHECK(hints.phone("zed").starts_with("+46 ** *** ** "));
    const auto phone_before = hints.phone("zed");
    // Real hints of every shape, many times: the decoys do not move (red team: a learned
    // shape drifted with traffic, which real hints never do).
    for (int i = 0; i < 50; ++i) {
        (void)hints.observe("email", mask_email("u" + std::to_string(i) + "@other.example.org"));
        (void)hints.observe("sms", mask_phone("+4915112345678", "+46"));
    }
    CHECK(hints.email("zed") == before);
    CHECK(hints.phone("zed") == phone_before);
    // Another process with the same key and settings gives the same hints.
    decoy_hints other_node(key, "corp.example.test", "+46");
    CHECK(other_node.email("zed") == before);
    CHECK(other_node.phone("zed") == phone_before);
}

TEST_CASE("a decoy hint starts as an address for the name would", "[decoy_hints][security]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "example.test", "");
    CHECK(hints.email("nobody") == "n***@e***.test");
    CHECK(hints.email("_svc") == "s***@e***.test");
    CHECK(hints.email("\xC3\xB6sten") == "o***@e***.test");  // östen: as "osten@..." would show
    CHECK(hints.email("\xC3\xA5sa") == "a***@e***.test");    // åsa
    // No Latin letter up front (Cyrillic): a keyed letter, the same each time.
    const auto cyrillic = hints.email("\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD");
    CHECK(cyrillic.substr(1) == "***@e***.test");
    CHECK(cyrillic == hints.email("\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD"));
    CHECK(hints.phone("nobody").starts_with("+** ** *** ** "));
    CHECK(address_initial("\xC3\x89mile") == 'e');  // Émile
    CHECK(address_initial("---") == 0);
}

TEST_CASE("a real hint of another shape than the decoys' is logged once, masked", "[decoy_hints]") {
    const secret key(std::string(32, 'k'));
    decoy_hints hints(key, "mailer.example.net", "+46");
    testing::stderr_capture capture;
    CHECK(hints.observe("email", mask_email("alice@mailer.example.net")));
    CHECK_FALSE(hints.observe("email", mask_email("alice@corp.example.test")));
    CHECK_FALSE(hints.observe("email", mask_email("bob@corp.example.test")));
    CHECK_FALSE(hints.observe("sms", mask_phone("+4915112345678", "+46")));
    const auto text = capture.text();
    CHECK(text.find("factors.decoy_hint_mismatch") != std::string::npos);
    CHECK(text.find("factors.email.hint_domain") != std::string::npos);
    CHECK(text.find("factors.sms.country_code") != std::string::npos);
    CHECK(text.find("alice") == std::string::npos);  // only the masked shape
    std::size_t email_warnings = 0;
    for (auto at = text.find("method=email"); at != std::string::npos;
         at = text.find("method=email", at + 1)) {
        ++email_warnings;
    }
    CHECK(email_warnings == 1);
}
