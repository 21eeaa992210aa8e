#pragma once
// Active Directory security descriptors read without changing anything: SIDs and GUIDs in
// their binary forms (MS-DTYP 2.4.2.2, 2.3.4.2), and whether a DACL grants a control access
// right (an "extended right" such as Reset Password) to a token, evaluated as the DC does
// (MS-ADTS 5.1.3.3.3, MS-DTYP 2.5.3.2: the first ACE that names the right for one of the
// token's SIDs decides, in DACL order; inherit-only ACEs do not apply to the object).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::ldap {

// The Reset Password control access right (User-Force-Change-Password, MS-ADTS 5.1.3.2.1).
constexpr std::string_view reset_password_right = "00299570-246d-11d0-a768-00aa006e0529";
// schemaIDGUIDs (MS-ADA): the user class, lockoutTime, pwdLastSet.
constexpr std::string_view user_class_guid = "bf967aba-0de6-11d0-a285-00aa003049e2";
constexpr std::string_view lockout_time_guid = "28630ebf-41d5-11d1-a9c1-0000f80367c1";
constexpr std::string_view pwd_last_set_guid = "bf967a0a-0de6-11d0-a285-00aa003049e2";

// "S-1-5-21-..." from a binary SID; nullopt when malformed.
std::optional<std::string> sid_to_string(std::string_view binary);

// The 16 bytes of a GUID in its string form (Data1..3 little-endian, MS-DTYP 2.3.4.2);
// nullopt when not of the form 8-4-4-4-12 hex digits.
std::optional<std::string> guid_to_bytes(std::string_view text);

enum class access_decision {
    granted,      // an allow ACE grants it before any deny
    denied,       // a deny ACE names it before any allow
    not_granted,  // no ACE for one of the SIDs names it
    malformed,    // the descriptor could not be parsed
};

// Whether the self-relative security descriptor `sd` (as nTSecurityDescriptor returns it)
// grants the control access right `right` (GUID bytes) to a token holding `sids` (binary
// SIDs). A descriptor without a DACL grants everything (a NULL DACL).
access_decision control_access(std::string_view sd, std::string_view right,
                               const std::vector<std::string>& sids);

}  // namespace pwresetd::ldap
