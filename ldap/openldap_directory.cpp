#include "ldap/openldap_directory.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "ldap/connection.hpp"
#include "ldap/connection_pool.hpp"
#include "ldap/result_map.hpp"

namespace pwresetd::ldap {
namespace {

// ppolicy's permanent administrative lock (draft-behera-ldap-password-policy-10 5.3.3:
// "000001010000Z" means locked until an administrator unlocks).
constexpr std::string_view admin_lock_time = "000001010000Z";

// The log events that name one configured list of groups.
struct group_events {
    std::string_view missing;
    std::string_view check_failed;
};
constexpr group_events protected_events{"ldap.protected_group_missing",
                                        "ldap.protected_group_check_failed"};
constexpr group_events two_methods_events{"ldap.two_methods_group_missing",
                                          "ldap.two_methods_group_check_failed"};

class openldap_directory final : public directory {
public:
    explicit openldap_directory(directory_settings settings)
        : settings_(std::move(settings)),
          health_(std::make_shared<server_health>(settings_.uris, settings_.name)),
          pool_(
              static_cast<std::size_t>(settings_.pool_size),
              std::chrono::milliseconds(settings_.timeout_ms),
              [this] { return open_service_connection(settings_, *health_); }, health_) {
        for (const auto& group : settings_.protected_groups) {
            protected_groups_.push_back(normalize_dn(group));
        }
        for (const auto& group : settings_.two_methods_groups) {
            two_methods_groups_.push_back(normalize_dn(group));
        }
        attributes_ = {"entryUUID",
                       settings_.attributes.email,
                       settings_.attributes.phone,
                       settings_.attributes.display_name,
                       "pwdAccountLockedTime",
                       "memberOf"};
    }

    lookup_result find_user(std::string_view username) override;
    bind_status verify_password(const directory_user& user, const secret& password) override;
    write_result reset_password(const directory_user& user, const secret& new_password) override;
    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password) override;
    bool ping() override;

private:
    lookup_result lookup(LDAP* ld, std::string_view username, int& rc);
    // For a name that matched no entry: the group searches a found entry would have cost.
    void decoy_group_checks(LDAP* ld);
    // Whether dn is a direct member of one of the groups (normalized_groups: the same
    // DNs, normalized); false without groups, nullopt with rc set when it could not be
    // found out. Used for protected_groups and two_methods_groups alike.
    std::optional<bool> in_any_group(LDAP* ld, const std::string& dn,
                                     const std::vector<std::string>& member_of,
                                     const std::vector<std::string>& groups,
                                     const std::vector<std::string>& normalized_groups,
                                     const group_events& events, int& rc);
    operation_result write_password(LDAP* ld, const std::string& dn, const secret& password);
    void after_write(LDAP* ld, const directory_user& user, write_result& out);
    // A fresh connection (never a pooled one), then a bind as the user with the ppolicy
    // request control: for verify_password and change_password.
    struct user_session {
        opened_connection connection;
        operation_result bind;
    };
    user_session bind_as_user(const directory_user& user, const secret& password);
    write_result change_as_user(const opened_connection& connection, const directory_user& user,
                                const secret& current, const secret& new_password);

    directory_settings settings_;
    std::vector<std::string> protected_groups_;    // normalized
    std::vector<std::string> two_methods_groups_;  // normalized
    std::vector<std::string> attributes_;
    std::shared_ptr<server_health> health_;  // per URI, shared by the pool and fresh binds
    connection_pool pool_;
};

lookup_result openldap_directory::find_user(std::string_view username) {
    if (username.empty()) {
        return {lookup_status::not_found, std::nullopt};
    }
    // A search is idempotent: retried once on a fresh connection after a connection error
    // (a pooled connection may have been dropped by the server or a failover).
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) {
            return {lookup_status::unavailable, std::nullopt};
        }
        int rc = LDAP_SUCCESS;
        lookup_result result = lookup(lease->get(), username, rc);
        if (!is_connection_error(rc)) {
            return result;
        }
        lease->discard();
        log::warning("ldap.search_connection_error",
                     {{"directory", settings_.name},
                      {"result", rc},
                      {"error", ldap_err2string(rc)},
                      {"retry", attempt == 0 && rc != LDAP_TIMEOUT}});
        if (rc == LDAP_TIMEOUT) {
            break;  // a second full timeout would double the caller's wait
        }
    }
    return {lookup_status::unavailable, std::nullopt};
}

