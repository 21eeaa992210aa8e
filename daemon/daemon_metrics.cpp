#include "daemon/daemon_metrics.hpp"

#include <array>
#include <string>
#include <utility>

namespace pwresetd::daemon {
namespace {

daemon_metrics make() {
    auto& r = metrics::registry::global();
    daemon_metrics m{
        r.counters("pwresetd_http_requests_total",
                   "Replies of the portal API by method, route pattern (\"unmatched\": no route) "
                   "and HTTP status.",
                   {"method", "route", "status"}),
        r.counters("pwresetd_reset_steps_total",
                   "Steps of password resets by step (start, challenge, verify, complete) and "
                   "outcome, as in the audit trail (decoy: an unknown, disabled, protected or "
                   "unenrolled user got the same answer as a real one).",
                   {"step", "outcome"}),
        r.counters("pwresetd_password_changes_total",
                   "Password changes (POST /v1/password/change) by outcome.", {"outcome"}),
        r.counters("pwresetd_verify_failures_total",
                   "Wrong codes given to a reset's verify step, by method.", {"method"}),
        r.counters("pwresetd_lockouts_total",
                   "Lockouts begun: verify (wrong codes of a reset) and password (wrong current "
                   "passwords of a change or an enrollment).",
                   {"kind"}),
        r.counters("pwresetd_tls_handshake_failures_total",
                   "TLS handshakes that failed or timed out, by listener (api, metrics).",
                   {"listener"}),
        r.gauges("pwresetd_connections_open",
                 "Open client connections, by listener (api, metrics).", {"listener"}),
        r.gauges("pwresetd_http_requests_in_flight",
                 "Portal API requests handed to a worker and not yet answered."),
        r.counters("pwresetd_reloads_total",
                   "Configuration reloads (SIGHUP) by outcome: applied, or refused (the serving "
                   "configuration stays).",
                   {"outcome"}),
        r.gauges("pwresetd_build_info", "Always 1; the version of the running daemon.",
                 {"version"}),
        r.gauges("pwresetd_process_start_time_seconds",
                 "When the daemon started, in seconds since the Unix epoch."),
    };
    const auto all = [](metrics::counter_family& f, std::string_view first,
                        std::initializer_list<std::string_view> values) {
        for (const auto v : values) {
            if (first.empty()) {
                f.with({v});
            } else {
                f.with({first, v});
            }
        }
    };
    all(m.resets, "start", {"flow_started", "decoy"});
    all(m.resets, "challenge", {"queued", "not_queued", "no_destination", "decoy", "rate_limited"});
    all(m.resets, "verify", {"verified", "invalid_code", "locked"});
    all(m.resets, "complete",
        {"password_reset", "password_rejected", "refused", "directory_unavailable",
         "directory_error"});
    all(m.changes, "",
        {"password_changed", "password_rejected", "invalid_credentials", "directory_unavailable",
         "directory_error"});
    all(m.verify_failures, "", {"totp", "recovery_code", "email", "sms"});
    all(m.lockouts, "", {"verify", "password"});
    all(m.tls_handshake_failures, "", {"api", "metrics"});
    all(m.reloads, "", {"applied", "refused"});
    m.connections.with({"api"});
    m.connections.with({"metrics"});
    m.in_flight.with();
    return m;
}

}  // namespace

daemon_metrics& daemon_metrics::get() {
    static daemon_metrics instance = make();
    return instance;
}

void daemon_metrics::count_request(std::string_view method, std::string_view route,
                                   unsigned status) {
    const auto code = std::to_string(status);
    requests
        .with({route.empty() ? std::string_view("other") : method,
               route.empty() ? std::string_view("unmatched") : route, code})
        .inc();
}

}  // namespace pwresetd::daemon
