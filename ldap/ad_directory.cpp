#include "ldap/ad_directory.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "ldap/ad_password.hpp"
#include "ldap/ad_result_map.hpp"
#include "ldap/connection.hpp"
#include "ldap/connection_pool.hpp"

namespace pwresetd::ldap {
namespace {

// userAccountControl and msDS-User-Account-Control-Computed flags (MS-ADTS 2.2.16).
constexpr std::uint64_t uf_accountdisable = 0x2;
constexpr std::uint64_t uf_lockout = 0x10;

// LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS 3.1.1.3.4.4, LDAP matching rules): the DC walks
// nested group membership itself, in one search.
constexpr std::string_view matching_rule_in_chain = "1.2.840.113556.1.4.1941";

constexpr const char* attr_guid = "objectGUID";
constexpr const char* attr_uac = "userAccountControl";
constexpr const char* attr_uac_computed = "msDS-User-Account-Control-Computed";
constexpr const char* attr_lockout_time = "lockoutTime";
constexpr const char* attr_admin_count = "adminCount";

// Which policy-hints control a DC takes (its RootDSE supportedControl).
enum class policy_hints { none, current, deprecated };

std::string_view hints_name(policy_hints h) {
    switch (h) {
        case policy_hints::current:
            return policy_hints_oid;
        case policy_hints::deprecated:
            return policy_hints_deprecated_oid;
        case policy_hints::none:
            break;
    }
    return "none";
}

std::string hex_lower(std::string_view bytes) {
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        out.push_back(digits[c >> 4U]);
        out.push_back(digits[c & 0x0FU]);
    }
    return out;
}

// A Win32 code as AD writes it after "data" (lowercase hex, "775").
std::string hex_code(std::uint32_t code) {
    std::array<char, 9> buf{};
    std::snprintf(buf.data(), buf.size(), "%x", code);
    return buf.data();
}

// A decimal attribute value (AD integers, possibly negative), nullopt when malformed.
std::optional<std::int64_t> parse_int(std::string_view s) {
    if (s.empty()) {
        return std::nullopt;
    }
    bool negative = false;
    std::size_t i = 0;
    if (s[0] == '-') {
        negative = true;
        i = 1;
    }
    if (i == s.size() || s.size() - i > 18) {
        return std::nullopt;
    }
    std::int64_t v = 0;
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return std::nullopt;
        }
        v = v * 10 + (s[i] - '0');
    }
    return negative ? -v : v;
}

// (|(memberOf:IN_CHAIN:=group)...) for a base search on a user; empty without groups.
std::string in_chain_filter(const std::vector<std::string>& groups) {
    if (groups.empty()) {
        return {};
    }
    std::string filter = "(|";
    for (const auto& group : groups) {
        filter += "(memberOf:" + std::string(matching_rule_in_chain) +
                  ":=" + escape_filter_value(group) + ")";
    }
    return filter + ")";
}

// A configured list of groups whose membership, direct or nested, a lookup reports
// (protected_groups, two_methods_groups), with the log events and hint that name it.
struct group_rule {
    group_rule(std::vector<std::string> group_dns, std::string_view missing,
               std::string_view failed, std::string_view hint)
        : groups(std::move(group_dns)),
          chain_filter(in_chain_filter(groups)),
          missing_event(missing),
          failed_event(failed),
          missing_hint(hint) {}

    std::vector<std::string> groups;
    std::string chain_filter;  // empty without groups
    std::string_view missing_event;
    std::string_view failed_event;
    std::string_view missing_hint;
    std::atomic<bool> checked{false};  // whether the groups exist was asked (and told) once
};

// One modification with binary values (unicodePwd is an octet string on the wire).
struct binary_mod {
    int operation;  // LDAP_MOD_ADD / LDAP_MOD_DELETE / LDAP_MOD_REPLACE
    const char* type;
    std::span<const unsigned char> value;
};

