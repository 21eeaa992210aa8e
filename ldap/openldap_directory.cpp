// The OpenLDAP dialect (slapd + ppolicy): what differs from the directory_core.
#include <string>
#include <utility>
#include <vector>

#include "ldap/dialects.hpp"
#include "ldap/directory_core.hpp"
#include "ldap/result_map.hpp"

namespace pwresetd::ldap {
namespace {

// ppolicy's permanent administrative lock (draft-behera-ldap-password-policy-10 5.3.3:
// "000001010000Z" means locked until an administrator unlocks).
constexpr std::string_view admin_lock_time = "000001010000Z";

// (|(member=dn)(uniqueMember=dn)): a group entry that lists dn.
std::string member_filter(std::string_view dn) {
    const std::string value = escape_filter_value(dn);
    return "(|(member=" + value + ")(uniqueMember=" + value + "))";
}

// A configured group list and the same DNs normalized, for comparing with memberOf.
struct openldap_groups {
    explicit openldap_groups(group_list list) : groups(std::move(list)) {
        for (const auto& dn : groups.dns) {
            normalized.push_back(normalize_dn(dn));
        }
    }
    group_list groups;
    std::vector<std::string> normalized;
};

class openldap_dialect {
public:
    explicit openldap_dialect(directory_core& core)
        : core_(core),
          protected_(group_list::protected_groups(core.settings())),
          two_methods_(group_list::two_methods_groups(core.settings())) {}

    static std::vector<std::string> attributes() {
        return {"entryUUID", "pwdAccountLockedTime", "memberOf"};
    }
    static bind_status read_bind(const operation_result& r) {
        return map_openldap_bind_result(r.result, r.ppolicy_error);
    }
    lookup_status read_user(LDAP* ld, LDAPMessage* entry, directory_user& user, int& rc);
    void decoy_lookup(LDAP* ld);
    write_result reset_password(const directory_user& user, const secret& new_password);
    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password);
    // Deleting pwdAccountLockedTime also clears pwdFailureTime; 16 (noSuchAttribute) means
    // the account was not locked, or ppolicy already unlocked it with a password change
    // (LAB.md).
    static reset_followup unlock_followup() {
        reset_followup f;
        f.unlock = {LDAP_MOD_DELETE, "pwdAccountLockedTime", {}};
        f.also_unlocked = LDAP_NO_SUCH_ATTRIBUTE;
        return f;
    }

private:
    // Whether dn is a direct member of one of the groups; false without groups, nullopt
    // with rc set when it could not be found out.
    std::optional<bool> in_any_group(LDAP* ld, const std::string& dn,
                                     const std::vector<std::string>& member_of,
                                     const openldap_groups& groups, int& rc);
    write_attempt change_as_user(const user_session& session, const directory_user& user,
                                 const secret& current, const secret& new_password);
    static write_attempt refused_bind(const operation_result& bound);

    [[nodiscard]] bool exop() const {
        return core_.settings().password_write == password_write_mode::exop;
    }

    directory_core& core_;
    const openldap_groups protected_;
    const openldap_groups two_methods_;
};

lookup_status openldap_dialect::read_user(LDAP* ld, LDAPMessage* entry, directory_user& user,
                                          int& rc) {
    user.id = first_value(ld, entry, "entryUUID");
    const std::string locked_time = first_value(ld, entry, "pwdAccountLockedTime");
    user.locked = !locked_time.empty();
    user.disabled = locked_time == admin_lock_time;
    const auto member_of = attribute_values(ld, entry, "memberOf");
    const auto is_protected = in_any_group(ld, user.dn, member_of, protected_, rc);
    if (!is_protected) {
        return lookup_status::unavailable;
    }
    user.is_protected = *is_protected;
    const auto two_methods = in_any_group(ld, user.dn, member_of, two_methods_, rc);
    if (!two_methods) {
        return lookup_status::unavailable;
    }
    user.needs_two_methods = *two_methods;
    if (user.id.empty()) {
        return core_.incomplete_entry(user, "entryUUID", rc);
    }
    return lookup_status::found;
}

void openldap_dialect::decoy_lookup(LDAP* ld) {
    // Without the memberOf overlay a found entry costs one search per group: ask the same
    // groups about a DN that cannot exist.
    const std::string filter =
        member_filter("cn=pwresetd-no-such-entry," + core_.settings().user_base);
    for (const auto* list : {&protected_, &two_methods_}) {
        for (const auto& group : list->groups.dns) {
            (void)search(ld, group, LDAP_SCOPE_BASE, filter, {"1.1"}, 1, core_.timeout_ms());
        }
    }
}

std::optional<bool> openldap_dialect::in_any_group(LDAP* ld, const std::string& dn,
                                                   const std::vector<std::string>& member_of,
                                                   const openldap_groups& groups, int& rc) {
    rc = LDAP_SUCCESS;
    if (groups.groups.dns.empty()) {
        return false;
    }
    // Direct membership only, for both lists: a group that is itself a member of one of
    // these groups is not followed, so its members do not count (unlike AD's IN_CHAIN
    // search). Changing that would change who is protected.
    for (const auto& group : member_of) {
        const std::string normalized = normalize_dn(group);
        for (const auto& wanted : groups.normalized) {
            if (normalized == wanted) {
                return true;
            }
        }
    }
    // No memberOf overlay (or not listed): ask each group whether it lists the DN.
    const std::string filter = member_filter(dn);
    for (const auto& group : groups.groups.dns) {
        const search_result r =
            search(ld, group, LDAP_SCOPE_BASE, filter, {"1.1"}, 1, core_.timeout_ms());
        if (r.result == LDAP_SUCCESS) {
            if (ldap_count_entries(ld, r.message.get()) > 0) {
                return true;
            }
            continue;
        }
        if (r.result == LDAP_NO_SUCH_OBJECT) {
            core_.log_group_missing(groups.groups, group);
            continue;
        }
        rc = r.result;
        core_.log_group_check_failed(groups.groups, group, r);
        return std::nullopt;
    }
    return false;
}

write_result openldap_dialect::reset_password(const directory_user& user,
                                              const secret& new_password) {
    if (auto refused = core_.refuse_write(user, "reset", nullptr, new_password)) {
        return std::move(*refused);
    }
    const auto write = [&](LDAP* ld) {
        write_attempt a;
        a.result = exop() ? password_modify(ld, user.dn, new_password.view(), core_.timeout_ms())
                          : modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "userPassword",
                                             {new_password.view()}, true, core_.timeout_ms());
        a.out = map_openldap_write_result(a.result.result, a.result.ppolicy_error, a.result.text);
        if (a.result.result == LDAP_INSUFFICIENT_ACCESS) {
            a.hint = "the service account needs write (=w) on userPassword";
        }
        return a;
    };
    reset_followup followup = unlock_followup();
    followup.force_change = {LDAP_MOD_REPLACE, "pwdReset", {"TRUE"}};
    followup.locked = [&] { return user.locked; };
    return core_.write_as_service(user, "reset", write, [&](LDAP* ld, write_result& out) {
        core_.after_reset(ld, user, followup, out);
    });
}

