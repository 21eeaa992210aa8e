#pragma once
// One client connection (Boost.Beast), as a template over its stream: TLS over TCP in the
// daemon, a plain in-memory stream in the fuzzer (tests/fuzz/fuzz_http_session.cpp).
//
// What a client can rely on, and what it cannot make the daemon do:
// - The header block is read up to header_limit_bytes within limits.header_timeout_s and
//   checked before the parser sees it: obsolete line folding is refused (400).
// - A body is framed by one Content-Length or by exactly `Transfer-Encoding: chunked`;
//   anything else (xchunked, "chunked, identity", identity, several framings) is 400 and the
//   connection closes, so a body is never read as a second request (RFC 9112 6.1, 6.3).
// - The client is authenticated from the headers and the TLS client certificate before
//   routing (401 for every path but health), then the route's body limit is set before any body
//   byte is read: limits.max_body_bytes for routes with a body, 0 for the others. Nothing is
//   allocated in proportion to a declared length beyond that limit (Beast's string body reserves
//   Content-Length).
// - Blocking work goes to the worker pool; a full queue answers 503 at once. An exception
//   in a handler answers 500 and the connection goes on.
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/buffer_ref.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "daemon/api.hpp"
#include "daemon/certificate_subject.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon_metrics.hpp"
#include "daemon/unauthenticated_limit.hpp"
#include "daemon/worker_pool.hpp"

namespace pwresetd::daemon {

// What one configuration serves with: a reload (SIGHUP) builds a new set and swaps it in.
// A connection keeps the set it was accepted with for its TLS context; each request takes
// the newest set when its header arrives and keeps it until it is answered, so a revoked API
// key is refused on an old keep-alive connection and an in-flight request finishes with the
// services that started it.
struct serving_set {
    const config& cfg;
    boost::asio::ssl::context& tls;
    request_handler& routes;
    const client_auth& auth;
};

// What every connection shares; outlives all of them.
struct server_shared {
    server_shared(std::shared_ptr<const serving_set> first, worker_pool& pool)
        : workers(pool), current_(std::move(first)) {}
    server_shared(const server_shared&) = delete;
    server_shared& operator=(const server_shared&) = delete;

    std::shared_ptr<const serving_set> current() const {
        const std::lock_guard lock(mutex_);
        return current_;
    }
    // The old set lives on in the connections and requests that hold it.
    void replace(std::shared_ptr<const serving_set> next) {
        const std::lock_guard lock(mutex_);
        current_.swap(next);
    }

    worker_pool& workers;
    std::atomic<int> in_flight{0};            // requests admitted and not yet answered
    std::atomic<int> connections{0};          // open client connections (limits.max_connections)
    unauthenticated_limit unauthenticated{};  // per_ip_per_minute before authentication
    log::rate_limited unauthenticated_log{};  // an outsider can make these at will
    log::rate_limited overloaded_log{};       // and these (a flood of health checks)

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const serving_set> current_;
};

inline constexpr std::size_t header_limit_bytes = std::size_t{8} * 1024;

// Finds the end of a header block for asio::async_read_until: the blank line (CRLF CRLF),
// or LF LF, which the parser then refuses as a bad line ending.
struct header_end_match {
    template <class Iterator>
    std::pair<Iterator, bool> operator()(Iterator begin, Iterator end) const {
        for (Iterator it = begin; it != end; ++it) {
            if (*it != '\n') {
                continue;
            }
            Iterator next = it;
            if (++next == end) {
                return {it, false};  // look again from here when more arrives
            }
            if (*next == '\n') {
                return {++next, true};
            }
            if (*next == '\r') {
                Iterator after = next;
                if (++after == end) {
                    return {it, false};
                }
                if (*after == '\n') {
                    return {++after, true};
                }
            }
        }
        return {end, false};
    }
};

// Why a header block is refused before parsing, or "" (obsolete line folding).
std::string header_block_problem(std::string_view block);
// Why the body framing of a parsed request header is refused, or "".
std::string framing_problem(
    const boost::beast::http::request_parser<boost::beast::http::string_body>& parser);
// The last value of an X-Forwarded-For line as an IP address (a port or brackets dropped),
// or "" when it is not one.
std::string last_forwarded_for(std::string_view header);
bool is_json_media_type(std::string_view content_type);
// Whether the client certificate `ssl`'s handshake verified still chains to the trust anchors
// of `trust` and is valid now: a request on a connection accepted before a reload is checked
// against the reloaded tls.client_ca.
bool peer_still_trusted(SSL* ssl, SSL_CTX* trust);

}  // namespace pwresetd::daemon

