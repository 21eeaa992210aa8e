// connection_pool (ldap/connection_pool.cpp) with server_health: a discarded lease marks its
// URI down, a kept one does not. The handles are real but never connected (ldap_initialize
// only), which is all the pool needs.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ldap/connection.hpp"
#include "ldap/connection_pool.hpp"

using namespace pwresetd::ldap;
using namespace std::chrono_literals;

namespace {

ldap_handle unconnected_handle() {
    ensure_library_initialized();
    LDAP* raw = nullptr;
    REQUIRE(ldap_initialize(&raw, "ldaps://127.0.0.1:1") == LDAP_SUCCESS);
    return ldap_handle(raw);
}

// A loopback TCP listener that never reads: connections to it stay open and silent.
class listener {
public:
    listener() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::listen(fd_, 16);
        socklen_t len = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
    }
    ~listener() { ::close(fd_); }
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;
    int port() const { return port_; }

private:
    int fd_;
    int port_ = 0;
};

// A plain TCP connection (no TLS, no bind): idle_connection_is_alive sees an open socket.
ldap_handle connected_handle(int port) {
    ensure_library_initialized();
    LDAP* raw = nullptr;
    const std::string uri = "ldap://127.0.0.1:" + std::to_string(port);
    REQUIRE(ldap_initialize(&raw, uri.c_str()) == LDAP_SUCCESS);
    ldap_handle ld(raw);
    REQUIRE(ldap_connect(ld.get()) == LDAP_SUCCESS);
    return ld;
}

}  // namespace

TEST_CASE("connection_pool: a discarded lease marks its URI down", "[ldap][connection_pool]") {
    auto health =
        std::make_shared<server_health>(std::vector<std::string>{"ldaps://a", "ldaps://b"});
    int opens = 0;
    connection_pool pool(
        1, 100ms,
        [&] {
            ++opens;
            opened_connection c;
            c.handle = unconnected_handle();
            c.server = 1;
            c.rc = LDAP_SUCCESS;
            return c;
        },
        health);
    {
        auto lease = pool.acquire();
        REQUIRE(lease.has_value());
        CHECK(lease->uri() == "ldaps://b");
        // Kept: nothing is marked.
    }
    CHECK_FALSE(health->is_down(1));
    {
        // The idle handle has no socket, so the pool takes it for closed and reopens.
        auto lease = pool.acquire();
        REQUIRE(lease.has_value());
        lease->discard();
    }
    CHECK(opens == 2);
    CHECK(health->is_down(1));
    CHECK_FALSE(health->is_down(0));
    // The slot came back: a new checkout does not wait for the full `wait`.
    CHECK(pool.acquire().has_value());
}

TEST_CASE("connection_pool: idle connections to a URI marked down are not handed out",
          "[ldap][connection_pool]") {
    const listener server;
    auto health = std::make_shared<server_health>(std::vector<std::string>{"ldap://a"});
    int opens = 0;
    connection_pool pool(
        2, 100ms,
        [&] {
            ++opens;
            opened_connection c;
            c.handle = connected_handle(server.port());
            c.server = 0;
            return c;
        },
        health);
    {
        auto first = pool.acquire();
        REQUIRE(first.has_value());
    }
    {
        auto again = pool.acquire();  // alive and its URI up: reused
        REQUIRE(again.has_value());
        CHECK(opens == 1);
        auto second = pool.acquire();
        REQUIRE(second.has_value());
        CHECK(opens == 2);
        second->discard();  // marks ldap://a down; `again` goes back to idle, alive
    }
    CHECK(health->is_down(0));
    auto third = pool.acquire();  // the idle one is dropped, a new one opened
    REQUIRE(third.has_value());
    CHECK(opens == 3);
}

TEST_CASE("connection_pool: a failed open frees its slot", "[ldap][connection_pool]") {
    auto health = std::make_shared<server_health>(std::vector<std::string>{"ldaps://a"});
    bool fail = true;
    connection_pool pool(
        1, 50ms,
        [&] {
            opened_connection c;
            if (!fail) {
                c.handle = unconnected_handle();
                c.server = 0;
            }
            return c;
        },
        health);
    CHECK_FALSE(pool.acquire().has_value());
    fail = false;
    auto lease = pool.acquire();
    REQUIRE(lease.has_value());
    CHECK(lease->uri() == "ldaps://a");
}

TEST_CASE("connection_pool: the untracked opener still works", "[ldap][connection_pool]") {
    connection_pool pool(1, 50ms, [] { return unconnected_handle(); });
    auto lease = pool.acquire();
    REQUIRE(lease.has_value());
    CHECK(lease->get() != nullptr);
    CHECK(lease->uri().empty());
    lease->discard();
}
