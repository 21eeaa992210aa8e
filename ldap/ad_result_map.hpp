#pragma once
// Active Directory result tables (private to ldap/; public for unit tests): LDAP result
// code + the AD diagnostic's Win32 error (the 8 hex digits that start the text, e.g.
// `0000052D:`) + Samba's reason text -> write outcome; LDAP result + the bind's `data`
// code -> bind_status. Works with Windows and Samba texts alike.
#include <cstdint>
#include <optional>
#include <string_view>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// The Win32 error that starts an AD diagnostic ("0000052D: ..." -> 0x52D); nullopt when
// the text does not start with 8 hex digits and a colon.
std::optional<std::uint32_t> ad_error_code(std::string_view server_text) noexcept;

// The `data XXX` code of an AD bind failure ("... AcceptSecurityContext error, data 52e,
// v4563" -> 0x52E); nullopt when absent.
std::optional<std::uint32_t> ad_bind_data_code(std::string_view server_text) noexcept;

// A modify of unicodePwd (reset or change) -> write_result (reason set when rejected,
// diagnostic always set, never containing a password: the server text never does).
write_result map_ad_write_result(int ldap_result, std::string_view server_text);

// What the operator should look at when a write failed ("" when nothing specific).
std::string_view ad_write_hint(int ldap_result, std::string_view server_text) noexcept;

// A simple bind as the user -> bind_status.
bind_status map_ad_bind_result(int ldap_result, std::string_view server_text) noexcept;

}  // namespace pwresetd::ldap
