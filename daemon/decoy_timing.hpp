#pragma once
// Makes a decoy answer take as long as a real one (API.md: real, unknown, disabled and
// protected accounts are indistinguishable by status, body and time).
//
// Decoys do the same work as real accounts wherever they can (the same lookups, store reads
// and TOTP computation). What they cannot do is the user's bind: on a directory with a
// lockout policy a failed bind also writes the failure to the entry, so it takes far longer
// than anything else in the request. The real path records how long that directory call
// took; the decoy path, at the same point, sleeps for a duration drawn at random from the
// recent real ones. Drawing (not averaging, and not "wait until at least") gives decoys the
// same distribution of times as real requests, so a statistical test over many requests
// finds no difference either. Before any real call has been seen, decoys do not sleep.
//
// One instance per imitated call (e.g. "the bind of a change with a wrong password").
// Thread-safe.
#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>

namespace pwresetd::daemon {

class decoy_timing {
public:
    using clock = std::chrono::steady_clock;

    // The real call that decoys skip took `took`.
    void record(clock::duration took);
    // Blocks this (worker) thread for a duration drawn from the recorded ones.
    void imitate();
    // Starts from the samples `older` has recorded (a reload builds new services).
    void inherit(const decoy_timing& older);

    [[nodiscard]] std::size_t samples() const;

private:
    static constexpr std::size_t capacity = 128;
    mutable std::mutex mutex_;
    std::array<clock::duration, capacity> samples_{};
    std::size_t count_ = 0;
    std::size_t next_ = 0;
    clock::duration late_{};  // how late recent imitations woke up (moving average)
};

}  // namespace pwresetd::daemon
