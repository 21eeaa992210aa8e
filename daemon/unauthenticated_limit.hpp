#pragma once
// limits.per_ip_per_minute for requests refused before authentication (API.md counts every
// /v1 request but health). They never reach the state store, so they are counted here, in
// memory, per node and per socket address (ip_limit_address), in fixed one-minute windows.
// The table is bounded: at most `capacity` addresses; when it is full of live windows, a
// new address is refused as limited rather than making the table grow. Thread-safe and
// non-blocking (I/O threads call it).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pwresetd::daemon {

class unauthenticated_limit {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t default_capacity = 4096;

    explicit unauthenticated_limit(std::size_t capacity = default_capacity) : capacity_(capacity) {}

    // Counts one request from `address`; 0 when it is within `limit` per minute, else the
    // seconds until its window ends.
    std::int64_t hit(std::string_view address, int limit, clock::time_point now = clock::now());

private:
    struct window {
        clock::time_point ends;
        int count = 0;
    };
    std::mutex mutex_;
    std::size_t capacity_;
    std::unordered_map<std::string, window> windows_;
};

}  // namespace pwresetd::daemon
