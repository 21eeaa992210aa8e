#pragma once
// The directory dialects (private to ldap/; use make_directory). Each is one file that holds
// a directory_core (ldap/directory_core.hpp) and supplies only what its servers do
// differently.
#include <memory>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// OpenLDAP (slapd + ppolicy): RFC 3062 Password Modify (or a replace of userPassword) with
// the ppolicy request control, unlock through pwdAccountLockedTime, must-change through
// pwdReset, direct group membership (memberOf, else member/uniqueMember).
std::unique_ptr<directory> make_openldap_directory(directory_settings settings);

// Active Directory (Windows DCs and Samba AD): resets and changes write unicodePwd as the
// service account, policy hints on resets when the DC lists them, unlock through
// lockoutTime, must-change through pwdLastSet, protected groups through
// LDAP_MATCHING_RULE_IN_CHAIN.
std::unique_ptr<directory> make_ad_directory(directory_settings settings);

}  // namespace pwresetd::ldap
