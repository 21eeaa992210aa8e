#include "daemon/health_monitor.hpp"

namespace pwresetd::daemon {

health_monitor::health_monitor(ldap::directory& directory, std::chrono::milliseconds max_age)
    : directory_(directory),
      max_age_(max_age),
      thread_([this](const std::stop_token& stop) { run(stop); }) {}

health_monitor::~health_monitor() {
    thread_.request_stop();  // wakes the wait below; a running ping ends at its own timeout
}

void health_monitor::want_fresh_locked(std::chrono::steady_clock::time_point now) {
    if (state_ != state::unknown && now - checked_at_ <= max_age_) {
        return;
    }
    if (!wanted_) {
        wanted_ = true;
        changed_.notify_all();
    }
}

health_monitor::state health_monitor::current() {
    const std::lock_guard lock(mutex_);
    want_fresh_locked(std::chrono::steady_clock::now());
    return state_;
}

health_monitor::state health_monitor::await_known() {
    std::unique_lock lock(mutex_);
    want_fresh_locked(std::chrono::steady_clock::now());
    changed_.wait(lock, [this] { return state_ != state::unknown; });
    return state_;
}

unsigned health_monitor::pings() {
    const std::lock_guard lock(mutex_);
    return pings_;
}

void health_monitor::run(const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    while (true) {
        if (!changed_.wait(lock, stop, [this] { return wanted_; })) {
            if (state_ == state::unknown) {
                state_ = state::degraded;  // nobody waits for a first answer that never comes
                changed_.notify_all();
            }
            return;
        }
        lock.unlock();
        const bool ok = directory_.ping();
        lock.lock();
        wanted_ = false;
        ++pings_;
        state_ = ok ? state::healthy : state::degraded;
        checked_at_ = std::chrono::steady_clock::now();
        changed_.notify_all();
        if (stop.stop_requested()) {
            return;
        }
    }
}

}  // namespace pwresetd::daemon
