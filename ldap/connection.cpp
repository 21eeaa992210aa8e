#include "ldap/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "common/log.hpp"

namespace pwresetd::ldap {
namespace {

std::once_flag library_init;

using steady = std::chrono::steady_clock;

// Shuts a socket down (shutdown(2), never close) when its deadline passes, so that a libldap
// call stuck on it fails. Needed because libldap 2.5.13 (GnuTLS) does not honour
// LDAP_OPT_NETWORK_TIMEOUT during the TLS handshake: against a peer that accepts TCP and
// never answers, ldap_connect spins forever (seen with `ldapsearch -o nettimeout=1` too).
// One thread for the process; never destroyed, so no exit-time join.
class socket_watchdog {
public:
    static socket_watchdog& instance() {
        static auto* watchdog = new socket_watchdog();
        return *watchdog;
    }

    std::uint64_t arm(int fd, steady::time_point deadline) {
        const std::lock_guard lock(mutex_);
        const std::uint64_t id = next_id_++;
        entries_.emplace(id, entry{fd, deadline, false});
        wake_.notify_one();
        return id;
    }

    // After this returns the watchdog never touches the fd again. True if it had fired.
    bool disarm(std::uint64_t id) {
        const std::lock_guard lock(mutex_);
        const auto it = entries_.find(id);
        if (it == entries_.end()) {
            return false;
        }
        const bool fired = it->second.fired;
        entries_.erase(it);
        return fired;
    }

private:
    struct entry {
        int fd;
        steady::time_point deadline;
        bool fired;
    };

    socket_watchdog() {
        std::thread([this] { run(); }).detach();
    }

    [[noreturn]] void run() {
        std::unique_lock lock(mutex_);
        while (true) {
            auto next = steady::time_point::max();
            const auto now = steady::now();
            for (auto& [id, e] : entries_) {
                if (e.fired) {
                    continue;
                }
                if (e.deadline <= now) {
                    ::shutdown(e.fd, SHUT_RDWR);
                    e.fired = true;
                } else if (e.deadline < next) {
                    next = e.deadline;
                }
            }
            if (next == steady::time_point::max()) {
                wake_.wait(lock);
            } else {
                wake_.wait_until(lock, next);
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::map<std::uint64_t, entry> entries_;
    std::uint64_t next_id_ = 1;
};

// The sockets one open_tls_connection call has connected, each armed with the deadline.
// Reached from libldap's connect callbacks through a thread_local: the callbacks run in the
// thread that called ldap_connect / ldap_start_tls_s.
class connect_guard {
public:
    explicit connect_guard(int timeout_ms) : timeout_(timeout_ms), previous_(current_) {
        current_ = this;
    }
    ~connect_guard() {
        current_ = previous_;
        disarm_all();
    }
    connect_guard(const connect_guard&) = delete;
    connect_guard& operator=(const connect_guard&) = delete;

    static connect_guard* current() noexcept { return current_; }

    void on_connected(int fd) {
        tcp_connected_ = true;
        armed_.emplace_back(fd, socket_watchdog::instance().arm(
                                    fd, steady::now() + std::chrono::milliseconds(timeout_)));
    }
    void on_closing(int fd) {
        for (auto it = armed_.begin(); it != armed_.end(); ++it) {
            if (it->first == fd) {
                fired_ = socket_watchdog::instance().disarm(it->second) || fired_;
                armed_.erase(it);
                return;
            }
        }
    }
    void disarm_all() {
        for (const auto& [fd, id] : armed_) {
            fired_ = socket_watchdog::instance().disarm(id) || fired_;
        }
        armed_.clear();
    }
    [[nodiscard]] bool fired() const noexcept { return fired_; }
    [[nodiscard]] bool tcp_connected() const noexcept { return tcp_connected_; }

private:
    static thread_local connect_guard* current_;
    int timeout_;
    connect_guard* previous_;
    std::vector<std::pair<int, std::uint64_t>> armed_;
    bool fired_ = false;
    bool tcp_connected_ = false;
};

thread_local connect_guard* connect_guard::current_ = nullptr;

int socket_of(Sockbuf* sb) {
    int fd = -1;
    if (sb == nullptr || ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1) {
        return -1;
    }
    return fd;
}

// Called by libldap after a TCP connection is established, before any TLS handshake.
int on_connection_added(LDAP* /*ld*/, Sockbuf* sb, LDAPURLDesc* /*srv*/, sockaddr* /*addr*/,
                        ldap_conncb* /*ctx*/) {
    const int fd = socket_of(sb);
    if (connect_guard* guard = connect_guard::current(); guard != nullptr && fd >= 0) {
        guard->on_connected(fd);
    }
    return 0;
}

// Called by libldap before it closes a connection (sb null: the handle is being freed).
void on_connection_deleted(LDAP* /*ld*/, Sockbuf* sb, ldap_conncb* /*ctx*/) {
    const int fd = socket_of(sb);
    if (connect_guard* guard = connect_guard::current(); guard != nullptr && fd >= 0) {
        guard->on_closing(fd);
    }
}

// Static: libldap keeps the pointer for the handle's lifetime.
ldap_conncb connection_callbacks{&on_connection_added, &on_connection_deleted, nullptr};

timeval to_timeval(int ms) {
    timeval tv{};
    tv.tv_sec = ms / 1000;
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    return tv;
}

berval to_berval(std::string_view value) {
    berval bv{};
    bv.bv_len = value.size();
    bv.bv_val = const_cast<char*>(value.data());  // libldap only reads it
    return bv;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        const auto a = static_cast<unsigned char>(text[i]);
        if (std::tolower(a) != prefix[i]) {
            return false;
        }
    }
    return true;
}

bool set_option(LDAP* ld, int option, const void* value, std::string_view name) {
    const int rc = ldap_set_option(ld, option, value);
    if (rc != LDAP_OPT_SUCCESS) {
        log::error("ldap.option_failed", {{"option", name}, {"error", ldap_err2string(rc)}});
        return false;
    }
    return true;
}

// Every option explicitly, on this handle only. The TLS options take effect for this
// handle when LDAP_OPT_X_TLS_NEWCTX builds its context, so that comes last (ldap_tls(3)).
bool configure(LDAP* ld, const directory_settings& s) {
    const int version = LDAP_VERSION3;
    const timeval timeout = to_timeval(s.timeout_ms);
    const int require_cert = LDAP_OPT_X_TLS_DEMAND;
    const int tls_min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
    const int new_ctx_is_server = 0;
    return set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version, "protocol_version") &&
           set_option(ld, LDAP_OPT_REFERRALS, nullptr /* LDAP_OPT_OFF */, "referrals") &&
           set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout, "network_timeout") &&
           set_option(ld, LDAP_OPT_TIMEOUT, &timeout, "timeout") &&
           set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert, "tls_require_cert") &&
           set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, s.ca_file.c_str(), "tls_cacertfile") &&
           set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls_min, "tls_protocol_min") &&
           set_option(ld, LDAP_OPT_CONNECT_CB, &connection_callbacks, "connect_cb") &&
           set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &new_ctx_is_server, "tls_newctx");
}

