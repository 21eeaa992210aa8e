// The Active Directory dialect (Windows DCs and Samba AD): what differs from the
// directory_core.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "ldap/ad_password.hpp"
#include "ldap/ad_result_map.hpp"
#include "ldap/dialects.hpp"
#include "ldap/directory_core.hpp"

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

// A decimal attribute value (AD integers, possibly negative), nullopt when malformed.
std::optional<std::int64_t> parse_int(std::string_view s) {
    return text::parse_int<std::int64_t>(s);
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

// A configured group list, with its IN_CHAIN filter.
struct group_rule {
    explicit group_rule(group_list list)
        : groups(std::move(list)), chain_filter(in_chain_filter(groups.dns)) {}

    const group_list groups;
    const std::string chain_filter;    // empty without groups
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

class ad_dialect {
public:
    explicit ad_dialect(directory_core& core)
        : core_(core),
          protected_(group_list::protected_groups(core.settings())),
          two_methods_(group_list::two_methods_groups(core.settings())),
          hints_(2 * static_cast<std::size_t>(core.settings().pool_size) + 2),
          hints_value_(policy_hints_value()) {}

    static std::vector<std::string> attributes() {
        return {attr_guid, attr_uac, attr_uac_computed, attr_lockout_time, attr_admin_count};
    }
    static bind_status read_bind(const operation_result& r) {
        return map_ad_bind_result(r.result, r.text);
    }
    lookup_status read_user(LDAP* ld, LDAPMessage* entry, directory_user& user, int& rc);
    void decoy_lookup(LDAP* ld);
    write_result reset_password(const directory_user& user, const secret& new_password);
    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password);
    // Every new pooled connection: the DC's policy hints (after a failover the DC may be
    // another one, of another version).
    int on_new_connection(LDAP* ld);
    // An administrator reset does not unlock an AD account (LAB.md): lockoutTime 0 does.
    static reset_followup unlock_followup() {
        reset_followup f;
        f.unlock = {LDAP_MOD_REPLACE, "lockoutTime", {"0"}};
        f.hint = ad_write_hint;
        return f;
    }

private:
    // The DC's policy-hints support, from its RootDSE; nullopt with rc set on failure.
    std::optional<policy_hints> read_policy_hints(LDAP* ld, int& rc);
    // Whether dn is a member, directly or through nested groups, of one of the rule's
    // groups (false without groups); nullopt with rc set when the DC could not tell.
    std::optional<bool> in_groups(LDAP* ld, const std::string& dn, group_rule& rule, int& rc);
    // A misspelt group DN matches nobody: said once per rule (asked again after an error).
    void check_groups_exist(LDAP* ld, group_rule& rule);
    // Whether the account is locked right now (nullopt when it cannot be read).
    std::optional<bool> locked_now(LDAP* ld, const std::string& dn);
    write_attempt write_reset(LDAP* ld, const directory_user& user, const secret& value);
    // The unicodePwd value, or nullopt and a failed write (logged) when the password is
    // not UTF-8.
    std::optional<secret> encode(const directory_user& user, std::string_view operation,
                                 const secret& password, write_result& failed) const;

    directory_core& core_;
    group_rule protected_;
    group_rule two_methods_;
    hints_cache hints_;
    const std::vector<unsigned char> hints_value_;
    std::atomic<int> last_hints_{-1};  // to log a change of DC capability once
};

int ad_dialect::on_new_connection(LDAP* ld) {
    int rc = LDAP_SUCCESS;
    const auto hints = read_policy_hints(ld, rc);
    if (hints) {
        hints_.put(ld, *hints);
    }
    return rc;
}

std::optional<policy_hints> ad_dialect::read_policy_hints(LDAP* ld, int& rc) {
    const search_result r = search(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", {"supportedControl"},
                                   1, core_.timeout_ms());
    rc = r.result;
    LDAPMessage* entry = r.result == LDAP_SUCCESS ? ldap_first_entry(ld, r.message.get()) : nullptr;
    if (entry == nullptr) {
        log::error("ldap.rootdse_failed", {{"directory", core_.name()},
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
        const bool required = core_.settings().require_policy_hints;
        if (hints == policy_hints::none) {
            log::warning("ldap.ad_policy_hints_unsupported",
                         {{"directory", core_.name()},
                          {"require_policy_hints", required},
                          {"consequence", required ? "resets are refused (fail closed)"
                                                   : "password history is not checked on resets"}});
        } else {
            log::info("ldap.ad_policy_hints",
                      {{"directory", core_.name()}, {"control", hints_name(hints)}});
        }
    }
    return hints;
}

lookup_status ad_dialect::read_user(LDAP* ld, LDAPMessage* entry, directory_user& user, int& rc) {
    const std::string guid = first_value(ld, entry, attr_guid);
    if (guid.size() != 16) {
        return core_.incomplete_entry(user, attr_guid, rc);
    }
    user.id = crypto::hex_encode(
        std::span(reinterpret_cast<const unsigned char*>(guid.data()),
                  guid.size()));  // the 16 bytes as stored, so it survives renames and moves
    const auto uac = parse_int(first_value(ld, entry, attr_uac));
    if (!uac) {
        return core_.incomplete_entry(user, attr_uac, rc);  // cannot tell whether disabled
    }
    user.disabled = (static_cast<std::uint64_t>(*uac) & uf_accountdisable) != 0;
    // The computed flag knows whether lockoutDuration has expired; lockoutTime alone stays
    // set until the next logon (MS-ADTS 3.1.1.4.5.17). Older DCs lack it: use lockoutTime.
    if (const auto computed = parse_int(first_value(ld, entry, attr_uac_computed))) {
        user.locked = (static_cast<std::uint64_t>(*computed) & uf_lockout) != 0;
    } else {
        user.locked = parse_int(first_value(ld, entry, attr_lockout_time)).value_or(0) > 0;
    }
    // adminCount=1: the account is (or was) in a protected group (AdminSDHolder, SDProp).
    if (core_.settings().protect_admin_count && first_value(ld, entry, attr_admin_count) == "1") {
        user.is_protected = true;
    } else {
        const auto in_group = in_groups(ld, user.dn, protected_, rc);
        if (!in_group) {
            return lookup_status::unavailable;
        }
        user.is_protected = *in_group;
    }
    const auto two_methods = in_groups(ld, user.dn, two_methods_, rc);
    if (!two_methods) {
        return lookup_status::unavailable;
    }
    user.needs_two_methods = *two_methods;
    return lookup_status::found;
}

std::optional<bool> ad_dialect::in_groups(LDAP* ld, const std::string& dn, group_rule& rule,
                                          int& rc) {
    rc = LDAP_SUCCESS;
    if (rule.chain_filter.empty()) {
        return false;
    }
    check_groups_exist(ld, rule);
    // A base search on the user with an IN_CHAIN filter: the entry comes back only when it
    // is a member, directly or through nested groups, of one of the groups.
    const search_result r =
        search(ld, dn, LDAP_SCOPE_BASE, rule.chain_filter, {"1.1"}, 1, core_.timeout_ms());
    if (r.result != LDAP_SUCCESS) {
        rc = r.result;
        core_.log_group_check_failed(rule.groups, dn, r);
        return std::nullopt;
    }
    return ldap_count_entries(ld, r.message.get()) > 0;
}

void ad_dialect::decoy_lookup(LDAP* ld) {
    // A found entry costs one IN_CHAIN base search per rule: have the DC evaluate the same
    // filters on the user base.
    for (const auto* rule : {&protected_, &two_methods_}) {
        if (!rule->chain_filter.empty()) {
            (void)search(ld, core_.settings().user_base, LDAP_SCOPE_BASE, rule->chain_filter,
                         {"1.1"}, 1, core_.timeout_ms());
        }
    }
}

void ad_dialect::check_groups_exist(LDAP* ld, group_rule& rule) {
    if (rule.checked.exchange(true)) {
        return;
    }
    for (const auto& group : rule.groups.dns) {
        const search_result r = search(ld, group, LDAP_SCOPE_BASE, "(objectClass=group)", {"1.1"},
                                       1, core_.timeout_ms());
        if (r.result == LDAP_SUCCESS && ldap_count_entries(ld, r.message.get()) > 0) {
            continue;
        }
        if (r.result == LDAP_SUCCESS || r.result == LDAP_NO_SUCH_OBJECT ||
            r.result == LDAP_INVALID_DN_SYNTAX) {
            core_.log_group_missing(rule.groups, group);
            continue;
        }
        rule.checked = false;  // could not tell: look again next time
        return;
    }
}

std::optional<bool> ad_dialect::locked_now(LDAP* ld, const std::string& dn) {
    const search_result r = search(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
                                   {attr_uac_computed, attr_lockout_time}, 1, core_.timeout_ms());
    LDAPMessage* entry = r.result == LDAP_SUCCESS ? ldap_first_entry(ld, r.message.get()) : nullptr;
    if (entry == nullptr) {
        return std::nullopt;
    }
    if (const auto computed = parse_int(first_value(ld, entry, attr_uac_computed))) {
        return (static_cast<std::uint64_t>(*computed) & uf_lockout) != 0;
    }
    return parse_int(first_value(ld, entry, attr_lockout_time)).value_or(0) > 0;
}

std::optional<secret> ad_dialect::encode(const directory_user& user, std::string_view operation,
                                         const secret& password, write_result& failed) const {
    std::optional<secret> value = encode_unicode_pwd(password.view());
    if (!value) {
        // The API refuses invalid UTF-8 before this (JSON strings are UTF-8).
        failed.status = write_status::failed;
        failed.diagnostic = "refused: a password is not valid UTF-8";
        core_.log_write(operation, user, failed);
    }
    return value;
}

write_result ad_dialect::reset_password(const directory_user& user, const secret& new_password) {
    if (auto refused = core_.refuse_write(user, "reset", nullptr, new_password)) {
        return std::move(*refused);
    }
    write_result failed;
    const std::optional<secret> value = encode(user, "reset", new_password, failed);
    if (!value) {
        return failed;
    }
    reset_followup followup = unlock_followup();
    // pwdLastSet 0 = must change at next logon; AD accepts only 0 and -1 here.
    followup.force_change = {LDAP_MOD_REPLACE, "pwdLastSet", {"0"}};
    const auto write = [&](LDAP* ld) { return write_reset(ld, user, *value); };
    return core_.write_as_service(user, "reset", write, [&](LDAP* ld, write_result& out) {
        // Asked again now: the lookup may be a while old.
        followup.locked = [&] { return locked_now(ld, user.dn).value_or(user.locked); };
        core_.after_reset(ld, user, followup, out);
    });
}

write_attempt ad_dialect::write_reset(LDAP* ld, const directory_user& user, const secret& value) {
    write_attempt a;
    std::optional<policy_hints> hints = hints_.get(ld);
    if (!hints) {
        hints = read_policy_hints(ld, a.result.result);
        if (!hints) {
            a.out.status = write_status::unavailable;
            a.out.diagnostic =
                "cannot read the DC's RootDSE: result=" + std::to_string(a.result.result);
            return a;
        }
        hints_.put(ld, *hints);
    }
    if (*hints == policy_hints::none && core_.settings().require_policy_hints) {
        // Fail closed: without the control an administrator reset skips password history
        // (MS-ADTS 3.1.1.3.4.1.27), and require_policy_hints says that must not happen.
        a.result.result = LDAP_SUCCESS;
        a.out.diagnostic =
            "refused: require_policy_hints is set and the DC lists neither policy-hints "
            "control (1.2.840.113556.1.4.2239, .2066) in its RootDSE supportedControl";
        log::error("ldap.reset_refused_no_policy_hints",
                   {{"directory", core_.name()}, {"dn", user.dn}, {"reason", a.out.diagnostic}});
        return a;
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
    const binary_mod mods[] = {{LDAP_MOD_REPLACE, "unicodePwd", value.bytes()}};
    a.result = modify_binary(ld, user.dn, mods, *hints == policy_hints::none ? nullptr : &control,
                             core_.timeout_ms());
    a.out = map_ad_write_result(a.result.result, a.result.text);
    a.hint = ad_write_hint(a.result.result, a.result.text);
    return a;
}

write_result ad_dialect::change_password(const directory_user& user, const secret& current,
                                         const secret& new_password) {
    if (auto refused = core_.refuse_write(user, "change", &current, new_password)) {
        return std::move(*refused);
    }
    write_result failed;
    const std::optional<secret> old_value = encode(user, "change", current, failed);
    const std::optional<secret> new_value =
        old_value ? encode(user, "change", new_password, failed) : std::nullopt;
    if (!new_value) {
        return failed;
    }
    // MS-ADTS 3.1.1.3.1.5: a change is delete (old) + add (new) in one modify. Done as the
    // service account (the Change Password right is Everyone's by default), not bound as
    // the user: a user whose pwdLastSet is 0 cannot bind (data 773) but can still change.
    const auto write = [&](LDAP* ld) {
        const binary_mod mods[] = {{LDAP_MOD_DELETE, "unicodePwd", old_value->bytes()},
                                   {LDAP_MOD_ADD, "unicodePwd", new_value->bytes()}};
        write_attempt a;
        a.result = modify_binary(ld, user.dn, mods, nullptr, core_.timeout_ms());
        a.out = map_ad_write_result(a.result.result, a.result.text);
        a.hint = ad_write_hint(a.result.result, a.result.text);
        return a;
    };
    return core_.write_as_service(user, "change", write);
}

}  // namespace

std::unique_ptr<directory> make_ad_directory(directory_settings settings) {
    return std::make_unique<dialect_directory<ad_dialect>>(std::move(settings));
}

}  // namespace pwresetd::ldap