lookup_result openldap_directory::lookup(LDAP* ld, std::string_view username, int& rc) {
    const std::string filter = expand_user_filter(settings_.user_filter, username);
    search_result found = search(ld, settings_.user_base, LDAP_SCOPE_SUBTREE, filter, attributes_,
                                 2, settings_.timeout_ms);
    rc = found.result;
    if (is_connection_error(rc)) {
        return {lookup_status::unavailable, std::nullopt};
    }
    // sizeLimitExceeded with limit 2: a third match exists, so more than one.
    if (rc == LDAP_SIZELIMIT_EXCEEDED) {
        log::info("ldap.user_ambiguous", {{"directory", settings_.name}, {"username", username}});
        return {lookup_status::ambiguous, std::nullopt};
    }
    if (rc != LDAP_SUCCESS) {
        log::error("ldap.search_failed", {{"directory", settings_.name},
                                          {"base", settings_.user_base},
                                          {"result", rc},
                                          {"error", ldap_err2string(rc)},
                                          {"text", found.text}});
        return {lookup_status::unavailable, std::nullopt};
    }
    const int count = ldap_count_entries(ld, found.message.get());
    if (count <= 0) {
        decoy_group_checks(ld);
        return {lookup_status::not_found, std::nullopt};
    }
    if (count > 1) {
        log::info("ldap.user_ambiguous", {{"directory", settings_.name}, {"username", username}});
        return {lookup_status::ambiguous, std::nullopt};
    }
    LDAPMessage* entry = ldap_first_entry(ld, found.message.get());
    const ldap_string dn(ldap_get_dn(ld, entry));
    if (entry == nullptr || !dn) {
        rc = LDAP_DECODING_ERROR;
        return {lookup_status::unavailable, std::nullopt};
    }
    const auto first = [&](const std::string& name) {
        auto values = attribute_values(ld, entry, name);
        return values.empty() ? std::string() : std::move(values.front());
    };
    directory_user user;
    user.dn = dn.get();
    user.id = first("entryUUID");
    user.username = std::string(username);
    user.display_name = first(settings_.attributes.display_name);
    user.email = first(settings_.attributes.email);
    user.phone = first(settings_.attributes.phone);
    const std::string locked_time = first("pwdAccountLockedTime");
    user.locked = !locked_time.empty();
    user.disabled = locked_time == admin_lock_time;
    const auto member_of = attribute_values(ld, entry, "memberOf");
    const auto is_prot = in_any_group(ld, user.dn, member_of, settings_.protected_groups,
                                      protected_groups_, protected_events, rc);
    if (!is_prot) {
        return {lookup_status::unavailable, std::nullopt};  // fail closed
    }
    user.is_protected = *is_prot;
    const auto two_methods = in_any_group(ld, user.dn, member_of, settings_.two_methods_groups,
                                          two_methods_groups_, two_methods_events, rc);
    if (!two_methods) {
        return {lookup_status::unavailable, std::nullopt};  // fail closed
    }
    user.needs_two_methods = *two_methods;
    if (user.id.empty()) {
        log::warning("ldap.user_without_entryuuid", {{"dn", user.dn}});
        rc = LDAP_SUCCESS;
        return {lookup_status::unavailable, std::nullopt};
    }
    rc = LDAP_SUCCESS;
    return {lookup_status::found, std::move(user)};
}

