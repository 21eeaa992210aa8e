#include "ldap/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
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

bool set_option(const directory_settings& s, LDAP* ld, int option, const void* value,
                std::string_view name) {
    const int rc = ldap_set_option(ld, option, value);
    if (rc != LDAP_OPT_SUCCESS) {
        log::error("ldap.option_failed",
                   {{"directory", s.name}, {"option", name}, {"error", ldap_err2string(rc)}});
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
    return set_option(s, ld, LDAP_OPT_PROTOCOL_VERSION, &version, "protocol_version") &&
           set_option(s, ld, LDAP_OPT_REFERRALS, nullptr /* LDAP_OPT_OFF */, "referrals") &&
           set_option(s, ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout, "network_timeout") &&
           set_option(s, ld, LDAP_OPT_TIMEOUT, &timeout, "timeout") &&
           set_option(s, ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert, "tls_require_cert") &&
           set_option(s, ld, LDAP_OPT_X_TLS_CACERTFILE, s.ca_file.c_str(), "tls_cacertfile") &&
           set_option(s, ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls_min, "tls_protocol_min") &&
           set_option(s, ld, LDAP_OPT_CONNECT_CB, &connection_callbacks, "connect_cb") &&
           set_option(s, ld, LDAP_OPT_X_TLS_NEWCTX, &new_ctx_is_server, "tls_newctx");
}

// Logs one failed connect / StartTLS and returns what failed: the stage ("tcp" or "tls"),
// the hint and libldap's diagnostic.
connect_failure log_connect_failure(std::string_view event, const directory_settings& s,
                                    const std::string& uri, int rc, LDAP* ld,
                                    const connect_guard& guard) {
    std::string diagnostic = ld != nullptr ? diagnostic_message(ld) : std::string();
    // A failed certificate check surfaces as "Can't contact LDAP server" (-1), often with an
    // empty diagnostic: name TLS and the certificate so the operator looks at ca_file.
    std::string_view stage = "tcp";
    std::string_view hint = "server not reachable (connection refused or timed out)";
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
                         {"uri", uri},
                         {"stage", stage},
                         {"error", ldap_err2string(rc)},
                         {"result", rc},
                         {"diagnostic", diagnostic},
                         {"hint", hint}});
    return {rc, std::string(stage), std::string(hint), std::move(diagnostic)};
}

// Any ldap:// URI without start_tls: refuse the whole configuration, send nothing anywhere.
bool refuses_plain_ldap(const directory_settings& s) {
    for (const auto& uri : s.uris) {
        if (starts_with_ci(uri, "ldap://") && !s.start_tls) {
            log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uri", uri}});
            return true;
        }
    }
    return false;
}

// Whose fault a failed attempt was: the server's (try the next URI, mark this one down) or
// ours (options, configuration: every URI would fail the same way).
enum class attempt_fault { none, server, local };

struct attempt {
    ldap_handle handle;
    int rc = LDAP_CONNECT_ERROR;
    attempt_fault fault = attempt_fault::server;
    std::string_view stage = "tcp";
    connect_failure failure;  // what open_uri reports when handle is null
};

