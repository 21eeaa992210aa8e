#include "store/timed_store.hpp"

#include <array>
#include <chrono>
#include <string>
#include <type_traits>
#include <utility>

#include "common/metrics.hpp"

namespace pwresetd::store {
namespace {

enum class op {
    put_flow,
    get_open_flow,
    add_verified_method,
    claim_flow,
    release_flow,
    close_flow,
    close_user_flows,
    put_pending_totp,
    get_pending_totp,
    delete_pending_totp,
    confirm_totp,
    get_totp,
    remove_totp,
    last_totp_step,
    accept_totp_step,
    record_failure,
    reserve_failure,
    get_failures,
    clear_failures,
    put_code,
    consume_code,
    hit_window,
    set_recovery_codes,
    consume_recovery_code,
    recovery_codes_left,
    purge_expired,
};

constexpr std::array<std::string_view, 26> op_names{
    "put_flow",
    "get_open_flow",
    "add_verified_method",
    "claim_flow",
    "release_flow",
    "close_flow",
    "close_user_flows",
    "put_pending_totp",
    "get_pending_totp",
    "delete_pending_totp",
    "confirm_totp",
    "get_totp",
    "remove_totp",
    "last_totp_step",
    "accept_totp_step",
    "record_failure",
    "reserve_failure",
    "get_failures",
    "clear_failures",
    "put_code",
    "consume_code",
    "hit_window",
    "set_recovery_codes",
    "consume_recovery_code",
    "recovery_codes_left",
    "purge_expired",
};

class timed_store final : public state_store {
public:
    timed_store(std::unique_ptr<state_store> inner, std::string_view backend)
        : inner_(std::move(inner)) {
        auto& registry = metrics::registry::global();
        auto& seconds = registry.histograms(
            "pwresetd_state_operation_duration_seconds",
            "Time of state store operations, by backend (sqlite, redis) and operation.",
            {"backend", "operation"});
        auto& errors = registry.counters(
            "pwresetd_state_errors_total",
            "State store operations that failed (the request is answered 503), by backend and "
            "operation.",
            {"backend", "operation"});
        for (std::size_t i = 0; i < op_names.size(); ++i) {
            seconds_[i] = &seconds.with({backend, op_names[i]});
            errors_[i] = &errors.with({backend, op_names[i]});
        }
    }

