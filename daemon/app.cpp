#include "daemon/app.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "daemon/admin_server.hpp"
#include "daemon/api.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/change_service.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon_metrics.hpp"
#include "daemon/enrollment_service.hpp"
#include "daemon/generation.hpp"
#include "daemon/http_server.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/reset_service.hpp"
#include "daemon/worker_pool.hpp"
#include "ldap/directory.hpp"
#include "store/redis_store.hpp"
#include "store/state_store.hpp"
#include "store/timed_store.hpp"

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
std::string serving_status(const std::vector<std::string>& listening,
                           health_monitor::state directory) {
    std::string out = "serving on ";
    for (std::size_t i = 0; i < listening.size(); ++i) {
        out.append(i == 0 ? "" : ", ").append(listening[i]);
    }
    out.append(directory == health_monitor::state::healthy ? ", directory ok"
                                                           : ", directory degraded");
    return out;
}

// Runs reloads, and the destruction of generations no request holds any more, on a thread
// of its own: neither may block an I/O thread (a courier drains its queue, a health monitor
// waits for its ping). Tasks run in order; once stopping, post() runs a task at once.
class background {
public:
    background() : thread_([this] { loop(); }) {}
    background(const background&) = delete;
    background& operator=(const background&) = delete;
    ~background() { stop(); }

