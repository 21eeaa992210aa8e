#include "daemon/admin_server.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "daemon/worker_pool.hpp"

namespace pwresetd::daemon {
namespace net = boost::asio;
using local_stream = net::local::stream_protocol;
namespace fs = std::filesystem;

namespace {

std::string errno_text(int e) {
    return std::strerror(e);
}

// A descriptor closed on scope exit unless released.
class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

bool fill_address(sockaddr_un& addr, const std::string& path) {
    addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// Whether something accepts connections on the socket file `path` (a live daemon).
bool somebody_answers(const std::string& path) {
    sockaddr_un addr{};
    if (!fill_address(addr, path)) {
        return false;
    }
    const fd_guard probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.get() < 0) {
        throw std::runtime_error("admin_socket: socket(): " + errno_text(errno));
    }
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
        return true;
    }
    const int e = errno;
    if (e == ECONNREFUSED) {
        return false;  // nobody listens: a leftover of a daemon that did not exit cleanly
    }
    throw std::runtime_error("admin_socket: " + path +
                             ": cannot tell whether a daemon answers: " + errno_text(e));
}

gid_t group_id(const std::string& name) {
    group entry{};
    group* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
        throw std::runtime_error("admin_group: no group named '" + name + "'");
    }
    return found->gr_gid;
}

}  // namespace

int open_admin_socket(const fs::path& path, const std::string& group) {
    const std::string name = path.string();
    const fs::path folder = path.parent_path();
    std::error_code ec;
    if (!fs::exists(folder, ec)) {
        fs::create_directories(folder, ec);
        if (ec) {
            throw std::runtime_error("admin_socket: cannot create folder " + folder.string() +
                                     ": " + ec.message());
        }
        fs::permissions(folder,
                        fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec,
                        fs::perm_options::replace, ec);
        if (ec) {
            throw std::runtime_error("admin_socket: cannot set the mode of " + folder.string() +
                                     ": " + ec.message());
        }
    }
    struct stat existing {};
    if (::lstat(name.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            throw std::runtime_error("admin_socket: " + name +
                                     " exists and is not a socket; not replaced (remove it, or "
                                     "choose another path)");
        }
        if (somebody_answers(name)) {
            throw std::runtime_error("admin_socket: " + name +
                                     ": another process answers on it (is pwresetd already "
                                     "running?)");
        }
    } else if (errno != ENOENT) {
        throw std::runtime_error("admin_socket: " + name + ": " + errno_text(errno));
    }

    // Bound under a temporary name, given its mode and group, then renamed over the path: the
    // socket never appears under its name with a looser mode, and a stale one is replaced in
    // one step. A path too long for a temporary name is bound in place (the folder's mode
    // covers the moment before chmod).
    std::string temporary =
        (folder / ("." + path.filename().string() + "." + std::to_string(::getpid()))).string();
    sockaddr_un addr{};
    if (!fill_address(addr, temporary)) {
        temporary = name;
        ::unlink(name.c_str());
        if (!fill_address(addr, name)) {
            throw std::runtime_error("admin_socket: " + name + ": path too long for a socket");
        }
    }
    ::unlink(temporary.c_str());
    fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw std::runtime_error("admin_socket: socket(): " + errno_text(errno));
    }
    const auto fail = [&](const std::string& what) {
        const int e = errno;
        ::unlink(temporary.c_str());
        throw std::runtime_error("admin_socket: " + name + ": " + what + ": " + errno_text(e));
    };
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        throw std::runtime_error("admin_socket: cannot bind " + name + ": " + errno_text(e));
    }
    if (::chmod(temporary.c_str(), 0660) != 0) {
        fail("chmod 0660");
    }
    if (!group.empty() &&
        ::chown(temporary.c_str(), static_cast<uid_t>(-1), group_id(group)) != 0) {
        fail("cannot give it to group '" + group + "'");
    }
    if (::listen(fd.get(), 16) != 0) {
        fail("listen");
    }
    if (temporary != name && ::rename(temporary.c_str(), name.c_str()) != 0) {
        fail("rename");
    }
    return fd.release();
}

// Shared by the server and its connections. Never destroyed on its worker thread: the
// admin_server holds it until its destructor has stopped (joined) the worker.
struct admin_server::state {
    state(net::io_context& context, handler h, admin_limits l)
        : ioc(context),
          acceptor(net::make_strand(context)),
          retry_timer(acceptor.get_executor()),
          handle(std::move(h)),
          limits(l),
          workers(1, l.queue == 0 ? 1 : l.queue) {}

