#pragma once
// The directory's health as GET /v1/health reports it. One thread pings the directory when
// somebody asks and the last answer is older than max_age; every caller reads the last
// answer without waiting, so a flood of health checks costs neither a directory search nor
// a place in the worker queue (a worker waits only before the very first answer).

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "ldap/directory.hpp"

namespace pwresetd::daemon {

class health_monitor {
public:
    enum class state { unknown, healthy, degraded };

    explicit health_monitor(ldap::directory& directory,
                            std::chrono::milliseconds max_age = std::chrono::seconds(2));
    ~health_monitor();
    health_monitor(const health_monitor&) = delete;
    health_monitor& operator=(const health_monitor&) = delete;

    // The last answer, at once; asks for a new ping when it is stale.
    state current();
    // The last answer; before the first ping has finished, waits for it.
    state await_known();
    // How many pings have run (for tests).
    unsigned pings();

private:
    void run(const std::stop_token& stop);
    void want_fresh_locked(std::chrono::steady_clock::time_point now);

    ldap::directory& directory_;
    const std::chrono::milliseconds max_age_;
    std::mutex mutex_;
    std::condition_variable_any changed_;
    state state_ = state::unknown;
    std::chrono::steady_clock::time_point checked_at_{};
    bool wanted_ = true;  // the first ping runs at once
    unsigned pings_ = 0;
    std::jthread thread_;  // last: starts after everything it reads
};

}  // namespace pwresetd::daemon