// One URI, one handle, its own timeout_ms. One URI per handle rather than libldap's
// space-separated list (ldap_initialize(3)): only then do we know which server failed, so
// that the next open can skip it instead of paying its timeout again.
attempt open_one(const directory_settings& s, const std::string& uri) {
    attempt out;
    LDAP* raw = nullptr;
    out.rc = ldap_initialize(&raw, uri.c_str());
    ldap_handle ld(raw);
    if (out.rc != LDAP_SUCCESS || !ld) {
        // A URI libldap cannot parse will never work: skipped like a dead server.
        log::error("ldap.initialize_failed",
                   {{"directory", s.name}, {"uri", uri}, {"error", ldap_err2string(out.rc)}});
        out.failure = {out.rc, "uri", "libldap cannot parse this URI", ""};
        out.rc = LDAP_CONNECT_ERROR;
        out.stage = "uri";
        return out;
    }
    if (!configure(ld.get(), s)) {
        out.rc = LDAP_LOCAL_ERROR;
        out.fault = attempt_fault::local;
        out.failure = {out.rc, "options", "libldap refused a connection option (see the log)", ""};
        return out;
    }
    // Declared after ld: disarmed before the handle (and its sockets) are closed.
    connect_guard guard(s.timeout_ms);
    // Connect first (ldaps:// does its TLS handshake here), then StartTLS only on a
    // connection without TLS: StartTLS on an ldaps:// connection would be refused.
    out.rc = ldap_connect(ld.get());
    if (out.rc != LDAP_SUCCESS) {
        guard.disarm_all();
        out.failure = log_connect_failure("ldap.connect_failed", s, uri, out.rc, ld.get(), guard);
        out.stage = out.failure.stage == "tls" ? "tls" : "tcp";
        if (guard.fired()) {
            out.rc = LDAP_TIMEOUT;
        }
        return out;
    }
    if (ldap_tls_inplace(ld.get()) == 0) {
        if (!s.start_tls) {
            log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uri", uri}});
            out.rc = LDAP_CONNECT_ERROR;
            out.fault = attempt_fault::local;
            out.failure = {out.rc, "tls", "ldap:// without start_tls: refused", ""};
            return out;
        }
        out.rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
        if (out.rc != LDAP_SUCCESS) {
            guard.disarm_all();
            out.failure =
                log_connect_failure("ldap.start_tls_failed", s, uri, out.rc, ld.get(), guard);
            out.failure.stage = "tls";
            out.stage = "tls";
            if (guard.fired()) {
                out.rc = LDAP_TIMEOUT;
            } else if (out.rc > 0) {
                out.rc = LDAP_CONNECT_ERROR;  // the server refused StartTLS: not usable
            }
            return out;
        }
    }
    if (ldap_tls_inplace(ld.get()) == 0) {  // never bind without TLS
        log::error("ldap.plain_ldap_refused", {{"directory", s.name}, {"uri", uri}});
        out.rc = LDAP_CONNECT_ERROR;
        out.fault = attempt_fault::local;
        out.failure = {out.rc, "tls", "no TLS on the connection: refused", ""};
        return out;
    }
    guard.disarm_all();
    if (guard.fired()) {  // the deadline hit just as the handshake finished
        out.rc = LDAP_TIMEOUT;
        out.stage = "tls";
        out.failure = {out.rc, "tls", "TLS handshake did not complete within timeout_ms", ""};
        return out;
    }
    out.rc = LDAP_SUCCESS;
    out.fault = attempt_fault::none;
    out.handle = std::move(ld);
    return out;
}

// A refused service bind that says something about that server (down, overloaded, a
// replica that will not take binds now), not about our credentials.
bool is_server_trouble(int rc) noexcept {
    return is_connection_error(rc) || rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE ||
           rc == LDAP_UNWILLING_TO_PERFORM;
}

