#include "daemon/change_service.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace pwresetd::daemon {

change_service::change_service(const config& cfg, const policy::password_policy& policy,
                               ldap::directory& directory, store::state_store& store,
                               audit_log& audit, clock_fn clock)
    : limits_(cfg.limits),
      policy_(policy),
      directory_(directory),
      store_(store),
      audit_(audit),
      clock_(std::move(clock)) {}

failure change_service::wrong_credentials(const std::string& failure_key, std::int64_t now) {
    const auto after = store_.record_failure(failure_key, now, limits_.lockout_s);
    if (after.count >= limits_.verify_failures) {
        auto f = fail(failure_code::locked);
        f.retry_after = std::max<std::int64_t>(1, after.expires_at - now);
        return f;
    }
    return fail(failure_code::invalid_credentials);
}

outcome<bool> change_service::change(const request_context& ctx, std::string_view username,
                                     const secret& current_password, const secret& new_password) {
    if (auto problem = username_problem(username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
    }
    boost::json::object record{{"event", "password.change"},
                               {"request_id", ctx.request_id},
                               {"client", ctx.client},
                               {"ip", ctx.remote_ip},
                               {"username", username}};
    // Rules that need nothing from the directory answer the same for every username.
    if (auto refused = policy_failure(policy_, new_password, username, {})) {
        record["outcome"] = "password_rejected";
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
    const std::string failure_key =
        "change:" + (real ? user_key_for(*found.user) : decoy_key_for(username));

    const auto before = store_.get_failures(failure_key, now);
    if (before.count >= limits_.verify_failures) {
        auto f = fail(failure_code::locked);
        f.retry_after = std::max<std::int64_t>(1, before.expires_at - now);
        return f;
    }
    if (!real) {
        record["outcome"] = "invalid_credentials";
        record["reason"] = found.status != ldap::lookup_status::found ? "unknown_user"
                           : found.user->disabled                     ? "disabled"
                                                                      : "protected";
        audit_.record(std::move(record));
        return wrong_credentials(failure_key, now);
    }
    record["dn"] = found.user->dn;
    // The display name only comes from the directory: a refusal that depends on it is told
    // only to someone who has proven the current password, so a 422 never reveals that an
    // account exists.
    if (auto refused = policy_failure(policy_, new_password, username, found.user->display_name)) {
        switch (directory_.verify_password(*found.user, current_password)) {
            case ldap::bind_status::ok:
            case ldap::bind_status::must_change:
                break;
            case ldap::bind_status::unavailable:
                return fail(failure_code::directory_unavailable);
            case ldap::bind_status::locked: {
                auto f = fail(failure_code::locked, "directory");
                f.retry_after = limits_.lockout_s;
                return f;
            }
            case ldap::bind_status::invalid_credentials:
                record["outcome"] = "invalid_credentials";
                record["reason"] = "wrong_password";
                audit_.record(std::move(record));
                return wrong_credentials(failure_key, now);
        }
        record["outcome"] = "password_rejected";
        record["rule"] = refused->violations.front().rule;
        audit_.record(std::move(record));
        return *refused;
    }

    const auto written = directory_.change_password(*found.user, current_password, new_password);
    switch (written.status) {
        case ldap::write_status::ok:
            store_.clear_failures(failure_key);
            record["outcome"] = "password_changed";
            audit_.record(std::move(record));
            log::info("password.changed", {{"request_id", ctx.request_id}, {"user", username}});
            return true;
        case ldap::write_status::wrong_password:
            record["outcome"] = "invalid_credentials";
            record["reason"] = "wrong_password";
            audit_.record(std::move(record));
            return wrong_credentials(failure_key, now);
        case ldap::write_status::locked: {
            record["outcome"] = "locked";
            record["reason"] = "locked_in_directory";
            audit_.record(std::move(record));
            auto f = fail(failure_code::locked, "directory");
            f.retry_after = limits_.lockout_s;
            return f;
        }
        case ldap::write_status::rejected: {
            record["outcome"] = "password_rejected";
            record["rule"] = written.reason ? written.reason->rule : "directory_policy";
            audit_.record(std::move(record));
            auto f = fail(failure_code::password_rejected);
            f.violations.push_back(directory_violation(written));
            return f;
        }
        case ldap::write_status::unavailable:
            record["outcome"] = "directory_unavailable";
            audit_.record(std::move(record));
            return fail(failure_code::directory_unavailable);
        case ldap::write_status::failed:
            break;
    }
    record["outcome"] = "directory_error";
    audit_.record(std::move(record));
    log::error(
        "password.change_failed",
        {{"request_id", ctx.request_id}, {"user", username}, {"diagnostic", written.diagnostic}});
    return fail(failure_code::internal);
}

}  // namespace pwresetd::daemon
