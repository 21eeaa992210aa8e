#include "daemon/decoy_timing.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <thread>

#include "common/crypto.hpp"

namespace pwresetd::daemon {

void decoy_timing::record(clock::duration took) {
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

void decoy_timing::imitate() {
    const auto started = clock::now();
    clock::duration target{};
    clock::duration late{};
    {
        const std::lock_guard lock(mutex_);
        if (count_ == 0) {
            return;
        }
        target = samples_[crypto::random_below(static_cast<std::uint32_t>(count_))];
        late = late_;
    }
    // A sleeping thread wakes up late (timer slack, a busy machine), and the recorded real
    // durations already hold the real call's own wake-up: aim early by how late recent
    // sleeps woke, so the imitation lasts the sampled duration, not that plus a wake-up.
    thread_local const bool slack_set = ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) == 0;
    (void)slack_set;
    const auto aim = started + std::max(clock::duration::zero(), target - late);
    std::this_thread::sleep_until(aim);
    const auto woke_late = clock::now() - aim;
    const std::lock_guard lock(mutex_);
    late_ = (late_ * 7 + woke_late) / 8;
}

void decoy_timing::inherit(const decoy_timing& older) {
    if (&older == this) {
        return;
    }
    const std::scoped_lock lock(mutex_, older.mutex_);
    samples_ = older.samples_;
    count_ = older.count_;
    next_ = older.next_;
    late_ = older.late_;
}

}  // namespace pwresetd::daemon