void log_connect_failure(std::string_view event, const directory_settings& s, int rc, LDAP* ld,
                         const connect_guard& guard) {
    const std::string diagnostic = ld != nullptr ? diagnostic_message(ld) : std::string();
    // A failed certificate check surfaces as "Can't contact LDAP server" (-1), often with an
    // empty diagnostic: name TLS and the certificate so the operator looks at ca_file.
    std::string_view stage = "tcp";
    std::string_view hint = "no server reachable (connection refused or timed out)";
    if (guard.fired()) {
        stage = "tls";
        hint = "TLS handshake did not complete within timeout_ms";
    } else if (guard.tcp_connected()) {
        stage = "tls";
        hint =
            "TLS handshake or certificate verification failed: check ca_file and that the "
            "server certificate names the host in the URI";
    }
    log::warning(event, {{"directory", s.name},
                         {"uris", join_uris(s.uris)},
                         {"stage", stage},
                         {"error", ldap_err2string(rc)},
                         {"result", rc},
                         {"diagnostic", diagnostic},
                         {"hint", hint}});
}

}  // namespace

void ensure_library_initialized() {
    std::call_once(library_init, [] {
        // libldap reads /etc/ldap/ldap.conf, ~/.ldaprc and LDAP* variables (for example
        // LDAPTLS_REQCERT=never) at its first use unless LDAPNOINIT is set (ldap.conf(5),
        // ENVIRONMENT VARIABLES). Set it, then force that one-time init now.
        ::setenv("LDAPNOINIT", "1", 1);
        int version = 0;
        ldap_get_option(nullptr, LDAP_OPT_PROTOCOL_VERSION, &version);
    });
}

bool is_connection_error(int rc) noexcept {
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
           rc == LDAP_LOCAL_ERROR || rc == LDAP_ENCODING_ERROR || rc == LDAP_DECODING_ERROR ||
           rc == LDAP_NO_MEMORY;
}

std::string diagnostic_message(LDAP* ld) {
    char* raw = nullptr;
    if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &raw) != LDAP_OPT_SUCCESS ||
        raw == nullptr) {
        return {};
    }
    const ldap_string owned(raw);
    return owned.get();
}

std::string join_uris(const std::vector<std::string>& uris) {
    std::string out;
    for (const auto& uri : uris) {
        if (!out.empty()) {
            out.push_back(' ');
        }
        out.append(uri);
    }
    return out;
}