template <>
struct boost::asio::is_match_condition<pwresetd::daemon::header_end_match> : std::true_type {};

namespace pwresetd::daemon {

namespace session_detail {
namespace beast = boost::beast;

template <class S>
inline constexpr bool is_tls = false;
template <class Next>
inline constexpr bool is_tls<beast::ssl_stream<Next>> = true;

inline void arm_timeout(beast::ssl_stream<beast::tcp_stream>& s,
                        std::chrono::steady_clock::duration d) {
    beast::get_lowest_layer(s).expires_after(d);
}
inline void arm_timeout(beast::tcp_stream& s, std::chrono::steady_clock::duration d) {
    s.expires_after(d);
}
template <class S>
void arm_timeout(S& /*stream*/, std::chrono::steady_clock::duration /*d*/) {}  // test streams

inline void close_transport(beast::ssl_stream<beast::tcp_stream>& s) {
    beast::error_code ignored;
    beast::get_lowest_layer(s).socket().shutdown(boost::asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(s).close();
}
inline void close_transport(beast::tcp_stream& s) {
    beast::error_code ignored;
    s.socket().shutdown(boost::asio::socket_base::shutdown_both, ignored);
    s.close();
}
template <class S>
void close_transport(S& s) {
    s.close();
}

}  // namespace session_detail

template <class Stream>
class http_session : public std::enable_shared_from_this<http_session<Stream>> {
    using self_type = http_session<Stream>;
    using error_code = boost::beast::error_code;
    using request = boost::beast::http::request<boost::beast::http::string_body>;
    using response = boost::beast::http::response<boost::beast::http::string_body>;

public:
    // The caller has counted the connection in shared.connections; the session uncounts it.
    // `accepted_with` is the set whose TLS context the stream was made with.
    template <class... StreamArgs>
    http_session(server_shared& shared, std::shared_ptr<const serving_set> accepted_with,
                 std::string peer_ip, StreamArgs&&... stream_args)
        : stream_(std::forward<StreamArgs>(stream_args)...),
          hold_(stream_.get_executor()),
          shared_(shared),
          connection_set_(std::move(accepted_with)),
          set_(connection_set_),
          socket_ip_(std::move(peer_ip)) {
        buffer_.max_size(header_limit_bytes);
        metrics_.connections.with({"api"}).inc();
    }
    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;
    ~http_session() {
        --shared_.connections;
        metrics_.connections.with({"api"}).dec();
    }

    void run() {
        boost::asio::dispatch(stream_.get_executor(),
                              boost::beast::bind_front_handler(&self_type::on_run, self()));
    }

private:
    std::shared_ptr<self_type> self() { return this->shared_from_this(); }

    std::chrono::seconds timeout() const {
        return std::chrono::seconds(set_->cfg.limits.header_timeout_s);
    }

    void on_run() {
        session_detail::arm_timeout(stream_, timeout());
        if constexpr (session_detail::is_tls<Stream>) {
            stream_.async_handshake(
                boost::asio::ssl::stream_base::server,
                boost::beast::bind_front_handler(&self_type::on_handshake, self()));
        } else {
            do_read_header();
        }
    }

    void on_handshake(error_code ec) {
        if (ec) {
            metrics_.tls_handshake_failures.with({"api"}).inc();
            log::debug("http.handshake_failed", {{"ip", socket_ip_}, {"error", ec.message()}});
            return;
        }
        if constexpr (session_detail::is_tls<Stream>) {
            // Sent only when tls.client_ca asked for one; the handshake has verified it.
            if (const X509* peer = SSL_get0_peer_certificate(stream_.native_handle())) {
                certificate_ = identity_of(peer);
                certificate_trusted_by_ = connection_set_;
            }
        }
        do_read_header();
    }