// One modify with several modifications and an optional server control, awaited with the
// timeout. connection.hpp's modify_attribute takes one attribute and only the ppolicy
// control; a password change must be one modify (delete old + add new, MS-ADTS
// 3.1.1.3.1.5), and a reset carries the policy-hints control.
operation_result modify_binary(LDAP* ld, const std::string& dn, std::span<const binary_mod> mods,
                               LDAPControl* control, int timeout_ms) {
    std::vector<berval> values(mods.size());
    std::vector<std::array<berval*, 2>> value_lists(mods.size());
    std::vector<LDAPMod> storage(mods.size());
    std::vector<LDAPMod*> pointers;
    pointers.reserve(mods.size() + 1);
    for (std::size_t i = 0; i < mods.size(); ++i) {
        // libldap only reads the values (ldap_modify_ext copies them into the request).
        values[i].bv_len = mods[i].value.size();
        values[i].bv_val = const_cast<char*>(reinterpret_cast<const char*>(mods[i].value.data()));
        value_lists[i] = {&values[i], nullptr};
        storage[i].mod_op = mods[i].operation | LDAP_MOD_BVALUES;
        storage[i].mod_type = const_cast<char*>(mods[i].type);
        storage[i].mod_bvalues = value_lists[i].data();
        pointers.push_back(&storage[i]);
    }
    pointers.push_back(nullptr);
    LDAPControl* server_controls[] = {control, nullptr};
    int msgid = -1;
    const int rc =
        ldap_modify_ext(ld, dn.c_str(), pointers.data(), server_controls, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, -1, diagnostic_message(ld)};
    }
    return await_result(ld, msgid, timeout_ms);
}

// What each pooled connection's DC said about the policy-hints controls when it was
// opened. Keyed by handle; an entry may outlive its handle (the pool closes handles without
// telling), so the cache is bounded and a miss means "ask this connection's DC again".
class hints_cache {
public:
    explicit hints_cache(std::size_t limit) : limit_(limit) {}

    void put(LDAP* ld, policy_hints hints) {
        const std::lock_guard lock(mutex_);
        entries_[ld] = {++sequence_, hints};
        while (entries_.size() > limit_) {
            auto oldest = entries_.begin();
            for (auto it = entries_.begin(); it != entries_.end(); ++it) {
                if (it->second.first < oldest->second.first) {
                    oldest = it;
                }
            }
            entries_.erase(oldest);
        }
    }

    std::optional<policy_hints> get(LDAP* ld) {
        const std::lock_guard lock(mutex_);
        const auto it = entries_.find(ld);
        if (it == entries_.end()) {
            return std::nullopt;
        }
        return it->second.second;
    }

private:
    const std::size_t limit_;
    std::mutex mutex_;
    std::map<LDAP*, std::pair<std::uint64_t, policy_hints>> entries_;
    std::uint64_t sequence_ = 0;
};

class ad_directory final : public directory {
public:
    explicit ad_directory(directory_settings settings)
        : settings_(std::move(settings)),
          protected_(settings_.protected_groups, "ldap.protected_group_missing",
                     "ldap.protected_group_check_failed",
                     "no group with this DN: its members are not protected"),
          two_methods_(settings_.two_methods_groups, "ldap.two_methods_group_missing",
                       "ldap.two_methods_group_check_failed",
                       "no group with this DN: its members are not asked for two methods"),
          hints_(2 * static_cast<std::size_t>(settings_.pool_size) + 2),
          hints_value_(policy_hints_value()),
          health_(std::make_shared<server_health>(settings_.uris, settings_.name)),
          pool_(
              static_cast<std::size_t>(settings_.pool_size),
              std::chrono::milliseconds(settings_.timeout_ms),
              [this] { return open_pooled_connection(); }, health_) {
        attributes_ = {attr_guid,
                       attr_uac,
                       attr_uac_computed,
                       attr_lockout_time,
                       attr_admin_count,
                       settings_.attributes.email,
                       settings_.attributes.phone,
                       settings_.attributes.display_name};
    }

    lookup_result find_user(std::string_view username) override;
    bind_status verify_password(const directory_user& user, const secret& password) override;
    write_result reset_password(const directory_user& user, const secret& new_password) override;
    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password) override;
    bool ping() override;

