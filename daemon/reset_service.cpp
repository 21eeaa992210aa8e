#include "daemon/reset_service.hpp"

#include <algorithm>
#include <chrono>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {
namespace {

constexpr std::size_t max_username_bytes = 256;
// RFC 3062: an empty newPasswd asks the server to generate one; never send that.
constexpr std::size_t max_password_bytes = 4096;

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

boost::json::object audit_base(const request_context& ctx, std::string_view event) {
    boost::json::object o;
    o["event"] = event;
    o["request_id"] = ctx.request_id;
    o["client"] = ctx.client;
    o["ip"] = ctx.remote_ip;
    return o;
}

}  // namespace

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string username_problem(std::string_view username) {
    if (username.empty()) {
        return "username must not be empty";
    }
    if (username.size() > max_username_bytes) {
        return "username is longer than 256 bytes";
    }
    if (text::has_control_characters(username)) {
        return "username contains control characters";
    }
    return {};
}

std::string id_hash(std::string_view id) {
    return crypto::sha256_hex(id);
}

std::optional<failure> policy_failure(const policy::password_policy& policy, const secret& password,
                                      std::string_view username, std::string_view display_name) {
    failure f = fail(failure_code::password_rejected);
    if (password.empty()) {
        f.violations.push_back(
            {"min_length", static_cast<std::int64_t>(policy.config().min_length), ""});
        return f;
    }
    if (password.size() > max_password_bytes) {
        f.violations.push_back(
            {"max_length", static_cast<std::int64_t>(policy.config().max_length), ""});
        return f;
    }
    for (auto& v : policy.check(password.view(), {username, display_name})) {
        f.violations.push_back({std::move(v.rule), v.value, ""});
    }
    if (f.violations.empty()) {
        return std::nullopt;
    }
    return f;
}

violation directory_violation(const ldap::write_result& written) {
    if (written.reason) {
        return {written.reason->rule, std::nullopt, written.reason->detail};
    }
    return {"directory_policy", std::nullopt, ""};
}

std::string new_opaque_id() {
    return crypto::base64url_encode(crypto::random_bytes(32));
}

bool plausible_opaque_id(std::string_view id) {
    if (id.size() < 22 || id.size() > 128) {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
    });
}

std::string user_key_for(const ldap::directory_user& user) {
    return "user:" + user.id;
}

std::string decoy_key_for(std::string_view username) {
    return "decoy:" + text::ascii_lower(username);
}

reset_service::reset_service(const config& cfg, const policy::password_policy& policy,
                             ldap::directory& directory, store::state_store& store,
                             audit_log& audit, clock_fn clock)
    : factors_(cfg.factors),
      limits_(cfg.limits),
      policy_(policy),
      directory_(directory),
      store_(store),
      audit_(audit),
      clock_(std::move(clock)),
      decoy_key_(factors::generate_totp_key(cfg.factors.totp.params.algorithm)) {}

std::vector<std::string> reset_service::enabled_methods() const {
    std::vector<std::string> methods;
    if (factors_.totp.enabled) {
        methods.emplace_back("totp");
    }
    return methods;
}

std::optional<store::reset_flow> reset_service::open_flow(std::string_view reset_id,
                                                          std::int64_t now) {
    if (!plausible_opaque_id(reset_id)) {
        return std::nullopt;
    }
    return store_.get_open_flow(id_hash(reset_id), now);
}

outcome<reset_started> reset_service::start(const request_context& ctx, std::string_view username) {
    if (auto problem = username_problem(username); !problem.empty()) {
        return fail(failure_code::bad_request, problem);
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
    } else if (!factors_.totp.enabled || !store_.get_totp(user_key_for(*found.user))) {
        decoy_reason = "no_method_enrolled";
    }
    if (decoy_reason.empty()) {
        flow.user_key = user_key_for(*found.user);
        flow.user_dn = found.user->dn;
    } else {
        flow.decoy = true;
        flow.user_key = decoy_key_for(username);
    }
    store_.put_flow(flow);

    auto record = audit_base(ctx, "reset.started");
    record["username"] = flow.username;
    record["dn"] = flow.user_dn;
    record["outcome"] = decoy_reason.empty() ? "flow_started" : "decoy";
    if (!decoy_reason.empty()) {
        record["reason"] = decoy_reason;
    }
    audit_.record(std::move(record));
    log::info("reset.started", {{"request_id", ctx.request_id},
                                {"client", ctx.client},
                                {"user", flow.username},
                                {"decoy", flow.decoy}});

    reset_started reply;
    reply.reset_id = reset_id;
    reply.expires_in = limits_.reset_ttl_s;
    reply.methods = enabled_methods();
    reply.required_methods = factors_.required;
    return reply;
}

