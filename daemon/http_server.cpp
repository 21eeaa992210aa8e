#include "daemon/http_server.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "common/log.hpp"
#include "daemon/http_session.hpp"

namespace pwresetd::daemon {
namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

struct x509_name_stack_free {
    void operator()(STACK_OF(X509_NAME) * names) const noexcept {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    }
};

// tls.client_ca: the client is asked for a certificate (SSL_VERIFY_PEER) and one it sends must
// chain to a certificate of `ca_file` (the only trust anchors; no system store) and be valid
// now, or the handshake fails. Not SSL_VERIFY_FAIL_IF_NO_PEER_CERT: API-key clients come
// without one, and client_auth decides what a connection without one may do.
void require_client_certificates(SSL_CTX* native, const std::filesystem::path& ca_file) {
    const std::string path = ca_file.string();
    if (SSL_CTX_load_verify_file(native, path.c_str()) != 1) {
        throw std::runtime_error(path + ": cannot load the client CA certificates");
    }
    // The CA names go out in the CertificateRequest, so a client with several certificates
    // picks one this CA issued (RFC 8446 4.2.4).
    std::unique_ptr<STACK_OF(X509_NAME), x509_name_stack_free> names(
        SSL_load_client_CA_file(path.c_str()));
    if (!names) {
        throw std::runtime_error(path + ": no CA certificate to name to clients");
    }
    SSL_CTX_set_client_CA_list(native, names.release());
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    // No session resumption: every connection verifies its certificate in a full handshake,
    // against this context's CA (a resumed session would carry an earlier verdict along).
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(native, 0);
    // OpenSSL refuses to resume without one once verification is on (SSL_CTX_set_verify(3)).
    static constexpr std::string_view context = "pwresetd";
    if (SSL_CTX_set_session_id_context(native,
                                       reinterpret_cast<const unsigned char*>(context.data()),
                                       static_cast<unsigned>(context.size())) != 1) {
        throw std::runtime_error("tls: cannot set the session id context");
    }
}

}  // namespace

ssl::context make_server_tls(const tls_settings& tls) {
    ssl::context ctx(ssl::context::tls_server);
    SSL_CTX* native = ctx.native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
        throw std::runtime_error("tls: cannot set the minimum protocol version");
    }
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                    ssl::context::single_dh_use);
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // TLS 1.2: ECDHE with AEAD only. TLS 1.3 suites are all AEAD (OpenSSL defaults).
    if (SSL_CTX_set_cipher_list(native,
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256") != 1) {
        throw std::runtime_error("tls: cannot set the cipher list");
    }
    // An encrypted key fails at once instead of prompting on a terminal (there is none).
    ctx.set_password_callback(
        [](std::size_t /*max_length*/, ssl::context::password_purpose /*purpose*/) {
            return std::string();
        });
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(tls.certificate.string(), ec);
    if (ec) {
        throw std::runtime_error(tls.certificate.string() +
                                 ": cannot load the TLS certificate: " + ec.message());
    }
    ctx.use_private_key_file(tls.private_key.string(), ssl::context::pem, ec);
    if (ec) {
        throw std::runtime_error(tls.private_key.string() +
                                 ": cannot load the TLS private key: " + ec.message());
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        throw std::runtime_error(tls.private_key.string() +
                                 ": the private key does not match the certificate " +
                                 tls.certificate.string());
    }
    if (tls.client_ca) {
        require_client_certificates(native, *tls.client_ca);
    }
    return ctx;
}

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(net::io_context& ioc, const tcp::endpoint& endpoint, server_shared& shared)
        : ioc_(ioc),
          acceptor_(net::make_strand(ioc)),
          backoff_timer_(acceptor_.get_executor()),
          shared_(shared) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        if (endpoint.address().is_v6()) {
            acceptor_.set_option(net::ip::v6_only(true));
        }
        acceptor_.bind(endpoint);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }

    // A socket that is already bound and listening (socket activation); owns `fd` from here.
    listener(net::io_context& ioc, const tcp& protocol, int fd, server_shared& shared)
        : ioc_(ioc),
          acceptor_(net::make_strand(ioc)),
          backoff_timer_(acceptor_.get_executor()),
          shared_(shared) {
        acceptor_.assign(protocol, fd);
    }

    void run() { do_accept(); }

    tcp::endpoint local_endpoint(beast::error_code& ec) const {
        return acceptor_.local_endpoint(ec);
    }

    void stop() {
        net::post(acceptor_.get_executor(), [self = shared_from_this()] {
            beast::error_code ignored;
            self->acceptor_.close(ignored);
            self->backoff_timer_.cancel();
        });
    }

