#include "daemon/enrollment_service.hpp"

#include <algorithm>

#include "common/log.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {

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

outcome<totp_enrollment_started> enrollment_service::start_totp(
    const request_context& ctx, std::string_view given_username, const secret& current_password,
    std::optional<std::string_view> current_code) {
    if (auto problem = username_problem(given_username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
    }
    if (!factors_.totp.enabled) {
        return fail(failure_code::bad_request, "the totp method is not enabled");
    }
    const std::string username = canonical_username(given_username);
    if (username.empty()) {
        return fail(failure_code::bad_request, "username must not be empty");
    }
    auto record = audit_record(ctx, "enrollment.totp_start");
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
    }
    const bool real = refusal.empty();
    const std::int64_t now = clock_();
    const std::string failure_key = password_failure_key(
        real ? user_key_for(*found.user) : decoy_key_for(directory_, username));
    const int limit = limits_.verify_failures;
    const auto slot = store_.reserve_failure(failure_key, now, limits_.lockout_s, limit);
    if (!slot.reserved) {
        return wrong_password_failure(slot, limit, now);
    }
    if (real) {
        const auto bind_started = decoy_timing::clock::now();
        const auto bound = directory_.verify_password(*found.user, current_password);
        if (bound == ldap::bind_status::invalid_credentials || bound == ldap::bind_status::locked) {
            bind_timing_.record(decoy_timing::clock::now() - bind_started);
        }
        switch (bound) {
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
    } else {
        bind_timing_.imitate();  // in the time the user's bind would have taken
    }
    if (!refusal.empty()) {
        record["outcome"] = "invalid_credentials";
        record["reason"] = refusal;
        record["failures"] = slot.count;
        audit_.record(std::move(record));
        log::info("enrollment.refused",
                  {{"request_id", ctx.request_id}, {"user", username}, {"reason", refusal}});
        return wrong_password_failure(slot, limit, now);
    }
    store_.clear_failures(failure_key);

    // Replacing an authenticator needs proof of the one in use, or anyone who learns the
    // password takes over the account's reset.
    const std::string user_key = user_key_for(*found.user);
    bool user_had_totp = false;
    if (const auto existing = store_.get_totp(user_key)) {
        user_had_totp = true;
        if (!current_code || current_code->empty()) {
            record["outcome"] = "factor_proof_required";
            audit_.record(std::move(record));
            return fail(failure_code::factor_proof_required);
        }
        const std::string proof_key = "verify:" + user_key;
        const auto proof_slot = store_.reserve_failure(proof_key, now, limits_.lockout_s, limit);
        if (!proof_slot.reserved) {
            auto f = fail(failure_code::locked);
            f.retry_after = std::max<std::int64_t>(1, proof_slot.expires_at - now);
            return f;
        }
        const bool proven = accept_totp_code(store_, factors_.totp.params, user_key, *existing,
                                             *current_code, now) ||
                            consume_recovery_code(store_, keys_, user_key, *current_code);
        if (!proven) {
            record["outcome"] = "factor_proof_required";
            record["reason"] = "wrong_code";
            record["failures"] = proof_slot.count;
            audit_.record(std::move(record));
            if (proof_slot.count >= limit) {
                auto f = fail(failure_code::locked);
                f.retry_after = std::max<std::int64_t>(1, proof_slot.expires_at - now);
                return f;
            }
            return fail(failure_code::factor_proof_required);
        }
        store_.clear_failures(proof_key);
        record["replaces"] = "totp";
    }

    const auto& user = *found.user;
    store::pending_enrollment pending;
    pending.user_key = user_key_for(user);
    pending.username = username;
    pending.user_dn = user.dn;
    pending.key = factors::generate_totp_key(factors_.totp.params.algorithm);
    pending.expires_at = now + pending_ttl_s;

    totp_enrollment_started reply;
    // An enrollment that replaces an authenticator gets an id of its own shape (44 characters,
    // "r" first; plain ones are 43). Only the id's hash is stored, so the shape cannot be
    // forged: confirm_totp() tells from it whether the start proved the old factor.
    reply.enrollment_id = (user_had_totp ? "r" : "") + new_opaque_id();
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
    auto record = audit_record(ctx, "enrollment.totp_confirm");
    record["username"] = pending->username;
    record["dn"] = pending->user_dn;

    // Started without proof of an authenticator, while the user had none; the user has one
    // now (enrolled meanwhile): confirming would replace it without proof (red team).
    const bool started_with_proof = enrollment_id.size() == 44 && enrollment_id.front() == 'r';
    if (!started_with_proof && store_.get_totp(pending->user_key)) {
        store_.delete_pending_totp(hash);
        record["outcome"] = "factor_proof_required";
        record["reason"] = "authenticator_enrolled_meanwhile";
        audit_.record(std::move(record));
        return fail(failure_code::factor_proof_required);
    }

    // Wrong codes burn the pending enrollment after limits.verify_failures tries; the slot
    // is taken before the code is looked at, so concurrent guesses cannot overrun it.
    const std::string failure_key = "enroll:" + hash;
    const auto slot =
        store_.reserve_failure(failure_key, now, pending_ttl_s, limits_.verify_failures);
    if (!slot.reserved) {
        store_.delete_pending_totp(hash);
        return fail(failure_code::enrollment_expired);
    }
    if (!accept_totp_code(store_, factors_.totp.params, pending->user_key, pending->key, code,
                          now)) {
        const auto& after = slot;
        record["outcome"] = "invalid_code";
        record["failures"] = after.count;
        if (after.count >= limits_.verify_failures) {
            // The counter stays until it expires: a late concurrent attempt is refused too.
            store_.delete_pending_totp(hash);
            record["outcome"] = "abandoned";
        }
        audit_.record(std::move(record));
        return fail(failure_code::invalid_code);
    }
    store_.clear_failures(failure_key);
    if (!store_.confirm_totp(hash, now)) {
        return fail(failure_code::enrollment_expired);
    }
    totp_enrollment_confirmed confirmed;
    confirmed.recovery_codes = issue_recovery_codes(store_, keys_, pending->user_key);
    record["outcome"] = "enrolled";
    record["recovery_codes"] = factors::recovery_code_count;
    audit_.record(std::move(record));
    log::info("enrollment.confirmed",
              {{"request_id", ctx.request_id}, {"user", pending->username}});
    return confirmed;
}

}  // namespace pwresetd::daemon
