#include "daemon/admin_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "support/temp_dir.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A client socket with a receive timeout.
class client {
public:
    explicit client(const fs::path& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        timeval tv{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    }
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    ~client() { ::close(fd_); }

    [[nodiscard]] bool connected() const { return connected_; }
    void send(const std::string& data) const {
        (void)::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    }
    // The next reply line as JSON, or nullopt when the connection ends (or times out).
    std::optional<boost::json::object> reply() {
        for (;;) {
            const auto newline = buffer_.find('\n');
            if (newline != std::string::npos) {
                const std::string line = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                return boost::json::parse(line).as_object();
            }
            char chunk[4096];
            const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
            if (n <= 0) {
                return std::nullopt;
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    // The server closed the connection (and sent nothing more).
    bool closed() {
        char c = 0;
        return buffer_.empty() && ::recv(fd_, &c, 1, 0) == 0;
    }

private:
    int fd_;
    bool connected_ = false;
    std::string buffer_;
};

std::string error_of(const std::optional<boost::json::object>& reply) {
    if (!reply || !reply->contains("error")) {
        return "(none)";
    }
    return std::string(reply->at("error").as_string());
}

// An admin server on its own io_context thread, with a handler that echoes the peer and can
// be made to block.
struct server_harness {
    testing::temp_dir dir{"pwresetd-admin"};
    fs::path socket = dir / "run" / "admin.sock";
    boost::asio::io_context ioc;
    std::mutex mutex;
    std::condition_variable released;
    bool hold = false;
    std::atomic<int> handled{0};
    std::optional<admin_server> server;
    std::thread thread;

    explicit server_harness(admin_limits limits = {}) {
        server.emplace(
            ioc,
            [this](const admin::request& r, const admin_peer& peer) {
                std::unique_lock lock(mutex);
                released.wait(lock, [this] { return !hold; });
                ++handled;
                auto reply = admin::ok_reply();
                reply["cmd"] = admin::command_name(r.cmd);
                reply["uid"] = static_cast<std::int64_t>(peer.uid);
                reply["pid"] = static_cast<std::int64_t>(peer.pid);
                reply["user"] = peer.user;
                return reply;
            },
            socket, "", limits);
        server->start();
        thread = std::thread([this] { ioc.run(); });
    }
    ~server_harness() {
        release();
        ioc.stop();
        thread.join();
        server.reset();
    }
    void block() {
        const std::lock_guard lock(mutex);
        hold = true;
    }
    void release() {
        {
            const std::lock_guard lock(mutex);
            hold = false;
        }
        released.notify_all();
    }
};

const std::string status_line = "{\"v\":1,\"cmd\":\"status\"}\n";

}  // namespace

TEST_CASE("admin server: the socket's folder, mode and lifetime", "[admin]") {
    fs::path socket;
    {
        server_harness h;
        socket = h.socket;
        struct stat folder {};
        REQUIRE(::stat(socket.parent_path().c_str(), &folder) == 0);
        CHECK((folder.st_mode & 07777) == 0750);
        struct stat info {};
        REQUIRE(::lstat(socket.c_str(), &info) == 0);
        CHECK(S_ISSOCK(info.st_mode));
        CHECK((info.st_mode & 07777) == 0660);
        CHECK(info.st_gid == ::getegid());
        // no temporary name left next to it
        CHECK(std::distance(fs::directory_iterator(socket.parent_path()), {}) == 1);
    }
    CHECK_FALSE(fs::exists(socket));  // removed when the server goes
}

TEST_CASE("admin server: requests get replies with the peer's credentials", "[admin]") {
    server_harness h;
    client c(h.socket);
    REQUIRE(c.connected());
    c.send(status_line + status_line);  // two at once: answered in order
    for (int i = 0; i < 2; ++i) {
        const auto reply = c.reply();
        REQUIRE(reply);
        CHECK(reply->at("ok").as_bool());
        CHECK(reply->at("uid").as_int64() == static_cast<std::int64_t>(::getuid()));
        CHECK(reply->at("pid").as_int64() == static_cast<std::int64_t>(::getpid()));
        CHECK(reply->at("user").as_string() == user_name_of(::getuid()));
    }
    c.send("{\"v\":1,\"cmd\":\"nope\"}\n");
    CHECK(error_of(c.reply()) == "unknown_command");
    c.send("garbage\n");
    CHECK(error_of(c.reply()) == "bad_request");
    c.send(status_line);  // still served after refusals
    CHECK(c.reply().value().at("ok").as_bool());
    CHECK(h.handled == 3);
}

TEST_CASE("admin server: an oversized line is refused and the connection closed", "[admin]") {
    server_harness h;
    client c(h.socket);
    c.send(std::string(admin::max_request_bytes + 1, 'x'));  // no newline within the limit
    CHECK(error_of(c.reply()) == "too_large");
    CHECK(c.closed());
    CHECK(h.handled == 0);
    client after(h.socket);
    after.send(status_line);
    CHECK(after.reply().value().at("ok").as_bool());
}

TEST_CASE("admin server: a slow client times out without holding up others", "[admin]") {
    admin_limits limits;
    limits.read_timeout = 300ms;
    server_harness h(limits);
    client slow(h.socket);
    slow.send("{\"v\":1,");
    client quick(h.socket);
    quick.send(status_line);
    CHECK(quick.reply().value().at("ok").as_bool());
    const auto started = std::chrono::steady_clock::now();
    CHECK(error_of(slow.reply()) == "timeout");
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK(slow.closed());
}

TEST_CASE("admin server: connections and queued commands are bounded", "[admin]") {
    admin_limits limits;
    limits.max_connections = 3;
    limits.queue = 1;
    server_harness h(limits);
    h.block();  // the worker is stuck in a command
    client first(h.socket);
    first.send(status_line);  // taken by the worker, which blocks
    std::this_thread::sleep_for(200ms);
    client second(h.socket);
    second.send(status_line);  // waits in the queue
    std::this_thread::sleep_for(100ms);
    client third(h.socket);
    third.send(status_line);  // the queue is full: busy at once, the connection stays
    CHECK(error_of(third.reply()) == "busy");
    client fourth(h.socket);  // beyond max_connections: busy, closed
    CHECK(error_of(fourth.reply()) == "busy");
    CHECK(fourth.closed());
    h.release();
    CHECK(first.reply().value().at("ok").as_bool());
    CHECK(second.reply().value().at("ok").as_bool());
    third.send(status_line);
    CHECK(third.reply().value().at("ok").as_bool());
    CHECK(h.handled == 3);
}

TEST_CASE("admin server: what is at the path already", "[admin]") {
    testing::temp_dir dir{"pwresetd-admin"};
    const fs::path path = dir / "admin.sock";
    SECTION("a file that is not a socket is left alone") {
        std::ofstream(path) << "keep me\n";
        CHECK_THROWS_WITH(open_admin_socket(path, ""),
                          Catch::Contains("exists and is not a socket"));
        CHECK(fs::file_size(path) == 8);
    }
    SECTION("a socket somebody answers on is left alone") {
        const int live = open_admin_socket(path, "");
        CHECK_THROWS_WITH(open_admin_socket(path, ""), Catch::Contains("another process answers"));
        ::close(live);
    }
    SECTION("a stale socket is replaced") {
        const int stale = open_admin_socket(path, "");
        ::close(stale);  // nobody listens any more
        struct stat before {};
        REQUIRE(::lstat(path.c_str(), &before) == 0);
        const int fresh = open_admin_socket(path, "");
        struct stat after {};
        REQUIRE(::lstat(path.c_str(), &after) == 0);
        CHECK(before.st_ino != after.st_ino);
        ::close(fresh);
    }
    SECTION("an unknown group is an error") {
        CHECK_THROWS_WITH(open_admin_socket(path, "no-such-group-here"),
                          Catch::Contains("no group named"));
        CHECK_FALSE(fs::exists(path));
    }
}

TEST_CASE("admin server: a socket passed in (socket activation) is served, not removed",
          "[admin]") {
    testing::temp_dir dir{"pwresetd-admin"};
    const fs::path path = dir / "activated.sock";
    const int fd = open_admin_socket(path, "");
    boost::asio::io_context ioc;
    {
        admin_server server(
            ioc, [](const admin::request&, const admin_peer&) { return admin::ok_reply(); }, fd);
        server.start();
        std::thread t([&ioc] { ioc.run(); });
        client c(path);
        c.send(status_line);
        CHECK(c.reply().value().at("ok").as_bool());
        ioc.stop();
        t.join();
    }
    CHECK(fs::exists(path));
}
