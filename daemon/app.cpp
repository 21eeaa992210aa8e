#include "daemon/app.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <thread>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "daemon/admin_server.hpp"
#include "daemon/api.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/change_service.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/enrollment_service.hpp"
#include "daemon/http_server.hpp"
#include "daemon/reset_service.hpp"
#include "daemon/worker_pool.hpp"
#include "ldap/directory.hpp"
#include "store/redis_store.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {
namespace net = boost::asio;
namespace {

constexpr std::size_t io_threads = 2;
constexpr std::size_t queue_per_worker = 32;
constexpr auto drain_deadline = std::chrono::seconds(10);
constexpr auto purge_interval = std::chrono::seconds(60);

// Secrets pass through this process: no core dumps, no ptrace by other users.
void harden_process() {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
#if !defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer attaches to the process's own threads with ptrace at exit, which a
    // non-dumpable process forbids; sanitizer builds are for tests only.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

// The courier owns its settings (secrets included); the configuration keeps its own.
std::optional<factors::mail_settings> copy_of(const std::optional<factors::mail_settings>& m) {
    if (!m) {
        return std::nullopt;
    }
    factors::mail_settings out;
    out.smtp_url = m->smtp_url;
    out.from = m->from;
    out.ca_file = m->ca_file;
    out.require_tls = m->require_tls;
    out.username = m->username;
    out.password = secret(m->password.bytes());
    out.timeout_ms = m->timeout_ms;
    out.retries = m->retries;
    return out;
}

std::optional<factors::sms_settings> copy_of(const factors::sms_settings& s) {
    factors::sms_settings out;
    out.webhook_url = s.webhook_url;
    out.ca_file = s.ca_file;
    out.bearer_token = secret(s.bearer_token.bytes());
    out.timeout_ms = s.timeout_ms;
    out.retries = s.retries;
    return out;
}

class courier_outbox final : public code_outbox {
public:
    explicit courier_outbox(factors::courier& courier) : courier_(courier) {}
    bool send_email(factors::email_message message) override {
        return courier_.send_email(std::move(message));
    }
    bool send_sms(factors::sms_message message) override {
        return courier_.send_sms(std::move(message));
    }

private:
    factors::courier& courier_;
};

void schedule_purge(net::steady_timer& timer, worker_pool& workers, store::state_store& state) {
    timer.expires_after(purge_interval);
    timer.async_wait([&timer, &workers, &state](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        workers.try_submit([&state] { state.purge_expired(unix_now()); });
        schedule_purge(timer, workers, state);
    });
}

// WatchdogSec=: WATCHDOG=1 from the event loop at half the interval, so a loop that stops
// turning is killed and restarted by systemd (sd_watchdog_enabled(3)).
void schedule_watchdog(net::steady_timer& timer, std::chrono::microseconds every) {
    timer.expires_after(every);
    timer.async_wait([&timer, every](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        sd_notify(0, "WATCHDOG=1");
        schedule_watchdog(timer, every);
    });
}

// The STATUS= line of READY=1: "serving on https://127.0.0.1:8443, directory ok".
std::string serving_status(const config& cfg, health_monitor::state directory) {
    std::string out = "serving on ";
    for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
        out.append(i == 0 ? "" : ", ").append(cfg.listen[i].text);
    }
    out.append(directory == health_monitor::state::healthy ? ", directory ok"
                                                           : ", directory degraded");
    return out;
}

}  // namespace

std::string version_string() {
    return "pwresetd " PWRESETD_VERSION;
}

