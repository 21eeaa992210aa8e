#include "daemon/admin_service.hpp"

#include <pwd.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "daemon/username.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {
namespace json = boost::json;

namespace {

request_context admin_context() {
    request_context ctx;
    ctx.request_id = new_opaque_id().substr(0, 16);
    ctx.client = "admin";
    return ctx;
}

void add_peer(json::object& record, const admin_peer& peer) {
    record["peer_uid"] = static_cast<std::int64_t>(peer.uid);
    record["peer_user"] = peer.user;
    record["peer_pid"] = static_cast<std::int64_t>(peer.pid);
}

// The user a command is about, or the reply that says why there is none.
struct found_user {
    std::optional<ldap::directory_user> user;
    std::string username;  // canonical
    json::object refusal;
};

found_user find(ldap::directory& directory, std::string_view given) {
    found_user out;
    if (auto problem = username_problem(given); !problem.empty()) {
        out.refusal = admin::error_reply("bad_request", problem);
        return out;
    }
    out.username = canonical_username(given);
    if (out.username.empty()) {
        out.refusal = admin::error_reply("bad_request", "username must not be empty");
        return out;
    }
    const auto found = directory.find_user(out.username);
    switch (found.status) {
        case ldap::lookup_status::found:
            out.user = found.user;
            break;
        case ldap::lookup_status::not_found:
            out.refusal = admin::error_reply("unknown_user",
                                             "no user '" + out.username + "' in the directory");
            break;
        case ldap::lookup_status::ambiguous:
            out.refusal = admin::error_reply(
                "ambiguous_user", "'" + out.username + "' matches more than one directory entry");
            break;
        case ldap::lookup_status::unavailable:
            out.refusal =
                admin::error_reply("directory_unavailable", "the directory does not answer");
            break;
    }
    return out;
}

json::object failures_json(const store::failure_state& f) {
    return {{"count", f.count}, {"expires_at", f.expires_at}};
}

}  // namespace

std::string user_name_of(uid_t uid) {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return {};
    }
    return found->pw_name;
}

admin_service::admin_service(const config& cfg, ldap::directory& directory,
                             store::state_store& store, audit_log& audit, const factor_keys& keys,
                             counters_fn counters, clock_fn clock)
    : cfg_(cfg),
      directory_(directory),
      store_(store),
      audit_(audit),
      keys_(keys),
      counters_(std::move(counters)),
      clock_(std::move(clock)),
      started_unix_(clock_()) {}

json::object admin_service::handle(const admin::request& request, const admin_peer& peer) {
    try {
        switch (request.cmd) {
            case admin::command::status:
                return status();
            case admin::command::enroll:
                return enroll(request, peer);
            case admin::command::unenroll:
                return unenroll(request, peer);
            case admin::command::unlock:
                return unlock(request, peer);
        }
    } catch (const store::store_error& e) {
        log::error("admin.state_unavailable",
                   {{"command", admin::command_name(request.cmd)}, {"error", e.what()}});
        return admin::error_reply("state_unavailable", "the state store failed");
    }
    return admin::error_reply("unknown_command", "unknown command");
}