void openldap_directory::decoy_group_checks(LDAP* ld) {
    // Unknown and real users must take the same time (API.md): without the memberOf overlay
    // a found entry costs one search per group, so a name that matched nothing asks the same
    // groups about a DN that cannot exist. Results and errors are of no interest.
    const std::string value =
        escape_filter_value("cn=pwresetd-no-such-entry," + settings_.user_base);
    const std::string filter = "(|(member=" + value + ")(uniqueMember=" + value + "))";
    for (const auto* groups : {&settings_.protected_groups, &settings_.two_methods_groups}) {
        for (const auto& group : *groups) {
            (void)search(ld, group, LDAP_SCOPE_BASE, filter, {"1.1"}, 1, settings_.timeout_ms);
        }
    }
}

std::optional<bool> openldap_directory::in_any_group(
    LDAP* ld, const std::string& dn, const std::vector<std::string>& member_of,
    const std::vector<std::string>& groups, const std::vector<std::string>& normalized_groups,
    const group_events& events, int& rc) {
    rc = LDAP_SUCCESS;
    if (groups.empty()) {
        return false;
    }
    // Direct membership only, for both lists: a group that is itself a member of one of
    // these groups is not followed, so its members do not count (unlike AD's IN_CHAIN
    // search). Changing that would change who is protected.
    for (const auto& group : member_of) {
        const std::string normalized = normalize_dn(group);
        for (const auto& wanted : normalized_groups) {
            if (normalized == wanted) {
                return true;
            }
        }
    }
    // No memberOf overlay (or not listed): ask each group whether it lists the DN.
    const std::string value = escape_filter_value(dn);
    const std::string filter = "(|(member=" + value + ")(uniqueMember=" + value + "))";
    for (const auto& group : groups) {
        const search_result r =
            search(ld, group, LDAP_SCOPE_BASE, filter, {"1.1"}, 1, settings_.timeout_ms);
        if (r.result == LDAP_SUCCESS) {
            if (ldap_count_entries(ld, r.message.get()) > 0) {
                return true;
            }
            continue;
        }
        if (r.result == LDAP_NO_SUCH_OBJECT) {
            log::warning(events.missing, {{"directory", settings_.name}, {"group", group}});
            continue;
        }
        rc = r.result;
        log::error(events.check_failed, {{"directory", settings_.name},
                                         {"group", group},
                                         {"result", r.result},
                                         {"error", ldap_err2string(r.result)},
                                         {"text", r.text}});
        return std::nullopt;
    }
    return false;
}

openldap_directory::user_session openldap_directory::bind_as_user(const directory_user& user,
                                                                  const secret& password) {
    user_session session;
    session.connection = open_connection(settings_, *health_);
    if (!session.connection) {
        session.bind = {session.connection.rc, -1, "no directory server reachable"};
        return session;
    }
    session.bind = simple_bind(session.connection.handle.get(), user.dn, password.view(),
                               settings_.timeout_ms);
    if (is_connection_error(session.bind.result)) {
        // Never retried on another server: the bind may have reached this one and counted
        // as a failed attempt there (ppolicy pwdFailureTime). Only the open is failed over.
        health_->failed(session.connection.server, "connection_error");
    }
    return session;
}

bind_status openldap_directory::verify_password(const directory_user& user,
                                                const secret& password) {
    // An empty password would make this an unauthenticated bind, which "succeeds"
    // anonymously (RFC 4513 section 5.1.2): never send it.
    if (password.empty() || user.dn.empty()) {
        return bind_status::invalid_credentials;
    }
    const user_session session = bind_as_user(user, password);
    if (!session.connection) {
        return bind_status::unavailable;
    }
    const operation_result& r = session.bind;
    const bind_status status = map_openldap_bind_result(r.result, r.ppolicy_error);
    if (status == bind_status::unavailable) {
        log::warning("ldap.user_bind_failed", {{"directory", settings_.name},
                                               {"uri", health_->uri(session.connection.server)},
                                               {"dn", user.dn},
                                               {"result", r.result},
                                               {"error", ldap_err2string(r.result)},
                                               {"ppolicy", r.ppolicy_error},
                                               {"text", r.text}});
    }
    return status;
}

