#pragma once
// The portal API (API.md) between HTTP and the services: route table, scopes, JSON decoding
// and the mapping from service outcomes to status codes and error bodies. Knows nothing of
// sockets; http_server.cpp feeds it parsed requests and writes what it returns.
#include <boost/json/object.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "daemon/change_service.hpp"
#include "daemon/enrollment_service.hpp"
#include "daemon/health_monitor.hpp"
#include "daemon/json_body.hpp"
#include "daemon/messages.hpp"
#include "daemon/outcome.hpp"
#include "daemon/reset_service.hpp"
#include "daemon/response_floor.hpp"
#include "ldap/directory.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

enum class endpoint {
    health,
    reset_start,
    reset_challenge,
    reset_verify,
    reset_complete,
    reset_unlock,
    openapi,
    enroll_totp,
    enroll_totp_confirm,
    password_change,
    policy_rules,
    password_check,
    not_implemented,  // in API.md, arriving in a later version
};

struct route_spec;

struct route {
    endpoint target = endpoint::health;
    std::string param;  // {reset_id} / {enrollment_id}
    std::string scope;  // empty: no client authentication (health)
    bool has_body = false;
    const route_spec* spec = nullptr;  // its row in api::routes()
};

struct route_lookup {
    std::optional<route> found;
    std::string allow;  // when the path exists but not for this method: the Allow header
};

// The row of api::routes() for a request line. The path must be written exactly as in the
// table (no decoding, no case folding, no empty, dot or trailing segments; a query string is
// cut off), and a "{}" takes only an id in the shape the daemon issues (service_common.hpp).
route_lookup find_route(std::string_view method, std::string_view target);

struct api_response {
    unsigned status = 200;
    boost::json::object body;
    std::vector<std::pair<std::string, std::string>> headers;
    // Not to be sent before this (response_floor.hpp); the epoch: at once.
    std::chrono::steady_clock::time_point not_before{};
};

// {"error": code, "message": localized}
api_response error_reply(unsigned status, std::string_view code, language lang,
                         std::string_view detail = {});

// What the HTTP layer hands a routed request to, on a worker thread. `body` holds secrets
// and is wiped by the caller afterwards.
class request_handler {
public:
    virtual ~request_handler() = default;
    virtual api_response handle(const route& r, std::string_view body, const request_context& ctx,
                                language lang) = 0;
    // A reply the I/O thread may give at once, without a worker (it must not block), or
    // none: then handle() runs on a worker.
    virtual std::optional<api_response> answer_at_once(const route& /*r*/, language /*lang*/) {
        return std::nullopt;
    }
};

// What limits.per_ip_per_minute counts an address as: IPv6 per /64 (one host usually holds
// a whole /64), IPv4-mapped IPv6 as IPv4, anything else as given.
std::string ip_limit_address(std::string_view ip);

class api;

// One route of API.md: what the HTTP layer needs before the body (method, path, scope, whether
// a body may come), and what the API does with it: the handler reads the decoded body, calls
// the service and encodes its outcome; `floor` holds answers real and decoy requests give
// alike (`floored` statuses) back to their usual latency (response_floor.hpp).
struct route_spec {
    using handler = api_response (api::*)(const route&, field_reader&, const request_context&,
                                          language);
    std::string_view method;
    std::string_view path;  // "{}" stands for the one parameter
    endpoint target;
    std::string_view scope;  // empty: no client authentication; client_auth::any_client
    bool has_body = false;
    bool reads_json = false;  // the body is decoded before the handler runs
    handler handle = nullptr;
    response_floor api::*floor = nullptr;
    std::array<unsigned, 2> floored{};
};

// Every status `spec`'s route can answer (sorted): its own outcomes and those every route of
// its kind shares (400 and 431 before routing, 401/403/429 with client authentication, 413
// and 415 with a body, 500 and 503 everywhere). api/openapi.json lists exactly these (a
// unit test compares them); 404 and 405 belong to paths, not to routes.
std::vector<unsigned> route_statuses(const route_spec& spec);

class api final : public request_handler {
public:
    api(const config& cfg, const policy::password_policy& policy, reset_service& resets,
        enrollment_service& enrollments, change_service& changes, ldap::directory& directory,
        store::state_store& store, clock_fn clock = unix_now);

    // limits.per_ip_per_minute first (every route but health), then the route. A state
    // store that fails answers 503 state_unavailable.
    api_response handle(const route& r, std::string_view body, const request_context& ctx,
                        language lang) override;
    // GET /v1/health from the last directory ping (health_monitor.hpp).
    std::optional<api_response> answer_at_once(const route& r, language lang) override;
    // The directory's state once its first ping has finished (waits for it): startup
    // announces READY only after the directory has been tried.
    health_monitor::state await_directory() { return health_.await_known(); }
    // A reload's new api holds answers to the floors this one has learned.
    void inherit_timing(const api& older);

    // Every route, in the order an Allow header lists methods.
    static std::span<const route_spec> routes();

private:
    api_response run(const route_spec& spec, const route& r, std::string_view body,
                     const request_context& ctx, language lang);
    api_response health_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response not_implemented_route(const route& r, field_reader& in, const request_context& ctx,
                                       language lang);
    api_response openapi_route(const route& r, field_reader& in, const request_context& ctx,
                               language lang);
    api_response policy_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response start_route(const route& r, field_reader& in, const request_context& ctx,
                             language lang);
    api_response challenge_route(const route& r, field_reader& in, const request_context& ctx,
                                 language lang);
    api_response verify_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response complete_route(const route& r, field_reader& in, const request_context& ctx,
                                language lang);
    api_response unlock_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response enroll_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response confirm_route(const route& r, field_reader& in, const request_context& ctx,
                               language lang);
    api_response change_route(const route& r, field_reader& in, const request_context& ctx,
                              language lang);
    api_response check_route(const route& r, field_reader& in, const request_context& ctx,
                             language lang);
    std::optional<api_response> ip_limited(const request_context& ctx, language lang);
    static api_response health_reply(health_monitor::state state, language lang);

    const config& cfg_;
    const policy::password_policy& policy_;
    reset_service& resets_;
    enrollment_service& enrollments_;
    change_service& changes_;
    store::state_store& store_;
    clock_fn clock_;
    // A burst of health checks must not become a burst of directory searches.
    health_monitor health_;
    log::rate_limited ip_limited_log_;
    // Answers real and decoy requests give alike (response_floor.hpp).
    response_floor started_floor_;       // 201 of POST /v1/resets
    response_floor challenged_floor_;    // 202 of a challenge
    response_floor wrong_code_floor_;    // 401 of a verify
    response_floor wrong_change_floor_;  // 401/423 of a change
    response_floor wrong_enroll_floor_;  // 401/423 of an enrollment
};

}  // namespace pwresetd::daemon