    // The verified client certificate for this request's set, or nullptr with `refusal` set
    // when the set's client CA no longer trusts it; nullptr when the client sent none or the
    // set asks for none (a reload dropped tls.client_ca: certificates count for nothing).
    const certified_identity* request_certificate(std::string_view& refusal) {
        if (!certificate_ || !set_->cfg.tls.client_ca) {
            return nullptr;
        }
        if constexpr (session_detail::is_tls<Stream>) {
            SSL* ssl = stream_.native_handle();
            if (certificate_trusted_by_ != set_) {
                if (!peer_still_trusted(ssl, set_->tls.native_handle())) {
                    refusal = "certificate_not_trusted";
                    return nullptr;
                }
                certificate_trusted_by_ = set_;
            }
            // A keep-alive connection can outlive its certificate.
            if (X509_cmp_current_time(X509_get0_notAfter(SSL_get0_peer_certificate(ssl))) <= 0) {
                refusal = "certificate_expired";
                return nullptr;
            }
            return &*certificate_;
        } else {
            return nullptr;
        }
    }

    void do_read_header() {
        parser_.emplace();
        parser_->header_limit(header_limit_bytes);
        // The body limit is set once the route is known (after authentication), so an
        // unauthenticated oversized request gets 401 and an authenticated one 413.
        parser_->body_limit(boost::none);
        client_ = nullptr;
        counted_route_ = nullptr;
        session_detail::arm_timeout(stream_, timeout());
        // By reference: Asio copies a dynamic buffer it is given by value.
        boost::asio::async_read_until(
            stream_, boost::beast::ref(buffer_), header_end_match{},
            boost::beast::bind_front_handler(&self_type::on_header_bytes, self()));
    }

    void on_header_bytes(error_code ec, std::size_t bytes) {
        namespace http = boost::beast::http;
        request_id_ = crypto::hex_encode(crypto::random_bytes(8));
        if (ec == boost::asio::error::not_found) {  // the buffer filled up without a blank line
            return send_early(error_reply(431, "headers_too_large", default_language));
        }
        if (ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated ||
            ec == http::error::end_of_stream) {
            return do_shutdown();
        }
        if (ec) {
            return;  // timeout (idle or too slow) or a broken connection: close without a word
        }
        const std::string_view block(static_cast<const char*>(buffer_.data().data()), bytes);
        if (auto problem = header_block_problem(block); !problem.empty()) {
            return send_early(error_reply(400, "bad_request", default_language, problem));
        }
        error_code parse_ec;
        const std::size_t used =
            parser_->put(boost::asio::buffer(block.data(), block.size()), parse_ec);
        buffer_.consume(used);
        if (parse_ec == http::error::header_limit) {
            return send_early(error_reply(431, "headers_too_large", default_language));
        }
        if (parse_ec || !parser_->is_header_done()) {
            return send_early(
                error_reply(400, "bad_request", default_language, "the HTTP request is malformed"));
        }
        on_header();
    }