operation_result openldap_directory::write_password(LDAP* ld, const std::string& dn,
                                                    const secret& password) {
    if (settings_.password_write == password_write_mode::modify) {
        return modify_attribute(ld, dn, LDAP_MOD_REPLACE, "userPassword", {password.view()}, true,
                                settings_.timeout_ms);
    }
    return password_modify(ld, dn, password.view(), settings_.timeout_ms);
}

write_result openldap_directory::change_password(const directory_user& user, const secret& current,
                                                 const secret& new_password) {
    write_result out;
    // One log line per outcome: warning when the directory could not be reached, else info.
    const auto finish = [&](std::string_view event, write_status status, std::string why) {
        out.status = status;
        out.diagnostic = std::move(why);
        log::write(
            status == write_status::unavailable ? log::level::warning : log::level::info, event,
            {{"directory", settings_.name}, {"dn", user.dn}, {"diagnostic", out.diagnostic}});
        return std::move(out);
    };
    if (user.dn.empty()) {
        return finish("ldap.password_change_failed", write_status::failed, "refused: no user DN");
    }
    // Defensive (the daemon checks first): never touch an account an administrator disabled
    // or a protected one, not even with the user's own password.
    if (user.disabled || user.is_protected) {
        return finish("ldap.password_change_refused", write_status::failed,
                      user.disabled ? "refused: account disabled by an administrator"
                                    : "refused: member of a protected group");
    }
    // An empty current password would be an anonymous bind (RFC 4513 section 5.1.2), an
    // empty new one a request for a generated password (RFC 3062): neither is sent.
    if (current.empty()) {
        return finish("ldap.password_change_wrong_password", write_status::wrong_password,
                      "refused: empty current password");
    }
    if (new_password.empty()) {
        out.reason = refusal{"min_length", "empty password"};
        return finish("ldap.password_change_rejected", write_status::rejected,
                      "refused: empty password");
    }
    user_session session = bind_as_user(user, current);
    if (!session.connection) {
        return finish("ldap.password_change_unavailable", write_status::unavailable,
                      "no directory server reachable");
    }
    const operation_result& bound = session.bind;
    const std::string& uri = health_->uri(session.connection.server);
    // A successful bind may carry ppolicy changeAfterReset (pwdReset TRUE with pwdMustChange):
    // then the session may do nothing but change its password, which is what comes next.
    if (bound.result != LDAP_SUCCESS) {
        const std::string diagnostic =
            "bind: result=" + std::to_string(bound.result) + " (" + ldap_err2string(bound.result) +
            ") ppolicy=" + std::to_string(bound.ppolicy_error) + " text=" + bound.text;
        switch (map_openldap_bind_result(bound.result, bound.ppolicy_error)) {
            case bind_status::invalid_credentials:
                return finish("ldap.password_change_wrong_password", write_status::wrong_password,
                              diagnostic);
            case bind_status::locked:
                return finish("ldap.password_change_locked", write_status::locked, diagnostic);
            case bind_status::must_change:
                // ppolicy "expired" comes with a failed bind (no grace logins left): slapd
                // lets this user do nothing, a change as the user is impossible.
                out.status = write_status::failed;
                out.diagnostic =
                    diagnostic + "; password expired, an administrator reset is needed";
                log::warning("ldap.password_change_failed", {{"directory", settings_.name},
                                                             {"uri", uri},
                                                             {"dn", user.dn},
                                                             {"diagnostic", out.diagnostic}});
                return out;
            case bind_status::ok:
            case bind_status::unavailable:
                break;
        }
        out.status = write_status::unavailable;
        out.diagnostic = diagnostic;
        log::warning("ldap.password_change_unavailable", {{"directory", settings_.name},
                                                          {"uri", uri},
                                                          {"dn", user.dn},
                                                          {"stage", "bind"},
                                                          {"diagnostic", out.diagnostic}});
        return out;
    }
    return change_as_user(session.connection, user, current, new_password);
}

