// server_health (ldap/connection.cpp): the per-URI backoff bookkeeping, on a fake clock.
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "ldap/connection.hpp"

using namespace pwresetd::ldap;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
    server_health::clock::time_point now{};
    server_health::now_function function() {
        return [this] { return now; };
    }
};

std::vector<bool> none_tried(const server_health& h) {
    return std::vector<bool>(h.size(), false);
}

std::vector<bool> tried(const server_health& h, std::initializer_list<std::size_t> indexes) {
    std::vector<bool> out(h.size(), false);
    for (const auto i : indexes) {
        out[i] = true;
    }
    return out;
}

}  // namespace

TEST_CASE("server_health: all up, configured order, each once", "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a", "ldaps://b", "ldaps://c"}, "", clock.function());
    CHECK(h.size() == 3);
    CHECK(h.uri(1) == "ldaps://b");
    CHECK(h.uri(server_health::npos).empty());
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    CHECK(h.next(tried(h, {0})) == std::optional<std::size_t>(1));
    CHECK(h.next(tried(h, {0, 1})) == std::optional<std::size_t>(2));
    CHECK_FALSE(h.next(tried(h, {0, 1, 2})).has_value());
}

TEST_CASE("server_health: a failed URI is skipped during its backoff", "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a", "ldaps://b"}, "", clock.function());
    h.failed(0, "tcp");
    CHECK(h.is_down(0));
    CHECK_FALSE(h.is_down(1));
    CHECK(h.retry_in(0) == server_health::first_backoff);
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(1));
    CHECK_FALSE(h.next(tried(h, {1})).has_value());  // 0 is in backoff, 1 tried: done
    clock.now += 999ms;
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(1));
    CHECK(h.retry_in(0) == 1ms);
    clock.now += 1ms;
    CHECK(h.retry_in(0) == 0ms);
    // Due again: tried first, in configured order.
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    h.succeeded(0);
    CHECK_FALSE(h.is_down(0));
}

TEST_CASE("server_health: backoff doubles per failed retry up to 60 s, a success resets it",
          "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a", "ldaps://b"}, "", clock.function());
    h.failed(0, "tcp");
    const std::vector<std::chrono::milliseconds> expected{2s, 4s, 8s, 16s, 32s, 60s, 60s};
    for (const auto want : expected) {
        clock.now += h.retry_in(0);
        REQUIRE(h.next(none_tried(h)) == std::optional<std::size_t>(0));
        h.failed(0, "tcp");
        CHECK(h.retry_in(0) == want);
    }
    clock.now += h.retry_in(0);
    REQUIRE(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    h.succeeded(0);
    CHECK_FALSE(h.is_down(0));
    h.failed(0, "connection_error");
    CHECK(h.retry_in(0) == server_health::first_backoff);
}

TEST_CASE("server_health: failures inside the backoff do not extend it", "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a"}, "", clock.function());
    // Four pooled connections to one server break at once: one outage, 1 s.
    for (int i = 0; i < 4; ++i) {
        h.failed(0, "connection_error");
    }
    CHECK(h.retry_in(0) == 1s);
    clock.now += 500ms;
    h.failed(0, "tcp");  // a forced try while in backoff
    CHECK(h.retry_in(0) == 500ms);
}

TEST_CASE("server_health: all in backoff, the one that ends first is still tried",
          "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a", "ldaps://b", "ldaps://c"}, "", clock.function());
    h.failed(0, "tcp");
    clock.now += 300ms;
    h.failed(2, "tcp");
    clock.now += 300ms;
    h.failed(1, "tls");
    // a ends at 1000, c at 1300, b at 1600 (now 600).
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    CHECK_FALSE(h.next(tried(h, {0})).has_value());
    h.abandoned(0);
    clock.now += 500ms;  // 1100: a is due
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    h.failed(0, "tcp");  // a: 2 s from 1100 -> 3100
    CHECK(h.next(tried(h, {0})) == std::optional<std::size_t>(std::nullopt));
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(2));  // c ends first now
}

TEST_CASE("server_health: one thread retries a due URI, the others skip it",
          "[ldap][server_health]") {
    fake_clock clock;
    server_health h({"ldaps://a", "ldaps://b"}, "", clock.function());
    h.failed(0, "tls");
    clock.now += 1s;
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));  // claims the retry
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(1));  // another caller
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(1));
    h.abandoned(0);  // the retry said nothing about the server: claim dropped, still down
    CHECK(h.is_down(0));
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    h.succeeded(0);
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));
    CHECK(h.next(none_tried(h)) == std::optional<std::size_t>(0));  // up: no claim needed
}

TEST_CASE("server_health: out-of-range indexes are ignored", "[ldap][server_health]") {
    server_health h({"ldaps://a"});
    h.failed(server_health::npos, "tcp");
    h.succeeded(7);
    h.abandoned(7);
    CHECK_FALSE(h.is_down(7));
    CHECK(h.retry_in(7) == 0ms);
    CHECK_FALSE(h.is_down(0));
    server_health empty({});
    CHECK_FALSE(empty.next({}).has_value());
}