int run(const options& opts) {
    config cfg;
    try {
        cfg = load_config(opts.config_file);
    } catch (const config_error& e) {
        for (const auto& line : e.errors()) {
            std::cerr << line << '\n';
        }
        return 1;
    }
    for (const auto& w : cfg.warnings) {
        std::cerr << "warning: " << w << '\n';
    }
    if (opts.check_only) {
        try {
            (void)make_server_tls(cfg.tls);
            // Loads the banned list and validates the breached set, as the daemon would.
            const policy::password_policy policy(cfg.policy);
        } catch (const std::exception& e) {
            std::cerr << e.what() << '\n';
            return 1;
        }
        std::cout << cfg.source.string() << ": configuration is valid\n";
        return 0;
    }

    log::set_level(cfg.log_level);
    harden_process();
    log::info("daemon.starting", {{"version", PWRESETD_VERSION}, {"config", cfg.source.string()}});
    for (const auto& w : cfg.warnings) {
        log::warning("config.warning", {{"message", w}});
    }

    try {
        auto tls = make_server_tls(cfg.tls);
        const policy::password_policy policy(cfg.policy);
        const secret master_key = crypto::load_or_create_key_file(cfg.secrets_key_file);
        const factor_keys keys = derive_factor_keys(master_key);
        auto state = cfg.state.backend == "redis"
                         ? store::open_redis_store(cfg.state.redis_url, secret(master_key.bytes()),
                                                   secret(cfg.state.redis_password.bytes()))
                         : store::open_sqlite_store(cfg.state.path, secret(master_key.bytes()));
        audit_log audit(cfg.audit_file);
        // Codes leave through the courier's own threads: a reply never waits for delivery.
        factors::courier courier(
            cfg.factors.email.enabled ? copy_of(cfg.mail) : std::nullopt,
            cfg.factors.sms.enabled ? copy_of(cfg.factors.sms.webhook) : std::nullopt);
        courier_outbox outbox(courier);
        int pool_size = 0;
        for (const auto& d : cfg.directories) {
            pool_size += d.pool_size;
        }
        auto directory = ldap::make_directories(std::move(cfg.directories));
        reset_service resets(cfg, policy, *directory, *state, audit, outbox, keys);
        enrollment_service enrollments(cfg, *directory, *state, audit, keys);
        change_service changes(cfg, policy, *directory, *state, audit);
        api routes(cfg, policy, resets, enrollments, changes, *directory, *state);
        const client_auth auth(cfg.clients);
        const auto workers_count = static_cast<std::size_t>(std::max(1, pool_size));
        worker_pool workers(workers_count, workers_count * queue_per_worker);

        // shared before ioc: destroying ioc destroys the handlers still queued, and with them
        // sessions whose destructors update shared's counters (ASan: stack-use-after-scope).
        server_shared shared{cfg, tls, routes, auth, workers};
        net::io_context ioc(static_cast<int>(io_threads));
        http_server server(ioc, shared);
        server.listen();
        admin_service admin(cfg, *directory, *state, audit, keys, [&shared, &workers] {
            return boost::json::object{{"connections", shared.connections.load()},
                                       {"requests_in_flight", shared.in_flight.load()},
                                       {"worker_queue", workers.queued()}};
        });
        const auto admin_socket = make_admin_server(ioc, admin, cfg);

        net::steady_timer purge_timer(ioc);
        schedule_purge(purge_timer, workers, *state);

        net::steady_timer watchdog_timer(ioc);
        std::uint64_t watchdog_usec = 0;
        if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
            schedule_watchdog(watchdog_timer, std::chrono::microseconds(watchdog_usec / 2));
        }

        net::steady_timer drain_timer(ioc);
        std::chrono::steady_clock::time_point drain_until;
        std::function<void()> wait_for_drain = [&] {
            if (shared.in_flight.load() == 0 || std::chrono::steady_clock::now() > drain_until) {
                ioc.stop();
                return;
            }
            drain_timer.expires_after(std::chrono::milliseconds(20));
            drain_timer.async_wait([&](const boost::system::error_code&) { wait_for_drain(); });
        };
        std::atomic<bool> stopping{false};
        net::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code& ec, int signo) {
            if (ec) {
                return;
            }
            stopping = true;
            const int in_flight = shared.in_flight.load();
            log::info("daemon.stopping", {{"signal", signo}, {"in_flight", in_flight}});
            sd_notifyf(0, "STOPPING=1\nSTATUS=stopping, draining %d requests", in_flight);
            server.stop_accepting();
            if (admin_socket) {
                admin_socket->stop_accepting();
            }
            purge_timer.cancel();
            drain_until = std::chrono::steady_clock::now() + drain_deadline;
            wait_for_drain();
        });

        // No exception may end an I/O thread (and with it the process): log it, at most once
        // a second, and go on serving; the connection whose handler threw is closed.
        log::rate_limited io_exception_log;
        const auto run_io = [&ioc, &io_exception_log] {
            for (;;) {
                try {
                    ioc.run();
                    return;
                } catch (const std::exception& e) {
                    io_exception_log.write(log::level::error, "io.exception",
                                           {{"error", e.what()}});
                } catch (...) {
                    io_exception_log.write(log::level::error, "io.exception",
                                           {{"error", "unknown exception"}});
                }
            }
        };
        std::vector<std::thread> threads;
        threads.reserve(io_threads - 1);
        for (std::size_t i = 1; i < io_threads; ++i) {
            threads.emplace_back(run_io);
        }
        // READY=1 once the listeners are bound (above) and the directory has been tried: a
        // unit ordered After=pwresetd.service finds a daemon that answers, and its status
        // says whether the directory did. A degraded directory still serves health (503).
        const auto directory_state = routes.await_directory();
        const std::string status = serving_status(cfg, directory_state);
        if (!stopping) {
            sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
        }
        log::info("daemon.ready",
                  {{"workers", static_cast<unsigned>(workers_count)}, {"status", status}});
        run_io();
        for (auto& t : threads) {
            t.join();
        }
        workers.stop();
        courier.stop();
        log::info("daemon.stopped");
        return 0;
    } catch (const std::exception& e) {
        log::error("daemon.startup_failed", {{"error", e.what()}});
        return 2;
    }
}

}  // namespace pwresetd::daemon
