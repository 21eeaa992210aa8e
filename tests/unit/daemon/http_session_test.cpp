#include "daemon/http_session.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "daemon/response_floor.hpp"
#include "support/http_session_driver.hpp"

using namespace pwresetd;
using pwresetd::testing::session_driver;

namespace {

const std::string auth = "Authorization: Bearer " + std::string(testing::driver_api_key) + "\r\n";

std::size_t replies_in(std::string_view out) {
    std::size_t n = 0;
    for (auto at = out.find("HTTP/1.1 "); at != std::string_view::npos;
         at = out.find("HTTP/1.1 ", at + 1)) {
        ++n;
    }
    return n;
}

int first_status(std::string_view out) {
    if (!out.starts_with("HTTP/1.1 ") || out.size() < 12) {
        return 0;
    }
    return std::stoi(std::string(out.substr(9, 3)));
}

std::string post(std::string_view path, std::string_view body, std::string_view extra = {}) {
    return "POST " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" + auth +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + std::string(extra) + "\r\n" + std::string(body);
}

}  // namespace

TEST_CASE("a declared Content-Length never becomes an allocation", "[http]") {
    // The review's pre-auth crash: Beast's string body reserves the declared length.
    session_driver d;
    SECTION("health, no authentication") {
        const auto out = d.run(
            "GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n", 64);
        CHECK(first_status(out) == 413);
    }
    SECTION("an authenticated route without a body") {
        const auto out = d.run("GET /v1/policy HTTP/1.1\r\nHost: x\r\n" + auth +
                                   "Content-Length: 1000000000000\r\n\r\n",
                               64);
        CHECK(first_status(out) == 413);
    }
    SECTION("a route with a body, authenticated: 413; without a key: 401") {
        const std::string head =
            "POST /v1/resets HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 1000000000000\r\n";
        CHECK(first_status(d.run(head + auth + "\r\n{}", 64)) == 413);
        CHECK(first_status(d.run(head + "\r\n{}", 64)) == 401);
    }
    SECTION("a chunked body on a route without one") {
        const auto out = d.run(
            "GET /v1/health HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\nffffffffff\r\nxx",
            64);
        CHECK(first_status(out) == 413);
    }
    SECTION("a huge chunk on a route with a body") {
        const auto out = d.run("POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                                   "Content-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\nfffffffffff\r\n{}",
                               64);
        CHECK(first_status(out) == 413);
    }
    CHECK(d.handler().calls().empty());
    CHECK(d.open_connections() == 0);
}

