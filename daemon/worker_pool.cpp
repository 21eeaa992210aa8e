#include "daemon/worker_pool.hpp"

#include <exception>

#include "common/log.hpp"

namespace pwresetd::daemon {

worker_pool::worker_pool(std::size_t threads, std::size_t queue_capacity)
    : capacity_(queue_capacity) {
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) {
        threads_.emplace_back([this] { run(); });
    }
}

worker_pool::~worker_pool() {
    stop();
}

bool worker_pool::try_submit(std::function<void()> job) {
    {
        const std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= capacity_) {
            return false;
        }
        queue_.push_back(std::move(job));
    }
    wake_.notify_one();
    return true;
}

void worker_pool::stop() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
}

std::size_t worker_pool::queued() const {
    const std::lock_guard lock(mutex_);
    return queue_.size();
}

void worker_pool::run() {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) {
                return;  // stopping and drained
            }
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        try {
            job();
        } catch (const std::exception& e) {
            log::error("worker.job_failed", {{"error", e.what()}});
        } catch (...) {
            log::error("worker.job_failed", {{"error", "unknown exception"}});
        }
    }
}

}  // namespace pwresetd::daemon
