#include "daemon/metrics_server.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "common/log.hpp"
#include "daemon/daemon_metrics.hpp"
#include "daemon/http_server.hpp"

namespace pwresetd::daemon {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

ssl::context make_metrics_tls(const tls_settings& tls, const std::filesystem::path& client_ca) {
    ssl::context ctx = make_server_tls(tls);
    boost::system::error_code ec;
    ctx.load_verify_file(client_ca.string(), ec);
    if (ec) {
        throw std::runtime_error(client_ca.string() +
                                 ": cannot load the metrics client CA: " + ec.message());
    }
    // The CA names sent in the CertificateRequest, so a client with several certificates
    // picks the right one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca.string().c_str());
    if (names == nullptr) {
        throw std::runtime_error(client_ca.string() +
                                 ": no CA certificate in the metrics client CA");
    }
    SSL_CTX_set_client_CA_list(ctx.native_handle(), names);  // takes ownership
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Session resumption with client verification needs a session id context (OpenSSL
    // refuses to resume otherwise: SSL_R_SESSION_ID_CONTEXT_UNINITIALIZED).
    static constexpr std::array<unsigned char, 16> id{'p', 'w', 'r', 'e', 's', 'e', 't', 'd',
                                                      '-', 'm', 'e', 't', 'r', 'i', 'c', 's'};
    SSL_CTX_set_session_id_context(ctx.native_handle(), id.data(), id.size());
    return ctx;
}

namespace {

bool is_loopback(const net::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
        return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
    }
    return a.is_loopback();
}

template <class Stream>
constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

beast::tcp_stream& lowest(beast::tcp_stream& s) {
    return s;
}
beast::tcp_stream& lowest(beast::ssl_stream<beast::tcp_stream>& s) {
    return beast::get_lowest_layer(s);
}

// One scraper connection: requests one after the other, each header within the timeout,
// never a body; an error reply closes the connection.
template <class Stream>
class metrics_session : public std::enable_shared_from_this<metrics_session<Stream>> {
public:
    template <class... StreamArgs>
    metrics_session(std::shared_ptr<std::atomic<std::size_t>> open, metrics::registry& registry,
                    std::shared_ptr<ssl::context> tls, StreamArgs&&... stream_args)
        : tls_(std::move(tls)),
          stream_(std::forward<StreamArgs>(stream_args)...),
          open_(std::move(open)),
          registry_(registry),
          buffer_(metrics_server::header_limit) {
        daemon_metrics::get().connections.with({"metrics"}).inc();
    }
    metrics_session(const metrics_session&) = delete;
    metrics_session& operator=(const metrics_session&) = delete;
    ~metrics_session() {
        --*open_;
        daemon_metrics::get().connections.with({"metrics"}).dec();
    }

    void run() {
        lowest(stream_).expires_after(metrics_server::timeout);
        if constexpr (is_tls<Stream>) {
            stream_.async_handshake(
                ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
                    if (ec) {
                        daemon_metrics::get().tls_handshake_failures.with({"metrics"}).inc();
                        log::debug("metrics.handshake_failed", {{"error", ec.message()}});
                        return;
                    }
                    self->do_read();
                });
        } else {
            do_read();
        }
    }

private:
    void do_read() {
        parser_.emplace();
        parser_->header_limit(metrics_server::header_limit);
        parser_->body_limit(0);
        lowest(stream_).expires_after(metrics_server::timeout);
        http::async_read_header(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](beast::error_code ec, std::size_t /*bytes*/) {
                self->on_read(ec);
            });
    }

    void on_read(beast::error_code ec) {
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
            return reply(http::status::request_header_fields_too_large, "header too large\n",
                         false);
        }
        if (ec == http::error::body_limit) {  // a Content-Length above 0 (Beast checks it)
            return reply(http::status::payload_too_large, "no request body is accepted\n", false);
        }
        if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
            ec != http::error::end_of_stream && ec != http::error::partial_message) {
            return reply(http::status::bad_request, "bad request\n", false);
        }
        if (ec) {
            return;  // closed, timed out, reset: nothing to answer
        }
        const auto& req = parser_->get();
        const auto length = parser_->content_length();
        if ((length && *length > 0) || parser_->chunked()) {
            return reply(http::status::payload_too_large, "no request body is accepted\n", false);
        }
        const std::string_view target = req.target();
        if (target.substr(0, target.find('?')) != "/metrics") {
            return reply(http::status::not_found, "only /metrics is served here\n", false);
        }
        if (req.method() != http::verb::get) {
            return reply(http::status::method_not_allowed, "only GET\n", false);
        }
        ++served_;
        const bool keep_alive =
            req.keep_alive() && served_ < metrics_server::max_requests_per_connection;
        reply(http::status::ok, registry_.expose(), keep_alive);
    }

    void reply(http::status status, std::string body, bool keep_alive) {
        auto res = std::make_shared<http::response<http::string_body>>(status, 11);
        res->set(http::field::server, "pwresetd");
        res->set(http::field::content_type, status == http::status::ok
                                                ? "text/plain; version=0.0.4; charset=utf-8"
                                                : "text/plain; charset=utf-8");
        res->set(http::field::cache_control, "no-store");
        if (status == http::status::method_not_allowed) {
            res->set(http::field::allow, "GET");
        }
        res->body() = std::move(body);
        res->keep_alive(keep_alive);
        res->prepare_payload();
        lowest(stream_).expires_after(metrics_server::timeout);
        http::async_write(
            stream_, *res,
            [self = this->shared_from_this(), res](beast::error_code ec, std::size_t /*bytes*/) {
                if (ec) {
                    return;
                }
                if (res->keep_alive()) {
                    return self->do_read();
                }
                self->close();
            });
    }

    // After the last reply: TLS close_notify, or for plain TCP our side shut and what the
    // client still sends read and dropped (at most drain_limit, for at most a second), so it
    // reads the reply instead of a reset.
    void close() {
        lowest(stream_).expires_after(std::chrono::seconds(1));
        if constexpr (is_tls<Stream>) {
            stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
                beast::error_code ignored;
                lowest(self->stream_).socket().close(ignored);
            });
        } else {
            beast::error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            drain();
        }
    }

    void drain() {
        stream_.async_read_some(net::buffer(scratch_), [self = this->shared_from_this()](
                                                           beast::error_code ec, std::size_t n) {
            self->drained_ += n;
            if (ec || self->drained_ > drain_limit) {
                beast::error_code ignored;
                self->stream_.socket().close(ignored);
                return;
            }
            self->drain();
        });
    }

    static constexpr std::size_t drain_limit = std::size_t{64} * 1024;

    std::shared_ptr<ssl::context> tls_;  // before stream_: the stream uses it
    Stream stream_;
    std::shared_ptr<std::atomic<std::size_t>> open_;
    metrics::registry& registry_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    std::size_t served_ = 0;
    std::size_t drained_ = 0;
    std::array<char, 4096> scratch_{};
};

}  // namespace

