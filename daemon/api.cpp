#include "daemon/api.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/memory_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cmath>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/secret.hpp"

namespace pwresetd::daemon {
namespace json = boost::json;
namespace {

// Request bodies carry passwords and codes. Parsing into memory that is wiped on release
// keeps them from lingering in freed heap blocks.
// Boost.JSON 1.81 may free a block with another alignment than it asked for (ASan:
// new-delete-type-mismatch), so every block uses the default new alignment, which covers
// everything Boost.JSON stores.
class wiping_resource final : public json::memory_resource {
    void* do_allocate(std::size_t n, std::size_t align) override {
        if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            throw std::bad_alloc();
        }
        return ::operator new(n);
    }
    void do_deallocate(void* p, std::size_t n, std::size_t /*align*/) override {
        wipe(p, n);
        ::operator delete(p);
    }
    [[nodiscard]] bool do_is_equal(const json::memory_resource& other) const noexcept override {
        return this == &other;
    }
};

// A SAX pass that only looks at keys: refuses a second occurrence of a key in one object.
// Values are never copied (they may be passwords).
class duplicate_key_check {
public:
    static constexpr std::size_t max_object_size = 1024;
    static constexpr std::size_t max_array_size = 1024;
    static constexpr std::size_t max_key_size = 1024;
    static constexpr std::size_t max_string_size = std::size_t(-1);

    bool duplicate = false;
    bool out_of_range = false;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) {
        objects_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&) {
        objects_.pop_back();
        return true;
    }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
    bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&) {
        key_.append(part.data(), part.size());
        return true;
    }
    bool on_key(json::string_view part, std::size_t, boost::system::error_code& ec) {
        key_.append(part.data(), part.size());
        if (!objects_.back().insert(key_).second) {
            duplicate = true;
            ec = json::error::syntax;  // stops the parse; reported as a duplicate key
            return false;
        }
        key_.clear();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double d, json::string_view, boost::system::error_code& ec) {
        if (!std::isfinite(d)) {  // 1e999 would parse as infinity, which JSON cannot say
            out_of_range = true;
            ec = json::error::exponent_overflow;
            return false;
        }
        return true;
    }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    std::vector<std::unordered_set<std::string>> objects_;
    std::string key_;
};

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const auto slash = path.find('/');
        parts.push_back(path.substr(0, slash));
        path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
    }
    return parts;
}

struct field_reader {
    const json::object& obj;
    std::string problem;

    std::optional<std::string_view> string(std::string_view key) {
        const auto* v = obj.if_contains(key);
        if (v == nullptr) {
            note("missing field '" + std::string(key) + "'");
            return std::nullopt;
        }
        if (!v->is_string()) {
            note("field '" + std::string(key) + "' must be a string");
            return std::nullopt;
        }
        const auto& s = v->get_string();
        return std::string_view(s.data(), s.size());
    }

    void note(std::string p) {
        if (problem.empty()) {
            problem = std::move(p);
        }
    }
};

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
    const auto q = target.find('?');
    const auto parts = split_path(target.substr(0, q));
    route_lookup out;
    auto offer = [&](std::string_view allowed, endpoint e, std::string scope, bool body,
                     std::string param = {}) {
        if (method == allowed) {
            out.found = route{e, std::move(param), std::move(scope), body};
        } else {
            out.allow = std::string(allowed);
        }
    };
    const std::size_t n = parts.size();
    if (n < 2 || parts[0] != "v1") {
        return out;
    }
    if (n == 2 && parts[1] == "health") {
        offer("GET", endpoint::health, "", false);
    } else if (n == 2 && parts[1] == "resets") {
        offer("POST", endpoint::reset_start, "reset", true);
    } else if (n == 4 && parts[1] == "resets") {
        const std::string id(parts[2]);
        if (parts[3] == "challenge") {
            offer("POST", endpoint::reset_challenge, "reset", true, id);
        } else if (parts[3] == "verify") {
            offer("POST", endpoint::reset_verify, "reset", true, id);
        } else if (parts[3] == "complete") {
            offer("POST", endpoint::reset_complete, "reset", true, id);
        }
    } else if (n == 3 && parts[1] == "enrollments" && parts[2] == "totp") {
        if (method == "DELETE") {
            offer("DELETE", endpoint::not_implemented, "enroll", true);
        } else {
            offer("POST", endpoint::enroll_totp, "enroll", true);
            if (!out.found) {
                out.allow = "POST, DELETE";
            }
        }
    } else if (n == 5 && parts[1] == "enrollments" && parts[2] == "totp" && parts[4] == "confirm") {
        offer("POST", endpoint::enroll_totp_confirm, "enroll", true, std::string(parts[3]));
    } else if (n == 2 && parts[1] == "enrollments") {
        offer("POST", endpoint::not_implemented, "enroll", true);
    } else if (n == 3 && parts[1] == "password" && parts[2] == "change") {
        offer("POST", endpoint::password_change, "change", true);
    } else if (n == 3 && parts[1] == "password" && parts[2] == "check") {
        offer("POST", endpoint::password_check, "check", true);
    } else if (n == 2 && parts[1] == "policy") {
        offer("GET", endpoint::policy_rules, "check", false);
    }
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

