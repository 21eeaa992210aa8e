#include "ldap/directory_core.hpp"

#include <chrono>
#include <utility>

#include "common/log.hpp"
#include "common/metrics.hpp"

namespace pwresetd::ldap {
namespace {

// Per directory, server URI (from the configuration: bounded) and operation: search (user
// lookup), ping, bind (as a user), write (password, as the service account). "none": no
// server could be reached.
metrics::histogram_family& operation_seconds() {
    static auto& family = metrics::registry::global().histograms(
        "pwresetd_directory_operation_duration_seconds",
        "Time of directory operations, by directory, server URI and operation (search, ping, "
        "bind, write).",
        {"directory", "server", "operation"});
    return family;
}

metrics::counter_family& operation_errors() {
    static auto& family = metrics::registry::global().counters(
        "pwresetd_directory_errors_total",
        "Directory operations that failed for the directory's sake (no server reachable, a "
        "connection error, a failed search or write), by directory, server URI and operation; "
        "a wrong password or a refused new one is no error.",
        {"directory", "server", "operation"});
    return family;
}

using op_clock = std::chrono::steady_clock;

void observe(const std::string& directory, const std::string& server, std::string_view operation,
             op_clock::time_point started, bool error) {
    const std::string_view uri = server.empty() ? std::string_view("none") : server;
    operation_seconds()
        .with({directory, uri, operation})
        .observe(std::chrono::duration<double>(op_clock::now() - started).count());
    if (error) {
        operation_errors().with({directory, uri, operation}).inc();
    }
}

void unreachable(const std::string& directory, std::string_view operation) {
    operation_errors().with({directory, "none", operation}).inc();
}

}  // namespace

group_list group_list::protected_groups(const directory_settings& settings) {
    return {settings.protected_groups, "ldap.protected_group_missing",
            "ldap.protected_group_check_failed",
            "no group with this DN: its members are not protected"};
}

group_list group_list::two_methods_groups(const directory_settings& settings) {
    return {settings.two_methods_groups, "ldap.two_methods_group_missing",
            "ldap.two_methods_group_check_failed",
            "no group with this DN: its members are not asked for two methods"};
}

std::string first_value(LDAP* ld, LDAPMessage* entry, const std::string& name) {
    auto values = attribute_values(ld, entry, name);
    return values.empty() ? std::string() : std::move(values.front());
}

directory_core::directory_core(directory_settings settings, std::vector<std::string> attributes,
                               connection_setup setup)
    : settings_(std::move(settings)),
      attributes_(std::move(attributes)),
      setup_(std::move(setup)),
      health_(std::make_shared<server_health>(settings_.uris, settings_.name)),
      pool_(
          static_cast<std::size_t>(settings_.pool_size),
          std::chrono::milliseconds(settings_.timeout_ms),
          [this] { return open_pooled_connection(); }, health_) {
    attributes_.push_back(settings_.attributes.email);
    attributes_.push_back(settings_.attributes.phone);
    attributes_.push_back(settings_.attributes.display_name);
    // Every configured server's series exist from the start (errors at 0).
    for (const auto& uri : settings_.uris) {
        for (const char* operation : {"search", "ping", "bind", "write"}) {
            operation_errors().with({settings_.name, uri, operation});
        }
    }
}

opened_connection directory_core::open_pooled_connection() {
    opened_connection c = open_service_connection(settings_, *health_);
    if (!c || !setup_) {
        return c;
    }
    const int rc = setup_(c.handle.get());
    if (rc != LDAP_SUCCESS) {
        if (is_connection_error(rc)) {
            health_->failed(c.server, "connection_error");
        }
        c.handle.reset();
        c.rc = rc;
    }
    return c;
}

lookup_result directory_core::find_user(std::string_view username, user_reader& reader) {
    if (username.empty()) {
        return {lookup_status::not_found, std::nullopt};
    }
    // A pooled connection may have been dropped by the server or a failover.
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) {
            unreachable(settings_.name, "search");
            return {lookup_status::unavailable, std::nullopt};
        }
        int rc = LDAP_SUCCESS;
        const auto started = op_clock::now();
        lookup_result result = lookup(lease->get(), username, reader, rc);
        observe(settings_.name, lease->uri(), "search", started,
                result.status == lookup_status::unavailable);
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

lookup_result directory_core::lookup(LDAP* ld, std::string_view username, user_reader& reader,
                                     int& rc) {
    const std::string filter = expand_user_filter(settings_.user_filter, username);
    const search_result found = search(ld, settings_.user_base, LDAP_SCOPE_SUBTREE, filter,
                                       attributes_, 2, settings_.timeout_ms);
    rc = found.result;
    if (is_connection_error(rc)) {
        return {lookup_status::unavailable, std::nullopt};
    }
    const int count = rc == LDAP_SUCCESS ? ldap_count_entries(ld, found.message.get()) : 0;
    // sizeLimitExceeded with limit 2: a third match exists, so more than one.
    if (rc == LDAP_SIZELIMIT_EXCEEDED || count > 1) {
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
    if (count <= 0) {
        reader.decoy_lookup(ld);
        return {lookup_status::not_found, std::nullopt};
    }
    LDAPMessage* entry = ldap_first_entry(ld, found.message.get());
    const ldap_string dn(entry != nullptr ? ldap_get_dn(ld, entry) : nullptr);
    if (!dn) {
        rc = LDAP_DECODING_ERROR;
        return {lookup_status::unavailable, std::nullopt};
    }
    directory_user user;
    user.dn = dn.get();
    user.directory = settings_.name;
    user.username = std::string(username);
    user.display_name = first_value(ld, entry, settings_.attributes.display_name);
    user.email = first_value(ld, entry, settings_.attributes.email);
    user.phone = first_value(ld, entry, settings_.attributes.phone);
    if (reader.read_user(ld, entry, user, rc) != lookup_status::found) {
        return {lookup_status::unavailable, std::nullopt};  // fail closed
    }
    rc = LDAP_SUCCESS;
    return {lookup_status::found, std::move(user)};
}

lookup_status directory_core::incomplete_entry(const directory_user& user,
                                               std::string_view attribute, int& rc) const {
    log::warning("ldap.user_entry_incomplete",
                 {{"directory", settings_.name}, {"dn", user.dn}, {"missing", attribute}});
    rc = LDAP_SUCCESS;
    return lookup_status::unavailable;
}

bool directory_core::ping() {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) {
            unreachable(settings_.name, "ping");
            return false;
        }
        const auto started = op_clock::now();
        const search_result r = search(lease->get(), "", LDAP_SCOPE_BASE, "(objectClass=*)",
                                       {"1.1"}, 1, settings_.timeout_ms);
        observe(settings_.name, lease->uri(), "ping", started, r.result != LDAP_SUCCESS);
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

directory_status directory_core::probe_servers() {
    directory_status out;
    out.name = settings_.name;
    const auto counts = pool_.current_counts();
    out.pool_size = counts.size;
    out.pool_open = counts.open;
    out.pool_idle = counts.idle;
    for (std::size_t i = 0; i < settings_.uris.size(); ++i) {
        server_status server;
        server.uri = settings_.uris[i];
        server.marked_down = health_->is_down(i);
        // What a TLS open reads of the settings, for this URI only (no credentials: the
        // probe does not bind).
        directory_settings one;
        one.name = settings_.name;
        one.kind = settings_.kind;
        one.uris = {settings_.uris[i]};
        one.start_tls = settings_.start_tls;
        one.ca_file = settings_.ca_file;
        one.timeout_ms = settings_.timeout_ms;
        const auto started = std::chrono::steady_clock::now();
        int rc = LDAP_CONNECT_ERROR;
        const ldap_handle handle = open_tls_connection(one, &rc);
        if (handle) {
            const search_result r = search(handle.get(), "", LDAP_SCOPE_BASE, "(objectClass=*)",
                                           {"1.1"}, 1, settings_.timeout_ms);
            rc = r.result;
        }
        server.result = rc;
        server.answers = handle && rc == LDAP_SUCCESS;
        if (server.answers) {
            server.latency_ms =
                static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count());
        }
        out.servers.push_back(std::move(server));
    }
    return out;
}

write_result directory_core::unlock_account(const directory_user& user,
                                            const reset_followup& unlock) {
    write_result out;
    if (user.dn.empty()) {
        out.diagnostic = "refused: no user DN";
        return out;
    }
    if (user.disabled || user.is_protected) {
        // OpenLDAP's administrative lock is pwdAccountLockedTime too: never lifted here.
        out.diagnostic = user.disabled ? "refused: account disabled in the directory"
                                       : "refused: protected account";
        return out;
    }
    auto lease = pool_.acquire();
    if (!lease) {
        out.status = write_status::unavailable;
        out.diagnostic = "no directory connection";
        return out;
    }
    const attribute_change& change = unlock.unlock;
    const operation_result r =
        modify_attribute(lease->get(), user.dn, change.operation, change.attribute, change.values,
                         false, settings_.timeout_ms);
    if (is_connection_error(r.result)) {
        lease->discard();
        out.status = write_status::unavailable;
    }
    if (r.result == LDAP_SUCCESS ||
        (unlock.also_unlocked != LDAP_SUCCESS && r.result == unlock.also_unlocked)) {
        out.status = write_status::ok;
        out.unlocked = r.result == LDAP_SUCCESS;
        log::info("ldap.account_unlocked",
                  {{"directory", settings_.name}, {"dn", user.dn}, {"by", "admin"}});
        return out;
    }
    out.diagnostic = change.attribute + " not written: result=" + std::to_string(r.result) + " (" +
                     ldap_err2string(r.result) + ") text=" + r.text;
    log::warning("ldap.unlock_failed",
                 {{"directory", settings_.name},
                  {"dn", user.dn},
                  {"attribute", change.attribute},
                  {"result", r.result},
                  {"error", ldap_err2string(r.result)},
                  {"text", r.text},
                  {"hint", unlock.hint != nullptr ? unlock.hint(r.result, r.text) : ""}});
    return out;
}

user_session directory_core::bind_as_user(const directory_user& user, const secret& password) {
    user_session session;
    session.connection = open_connection(settings_, *health_);
    if (!session.connection) {
        unreachable(settings_.name, "bind");
        session.bind = {session.connection.rc, -1, "no directory server reachable"};
        return session;
    }
    const auto started = op_clock::now();
    session.bind = simple_bind(session.connection.handle.get(), user.dn, password.view(),
                               settings_.timeout_ms);
    observe(settings_.name, health_->uri(session.connection.server), "bind", started,
            is_connection_error(session.bind.result));
    if (is_connection_error(session.bind.result)) {
        // Only the open is failed over: the bind may have counted as a bad attempt here
        // (ppolicy pwdFailureTime, AD badPwdCount).
        health_->failed(session.connection.server, "connection_error");
    }
    return session;
}

bind_status directory_core::verify_password(const directory_user& user, const secret& password,
                                            bind_reader read) {
    if (password.empty() || user.dn.empty()) {
        return bind_status::invalid_credentials;
    }
    const user_session session = bind_as_user(user, password);
    if (!session.connection) {
        return bind_status::unavailable;
    }
    const operation_result& r = session.bind;
    const bind_status status = read(r);
    if (status == bind_status::unavailable) {
        log::warning("ldap.user_bind_failed", {{"directory", settings_.name},
                                               {"uri", health_->uri(session.connection.server)},
                                               {"dn", user.dn},
                                               {"result", r.result},
                                               {"error", ldap_err2string(r.result)},
                                               {"ppolicy", r.ppolicy_error},
                                               {"text", r.text}});
    } else if (status != bind_status::ok) {
        // The everyday wrong password, and the rarer reasons (AD: disabled 533, expired
        // 701, logon hours 530; ppolicy: locked) the caller sees as the same.
        log::info("ldap.user_bind_refused", {{"directory", settings_.name},
                                             {"dn", user.dn},
                                             {"result", r.result},
                                             {"ppolicy", r.ppolicy_error},
                                             {"text", r.text}});
    }
    return status;
}

std::optional<write_result> directory_core::refuse_write(const directory_user& user,
                                                         std::string_view operation,
                                                         const secret* current,
                                                         const secret& new_password) const {
    write_result out;
    if (user.dn.empty()) {
        out.diagnostic = "refused: no user DN";
    } else if (user.disabled) {
        out.diagnostic = "refused: account disabled in the directory";
    } else if (user.is_protected) {
        out.diagnostic = "refused: protected account (protected group, or AD adminCount)";
    } else if (current != nullptr && current->empty()) {
        out.status = write_status::wrong_password;
        out.diagnostic = "refused: empty current password";
    } else if (new_password.empty()) {
        out.status = write_status::rejected;
        out.reason = refusal{"min_length", "empty password"};
        out.diagnostic = "refused: empty password";
    } else {
        return std::nullopt;
    }
    log::write(out.status == write_status::failed ? log::level::warning : log::level::info,
               "ldap.write_refused",
               {{"directory", settings_.name},
                {"operation", operation},
                {"dn", user.dn},
                {"reason", out.diagnostic}});
    return out;
}

write_result directory_core::write_as_service(const directory_user& user,
                                              std::string_view operation,
                                              const service_write& write,
                                              const after_write& after) {
    auto lease = pool_.acquire();
    if (!lease) {
        write_result out;
        out.status = write_status::unavailable;
        out.diagnostic = "no directory connection";
        unreachable(settings_.name, "write");
        log_write(operation, user, out);
        return out;
    }
    const auto started = op_clock::now();
    write_attempt attempt = write(lease->get());
    observe(settings_.name, lease->uri(), "write", started,
            attempt.out.status == write_status::unavailable ||
                attempt.out.status == write_status::failed);
    if (is_connection_error(attempt.result.result)) {
        lease->discard();
    }
    log_write(operation, user, attempt.out, attempt.hint);
    if (attempt.out.status == write_status::ok && after) {
        after(lease->get(), attempt.out);
    }
    return std::move(attempt.out);
}

void directory_core::after_reset(LDAP* ld, const directory_user& user,
                                 const reset_followup& followup, write_result& out) const {
    if (settings_.force_change_at_next_logon) {
        (void)modify_after_reset(ld, user, followup.force_change, LDAP_SUCCESS, followup,
                                 "ldap.force_change_failed", out);
    }
    if (!settings_.unlock_on_reset || !followup.locked()) {
        return;
    }
    if (modify_after_reset(ld, user, followup.unlock, followup.also_unlocked, followup,
                           "ldap.unlock_failed", out)) {
        out.unlocked = true;
        log::info("ldap.account_unlocked", {{"directory", settings_.name}, {"dn", user.dn}});
    }
}

bool directory_core::modify_after_reset(LDAP* ld, const directory_user& user,
                                        const attribute_change& change, int also_ok,
                                        const reset_followup& followup, std::string_view failed,
                                        write_result& out) const {
    const operation_result r = modify_attribute(ld, user.dn, change.operation, change.attribute,
                                                change.values, false, settings_.timeout_ms);
    if (r.result == LDAP_SUCCESS || (also_ok != LDAP_SUCCESS && r.result == also_ok)) {
        return true;
    }
    log::warning(failed,
                 {{"directory", settings_.name},
                  {"dn", user.dn},
                  {"attribute", change.attribute},
                  {"result", r.result},
                  {"error", ldap_err2string(r.result)},
                  {"text", r.text},
                  {"hint", followup.hint != nullptr ? followup.hint(r.result, r.text) : ""}});
    out.diagnostic += "; " + change.attribute + " not written: result=" + std::to_string(r.result);
    return false;
}

void directory_core::log_write(std::string_view operation, const directory_user& user,
                               const write_result& out, std::string_view hint) const {
    switch (out.status) {
        case write_status::ok:
            log::info("ldap.password_written",
                      {{"directory", settings_.name}, {"dn", user.dn}, {"operation", operation}});
            break;
        case write_status::rejected:
            log::info("ldap.password_rejected",
                      {{"directory", settings_.name},
                       {"dn", user.dn},
                       {"operation", operation},
                       {"rule", out.reason ? std::string_view(out.reason->rule) : ""},
                       {"diagnostic", out.diagnostic}});
            break;
        case write_status::wrong_password:
        case write_status::locked:
            log::info("ldap.password_change_refused", {{"directory", settings_.name},
                                                       {"dn", user.dn},
                                                       {"operation", operation},
                                                       {"diagnostic", out.diagnostic}});
            break;
        case write_status::unavailable:
            log::warning("ldap.password_write_unavailable", {{"directory", settings_.name},
                                                             {"dn", user.dn},
                                                             {"operation", operation},
                                                             {"diagnostic", out.diagnostic}});
            break;
        case write_status::failed:
            log::error("ldap.password_write_failed", {{"directory", settings_.name},
                                                      {"dn", user.dn},
                                                      {"operation", operation},
                                                      {"diagnostic", out.diagnostic},
                                                      {"hint", hint}});
            break;
    }
}

void directory_core::log_group_missing(const group_list& groups, std::string_view group) const {
    log::error(groups.missing_event,
               {{"directory", settings_.name}, {"group", group}, {"hint", groups.missing_hint}});
}

void directory_core::log_group_check_failed(const group_list& groups, std::string_view base,
                                            const search_result& r) const {
    log::error(groups.failed_event, {{"directory", settings_.name},
                                     {"base", base},
                                     {"result", r.result},
                                     {"error", ldap_err2string(r.result)},
                                     {"text", r.text}});
}

}  // namespace pwresetd::ldap
