#pragma once
// Private result tables of ldap/ (the write table is public: map_openldap_write_result).
#include <array>
#include <cstddef>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// Row values of the result tables (ldap/result_map.cpp, ldap/ad_result_map.cpp) for the
// LDAP result column: any result, or any transient one (busy, unavailable, server down,
// connect error, timeout: the server could not answer, nothing may be assumed).
inline constexpr int any_result = -1000;
inline constexpr int transient_result = -1001;
// Whether a table row's result column matches a result.
bool result_matches(int row_result, int ldap_result) noexcept;

// One row of a bind table: LDAP result, the server's detail (ppolicy error, AD data code),
// outcome. The first row that matches wins; `any` is the detail column's wildcard.
template <class Detail>
struct bind_row {
    int result;
    Detail detail;
    bind_status status;
};

template <class Detail, std::size_t N>
bind_status find_bind_status(const std::array<bind_row<Detail>, N>& table, int ldap_result,
                             Detail detail, Detail any) noexcept {
    for (const auto& row : table) {
        if (result_matches(row.result, ldap_result) &&
            (row.detail == any || row.detail == detail)) {
            return row.status;
        }
    }
    return bind_status::unavailable;
}

// A simple bind's LDAP result + ppolicy response error (-1 when absent) -> bind_status.
bind_status map_openldap_bind_result(int ldap_result, int ppolicy_error) noexcept;

}  // namespace pwresetd::ldap