class metrics_server::acceptor : public std::enable_shared_from_this<metrics_server::acceptor> {
public:
    acceptor(net::io_context& ioc, const tcp::endpoint& endpoint, tls_source tls,
             metrics::registry& registry)
        : ioc_(ioc),
          acceptor_(net::make_strand(ioc)),
          backoff_timer_(acceptor_.get_executor()),
          tls_(std::move(tls)),
          registry_(registry) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        if (endpoint.address().is_v6()) {
            acceptor_.set_option(net::ip::v6_only(true));
        }
        acceptor_.bind(endpoint);
        acceptor_.listen(static_cast<int>(max_connections));
    }

    void run() { do_accept(); }

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
                               beast::bind_front_handler(&acceptor::on_accept, shared_from_this()));
    }

    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
            return;
        }
        if (ec) {
            // As the API listeners (http_server.cpp): back off instead of spinning while
            // descriptors or memory run short.
            backoff_ = std::min<std::chrono::milliseconds>(
                std::chrono::milliseconds(1000),
                backoff_.count() == 0 ? std::chrono::milliseconds(10) : backoff_ * 2);
            accept_failed_log_.write(
                log::level::warning, "metrics.accept_failed",
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
        if (open_->fetch_add(1) >= max_connections) {
            --*open_;
            refused_log_.write(log::level::warning, "metrics.connection_refused",
                               {{"reason", "too many connections"},
                                {"max_connections", static_cast<unsigned>(max_connections)}});
            beast::error_code ignored;
            socket.close(ignored);
        } else if (tls_) {
            auto ctx = tls_();
            if (!ctx) {
                --*open_;
                beast::error_code ignored;
                socket.close(ignored);
                return do_accept();
            }
            auto& context = *ctx;
            std::make_shared<metrics_session<beast::ssl_stream<beast::tcp_stream>>>(
                open_, registry_, std::move(ctx), std::move(socket), context)
                ->run();
        } else {
            std::make_shared<metrics_session<beast::tcp_stream>>(open_, registry_, nullptr,
                                                                 std::move(socket))
                ->run();
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
    net::steady_timer backoff_timer_;
    tls_source tls_;
    metrics::registry& registry_;
    std::shared_ptr<std::atomic<std::size_t>> open_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::chrono::milliseconds backoff_{0};
    log::rate_limited accept_failed_log_;
    log::rate_limited refused_log_;
};

metrics_server::metrics_server(net::io_context& ioc, metrics_settings settings, tls_source tls,
                               metrics::registry& registry)
    : ioc_(ioc), settings_(std::move(settings)), tls_(std::move(tls)), registry_(registry) {}

metrics_server::~metrics_server() = default;

void metrics_server::listen() {
    tcp::resolver resolver(ioc_);
    boost::system::error_code ec;
    const auto results = resolver.resolve(settings_.host, std::to_string(settings_.port),
                                          tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
        throw std::runtime_error(settings_.text + ": cannot resolve " + settings_.host + ": " +
                                 ec.message());
    }
    for (const auto& entry : results) {
        if (!settings_.tls && !is_loopback(entry.endpoint().address())) {
            throw std::runtime_error(settings_.text + ": " +
                                     entry.endpoint().address().to_string() +
                                     " is not a loopback address (plain http is served only "
                                     "on loopback)");
        }
        try {
            auto a = std::make_shared<acceptor>(ioc_, entry.endpoint(), tls_, registry_);
            a->run();
            acceptors_.push_back(std::move(a));
        } catch (const boost::system::system_error& e) {
            throw std::runtime_error(settings_.text + ": cannot listen: " + e.code().message());
        }
        log::info("metrics.listening", {{"listen", settings_.text},
                                        {"address", entry.endpoint().address().to_string()},
                                        {"port", static_cast<unsigned>(settings_.port)},
                                        {"client_certificates", settings_.tls}});
    }
}

void metrics_server::stop_accepting() {
    for (auto& a : acceptors_) {
        a->stop();
    }
}

}  // namespace pwresetd::daemon