private:
    // A service connection with failover (connection.hpp), then the DC's policy hints.
    opened_connection open_pooled_connection();
    // The DC's policy-hints support, from its RootDSE; nullopt with rc set on failure.
    std::optional<policy_hints> read_policy_hints(LDAP* ld, int& rc);
    lookup_result lookup(LDAP* ld, std::string_view username, int& rc);
    // Whether dn is a member, directly or through nested groups, of one of the rule's
    // groups (false without groups); nullopt with rc set when the DC could not tell.
    std::optional<bool> in_groups(LDAP* ld, const std::string& dn, group_rule& rule, int& rc);
    // For a name that matched no entry: the group searches a found entry would have cost.
    void decoy_group_checks(LDAP* ld);
    // A misspelt group DN matches nobody: said once per rule (asked again after an error).
    void check_groups_exist(LDAP* ld, group_rule& rule);
    // Whether the account is locked right now (nullopt when it cannot be read).
    std::optional<bool> locked_now(LDAP* ld, const std::string& dn);
    // Refusals every write shares; nullopt when the write may go ahead.
    std::optional<write_result> refuse_early(const directory_user& user, std::string_view what);
    void after_reset(LDAP* ld, const directory_user& user, write_result& out);
    void log_write(std::string_view operation, const directory_user& user,
                   const operation_result& r, const write_result& out);

    directory_settings settings_;
    std::vector<std::string> attributes_;
    group_rule protected_;
    group_rule two_methods_;
    hints_cache hints_;
    const std::vector<unsigned char> hints_value_;
    std::atomic<int> last_hints_{-1};        // to log a change of DC capability once
    std::shared_ptr<server_health> health_;  // per URI, shared by the pool and user binds
    connection_pool pool_;                   // last: its opener uses the members above
};

opened_connection ad_directory::open_pooled_connection() {
    opened_connection c = open_service_connection(settings_, *health_);
    if (!c) {
        return c;
    }
    // Read on every new connection: after a failover the DC may be another one, of
    // another version.
    int rc = LDAP_SUCCESS;
    const auto hints = read_policy_hints(c.handle.get(), rc);
    if (!hints) {
        if (is_connection_error(rc)) {
            health_->failed(c.server, "connection_error");
        }
        c.handle.reset();
        c.rc = rc;
        return c;
    }
    hints_.put(c.handle.get(), *hints);
    return c;
}

std::optional<policy_hints> ad_directory::read_policy_hints(LDAP* ld, int& rc) {
    const search_result r = search(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", {"supportedControl"},
                                   1, settings_.timeout_ms);
    rc = r.result;
    LDAPMessage* entry = r.result == LDAP_SUCCESS ? ldap_first_entry(ld, r.message.get()) : nullptr;
    if (entry == nullptr) {
        log::error("ldap.rootdse_failed", {{"directory", settings_.name},
                                           {"result", r.result},
                                           {"error", ldap_err2string(r.result)},
                                           {"text", r.text}});
        if (rc == LDAP_SUCCESS) {
            rc = LDAP_NO_RESULTS_RETURNED;
        }
        return std::nullopt;
    }
    policy_hints hints = policy_hints::none;
    for (const auto& oid : attribute_values(ld, entry, "supportedControl")) {
        if (oid == policy_hints_oid) {
            hints = policy_hints::current;
        } else if (oid == policy_hints_deprecated_oid && hints == policy_hints::none) {
            hints = policy_hints::deprecated;
        }
    }
    const int previous = last_hints_.exchange(static_cast<int>(hints));
    if (previous != static_cast<int>(hints)) {
        if (hints == policy_hints::none) {
            log::warning("ldap.ad_policy_hints_unsupported",
                         {{"directory", settings_.name},
                          {"require_policy_hints", settings_.require_policy_hints},
                          {"consequence", settings_.require_policy_hints
                                              ? "resets are refused (fail closed)"
                                              : "password history is not checked on resets"}});
        } else {
            log::info("ldap.ad_policy_hints",
                      {{"directory", settings_.name}, {"control", hints_name(hints)}});
        }
    }
    return hints;
}

lookup_result ad_directory::find_user(std::string_view username) {
    if (username.empty()) {
        return {lookup_status::not_found, std::nullopt};
    }
    // A search is idempotent: retried once on a fresh connection after a connection error.
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
            break;
        }
    }
    return {lookup_status::unavailable, std::nullopt};
}

