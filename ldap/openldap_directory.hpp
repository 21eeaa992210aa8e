#pragma once
// The OpenLDAP (slapd + ppolicy) directory (private to ldap/; use make_directory).
#include <memory>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

std::unique_ptr<directory> make_openldap_directory(directory_settings settings);

}  // namespace pwresetd::ldap
