#include "daemon/api.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <string>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/secret.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/openapi_document.hpp"
#include "daemon/service_common.hpp"

namespace pwresetd::daemon {
namespace json = boost::json;
namespace {

// The path's segments between single slashes, as they are: "/v1//resets" has an empty one,
// "/v1/policy/" an empty last one. Nothing is decoded, folded or dropped.
std::vector<std::string_view> path_segments(std::string_view path) {
    std::vector<std::string_view> parts;
    if (path.empty() || path.front() != '/') {
        return parts;  // "*", "https://host/v1/..." (absolute form) and the like match nothing
    }
    path.remove_prefix(1);
    for (;;) {
        const auto slash = path.find('/');
        parts.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) {
            return parts;
        }
        path.remove_prefix(slash + 1);
    }
}

// Whether a path segment is an id the daemon could have issued for the "{}" that follows
// `before` in the route table: a reset id under resets/, an enrollment id after a method.
// A "{}" anywhere else takes nothing (tests/unit/daemon/api_test.cpp walks the table).
bool issued_id_for(std::string_view before, std::string_view segment) {
    if (before == "resets") {
        return issued_opaque_id(segment);
    }
    if (before == "totp" || before == "email" || before == "sms") {
        return issued_enrollment_id(segment);
    }
    return false;
}

json::array methods_json(const std::vector<method_offer>& methods) {
    json::array out;
    for (const auto& m : methods) {
        json::object o{{"method", m.method}};
        if (!m.hint.empty()) {
            o["hint"] = m.hint;
        }
        out.push_back(std::move(o));
    }
    return out;
}

api_response failure_reply(const failure& f, language lang) {
    struct mapping {
        failure_code code;
        unsigned status;
        std::string_view error;
    };
    static constexpr std::array table{
        mapping{failure_code::bad_request, 400, "bad_request"},
        mapping{failure_code::invalid_code, 401, "invalid_code"},
        mapping{failure_code::invalid_credentials, 401, "invalid_credentials"},
        mapping{failure_code::verification_required, 403, "verification_required"},
        mapping{failure_code::reset_expired, 410, "reset_expired"},
        mapping{failure_code::enrollment_expired, 410, "enrollment_expired"},
        mapping{failure_code::password_rejected, 422, "password_rejected"},
        mapping{failure_code::locked, 423, "locked"},
        mapping{failure_code::rate_limited, 429, "rate_limited"},
        mapping{failure_code::factor_proof_required, 403, "factor_proof_required"},
        mapping{failure_code::unlock_disabled, 403, "unlock_disabled"},
        mapping{failure_code::directory_unavailable, 503, "directory_unavailable"},
        mapping{failure_code::state_unavailable, 503, "state_unavailable"},
        mapping{failure_code::internal, 500, "internal"},
    };
    mapping m = table.back();
    for (const auto& row : table) {
        if (row.code == f.code) {
            m = row;
        }
    }
    auto reply = error_reply(m.status, m.error, lang,
                             f.code == failure_code::bad_request ? f.detail : std::string_view{});
    switch (f.code) {
        case failure_code::locked:
            // Password endpoints (change, enrollment): one message whatever locked it.
            if (f.detail == "password") {
                reply.body["message"] = message_for_error("locked_in_directory", lang);
            }
            reply.body["retry_after"] = f.retry_after;
            reply.headers.emplace_back("Retry-After", std::to_string(f.retry_after));
            break;
        case failure_code::rate_limited:
            if (f.detail == "codes") {
                reply.body["message"] = message_for_error("codes_limited", lang);
            }
            reply.body["retry_after"] = f.retry_after;
            reply.headers.emplace_back("Retry-After", std::to_string(f.retry_after));
            break;
        case failure_code::verification_required:
            reply.body["remaining_methods"] = f.remaining_methods;
            break;
        case failure_code::password_rejected: {
            json::array violations;
            for (const auto& v : f.violations) {
                violations.push_back(
                    json::object{{"rule", v.rule},
                                 {"message", message_for_rule(v.rule, v.value, v.detail, lang)}});
            }
            reply.body["violations"] = std::move(violations);
            break;
        }
        case failure_code::directory_unavailable:
            reply.headers.emplace_back("Retry-After", "30");
            break;
        case failure_code::state_unavailable:
            reply.headers.emplace_back("Retry-After", "5");
            break;
        default:
            break;
    }
    return reply;
}

}  // namespace