lookup_result ad_directory::lookup(LDAP* ld, std::string_view username, int& rc) {
    const std::string filter = expand_user_filter(settings_.user_filter, username);
    search_result found = search(ld, settings_.user_base, LDAP_SCOPE_SUBTREE, filter, attributes_,
                                 2, settings_.timeout_ms);
    rc = found.result;
    if (is_connection_error(rc)) {
        return {lookup_status::unavailable, std::nullopt};
    }
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
    const ldap_string dn(entry != nullptr ? ldap_get_dn(ld, entry) : nullptr);
    if (!dn) {
        rc = LDAP_DECODING_ERROR;
        return {lookup_status::unavailable, std::nullopt};
    }
    const auto first = [&](const std::string& name) {
        auto values = attribute_values(ld, entry, name);
        return values.empty() ? std::string() : std::move(values.front());
    };
    directory_user user;
    user.dn = dn.get();
    user.directory = settings_.name;
    user.username = std::string(username);
    user.display_name = first(settings_.attributes.display_name);
    user.email = first(settings_.attributes.email);
    user.phone = first(settings_.attributes.phone);
    const std::string guid = first(attr_guid);
    if (guid.size() != 16) {
        log::warning("ldap.user_without_objectguid",
                     {{"directory", settings_.name}, {"dn", user.dn}});
        rc = LDAP_SUCCESS;
        return {lookup_status::unavailable, std::nullopt};
    }
    user.id = hex_lower(guid);  // the 16 bytes as stored, so it survives renames and moves
    const auto uac = parse_int(first(attr_uac));
    if (!uac) {
        log::warning("ldap.user_without_useraccountcontrol",
                     {{"directory", settings_.name}, {"dn", user.dn}});
        rc = LDAP_SUCCESS;
        return {lookup_status::unavailable, std::nullopt};  // cannot tell whether disabled
    }
    user.disabled = (static_cast<std::uint64_t>(*uac) & uf_accountdisable) != 0;
    // The computed flag knows whether lockoutDuration has expired; lockoutTime alone stays
    // set until the next logon (MS-ADTS 3.1.1.4.5.17). Older DCs lack it: use lockoutTime.
    if (const auto computed = parse_int(first(attr_uac_computed))) {
        user.locked = (static_cast<std::uint64_t>(*computed) & uf_lockout) != 0;
    } else {
        user.locked = parse_int(first(attr_lockout_time)).value_or(0) > 0;
    }
    // adminCount=1: the account is (or was) in a protected group (AdminSDHolder, SDProp).
    if (settings_.protect_admin_count && first(attr_admin_count) == "1") {
        user.is_protected = true;
    } else {
        const auto in_group = in_groups(ld, user.dn, protected_, rc);
        if (!in_group) {
            return {lookup_status::unavailable, std::nullopt};  // fail closed
        }
        user.is_protected = *in_group;
    }
    const auto two_methods = in_groups(ld, user.dn, two_methods_, rc);
    if (!two_methods) {
        return {lookup_status::unavailable, std::nullopt};  // fail closed
    }
    user.needs_two_methods = *two_methods;
    rc = LDAP_SUCCESS;
    return {lookup_status::found, std::move(user)};
}

std::optional<bool> ad_directory::in_groups(LDAP* ld, const std::string& dn, group_rule& rule,
                                            int& rc) {
    rc = LDAP_SUCCESS;
    if (rule.chain_filter.empty()) {
        return false;
    }
    check_groups_exist(ld, rule);
    // A base search on the user with an IN_CHAIN filter: the entry comes back only when it
    // is a member, directly or through nested groups, of one of the groups.
    const search_result r =
        search(ld, dn, LDAP_SCOPE_BASE, rule.chain_filter, {"1.1"}, 1, settings_.timeout_ms);
    if (r.result != LDAP_SUCCESS) {
        rc = r.result;
        log::error(rule.failed_event, {{"directory", settings_.name},
                                       {"dn", dn},
                                       {"result", r.result},
                                       {"error", ldap_err2string(r.result)},
                                       {"text", r.text}});
        return std::nullopt;
    }
    return ldap_count_entries(ld, r.message.get()) > 0;
}