outcome<reset_verified> reset_service::verify(const request_context& ctx, std::string_view reset_id,
                                              std::string_view method, std::string_view code) {
    const auto methods = enabled_methods();
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
        return fail(failure_code::bad_request,
                    "method is not enabled: use one of the methods "
                    "POST /v1/resets listed");
    }
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    const std::string failure_key = "verify:" + flow->user_key;
    const auto before = store_.get_failures(failure_key, now);
    if (before.count >= limits_.verify_failures) {
        auto f = fail(failure_code::locked);
        f.retry_after = std::max<std::int64_t>(1, before.expires_at - now);
        return f;
    }

    // Decoys run the same computation against a random key, so timing says nothing.
    std::optional<secret> key;
    std::optional<std::int64_t> last_step;
    if (!flow->decoy) {
        key = store_.get_totp(flow->user_key);
        last_step = store_.last_totp_step(flow->user_key);
    }
    const secret& effective_key = key ? *key : decoy_key_;
    const auto step =
        factors::totp_match(effective_key, code, now, factors_.totp.params, last_step);
    const bool accepted =
        key.has_value() && step.has_value() && store_.accept_totp_step(flow->user_key, *step);

    auto record = audit_base(ctx, "reset.verify");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;
    record["method"] = method;
    if (!accepted) {
        const auto after = store_.record_failure(failure_key, now, limits_.lockout_s);
        const bool now_locked = after.count >= limits_.verify_failures;
        record["outcome"] = now_locked ? "locked" : "invalid_code";
        record["failures"] = after.count;
        audit_.record(std::move(record));
        log::info("reset.verify_failed", {{"request_id", ctx.request_id},
                                          {"user", flow->username},
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
    audit_.record(std::move(record));
    log::info("reset.verified",
              {{"request_id", ctx.request_id}, {"user", flow->username}, {"method", method}});

    reset_verified reply;
    reply.verified_methods = verified;
    reply.remaining_methods = std::max(0, factors_.required - static_cast<int>(verified.size()));
    return reply;
}

outcome<reset_completed> reset_service::complete(const request_context& ctx,
                                                 std::string_view reset_id,
                                                 const secret& new_password) {
    const std::int64_t now = clock_();
    auto flow = open_flow(reset_id, now);
    if (!flow) {
        return fail(failure_code::reset_expired);
    }
    const int remaining =
        std::max(0, factors_.required - static_cast<int>(flow->verified_methods.size()));
    if (remaining > 0 || flow->decoy) {
        auto f = fail(failure_code::verification_required);
        f.remaining_methods = std::max(1, remaining);
        return f;
    }
    auto record = audit_base(ctx, "reset.complete");
    record["username"] = flow->username;
    record["dn"] = flow->user_dn;

    // The account may have changed since the flow started: look again, and refuse if it is
    // now disabled, protected, or another entry than the one that was verified.
    const auto found = directory_.find_user(flow->username);
    if (found.status == ldap::lookup_status::unavailable) {
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

    if (auto refused =
            policy_failure(policy_, new_password, flow->username, found.user->display_name)) {
        record["outcome"] = "password_rejected";
        record["rule"] = refused->violations.front().rule;
        audit_.record(std::move(record));
        return *refused;
    }

    const auto written = directory_.reset_password(*found.user, new_password);
    switch (written.status) {
        case ldap::write_status::ok:
            break;
        case ldap::write_status::rejected: {
            record["outcome"] = "password_rejected";
            record["rule"] = written.reason ? written.reason->rule : "directory_policy";
            audit_.record(std::move(record));
            log::info("reset.password_rejected", {{"request_id", ctx.request_id},
                                                  {"user", flow->username},
                                                  {"diagnostic", written.diagnostic}});
            auto f = fail(failure_code::password_rejected);
            f.violations.push_back(directory_violation(written));
            return f;
        }
        case ldap::write_status::unavailable:
            record["outcome"] = "directory_unavailable";
            audit_.record(std::move(record));
            log::warning("reset.write_failed", {{"request_id", ctx.request_id},
                                                {"user", flow->username},
                                                {"diagnostic", written.diagnostic}});
            return fail(failure_code::directory_unavailable);
        case ldap::write_status::wrong_password:  // not an outcome of an administrator reset
        case ldap::write_status::locked:
        case ldap::write_status::failed:
            record["outcome"] = "directory_error";
            audit_.record(std::move(record));
            log::error("reset.write_failed", {{"request_id", ctx.request_id},
                                              {"user", flow->username},
                                              {"diagnostic", written.diagnostic}});
            return fail(failure_code::internal);
    }

    store_.close_flow(flow->id_hash, now);
    store_.close_user_flows(flow->user_key);
    record["outcome"] = "password_reset";
    record["unlocked"] = written.unlocked;
    audit_.record(std::move(record));
    log::info(
        "reset.completed",
        {{"request_id", ctx.request_id}, {"user", flow->username}, {"unlocked", written.unlocked}});
    return reset_completed{written.unlocked};
}

}  // namespace pwresetd::daemon
