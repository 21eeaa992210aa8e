#include "ldap/probe_session.hpp"

#include <sys/time.h>

#include <array>
#include <cctype>
#include <utility>

#include "ldap/connection.hpp"

namespace pwresetd::ldap {
namespace {

// LDAP_SERVER_SD_FLAGS_OID (MS-ADTS 3.1.1.3.4.1.11); the value is the DER of
// SEQUENCE { INTEGER flags }, here DACL_SECURITY_INFORMATION (4).
constexpr const char* sd_flags_oid = "1.2.840.113556.1.4.801";
constexpr std::array<unsigned char, 5> sd_flags_dacl = {0x30, 0x03, 0x02, 0x01, 0x04};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

probe_reply reply_of(const operation_result& r) {
    return {r.result, ldap_err2string(r.result), r.text};
}

berval to_berval(std::string_view value) {
    berval bv{};
    bv.bv_len = value.size();
    bv.bv_val = const_cast<char*>(value.data());  // libldap only reads it
    return bv;
}

}  // namespace

const std::vector<std::string>& probe_entry::values(std::string_view name) const {
    static const std::vector<std::string> none;
    const auto it = attributes.find(lower(name));
    return it == attributes.end() ? none : it->second;
}

struct probe_session::handle {
    ldap_handle ld;
};

probe_session::probe_session(const directory_settings& settings, std::unique_ptr<handle> h)
    : settings_(settings), handle_(std::move(h)) {
    berval cert{};
    if (ldap_get_option(handle_->ld.get(), LDAP_OPT_X_TLS_PEERCERT, &cert) == LDAP_OPT_SUCCESS &&
        cert.bv_val != nullptr) {
        peer_cert_.assign(cert.bv_val, cert.bv_len);
        ber_memfree(cert.bv_val);
    }
}

probe_session::~probe_session() = default;

std::unique_ptr<probe_session> probe_session::open(const directory_settings& settings,
                                                   const std::string& uri, open_failure& failure) {
    connect_failure why;
    ldap_handle ld = open_uri(settings, uri, why);
    if (!ld) {
        failure = {why.rc, ldap_err2string(why.rc), why.stage, why.hint, why.diagnostic};
        return nullptr;
    }
    auto h = std::make_unique<handle>();
    h->ld = std::move(ld);
    return std::unique_ptr<probe_session>(new probe_session(settings, std::move(h)));
}

probe_reply probe_session::bind_service() {
    if (settings_.bind_password.empty()) {
        // An empty password would be an unauthenticated bind that "succeeds" (RFC 4513
        // 5.1.2); the configuration loader refuses it, this is defence in depth.
        return {result_code::invalid_credentials, ldap_err2string(LDAP_INVALID_CREDENTIALS),
                "empty bind password: not sent"};
    }
    return reply_of(simple_bind(handle_->ld.get(), settings_.bind_dn,
                                settings_.bind_password.view(), settings_.timeout_ms));
}

probe_search probe_session::search(const std::string& base, probe_scope scope,
                                   const std::string& filter,
                                   const std::vector<std::string>& attributes, int size_limit,
                                   bool dacl_only) {
    LDAP* ld = handle_->ld.get();
    std::vector<char*> attrs;
    attrs.reserve(attributes.size() + 1);
    for (const auto& a : attributes) {
        attrs.push_back(const_cast<char*>(a.c_str()));  // libldap only reads them
    }
    attrs.push_back(nullptr);
    LDAPControl sd_flags{};
    sd_flags.ldctl_oid = const_cast<char*>(sd_flags_oid);
    sd_flags.ldctl_value.bv_len = sd_flags_dacl.size();
    sd_flags.ldctl_value.bv_val =
        const_cast<char*>(reinterpret_cast<const char*>(sd_flags_dacl.data()));
    sd_flags.ldctl_iscritical = 1;
    LDAPControl* controls[] = {&sd_flags, nullptr};
    timeval tv{};
    tv.tv_sec = settings_.timeout_ms / 1000;
    tv.tv_usec = static_cast<suseconds_t>((settings_.timeout_ms % 1000) * 1000);
    LDAPMessage* raw = nullptr;
    probe_search out;
    const int rc = ldap_search_ext_s(
        ld, base.c_str(), scope == probe_scope::base ? LDAP_SCOPE_BASE : LDAP_SCOPE_SUBTREE,
        filter.c_str(), attrs.data(), 0, dacl_only ? controls : nullptr, nullptr, &tv, size_limit,
        &raw);
    const message_ptr message(raw);
    out.reply = {rc, ldap_err2string(rc), rc == LDAP_SUCCESS ? "" : diagnostic_message(ld)};
    for (LDAPMessage* e = ldap_first_entry(ld, message.get()); e != nullptr;
         e = ldap_next_entry(ld, e)) {
        probe_entry entry;
        const ldap_string dn(ldap_get_dn(ld, e));
        if (dn) {
            entry.dn = dn.get();
        }
        BerElement* ber_raw = nullptr;
        for (char* name = ldap_first_attribute(ld, e, &ber_raw); name != nullptr;
             name = ldap_next_attribute(ld, e, ber_raw)) {
            const ldap_string owned(name);
            entry.attributes[lower(owned.get())] = attribute_values(ld, e, owned.get());
        }
        const ber_ptr ber(ber_raw);
        out.entries.push_back(std::move(entry));
    }
    return out;
}

probe_reply probe_session::compare(const std::string& dn, const std::string& attribute,
                                   std::string_view value) {
    LDAP* ld = handle_->ld.get();
    berval bv = to_berval(value);
    int msgid = -1;
    const int rc =
        ldap_compare_ext(ld, dn.c_str(), attribute.c_str(), &bv, nullptr, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, ldap_err2string(rc), diagnostic_message(ld)};
    }
    return reply_of(await_result(ld, msgid, settings_.timeout_ms));
}

probe_reply probe_session::delete_absent_value(const std::string& dn, const std::string& attribute,
                                               std::string_view value) {
    return reply_of(modify_attribute(handle_->ld.get(), dn, LDAP_MOD_DELETE, attribute, {value},
                                     false, settings_.timeout_ms));
}

}  // namespace pwresetd::ldap