void ad_directory::decoy_group_checks(LDAP* ld) {
    // Unknown and real users must take the same time (API.md): a found entry costs one
    // IN_CHAIN base search per rule, so a name that matched nothing has the DC evaluate the
    // same filters on the user base. Results and errors are of no interest.
    for (const auto* rule : {&protected_, &two_methods_}) {
        if (!rule->chain_filter.empty()) {
            (void)search(ld, settings_.user_base, LDAP_SCOPE_BASE, rule->chain_filter, {"1.1"}, 1,
                         settings_.timeout_ms);
        }
    }
}

void ad_directory::check_groups_exist(LDAP* ld, group_rule& rule) {
    if (rule.checked.exchange(true)) {
        return;
    }
    for (const auto& group : rule.groups) {
        const search_result r = search(ld, group, LDAP_SCOPE_BASE, "(objectClass=group)", {"1.1"},
                                       1, settings_.timeout_ms);
        if (r.result == LDAP_SUCCESS && ldap_count_entries(ld, r.message.get()) > 0) {
            continue;
        }
        if (r.result == LDAP_SUCCESS || r.result == LDAP_NO_SUCH_OBJECT ||
            r.result == LDAP_INVALID_DN_SYNTAX) {
            log::error(
                rule.missing_event,
                {{"directory", settings_.name}, {"group", group}, {"hint", rule.missing_hint}});
            continue;
        }
        rule.checked = false;  // could not tell: look again next time
        return;
    }
}

std::optional<bool> ad_directory::locked_now(LDAP* ld, const std::string& dn) {
    const search_result r = search(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
                                   {attr_uac_computed, attr_lockout_time}, 1, settings_.timeout_ms);
    LDAPMessage* entry = r.result == LDAP_SUCCESS ? ldap_first_entry(ld, r.message.get()) : nullptr;
    if (entry == nullptr) {
        return std::nullopt;
    }
    const auto computed = attribute_values(ld, entry, attr_uac_computed);
    if (!computed.empty()) {
        if (const auto v = parse_int(computed.front())) {
            return (static_cast<std::uint64_t>(*v) & uf_lockout) != 0;
        }
    }
    const auto lockout = attribute_values(ld, entry, attr_lockout_time);
    return !lockout.empty() && parse_int(lockout.front()).value_or(0) > 0;
}

bind_status ad_directory::verify_password(const directory_user& user, const secret& password) {
    // An empty password would make this an unauthenticated bind, which "succeeds"
    // anonymously (RFC 4513 section 5.1.2): never send it.
    if (password.empty() || user.dn.empty()) {
        return bind_status::invalid_credentials;
    }
    const opened_connection c = open_connection(settings_, *health_);
    if (!c) {
        return bind_status::unavailable;
    }
    const operation_result r =
        simple_bind(c.handle.get(), user.dn, password.view(), settings_.timeout_ms);
    if (is_connection_error(r.result)) {
        // Not retried elsewhere: the bind may have reached this DC and counted as a bad
        // attempt (badPwdCount). Only opening a connection fails over.
        health_->failed(c.server, "connection_error");
    }
    const bind_status status = map_ad_bind_result(r.result, r.text);
    if (status == bind_status::unavailable) {
        log::warning("ldap.user_bind_failed", {{"directory", settings_.name},
                                               {"uri", health_->uri(c.server)},
                                               {"dn", user.dn},
                                               {"result", r.result},
                                               {"error", ldap_err2string(r.result)},
                                               {"text", r.text}});
    } else if (status != bind_status::ok) {
        // 52e is the everyday wrong password; the others (disabled 533, expired 701,
        // logon hours 530, ...) are worth a line even though the caller sees the same.
        const auto data = ad_bind_data_code(r.text);
        log::info("ldap.user_bind_refused", {{"directory", settings_.name},
                                             {"dn", user.dn},
                                             {"result", r.result},
                                             {"data", data ? hex_code(*data) : std::string()}});
    }
    return status;
}

