// LDAP result code + ppolicy response error -> write outcome, as one table (STYLE.md; SSSD
// sdap_chpass_result). First matching row wins.
#include <ldap.h>

#include <array>
#include <string>
#include <string_view>

#include "ldap/directory.hpp"
#include "ldap/result_map.hpp"

namespace pwresetd::ldap {
namespace {

constexpr int any = any_result;

// draft-behera-ldap-password-policy-10 section 6.2 (PasswordPolicyResponseValue.error).
constexpr int pp_expired = 0, pp_locked = 1, pp_change_after_reset = 2, pp_mod_not_allowed = 3,
              pp_must_supply_old = 4, pp_quality = 5, pp_too_short = 6, pp_too_young = 7,
              pp_in_history = 8;

struct write_row {
    int result;
    int ppolicy;
    write_status status;
    std::string_view rule;  // API rule code when rejected
};

constexpr std::array<write_row, 16> write_table{{
    {LDAP_SUCCESS, any, write_status::ok, ""},
    // ppolicy refuses with constraintViolation (19) and names the reason in its control.
    {LDAP_CONSTRAINT_VIOLATION, pp_too_short, write_status::rejected, "min_length"},
    {LDAP_CONSTRAINT_VIOLATION, pp_in_history, write_status::rejected, "history"},
    {LDAP_CONSTRAINT_VIOLATION, pp_quality, write_status::rejected, "complexity"},
    {LDAP_CONSTRAINT_VIOLATION, pp_too_young, write_status::rejected, "too_young"},
    {LDAP_CONSTRAINT_VIOLATION, pp_mod_not_allowed, write_status::rejected, "directory_policy"},
    {LDAP_CONSTRAINT_VIOLATION, pp_must_supply_old, write_status::rejected, "directory_policy"},
    {LDAP_CONSTRAINT_VIOLATION, pp_expired, write_status::rejected, "directory_policy"},
    {LDAP_CONSTRAINT_VIOLATION, pp_locked, write_status::rejected, "directory_policy"},
    {LDAP_CONSTRAINT_VIOLATION, pp_change_after_reset, write_status::rejected, "directory_policy"},
    // No control (or one we do not know): still a policy refusal, the text says which.
    {LDAP_CONSTRAINT_VIOLATION, any, write_status::rejected, "directory_policy"},
    // Transient: the server is busy, down or unreachable; the user may try again.
    {transient_result, any, write_status::unavailable, ""},
    // 16 on a password write is ppolicy's history race under concurrent modifies of one
    // entry (LAB.md: ~1 in 10^4 with olcDbNoSync); nothing was written, a retry succeeds.
    {LDAP_NO_SUCH_ATTRIBUTE, any, write_status::unavailable, ""},
    // unwillingToPerform (53): a read-only replica, the exop disabled, a shadow context; a
    // retry will not help, the operator must act, so it is a failure, not "unavailable".
    {LDAP_UNWILLING_TO_PERFORM, any, write_status::failed, ""},
    // insufficientAccess (50): the service account lacks write on userPassword (a
    // delegation problem) or ppolicy refused (pwdAllowUserChange FALSE, ppolicy=3).
    {LDAP_INSUFFICIENT_ACCESS, any, write_status::failed, ""},
    {any, any, write_status::failed, ""},
}};

const write_row& find_row(int ldap_result, int ppolicy_error) {
    for (const auto& row : write_table) {
        if (result_matches(row.result, ldap_result) &&
            (row.ppolicy == any || row.ppolicy == ppolicy_error)) {
            return row;
        }
    }
    return write_table.back();
}

constexpr std::array<bind_row<int>, 7> bind_table{{
    // ppolicy answers 49 for a locked account and says why only in its control.
    {any, pp_locked, bind_status::locked},
    // pwdReset TRUE: the bind succeeds, every other operation is refused until changed.
    {any, pp_change_after_reset, bind_status::must_change},
    // An expired password was right (ppolicy checks expiry after the password): the user
    // must choose a new one.
    {any, pp_expired, bind_status::must_change},
    {LDAP_SUCCESS, any, bind_status::ok},
    {LDAP_INVALID_CREDENTIALS, any, bind_status::invalid_credentials},
    {transient_result, any, bind_status::unavailable},
    // Anything else is not a verdict on the password: never say "wrong password" for it.
    {any, any, bind_status::unavailable},
}};

}  // namespace

bool result_matches(int row_result, int ldap_result) noexcept {
    if (row_result == transient_result) {
        return ldap_result == LDAP_BUSY || ldap_result == LDAP_UNAVAILABLE ||
               ldap_result == LDAP_SERVER_DOWN || ldap_result == LDAP_CONNECT_ERROR ||
               ldap_result == LDAP_TIMEOUT;
    }
    return row_result == any_result || row_result == ldap_result;
}

bind_status map_openldap_bind_result(int ldap_result, int ppolicy_error) noexcept {
    return find_bind_status(bind_table, ldap_result, ppolicy_error, any);
}

write_result map_openldap_write_result(int ldap_result, int ppolicy_error,
                                       std::string_view server_text) {
    const write_row& row = find_row(ldap_result, ppolicy_error);
    write_result out;
    out.status = row.status;
    if (row.status == write_status::rejected) {
        out.reason = refusal{std::string(row.rule), std::string(server_text)};
    }
    out.diagnostic = "result=" + std::to_string(ldap_result) + " (" + ldap_err2string(ldap_result) +
                     ") ppolicy=" + std::to_string(ppolicy_error) +
                     " text=" + std::string(server_text);
    return out;
}

}  // namespace pwresetd::ldap