json::object admin_service::status() {
    json::object reply = admin::ok_reply();
    reply["version"] = PWRESETD_VERSION;
    reply["started_at"] = started_unix_;
    reply["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::steady_clock::now() - started_)
                            .count();
    json::array listeners;
    for (const auto& l : cfg_.listen) {
        listeners.emplace_back(l.text);
    }
    reply["listeners"] = std::move(listeners);
    reply["admin_socket"] = cfg_.admin.socket ? cfg_.admin.socket->string() : std::string();

    json::array directories;
    for (const auto& d : directory_.probe_servers()) {
        json::array servers;
        bool any = false;
        for (const auto& s : d.servers) {
            any = any || s.answers;
            json::object server{{"uri", s.uri},
                                {"answers", s.answers},
                                {"marked_down", s.marked_down},
                                {"result", s.result}};
            server["latency_ms"] =
                s.latency_ms < 0 ? json::value(nullptr) : json::value(s.latency_ms);
            servers.emplace_back(std::move(server));
        }
        directories.emplace_back(
            json::object{{"name", d.name},
                         {"healthy", any},
                         {"pool",
                          {{"size", d.pool_size},
                           {"open", d.pool_open},
                           {"idle", d.pool_idle},
                           {"in_use", d.pool_open - std::min(d.pool_idle, d.pool_open)}}},
                         {"servers", std::move(servers)}});
    }
    reply["directories"] = std::move(directories);

    json::object state{{"backend", cfg_.state.backend}};
    state["location"] =
        cfg_.state.backend == "redis" ? cfg_.state.redis_url : cfg_.state.path.string();
    const auto asked = std::chrono::steady_clock::now();
    try {
        (void)store_.get_failures("admin:status", clock_());
        state["answers"] = true;
        state["latency_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - asked)
                                  .count();
    } catch (const store::store_error& e) {
        state["answers"] = false;
        state["error"] = e.what();
    }
    reply["state"] = std::move(state);
    reply["counters"] = counters_ ? counters_() : json::object();
    return reply;
}

json::object admin_service::enroll(const admin::request& request, const admin_peer& peer) {
    const request_context ctx = admin_context();
    auto record = audit_record(ctx, "admin.enroll");
    add_peer(record, peer);
    record["username"] = request.user;
    const auto refuse = [&](std::string_view code, std::string_view message) {
        record["outcome"] = "refused";
        record["reason"] = code;
        audit_.record(std::move(record));
        log::info("admin.enroll_refused",
                  {{"request_id", ctx.request_id}, {"user", request.user}, {"reason", code}});
        return admin::error_reply(code, message);
    };
    if (!cfg_.factors.totp.enabled) {
        return refuse("totp_disabled", "the totp method is not enabled (factors.totp)");
    }
    found_user found = find(directory_, request.user);
    record["username"] = found.username.empty() ? request.user : found.username;
    if (!found.user) {
        return refuse(found.refusal["error"].as_string(), found.refusal["message"].as_string());
    }
    const auto& user = *found.user;
    record["dn"] = user.dn;
    if (user.disabled) {
        return refuse("disabled", "the account is disabled in the directory");
    }
    if (user.is_protected) {
        return refuse("protected",
                      "the account is a member of a protected group; pwresetd "
                      "does not manage it");
    }
    const std::string user_key = user_key_for(user);
    const bool had_totp = store_.get_totp(user_key).has_value();
    if (had_totp && !request.replace) {
        return refuse("already_enrolled",
                      "the user has an authenticator; --replace replaces it (and its "
                      "recovery codes)");
    }
    const std::int64_t now = clock_();
    store::pending_enrollment pending;
    pending.user_key = user_key;
    pending.username = found.username;
    pending.user_dn = user.dn;
    pending.key = factors::generate_totp_key(cfg_.factors.totp.params.algorithm);
    pending.expires_at = now + 60;
    const std::string secret_base32 = factors::base32_encode(pending.key.bytes());
    // Stored as an enrollment that is confirmed at once: the helpdesk vouches for the user
    // instead of a code, and confirm_totp replaces an earlier key atomically.
    const std::string hash = id_hash(new_opaque_id());
    store_.put_pending_totp(hash, pending);
    if (!store_.confirm_totp(hash, now)) {
        return refuse("internal", "the enrollment could not be stored");
    }
    const std::vector<secret> codes = issue_recovery_codes(store_, keys_, user_key);

    json::object reply = admin::ok_reply();
    reply["user"] = found.username;
    reply["dn"] = user.dn;
    reply["replaced"] = had_totp;
    reply["otpauth_uri"] = factors::otpauth_uri(cfg_.factors.totp.issuer, found.username,
                                                secret_base32, cfg_.factors.totp.params);
    reply["secret"] = secret_base32;
    json::array recovery;
    for (const auto& code : codes) {
        recovery.emplace_back(code.view());
    }
    reply["recovery_codes"] = std::move(recovery);

    record["outcome"] = "enrolled";
    record["replaced"] = had_totp;
    record["recovery_codes"] = static_cast<std::int64_t>(codes.size());
    audit_.record(std::move(record));
    log::info("admin.enrolled", {{"request_id", ctx.request_id},
                                 {"user", found.username},
                                 {"peer_uid", static_cast<std::int64_t>(peer.uid)}});
    return reply;
}

json::object admin_service::unenroll(const admin::request& request, const admin_peer& peer) {
    const request_context ctx = admin_context();
    auto record = audit_record(ctx, "admin.unenroll");
    add_peer(record, peer);
    found_user found = find(directory_, request.user);
    record["username"] = found.username.empty() ? request.user : found.username;
    if (!found.user) {
        record["outcome"] = "refused";
        record["reason"] = found.refusal["error"];
        audit_.record(std::move(record));
        return found.refusal;
    }
    record["dn"] = found.user->dn;
    // The recovery codes go with the key (state_store::remove_totp): they stand in for the
    // authenticator, were handed out with it, and a new enrollment issues fresh ones.
    const bool removed = store_.remove_totp(user_key_for(*found.user));
    record["outcome"] = removed ? "unenrolled" : "not_enrolled";
    audit_.record(std::move(record));
    log::info("admin.unenroll", {{"request_id", ctx.request_id},
                                 {"user", found.username},
                                 {"removed", removed},
                                 {"peer_uid", static_cast<std::int64_t>(peer.uid)}});
    if (!removed) {
        return admin::error_reply("not_enrolled", "the user has no authenticator");
    }
    json::object reply = admin::ok_reply();
    reply["user"] = found.username;
    reply["dn"] = found.user->dn;
    reply["removed"] = json::array{"totp", "recovery_codes"};
    return reply;
}

json::object admin_service::unlock(const admin::request& request, const admin_peer& peer) {
    const request_context ctx = admin_context();
    auto record = audit_record(ctx, "admin.unlock");
    add_peer(record, peer);
    record["directory"] = request.directory;
    found_user found = find(directory_, request.user);
    record["username"] = found.username.empty() ? request.user : found.username;
    if (!found.user) {
        record["outcome"] = "refused";
        record["reason"] = found.refusal["error"];
        audit_.record(std::move(record));
        return found.refusal;
    }
    const auto& user = *found.user;
    record["dn"] = user.dn;
    // Every per-user counter that locks the user out of pwresetd: wrong codes of a reset
    // (and wrong authenticator proofs of an enrollment), and wrong current passwords of a
    // change or an enrollment.
    const std::int64_t now = clock_();
    const std::string user_key = user_key_for(user);
    const std::string verify_key = "verify:" + user_key;
    const std::string password_key = password_failure_key(user_key);
    const auto verify = store_.get_failures(verify_key, now);
    const auto password = store_.get_failures(password_key, now);
    store_.clear_failures(verify_key);
    store_.clear_failures(password_key);

    json::object reply = admin::ok_reply();
    reply["user"] = found.username;
    reply["dn"] = user.dn;
    reply["cleared"] = {{"code_failures", failures_json(verify)},
                        {"password_failures", failures_json(password)}};
    record["code_failures"] = verify.count;
    record["password_failures"] = password.count;
    if (request.directory) {
        const auto written = directory_.unlock_account(user);
        const bool ok = written.status == ldap::write_status::ok;
        reply["directory"] = {
            {"unlocked", ok}, {"was_locked", user.locked}, {"detail", written.diagnostic}};
        record["directory_unlocked"] = ok;
        if (!ok) {
            reply["ok"] = false;
            reply["error"] = written.status == ldap::write_status::unavailable
                                 ? "directory_unavailable"
                                 : "directory_unlock_failed";
            reply["message"] =
                "pwresetd's counters were cleared; the directory account was "
                "not unlocked: " +
                written.diagnostic;
        }
    }
    record["outcome"] = reply["ok"].as_bool() ? "unlocked" : "partly_unlocked";
    audit_.record(std::move(record));
    log::info("admin.unlock", {{"request_id", ctx.request_id},
                               {"user", found.username},
                               {"directory", request.directory},
                               {"peer_uid", static_cast<std::int64_t>(peer.uid)}});
    return reply;
}

}  // namespace pwresetd::daemon
