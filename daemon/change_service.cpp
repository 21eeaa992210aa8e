#include "daemon/change_service.hpp"

#include <algorithm>

#include "common/log.hpp"
#include "daemon/daemon_metrics.hpp"

namespace pwresetd::daemon {
namespace {

void count_change(std::string_view outcome) {
    daemon_metrics::get().changes.with({outcome}).inc();
}

}  // namespace

change_service::change_service(const config& cfg, const policy::password_policy& policy,
                               ldap::directory& directory, store::state_store& store,
                               audit_log& audit, clock_fn clock)
    : limits_(cfg.limits),
      policy_(policy),
      directory_(directory),
      store_(store),
      audit_(audit),
      clock_(std::move(clock)) {}

outcome<bool> change_service::change(const request_context& ctx, std::string_view given_username,
                                     const secret& current_password, const secret& new_password) {
    if (auto problem = username_problem(given_username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
    }
    const std::string username = canonical_username(given_username);
    if (username.empty()) {
        return fail(failure_code::bad_request, "username must not be empty");
    }
    auto record = audit_record(ctx, "password.change");
    record["username"] = username;
    // Rules that need nothing from the directory answer the same for every username.
    if (auto refused = policy_failure(policy_, new_password, username, {})) {
        record["outcome"] = "password_rejected";
        count_change("password_rejected");
        record["rule"] = refused->violations.front().rule;
        audit_.record(std::move(record));
        return *refused;
    }
    const std::int64_t now = clock_();
    const auto found = directory_.find_user(username);
    if (found.status == ldap::lookup_status::unavailable) {
        return fail(failure_code::directory_unavailable);
    }
    const bool real = found.status == ldap::lookup_status::found && found.user &&
                      !found.user->disabled && !found.user->is_protected;
    const std::string failure_key = password_failure_key(
        real ? user_key_for(*found.user) : decoy_key_for(directory_, username));
    const int limit = limits_.verify_failures;
    const auto slot = store_.reserve_failure(failure_key, now, limits_.lockout_s, limit);
    if (!slot.reserved) {
        return wrong_password_failure(slot, limit, now);
    }
    const auto wrong = [&](std::string_view reason) {
        record["outcome"] = "invalid_credentials";
        count_change("invalid_credentials");
        record["reason"] = reason;
        record["failures"] = slot.count;
        audit_.record(std::move(record));
        return wrong_password_failure(slot, limit, now);
    };
    if (!real) {
        // In the time the user's bind would have taken (decoy_timing.hpp).
        bind_timing_.imitate();
        return wrong(found.status != ldap::lookup_status::found ? "unknown_user"
                     : found.user->disabled                     ? "disabled"
                                                                : "protected");
    }
    record["dn"] = found.user->dn;
    // The display name only comes from the directory: a refusal that depends on it is told
    // only to someone who has proven the current password, so a 422 never reveals that an
    // account exists.
    if (auto refused = policy_failure(policy_, new_password, username, found.user->display_name)) {
        const auto bind_started = decoy_timing::clock::now();
        const auto bound = directory_.verify_password(*found.user, current_password);
        if (bound == ldap::bind_status::invalid_credentials || bound == ldap::bind_status::locked) {
            bind_timing_.record(decoy_timing::clock::now() - bind_started);
        }
        switch (bound) {
            case ldap::bind_status::ok:
            case ldap::bind_status::must_change:
                break;
            case ldap::bind_status::unavailable:
                return fail(failure_code::directory_unavailable);
            case ldap::bind_status::locked:
                // AD (data 775) and ppolicy say "locked" whatever the password: not proof.
                return wrong("locked_in_directory");
            case ldap::bind_status::invalid_credentials:
                return wrong("wrong_password");
        }
        store_.clear_failures(failure_key);
        record["outcome"] = "password_rejected";
        count_change("password_rejected");
        record["rule"] = refused->violations.front().rule;
        audit_.record(std::move(record));
        return *refused;
    }

    const auto write_started = decoy_timing::clock::now();
    const auto written = directory_.change_password(*found.user, current_password, new_password);
    if (written.status == ldap::write_status::wrong_password ||
        written.status == ldap::write_status::locked) {
        bind_timing_.record(decoy_timing::clock::now() - write_started);
    }
    switch (written.status) {
        case ldap::write_status::ok:
            store_.clear_failures(failure_key);
            record["outcome"] = "password_changed";
            count_change("password_changed");
            audit_.record(std::move(record));
            log::info("password.changed", {{"request_id", ctx.request_id}, {"user", username}});
            return true;
        case ldap::write_status::wrong_password:
            return wrong("wrong_password");
        case ldap::write_status::locked:
            return wrong("locked_in_directory");
        case ldap::write_status::rejected: {
            // Refused for its new password: the current one was accepted.
            store_.clear_failures(failure_key);
            record["outcome"] = "password_rejected";
            count_change("password_rejected");
            record["rule"] = written.reason ? written.reason->rule : "directory_policy";
            audit_.record(std::move(record));
            auto f = fail(failure_code::password_rejected);
            f.violations.push_back(directory_violation(written));
            return f;
        }
        case ldap::write_status::unavailable:
            record["outcome"] = "directory_unavailable";
            count_change("directory_unavailable");
            audit_.record(std::move(record));
            return fail(failure_code::directory_unavailable);
        case ldap::write_status::failed:
            break;
    }
    record["outcome"] = "directory_error";
    count_change("directory_error");
    audit_.record(std::move(record));
    log::error(
        "password.change_failed",
        {{"request_id", ctx.request_id}, {"user", username}, {"diagnostic", written.diagnostic}});
    return fail(failure_code::internal);
}

}  // namespace pwresetd::daemon
