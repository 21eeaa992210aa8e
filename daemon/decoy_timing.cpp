#include "daemon/decoy_timing.hpp"

#include <sys/prctl.h>

#include <thread>

#include "common/crypto.hpp"

namespace pwresetd::daemon {

void decoy_timing::record_real(clock::time_point started) {
    const auto took = clock::now() - started;
    const std::lock_guard lock(mutex_);
    samples_[next_] = took;
    next_ = (next_ + 1) % capacity;
    if (count_ < capacity) {
        ++count_;
    }
}

std::size_t decoy_timing::samples() const {
    const std::lock_guard lock(mutex_);
    return count_;
}

void decoy_timing::wait_as_real(clock::time_point started) {
    clock::duration target{};
    {
        const std::lock_guard lock(mutex_);
        if (count_ == 0) {
            return;
        }
        target = samples_[crypto::random_below(static_cast<std::uint32_t>(count_))];
    }
    const auto until = started + target;
    // The default timer slack (50 us) would make every decoy a little late; a short spin at
    // the end keeps the error to a few microseconds either way.
    thread_local const bool slack_set = ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) == 0;
    (void)slack_set;
    constexpr auto spin = std::chrono::microseconds(200);
    if (until - clock::now() > spin) {
        std::this_thread::sleep_until(until - spin);
    }
    while (clock::now() < until) {
        std::this_thread::yield();
    }
}

}  // namespace pwresetd::daemon