opened_connection open_with_failover(const directory_settings& s, server_health& health,
                                     bool service_bind) {
    ensure_library_initialized();
    opened_connection out;
    if (refuses_plain_ldap(s)) {
        return out;
    }
    std::vector<bool> tried(health.size(), false);
    while (const auto next = health.next(tried)) {
        const std::size_t server = *next;
        tried[server] = true;
        attempt a = open_one(s, health.uri(server));
        out.rc = a.rc;
        if (!a.handle) {
            if (a.fault == attempt_fault::local) {
                health.abandoned(server);
                return out;
            }
            health.failed(server, a.stage);
            continue;
        }
        if (service_bind) {
            const operation_result bound =
                simple_bind(a.handle.get(), s.bind_dn, s.bind_password.view(), s.timeout_ms);
            if (bound.result != LDAP_SUCCESS) {
                out.rc = bound.result;
                const bool next_server = is_server_trouble(bound.result);
                log::write(next_server ? log::level::warning : log::level::error,
                           "ldap.service_bind_failed",
                           {{"directory", s.name},
                            {"uri", health.uri(server)},
                            {"bind_dn", s.bind_dn},
                            {"result", bound.result},
                            {"error", ldap_err2string(bound.result)},
                            {"ppolicy", bound.ppolicy_error},
                            {"text", bound.text},
                            {"next_server", next_server}});
                if (next_server) {
                    health.failed(server, "bind");
                    continue;
                }
                // The server answered: it is up. The same credentials would be refused by
                // every server, and each try could count towards a lockout.
                health.succeeded(server);
                return out;
            }
        }
        health.succeeded(server);
        out.handle = std::move(a.handle);
        out.server = server;
        out.rc = LDAP_SUCCESS;
        return out;
    }
    return out;
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
    if (refuses_plain_ldap(s)) {
        return {};
    }
    for (const auto& uri : s.uris) {
        attempt a = open_one(s, uri);
        rc = a.rc;
        if (a.handle || a.fault == attempt_fault::local) {
            return std::move(a.handle);
        }
    }
    return {};
}

ldap_handle open_uri(const directory_settings& settings, const std::string& uri,
                     connect_failure& failure) {
    ensure_library_initialized();
    if (refuses_plain_ldap(settings)) {
        failure = {LDAP_CONNECT_ERROR, "tls", "ldap:// without start_tls: refused", ""};
        return {};
    }
    attempt a = open_one(settings, uri);
    if (!a.handle) {
        failure = std::move(a.failure);
    }
    return std::move(a.handle);
}

server_health::server_health(std::vector<std::string> uris, std::string directory, now_function now)
    : directory_(std::move(directory)), now_(std::move(now)) {
    servers_.reserve(uris.size());
    for (auto& uri : uris) {
        state st;
        st.uri = std::move(uri);
        servers_.push_back(std::move(st));
    }
}

const std::string& server_health::uri(std::size_t server) const noexcept {
    static const std::string none;
    return server < servers_.size() ? servers_[server].uri : none;  // immutable: no lock
}

std::optional<std::size_t> server_health::next(const std::vector<bool>& tried) {
    const auto t = now();
    const std::lock_guard lock(mutex_);
    bool tried_any = false;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
        if (i < tried.size() && tried[i]) {
            tried_any = true;
            continue;
        }
        state& st = servers_[i];
        if (!st.down) {
            return i;
        }
        // One thread retries a server whose backoff ended; the others keep skipping it, so
        // a server that still hangs costs one caller timeout_ms, not every caller.
        if (!st.retrying && st.retry_at <= t) {
            st.retrying = true;
            return i;
        }
    }
    if (tried_any || servers_.empty()) {
        return std::nullopt;
    }
    // Every server is in backoff: try the one whose backoff ends first rather than answer
    // "no server" without having asked any.
    std::size_t best = 0;
    for (std::size_t i = 1; i < servers_.size(); ++i) {
        if (servers_[i].retry_at < servers_[best].retry_at) {
            best = i;
        }
    }
    servers_[best].retrying = true;
    return best;
}

void server_health::succeeded(std::size_t server) {
    if (server >= servers_.size()) {
        return;
    }
    std::chrono::milliseconds down_for{0};
    {
        const std::lock_guard lock(mutex_);
        state& st = servers_[server];
        st.retrying = false;
        if (!st.down) {
            return;
        }
        st.down = false;
        st.backoff = std::chrono::milliseconds(0);
        down_for = std::chrono::duration_cast<std::chrono::milliseconds>(now() - st.down_since);
    }
    log::info("ldap.server_up", {{"directory", directory_},
                                 {"uri", servers_[server].uri},
                                 {"down_ms", static_cast<std::int64_t>(down_for.count())}});
}