private:
    void do_accept() {
        acceptor_.async_accept(net::make_strand(ioc_),
                               beast::bind_front_handler(&listener::on_accept, shared_from_this()));
    }

    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
            return;
        }
        if (ec) {
            // Out of descriptors (EMFILE/ENFILE) or memory, the failure repeats at once for as
            // long as the cause lasts: wait before the next accept (10 ms doubling to 1 s)
            // instead of spinning, and say so at most once a second.
            backoff_ = std::min<std::chrono::milliseconds>(
                std::chrono::milliseconds(1000),
                backoff_.count() == 0 ? std::chrono::milliseconds(10) : backoff_ * 2);
            accept_failed_log_.write(
                log::level::warning, "http.accept_failed",
                {{"error", ec.message()},
                 {"retry_in_ms", static_cast<std::int64_t>(backoff_.count())}});
            backoff_timer_.expires_after(backoff_);
            backoff_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
                if (!wait_ec && self->acceptor_.is_open()) {
                    self->do_accept();
                }
            });
            return;
        }
        backoff_ = std::chrono::milliseconds(0);
        beast::error_code peer_ec;
        const auto peer = socket.remote_endpoint(peer_ec);
        std::string peer_ip = peer_ec ? std::string("-") : peer.address().to_string();
        // limits.max_connections: beyond it a connection is closed at once, not queued.
        auto set = shared_.current();
        const int max_connections = set->cfg.limits.max_connections;
        if (shared_.connections.fetch_add(1) >= max_connections) {
            --shared_.connections;
            refused_log_.write(log::level::warning, "http.connection_refused",
                               {{"ip", peer_ip},
                                {"reason", "max_connections"},
                                {"max_connections", max_connections}});
            beast::error_code ignored;
            socket.close(ignored);
        } else {
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            auto& tls = set->tls;
            std::make_shared<http_session<beast::ssl_stream<beast::tcp_stream>>>(
                shared_, std::move(set), std::move(peer_ip), std::move(socket), tls)
                ->run();
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
    net::steady_timer backoff_timer_;
    server_shared& shared_;
    std::chrono::milliseconds backoff_{0};
    log::rate_limited accept_failed_log_;
    log::rate_limited refused_log_;
};

http_server::http_server(net::io_context& ioc, server_shared& shared)
    : ioc_(ioc), shared_(shared) {}

http_server::~http_server() = default;

void http_server::listen() {
    const auto set = shared_.current();
    for (const auto& ep : set->cfg.listen) {
        if (ep.type != listen_endpoint::kind::https) {
            throw std::runtime_error(ep.text +
                                     ": unix socket listeners are not supported by this "
                                     "version yet");
        }
        tcp::resolver resolver(ioc_);
        boost::system::error_code ec;
        const auto results =
            resolver.resolve(ep.host, std::to_string(ep.port), tcp::resolver::numeric_service, ec);
        if (ec || results.empty()) {
            throw std::runtime_error(ep.text + ": cannot resolve " + ep.host + ": " + ec.message());
        }
        for (const auto& entry : results) {
            try {
                auto l = std::make_shared<listener>(ioc_, entry.endpoint(), shared_);
                l->run();
                listeners_.push_back(std::move(l));
                log::info("http.listening", {{"listen", ep.text},
                                             {"address", entry.endpoint().address().to_string()},
                                             {"port", static_cast<unsigned>(ep.port)}});
            } catch (const boost::system::system_error& e) {
                throw std::runtime_error(ep.text + ": cannot listen: " + e.code().message());
            }
        }
    }
}

void http_server::adopt(int fd, const std::string& name) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        (address.ss_family != AF_INET && address.ss_family != AF_INET6)) {
        throw std::runtime_error("passed socket " + name + " (fd " + std::to_string(fd) +
                                 ") is not a TCP socket");
    }
    const tcp protocol = address.ss_family == AF_INET ? tcp::v4() : tcp::v6();
    auto l = std::make_shared<listener>(ioc_, protocol, fd, shared_);
    beast::error_code ec;
    const auto local = l->local_endpoint(ec);
    l->run();
    listeners_.push_back(std::move(l));
    log::info("http.listening", {{"listen", "systemd:" + name},
                                 {"address", ec ? std::string("-") : local.address().to_string()},
                                 {"port", ec ? 0U : static_cast<unsigned>(local.port())}});
}

void http_server::stop_accepting() {
    for (auto& l : listeners_) {
        l->stop();
    }
}

}  // namespace pwresetd::daemon