    void put_flow(const reset_flow& flow) override {
        return timed(op::put_flow, [&] { return inner_->put_flow(flow); });
    }
    std::optional<reset_flow> get_open_flow(std::string_view id_hash, std::int64_t now) override {
        return timed(op::get_open_flow, [&] { return inner_->get_open_flow(id_hash, now); });
    }
    void add_verified_method(std::string_view id_hash, std::string_view method) override {
        return timed(op::add_verified_method,
                     [&] { return inner_->add_verified_method(id_hash, method); });
    }
    bool claim_flow(std::string_view id_hash, std::int64_t now, std::int64_t claim_until) override {
        return timed(op::claim_flow, [&] { return inner_->claim_flow(id_hash, now, claim_until); });
    }
    void release_flow(std::string_view id_hash) override {
        return timed(op::release_flow, [&] { return inner_->release_flow(id_hash); });
    }
    bool close_flow(std::string_view id_hash, std::int64_t now) override {
        return timed(op::close_flow, [&] { return inner_->close_flow(id_hash, now); });
    }
    void close_user_flows(std::string_view user_key) override {
        return timed(op::close_user_flows, [&] { return inner_->close_user_flows(user_key); });
    }
    void put_pending_totp(std::string_view enrollment_id_hash,
                          const pending_enrollment& pending) override {
        return timed(op::put_pending_totp,
                     [&] { return inner_->put_pending_totp(enrollment_id_hash, pending); });
    }
    std::optional<pending_enrollment> get_pending_totp(std::string_view enrollment_id_hash,
                                                       std::int64_t now) override {
        return timed(op::get_pending_totp,
                     [&] { return inner_->get_pending_totp(enrollment_id_hash, now); });
    }
    void delete_pending_totp(std::string_view enrollment_id_hash) override {
        return timed(op::delete_pending_totp,
                     [&] { return inner_->delete_pending_totp(enrollment_id_hash); });
    }
    bool confirm_totp(std::string_view enrollment_id_hash, std::int64_t now) override {
        return timed(op::confirm_totp,
                     [&] { return inner_->confirm_totp(enrollment_id_hash, now); });
    }
    std::optional<secret> get_totp(std::string_view user_key) override {
        return timed(op::get_totp, [&] { return inner_->get_totp(user_key); });
    }
    bool remove_totp(std::string_view user_key) override {
        return timed(op::remove_totp, [&] { return inner_->remove_totp(user_key); });
    }
    std::optional<std::int64_t> last_totp_step(std::string_view user_key) override {
        return timed(op::last_totp_step, [&] { return inner_->last_totp_step(user_key); });
    }
    bool accept_totp_step(std::string_view user_key, std::int64_t step) override {
        return timed(op::accept_totp_step,
                     [&] { return inner_->accept_totp_step(user_key, step); });
    }
    failure_state record_failure(std::string_view key, std::int64_t now,
                                 std::int64_t ttl_s) override {
        return timed(op::record_failure, [&] { return inner_->record_failure(key, now, ttl_s); });
    }
    failure_reservation reserve_failure(std::string_view key, std::int64_t now, std::int64_t ttl_s,
                                        int limit) override {
        return timed(op::reserve_failure,
                     [&] { return inner_->reserve_failure(key, now, ttl_s, limit); });
    }
    failure_state get_failures(std::string_view key, std::int64_t now) override {
        return timed(op::get_failures, [&] { return inner_->get_failures(key, now); });
    }
    void clear_failures(std::string_view key) override {
        return timed(op::clear_failures, [&] { return inner_->clear_failures(key); });
    }
    void put_code(std::string_view flow_id_hash, std::string_view method,
                  std::string_view code_hash, std::int64_t expires_at) override {
        return timed(op::put_code,
                     [&] { return inner_->put_code(flow_id_hash, method, code_hash, expires_at); });
    }
    bool consume_code(std::string_view flow_id_hash, std::string_view method,
                      std::string_view code_hash, std::int64_t now) override {
        return timed(op::consume_code,
                     [&] { return inner_->consume_code(flow_id_hash, method, code_hash, now); });
    }
    window_hit hit_window(std::string_view key, std::int64_t now, std::int64_t window_s,
                          int limit) override {
        return timed(op::hit_window, [&] { return inner_->hit_window(key, now, window_s, limit); });
    }
    void set_recovery_codes(std::string_view user_key,
                            const std::vector<std::string>& code_hashes) override {
        return timed(op::set_recovery_codes,
                     [&] { return inner_->set_recovery_codes(user_key, code_hashes); });
    }
    bool consume_recovery_code(std::string_view user_key, std::string_view code_hash) override {
        return timed(op::consume_recovery_code,
                     [&] { return inner_->consume_recovery_code(user_key, code_hash); });
    }
    int recovery_codes_left(std::string_view user_key) override {
        return timed(op::recovery_codes_left,
                     [&] { return inner_->recovery_codes_left(user_key); });
    }
    void purge_expired(std::int64_t now) override {
        return timed(op::purge_expired, [&] { return inner_->purge_expired(now); });
    }

private:
    template <class Call>
    auto timed(op which, Call call) -> decltype(call()) {
        const auto i = static_cast<std::size_t>(which);
        const auto started = std::chrono::steady_clock::now();
        const auto observe = [&] {
            seconds_[i]->observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        };
        try {
            if constexpr (std::is_void_v<decltype(call())>) {
                call();
                observe();
            } else {
                auto result = call();
                observe();
                return result;
            }
        } catch (...) {
            observe();
            errors_[i]->inc();
            throw;
        }
    }

    std::unique_ptr<state_store> inner_;
    std::array<metrics::histogram*, op_names.size()> seconds_{};
    std::array<metrics::counter*, op_names.size()> errors_{};
};

}  // namespace

std::unique_ptr<state_store> with_timing(std::unique_ptr<state_store> inner,
                                         std::string_view backend) {
    return std::make_unique<timed_store>(std::move(inner), backend);
}

}  // namespace pwresetd::store
