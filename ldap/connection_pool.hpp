#pragma once
// A bounded pool of service-account connections, opened lazily and checked out by worker
// threads. A checkout waits at most `wait` for a connection to free up; a lease whose
// connection failed is discarded (reopened by a later checkout), never handed out again.
// With a server_health, every connection remembers its URI, and discarding a lease marks
// that URI down, so the reopen goes to the next healthy server.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics.hpp"
#include "ldap/connection.hpp"
#include "ldap/handles.hpp"

namespace pwresetd::ldap {

class connection_pool {
public:
    using opener = std::function<ldap_handle()>;
    // Opens with failover (open_service_connection) and says which URI it reached.
    using tracked_opener = std::function<opened_connection()>;

    class lease {
    public:
        lease(lease&& other) noexcept
            : pool_(other.pool_),
              handle_(std::move(other.handle_)),
              server_(other.server_),
              keep_(other.keep_) {
            other.pool_ = nullptr;
        }
        lease& operator=(lease&&) = delete;
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        ~lease();

        [[nodiscard]] LDAP* get() const noexcept { return handle_.get(); }
        // The connection saw a connection-level error: close it instead of pooling it (and
        // mark its URI down when the pool tracks server health).
        void discard() noexcept { keep_ = false; }
        // The URI this connection reached; empty when the pool does not track it.
        [[nodiscard]] const std::string& uri() const noexcept;

    private:
        friend class connection_pool;
        lease(connection_pool* pool, ldap_handle handle, std::size_t server)
            : pool_(pool), handle_(std::move(handle)), server_(server) {}
        connection_pool* pool_;
        ldap_handle handle_;
        std::size_t server_;
        bool keep_ = true;
    };

    connection_pool(std::size_t size, std::chrono::milliseconds wait, opener open);
    // health must be the one `open` reports its server indexes against.
    connection_pool(std::size_t size, std::chrono::milliseconds wait, tracked_opener open,
                    std::shared_ptr<server_health> health);
    connection_pool(const connection_pool&) = delete;
    connection_pool& operator=(const connection_pool&) = delete;
    ~connection_pool();

    // Empty when no connection frees up within `wait` or a new one cannot be opened.
    std::optional<lease> acquire();

    // The pool's size, its connections (idle + leased + being opened) and the idle ones.
    struct counts {
        std::size_t size = 0;
        std::size_t open = 0;
        std::size_t idle = 0;
    };
    [[nodiscard]] counts current_counts();

private:
    struct pooled {
        ldap_handle handle;
        std::size_t server;
    };

    void release(ldap_handle handle, std::size_t server, bool keep) noexcept;
    // The directory's name for the log ("" when the pool does not track server health).
    [[nodiscard]] std::string directory() const {
        return health_ ? health_->directory() : std::string();
    }

    const std::size_t size_;
    const std::chrono::milliseconds wait_;
    const tracked_opener open_;
    const std::shared_ptr<server_health> health_;  // null: URIs not tracked
    std::mutex mutex_;
    std::condition_variable freed_;
    std::vector<pooled> idle_;
    std::size_t open_count_ = 0;  // idle + leased + being opened

    // The pool's share of the process-wide gauges (pwresetd_directory_pool_*), which sum over
    // the pools of one directory (an old generation's drains after a reload). Null: not
    // published (a pool that does not track server health).
    void publish_locked() noexcept;
    metrics::gauge* open_gauge_ = nullptr;
    metrics::gauge* in_use_gauge_ = nullptr;
    metrics::gauge* size_gauge_ = nullptr;
    double published_open_ = 0;
    double published_in_use_ = 0;
};

}  // namespace pwresetd::ldap
