#pragma once
// HTTPS listeners and connections (Boost.Beast): TLS 1.2/1.3 with AEAD suites only, a strand
// per connection, header and body limits and timeouts, client authentication checked from
// the headers before any body byte is read, blocking work handed to the worker pool, and
// every reply JSON with Cache-Control: no-store (API.md "Transport").
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/http_session.hpp"

namespace pwresetd::daemon {

// Server-side TLS context per API.md: TLS 1.2 and 1.3, AEAD suites only, no renegotiation,
// no compression; with tls.client_ca, client certificates are asked for and verified.
// Throws std::runtime_error naming the file that failed to load.
boost::asio::ssl::context make_server_tls(const tls_settings& tls);

class listener;

class http_server {
public:
    http_server(boost::asio::io_context& ioc, server_shared& shared);
    ~http_server();
    // Binds every https listener of the configuration; throws on a bind error.
    void listen();
    // Serves a TCP socket that systemd passed already bound and listening (socket
    // activation: sd_listen_fds(3)) instead of binding; `name` is its FileDescriptorName=.
    // Throws when `fd` is not a TCP socket.
    void adopt(int fd, const std::string& name);
    void stop_accepting();

private:
    boost::asio::io_context& ioc_;
    server_shared& shared_;
    std::vector<std::shared_ptr<listener>> listeners_;
};

}  // namespace pwresetd::daemon