    // Runs what is queued, then ends the thread; idempotent.
    void stop() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    void post(std::function<void()> task) {
        {
            std::unique_lock lock(mutex_);
            if (!stopping_) {
                tasks_.push_back(std::move(task));
                lock.unlock();
                wake_.notify_one();
                return;
            }
        }
        task();
    }

private:
    void loop() {
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
                if (tasks_.empty()) {
                    return;
                }
                task = std::move(tasks_.front());
                tasks_.pop_front();
            }
            try {
                task();
            } catch (const std::exception& e) {
                log::error("daemon.background_failed", {{"error", e.what()}});
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::thread thread_;
};

// The sockets systemd passed (sd_listen_fds(3)), with their FileDescriptorName=.
struct passed_socket {
    int fd = -1;
    std::string name;
};

std::vector<passed_socket> sockets_from_systemd() {
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);
    std::vector<passed_socket> out;
    out.reserve(static_cast<std::size_t>(std::max(n, 0)));
    for (int i = 0; i < n; ++i) {
        out.push_back({SD_LISTEN_FDS_START + i,
                       names != nullptr && names[i] != nullptr ? names[i] : "unknown"});
    }
    if (names != nullptr) {
        for (int i = 0; i < n; ++i) {
            std::free(names[i]);  // NOLINT(cppcoreguidelines-no-malloc): sd_listen_fds_with_names
        }
        std::free(static_cast<void*>(names));  // NOLINT(cppcoreguidelines-no-malloc)
    }
    return out;
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000U +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
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
            if (cfg.metrics && cfg.metrics->client_ca) {
                (void)make_metrics_tls(cfg.tls, *cfg.metrics->client_ca);
            }
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
    auto& measured = daemon_metrics::get();
    measured.build_info.with({PWRESETD_VERSION}).set(1);
    measured.start_time.with().set(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    log::info("daemon.starting", {{"version", PWRESETD_VERSION}, {"config", cfg.source.string()}});
    for (const auto& w : cfg.warnings) {
        log::warning("config.warning", {{"message", w}});
    }

    try {
        // Declared first, destroyed last: every generation is deleted through it.
        background behind;
        const std::string config_file = cfg.source.string();
        const secret master_key = crypto::load_or_create_key_file(cfg.secrets_key_file);
        const factor_keys keys = derive_factor_keys(master_key);
        auto state = store::with_timing(
            cfg.state.backend == "redis"
                ? store::open_redis_store(cfg.state.redis_url, secret(master_key.bytes()),
                                          secret(cfg.state.redis_password.bytes()))
                : store::open_sqlite_store(cfg.state.path, secret(master_key.bytes())),
            cfg.state.backend);
        audit_log audit(cfg.audit_file);
        // The admin socket's status reads the live counters of what is built below.
        const server_shared* counted = nullptr;
        const worker_pool* counted_workers = nullptr;
        const process_parts parts{*state, audit, keys, [&counted, &counted_workers] {
                                      boost::json::object out;
                                      if (counted != nullptr && counted_workers != nullptr) {
                                          out = {{"connections", counted->connections.load()},
                                                 {"requests_in_flight", counted->in_flight.load()},
                                                 {"worker_queue", counted_workers->queued()}};
                                      }
                                      return out;
                                  }};

        // A generation is deleted on the background thread once the last connection or
        // request holding it lets go.
        const auto make_generation = [&behind, &parts](config c, const generation* older) {
            return std::shared_ptr<generation>(
                new generation(std::move(c), parts, older), [&behind](generation* g) {
                    behind.post([g] { delete g; });  // NOLINT(cppcoreguidelines-owning-memory)
                });
        };
        const auto serving_of = [](const std::shared_ptr<generation>& g) {
            return std::shared_ptr<const serving_set>(g, &g->serving());
        };
        std::shared_ptr<generation> current = make_generation(std::move(cfg), nullptr);
        std::mutex current_mutex;  // `current` is replaced by reloads on the background thread
        const auto workers_count =
            static_cast<std::size_t>(std::max(1, current->directory_connections()));
        worker_pool workers(workers_count, workers_count * queue_per_worker);

        // shared before ioc: destroying ioc destroys the handlers still queued, and with them
        // sessions whose destructors update shared's counters (ASan: stack-use-after-scope).
        server_shared shared(serving_of(current), workers);
        net::io_context ioc(static_cast<int>(io_threads));
        http_server server(ioc, shared);
        counted = &shared;
        counted_workers = &workers;
        // Admin commands run on the generation that serves when they arrive.
        const admin_server::handler admin_handler =
            [&current, &current_mutex](const admin::request& request, const admin_peer& peer) {
                std::shared_ptr<generation> serving;
                {
                    const std::lock_guard lock(current_mutex);
                    serving = current;
                }
                return serving->admin().handle(request, peer);
            };
        std::unique_ptr<admin_server> admin_socket;
        std::vector<std::string> listening;
        for (const auto& passed : sockets_from_systemd()) {
            // pwresetd.socket: TCP sockets serve the API, a Unix socket is the admin socket.
            if (sd_is_socket_unix(passed.fd, SOCK_STREAM, 1, nullptr, 0) > 0 && !admin_socket) {
                admin_socket = std::make_unique<admin_server>(ioc, admin_handler, passed.fd);
                admin_socket->start();
                log::info("admin.listening", {{"listen", "systemd:" + passed.name}});
                continue;
            }
            server.adopt(passed.fd, passed.name);
            listening.push_back("systemd:" + passed.name);
        }
        if (listening.empty()) {
            server.listen();
            for (const auto& ep : current->cfg().listen) {
                listening.push_back(ep.text);
            }
        } else {
            log::info("http.socket_activation",
                      {{"sockets", static_cast<unsigned>(listening.size())},
                       {"note", "the listen addresses of the configuration are not bound"}});
        }
        if (!admin_socket) {
            admin_socket = make_admin_server(ioc, admin_handler, current->cfg());
        }

        // metrics_listen: bound once; https connections take the serving generation's TLS
        // context (a reload renews the certificate and the client CA).
        std::optional<metrics_server> metrics_listener;
        if (const auto& m = current->cfg().metrics) {
            metrics_server::tls_source tls;
            if (m->tls) {
                tls = [&current, &current_mutex]() -> std::shared_ptr<net::ssl::context> {
                    std::shared_ptr<generation> g;
                    {
                        const std::lock_guard lock(current_mutex);
                        g = current;
                    }
                    // Null after a reload that dropped https metrics (needs a restart): the
                    // connection is closed.
                    auto* ctx = g->metrics_tls();
                    return ctx == nullptr ? nullptr
                                          : std::shared_ptr<net::ssl::context>(std::move(g), ctx);
                };
            }
            metrics_listener.emplace(ioc, *m, std::move(tls));
            metrics_listener->listen();
        }

        net::steady_timer purge_timer(ioc);
        schedule_purge(purge_timer, workers, *state);

        net::steady_timer watchdog_timer(ioc);
        std::uint64_t watchdog_usec = 0;
        if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
            schedule_watchdog(watchdog_timer, std::chrono::microseconds(watchdog_usec / 2));
        }

        // SIGHUP: a new generation from the file, built on the background thread, swapped in
        // when whole; anything wrong keeps the serving one. Signals that arrive during a
        // reload make one more reload after it.
        // 0: no reload; 1: one running; 2: one running and another wanted after it. Any number
        // of signals during a reload make one more reload, not one each.
        std::atomic<int> reloads_wanted{0};
        std::atomic<bool> stopping{false};
        const auto reload = [&] {
            do {
                if (stopping) {
                    reloads_wanted = 0;
                    return;
                }
                reloads_wanted = 1;  // signals from here on want one more
                sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                           static_cast<unsigned long long>(monotonic_usec()), config_file.c_str());
                log::info("daemon.reloading", {{"config", config_file}});
                std::shared_ptr<generation> serving;
                {
                    const std::lock_guard lock(current_mutex);
                    serving = current;
                }
                boost::json::object record;
                record["event"] = "daemon.reload";
                record["config"] = config_file;
                const auto refuse = [&](std::string_view why, std::size_t errors) {
                    log::error("daemon.reload_refused",
                               {{"config", config_file},
                                {"reason", why},
                                {"errors", static_cast<unsigned>(errors)}});
                    record["outcome"] = "refused";
                    measured.reloads.with({"refused"}).inc();
                    record["reason"] = why;
                    record["errors"] = errors;
                };
                try {
                    config next_cfg = load_config(config_file);
                    for (const auto& w : next_cfg.warnings) {
                        log::warning("config.warning", {{"message", w}});
                    }
                    const auto stays = needs_restart(*serving, next_cfg);
                    const auto level = next_cfg.log_level;
                    auto next = make_generation(std::move(next_cfg), serving.get());
                    const auto before = serving->routes().await_directory();
                    const auto after = next->routes().await_directory();
                    if (before == health_monitor::state::healthy &&
                        after != health_monitor::state::healthy) {
                        refuse("the directory does not answer with the new settings", 1);
                    } else {
                        {
                            const std::lock_guard lock(current_mutex);
                            current = next;
                        }
                        shared.replace(serving_of(next));
                        log::set_level(level);
                        boost::json::array restart;
                        for (const auto& line : stays) {
                            log::warning("daemon.reload_needs_restart", {{"setting", line}});
                            restart.emplace_back(line);
                        }
                        record["outcome"] = "applied";
                        measured.reloads.with({"applied"}).inc();
                        record["needs_restart"] = std::move(restart);
                        log::info("daemon.reloaded",
                                  {{"config", config_file},
                                   {"needs_restart", static_cast<unsigned>(stays.size())}});
                    }
                } catch (const config_error& e) {
                    for (const auto& line : e.errors()) {
                        log::error("config.reload_error", {{"error", line}});
                    }
                    refuse("the configuration has errors", e.errors().size());
                } catch (const std::exception& e) {
                    log::error("config.reload_error", {{"error", e.what()}});
                    refuse(e.what(), 1);
                }
                try {
                    audit.record(std::move(record));
                } catch (const std::exception& e) {
                    log::error("audit.write_failed", {{"error", e.what()}});
                }
                health_monitor::state directory_state = health_monitor::state::unknown;
                {
                    const std::lock_guard lock(current_mutex);
                    directory_state = current->routes().await_directory();
                }
                const std::string status = serving_status(listening, directory_state);
                if (!stopping) {
                    sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
                }
            } while ([&reloads_wanted] {
                int running = 1;
                // 1 -> 0: done. It was 2: go again (and the loop's top sets 1).
                return !reloads_wanted.compare_exchange_strong(running, 0);
            }() && !stopping);
        };
        // Before anything `reload` uses goes out of scope, the background thread has finished.
        struct stop_at_exit {
            background& thread;
            explicit stop_at_exit(background& b) : thread(b) {}
            stop_at_exit(const stop_at_exit&) = delete;
            stop_at_exit& operator=(const stop_at_exit&) = delete;
            // The signal sets are gone by now and SIGHUP has its default action again (end
            // the process): ignore it while a reload may still be finishing.
            ~stop_at_exit() {
                std::signal(SIGHUP, SIG_IGN);
                thread.stop();
            }
        } const stop_behind{behind};
        net::signal_set hangups(ioc, SIGHUP);
        std::function<void()> await_hangup = [&] {
            hangups.async_wait([&](const boost::system::error_code& ec, int /*signo*/) {
                if (ec) {
                    return;
                }
                if (stopping) {
                    await_hangup();
                    return;
                }
                int idle = 0;
                if (reloads_wanted.compare_exchange_strong(idle, 1)) {
                    behind.post(reload);
                } else {
                    int running = 1;
                    reloads_wanted.compare_exchange_strong(running, 2);  // 2 stays 2
                }
                await_hangup();
            });
        };
        await_hangup();

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
            if (metrics_listener) {
                metrics_listener->stop_accepting();
            }
            if (admin_socket) {
                admin_socket->stop_accepting();
            }
            purge_timer.cancel();
            hangups.cancel();
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
        const auto directory_state = current->routes().await_directory();
        const std::string status = serving_status(listening, directory_state);
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
        log::info("daemon.stopped");
        return 0;
    } catch (const std::exception& e) {
        log::error("daemon.startup_failed", {{"error", e.what()}});
        return 2;
    }
}

}  // namespace pwresetd::daemon