    net::io_context& ioc;
    local_stream::acceptor acceptor;
    net::steady_timer retry_timer;  // after a failed accept (EMFILE): wait, do not spin
    handler handle;
    admin_limits limits;
    worker_pool workers;
    std::atomic<std::size_t> connections{0};
    log::rate_limited refused_log;
    log::rate_limited accept_failed_log;
};

namespace {

class admin_session : public std::enable_shared_from_this<admin_session> {
public:
    admin_session(local_stream::socket socket, std::shared_ptr<admin_server::state> shared,
                  bool counted)
        : socket_(std::move(socket)),
          timer_(socket_.get_executor()),
          buffer_(admin::max_request_bytes + 1),  // the line and its newline
          shared_(std::move(shared)),
          counted_(counted) {}
    admin_session(const admin_session&) = delete;
    admin_session& operator=(const admin_session&) = delete;
    ~admin_session() {
        if (counted_) {
            --shared_->connections;
        }
    }

    void run() {
        ucred cred{};
        socklen_t size = sizeof(cred);
        if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) {
            log::warning("admin.peer_unknown", {{"error", errno_text(errno)}});
            close();
            return;
        }
        peer_.uid = cred.uid;
        peer_.gid = cred.gid;
        peer_.pid = cred.pid;
        do_read();
    }

