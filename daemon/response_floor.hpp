#pragma once
// The second half of "real and unknown accounts answer in the same time" (decoy_timing.hpp
// is the first): the answers of one kind that both real and decoy requests give (a started
// flow, a queued challenge, a wrong code, a wrong password) are held back until a floor has
// passed since the request was taken up: the 99th percentile of how long recent answers of
// that kind took to compute, real and decoy alike. Below the floor every answer leaves at
// the floor, whatever work was behind it (one more directory entry read, one more queue
// push); only the slowest percent is answered late, as it is. The wait is a timer on the
// connection, not a worker thread, so it costs no throughput. Thread-safe.
#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>

namespace pwresetd::daemon {

class response_floor {
public:
    using clock = std::chrono::steady_clock;

    // An answer of this kind took `took` to compute; returns the floor to hold it to.
    clock::duration record(clock::duration took);
    // Starts from what `older` has learned (a reload builds a new api; the floor must not
    // start from nothing and answer early for a while).
    void inherit(const response_floor& older);

private:
    static constexpr std::size_t capacity = 512;
    mutable std::mutex mutex_;
    std::array<clock::duration, capacity> samples_{};
    std::size_t count_ = 0;
    std::size_t next_ = 0;
};

}  // namespace pwresetd::daemon