ldap_handle open_tls_connection(const directory_settings& s, int* rc_out) {
    ensure_library_initialized();
    int dummy = 0;
    int& rc = rc_out != nullptr ? *rc_out : dummy;
    rc = LDAP_CONNECT_ERROR;
    for (const auto& uri : s.uris) {
        if (starts_with_ci(uri, "ldap://") && !s.start_tls) {
            log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uri", uri}});
            return {};
        }
    }
    LDAP* raw = nullptr;
    // A space-separated list: libldap tries the URIs in order (ldap_initialize(3)).
    const std::string uris = join_uris(s.uris);
    rc = ldap_initialize(&raw, uris.c_str());
    ldap_handle ld(raw);
    if (rc != LDAP_SUCCESS || !ld) {
        log::error("ldap.initialize_failed", {{"uris", uris}, {"error", ldap_err2string(rc)}});
        return {};
    }
    if (!configure(ld.get(), s)) {
        rc = LDAP_LOCAL_ERROR;
        return {};
    }
    // Declared after ld: disarmed before the handle (and its sockets) are closed.
    connect_guard guard(s.timeout_ms);
    // Connect first (ldaps:// does its TLS handshake here), then StartTLS only on a
    // connection without TLS: StartTLS on an ldaps:// connection would be refused.
    rc = ldap_connect(ld.get());
    if (rc != LDAP_SUCCESS) {
        guard.disarm_all();
        log_connect_failure("ldap.connect_failed", s, rc, ld.get(), guard);
        if (guard.fired()) {
            rc = LDAP_TIMEOUT;
        }
        return {};
    }
    if (ldap_tls_inplace(ld.get()) == 0) {
        if (!s.start_tls) {
            log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uris", uris}});
            rc = LDAP_CONNECT_ERROR;
            return {};
        }
        rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
        if (rc != LDAP_SUCCESS) {
            guard.disarm_all();
            log_connect_failure("ldap.start_tls_failed", s, rc, ld.get(), guard);
            if (rc > 0) {
                rc = LDAP_CONNECT_ERROR;  // the server refused StartTLS: not usable
            }
            return {};
        }
    }
    if (ldap_tls_inplace(ld.get()) == 0) {  // never bind without TLS
        log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uris", uris}});
        rc = LDAP_CONNECT_ERROR;
        return {};
    }
    guard.disarm_all();
    if (guard.fired()) {  // the deadline hit just as the handshake finished
        rc = LDAP_TIMEOUT;
        return {};
    }
    rc = LDAP_SUCCESS;
    return ld;
}

operation_result await_result(LDAP* ld, int msgid, int timeout_ms) {
    operation_result out;
    timeval tv = to_timeval(timeout_ms);
    LDAPMessage* raw = nullptr;
    const int type = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &raw);
    const message_ptr msg(raw);
    if (type == 0) {
        ldap_abandon_ext(ld, msgid, nullptr, nullptr);
        out.result = LDAP_TIMEOUT;
        out.text = "no answer within timeout_ms";
        return out;
    }
    if (type < 0 || !msg) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
        out.result = code != LDAP_SUCCESS ? code : LDAP_SERVER_DOWN;
        out.text = diagnostic_message(ld);
        return out;
    }
    int err = LDAP_OTHER;
    char* text_raw = nullptr;
    LDAPControl** ctrls_raw = nullptr;
    const int rc =
        ldap_parse_result(ld, msg.get(), &err, nullptr, &text_raw, nullptr, &ctrls_raw, 0);
    const ldap_string text(text_raw);
    const controls_ptr ctrls(ctrls_raw);
    if (rc != LDAP_SUCCESS) {
        out.result = rc;
        out.text = diagnostic_message(ld);
        return out;
    }
    out.result = err;
    if (text) {
        out.text = text.get();
    }
    // ldap_passwd_s and ldap_sasl_bind_s drop the response controls; this is why every
    // operation here goes through ldap_result + ldap_parse_result.
    LDAPControl* pp = ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls.get(), nullptr);
    if (pp != nullptr) {
        ber_int_t expire = -1;
        ber_int_t grace = -1;
        LDAPPasswordPolicyError pp_err = PP_noError;
        if (ldap_parse_passwordpolicy_control(ld, pp, &expire, &grace, &pp_err) == LDAP_SUCCESS &&
            pp_err != PP_noError) {
            out.ppolicy_error = static_cast<int>(pp_err);
        }
    }
    return out;
}

operation_result simple_bind(LDAP* ld, const std::string& dn, std::string_view password,
                             int timeout_ms) {
    LDAPControl* pp_raw = nullptr;
    if (ldap_create_passwordpolicy_control(ld, &pp_raw) != LDAP_SUCCESS) {
        return {LDAP_NO_MEMORY, -1, "cannot create the ppolicy request control"};
    }
    const control_ptr pp(pp_raw);
    LDAPControl* server_controls[] = {pp.get(), nullptr};
    berval cred = to_berval(password);
    int msgid = -1;
    const int rc =
        ldap_sasl_bind(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, server_controls, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, -1, diagnostic_message(ld)};
    }
    return await_result(ld, msgid, timeout_ms);
}

