#pragma once
// The Active Directory directory (Windows DCs and Samba AD; private to ldap/, use
// make_directory): resets and changes write unicodePwd as the service account, policy
// hints on resets when the DC lists them, unlock through lockoutTime, must-change through
// pwdLastSet, protected groups through LDAP_MATCHING_RULE_IN_CHAIN.
#include <memory>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

std::unique_ptr<directory> make_ad_directory(directory_settings settings);

}  // namespace pwresetd::ldap