void server_health::failed(std::size_t server, std::string_view reason) {
    if (server >= servers_.size()) {
        return;
    }
    const auto t = now();
    bool went_down = false;
    bool backed_off = false;
    std::chrono::milliseconds retry_in{0};
    {
        const std::lock_guard lock(mutex_);
        state& st = servers_[server];
        st.retrying = false;
        if (!st.down) {
            st.down = true;
            st.down_since = t;
            st.backoff = first_backoff;
            st.retry_at = t + st.backoff;
            went_down = true;
        } else if (t >= st.retry_at) {
            // A retry after the backoff failed: wait longer. Failures reported inside the
            // backoff (other connections to the same dead server, a forced try) change
            // nothing, so one outage does not jump straight to max_backoff.
            st.backoff = std::min(st.backoff * 2, max_backoff);
            st.retry_at = t + st.backoff;
            backed_off = true;
        }
        retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(st.retry_at - t);
    }
    if (went_down) {
        log::warning("ldap.server_down",
                     {{"directory", directory_},
                      {"uri", servers_[server].uri},
                      {"reason", reason},
                      {"retry_in_ms", static_cast<std::int64_t>(retry_in.count())}});
    } else if (backed_off) {
        log::debug("ldap.server_still_down",
                   {{"directory", directory_},
                    {"uri", servers_[server].uri},
                    {"reason", reason},
                    {"retry_in_ms", static_cast<std::int64_t>(retry_in.count())}});
    }
}

void server_health::abandoned(std::size_t server) {
    if (server >= servers_.size()) {
        return;
    }
    const std::lock_guard lock(mutex_);
    servers_[server].retrying = false;
}

bool server_health::is_down(std::size_t server) const {
    const std::lock_guard lock(mutex_);
    return server < servers_.size() && servers_[server].down;
}

std::chrono::milliseconds server_health::retry_in(std::size_t server) const {
    const auto t = now();
    const std::lock_guard lock(mutex_);
    if (server >= servers_.size() || !servers_[server].down || servers_[server].retry_at <= t) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(servers_[server].retry_at - t);
}

opened_connection open_connection(const directory_settings& settings, server_health& health) {
    return open_with_failover(settings, health, false);
}

opened_connection open_service_connection(const directory_settings& settings,
                                          server_health& health) {
    return open_with_failover(settings, health, true);
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

namespace {

// RFC 3062 Password Modify with the ppolicy request control; no oldPasswd when old is null.
operation_result send_password_modify(LDAP* ld, const std::string& dn, const std::string_view* old,
                                      std::string_view new_password, int timeout_ms) {
    LDAPControl* raw = nullptr;
    if (ldap_create_passwordpolicy_control(ld, &raw) != LDAP_SUCCESS) {
        return {LDAP_NO_MEMORY, -1, "cannot create the ppolicy request control"};
    }
    const control_ptr pp(raw);
    LDAPControl* server_controls[] = {pp.get(), nullptr};
    berval identity = to_berval(dn);
    berval old_value = to_berval(old != nullptr ? *old : std::string_view());
    berval new_value = to_berval(new_password);
    int msgid = -1;
    // ldap_passwd, not ldap_passwd_s: the synchronous call drops the response controls, and
    // the ppolicy control is what says why a password was refused (LAB.md).
    const int rc = ldap_passwd(ld, &identity, old != nullptr ? &old_value : nullptr, &new_value,
                               server_controls, nullptr, &msgid);
    if (rc != LDAP_SUCCESS) {
        return {rc, -1, diagnostic_message(ld)};
    }
    return await_result(ld, msgid, timeout_ms);
}

}  // namespace

operation_result password_modify(LDAP* ld, const std::string& dn, std::string_view new_password,
                                 int timeout_ms) {
    return send_password_modify(ld, dn, nullptr, new_password, timeout_ms);
}

operation_result password_modify(LDAP* ld, const std::string& dn, std::string_view old_password,
                                 std::string_view new_password, int timeout_ms) {
    return send_password_modify(ld, dn, &old_password, new_password, timeout_ms);
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