decoded_body decode_body(std::string_view body) {
    decoded_body out;
    {
        json::basic_parser<duplicate_key_check> checker(json::parse_options{});
        boost::system::error_code ec;
        checker.write_some(false, body.data(), body.size(), ec);
        if (checker.handler().duplicate) {
            out.problem = "the body has a duplicate key";
            return out;
        }
        if (checker.handler().out_of_range) {
            out.problem = "the body has a number out of range";
            return out;
        }
        if (ec) {
            out.problem = "the body is not valid JSON";
            return out;
        }
    }
    const json::storage_ptr storage = json::make_shared_resource<wiping_resource>();
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec, storage);
    if (ec) {
        out.problem = "the body is not valid JSON";
        return out;
    }
    if (!doc.is_object()) {
        out.problem = "the body must be a JSON object";
        return out;
    }
    out.value = std::move(doc);
    return out;
}

api::api(const config& cfg, const policy::password_policy& policy, reset_service& resets,
         enrollment_service& enrollments, change_service& changes, ldap::directory& directory,
         store::state_store& store, clock_fn clock)
    : cfg_(cfg),
      policy_(policy),
      resets_(resets),
      enrollments_(enrollments),
      changes_(changes),
      directory_(directory),
      store_(store),
      clock_(std::move(clock)),
      health_(directory) {}

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

api_response api::handle(const route& r, std::string_view body, const request_context& ctx,
                         language lang) {
    if (r.target == endpoint::health) {
        return health_reply(health_.await_known(), lang);
    }
    try {
        if (auto limited = ip_limited(ctx, lang)) {
            return std::move(*limited);
        }
        const auto taken_up = response_floor::clock::now();
        api_response reply = route_request(r, body, ctx, lang);
        response_floor* floor = nullptr;
        switch (r.target) {
            case endpoint::reset_start:
                floor = reply.status == 201 ? &started_floor_ : nullptr;
                break;
            case endpoint::reset_challenge:
                floor = reply.status == 202 ? &challenged_floor_ : nullptr;
                break;
            case endpoint::reset_verify:
                floor = reply.status == 401 ? &wrong_code_floor_ : nullptr;
                break;
            case endpoint::password_change:
                floor = reply.status == 401 || reply.status == 423 ? &wrong_change_floor_ : nullptr;
                break;
            case endpoint::enroll_totp:
                floor = reply.status == 401 || reply.status == 423 ? &wrong_enroll_floor_ : nullptr;
                break;
            default:
                break;
        }
        if (floor != nullptr) {
            reply.not_before = taken_up + floor->record(response_floor::clock::now() - taken_up);
        }
        return reply;
    } catch (const store::store_error& e) {
        log::error("state.unavailable", {{"request_id", ctx.request_id}, {"error", e.what()}});
        auto reply = error_reply(503, "state_unavailable", lang);
        reply.headers.emplace_back("Retry-After", "5");
        return reply;
    }
}

