#pragma once
// Opening, binding and awaiting operations on one libldap handle (private to ldap/).
// Every connection is TLS (ldaps:// or StartTLS) with the certificate verified against
// ca_file; the process environment and ldap.conf cannot change that.
#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
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

// Opens a TLS connection per settings (no bind), trying the URIs in configured order, each
// with its own timeout_ms. Logs one line per failed URI and returns null when none worked;
// *rc (if given) gets the libldap code of the last attempt. Remembers nothing between
// calls: prefer open_connection / open_service_connection with a server_health.
ldap_handle open_tls_connection(const directory_settings& settings, int* rc = nullptr);

// Why one open of one URI failed: the libldap code, the stage (uri, options, tcp, tls), a
// hint for the operator and libldap's diagnostic text.
struct connect_failure {
    int rc = LDAP_CONNECT_ERROR;
    std::string stage;
    std::string hint;
    std::string diagnostic;
};

// One TLS connection (no bind) to exactly this URI, as open_tls_connection makes it; null
// with `failure` filled when it failed. For tools that report on every server in turn.
ldap_handle open_uri(const directory_settings& settings, const std::string& uri,
                     connect_failure& failure);

// Per-URI health of one directory's servers, shared by every connection of that directory
// (thread-safe). A URI whose connect, TLS handshake or service bind failed, or whose
// established connection broke, is down for a backoff: 1 s, doubled by every failed retry
// after the backoff ended, at most 60 s; a success resets it. Logs ldap.server_down and
// ldap.server_up once per transition. The clock is injectable for tests.
class server_health {
public:
    using clock = std::chrono::steady_clock;
    using now_function = std::function<clock::time_point()>;
    static constexpr std::chrono::milliseconds first_backoff{1000};
    static constexpr std::chrono::milliseconds max_backoff{60000};
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

    explicit server_health(std::vector<std::string> uris, std::string directory = {},
                           now_function now = {});
    server_health(const server_health&) = delete;
    server_health& operator=(const server_health&) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return servers_.size(); }
    // The name of the directory these servers serve (for the log).
    [[nodiscard]] const std::string& directory() const noexcept { return directory_; }
    // Empty for npos or an index out of range.
    [[nodiscard]] const std::string& uri(std::size_t server) const noexcept;

    // The next URI one open should try, given the ones it already tried (tried.size() ==
    // size()): the first in configured order that is up, or down with its backoff over and
    // no other thread retrying it (this call claims that retry). When nothing has been tried
    // yet and every URI is in backoff: the one whose backoff ends first, so an open always
    // tries at least one. nullopt when there is nothing left to try. Every index returned
    // must be answered with succeeded(), failed() or abandoned().
    std::optional<std::size_t> next(const std::vector<bool>& tried);
    void succeeded(std::size_t server);
    // reason: a short token for the log (tcp, tls, uri, bind, connection_error).
    void failed(std::size_t server, std::string_view reason);
    // The attempt said nothing about the server (a local error): only drops the claim.
    void abandoned(std::size_t server);

    [[nodiscard]] bool is_down(std::size_t server) const;
    // Time left in the backoff (zero when up or due).
    [[nodiscard]] std::chrono::milliseconds retry_in(std::size_t server) const;

private:
    struct state {
        std::string uri;
        bool down = false;
        bool retrying = false;  // a thread is trying it after its backoff ended
        std::chrono::milliseconds backoff{0};
        clock::time_point retry_at{};
        clock::time_point down_since{};
    };

    [[nodiscard]] clock::time_point now() const { return now_ ? now_() : clock::now(); }

    const std::string directory_;
    const now_function now_;
    mutable std::mutex mutex_;
    std::vector<state> servers_;
};

// A connection opened with failover: the handle (null when every try failed), the index of
// its URI in server_health, and the libldap code of the last attempt.
struct opened_connection {
    ldap_handle handle;
    std::size_t server = server_health::npos;
    int rc = LDAP_CONNECT_ERROR;
    explicit operator bool() const noexcept { return static_cast<bool>(handle); }
};

// TLS connection, no bind, with failover per health: URIs in backoff are skipped, a URI
// whose connect or TLS handshake fails is marked down and the next one is tried (nothing
// has been sent to it, so that is always safe). Each try costs at most timeout_ms.
opened_connection open_connection(const directory_settings& settings, server_health& health);

// The same, then a simple bind as settings.bind_dn. A URI whose service bind fails with a
// connection error or busy/unavailable/unwillingToPerform is marked down and the next one
// tried (the bind is idempotent); any other refusal (invalidCredentials: a configuration
// error, the same on every server) ends the open without trying more servers.
opened_connection open_service_connection(const directory_settings& settings,
                                          server_health& health);

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

// The same with oldPasswd = old_password (a self-service change; the server may verify it,
// RFC 3062 section 2). Neither password may be empty.
operation_result password_modify(LDAP* ld, const std::string& dn, std::string_view old_password,
                                 std::string_view new_password, int timeout_ms);

// An idle pooled connection the server has closed (or sent a Notice of Disconnection on)
// is readable; a healthy idle one is not. No round trip.
bool idle_connection_is_alive(LDAP* ld) noexcept;

}  // namespace pwresetd::ldap
