#pragma once
// A bounded pool of service-account connections, opened lazily and checked out by worker
// threads. A checkout waits at most `wait` for a connection to free up; a lease whose
// connection failed is discarded (reopened by a later checkout), never handed out again.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "ldap/handles.hpp"

namespace pwresetd::ldap {

class connection_pool {
public:
    using opener = std::function<ldap_handle()>;

    class lease {
    public:
        lease(lease&& other) noexcept
            : pool_(other.pool_), handle_(std::move(other.handle_)), keep_(other.keep_) {
            other.pool_ = nullptr;
        }
        lease& operator=(lease&&) = delete;
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        ~lease();

        [[nodiscard]] LDAP* get() const noexcept { return handle_.get(); }
        // The connection saw a connection-level error: close it instead of pooling it.
        void discard() noexcept { keep_ = false; }

    private:
        friend class connection_pool;
        lease(connection_pool* pool, ldap_handle handle)
            : pool_(pool), handle_(std::move(handle)) {}
        connection_pool* pool_;
        ldap_handle handle_;
        bool keep_ = true;
    };

    connection_pool(std::size_t size, std::chrono::milliseconds wait, opener open);
    connection_pool(const connection_pool&) = delete;
    connection_pool& operator=(const connection_pool&) = delete;

    // Empty when no connection frees up within `wait` or a new one cannot be opened.
    std::optional<lease> acquire();

private:
    void release(ldap_handle handle, bool keep) noexcept;

    const std::size_t size_;
    const std::chrono::milliseconds wait_;
    const opener open_;
    std::mutex mutex_;
    std::condition_variable freed_;
    std::vector<ldap_handle> idle_;
    std::size_t open_count_ = 0;  // idle + leased + being opened
};

}  // namespace pwresetd::ldap