std::optional<write_result> ad_directory::refuse_early(const directory_user& user,
                                                       std::string_view what) {
    write_result out;
    if (user.dn.empty()) {
        out.diagnostic = "refused: no user DN";
        return out;
    }
    // Defence in depth for the flows: self-service must never touch an account an
    // administrator disabled (a reset would not re-enable it, but the user would be told
    // it worked), nor a protected (privileged) account.
    if (user.disabled || user.is_protected) {
        out.diagnostic = user.disabled
                             ? "refused: account disabled in the directory"
                             : "refused: protected account (protected group or adminCount)";
        log::warning("ldap.write_refused", {{"directory", settings_.name},
                                            {"operation", what},
                                            {"dn", user.dn},
                                            {"reason", out.diagnostic}});
        return out;
    }
    return std::nullopt;
}

write_result ad_directory::reset_password(const directory_user& user, const secret& new_password) {
    if (auto refused = refuse_early(user, "reset")) {
        return std::move(*refused);
    }
    write_result out;
    if (new_password.empty()) {
        out.status = write_status::rejected;
        out.reason = refusal{"min_length", "empty password"};
        out.diagnostic = "refused: empty password";
        return out;
    }
    const std::optional<secret> value = encode_unicode_pwd(new_password.view());
    if (!value) {
        // The API refuses invalid UTF-8 before this (JSON strings are UTF-8).
        out.diagnostic = "refused: the new password is not valid UTF-8";
        log::error("ldap.password_write_failed",
                   {{"directory", settings_.name}, {"dn", user.dn}, {"reason", out.diagnostic}});
        return out;
    }
    auto lease = pool_.acquire();
    if (!lease) {
        out.status = write_status::unavailable;
        out.diagnostic = "no directory connection";
        return out;
    }
    int rc = LDAP_SUCCESS;
    std::optional<policy_hints> hints = hints_.get(lease->get());
    if (!hints) {
        hints = read_policy_hints(lease->get(), rc);
        if (!hints) {
            if (is_connection_error(rc)) {
                lease->discard();
            }
            out.status = write_status::unavailable;
            out.diagnostic = "cannot read the DC's RootDSE: result=" + std::to_string(rc);
            return out;
        }
        hints_.put(lease->get(), *hints);
    }
    if (*hints == policy_hints::none && settings_.require_policy_hints) {
        // Fail closed: without the control an administrator reset skips password history
        // (MS-ADTS 3.1.1.3.4.1.27), and require_policy_hints says that must not happen.
        out.diagnostic =
            "refused: require_policy_hints is set and the DC lists neither policy-hints "
            "control (1.2.840.113556.1.4.2239, .2066) in its RootDSE supportedControl";
        log::error("ldap.reset_refused_no_policy_hints",
                   {{"directory", settings_.name}, {"dn", user.dn}, {"reason", out.diagnostic}});
        return out;
    }
    // Always non-critical: a DC that does not know the control ignores it instead of
    // refusing the reset (Samba answers 12 to a critical one, LAB.md).
    const std::string oid(hints_name(*hints));
    LDAPControl control{};
    control.ldctl_oid = const_cast<char*>(oid.c_str());
    control.ldctl_value.bv_len = hints_value_.size();
    control.ldctl_value.bv_val =
        const_cast<char*>(reinterpret_cast<const char*>(hints_value_.data()));
    control.ldctl_iscritical = 0;
    // MS-ADTS 3.1.1.3.1.5: an administrator reset is one replace of unicodePwd.
    const binary_mod mods[] = {{LDAP_MOD_REPLACE, "unicodePwd", value->bytes()}};
    // Never retried: after a connection error the write may have reached the DC.
    const operation_result r =
        modify_binary(lease->get(), user.dn, mods,
                      *hints == policy_hints::none ? nullptr : &control, settings_.timeout_ms);
    if (is_connection_error(r.result)) {
        lease->discard();
    }
    out = map_ad_write_result(r.result, r.text);
    log_write("reset", user, r, out);
    if (out.status == write_status::ok) {
        after_reset(lease->get(), user, out);
    }
    return out;
}

