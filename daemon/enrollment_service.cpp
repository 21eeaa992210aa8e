#include "daemon/enrollment_service.hpp"

#include "common/log.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {
namespace {

boost::json::object audit_base(const request_context& ctx, std::string_view event) {
    boost::json::object o;
    o["event"] = event;
    o["request_id"] = ctx.request_id;
    o["client"] = ctx.client;
    o["ip"] = ctx.remote_ip;
    return o;
}

}  // namespace

enrollment_service::enrollment_service(const config& cfg, ldap::directory& directory,
                                       store::state_store& store, audit_log& audit,
                                       const factor_keys& keys, clock_fn clock)
    : factors_(cfg.factors),
      limits_(cfg.limits),
      directory_(directory),
      store_(store),
      audit_(audit),
      keys_(keys),
      clock_(std::move(clock)) {}

outcome<totp_enrollment_started> enrollment_service::start_totp(const request_context& ctx,
                                                                std::string_view username,
                                                                const secret& current_password) {
    if (auto problem = username_problem(username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
    }
    if (!factors_.totp.enabled) {
        return fail(failure_code::bad_request, "the totp method is not enabled");
    }
    auto record = audit_base(ctx, "enrollment.totp_start");
    record["username"] = username;

    const auto found = directory_.find_user(username);
    if (found.status == ldap::lookup_status::unavailable) {
        return fail(failure_code::directory_unavailable);
    }
    std::string refusal;
    if (found.status != ldap::lookup_status::found || !found.user) {
        refusal =
            found.status == ldap::lookup_status::ambiguous ? "ambiguous_user" : "unknown_user";
    } else if (found.user->disabled) {
        refusal = "disabled";
    } else if (found.user->is_protected) {
        refusal = "protected";
    } else {
        switch (directory_.verify_password(*found.user, current_password)) {
            case ldap::bind_status::ok:
            case ldap::bind_status::must_change:  // the password is proven all the same
                break;
            case ldap::bind_status::unavailable:
                return fail(failure_code::directory_unavailable);
            case ldap::bind_status::locked:
                refusal = "account_locked";
                break;
            case ldap::bind_status::invalid_credentials:
                refusal = "wrong_password";
                break;
        }
    }
    if (!refusal.empty()) {
        record["outcome"] = "invalid_credentials";
        record["reason"] = refusal;
        audit_.record(std::move(record));
        log::info("enrollment.refused",
                  {{"request_id", ctx.request_id}, {"user", username}, {"reason", refusal}});
        return fail(failure_code::invalid_credentials);
    }

    const auto& user = *found.user;
    const std::int64_t now = clock_();
    store::pending_enrollment pending;
    pending.user_key = user_key_for(user);
    pending.username = std::string(username);
    pending.user_dn = user.dn;
    pending.key = factors::generate_totp_key(factors_.totp.params.algorithm);
    pending.expires_at = now + pending_ttl_s;

    totp_enrollment_started reply;
    reply.enrollment_id = new_opaque_id();
    reply.secret_base32 = factors::base32_encode(pending.key.bytes());
    reply.otpauth_uri = factors::otpauth_uri(factors_.totp.issuer, username, reply.secret_base32,
                                             factors_.totp.params);
    store_.put_pending_totp(id_hash(reply.enrollment_id), pending);

    record["dn"] = user.dn;
    record["outcome"] = "pending";
    audit_.record(std::move(record));
    log::info("enrollment.started", {{"request_id", ctx.request_id}, {"user", username}});
    return reply;
}

outcome<totp_enrollment_confirmed> enrollment_service::confirm_totp(const request_context& ctx,
                                                                    std::string_view enrollment_id,
                                                                    std::string_view code) {
    if (!plausible_opaque_id(enrollment_id)) {
        return fail(failure_code::enrollment_expired);
    }
    const std::int64_t now = clock_();
    const std::string hash = id_hash(enrollment_id);
    auto pending = store_.get_pending_totp(hash, now);
    if (!pending) {
        return fail(failure_code::enrollment_expired);
    }
    auto record = audit_base(ctx, "enrollment.totp_confirm");
    record["username"] = pending->username;
    record["dn"] = pending->user_dn;

    const auto last_step = store_.last_totp_step(pending->user_key);
    const auto step = factors::totp_match(pending->key, code, now, factors_.totp.params, last_step);
    if (!step || !store_.accept_totp_step(pending->user_key, *step)) {
        // Wrong codes burn the pending enrollment after limits.verify_failures tries.
        const std::string failure_key = "enroll:" + hash;
        const auto after = store_.record_failure(failure_key, now, pending_ttl_s);
        record["outcome"] = "invalid_code";
        record["failures"] = after.count;
        if (after.count >= limits_.verify_failures) {
            store_.delete_pending_totp(hash);
            store_.clear_failures(failure_key);
            record["outcome"] = "abandoned";
        }
        audit_.record(std::move(record));
        return fail(failure_code::invalid_code);
    }
    if (!store_.confirm_totp(hash, now)) {
        return fail(failure_code::enrollment_expired);
    }
    totp_enrollment_confirmed confirmed;
    std::vector<std::string> hashes;
    for (int i = 0; i < factors::recovery_code_count; ++i) {
        confirmed.recovery_codes.push_back(factors::generate_recovery_code());
        // Hashed in the canonical form a user's typing is normalized to.
        const auto canonical =
            factors::normalize_recovery_code(confirmed.recovery_codes.back().view());
        hashes.push_back(
            factors::code_hash(keys_.recovery, "recovery:" + pending->user_key, canonical->view()));
    }
    store_.set_recovery_codes(pending->user_key, hashes);
    record["outcome"] = "enrolled";
    record["recovery_codes"] = factors::recovery_code_count;
    audit_.record(std::move(record));
    log::info("enrollment.confirmed",
              {{"request_id", ctx.request_id}, {"user", pending->username}});
    return confirmed;
}

}  // namespace pwresetd::daemon
