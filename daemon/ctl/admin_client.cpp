#include "daemon/ctl/admin_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <boost/json/parse.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "daemon/admin_protocol.hpp"

namespace pwresetd::ctl {

namespace {

class socket_fd {
public:
    socket_fd() : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    ~socket_fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

// Waits until fd is ready for `events` or the deadline passes.
void wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error("no reply from the daemon in time");
        }
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n > 0) {
            return;
        }
        if (n < 0 && errno != EINTR) {
            throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
        }
    }
}

}  // namespace

boost::json::object ask_daemon(const std::filesystem::path& socket, const std::string& request_line,
                               std::chrono::milliseconds timeout) {
    const std::string path = socket.string();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        throw connect_error(path + ": path too long for a socket");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const socket_fd fd;
    if (fd.get() < 0) {
        throw connect_error(std::string("socket(): ") + std::strerror(errno));
    }
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        std::string hint;
        if (e == ENOENT || e == ECONNREFUSED) {
            hint = " (is pwresetd running, with admin_socket set to this path?)";
        } else if (e == EACCES || e == EPERM) {
            hint = " (root or a member of the socket's group only)";
        }
        throw connect_error("cannot connect to " + path + ": " + std::strerror(e) + hint);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t sent = 0;
    while (sent < request_line.size()) {
        wait_for(fd.get(), POLLOUT, deadline);
        const ssize_t n =
            ::send(fd.get(), request_line.data() + sent, request_line.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            throw std::runtime_error(std::string("cannot send the request: ") +
                                     std::strerror(errno));
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string reply;
    std::array<char, 4096> chunk{};
    for (;;) {
        const auto newline = reply.find('\n');
        if (newline != std::string::npos) {
            reply.resize(newline);
            break;
        }
        if (reply.size() > daemon::admin::max_reply_bytes) {
            throw std::runtime_error("the daemon's reply is too long");
        }
        wait_for(fd.get(), POLLIN, deadline);
        const ssize_t n = ::recv(fd.get(), chunk.data(), chunk.size(), 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            throw std::runtime_error(std::string("cannot read the reply: ") + std::strerror(errno));
        }
        if (n == 0) {
            throw std::runtime_error("the daemon closed the connection without a reply");
        }
        reply.append(chunk.data(), static_cast<std::size_t>(n));
    }
    OPENSSL_cleanse(chunk.data(), chunk.size());
    boost::system::error_code ec;
    boost::json::value value = boost::json::parse(reply, ec);
    OPENSSL_cleanse(reply.data(), reply.size());  // an enroll reply holds the TOTP key
    if (ec || !value.is_object() || !value.as_object().contains("ok")) {
        throw std::runtime_error("the daemon's reply is not an admin protocol reply");
    }
    return std::move(value.as_object());
}

}  // namespace pwresetd::ctl