write_result openldap_directory::change_as_user(const opened_connection& connection,
                                                const directory_user& user, const secret& current,
                                                const secret& new_password) {
    LDAP* ld = connection.handle.get();
    const bool exop = settings_.password_write == password_write_mode::exop;
    // Exop: userIdentity = DN, oldPasswd = current, newPasswd = new, as the user. The bind
    // already proved the current password, but ppolicy only demands oldPasswd with
    // pwdSafeModify (LAB.md); we send it anyway so the server can check it (RFC 3062 2.).
    // Modify mode (servers without the exop): replace userPassword as the user.
    const operation_result r =
        exop ? password_modify(ld, user.dn, current.view(), new_password.view(),
                               settings_.timeout_ms)
             : modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "userPassword",
                                {new_password.view()}, true, settings_.timeout_ms);
    write_result out = map_openldap_write_result(r.result, r.ppolicy_error, r.text);
    std::string_view hint;
    if (is_connection_error(r.result)) {
        // Never retried, here or on another server: the change may have been written.
        out.status = write_status::unavailable;
        health_->failed(connection.server, "connection_error");
    } else if (r.result == LDAP_INVALID_CREDENTIALS) {
        // Servers that check oldPasswd themselves may answer 49 (the password changed
        // between our bind and the exop).
        out.status = write_status::wrong_password;
    } else if (r.result == LDAP_UNWILLING_TO_PERFORM && exop) {
        // slapd answers 53 "unwilling to verify old password" when oldPasswd is wrong, or
        // when the user lacks auth access to its own userPassword (an ACL of `by self =w`).
        hint =
            "users need write (which includes auth) on their own userPassword, e.g. "
            "`by self write`";
    } else if (r.result == LDAP_INSUFFICIENT_ACCESS) {
        hint = "users need write on their own userPassword, and pwdAllowUserChange TRUE";
    }
    const char* mode = exop ? "exop" : "modify";
    switch (out.status) {
        case write_status::ok:
            log::info("ldap.password_changed",
                      {{"directory", settings_.name}, {"dn", user.dn}, {"mode", mode}});
            break;
        case write_status::rejected:
            log::info("ldap.password_change_rejected", {{"directory", settings_.name},
                                                        {"dn", user.dn},
                                                        {"rule", out.reason->rule},
                                                        {"diagnostic", out.diagnostic}});
            break;
        case write_status::wrong_password:
            log::info(
                "ldap.password_change_wrong_password",
                {{"directory", settings_.name}, {"dn", user.dn}, {"diagnostic", out.diagnostic}});
            break;
        case write_status::unavailable:
            log::warning("ldap.password_change_unavailable", {{"directory", settings_.name},
                                                              {"dn", user.dn},
                                                              {"stage", mode},
                                                              {"diagnostic", out.diagnostic}});
            break;
        case write_status::locked:
        case write_status::failed:
            log::error("ldap.password_change_failed", {{"directory", settings_.name},
                                                       {"dn", user.dn},
                                                       {"mode", mode},
                                                       {"diagnostic", out.diagnostic},
                                                       {"hint", hint}});
            break;
    }
    return out;
}

