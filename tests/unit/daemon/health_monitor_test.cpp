#include "daemon/health_monitor.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/fakes/fake_directory.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;
using namespace std::chrono_literals;

namespace {

// Polls until the monitor has run `n` pings (its thread runs them), up to 5 s.
bool wait_for_pings(health_monitor& m, unsigned n) {
    for (int i = 0; i < 500 && m.pings() < n; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    return m.pings() >= n;
}

}  // namespace

TEST_CASE("health: the first answer waits for one ping, then callers read it at once", "[health]") {
    testing::fake_directory directory;
    health_monitor monitor(directory, 1h);
    CHECK(monitor.await_known() == health_monitor::state::healthy);
    for (int i = 0; i < 10000; ++i) {
        REQUIRE(monitor.current() == health_monitor::state::healthy);
    }
    std::this_thread::sleep_for(50ms);
    CHECK(monitor.pings() == 1);  // ten thousand checks, one directory search
}

TEST_CASE("health: a stale answer asks for one new ping and is served meanwhile", "[health]") {
    testing::fake_directory directory;
    health_monitor monitor(directory, 100ms);
    REQUIRE(monitor.await_known() == health_monitor::state::healthy);
    directory.down = true;
    std::this_thread::sleep_for(150ms);
    // Stale: this caller still gets the last answer, and the monitor pings again.
    CHECK(monitor.current() == health_monitor::state::healthy);
    REQUIRE(wait_for_pings(monitor, 2));
    CHECK(monitor.current() == health_monitor::state::degraded);
    CHECK(monitor.pings() == 2);
}

TEST_CASE("health: a dead directory at start answers degraded", "[health]") {
    testing::fake_directory directory;
    directory.down = true;
    health_monitor monitor(directory, 1h);
    CHECK(monitor.await_known() == health_monitor::state::degraded);
}
