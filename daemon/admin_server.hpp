#pragma once
// The admin socket: a Unix stream socket pwresetctl talks to (daemon/admin_protocol.hpp),
// one JSON request line and one JSON reply line at a time, several per connection.
//
// What the rest of the daemon can rely on: a request line is at most
// admin::max_request_bytes (a longer one is answered too_large and the connection closed);
// a request line must arrive within read_timeout (slowloris); at most max_connections
// admin connections at once (more are answered busy and closed); the commands run one at
// a time on the server's own worker thread with a short queue (full: busy), so neither a
// slow command nor a hostile client holds an I/O thread or a worker of the API. The
// peer's uid, gid and pid (SO_PEERCRED) go with every request to the handler.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "daemon/admin_protocol.hpp"
#include "daemon/admin_service.hpp"

namespace pwresetd::daemon {

struct admin_limits {
    std::size_t max_connections = 8;
    std::chrono::milliseconds read_timeout{5000};
    std::chrono::milliseconds write_timeout{5000};
    std::size_t queue = 8;  // requests waiting for the worker
};

// Creates the listening socket at `path` (admin_socket): its folder is created (0750) when
// missing; a file already there is replaced only when it is a socket nobody answers on
// (a daemon that died), otherwise startup fails with a message that says why. The socket
// gets mode 0660 and `group` (empty: the process's group) before it appears under its
// name. Returns the listening descriptor; throws std::runtime_error.
int open_admin_socket(const std::filesystem::path& path, const std::string& group);

class admin_server {
public:
    // Blocking; runs on the server's worker thread with the peer's user name filled in.
    using handler = std::function<boost::json::object(const admin::request&, const admin_peer&)>;

    // Listens at `path` (open_admin_socket) and removes the socket when destroyed.
    admin_server(boost::asio::io_context& ioc, handler handle, const std::filesystem::path& path,
                 const std::string& group, admin_limits limits = {});
    // Adopts a socket that already listens (systemd socket activation); it is not removed.
    admin_server(boost::asio::io_context& ioc, handler handle, int listening_fd,
                 admin_limits limits = {});
    admin_server(const admin_server&) = delete;
    admin_server& operator=(const admin_server&) = delete;
    ~admin_server();

    void start();
    // Stops accepting; connections already open finish their request.
    void stop_accepting();

    struct state;  // shared with the connections

private:
    std::shared_ptr<state> state_;
    std::filesystem::path created_;  // the socket file to remove at exit ("" when adopted)
    std::pair<dev_t, ino_t> created_identity_{};
};

// The configuration's admin socket serving `service`, accepting already; null when
// admin_socket is absent.
std::unique_ptr<admin_server> make_admin_server(boost::asio::io_context& ioc,
                                                admin_server::handler handle, const config& cfg);

}  // namespace pwresetd::daemon
