#pragma once
// A fixed set of threads for blocking work (libldap, SQLite) with a bounded queue, so the
// I/O threads never block and overload is answered at once (try_submit returns false and
// the caller replies 503) instead of queueing without bound.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pwresetd::daemon {

class worker_pool {
public:
    worker_pool(std::size_t threads, std::size_t queue_capacity);
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;
    ~worker_pool();

    // Queues the job; false (and the job is dropped) when the queue is full or stopping.
    bool try_submit(std::function<void()> job);
    // Stops accepting jobs, runs what is queued, joins the threads. Idempotent.
    void stop();
    [[nodiscard]] std::size_t queued() const;

private:
    void run();

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    std::vector<std::thread> threads_;
    std::size_t capacity_;
    bool stopping_ = false;
};

}  // namespace pwresetd::daemon
