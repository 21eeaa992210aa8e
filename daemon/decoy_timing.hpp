#pragma once
// Makes a decoy answer take as long as a real one (API.md: real, unknown, disabled and
// protected accounts are indistinguishable by status, body and time).
//
// A decoy path skips work that only real accounts get (the user's bind, which on a
// directory with a lockout policy also writes the failure to the entry; a group search; a
// key read). The real path records how long it took; the decoy path then waits until a
// duration drawn at random from the recent real ones has passed since it started. Drawing
// instead of averaging gives decoys the same distribution of times as real requests, so a
// statistical test over many requests finds no difference either. Before any real
// request has been seen, decoys answer without waiting.
//
// One instance per endpoint and outcome (e.g. "change, wrong password"). Thread-safe.
#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>

namespace pwresetd::daemon {

class decoy_timing {
public:
    using clock = std::chrono::steady_clock;

    // A real request that started at `started` has reached the answer this decoy imitates.
    void record_real(clock::time_point started);
    // Blocks this (worker) thread until `started` plus a sampled real duration.
    void wait_as_real(clock::time_point started);

    [[nodiscard]] std::size_t samples() const;

private:
    static constexpr std::size_t capacity = 128;
    mutable std::mutex mutex_;
    std::array<clock::duration, capacity> samples_{};
    std::size_t count_ = 0;
    std::size_t next_ = 0;
};

}  // namespace pwresetd::daemon
