#pragma once
// The metrics listener (metrics_listen): GET /metrics in the Prometheus text format, plain
// HTTP on loopback or HTTPS with a verified client certificate (config.hpp
// metrics_settings). It serves nothing else (404 for other paths, 405 for other methods)
// and a scraper or an attacker cannot make it allocate or wait for long: the request header
// is at most header_limit bytes and must arrive within the timeout, no body is ever read
// (a request with one is refused), and at most max_connections are open at once (more are
// closed at accept). It runs on the daemon's io_context; a reload keeps it as it is.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "common/metrics.hpp"
#include "daemon/config.hpp"

namespace pwresetd::daemon {

// The https metrics listener's TLS context: the tls: certificate and key as for the API,
// and client certificates required and verified against metrics_client_ca. Throws
// std::runtime_error naming the file that failed.
boost::asio::ssl::context make_metrics_tls(const tls_settings& tls,
                                           const std::filesystem::path& client_ca);

class metrics_server {
public:
    // For https: the TLS context new connections use (the serving generation's, so a reload
    // renews the certificate); null for plain http.
    using tls_source = std::function<std::shared_ptr<boost::asio::ssl::context>()>;

    static constexpr std::size_t header_limit = 4096;
    static constexpr std::size_t max_connections = 16;
    static constexpr std::size_t max_requests_per_connection = 100;
    static constexpr auto timeout = std::chrono::seconds(5);

    metrics_server(boost::asio::io_context& ioc, metrics_settings settings, tls_source tls,
                   metrics::registry& registry = metrics::registry::global());
    metrics_server(const metrics_server&) = delete;
    metrics_server& operator=(const metrics_server&) = delete;
    ~metrics_server();

    // Binds metrics_listen; throws std::runtime_error on a resolve or bind error, and when a
    // plain http address does not resolve to loopback only.
    void listen();
    void stop_accepting();

    class acceptor;  // the listening socket; public for metrics_server.cpp only

private:
    boost::asio::io_context& ioc_;
    metrics_settings settings_;
    tls_source tls_;
    metrics::registry& registry_;
    std::vector<std::shared_ptr<acceptor>> acceptors_;
};

}  // namespace pwresetd::daemon