write_result openldap_dialect::change_password(const directory_user& user, const secret& current,
                                               const secret& new_password) {
    if (auto refused = core_.refuse_write(user, "change", &current, new_password)) {
        return std::move(*refused);
    }
    // Bound as the user on a fresh connection. A successful bind may carry ppolicy
    // changeAfterReset (pwdReset TRUE with pwdMustChange): then the session may do nothing
    // but change its password, which is what comes next.
    const user_session session = core_.bind_as_user(user, current);
    write_attempt a = session.bind.result == LDAP_SUCCESS
                          ? change_as_user(session, user, current, new_password)
                          : refused_bind(session.bind);
    core_.log_write("change", user, a.out, a.hint);
    return std::move(a.out);
}

write_attempt openldap_dialect::refused_bind(const operation_result& bound) {
    write_attempt a;
    a.result = bound;
    a.out.diagnostic = "bind: result=" + std::to_string(bound.result) + " (" +
                       ldap_err2string(bound.result) +
                       ") ppolicy=" + std::to_string(bound.ppolicy_error) + " text=" + bound.text;
    switch (read_bind(bound)) {
        case bind_status::invalid_credentials:
            a.out.status = write_status::wrong_password;
            break;
        case bind_status::locked:
            a.out.status = write_status::locked;
            break;
        case bind_status::must_change:
            // ppolicy "expired" comes with a failed bind (no grace logins left): slapd lets
            // this user do nothing, a change as the user is impossible.
            a.out.status = write_status::failed;
            a.out.diagnostic += "; password expired, an administrator reset is needed";
            break;
        case bind_status::ok:
        case bind_status::unavailable:
            a.out.status = write_status::unavailable;
            break;
    }
    return a;
}

write_attempt openldap_dialect::change_as_user(const user_session& session,
                                               const directory_user& user, const secret& current,
                                               const secret& new_password) {
    LDAP* ld = session.connection.handle.get();
    write_attempt a;
    // Exop: userIdentity = DN, oldPasswd = current, newPasswd = new, as the user. The bind
    // already proved the current password, but ppolicy only demands oldPasswd with
    // pwdSafeModify (LAB.md); we send it anyway so the server can check it (RFC 3062 2.).
    // Modify mode (servers without the exop): replace userPassword as the user.
    a.result = exop() ? password_modify(ld, user.dn, current.view(), new_password.view(),
                                        core_.timeout_ms())
                      : modify_attribute(ld, user.dn, LDAP_MOD_REPLACE, "userPassword",
                                         {new_password.view()}, true, core_.timeout_ms());
    const int rc = a.result.result;
    a.out = map_openldap_write_result(rc, a.result.ppolicy_error, a.result.text);
    if (is_connection_error(rc)) {
        // Never retried, here or on another server: the change may have been written.
        a.out.status = write_status::unavailable;
        core_.health().failed(session.connection.server, "connection_error");
    } else if (rc == LDAP_INVALID_CREDENTIALS) {
        // Servers that check oldPasswd themselves may answer 49 (the password changed
        // between our bind and the exop).
        a.out.status = write_status::wrong_password;
    } else if (rc == LDAP_UNWILLING_TO_PERFORM && exop()) {
        // slapd answers 53 "unwilling to verify old password" when oldPasswd is wrong, or
        // when the user lacks auth access to its own userPassword (an ACL of `by self =w`).
        a.hint =
            "users need write (which includes auth) on their own userPassword, e.g. "
            "`by self write`";
    } else if (rc == LDAP_INSUFFICIENT_ACCESS) {
        a.hint = "users need write on their own userPassword, and pwdAllowUserChange TRUE";
    }
    return a;
}

}  // namespace

std::unique_ptr<directory> make_openldap_directory(directory_settings settings) {
    return std::make_unique<dialect_directory<openldap_dialect>>(std::move(settings));
}

}  // namespace pwresetd::ldap
