#include "daemon/http_server.hpp"

#include <openssl/ssl.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <optional>
#include <stdexcept>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"

namespace pwresetd::daemon {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint32_t header_limit_bytes = 8 * 1024;
// After an early error reply, read and discard at most this much of an unwanted body, for
// at most drain_time, so the client sees the reply instead of a connection reset.
constexpr std::size_t drain_limit_bytes = 1024 * 1024;
constexpr auto drain_time = std::chrono::seconds(2);

bool is_json_media_type(std::string_view content_type) {
    // "application/json" with optional parameters (charset=utf-8), case-insensitive.
    const auto semi = content_type.find(';');
    std::string_view type = content_type.substr(0, semi);
    while (!type.empty() && type.back() == ' ') {
        type.remove_suffix(1);
    }
    return text::ascii_lower(type) == "application/json";
}

std::string last_forwarded_for(std::string_view header) {
    const auto comma = header.rfind(',');
    std::string_view last = comma == std::string_view::npos ? header : header.substr(comma + 1);
    while (!last.empty() && last.front() == ' ') {
        last.remove_prefix(1);
    }
    while (!last.empty() && last.back() == ' ') {
        last.remove_suffix(1);
    }
    // An address is short and printable; anything else is not trusted as one.
    if (last.empty() || last.size() > 64 || text::has_control_characters(last)) {
        return {};
    }
    return std::string(last);
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
    return ctx;
}

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket&& socket, server_shared& shared)
        : stream_(std::move(socket), shared.tls), shared_(shared) {}

    void run() {
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&session::on_run, shared_from_this()));
    }

