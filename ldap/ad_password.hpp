#pragma once
// Active Directory password values and the policy-hints control value (private to ldap/,
// public for unit tests). No <ldap.h> here.
#include <optional>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::ldap {

// The unicodePwd value for a password (MS-ADTS 3.1.1.3.1.5): the password enclosed in
// double quotes, UTF-16LE, no terminator. The input is decoded as strict UTF-8; code
// points above U+FFFF become surrogate pairs; nothing is normalized or truncated, and a
// `"` or `\` inside needs no escaping (AD strips the first and last quote only).
// nullopt when the input is not valid UTF-8. The result is a `secret` (wiped when
// destroyed), and every temporary buffer is wiped before returning.
std::optional<secret> encode_unicode_pwd(std::string_view utf8);

// The value of the LDAP_SERVER_POLICY_HINTS control (1.2.840.113556.1.4.2239, and its
// older OID .2066): BER/DER of SEQUENCE { Flags INTEGER = 1 } = 30 03 02 01 01, which
// asks the DC to enforce password history on an administrator reset
// (MS-ADTS 3.1.1.3.4.1.27). Encoded with lber in DER mode.
std::vector<unsigned char> policy_hints_value();

inline constexpr std::string_view policy_hints_oid = "1.2.840.113556.1.4.2239";
// LDAP_SERVER_POLICY_HINTS_DEPRECATED_OID: Windows Server 2008 R2 / 2012 with the hotfix.
inline constexpr std::string_view policy_hints_deprecated_oid = "1.2.840.113556.1.4.2066";

}  // namespace pwresetd::ldap