search_result search(LDAP* ld, const std::string& base, int scope, const std::string& filter,
                     const std::vector<std::string>& attributes, int size_limit, int timeout_ms) {
    std::vector<char*> attrs;
    attrs.reserve(attributes.size() + 1);
    for (const auto& a : attributes) {
        attrs.push_back(const_cast<char*>(a.c_str()));  // libldap only reads them
    }
    attrs.push_back(nullptr);
    timeval tv = to_timeval(timeout_ms);
    LDAPMessage* raw = nullptr;
    search_result out;
    out.result = ldap_search_ext_s(ld, base.c_str(), scope, filter.c_str(), attrs.data(), 0,
                                   nullptr, nullptr, &tv, size_limit, &raw);
    out.message.reset(raw);
    if (out.result != LDAP_SUCCESS) {
        out.text = diagnostic_message(ld);
    }
    return out;
}

std::vector<std::string> attribute_values(LDAP* ld, LDAPMessage* entry, const std::string& name) {
    std::vector<std::string> out;
    const berval_array_ptr values(ldap_get_values_len(ld, entry, name.c_str()));
    if (values) {
        for (berval** v = values.get(); *v != nullptr; ++v) {
            out.emplace_back((*v)->bv_val, (*v)->bv_len);
        }
    }
    return out;
}

std::string normalize_dn(std::string_view dn) {
    std::string out;
    char* raw = nullptr;
    const std::string in(dn);
    if (ldap_dn_normalize(in.c_str(), LDAP_DN_FORMAT_LDAP, &raw, LDAP_DN_FORMAT_LDAPV3) ==
            LDAP_SUCCESS &&
        raw != nullptr) {
        const ldap_string owned(raw);
        out = owned.get();
    } else {
        out = in;
    }
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

operation_result modify_attribute(LDAP* ld, const std::string& dn, int operation,
                                  const std::string& name,
                                  const std::vector<std::string_view>& values, bool ppolicy_control,
                                  int timeout_ms) {
    std::vector<berval> storage;
    storage.reserve(values.size());
    std::vector<berval*> pointers;
    for (const auto v : values) {
        storage.push_back(to_berval(v));
        pointers.push_back(&storage.back());
    }
    pointers.push_back(nullptr);
    LDAPMod mod{};
    mod.mod_op = operation | LDAP_MOD_BVALUES;
    mod.mod_type = const_cast<char*>(name.c_str());
    mod.mod_bvalues = values.empty() ? nullptr : pointers.data();
    LDAPMod* mods[] = {&mod, nullptr};

    control_ptr pp;
    if (ppolicy_control) {
        LDAPControl* raw = nullptr;
        if (ldap_create_passwordpolicy_control(ld, &raw) != LDAP_SUCCESS) {
            return {LDAP_NO_MEMORY, -1, "cannot create the ppolicy request control"};
        }
        pp.reset(raw);
    }
    LDAPControl* server_controls[] = {pp.get(), nullptr};
    int msgid = -1;
    const int rc = ldap_modify_ext(ld, dn.c_str(), mods, server_controls, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, -1, diagnostic_message(ld)};
    }
    return await_result(ld, msgid, timeout_ms);
}

operation_result password_modify(LDAP* ld, const std::string& dn, std::string_view new_password,
                                 int timeout_ms) {
    LDAPControl* raw = nullptr;
    if (ldap_create_passwordpolicy_control(ld, &raw) != LDAP_SUCCESS) {
        return {LDAP_NO_MEMORY, -1, "cannot create the ppolicy request control"};
    }
    const control_ptr pp(raw);
    LDAPControl* server_controls[] = {pp.get(), nullptr};
    berval identity = to_berval(dn);
    berval new_value = to_berval(new_password);
    int msgid = -1;
    // ldap_passwd, not ldap_passwd_s: the synchronous call drops the response controls, and
    // the ppolicy control is what says why a password was refused (LAB.md).
    const int rc =
        ldap_passwd(ld, &identity, nullptr, &new_value, server_controls, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, -1, diagnostic_message(ld)};
    }
    return await_result(ld, msgid, timeout_ms);
}

bool idle_connection_is_alive(LDAP* ld) noexcept {
    int fd = -1;
    if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        return false;
    }
    pollfd p{};
    p.fd = fd;
    p.events = POLLIN;
    // With no request outstanding, anything readable is EOF, an error or a Notice of
    // Disconnection (RFC 4511 section 4.4.1): the connection is gone.
    return ::poll(&p, 1, 0) == 0;
}

}  // namespace pwresetd::ldap