private:
    std::chrono::seconds timeout() const {
        return std::chrono::seconds(shared_.cfg.limits.header_timeout_s);
    }

    void on_run() {
        beast::error_code ec;
        const auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
        socket_ip_ = ec ? std::string("-") : peer.address().to_string();
        beast::get_lowest_layer(stream_).expires_after(timeout());
        stream_.async_handshake(
            ssl::stream_base::server,
            beast::bind_front_handler(&session::on_handshake, shared_from_this()));
    }

    void on_handshake(beast::error_code ec) {
        if (ec) {
            log::debug("http.handshake_failed", {{"ip", socket_ip_}, {"error", ec.message()}});
            return;
        }
        do_read_header();
    }

    void do_read_header() {
        parser_.emplace();
        parser_->header_limit(header_limit_bytes);
        // Beast checks Content-Length against body_limit while parsing the header; the limit
        // is set once the client is authenticated, so an unauthenticated oversized request
        // still gets 401 and an authenticated one 413, never a generic parse error.
        parser_->body_limit(boost::none);
        client_ = nullptr;
        beast::get_lowest_layer(stream_).expires_after(timeout());
        http::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&session::on_read_header, shared_from_this()));
    }

    void on_read_header(beast::error_code ec, std::size_t /*bytes*/) {
        request_id_ = crypto::hex_encode(crypto::random_bytes(8));
        if (ec == http::error::end_of_stream || ec == net::error::eof ||
            ec == ssl::error::stream_truncated) {
            return do_shutdown();
        }
        if (ec == http::error::header_limit) {
            return send_early(error_reply(431, "headers_too_large", default_language));
        }
        if (ec == beast::error::timeout) {
            return;  // idle or too slow: close without a word
        }
        if (ec) {
            const bool malformed =
                ec.category() == http::make_error_code(http::error::bad_target).category() &&
                ec != http::error::partial_message;
            if (malformed) {
                return send_early(error_reply(400, "bad_request", default_language,
                                              "the HTTP request is malformed"));
            }
            return;
        }

        const auto& req = parser_->get();
        lang_ = pick_language(req[http::field::accept_language]);
        const auto lookup = find_route(req.method_string(), req.target());
        const bool public_route = lookup.found && lookup.found->scope.empty();

        // API.md: authentication comes before routing, so an unauthenticated caller learns
        // nothing about which paths exist.
        if (!public_route) {
            client_ = shared_.auth.authenticate(req[http::field::authorization]);
            if (client_ == nullptr) {
                log::info("http.unauthenticated",
                          {{"request_id", request_id_}, {"ip", socket_ip_}});
                auto reply = error_reply(401, "unauthenticated", lang_);
                reply.headers.emplace_back("WWW-Authenticate", "Bearer");
                return send_early(std::move(reply));
            }
        }
        if (!lookup.found) {
            if (!lookup.allow.empty()) {
                auto reply = error_reply(405, "method_not_allowed", lang_);
                reply.headers.emplace_back("Allow", lookup.allow);
                return send_early(std::move(reply));
            }
            return send_early(error_reply(404, "not_found", lang_));
        }
        route_ = *lookup.found;
        if (client_ != nullptr && !client_auth::has_scope(*client_, route_.scope)) {
            return send_early(error_reply(403, "forbidden", lang_));
        }
        remote_ip_ = socket_ip_;
        if (client_ != nullptr) {
            if (auto xff = last_forwarded_for(req["X-Forwarded-For"]); !xff.empty()) {
                remote_ip_ = std::move(xff);
            }
        }
        if (route_.has_body) {
            if (!is_json_media_type(req[http::field::content_type])) {
                return send_early(error_reply(415, "unsupported_media_type", lang_));
            }
            const auto length = parser_->content_length();
            if (length && *length > shared_.cfg.limits.max_body_bytes) {
                return send_early(error_reply(413, "payload_too_large", lang_));
            }
            parser_->body_limit(shared_.cfg.limits.max_body_bytes);
            if (text::ascii_lower(req[http::field::expect]) == "100-continue") {
                continue_.emplace(http::status::continue_, req.version());
                return http::async_write(
                    stream_, *continue_,
                    beast::bind_front_handler(&session::on_continue, shared_from_this()));
            }
        }
        do_read_body();
    }

    void on_continue(beast::error_code ec, std::size_t /*bytes*/) {
        continue_.reset();
        if (ec) {
            return;
        }
        do_read_body();
    }

    void do_read_body() {
        beast::get_lowest_layer(stream_).expires_after(timeout());
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&session::on_read_body, shared_from_this()));
    }

    void on_read_body(beast::error_code ec, std::size_t /*bytes*/) {
        if (ec == http::error::body_limit) {
            return send_early(error_reply(413, "payload_too_large", lang_));
        }
        if (ec) {
            return;
        }
        dispatch_to_worker();
    }

    void dispatch_to_worker() {
        auto req = std::make_shared<http::request<http::string_body>>(parser_->release());
        keep_alive_ = req->keep_alive();
        request_context ctx{request_id_, client_ != nullptr ? client_->name : std::string{},
                            remote_ip_};
        const bool admitted = shared_.workers.try_submit([self = shared_from_this(), req,
                                                          route = route_, ctx = std::move(ctx),
                                                          lang = lang_]() mutable {
            api_response reply;
            try {
                reply = self->shared_.routes.handle(route, req->body(), ctx, lang);
            } catch (const std::exception& e) {
                log::error("api.exception", {{"request_id", ctx.request_id}, {"error", e.what()}});
                reply = error_reply(500, "internal", lang);
            }
            wipe(req->body().data(), req->body().size());
            net::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
                self->send(std::move(reply), self->keep_alive_, true);
            });
        });
        if (admitted) {
            ++shared_.in_flight;
        } else {
            wipe(req->body().data(), req->body().size());
            auto reply = error_reply(503, "overloaded", lang_);
            reply.headers.emplace_back("Retry-After", "1");
            log::warning("http.overloaded", {{"request_id", request_id_}});
            send(std::move(reply), keep_alive_, false);
        }
    }

    // An error decided from the headers alone: answer, then drain and close.
    void send_early(api_response reply) {
        draining_ = true;
        send(std::move(reply), false, false);
    }

    void send(api_response reply, bool keep_alive, bool counted) {
        auto res = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(reply.status), 11);
        res->set(http::field::server, "pwresetd");
        res->set(http::field::content_type, "application/json");
        res->set(http::field::cache_control, "no-store");
        res->set("X-Request-Id", request_id_);
        res->set("X-Content-Type-Options", "nosniff");
        for (const auto& [name, value] : reply.headers) {
            res->set(name, value);
        }
        res->body() = boost::json::serialize(reply.body);
        res->keep_alive(keep_alive);
        res->prepare_payload();
        log::debug("http.reply", {{"request_id", request_id_},
                                  {"status", reply.status},
                                  {"client", client_ != nullptr ? client_->name : "-"}});
        beast::get_lowest_layer(stream_).expires_after(timeout());
        http::async_write(
            stream_, *res,
            [self = shared_from_this(), res, counted](beast::error_code ec, std::size_t) {
                wipe(res->body().data(), res->body().size());
                if (counted) {
                    --self->shared_.in_flight;
                }
                self->on_write(ec, res->keep_alive());
            });
    }

    void on_write(beast::error_code ec, bool keep_alive) {
        if (ec) {
            return;
        }
        if (draining_) {
            return do_drain();
        }
        if (!keep_alive) {
            return do_shutdown();
        }
        // Nothing pipelined: wipe the read buffer, which held the last body.
        if (buffer_.size() == 0) {
            auto space = buffer_.prepare(buffer_.capacity());
            wipe(space.data(), space.size());
        }
        do_read_header();
    }

    void do_drain() {
        beast::get_lowest_layer(stream_).expires_after(drain_time);
        stream_.async_read_some(net::buffer(scratch_),
                                beast::bind_front_handler(&session::on_drain, shared_from_this()));
    }

    void on_drain(beast::error_code ec, std::size_t bytes) {
        drained_ += bytes;
        if (ec || drained_ > drain_limit_bytes) {
            return do_shutdown();
        }
        do_drain();
    }

    void do_shutdown() {
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(1));
        stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
            beast::error_code ignored;
            beast::get_lowest_layer(self->stream_)
                .socket()
                .shutdown(tcp::socket::shutdown_both, ignored);
            beast::get_lowest_layer(self->stream_).close();
        });
    }

    beast::ssl_stream<beast::tcp_stream> stream_;
    server_shared& shared_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    const client_settings* client_ = nullptr;
    route route_;
    language lang_ = default_language;
    std::string request_id_;
    std::string socket_ip_;
    std::string remote_ip_;
    bool keep_alive_ = false;
    bool draining_ = false;
    std::size_t drained_ = 0;
    std::array<char, 16384> scratch_{};
};

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(net::io_context& ioc, const tcp::endpoint& endpoint, server_shared& shared)
        : ioc_(ioc), acceptor_(net::make_strand(ioc)), shared_(shared) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        if (endpoint.address().is_v6()) {
            acceptor_.set_option(net::ip::v6_only(true));
        }
        acceptor_.bind(endpoint);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }

    void run() { do_accept(); }

    void stop() {
        net::post(acceptor_.get_executor(), [self = shared_from_this()] {
            beast::error_code ignored;
            self->acceptor_.close(ignored);
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
        if (!ec) {
            std::make_shared<session>(std::move(socket), shared_)->run();
        } else {
            log::warning("http.accept_failed", {{"error", ec.message()}});
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
    server_shared& shared_;
};

http_server::http_server(net::io_context& ioc, server_shared& shared)
    : ioc_(ioc), shared_(shared) {}

http_server::~http_server() = default;

void http_server::listen() {
    for (const auto& ep : shared_.cfg.listen) {
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

void http_server::stop_accepting() {
    for (auto& l : listeners_) {
        l->stop();
    }
}

}  // namespace pwresetd::daemon
