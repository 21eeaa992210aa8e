#include "daemon/reset_service.hpp"

#include <algorithm>
#include <optional>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "daemon/daemon_metrics.hpp"
#include "daemon/messages.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {
namespace {

std::string_view lookup_name(ldap::lookup_status s) {
    switch (s) {
        case ldap::lookup_status::found:
            return "found";
        case ldap::lookup_status::not_found:
            return "unknown_user";
        case ldap::lookup_status::ambiguous:
            return "ambiguous_user";
        case ldap::lookup_status::unavailable:
            return "directory_unavailable";
    }
    return "unknown";
}

constexpr std::string_view authenticator_class = "authenticator";

void count_step(std::string_view step, std::string_view outcome) {
    daemon_metrics::get().resets.with({step, outcome}).inc();
}
constexpr std::int64_t destination_window_s = 3600;

// totp and recovery_code prove the same thing (the authenticator), so they count once.
std::string_view method_class(std::string_view method) {
    return method == "totp" || method == "recovery_code" ? authenticator_class : method;
}

}  // namespace

int reset_service::remaining_methods(const store::reset_flow& flow) {
    std::vector<std::string_view> classes;
    for (const auto& m : flow.verified_methods) {
        const auto c = method_class(m);
        if (std::find(classes.begin(), classes.end(), c) == classes.end()) {
            classes.push_back(c);
        }
    }
    int remaining = std::max(0, flow.required_methods - static_cast<int>(classes.size()));
    const bool has_authenticator =
        std::find(classes.begin(), classes.end(), authenticator_class) != classes.end();
    if (flow.totp_required && !has_authenticator) {
        remaining = std::max(remaining, 1);
    }
    return remaining;
}

namespace {

// The domain decoy email hints show: factors.email.hint_domain, else that of mail.from.
std::string hint_domain_of(const config& cfg) {
    if (!cfg.factors.email.hint_domain.empty()) {
        return cfg.factors.email.hint_domain;
    }
    if (!cfg.mail) {
        return {};
    }
    const auto at = cfg.mail->from.rfind('@');
    return at == std::string::npos ? "" : cfg.mail->from.substr(at + 1);
}

}  // namespace

reset_service::reset_service(const config& cfg, const policy::password_policy& policy,
                             ldap::directory& directory, store::state_store& store,
                             audit_log& audit, code_outbox& outbox, const factor_keys& keys,
                             clock_fn clock)
    : factors_(cfg.factors),
      limits_(cfg.limits),
      policy_(policy),
      directory_(directory),
      store_(store),
      audit_(audit),
      outbox_(outbox),
      keys_(keys),
      clock_(std::move(clock)),
      decoy_key_(factors::generate_totp_key(cfg.factors.totp.params.algorithm)),
      decoy_hints_(keys.hints, hint_domain_of(cfg), cfg.factors.sms.country_code) {}

const code_factor_settings& reset_service::code_settings(std::string_view method) const {
    if (method == "email") {
        return factors_.email;
    }
    return factors_.sms;
}

bool reset_service::code_method_enabled(std::string_view method) const {
    return (method == "email" && factors_.email.enabled) ||
           (method == "sms" && factors_.sms.enabled);
}

std::string reset_service::destination(const ldap::directory_user& user,
                                       std::string_view method) const {
    if (method == "email" && factors_.email.enabled) {
        return factors::email_address_problem(user.email).empty() ? user.email : std::string();
    }
    if (method == "sms" && factors_.sms.enabled) {
        return factors::normalize_phone(user.phone, factors_.sms.country_code);
    }
    return {};
}

std::string reset_service::hint(const std::optional<ldap::directory_user>& user,
                                std::string_view username, std::string_view method) {
    const std::string name = directory_.lookup_key(username);
    const std::string dest = user ? destination(*user, method) : std::string();
    if (dest.empty()) {
        return method == "email" ? decoy_hints_.email(name) : decoy_hints_.phone(name);
    }
    std::string shown = method == "email" ? factors::mask_email(dest)
                                          : factors::mask_phone(dest, factors_.sms.country_code);
    (void)decoy_hints_.observe(method, shown);
    return shown;
}