void ad_directory::after_reset(LDAP* ld, const directory_user& user, write_result& out) {
    if (settings_.force_change_at_next_logon) {
        // pwdLastSet 0 = must change at next logon; AD accepts only 0 and -1 here.
        const operation_result r = modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "pwdLastSet",
                                                    {"0"}, false, settings_.timeout_ms);
        if (r.result != LDAP_SUCCESS) {
            log::warning("ldap.force_change_failed", {{"directory", settings_.name},
                                                      {"dn", user.dn},
                                                      {"result", r.result},
                                                      {"error", ldap_err2string(r.result)},
                                                      {"text", r.text},
                                                      {"hint", ad_write_hint(r.result, r.text)}});
            out.diagnostic += "; pwdLastSet not set: result=" + std::to_string(r.result);
        }
    }
    if (!settings_.unlock_on_reset) {
        return;
    }
    // An administrator reset does not unlock an AD account (LAB.md): lockoutTime 0 does.
    // Asked again now: the lookup may be a while old.
    if (!locked_now(ld, user.dn).value_or(user.locked)) {
        return;
    }
    const operation_result r = modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "lockoutTime", {"0"},
                                                false, settings_.timeout_ms);
    if (r.result == LDAP_SUCCESS) {
        out.unlocked = true;
        log::info("ldap.account_unlocked", {{"directory", settings_.name}, {"dn", user.dn}});
    } else {
        log::warning("ldap.unlock_failed", {{"directory", settings_.name},
                                            {"dn", user.dn},
                                            {"result", r.result},
                                            {"error", ldap_err2string(r.result)},
                                            {"text", r.text},
                                            {"hint", ad_write_hint(r.result, r.text)}});
        out.diagnostic += "; unlock failed: result=" + std::to_string(r.result);
    }
}

write_result ad_directory::change_password(const directory_user& user, const secret& current,
                                           const secret& new_password) {
    if (auto refused = refuse_early(user, "change")) {
        return std::move(*refused);
    }
    write_result out;
    if (current.empty()) {
        out.status = write_status::wrong_password;
        out.diagnostic = "refused: empty current password";
        return out;
    }
    if (new_password.empty()) {
        out.status = write_status::rejected;
        out.reason = refusal{"min_length", "empty password"};
        out.diagnostic = "refused: empty password";
        return out;
    }
    const std::optional<secret> old_value = encode_unicode_pwd(current.view());
    const std::optional<secret> new_value = encode_unicode_pwd(new_password.view());
    if (!old_value || !new_value) {
        out.diagnostic = "refused: a password is not valid UTF-8";
        log::error("ldap.password_write_failed",
                   {{"directory", settings_.name}, {"dn", user.dn}, {"reason", out.diagnostic}});
        return out;
    }
    auto lease = pool_.acquire();
    if (!lease) {
        out.status = write_status::unavailable;
        out.diagnostic = "no directory connection";
        return out;
    }
    // MS-ADTS 3.1.1.3.1.5: a change is delete (old) + add (new) in one modify. Done as the
    // service account (the Change Password right is Everyone's by default), not bound as
    // the user: a user whose pwdLastSet is 0 cannot bind (data 773) but can still change.
    const binary_mod mods[] = {{LDAP_MOD_DELETE, "unicodePwd", old_value->bytes()},
                               {LDAP_MOD_ADD, "unicodePwd", new_value->bytes()}};
    const operation_result r =
        modify_binary(lease->get(), user.dn, mods, nullptr, settings_.timeout_ms);
    if (is_connection_error(r.result)) {
        lease->discard();
    }
    out = map_ad_write_result(r.result, r.text);
    log_write("change", user, r, out);
    return out;
}

void ad_directory::log_write(std::string_view operation, const directory_user& user,
                             const operation_result& r, const write_result& out) {
    switch (out.status) {
        case write_status::ok:
            log::info("ldap.password_written",
                      {{"directory", settings_.name}, {"dn", user.dn}, {"operation", operation}});
            break;
        case write_status::rejected:
            log::info("ldap.password_rejected", {{"directory", settings_.name},
                                                 {"dn", user.dn},
                                                 {"operation", operation},
                                                 {"rule", out.reason->rule},
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
                                                      {"hint", ad_write_hint(r.result, r.text)}});
            break;
    }
}

bool ad_directory::ping() {
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

std::unique_ptr<directory> make_ad_directory(directory_settings settings) {
    return std::make_unique<ad_directory>(std::move(settings));
}

}  // namespace pwresetd::ldap