route_lookup find_route(std::string_view method, std::string_view target) {
    // Exact match, segment by segment, case included: no percent-decoding, no dot segments,
    // no empty segments, no trailing slash, no ";params", no backslashes. Only a query string
    // is cut off (no route reads one).
    const auto parts = path_segments(target.substr(0, target.find('?')));
    route_lookup out;
    for (const auto& spec : api::routes()) {
        const auto pattern = path_segments(spec.path);
        if (pattern.size() != parts.size()) {
            continue;
        }
        std::string param;
        bool same = true;
        for (std::size_t i = 0; i < parts.size() && same; ++i) {
            if (pattern[i] == "{}") {
                same = i > 0 && issued_id_for(pattern[i - 1], parts[i]);
                param = std::string(parts[i]);
            } else {
                same = pattern[i] == parts[i];
            }
        }
        if (!same) {
            continue;
        }
        if (spec.method == method) {
            out.found =
                route{spec.target, std::move(param), std::string(spec.scope), spec.has_body, &spec};
            out.allow.clear();
            return out;
        }
        out.allow += out.allow.empty() ? "" : ", ";
        out.allow += spec.method;
    }
    return out;
}

std::vector<unsigned> route_statuses(const route_spec& spec) {
    std::vector<unsigned> out;
    switch (spec.target) {
        case endpoint::health:
            out = {200};
            break;
        case endpoint::reset_start:
            out = {201};
            break;
        case endpoint::reset_challenge:
            out = {202, 410, 423};
            break;
        case endpoint::reset_verify:
            out = {200, 410, 423};
            break;
        case endpoint::reset_complete:
            out = {200, 410, 422};
            break;
        case endpoint::reset_unlock:
            out = {200, 410};
            break;
        case endpoint::enroll_totp:
            out = {201, 423};
            break;
        case endpoint::enroll_totp_confirm:
            out = {200, 410};
            break;
        case endpoint::password_change:
            out = {200, 422, 423};
            break;
        case endpoint::policy_rules:
        case endpoint::password_check:
        case endpoint::openapi:
            out = {200};
            break;
        case endpoint::not_implemented:
            out = {501};
            break;
    }
    out.insert(out.end(), {400, 431, 500, 503});
    if (!spec.scope.empty()) {
        out.insert(out.end(), {401, 403, 429});
    }
    if (spec.has_body) {
        out.insert(out.end(), {413, 415});
    }
    // Strict routing: a {} that is not an id of the shape the daemon issues is not a path.
    if (spec.path.find("{}") != std::string_view::npos) {
        out.push_back(404);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

api_response error_reply(unsigned status, std::string_view code, language lang,
                         std::string_view detail) {
    api_response r;
    r.status = status;
    std::string message = message_for_error(code, lang);
    if (!detail.empty()) {
        message.pop_back();  // the final period
        message += ": ";
        message += detail;
        message += '.';
    }
    r.body = json::object{{"error", code}, {"message", message}};
    return r;
}

std::string ip_limit_address(std::string_view ip) {
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(std::string(ip), ec);
    if (ec) {
        return std::string(ip);
    }
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
    }
    if (address.is_v6()) {
        auto bytes = address.to_v6().to_bytes();
        std::fill(bytes.begin() + 8, bytes.end(), 0);
        return boost::asio::ip::address_v6(bytes).to_string() + "/64";
    }
    return address.to_string();
}

api::api(const config& cfg, const policy::password_policy& policy, reset_service& resets,
         enrollment_service& enrollments, change_service& changes, ldap::directory& directory,
         store::state_store& store, clock_fn clock)
    : cfg_(cfg),
      policy_(policy),
      resets_(resets),
      enrollments_(enrollments),
      changes_(changes),
      store_(store),
      clock_(std::move(clock)),
      health_(directory) {}

void api::inherit_timing(const api& older) {
    for (const auto& spec : routes()) {
        if (spec.floor != nullptr) {
            (this->*spec.floor).inherit(older.*spec.floor);
        }
    }
}

api_response api::health_reply(health_monitor::state state, language lang) {
    api_response r;
    if (state == health_monitor::state::healthy) {
        r.body = json::object{{"status", "ok"}};
        return r;
    }
    r.status = 503;
    r.body = json::object{{"status", "degraded"},
                          {"error", "directory_unavailable"},
                          {"message", message_for_error("directory_unavailable", lang)}};
    return r;
}

std::optional<api_response> api::answer_at_once(const route& r, language lang) {
    if (r.target != endpoint::health) {
        return std::nullopt;
    }
    const auto state = health_.current();
    if (state == health_monitor::state::unknown) {
        return std::nullopt;  // a worker waits for the first ping
    }
    return health_reply(state, lang);
}

std::optional<api_response> api::ip_limited(const request_context& ctx, language lang) {
    const std::int64_t now = clock_();
    const auto hit = store_.hit_window("ip:" + crypto::sha256_hex(ip_limit_address(ctx.remote_ip)),
                                       now, 60, cfg_.limits.per_ip_per_minute);
    if (hit.allowed) {
        return std::nullopt;
    }
    ip_limited_log_.write(log::level::info, "http.ip_limited",
                          {{"request_id", ctx.request_id}, {"ip", ctx.remote_ip}});
    auto f = fail(failure_code::rate_limited);
    f.retry_after = std::max<std::int64_t>(1, hit.resets_at - now);
    return failure_reply(f, lang);
}

// The portal API of API.md, one row per route. A row's handler reads the decoded body,
// calls the service and encodes its outcome; answers real and decoy requests give alike
// leave no earlier than their floor (response_floor.hpp).
std::span<const route_spec> api::routes() {
    static const std::array table{
        route_spec{"GET", "/v1/health", endpoint::health, "", false, false, &api::health_route},
        route_spec{"POST",
                   "/v1/resets",
                   endpoint::reset_start,
                   "reset",
                   true,
                   true,
                   &api::start_route,
                   &api::started_floor_,
                   {201}},
        route_spec{"POST",
                   "/v1/resets/{}/challenge",
                   endpoint::reset_challenge,
                   "reset",
                   true,
                   true,
                   &api::challenge_route,
                   &api::challenged_floor_,
                   {202}},
        route_spec{"POST",
                   "/v1/resets/{}/verify",
                   endpoint::reset_verify,
                   "reset",
                   true,
                   true,
                   &api::verify_route,
                   &api::wrong_code_floor_,
                   {401}},
        route_spec{"POST", "/v1/resets/{}/complete", endpoint::reset_complete, "reset", true, true,
                   &api::complete_route},
        route_spec{"POST", "/v1/resets/{}/unlock", endpoint::reset_unlock, "reset", true, true,
                   &api::unlock_route},
        route_spec{"POST", "/v1/enrollments", endpoint::not_implemented, "enroll", true, false,
                   &api::not_implemented_route},
        route_spec{"POST",
                   "/v1/enrollments/totp",
                   endpoint::enroll_totp,
                   "enroll",
                   true,
                   true,
                   &api::enroll_route,
                   &api::wrong_enroll_floor_,
                   {401, 423}},
        route_spec{"DELETE", "/v1/enrollments/totp", endpoint::not_implemented, "enroll", true,
                   false, &api::not_implemented_route},
        route_spec{"POST", "/v1/enrollments/totp/{}/confirm", endpoint::enroll_totp_confirm,
                   "enroll", true, true, &api::confirm_route},
        route_spec{"POST",
                   "/v1/password/change",
                   endpoint::password_change,
                   "change",
                   true,
                   true,
                   &api::change_route,
                   &api::wrong_change_floor_,
                   {401, 423}},
        route_spec{"POST", "/v1/password/check", endpoint::password_check, "check", true, true,
                   &api::check_route},
        route_spec{"GET", "/v1/policy", endpoint::policy_rules, "check", false, false,
                   &api::policy_route},
        route_spec{"GET", "/v1/openapi.json", endpoint::openapi, client_auth::any_client, false,
                   false, &api::openapi_route},
    };
    return table;
}

api_response api::handle(const route& r, std::string_view body, const request_context& ctx,
                         language lang) {
    const auto routes = api::routes();
    const route_spec* spec = r.spec;
    if (spec == nullptr) {  // a route made by hand (tests): its endpoint's first row
        const auto row = std::find_if(routes.begin(), routes.end(),
                                      [&](const route_spec& s) { return s.target == r.target; });
        spec = row == routes.end() ? nullptr : &*row;
    }
    if (spec == nullptr) {
        log::error("api.unrouted", {{"request_id", ctx.request_id}});
        return error_reply(500, "internal", lang);
    }
    if (spec->target == endpoint::health) {  // never limited, never waits for the state
        return run(*spec, r, body, ctx, lang);
    }
    try {
        if (auto limited = ip_limited(ctx, lang)) {
            return std::move(*limited);
        }
        const auto taken_up = response_floor::clock::now();
        api_response reply = run(*spec, r, body, ctx, lang);
        if (spec->floor != nullptr && std::find(spec->floored.begin(), spec->floored.end(),
                                                reply.status) != spec->floored.end()) {
            reply.not_before =
                taken_up + (this->*spec->floor).record(response_floor::clock::now() - taken_up);
        }
        return reply;
    } catch (const store::store_error& e) {
        log::error("state.unavailable", {{"request_id", ctx.request_id}, {"error", e.what()}});
        auto reply = error_reply(503, "state_unavailable", lang);
        reply.headers.emplace_back("Retry-After", "5");
        return reply;
    }
}

api_response api::run(const route_spec& spec, const route& r, std::string_view body,
                      const request_context& ctx, language lang) {
    if (!spec.reads_json) {
        static const json::object nothing;
        field_reader none{nothing, {}};
        return (this->*spec.handle)(r, none, ctx, lang);
    }
    const decoded_body decoded = decode_body(body);
    if (!decoded.value) {
        return error_reply(400, "bad_request", lang, decoded.problem);
    }
    field_reader in{decoded.value->get_object(), {}};
    return (this->*spec.handle)(r, in, ctx, lang);
}

namespace {

// The reply for a service outcome: the failure's, or `encode(value)` with `status`.
template <typename T, typename Encode>
api_response reply_for(outcome<T>& result, language lang, unsigned status, Encode encode) {
    if (auto* f = std::get_if<failure>(&result)) {
        return failure_reply(*f, lang);
    }
    api_response reply;
    reply.status = status;
    reply.body = encode(std::get<T>(result));
    return reply;
}

api_response bad_request(const field_reader& in, language lang) {
    return error_reply(400, "bad_request", lang, in.problem);
}

}  // namespace

api_response api::health_route(const route& /*r*/, field_reader& /*in*/,
                               const request_context& /*ctx*/, language lang) {
    return health_reply(health_.await_known(), lang);
}

api_response api::not_implemented_route(const route& /*r*/, field_reader& /*in*/,
                                        const request_context& /*ctx*/, language lang) {
    return error_reply(501, "not_implemented", lang);
}

api_response api::openapi_route(const route& /*r*/, field_reader& /*in*/,
                                const request_context& /*ctx*/, language /*lang*/) {
    static const json::object document = json::parse(openapi_document()).as_object();
    api_response reply;
    reply.body = document;
    return reply;
}

api_response api::policy_route(const route& /*r*/, field_reader& /*in*/,
                               const request_context& /*ctx*/, language lang) {
    json::array rules;
    for (const auto& rule : policy_.rules()) {
        json::object o{{"rule", rule.rule}};
        if (rule.value) {
            o["value"] = *rule.value;
        }
        o["message"] = message_for_rule(rule.rule, rule.value, "", lang);
        rules.push_back(std::move(o));
    }
    api_response reply;
    reply.body = json::object{{"rules", std::move(rules)}};
    return reply;
}

api_response api::start_route(const route& /*r*/, field_reader& in, const request_context& ctx,
                              language lang) {
    const auto username = in.string("username");
    if (!username) {
        return bad_request(in, lang);
    }
    auto result = resets_.start(ctx, *username);
    return reply_for(result, lang, 201, [](const reset_started& ok) {
        return json::object{{"reset_id", ok.reset_id},
                            {"expires_in", ok.expires_in},
                            {"methods", methods_json(ok.methods)},
                            {"required_methods", ok.required_methods}};
    });
}

api_response api::challenge_route(const route& r, field_reader& in, const request_context& ctx,
                                  language lang) {
    const auto method = in.string("method");
    if (!method) {
        return bad_request(in, lang);
    }
    auto result = resets_.challenge(ctx, r.param, *method, lang);
    return reply_for(result, lang, 202, [](const reset_challenged& ok) {
        return json::object{{"method", ok.method}, {"expires_in", ok.expires_in}};
    });
}

api_response api::verify_route(const route& r, field_reader& in, const request_context& ctx,
                               language lang) {
    const auto method = in.string("method");
    const auto code = in.string("code");
    if (!method || !code) {
        return bad_request(in, lang);
    }
    auto result = resets_.verify(ctx, r.param, *method, *code);
    return reply_for(result, lang, 200, [](const reset_verified& ok) {
        json::array verified;
        for (const auto& m : ok.verified_methods) {
            verified.emplace_back(m);
        }
        return json::object{{"verified_methods", std::move(verified)},
                            {"remaining_methods", ok.remaining_methods}};
    });
}

api_response api::complete_route(const route& r, field_reader& in, const request_context& ctx,
                                 language lang) {
    const auto password = in.string("new_password");
    if (!password) {
        return bad_request(in, lang);
    }
    const secret new_password(*password);
    auto result = resets_.complete(ctx, r.param, new_password);
    return reply_for(result, lang, 200, [](const reset_completed& ok) {
        return json::object{{"status", "password_reset"}, {"unlocked", ok.unlocked}};
    });
}

api_response api::unlock_route(const route& r, field_reader& /*in*/, const request_context& ctx,
                               language lang) {
    // The body is {} (a JSON object, checked by run()); no field is read.
    auto result = resets_.unlock(ctx, r.param);
    return reply_for(result, lang, 200, [](const reset_unlocked&) {
        return json::object{{"status", "unlocked"}};
    });
}

api_response api::enroll_route(const route& /*r*/, field_reader& in, const request_context& ctx,
                               language lang) {
    const auto username = in.string("username");
    const auto password = in.string("current_password");
    std::optional<std::string_view> current_code;
    if (!username || !password || !in.optional_string("current_code", current_code)) {
        return bad_request(in, lang);
    }
    const secret current(*password);
    auto result = enrollments_.start_totp(ctx, *username, current, current_code);
    return reply_for(result, lang, 201, [](const totp_enrollment_started& ok) {
        return json::object{{"enrollment_id", ok.enrollment_id},
                            {"secret", ok.secret_base32},
                            {"otpauth_uri", ok.otpauth_uri}};
    });
}

api_response api::confirm_route(const route& r, field_reader& in, const request_context& ctx,
                                language lang) {
    const auto code = in.string("code");
    if (!code) {
        return bad_request(in, lang);
    }
    auto result = enrollments_.confirm_totp(ctx, r.param, *code);
    return reply_for(result, lang, 200, [](const totp_enrollment_confirmed& ok) {
        // The recovery codes are shown this once; only their hashes are kept.
        json::array codes;
        for (const auto& c : ok.recovery_codes) {
            codes.emplace_back(c.view());
        }
        return json::object{{"status", "enrolled"}, {"recovery_codes", std::move(codes)}};
    });
}

api_response api::change_route(const route& /*r*/, field_reader& in, const request_context& ctx,
                               language lang) {
    const auto username = in.string("username");
    const auto current = in.string("current_password");
    const auto next = in.string("new_password");
    if (!username || !current || !next) {
        return bad_request(in, lang);
    }
    const secret current_password(*current);
    const secret new_password(*next);
    auto result = changes_.change(ctx, *username, current_password, new_password);
    return reply_for(result, lang, 200, [](bool) {
        return json::object{{"status", "password_changed"}};
    });
}

api_response api::check_route(const route& /*r*/, field_reader& in, const request_context& /*ctx*/,
                              language lang) {
    // The directory is never asked: the answer reveals nothing about accounts.
    const auto password = in.string("password");
    std::optional<std::string_view> username;
    std::optional<std::string_view> display_name;
    (void)in.optional_string("username", username);
    (void)in.optional_string("display_name", display_name);
    if (!password || !in.problem.empty()) {
        return bad_request(in, lang);
    }
    const secret candidate(*password);
    json::array violations;
    if (const auto refused =
            policy_failure(policy_, candidate, username.value_or(""), display_name.value_or(""))) {
        for (const auto& v : refused->violations) {
            violations.push_back(json::object{
                {"rule", v.rule}, {"message", message_for_rule(v.rule, v.value, "", lang)}});
        }
    }
    api_response reply;
    reply.body =
        json::object{{"acceptable", violations.empty()}, {"violations", std::move(violations)}};
    return reply;
}

}  // namespace pwresetd::daemon