std::optional<failure> reset_service::locked_failure(const store::reset_flow& flow,
                                                     std::int64_t now) {
    const auto before = store_.get_failures("verify:" + flow.user_key, now);
    if (before.count < limits_.verify_failures) {
        return std::nullopt;
    }
    auto f = fail(failure_code::locked);
    f.retry_after = std::max<std::int64_t>(1, before.expires_at - now);
    return f;
}

std::optional<store::reset_flow> reset_service::open_flow(std::string_view reset_id,
                                                          std::int64_t now) {
    if (!plausible_opaque_id(reset_id)) {
        return std::nullopt;
    }
    return store_.get_open_flow(id_hash(reset_id), now);
}

outcome<reset_started> reset_service::start(const request_context& ctx,
                                            std::string_view given_username) {
    if (auto problem = username_problem(given_username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
    }
    const std::string username = canonical_username(given_username);
    if (username.empty()) {
        return fail(failure_code::bad_request, "username must not be empty");
    }
    const auto found = directory_.find_user(username);
    if (found.status == ldap::lookup_status::unavailable) {
        log::warning("reset.start_failed",
                     {{"request_id", ctx.request_id}, {"reason", "directory_unavailable"}});
        return fail(failure_code::directory_unavailable);
    }

    const std::int64_t now = clock_();
    store::reset_flow flow;
    const std::string reset_id = new_opaque_id();
    flow.id_hash = id_hash(reset_id);
    flow.username = std::string(username);
    flow.created_at = now;
    flow.expires_at = now + limits_.reset_ttl_s;

    // Why a user gets a decoy is recorded in the audit trail only; the reply is the same.
    std::string decoy_reason;
    if (found.status != ldap::lookup_status::found || !found.user) {
        decoy_reason = lookup_name(found.status);
    } else if (found.user->disabled) {
        decoy_reason = "disabled";
    } else if (found.user->is_protected) {
        decoy_reason = "protected";
    }
    bool has_totp = false;
    if (decoy_reason.empty()) {
        has_totp = factors_.totp.enabled && store_.get_totp(user_key_for(*found.user)).has_value();
    } else {
        (void)store_.get_totp(
            decoy_key_for(directory_, username));  // the same read as a real user's
    }
    if (decoy_reason.empty()) {
        const bool has_code_destination =
            !destination(*found.user, "email").empty() || !destination(*found.user, "sms").empty();
        if (!has_totp && !has_code_destination) {
            decoy_reason = "no_method_enrolled";
        }
    }
    if (decoy_reason.empty()) {
        flow.user_key = user_key_for(*found.user);
        flow.user_dn = found.user->dn;
        flow.required_methods = std::max(factors_.required, found.user->needs_two_methods ? 2 : 1);
        flow.totp_required = has_totp && factors_.totp_when_enrolled;
    } else {
        flow.decoy = true;
        flow.user_key = decoy_key_for(directory_, username);
    }
    store_.put_flow(flow);

    auto record = audit_record(ctx, "reset.started");
    record["username"] = flow.username;
    record["dn"] = flow.user_dn;
    record["outcome"] = decoy_reason.empty() ? "flow_started" : "decoy";
    count_step("start", decoy_reason.empty() ? "flow_started" : "decoy");
    if (!decoy_reason.empty()) {
        record["reason"] = decoy_reason;
    } else {
        record["required_methods"] = flow.required_methods;
        record["totp_required"] = flow.totp_required;
    }
    audit_.record(std::move(record));
    log::info("reset.started", {{"request_id", ctx.request_id},
                                {"client", ctx.client},
                                {"user", flow.username},
                                {"decoy", flow.decoy}});

    reset_started reply;
    reply.reset_id = reset_id;
    reply.expires_in = limits_.reset_ttl_s;
    // Hints come from the directory for real users and are synthesized otherwise.
    const std::optional<ldap::directory_user> real =
        decoy_reason.empty() ? found.user : std::optional<ldap::directory_user>();
    for (const auto& method : factors_.order) {
        reply.methods.push_back(
            {method, method == "totp" ? std::string() : hint(real, username, method)});
    }
    reply.required_methods = factors_.required;
    return reply;
}

outcome<reset_challenged> reset_service::challenge(const request_context& ctx,
                                                   std::string_view reset_id,
                                                   std::string_view method, std::string_view lang) {
    if (!code_method_enabled(method)) {
        return fail(failure_code::bad_request,
                    "method must be one that sends a code and is enabled (email, sms)");
    }
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    if (auto locked = locked_failure(*flow, now)) {
        return *locked;
    }
    const auto& settings = code_settings(method);
    // The destination is read now, from the directory, for decoys too (same work).
    const auto found = directory_.find_user(flow->username);
    if (found.status == ldap::lookup_status::unavailable) {
        return fail(failure_code::directory_unavailable);
    }
    std::string dest;
    if (!flow->decoy && found.status == ldap::lookup_status::found && found.user &&
        user_key_for(*found.user) == flow->user_key && !found.user->disabled &&
        !found.user->is_protected) {
        dest = destination(*found.user, method);
    }

    auto record = audit_record(ctx, "reset.challenge");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;
    record["method"] = method;

    // The flood limit counts per destination; without one, per flow user, so unknown users
    // meet the same limit and the same reply.
    const std::string window_key =
        "dest:" + crypto::sha256_hex(std::string(method) + ':' +
                                     (dest.empty() ? flow->user_key : text::ascii_lower(dest)));
    const auto hit = store_.hit_window(window_key, now, destination_window_s,
                                       factors_.codes_per_destination_per_hour);
    if (!hit.allowed) {
        record["outcome"] = "rate_limited";
        count_step("challenge", "rate_limited");
        audit_.record(std::move(record));
        log::info("reset.challenge_limited",
                  {{"request_id", ctx.request_id}, {"user", flow->username}, {"method", method}});
        auto f = fail(failure_code::rate_limited, "codes");
        f.retry_after = std::max<std::int64_t>(1, hit.resets_at - now);
        return f;
    }

    // A code is made and stored for every flow (a decoy's is never sent), and replaces the
    // flow's earlier code for this method.
    const secret code = factors::generate_numeric_code(settings.code_digits);
    store_.put_code(
        flow->id_hash, method,
        factors::code_hash(keys_.codes, flow->id_hash + ':' + std::string(method), code.view()),
        now + settings.code_ttl_s);

    std::string outcome_text = flow->decoy ? "decoy" : "no_destination";
    if (!dest.empty()) {
        const int minutes = (settings.code_ttl_s + 59) / 60;
        bool queued = false;
        if (method == "email") {
            factors::email_message message;
            message.to = dest;
            message.subject = message_text("mail.code.subject", lang, minutes);
            message.body = code_message("mail.code.body", lang, code, minutes);
            message.reference = ctx.request_id;
            queued = outbox_.send_email(std::move(message));
            record["destination"] = factors::mask_email(dest);
        } else {
            factors::sms_message message;
            message.to = dest;
            message.text = code_message("sms.code.text", lang, code, minutes);
            message.reference = ctx.request_id;
            queued = outbox_.send_sms(std::move(message));
            record["destination"] = factors::mask_phone(dest, factors_.sms.country_code);
        }
        outcome_text = queued ? "queued" : "not_queued";
    }
    record["outcome"] = outcome_text;
    count_step("challenge", outcome_text);
    audit_.record(std::move(record));
    log::info("reset.challenge", {{"request_id", ctx.request_id},
                                  {"user", flow->username},
                                  {"method", method},
                                  {"outcome", outcome_text}});
    return reset_challenged{std::string(method), settings.code_ttl_s};
}

bool reset_service::check_code(const store::reset_flow& flow, std::string_view method,
                               std::string_view code, std::int64_t now) {
    if (method == "totp") {
        // Decoys run the same computation against a random key, so timing says nothing.
        // A decoy reads its (absent) key like a real user, so the store work is the same.
        std::optional<secret> key = store_.get_totp(flow.user_key);
        if (flow.decoy) {
            key.reset();
        }
        const bool matched = accept_totp_code(store_, factors_.totp.params, flow.user_key,
                                              key ? *key : decoy_key_, code, now);
        return key.has_value() && matched;
    }
    if (method == "recovery_code") {
        return consume_recovery_code(store_, keys_, flow.user_key, code) && !flow.decoy;
    }
    const auto& settings = code_settings(method);
    const auto normalized = factors::normalize_numeric_code(code, settings.code_digits);
    if (!normalized) {
        return false;
    }
    const std::string hash = factors::code_hash(
        keys_.codes, flow.id_hash + ':' + std::string(method), normalized->view());
    const bool consumed = store_.consume_code(flow.id_hash, method, hash, now);
    return consumed && !flow.decoy;
}

outcome<reset_verified> reset_service::verify(const request_context& ctx, std::string_view reset_id,
                                              std::string_view method, std::string_view code) {
    const bool known =
        std::find(factors_.order.begin(), factors_.order.end(), method) != factors_.order.end() ||
        (method == "recovery_code" && factors_.totp.enabled);
    if (!known) {
        return fail(failure_code::bad_request,
                    "method is not enabled: use one of the methods "
                    "POST /v1/resets listed, or recovery_code");
    }
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    // The failure slot is taken before the code is looked at, atomically: of many
    // concurrent attempts, at most limits.verify_failures are ever evaluated.
    const std::string failure_key = "verify:" + flow->user_key;
    const auto slot =
        store_.reserve_failure(failure_key, now, limits_.lockout_s, limits_.verify_failures);
    if (!slot.reserved) {
        auto f = fail(failure_code::locked);
        f.retry_after = std::max<std::int64_t>(1, slot.expires_at - now);
        return f;
    }
    const bool accepted = check_code(*flow, method, code, now);

    auto record = audit_record(ctx, "reset.verify");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;
    record["method"] = method;
    if (!accepted) {
        const auto& after = slot;
        const bool now_locked = after.count >= limits_.verify_failures;
        record["outcome"] = now_locked ? "locked" : "invalid_code";
        auto& counted = daemon_metrics::get();
        counted.verify_failures.with({method}).inc();
        count_step("verify", now_locked ? "locked" : "invalid_code");
        if (now_locked) {
            counted.lockouts.with({"verify"}).inc();
        }
        record["failures"] = after.count;
        audit_.record(std::move(record));
        log::info("reset.verify_failed", {{"request_id", ctx.request_id},
                                          {"user", flow->username},
                                          {"method", method},
                                          {"failures", after.count},
                                          {"locked", now_locked}});
        if (now_locked) {
            auto f = fail(failure_code::locked);
            f.retry_after = std::max<std::int64_t>(1, after.expires_at - now);
            return f;
        }
        return fail(failure_code::invalid_code);
    }

    store_.clear_failures(failure_key);
    store_.add_verified_method(flow->id_hash, method);
    auto& verified = flow->verified_methods;
    if (std::find(verified.begin(), verified.end(), method) == verified.end()) {
        verified.emplace_back(method);
    }
    record["outcome"] = "verified";
    count_step("verify", "verified");
    if (method == "recovery_code") {
        record["recovery_codes_left"] = store_.recovery_codes_left(flow->user_key);
    }
    audit_.record(std::move(record));
    log::info("reset.verified",
              {{"request_id", ctx.request_id}, {"user", flow->username}, {"method", method}});

    reset_verified reply;
    reply.verified_methods = verified;
    reply.remaining_methods = remaining_methods(*flow);
    return reply;
}

std::optional<failure> reset_service::unverified(const store::reset_flow& flow) const {
    const int remaining = remaining_methods(flow);
    if (remaining == 0 && !flow.decoy) {
        return std::nullopt;
    }
    auto f = fail(failure_code::verification_required);
    // Until a method is verified every flow needs what the start reply said, so group
    // membership (two_methods_groups) and enrollment stay hidden.
    f.remaining_methods =
        flow.verified_methods.empty() ? factors_.required : std::max(1, remaining);
    return f;
}

outcome<reset_completed> reset_service::complete(const request_context& ctx,
                                                 std::string_view reset_id,
                                                 const secret& new_password) {
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    if (auto f = unverified(*flow)) {
        return *f;
    }
    // Exactly one of several concurrent completes goes on to the directory; the others
    // find the flow held (API.md: 410). A refusal below gives it back.
    if (!store_.claim_flow(flow->id_hash, now, now + claim_s)) {
        return fail(failure_code::reset_expired);
    }
    auto record = audit_record(ctx, "reset.complete");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;
    const auto give_back = [&] { store_.release_flow(flow->id_hash); };

    // The account may have changed since the flow started: look again, and refuse if it is
    // now disabled, protected, or another entry than the one that was verified.
    const auto found = directory_.find_user(flow->username);
    if (found.status == ldap::lookup_status::unavailable) {
        give_back();
        return fail(failure_code::directory_unavailable);
    }
    if (found.status != ldap::lookup_status::found || !found.user ||
        user_key_for(*found.user) != flow->user_key || found.user->disabled ||
        found.user->is_protected) {
        store_.close_flow(flow->id_hash, now);
        record["outcome"] = "refused";
        record["reason"] = "account_changed";
        count_step("complete", "refused");
        audit_.record(std::move(record));
        return fail(failure_code::reset_expired);
    }

    if (auto refused =
            policy_failure(policy_, new_password, flow->username, found.user->display_name)) {
        give_back();
        record["outcome"] = "password_rejected";
        record["rule"] = refused->violations.front().rule;
        count_step("complete", "password_rejected");
        audit_.record(std::move(record));
        return *refused;
    }

    const auto written = directory_.reset_password(*found.user, new_password);
    switch (written.status) {
        case ldap::write_status::ok:
            break;
        case ldap::write_status::rejected: {
            give_back();
            record["outcome"] = "password_rejected";
            record["rule"] = written.reason ? written.reason->rule : "directory_policy";
            count_step("complete", "password_rejected");
            audit_.record(std::move(record));
            log::info("reset.password_rejected", {{"request_id", ctx.request_id},
                                                  {"user", flow->username},
                                                  {"diagnostic", written.diagnostic}});
            auto f = fail(failure_code::password_rejected);
            f.violations.push_back(directory_violation(written));
            return f;
        }
        case ldap::write_status::unavailable:
        case ldap::write_status::wrong_password:  // not an outcome of an administrator reset
        case ldap::write_status::locked:
        case ldap::write_status::failed: {
            // Nothing was written: the flow is given back, so the user can try again.
            give_back();
            const bool unavailable = written.status == ldap::write_status::unavailable;
            record["outcome"] = unavailable ? "directory_unavailable" : "directory_error";
            count_step("complete", unavailable ? "directory_unavailable" : "directory_error");
            audit_.record(std::move(record));
            log::write(unavailable ? log::level::warning : log::level::error, "reset.write_failed",
                       {{"request_id", ctx.request_id},
                        {"user", flow->username},
                        {"diagnostic", written.diagnostic}});
            return fail(unavailable ? failure_code::directory_unavailable : failure_code::internal);
        }
    }

    // The password is written: whatever the state store does now, the reset happened, is
    // audited and is answered as done. A flow left open cannot be completed again before
    // its claim lapses, and then only by someone who verified it.
    record["outcome"] = "password_reset";
    count_step("complete", "password_reset");
    record["unlocked"] = written.unlocked;
    try {
        store_.close_flow(flow->id_hash, now);
        store_.close_user_flows(flow->user_key);
        // The user proved a factor and chose this password: wrong guesses at the old one
        // (change, enrollment) no longer stand between them and their account.
        store_.clear_failures(password_failure_key(flow->user_key));
    } catch (const store::store_error& e) {
        record["cleanup"] = "failed";
        log::error("reset.cleanup_failed",
                   {{"request_id", ctx.request_id}, {"user", flow->username}, {"error", e.what()}});
    }
    audit_.record(std::move(record));
    log::info(
        "reset.completed",
        {{"request_id", ctx.request_id}, {"user", flow->username}, {"unlocked", written.unlocked}});
    return reset_completed{written.unlocked};
}

outcome<reset_unlocked> reset_service::unlock(const request_context& ctx,
                                              std::string_view reset_id) {
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    // No directory allows it: said before verification, the same for every flow.
    if (!directory_.any_unlock_on_reset()) {
        return fail(failure_code::unlock_disabled);
    }
    if (auto f = unverified(*flow)) {
        return *f;
    }
    // The same claim as complete(): of concurrent unlocks and completes of one flow, one
    // acts; the others get reset_expired. A refusal below gives the flow back.
    if (!store_.claim_flow(flow->id_hash, now, now + claim_s)) {
        return fail(failure_code::reset_expired);
    }
    auto record = audit_record(ctx, "reset.unlock");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;
    const auto give_back = [&] { store_.release_flow(flow->id_hash); };

    const auto found = directory_.find_user(flow->username);
    if (found.status == ldap::lookup_status::unavailable) {
        give_back();
        return fail(failure_code::directory_unavailable);
    }
    if (found.status != ldap::lookup_status::found || !found.user ||
        user_key_for(*found.user) != flow->user_key || found.user->disabled ||
        found.user->is_protected) {
        store_.close_flow(flow->id_hash, now);
        record["outcome"] = "refused";
        record["reason"] = "account_changed";
        audit_.record(std::move(record));
        return fail(failure_code::reset_expired);
    }
    if (!directory_.unlock_on_reset(*found.user)) {
        give_back();  // the user may still choose a new password with complete()
        record["outcome"] = "refused";
        record["reason"] = "unlock_disabled";
        audit_.record(std::move(record));
        return fail(failure_code::unlock_disabled);
    }

    const bool was_locked = found.user->locked;
    const auto written = directory_.unlock_account(*found.user);
    if (written.status != ldap::write_status::ok) {
        give_back();
        const bool unavailable = written.status == ldap::write_status::unavailable;
        record["outcome"] = unavailable ? "directory_unavailable" : "directory_error";
        audit_.record(std::move(record));
        log::write(unavailable ? log::level::warning : log::level::error, "reset.unlock_failed",
                   {{"request_id", ctx.request_id},
                    {"user", flow->username},
                    {"diagnostic", written.diagnostic}});
        return fail(unavailable ? failure_code::directory_unavailable : failure_code::internal);
    }

    // The lockout is cleared: from here on the unlock happened and is answered as done.
    record["outcome"] = "unlocked";
    record["was_locked"] = was_locked;
    try {
        store_.close_flow(flow->id_hash, now);
        // As after a reset: the user proved the factors a reset needs.
        store_.clear_failures(password_failure_key(flow->user_key));
    } catch (const store::store_error& e) {
        record["cleanup"] = "failed";
        log::error("reset.cleanup_failed",
                   {{"request_id", ctx.request_id}, {"user", flow->username}, {"error", e.what()}});
    }
    audit_.record(std::move(record));
    log::info(
        "reset.unlocked",
        {{"request_id", ctx.request_id}, {"user", flow->username}, {"was_locked", was_locked}});
    return reset_unlocked{was_locked};
}

}  // namespace pwresetd::daemon
