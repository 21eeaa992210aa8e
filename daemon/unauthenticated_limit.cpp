#include "daemon/unauthenticated_limit.hpp"

#include <algorithm>
#include <iterator>

#include "daemon/api.hpp"

namespace pwresetd::daemon {

std::int64_t unauthenticated_limit::hit(std::string_view address, int limit,
                                        clock::time_point now) {
    const std::string key = ip_limit_address(address);
    const auto seconds_left = [&](const window& w) {
        return std::max<std::int64_t>(
            1, std::chrono::ceil<std::chrono::seconds>(w.ends - now).count());
    };
    const std::lock_guard lock(mutex_);
    auto it = windows_.find(key);
    if (it != windows_.end() && it->second.ends <= now) {
        windows_.erase(it);
        it = windows_.end();
    }
    if (it == windows_.end()) {
        if (windows_.size() >= capacity_) {
            std::erase_if(windows_, [&](const auto& kv) { return kv.second.ends <= now; });
        }
        if (windows_.size() >= capacity_) {
            return 60;  // full of live windows: refuse rather than grow
        }
        it = windows_.emplace(key, window{now + std::chrono::seconds(60), 0}).first;
    }
    if (it->second.count >= limit) {
        return seconds_left(it->second);
    }
    ++it->second.count;
    return 0;
}

}  // namespace pwresetd::daemon