write_result openldap_directory::reset_password(const directory_user& user,
                                                const secret& new_password) {
    write_result out;
    if (user.dn.empty()) {
        out.diagnostic = "refused: no user DN";
        return out;
    }
    // Defence in depth for the reset flow: self-service must never re-enable an account an
    // administrator disabled, nor touch a protected account.
    if (user.disabled || user.is_protected) {
        out.diagnostic = user.disabled ? "refused: account disabled by an administrator"
                                       : "refused: member of a protected group";
        log::warning("ldap.reset_refused", {{"dn", user.dn}, {"reason", out.diagnostic}});
        return out;
    }
    if (new_password.empty()) {
        // RFC 3062: an absent newPasswd asks the server to generate one.
        out.status = write_status::rejected;
        out.reason = refusal{"min_length", "empty password"};
        out.diagnostic = "refused: empty password";
        return out;
    }
    auto lease = pool_.acquire();
    if (!lease) {
        out.status = write_status::unavailable;
        out.diagnostic = "no directory connection";
        return out;
    }
    // Never retried: after a connection error the write may have reached the server.
    const operation_result r = write_password(lease->get(), user.dn, new_password);
    if (is_connection_error(r.result)) {
        lease->discard();
    }
    out = map_openldap_write_result(r.result, r.ppolicy_error, r.text);
    const char* mode = settings_.password_write == password_write_mode::modify ? "modify" : "exop";
    switch (out.status) {
        case write_status::ok:
            log::info("ldap.password_written", {{"dn", user.dn}, {"mode", mode}});
            after_write(lease->get(), user, out);
            break;
        case write_status::rejected:
            log::info(
                "ldap.password_rejected",
                {{"dn", user.dn}, {"rule", out.reason->rule}, {"diagnostic", out.diagnostic}});
            break;
        case write_status::unavailable:
            log::warning("ldap.password_write_unavailable",
                         {{"dn", user.dn}, {"mode", mode}, {"diagnostic", out.diagnostic}});
            break;
        case write_status::wrong_password:
        case write_status::locked:
        case write_status::failed:
            log::error("ldap.password_write_failed",
                       {{"dn", user.dn},
                        {"mode", mode},
                        {"diagnostic", out.diagnostic},
                        {"hint", r.result == LDAP_INSUFFICIENT_ACCESS
                                     ? "the service account needs write (=w) on userPassword"
                                     : ""}});
            break;
    }
    return out;
}

void openldap_directory::after_write(LDAP* ld, const directory_user& user, write_result& out) {
    if (settings_.force_change_at_next_logon) {
        const operation_result r = modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "pwdReset",
                                                    {"TRUE"}, false, settings_.timeout_ms);
        if (r.result != LDAP_SUCCESS) {
            log::warning("ldap.force_change_failed", {{"dn", user.dn},
                                                      {"result", r.result},
                                                      {"error", ldap_err2string(r.result)},
                                                      {"text", r.text}});
            out.diagnostic += "; pwdReset not set: result=" + std::to_string(r.result);
        }
    }
    if (settings_.unlock_on_reset && user.locked) {
        // Deleting pwdAccountLockedTime also clears pwdFailureTime; 16 (noSuchAttribute)
        // means ppolicy already unlocked the account with the password change (LAB.md).
        const operation_result r = modify_attribute(
            ld, user.dn, LDAP_MOD_DELETE, "pwdAccountLockedTime", {}, false, settings_.timeout_ms);
        if (r.result == LDAP_SUCCESS || r.result == LDAP_NO_SUCH_ATTRIBUTE) {
            out.unlocked = true;
            log::info("ldap.account_unlocked", {{"dn", user.dn}});
        } else {
            log::warning("ldap.unlock_failed", {{"dn", user.dn},
                                                {"result", r.result},
                                                {"error", ldap_err2string(r.result)},
                                                {"text", r.text}});
            out.diagnostic += "; unlock failed: result=" + std::to_string(r.result);
        }
    }
}

bool openldap_directory::ping() {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) {
            return false;
        }
        const search_result r = search(lease->get(), "", LDAP_SCOPE_BASE, "(objectClass=*)",
                                       {"1.1"}, 1, settings_.timeout_ms);
        if (r.result == LDAP_SUCCESS) {
            return true;
        }
        if (!is_connection_error(r.result)) {
            return false;
        }
        lease->discard();
    }
    return false;
}

}  // namespace

std::unique_ptr<directory> make_openldap_directory(directory_settings settings) {
    return std::make_unique<openldap_directory>(std::move(settings));
}

}  // namespace pwresetd::ldap
