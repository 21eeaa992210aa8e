#pragma once
// Runs the daemon's real HTTP session (daemon/http_session.hpp) over Beast's in-memory test
// stream: the input arrives in reads of at most `chunk` bytes, then the client hangs up;
// returns every byte the session wrote. The routes answer from a recording handler, so the
// HTTP layer is exercised alone (framing, limits, authentication, routing, JSON decoding).
// Used by tests/unit/daemon/http_session_test.cpp and the fuzz target fuzz_http_session.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.hpp"
#include "daemon/api.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/http_session.hpp"
#include "daemon/worker_pool.hpp"

namespace pwresetd::testing {

inline constexpr std::string_view driver_api_key = "driver-test-key";

// Answers 200 {"route": N} for every routed request, after decoding the body as the API
// does (so bodies reach the JSON decoder), and remembers what reached it.
class recording_handler final : public daemon::request_handler {
public:
    daemon::api_response handle(const daemon::route& r, std::string_view body,
                                const daemon::request_context& ctx,
                                daemon::language lang) override {
        {
            const std::lock_guard lock(mutex_);
            calls_.push_back(std::string(body));
            ips_.push_back(ctx.remote_ip);
        }
        if (r.has_body) {
            const auto decoded = daemon::decode_body(body);
            if (!decoded.value) {
                return daemon::error_reply(400, "bad_request", lang, decoded.problem);
            }
        }
        daemon::api_response reply;
        reply.body = boost::json::object{{"route", static_cast<int>(r.target)}};
        return reply;
    }
    std::vector<std::string> calls() const {
        const std::lock_guard lock(mutex_);
        return calls_;
    }
    std::vector<std::string> ips() const {
        const std::lock_guard lock(mutex_);
        return ips_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> calls_;
    std::vector<std::string> ips_;
};

inline daemon::config driver_config() {
    daemon::config cfg;
    daemon::client_settings client;
    client.name = "portal";
    client.api_key_sha256 = crypto::sha256(driver_api_key);
    client.scopes = {"reset", "change", "enroll", "check"};
    cfg.clients.push_back(client);
    cfg.limits.max_body_bytes = 1024;
    return cfg;
}

class session_driver {
public:
    explicit session_driver(daemon::config cfg = driver_config())
        : cfg_(std::move(cfg)),
          tls_(boost::asio::ssl::context::tls_server),
          auth_(cfg_.clients),
          workers_(1, 8),
          set_{cfg_, tls_, handler_, auth_},
          shared_(std::shared_ptr<const daemon::serving_set>(&set_, [](const auto*) {}), workers_) {
    }

    std::string run(std::string_view input, std::size_t chunk) {
        namespace test = boost::beast::test;
        boost::asio::io_context ioc;
        test::stream server(ioc);
        test::stream client(ioc);
        server.connect(client);
        server.read_size(chunk == 0 ? 1 : chunk);
        server.append(input);
        server.close_remote();  // after the input, the client has hung up
        ++shared_.connections;
        std::make_shared<daemon::http_session<test::stream>>(shared_, shared_.current(),
                                                             "192.0.2.1", std::move(server))
            ->run();
        ioc.run();
        return std::string(client.str());
    }

    const recording_handler& handler() const { return handler_; }
    int open_connections() const { return shared_.connections.load(); }

private:
    daemon::config cfg_;
    boost::asio::ssl::context tls_;
    recording_handler handler_;
    daemon::client_auth auth_;
    daemon::worker_pool workers_;
    daemon::serving_set set_;
    daemon::server_shared shared_;
};

}  // namespace pwresetd::testing