    void on_header() {
        namespace http = boost::beast::http;
        set_ = shared_.current();
        const auto& req = parser_->get();
        lang_ = pick_language(req[http::field::accept_language]);
        if (auto problem = framing_problem(*parser_); !problem.empty()) {
            return send_early(error_reply(400, "bad_request", lang_, problem));
        }
        // Two credentials headers: a proxy reading the last one and the daemon the first would
        // see two different clients.
        if (req.count(http::field::authorization) > 1) {
            return send_early(
                error_reply(400, "bad_request", lang_, "more than one Authorization header"));
        }
        const auto lookup = find_route(req.method_string(), req.target());
        counted_route_ = lookup.found ? lookup.found->spec : nullptr;
        const bool public_route = lookup.found && lookup.found->scope.empty();

        // API.md: authentication comes before routing, so an unauthenticated caller learns
        // nothing about which paths exist.
        if (!public_route) {
            std::string_view refusal;
            const certified_identity* certificate = request_certificate(refusal);
            const auto who = refusal.empty()
                                 ? set_->auth.identify(req[http::field::authorization], certificate)
                                 : auth_result{nullptr, refusal};
            client_ = who.client;
            if (client_ == nullptr) {
                if (const auto wait =
                        shared_.unauthenticated.hit(socket_ip_, set_->cfg.limits.per_ip_per_minute);
                    wait > 0) {
                    auto reply = error_reply(429, "rate_limited", lang_);
                    reply.body["retry_after"] = wait;
                    reply.headers.emplace_back("Retry-After", std::to_string(wait));
                    return send_early(std::move(reply));
                }
                shared_.unauthenticated_log.write(
                    log::level::info, "http.unauthenticated",
                    {{"request_id", request_id_}, {"ip", socket_ip_}, {"reason", who.refusal}});
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
            // The last value of the last X-Forwarded-For line: a proxy that adds a line of its
            // own leaves the client's lines first.
            std::string_view forwarded;
            for (auto [it, end] = req.equal_range("X-Forwarded-For"); it != end; ++it) {
                forwarded = it->value();
            }
            if (auto xff = last_forwarded_for(forwarded); !xff.empty()) {
                remote_ip_ = std::move(xff);
            }
        }
        // The body limit holds before the first body byte: Beast's string body reserves the
        // declared Content-Length, so it must never see one above the limit.
        const std::size_t limit = route_.has_body ? set_->cfg.limits.max_body_bytes : 0;
        const auto length = parser_->content_length();
        if ((length && *length > limit) || (parser_->chunked() && limit == 0)) {
            return send_early(error_reply(413, "payload_too_large", lang_));
        }
        parser_->body_limit(limit);
        if (route_.has_body) {
            if (!is_json_media_type(req[http::field::content_type])) {
                return send_early(error_reply(415, "unsupported_media_type", lang_));
            }
            if (text::ascii_lower(req[http::field::expect]) == "100-continue") {
                continue_.emplace(http::status::continue_, req.version());
                return http::async_write(
                    stream_, *continue_,
                    boost::beast::bind_front_handler(&self_type::on_continue, self()));
            }
        }
        do_read_body();
    }

    void on_continue(error_code ec, std::size_t /*bytes*/) {
        continue_.reset();
        if (ec) {
            return;
        }
        do_read_body();
    }

    void do_read_body() {
        // The body may be larger than a header block; the header limit is back on for the
        // next request's header.
        buffer_.max_size(set_->cfg.limits.max_body_bytes + header_limit_bytes);
        session_detail::arm_timeout(stream_, timeout());
        boost::beast::http::async_read(
            stream_, buffer_, *parser_,
            boost::beast::bind_front_handler(&self_type::on_read_body, self()));
    }

    void on_read_body(error_code ec, std::size_t /*bytes*/) {
        namespace http = boost::beast::http;
        buffer_.max_size(std::max(header_limit_bytes, buffer_.size()));
        if (ec == http::error::body_limit) {
            return send_early(error_reply(413, "payload_too_large", lang_));
        }
        if (ec && ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
            ec != http::error::partial_message && ec != http::error::end_of_stream) {
            return send_early(
                error_reply(400, "bad_request", lang_, "the HTTP request body is malformed"));
        }
        if (ec) {
            return;
        }
        dispatch_to_worker();
    }

    void dispatch_to_worker() {
        auto req = std::make_shared<request>(parser_->release());
        keep_alive_ = req->keep_alive();
        // Health from the last ping: a flood of checks never takes a worker's place.
        if (auto at_once = set_->routes.answer_at_once(route_, lang_)) {
            return send(std::move(*at_once), keep_alive_, false);
        }
        request_context ctx{request_id_, client_ != nullptr ? client_->name : std::string{},
                            remote_ip_};
        // The guard keeps the I/O context running until the reply has been handed back.
        auto guard = boost::asio::make_work_guard(stream_.get_executor());
        const bool admitted = shared_.workers.try_submit([self = self(), set = set_, req,
                                                          route = route_, ctx = std::move(ctx),
                                                          lang = lang_,
                                                          guard = std::move(guard)]() mutable {
            api_response reply;
            try {
                reply = set->routes.handle(route, req->body(), ctx, lang);
            } catch (const std::exception& e) {
                log::error("api.exception", {{"request_id", ctx.request_id}, {"error", e.what()}});
                reply = error_reply(500, "internal", lang);
            } catch (...) {
                log::error("api.exception",
                           {{"request_id", ctx.request_id}, {"error", "unknown exception"}});
                reply = error_reply(500, "internal", lang);
            }
            wipe(req->body().data(), req->body().size());
            auto executor = self->stream_.get_executor();
            boost::asio::post(executor, [self = std::move(self), reply = std::move(reply),
                                         guard = std::move(guard)]() mutable {
                self->send_when_due(std::move(reply));
                guard.reset();
            });
        });
        if (admitted) {
            ++shared_.in_flight;
            metrics_.in_flight.with().inc();
        } else {
            wipe(req->body().data(), req->body().size());
            auto reply = error_reply(503, "overloaded", lang_);
            reply.headers.emplace_back("Retry-After", "1");
            shared_.overloaded_log.write(log::level::warning, "http.overloaded",
                                         {{"request_id", request_id_}});
            send(std::move(reply), keep_alive_, false);
        }
    }

    // A worker's reply, held back until its not_before (response_floor.hpp).
    void send_when_due(api_response reply) {
        if (reply.not_before <= std::chrono::steady_clock::now()) {
            return send(std::move(reply), keep_alive_, true);
        }
        hold_.expires_at(reply.not_before);
        hold_.async_wait([self = self(), reply = std::move(reply)](error_code) mutable {
            self->send(std::move(reply), self->keep_alive_, true);
        });
    }

    // An error decided from the headers alone: answer, then drain and close.
    void send_early(api_response reply) {
        draining_ = true;
        send(std::move(reply), false, false);
    }

    void send(api_response reply, bool keep_alive, bool counted) {
        namespace http = boost::beast::http;
        auto res = std::make_shared<response>(static_cast<http::status>(reply.status), 11);
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
        if (counted_route_ != nullptr) {
            metrics_.count_request(counted_route_->method, counted_route_->path, reply.status);
        } else {
            metrics_.count_request({}, {}, reply.status);
        }
        log::debug("http.reply", {{"request_id", request_id_},
                                  {"status", reply.status},
                                  {"client", client_ != nullptr ? client_->name : "-"}});
        session_detail::arm_timeout(stream_, timeout());
        http::async_write(stream_, *res, [self = self(), res, counted](error_code ec, std::size_t) {
            wipe(res->body().data(), res->body().size());
            if (counted) {
                --self->shared_.in_flight;
                self->metrics_.in_flight.with().dec();
            }
            self->on_write(ec, res->keep_alive());
        });
    }

    void on_write(error_code ec, bool keep_alive) {
        if (ec) {
            return;
        }
        if (draining_) {
            // One deadline for the whole drain: a client trickling bytes cannot extend it.
            session_detail::arm_timeout(stream_, drain_time);
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
        stream_.async_read_some(boost::asio::buffer(scratch_),
                                boost::beast::bind_front_handler(&self_type::on_drain, self()));
    }

    void on_drain(error_code ec, std::size_t bytes) {
        drained_ += bytes;
        if (ec || drained_ > drain_limit_bytes) {
            return do_shutdown();
        }
        do_drain();
    }

    void do_shutdown() {
        if constexpr (session_detail::is_tls<Stream>) {
            session_detail::arm_timeout(stream_, std::chrono::seconds(1));
            stream_.async_shutdown(
                [self = self()](error_code) { session_detail::close_transport(self->stream_); });
        } else {
            session_detail::close_transport(stream_);
        }
    }

    // After an early error reply, read and discard at most this much of an unwanted body,
    // for at most drain_time, so the client sees the reply instead of a connection reset.
    static constexpr std::size_t drain_limit_bytes = std::size_t{1024} * 1024;
    static constexpr auto drain_time = std::chrono::seconds(2);

    Stream stream_;
    boost::asio::steady_timer hold_;
    server_shared& shared_;
    std::shared_ptr<const serving_set> connection_set_;  // owns the TLS context
    std::shared_ptr<const serving_set> set_;             // the current request's
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    std::optional<boost::beast::http::response<boost::beast::http::empty_body>> continue_;
    const client_settings* client_ = nullptr;
    std::optional<certified_identity> certificate_;  // what the handshake's certificate says
    std::shared_ptr<const serving_set> certificate_trusted_by_;  // the set that last verified it
    route route_;
    const route_spec* counted_route_ = nullptr;  // the request's row, for the metrics
    daemon_metrics& metrics_ = daemon_metrics::get();
    language lang_ = default_language;
    std::string request_id_;
    std::string socket_ip_;
    std::string remote_ip_;
    bool keep_alive_ = false;
    bool draining_ = false;
    std::size_t drained_ = 0;
    std::array<char, 16384> scratch_{};
};

}  // namespace pwresetd::daemon
