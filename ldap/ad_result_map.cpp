// Active Directory results as tables (STYLE.md; SSSD sdap_chpass_result): first matching
// row wins. Win32 error codes: MS-ERREF 2.2; AD puts the one behind a refusal at the start
// of the diagnostic text ("0000052D: ..."), and the one behind a failed bind after
// "data" ("... AcceptSecurityContext error, data 775, v4563").
#include "ldap/ad_result_map.hpp"

#include <ldap.h>

#include <array>
#include <cstdio>
#include <string>

#include "ldap/result_map.hpp"

namespace pwresetd::ldap {
namespace {

constexpr std::uint32_t any_code = 0xFFFFFFFFU;
constexpr std::uint32_t no_code = 0xFFFFFFFEU;  // the text carries no AD error code

// MS-ERREF 2.2 (Win32 error codes) as AD reports them.
constexpr std::uint32_t error_access_denied = 0x5;               // ERROR_ACCESS_DENIED
constexpr std::uint32_t error_gen_failure = 0x1F;                // ERROR_GEN_FAILURE
constexpr std::uint32_t error_invalid_password = 0x56;           // ERROR_INVALID_PASSWORD
constexpr std::uint32_t error_password_restriction = 0x52D;      // ERROR_PASSWORD_RESTRICTION
constexpr std::uint32_t error_account_locked_out = 0x775;        // ERROR_ACCOUNT_LOCKED_OUT
constexpr std::uint32_t error_ds_insuff_access_rights = 0x2098;  // ERROR_DS_INSUFF_ACCESS_RIGHTS
constexpr std::uint32_t error_no_such_user = 0x525;              // ERROR_NO_SUCH_USER
constexpr std::uint32_t error_logon_failure = 0x52E;             // ERROR_LOGON_FAILURE
constexpr std::uint32_t error_invalid_logon_hours = 0x530;       // ERROR_INVALID_LOGON_HOURS
constexpr std::uint32_t error_invalid_workstation = 0x531;       // ERROR_INVALID_WORKSTATION
constexpr std::uint32_t error_password_expired = 0x532;          // ERROR_PASSWORD_EXPIRED
constexpr std::uint32_t error_account_disabled = 0x533;          // ERROR_ACCOUNT_DISABLED
constexpr std::uint32_t error_account_expired = 0x701;           // ERROR_ACCOUNT_EXPIRED
constexpr std::uint32_t error_password_must_change = 0x773;      // ERROR_PASSWORD_MUST_CHANGE

constexpr std::string_view hint_delegation =
    "the service account lacks a right: Reset Password on user objects (resets), write "
    "lockoutTime (unlock), write pwdLastSet (must change at next logon); see the README's "
    "delegation section";
constexpr std::string_view hint_encryption =
    "the DC refused the unicodePwd write: it needs an encrypted connection (LDAPS or "
    "StartTLS) and a quoted UTF-16LE value";

// Windows says 0000052D for every policy failure without naming which rule.
constexpr std::string_view windows_policy_detail =
    "the password does not meet the domain's length, complexity or history rules";

struct write_row {
    int result;
    std::uint32_t code;
    std::string_view reason;  // a part of Samba's text ("" = any text)
    write_status status;
    std::string_view rule;  // API rule code when rejected
    std::string_view hint;  // for the operator, when failed
};

constexpr std::array<write_row, 18> write_table{{
    {LDAP_SUCCESS, any_code, "", write_status::ok, "", ""},
    // Policy refusals: result 19 (Samba, Windows on a change) or 53 (Windows on a reset).
    // Samba 4.17 names the rule (source4/dsdb/samdb/ldb_modules/password_hash.c,
    // check_password_restrictions); Windows does not.
    {any_result, error_password_restriction, "is too short", write_status::rejected, "min_length",
     ""},
    {any_result, error_password_restriction, "complexity criteria", write_status::rejected,
     "complexity", ""},
    {any_result, error_password_restriction, "already used (in history)", write_status::rejected,
     "history", ""},
    {any_result, error_password_restriction, "already used (previous password)",
     write_status::rejected, "history", ""},
    {any_result, error_password_restriction, "too young", write_status::rejected, "too_young", ""},
    {any_result, error_password_restriction, "", write_status::rejected, "directory_policy", ""},
    // A change whose current password is wrong.
    {any_result, error_invalid_password, "", write_status::wrong_password, "", ""},
    {any_result, error_account_locked_out, "", write_status::locked, "", ""},
    // Delegation missing: Windows says 00000005 or 00002098 (result 50), Samba only 50.
    {any_result, error_access_denied, "", write_status::failed, "", hint_delegation},
    {any_result, error_ds_insuff_access_rights, "", write_status::failed, "", hint_delegation},
    {LDAP_INSUFFICIENT_ACCESS, any_code, "", write_status::failed, "", hint_delegation},
    // Windows: unicodePwd over an unencrypted connection, or a malformed value.
    {any_result, error_gen_failure, "", write_status::failed, "", hint_encryption},
    {LDAP_STRONG_AUTH_REQUIRED, any_code, "", write_status::failed, "", hint_encryption},
    {LDAP_CONFIDENTIALITY_REQUIRED, any_code, "", write_status::failed, "", hint_encryption},
    // Transient: the server is busy, down or unreachable; nothing may be assumed.
    {transient_result, any_code, "", write_status::unavailable, "", ""},
    // Anything else (a constraint violation that is not a policy refusal, such as Samba's
    // "You need to provide the old password", unwillingToPerform, noSuchObject) is not
    // the password's fault: never report it to the user as a policy refusal.
    {LDAP_CONSTRAINT_VIOLATION, no_code, "", write_status::failed, "", ""},
    {any_result, any_code, "", write_status::failed, "", ""},
}};

const write_row& find_write_row(int ldap_result, std::string_view text) {
    const std::uint32_t code = ad_error_code(text).value_or(no_code);
    for (const auto& row : write_table) {
        if (result_matches(row.result, ldap_result) && (row.code == any_code || row.code == code) &&
            (row.reason.empty() || text.find(row.reason) != std::string_view::npos)) {
            return row;
        }
    }
    return write_table.back();
}

constexpr std::array<bind_row<std::uint32_t>, 14> bind_table{{
    {LDAP_SUCCESS, any_code, bind_status::ok},
    // AD answers 49 for all of these and says which in the `data` code.
    {LDAP_INVALID_CREDENTIALS, error_account_locked_out, bind_status::locked},
    // The password was right but must be changed: pwdLastSet 0, or expired.
    {LDAP_INVALID_CREDENTIALS, error_password_must_change, bind_status::must_change},
    {LDAP_INVALID_CREDENTIALS, error_password_expired, bind_status::must_change},
    {LDAP_INVALID_CREDENTIALS, error_logon_failure, bind_status::invalid_credentials},
    {LDAP_INVALID_CREDENTIALS, error_no_such_user, bind_status::invalid_credentials},
    // Accounts that cannot log on at all (disabled, expired, outside logon hours, from
    // this workstation): not a usable password, whatever it was. The log keeps the code.
    {LDAP_INVALID_CREDENTIALS, error_account_disabled, bind_status::invalid_credentials},
    {LDAP_INVALID_CREDENTIALS, error_account_expired, bind_status::invalid_credentials},
    {LDAP_INVALID_CREDENTIALS, error_invalid_logon_hours, bind_status::invalid_credentials},
    {LDAP_INVALID_CREDENTIALS, error_invalid_workstation, bind_status::invalid_credentials},
    {LDAP_INVALID_CREDENTIALS, any_code, bind_status::invalid_credentials},
    {transient_result, any_code, bind_status::unavailable},
    // strongAuthRequired (plain LDAP) and anything else: not a verdict on the password.
    {LDAP_STRONG_AUTH_REQUIRED, any_code, bind_status::unavailable},
    {any_result, any_code, bind_status::unavailable},
}};

std::optional<std::uint32_t> parse_hex(std::string_view digits) noexcept {
    if (digits.empty() || digits.size() > 8) {
        return std::nullopt;
    }
    std::uint32_t value = 0;
    for (const char c : digits) {
        std::uint32_t v = 0;
        if (c >= '0' && c <= '9') {
            v = static_cast<std::uint32_t>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
            return std::nullopt;
        }
        value = (value << 4U) | v;
    }
    return value;
}

bool is_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string hex8(std::uint32_t code) {
    std::array<char, 9> buf{};
    std::snprintf(buf.data(), buf.size(), "%08X", code);
    return buf.data();
}

}  // namespace

std::optional<std::uint32_t> ad_error_code(std::string_view text) noexcept {
    if (text.size() < 9 || text[8] != ':') {
        return std::nullopt;
    }
    return parse_hex(text.substr(0, 8));
}

std::optional<std::uint32_t> ad_bind_data_code(std::string_view text) noexcept {
    static constexpr std::string_view marker = "data ";
    for (std::size_t pos = text.find(marker); pos != std::string_view::npos;
         pos = text.find(marker, pos + 1)) {
        // A word of its own ("..., data 52e, v4563"), not the end of another word.
        if (pos > 0 && text[pos - 1] != ' ' && text[pos - 1] != ',') {
            continue;
        }
        std::size_t end = pos + marker.size();
        while (end < text.size() && is_hex(text[end])) {
            ++end;
        }
        const auto digits = text.substr(pos + marker.size(), end - pos - marker.size());
        if (!digits.empty() && (end == text.size() || text[end] == ',' || text[end] == ' ')) {
            return parse_hex(digits);
        }
    }
    return std::nullopt;
}

write_result map_ad_write_result(int ldap_result, std::string_view server_text) {
    const write_row& row = find_write_row(ldap_result, server_text);
    write_result out;
    out.status = row.status;
    if (row.status == write_status::rejected) {
        // Windows names no rule: say what the domain checks instead of echoing a DSID.
        const bool named = row.rule != "directory_policy" ||
                           server_text.find("check_password_restrictions") != std::string::npos;
        out.reason = refusal{std::string(row.rule),
                             named ? std::string(server_text) : std::string(windows_policy_detail)};
    }
    const auto code = ad_error_code(server_text);
    out.diagnostic = "result=" + std::to_string(ldap_result) + " (" + ldap_err2string(ldap_result) +
                     ")" + (code ? " ad=" + hex8(*code) : std::string()) +
                     " text=" + std::string(server_text);
    return out;
}

std::string_view ad_write_hint(int ldap_result, std::string_view server_text) noexcept {
    return find_write_row(ldap_result, server_text).hint;
}

bind_status map_ad_bind_result(int ldap_result, std::string_view server_text) noexcept {
    return find_bind_status(bind_table, ldap_result,
                            ad_bind_data_code(server_text).value_or(no_code), any_code);
}

}  // namespace pwresetd::ldap
