#pragma once
// One service connection to one server, for `pwresetctl doctor`: open (TLS verified against
// ca_file, exactly as the daemon opens), the service bind, searches, compares, and the one
// write-shaped probe, delete_absent_value. Nothing here is pooled, retried or failed over:
// the doctor asks each configured URI in turn. Results are plain values (LDAP result code,
// libldap's name for it, the server's text); <ldap.h> stays inside ldap/.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// The LDAP result codes the doctor tells apart (RFC 4511 appendix A).
namespace result_code {
constexpr int success = 0;
constexpr int size_limit_exceeded = 4;
constexpr int compare_false = 5;
constexpr int compare_true = 6;
constexpr int no_such_attribute = 16;
constexpr int constraint_violation = 19;
constexpr int no_such_object = 32;
constexpr int invalid_credentials = 49;
constexpr int insufficient_access = 50;
}  // namespace result_code

struct probe_reply {
    int result = -1;
    std::string error;  // ldap_err2string(result)
    std::string text;   // the server's diagnostic message
};

struct probe_entry {
    std::string dn;
    // Attribute name as the server returned it, lower-cased -> values (binary safe).
    std::map<std::string, std::vector<std::string>> attributes;
    [[nodiscard]] const std::vector<std::string>& values(std::string_view name) const;
    [[nodiscard]] bool has(std::string_view name) const { return !values(name).empty(); }
};

struct probe_search {
    probe_reply reply;
    std::vector<probe_entry> entries;  // also those returned before sizeLimitExceeded
};

enum class probe_scope { base, subtree };

class probe_session {
public:
    struct open_failure {
        int result = -1;
        std::string error;
        std::string stage;  // uri, options, tcp, tls
        std::string hint;
        std::string diagnostic;
    };

    // A TLS connection to `uri` with settings' TLS options and timeouts, no bind. Null with
    // `failure` set when it could not be opened.
    static std::unique_ptr<probe_session> open(const directory_settings& settings,
                                               const std::string& uri, open_failure& failure);
    ~probe_session();
    probe_session(const probe_session&) = delete;
    probe_session& operator=(const probe_session&) = delete;

    // The server's certificate as received in the handshake (DER), empty when libldap
    // cannot say.
    [[nodiscard]] const std::string& peer_certificate() const noexcept { return peer_cert_; }

    // Simple bind as settings.bind_dn with settings.bind_password.
    probe_reply bind_service();

    // `dacl_only` sends the LDAP_SERVER_SD_FLAGS control asking for the DACL alone (MS-ADTS
    // 3.1.1.3.4.1.11), so an account that may read the DACL but not the owner or SACL gets
    // nTSecurityDescriptor.
    probe_search search(const std::string& base, probe_scope scope, const std::string& filter,
                        const std::vector<std::string>& attributes, int size_limit,
                        bool dacl_only = false);

    // An LDAP compare of one value.
    probe_reply compare(const std::string& dn, const std::string& attribute,
                        std::string_view value);

    // A modify that deletes one value the entry does not hold. The server checks the
    // access control before it looks for the value (slapd: noSuchAttribute 16 with write
    // access, insufficientAccess 50 without), and refuses either way, so the entry is not
    // changed. The caller must make sure the entry does not hold `value`.
    probe_reply delete_absent_value(const std::string& dn, const std::string& attribute,
                                    std::string_view value);

private:
    struct handle;
    probe_session(const directory_settings& settings, std::unique_ptr<handle> h);

    const directory_settings& settings_;
    std::unique_ptr<handle> handle_;
    std::string peer_cert_;
};

}  // namespace pwresetd::ldap
