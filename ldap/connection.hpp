#pragma once
// Opening, binding and awaiting operations on one libldap handle (private to ldap/).
// Every connection is TLS (ldaps:// or StartTLS) with the certificate verified against
// ca_file; the process environment and ldap.conf cannot change that.
#include <string>
#include <string_view>
#include <vector>

#include "ldap/directory.hpp"
#include "ldap/handles.hpp"

namespace pwresetd::ldap {

// Sets LDAPNOINIT once, before libldap's first use, and runs libldap's global init.
void ensure_library_initialized();

// Client-side failures that mean "this connection is no good": discard it.
bool is_connection_error(int rc) noexcept;

// libldap's diagnostic message for the handle (empty when none).
std::string diagnostic_message(LDAP* ld);

std::string join_uris(const std::vector<std::string>& uris);

// Opens a TLS connection per settings (no bind). Logs one line and returns null on failure;
// *rc (if given) gets the libldap code.
ldap_handle open_tls_connection(const directory_settings& settings, int* rc = nullptr);

// The outcome of one operation: LDAP result code, ppolicy response error (-1 when the
// control is absent or says noError), the server's diagnostic text.
struct operation_result {
    int result = LDAP_OTHER;
    int ppolicy_error = -1;
    std::string text;
};

// Waits for msgid's result (abandoning it on timeout), parses result code, text and the
// ppolicy response control.
operation_result await_result(LDAP* ld, int msgid, int timeout_ms);

// Simple bind with the ppolicy request control. Never call with an empty password: that
// would be an unauthenticated (anonymous) bind, RFC 4513 section 5.1.2.
operation_result simple_bind(LDAP* ld, const std::string& dn, std::string_view password,
                             int timeout_ms);

// One synchronous search (timeout_ms is both the server time limit and the client wait).
struct search_result {
    int result = LDAP_OTHER;
    std::string text;
    message_ptr message;
};
search_result search(LDAP* ld, const std::string& base, int scope, const std::string& filter,
                     const std::vector<std::string>& attributes, int size_limit, int timeout_ms);

// All values of one attribute of an entry (binary safe), empty when absent.
std::vector<std::string> attribute_values(LDAP* ld, LDAPMessage* entry, const std::string& name);

// A DN in one canonical form for comparisons (RFC 4514 string, ASCII lower case).
std::string normalize_dn(std::string_view dn);

// One modification of one attribute (LDAP_MOD_REPLACE / LDAP_MOD_DELETE with no values =
// delete the attribute), optionally with the ppolicy request control.
operation_result modify_attribute(LDAP* ld, const std::string& dn, int operation,
                                  const std::string& name,
                                  const std::vector<std::string_view>& values, bool ppolicy_control,
                                  int timeout_ms);

// RFC 3062 Password Modify (userIdentity = dn, no old password) with the ppolicy request
// control. new_password must not be empty: an absent newPasswd asks the server to generate one.
operation_result password_modify(LDAP* ld, const std::string& dn, std::string_view new_password,
                                 int timeout_ms);

// An idle pooled connection the server has closed (or sent a Notice of Disconnection on)
// is readable; a healthy idle one is not. No round trip.
bool idle_connection_is_alive(LDAP* ld) noexcept;

}  // namespace pwresetd::ldap
