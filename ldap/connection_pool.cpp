#include "ldap/connection_pool.hpp"

#include <utility>

#include "common/log.hpp"
#include "ldap/connection.hpp"

namespace pwresetd::ldap {

connection_pool::lease::~lease() {
    if (pool_ != nullptr) {
        pool_->release(std::move(handle_), server_, keep_);
    }
}

const std::string& connection_pool::lease::uri() const noexcept {
    static const std::string none;
    return pool_ != nullptr && pool_->health_ ? pool_->health_->uri(server_) : none;
}

connection_pool::connection_pool(std::size_t size, std::chrono::milliseconds wait, opener open)
    : connection_pool(
          size, wait,
          [open = std::move(open)] {
              opened_connection c;
              c.handle = open();
              c.rc = c.handle ? LDAP_SUCCESS : LDAP_CONNECT_ERROR;
              return c;
          },
          nullptr) {}

connection_pool::connection_pool(std::size_t size, std::chrono::milliseconds wait,
                                 tracked_opener open, std::shared_ptr<server_health> health)
    : size_(size == 0 ? 1 : size), wait_(wait), open_(std::move(open)), health_(std::move(health)) {
    idle_.reserve(size_);  // release() never allocates
    if (health_) {
        auto& registry = metrics::registry::global();
        const std::string name = directory();
        size_gauge_ = &registry
                           .gauges("pwresetd_directory_pool_size",
                                   "Service connections the directory's pool may open "
                                   "(directory.pool_size).",
                                   {"directory"})
                           .with({name});
        auto& connections = registry.gauges(
            "pwresetd_directory_pool_connections",
            "Service connections of the directory's pool: open (idle, leased or being opened) "
            "and in_use (leased to a request or being opened).",
            {"directory", "state"});
        open_gauge_ = &connections.with({name, "open"});
        in_use_gauge_ = &connections.with({name, "in_use"});
        size_gauge_->add(static_cast<double>(size_));
    }
}

connection_pool::~connection_pool() {
    if (size_gauge_ != nullptr) {
        size_gauge_->add(-static_cast<double>(size_));
        open_gauge_->add(-published_open_);
        in_use_gauge_->add(-published_in_use_);
    }
}

void connection_pool::publish_locked() noexcept {
    if (open_gauge_ == nullptr) {
        return;
    }
    const auto open = static_cast<double>(open_count_);
    const auto in_use = static_cast<double>(open_count_ - idle_.size());
    open_gauge_->add(open - published_open_);
    in_use_gauge_->add(in_use - published_in_use_);
    published_open_ = open;
    published_in_use_ = in_use;
}

connection_pool::counts connection_pool::current_counts() {
    const std::lock_guard lock(mutex_);
    return {size_, open_count_, idle_.size()};
}

std::optional<connection_pool::lease> connection_pool::acquire() {
    std::unique_lock lock(mutex_);
    while (true) {
        if (!freed_.wait_for(lock, wait_,
                             [this] { return !idle_.empty() || open_count_ < size_; })) {
            log::warning("ldap.pool_exhausted",
                         {{"directory", directory()},
                          {"size", static_cast<std::uint64_t>(size_)},
                          {"wait_ms", static_cast<std::int64_t>(wait_.count())}});
            return std::nullopt;
        }
        if (idle_.empty()) {
            break;
        }
        pooled conn = std::move(idle_.back());
        idle_.pop_back();
        // A connection to a URI marked down since it was opened (another connection to the
        // same server failed) would most likely fail too, or hang until timeout_ms when the
        // server vanished without a FIN: drop it, so a retry lands on the next server.
        const bool server_down =
            health_ && conn.server != server_health::npos && health_->is_down(conn.server);
        if (!server_down && idle_connection_is_alive(conn.handle.get())) {
            publish_locked();
            return lease(this, std::move(conn.handle), conn.server);
        }
        // Closed by the server while idle (idle timeout, restart): drop it, look again. Not
        // a reason to mark the URI down: servers close idle connections in normal operation,
        // and the reopen finds out whether it still answers.
        --open_count_;
        publish_locked();
        lock.unlock();
        conn.handle.reset();
        log::info("ldap.idle_connection_closed",
                  {{"directory", directory()}, {"reason", server_down ? "server_down" : "closed"}});
        lock.lock();
    }
    ++open_count_;
    publish_locked();
    lock.unlock();
    opened_connection opened = open_();
    if (!opened.handle) {
        release(nullptr, server_health::npos, false);
        return std::nullopt;
    }
    return lease(this, std::move(opened.handle), opened.server);
}

void connection_pool::release(ldap_handle handle, std::size_t server, bool keep) noexcept {
    const bool failed = !keep && handle;
    {
        const std::lock_guard lock(mutex_);
        if (keep && handle) {
            idle_.push_back(pooled{std::move(handle), server});
        } else {
            --open_count_;
        }
        publish_locked();
    }
    freed_.notify_one();
    if (failed && health_ && server != server_health::npos) {
        try {
            health_->failed(server, "connection_error");
        } catch (...) {  // only the log line can throw (allocation): the state is updated
        }
    }
    // A discarded handle is unbound here, outside the lock.
}

}  // namespace pwresetd::ldap
