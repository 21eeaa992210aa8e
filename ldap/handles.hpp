#pragma once
// RAII for libldap's C handles (private to ldap/). Every pointer libldap hands out has
// exactly one owner here; nothing calls ldap_*free by hand.
#include <lber.h>
#include <ldap.h>

#include <memory>

namespace pwresetd::ldap {

struct ldap_deleter {
    void operator()(LDAP* ld) const noexcept { ldap_unbind_ext(ld, nullptr, nullptr); }
};
struct message_deleter {
    void operator()(LDAPMessage* m) const noexcept { ldap_msgfree(m); }
};
struct control_deleter {
    void operator()(LDAPControl* c) const noexcept { ldap_control_free(c); }
};
struct controls_deleter {
    void operator()(LDAPControl** c) const noexcept { ldap_controls_free(c); }
};
struct ber_deleter {
    void operator()(BerElement* b) const noexcept { ber_free(b, 0); }
};
struct berval_deleter {
    void operator()(berval* b) const noexcept { ber_bvfree(b); }
};
struct berval_array_deleter {
    void operator()(berval** b) const noexcept { ldap_value_free_len(b); }
};
struct memory_deleter {
    void operator()(char* p) const noexcept { ldap_memfree(p); }
};

using ldap_handle = std::unique_ptr<LDAP, ldap_deleter>;
using message_ptr = std::unique_ptr<LDAPMessage, message_deleter>;
using control_ptr = std::unique_ptr<LDAPControl, control_deleter>;
using controls_ptr = std::unique_ptr<LDAPControl*, controls_deleter>;
using ber_ptr = std::unique_ptr<BerElement, ber_deleter>;
using berval_ptr = std::unique_ptr<berval, berval_deleter>;
using berval_array_ptr = std::unique_ptr<berval*, berval_array_deleter>;
using ldap_string = std::unique_ptr<char, memory_deleter>;

}  // namespace pwresetd::ldap
