#pragma once
// Private result tables of ldap/ (the write table is public: map_openldap_write_result).
#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// A simple bind's LDAP result + ppolicy response error (-1 when absent) -> bind_status.
bind_status map_openldap_bind_result(int ldap_result, int ppolicy_error) noexcept;

}  // namespace pwresetd::ldap