api_response api::route_request(const route& r, std::string_view body, const request_context& ctx,
                                language lang) {
    if (r.target == endpoint::not_implemented) {
        return error_reply(501, "not_implemented", lang);
    }
    if (r.target == endpoint::policy_rules) {
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

    const decoded_body decoded = decode_body(body);
    if (!decoded.value) {
        return error_reply(400, "bad_request", lang, decoded.problem);
    }
    field_reader in{decoded.value->get_object(), {}};
    auto bad = [&] { return error_reply(400, "bad_request", lang, in.problem); };

    switch (r.target) {
        case endpoint::reset_start: {
            const auto username = in.string("username");
            if (!username) {
                return bad();
            }
            auto result = resets_.start(ctx, *username);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            const auto& ok = std::get<reset_started>(result);
            api_response reply;
            reply.status = 201;
            reply.body = json::object{{"reset_id", ok.reset_id},
                                      {"expires_in", ok.expires_in},
                                      {"methods", methods_json(ok.methods)},
                                      {"required_methods", ok.required_methods}};
            return reply;
        }
        case endpoint::reset_challenge: {
            const auto method = in.string("method");
            if (!method) {
                return bad();
            }
            auto result = resets_.challenge(ctx, r.param, *method, lang);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            const auto& ok = std::get<reset_challenged>(result);
            api_response reply;
            reply.status = 202;
            reply.body = json::object{{"method", ok.method}, {"expires_in", ok.expires_in}};
            return reply;
        }
        case endpoint::reset_verify: {
            const auto method = in.string("method");
            const auto code = in.string("code");
            if (!method || !code) {
                return bad();
            }
            auto result = resets_.verify(ctx, r.param, *method, *code);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            const auto& ok = std::get<reset_verified>(result);
            json::array verified;
            for (const auto& m : ok.verified_methods) {
                verified.emplace_back(m);
            }
            api_response reply;
            reply.body = json::object{{"verified_methods", std::move(verified)},
                                      {"remaining_methods", ok.remaining_methods}};
            return reply;
        }
        case endpoint::reset_complete: {
            const auto password = in.string("new_password");
            if (!password) {
                return bad();
            }
            const secret new_password(*password);
            auto result = resets_.complete(ctx, r.param, new_password);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            api_response reply;
            reply.body = json::object{{"status", "password_reset"},
                                      {"unlocked", std::get<reset_completed>(result).unlocked}};
            return reply;
        }
        case endpoint::enroll_totp: {
            const auto username = in.string("username");
            const auto password = in.string("current_password");
            if (!username || !password) {
                return bad();
            }
            std::optional<std::string_view> current_code;
            if (in.obj.contains("current_code")) {
                current_code = in.string("current_code");
                if (!current_code) {
                    return bad();
                }
            }
            const secret current(*password);
            auto result = enrollments_.start_totp(ctx, *username, current, current_code);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            const auto& ok = std::get<totp_enrollment_started>(result);
            api_response reply;
            reply.status = 201;
            reply.body = json::object{{"enrollment_id", ok.enrollment_id},
                                      {"secret", ok.secret_base32},
                                      {"otpauth_uri", ok.otpauth_uri}};
            return reply;
        }
        case endpoint::enroll_totp_confirm: {
            const auto code = in.string("code");
            if (!code) {
                return bad();
            }
            auto result = enrollments_.confirm_totp(ctx, r.param, *code);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            // The recovery codes are shown this once; only their hashes are kept.
            json::array codes;
            for (const auto& c : std::get<totp_enrollment_confirmed>(result).recovery_codes) {
                codes.emplace_back(c.view());
            }
            api_response reply;
            reply.body = json::object{{"status", "enrolled"}, {"recovery_codes", std::move(codes)}};
            return reply;
        }
        case endpoint::password_change: {
            const auto username = in.string("username");
            const auto current = in.string("current_password");
            const auto next = in.string("new_password");
            if (!username || !current || !next) {
                return bad();
            }
            const secret current_password(*current);
            const secret new_password(*next);
            auto result = changes_.change(ctx, *username, current_password, new_password);
            if (auto* f = std::get_if<failure>(&result)) {
                return failure_reply(*f, lang);
            }
            api_response reply;
            reply.body = json::object{{"status", "password_changed"}};
            return reply;
        }
        case endpoint::password_check: {
            // The directory is never asked: the answer reveals nothing about accounts.
            const auto password = in.string("password");
            std::string_view username;
            std::string_view display_name;
            for (auto [key, out] :
                 {std::pair{"username", &username}, std::pair{"display_name", &display_name}}) {
                if (in.obj.contains(key)) {
                    if (const auto v = in.string(key)) {
                        *out = *v;
                    }
                }
            }
            if (!password || !in.problem.empty()) {
                return bad();
            }
            const secret candidate(*password);
            json::array violations;
            if (const auto refused = policy_failure(policy_, candidate, username, display_name)) {
                for (const auto& v : refused->violations) {
                    violations.push_back(
                        json::object{{"rule", v.rule},
                                     {"message", message_for_rule(v.rule, v.value, "", lang)}});
                }
            }
            api_response reply;
            reply.body = json::object{{"acceptable", violations.empty()},
                                      {"violations", std::move(violations)}};
            return reply;
        }
        case endpoint::health:
        case endpoint::not_implemented:
        case endpoint::policy_rules:
            break;
    }
    log::error("api.unrouted", {{"request_id", ctx.request_id}});
    return error_reply(500, "internal", lang);
}

}  // namespace pwresetd::daemon
