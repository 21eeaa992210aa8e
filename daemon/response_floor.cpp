#include "daemon/response_floor.hpp"

#include <algorithm>
#include <vector>

namespace pwresetd::daemon {

response_floor::clock::duration response_floor::record(clock::duration took) {
    std::array<clock::duration, capacity> sorted{};
    std::size_t n = 0;
    {
        const std::lock_guard lock(mutex_);
        samples_[next_] = took;
        next_ = (next_ + 1) % capacity;
        count_ = std::min(capacity, count_ + 1);
        n = count_;
        std::copy_n(samples_.begin(), n, sorted.begin());
    }
    const auto p99 = sorted.begin() + static_cast<std::ptrdiff_t>((n * 99) / 100);
    std::nth_element(sorted.begin(), p99, sorted.begin() + static_cast<std::ptrdiff_t>(n));
    return *p99;
}

void response_floor::inherit(const response_floor& older) {
    if (&older == this) {
        return;
    }
    const std::scoped_lock lock(mutex_, older.mutex_);
    samples_ = older.samples_;
    count_ = older.count_;
    next_ = older.next_;
}

}  // namespace pwresetd::daemon