    // Beyond max_connections: one busy reply, then closed.
    void refuse() { send(admin::error_reply("busy", "too many admin connections"), true); }

private:
    void do_read() {
        arm_timer(shared_->limits.read_timeout);
        net::async_read_until(socket_, buffer_, '\n',
                              [self = shared_from_this()](const boost::system::error_code& ec,
                                                          std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        ++timer_generation_;
        timer_.cancel();
        if (timed_out_) {
            send(admin::error_reply("timeout", "no complete request line in time"), true);
            return;
        }
        if (ec == net::error::not_found) {
            send(admin::error_reply("too_large", "a request line has at most " +
                                                     std::to_string(admin::max_request_bytes) +
                                                     " bytes"),
                 true);
            return;
        }
        if (ec) {
            close();  // end of file, reset: the client is gone
            return;
        }
        std::string line(net::buffers_begin(buffer_.data()),
                         net::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n - 1));
        buffer_.consume(n);
        auto parsed = admin::parse_request(line);
        OPENSSL_cleanse(line.data(), line.size());
        if (auto* error = std::get_if<admin::request_error>(&parsed)) {
            log::info("admin.bad_request",
                      {{"peer_uid", static_cast<std::int64_t>(peer_.uid)}, {"error", error->code}});
            send(admin::error_reply(error->code, error->message), error->code == "too_large");
            return;
        }
        auto request = std::get<admin::request>(std::move(parsed));
        const bool queued = shared_->workers.try_submit(
            [self = shared_from_this(), request = std::move(request)] { self->execute(request); });
        if (!queued) {
            send(admin::error_reply("busy", "the admin worker is busy; try again"), false);
        }
    }

    // On the worker thread.
    void execute(const admin::request& request) {
        admin_peer peer = peer_;
        peer.user = user_name_of(peer.uid);
        boost::json::object reply;
        try {
            reply = shared_->handle(request, peer);
        } catch (const std::exception& e) {
            log::error("admin.failed",
                       {{"command", admin::command_name(request.cmd)}, {"error", e.what()}});
            reply = admin::error_reply("internal", "the command failed; see the daemon's log");
        }
        const auto* ok = reply.if_contains("ok");
        const auto* error = reply.if_contains("error");
        log::info("admin.request", {{"command", admin::command_name(request.cmd)},
                                    {"peer_uid", static_cast<std::int64_t>(peer.uid)},
                                    {"peer_user", peer.user},
                                    {"ok", ok != nullptr && ok->is_bool() && ok->as_bool()},
                                    {"error", error != nullptr && error->is_string()
                                                  ? std::string(error->as_string())
                                                  : std::string()}});
        net::post(socket_.get_executor(),
                  [self = shared_from_this(), reply = std::move(reply)]() mutable {
                      self->send(std::move(reply), false);
                  });
    }

    void send(boost::json::object&& reply, bool close_after) {
        close_after_ = close_after;
        reply_ = boost::json::serialize(reply);
        reply_ += '\n';
        // The enroll reply holds the TOTP key and recovery codes.
        for (auto& [key, value] : reply) {
            if (value.is_string()) {
                auto& s = value.as_string();
                OPENSSL_cleanse(s.data(), s.size());
            }
        }
        timed_out_ = false;
        arm_timer(shared_->limits.write_timeout);
        net::async_write(socket_, net::buffer(reply_),
                         [self = shared_from_this()](const boost::system::error_code& ec,
                                                     std::size_t) { self->on_write(ec); });
    }

    void on_write(const boost::system::error_code& ec) {
        ++timer_generation_;
        timer_.cancel();
        OPENSSL_cleanse(reply_.data(), reply_.size());
        reply_.clear();
        if (ec || close_after_ || timed_out_) {
            close();
            return;
        }
        do_read();
    }

    // A wait that expired before it could be cancelled still runs: the generation tells a
    // stale one from the current one.
    void arm_timer(std::chrono::milliseconds after) {
        timer_.expires_after(after);
        timer_.async_wait([self = shared_from_this(),
                           generation = ++timer_generation_](const boost::system::error_code& ec) {
            if (!ec && generation == self->timer_generation_) {
                self->timed_out_ = true;
                boost::system::error_code ignored;
                self->socket_.cancel(ignored);
            }
        });
    }

    void close() {
        boost::system::error_code ignored;
        socket_.shutdown(local_stream::socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

    local_stream::socket socket_;
    net::steady_timer timer_;
    net::streambuf buffer_;
    std::shared_ptr<admin_server::state> shared_;
    bool counted_;
    admin_peer peer_;
    std::string reply_;
    bool close_after_ = false;
    bool timed_out_ = false;
    unsigned timer_generation_ = 0;
};

void do_accept(const std::shared_ptr<admin_server::state>& shared) {
    shared->acceptor.async_accept(
        net::make_strand(shared->ioc),
        [shared](const boost::system::error_code& ec, local_stream::socket socket) {
            if (ec == net::error::operation_aborted || !shared->acceptor.is_open()) {
                return;
            }
            if (ec) {
                shared->accept_failed_log.write(log::level::warning, "admin.accept_failed",
                                                {{"error", ec.message()}});
                shared->retry_timer.expires_after(std::chrono::milliseconds(100));
                shared->retry_timer.async_wait([shared](const boost::system::error_code& wait) {
                    if (!wait && shared->acceptor.is_open()) {
                        do_accept(shared);
                    }
                });
                return;
            }
            if (shared->connections.fetch_add(1) >= shared->limits.max_connections) {
                --shared->connections;
                shared->refused_log.write(log::level::warning, "admin.connection_refused",
                                          {{"reason", "max_connections"}});
                std::make_shared<admin_session>(std::move(socket), shared, false)->refuse();
            } else {
                std::make_shared<admin_session>(std::move(socket), shared, true)->run();
            }
            do_accept(shared);
        });
}

}  // namespace

namespace {

// The server state listening on an already listening descriptor (closed on failure).
std::shared_ptr<admin_server::state> adopt(net::io_context& ioc, admin_server::handler handle,
                                           int listening_fd, admin_limits limits) {
    auto shared = std::make_shared<admin_server::state>(ioc, std::move(handle), limits);
    boost::system::error_code ec;
    shared->acceptor.assign(local_stream(), listening_fd, ec);
    if (ec) {
        ::close(listening_fd);
        throw std::runtime_error("admin socket: cannot use descriptor " +
                                 std::to_string(listening_fd) + ": " + ec.message());
    }
    return shared;
}

std::pair<dev_t, ino_t> identity_of(const fs::path& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
        return {0, 0};
    }
    return {info.st_dev, info.st_ino};
}

}  // namespace

admin_server::admin_server(net::io_context& ioc, handler handle, const fs::path& path,
                           const std::string& group, admin_limits limits)
    : state_(adopt(ioc, std::move(handle), open_admin_socket(path, group), limits)),
      created_(path),
      created_identity_(identity_of(path)) {
    log::info("admin.listening",
              {{"socket", path.string()}, {"group", group.empty() ? std::string("(own)") : group}});
}

admin_server::admin_server(net::io_context& ioc, handler handle, int listening_fd,
                           admin_limits limits)
    : state_(adopt(ioc, std::move(handle), listening_fd, limits)) {}

admin_server::~admin_server() {
    stop_accepting();
    state_->workers.stop();
    if (!created_.empty()) {
        // Only the socket this daemon made: a successor may have replaced it meanwhile.
        if (identity_of(created_) == created_identity_) {
            ::unlink(created_.c_str());
        }
    }
}

void admin_server::start() {
    do_accept(state_);
}

std::unique_ptr<admin_server> make_admin_server(net::io_context& ioc, admin_server::handler handle,
                                                const config& cfg) {
    if (!cfg.admin.socket) {
        return nullptr;
    }
    auto server =
        std::make_unique<admin_server>(ioc, std::move(handle), *cfg.admin.socket, cfg.admin.group);
    server->start();
    return server;
}

void admin_server::stop_accepting() {
    net::post(state_->acceptor.get_executor(), [shared = state_] {
        boost::system::error_code ignored;
        shared->acceptor.close(ignored);
        shared->retry_timer.cancel();
    });
}

}  // namespace pwresetd::daemon