TEST_CASE("only one framing of a body is accepted; nothing is smuggled", "[http]") {
    session_driver d;
    const std::string smuggled = "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::string body = "{\"username\":\"a\"}";
    for (const std::string te :
         {"xchunked", "chunked, identity", "identity", "chunked, chunked", "gzip, chunked"}) {
        INFO("Transfer-Encoding: " << te);
        const std::string request = "POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                                    "Content-Type: application/json\r\nTransfer-Encoding: " + te +
                                    "\r\n\r\n" + smuggled;
        const auto out = d.run(request, 64);
        CHECK(first_status(out) == 400);
        CHECK(replies_in(out) == 1);
        CHECK(out.find("Transfer-Encoding: chunked is accepted") != std::string::npos);
    }
    SECTION("two Transfer-Encoding headers") {
        const auto out = d.run("POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                                   "Content-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
                                   "\r\n0\r\n\r\n" +
                                   smuggled,
                               64);
        CHECK(first_status(out) == 400);
        CHECK(replies_in(out) == 1);
    }
    SECTION("Content-Length and Transfer-Encoding together") {
        const auto out = d.run("POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                                   "Content-Type: application/json\r\nContent-Length: 5\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
                                   smuggled,
                               64);
        CHECK(first_status(out) == 400);
        CHECK(replies_in(out) == 1);
    }
    SECTION("two Content-Length headers") {
        const auto out = d.run("POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                                   "Content-Type: application/json\r\nContent-Length: 16\r\n"
                                   "Content-Length: 16\r\n\r\n" +
                                   body,
                               64);
        CHECK(first_status(out) == 400);
    }
    CHECK(d.handler().calls().empty());
}

TEST_CASE("more than one Authorization header is refused, whichever comes first", "[http]") {
    session_driver d;
    const std::string bad = "Authorization: Bearer not-the-key\r\n";
    for (const std::string& headers : {auth + bad, bad + auth, auth + auth}) {
        const auto out = d.run("GET /v1/policy HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n", 64);
        CHECK(first_status(out) == 400);
        CHECK(out.find("more than one Authorization header") != std::string::npos);
    }
    CHECK(d.handler().calls().empty());
}

TEST_CASE("obsolete line folding is refused", "[http]") {
    session_driver d;
    for (const std::string fold : {"\r\n extra", "\r\n\textra"}) {
        const auto out = d.run(
            "GET /v1/policy HTTP/1.1\r\nHost: x\r\n" + auth + "X-Folded: first" + fold + "\r\n\r\n",
            64);
        CHECK(first_status(out) == 400);
        CHECK(out.find("obsolete line folding") != std::string::npos);
    }
    CHECK(d.handler().calls().empty());
}

TEST_CASE("a body with a duplicate key is refused", "[http][json]") {
    session_driver d;
    const auto out = d.run(post("/v1/resets", R"({"username":"a","username":"b"})"), 64);
    CHECK(first_status(out) == 400);
    CHECK(out.find("duplicate key") != std::string::npos);
    const auto nested = d.run(post("/v1/resets", R"({"a":{"k":1,"k":2},"username":"x"})"), 64);
    CHECK(first_status(nested) == 400);
    const auto fine = d.run(post("/v1/resets", R"({"a":{"k":1},"b":{"k":2},"username":"x"})"), 64);
    CHECK(first_status(fine) == 200);
}

TEST_CASE("whatever the read size, a request gets the same reply", "[http]") {
    const std::string body = R"({"username":"alice"})";
    const std::string two = post("/v1/resets", body) + post("/v1/resets", body);
    for (std::size_t chunk = 1; chunk <= 64; ++chunk) {
        INFO("reads of at most " << chunk << " bytes");
        session_driver d;
        const auto out = d.run(two, chunk);
        CHECK(replies_in(out) == 2);
        CHECK(first_status(out) == 200);
        REQUIRE(d.handler().calls().size() == 2);
        CHECK(d.handler().calls()[0] == body);
        CHECK(d.handler().calls()[1] == body);
    }
    session_driver d;
    const auto out = d.run("POST /v1/resets HTTP/1.1\r\nHost: x\r\n" + auth +
                               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                               "\r\n5\r\n{\"use\r\nf\r\nrname\":\"alice\"}\r\n0\r\n\r\n",
                           3);
    CHECK(first_status(out) == 200);
    REQUIRE(d.handler().calls().size() == 1);
    CHECK(d.handler().calls()[0] == body);
}

TEST_CASE("headers over 8 KiB are 431", "[http]") {
    session_driver d;
    const auto out = d.run("GET /v1/policy HTTP/1.1\r\nHost: x\r\n" + auth +
                               "X-Big: " + std::string(9000, 'a') + "\r\n\r\n",
                           64);
    CHECK(first_status(out) == 431);
    CHECK(d.handler().calls().empty());
}

TEST_CASE("X-Forwarded-For counts only from an authenticated client", "[http]") {
    session_driver d;
    (void)d.run(
        post("/v1/resets", R"({"username":"a"})", "X-Forwarded-For: 10.9.9.9, 203.0.113.7\r\n"),
        64);
    REQUIRE(d.handler().ips().size() == 1);
    CHECK(d.handler().ips()[0] == "203.0.113.7");
    (void)d.run("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.8\r\n\r\n", 64);
    REQUIRE(d.handler().ips().size() == 2);
    CHECK(d.handler().ips()[1] == "192.0.2.1");
}

TEST_CASE("the pieces the session decides with", "[http]") {
    using daemon::header_block_problem;
    CHECK(header_block_problem("GET / HTTP/1.1\r\nA: b\r\n\r\n").empty());
    CHECK_FALSE(header_block_problem("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").empty());
    CHECK(daemon::last_forwarded_for("1.2.3.4, 5.6.7.8") == "5.6.7.8");
    CHECK(daemon::last_forwarded_for(" 5.6.7.8 ") == "5.6.7.8");
    CHECK(daemon::last_forwarded_for("a\x01") == "");
    CHECK(daemon::last_forwarded_for("6.6.6.6, 203.0.113.7:5678") == "203.0.113.7");
    CHECK(daemon::last_forwarded_for("[2001:db8::1]:443") == "2001:db8::1");
    CHECK(daemon::last_forwarded_for("2001:db8::1") == "2001:db8::1");
    CHECK(daemon::last_forwarded_for("203.0.113.09") == "");
    CHECK(daemon::last_forwarded_for("203.0.113.9.") == "");
    CHECK(daemon::last_forwarded_for("unknown") == "");
    CHECK(daemon::is_json_media_type("Application/JSON; charset=utf-8"));
    CHECK_FALSE(daemon::is_json_media_type("application/jsonx"));
}

TEST_CASE("requests refused before authentication count per socket address", "[http][limits]") {
    session_driver d;  // per_ip_per_minute 30 (the default)
    const std::string unauthenticated =
        "POST /v1/resets HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    for (int i = 0; i < 30; ++i) {
        REQUIRE(first_status(d.run(unauthenticated, 64)) == 401);
    }
    const auto out = d.run(unauthenticated, 64);
    CHECK(first_status(out) == 429);
    CHECK(out.find("Retry-After: ") != std::string::npos);
    CHECK(out.find("\"rate_limited\"") != std::string::npos);
    // Health is never limited; an authenticated request is counted by the API, not here.
    CHECK(first_status(d.run("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 64)) == 200);
    CHECK(first_status(d.run(post("/v1/resets", R"({"username":"a"})"), 64)) == 200);
}

TEST_CASE("the unauthenticated limit is bounded in memory", "[http][limits]") {
    using daemon::unauthenticated_limit;
    unauthenticated_limit limit(4);
    const auto t0 = unauthenticated_limit::clock::now();
    for (int i = 0; i < 4; ++i) {
        CHECK(limit.hit("192.0.2." + std::to_string(i), 2, t0) == 0);
    }
    CHECK(limit.hit("192.0.2.77", 2, t0) == 60);  // full of live windows: refused, not grown
    CHECK(limit.hit("192.0.2.1", 2, t0) == 0);
    CHECK(limit.hit("192.0.2.1", 2, t0) > 0);
    // IPv6 counts per /64.
    unauthenticated_limit v6(16);
    CHECK(v6.hit("2001:db8::1", 1, t0) == 0);
    CHECK(v6.hit("2001:db8::ffff:2", 1, t0) > 0);
    CHECK(v6.hit("2001:db8:0:1::1", 1, t0) == 0);
    // A minute later the windows have ended and make room.
    const auto later = t0 + std::chrono::seconds(61);
    CHECK(limit.hit("192.0.2.77", 2, later) == 0);
    CHECK(limit.hit("192.0.2.1", 2, later) == 0);
}

TEST_CASE("an answer is held to the 99th percentile of its kind", "[http][timing]") {
    daemon::response_floor floor;
    using ms = std::chrono::milliseconds;
    CHECK(floor.record(ms(5)) == ms(5));  // one sample: itself
    for (int i = 1; i <= 99; ++i) {
        (void)floor.record(ms(i));
    }
    // 101 samples (5, 1..99 and 1): the 99th percentile is near the top, not the top.
    const auto p99 = floor.record(ms(1));
    CHECK(p99 >= ms(97));
    CHECK(p99 <= ms(99));
    for (int i = 0; i < 600; ++i) {
        (void)floor.record(ms(2));
    }
    CHECK(floor.record(ms(2)) == ms(2));  // old samples age out (512 kept)
}

TEST_CASE("a body with a number JSON cannot hold is refused", "[http][json]") {
    // Found by fuzz_json_request: 9e308 parsed as infinity and could not be written back.
    for (const auto* body : {R"({"n":9e308})", R"({"n":-1e400,"username":"a"})"}) {
        const auto decoded = daemon::decode_body(body);
        CHECK_FALSE(decoded.value.has_value());
        CHECK(decoded.problem == "the body has a number out of range");
    }
    CHECK(daemon::decode_body(R"({"n":1.5e308})").value.has_value());
}

TEST_CASE("a proxy's own X-Forwarded-For line wins over the client's", "[http]") {
    // Red team: the first line was read, so a client's own line decided the per-IP count.
    session_driver d;
    (void)d.run(post("/v1/resets", R"({"username":"a"})",
                     "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7\r\n"),
                64);
    REQUIRE(d.handler().ips().size() == 1);
    CHECK(d.handler().ips()[0] == "203.0.113.7");
}
