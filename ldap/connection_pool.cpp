#include "ldap/connection_pool.hpp"

#include <utility>

#include "common/log.hpp"
#include "ldap/connection.hpp"

namespace pwresetd::ldap {

connection_pool::lease::~lease() {
    if (pool_ != nullptr) {
        pool_->release(std::move(handle_), keep_);
    }
}

connection_pool::connection_pool(std::size_t size, std::chrono::milliseconds wait, opener open)
    : size_(size == 0 ? 1 : size), wait_(wait), open_(std::move(open)) {
    idle_.reserve(size_);  // release() never allocates
}

std::optional<connection_pool::lease> connection_pool::acquire() {
    std::unique_lock lock(mutex_);
    while (true) {
        if (!freed_.wait_for(lock, wait_,
                             [this] { return !idle_.empty() || open_count_ < size_; })) {
            log::warning("ldap.pool_exhausted",
                         {{"size", static_cast<std::uint64_t>(size_)},
                          {"wait_ms", static_cast<std::int64_t>(wait_.count())}});
            return std::nullopt;
        }
        if (idle_.empty()) {
            break;
        }
        ldap_handle handle = std::move(idle_.back());
        idle_.pop_back();
        if (idle_connection_is_alive(handle.get())) {
            return lease(this, std::move(handle));
        }
        // Closed by the server while idle (idle timeout, restart): drop it, look again.
        --open_count_;
        lock.unlock();
        handle.reset();
        log::info("ldap.idle_connection_closed");
        lock.lock();
    }
    ++open_count_;
    lock.unlock();
    ldap_handle handle = open_();
    if (!handle) {
        release(nullptr, false);
        return std::nullopt;
    }
    return lease(this, std::move(handle));
}

void connection_pool::release(ldap_handle handle, bool keep) noexcept {
    {
        const std::lock_guard lock(mutex_);
        if (keep && handle) {
            idle_.push_back(std::move(handle));
        } else {
            --open_count_;
        }
    }
    freed_.notify_one();
    // A discarded handle is unbound here, outside the lock.
}

}  // namespace pwresetd::ldap
