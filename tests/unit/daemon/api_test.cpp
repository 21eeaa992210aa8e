#include "daemon/api.hpp"

#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/messages.hpp"
#include "daemon/service_common.hpp"
#include "daemon/worker_pool.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace pwresetd;
using namespace pwresetd::daemon;

TEST_CASE("routes, scopes and methods", "[api]") {
    const std::string id = new_opaque_id();
    auto r = find_route("POST", "/v1/resets");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::reset_start);
    CHECK(r.found->scope == "reset");

    r = find_route("POST", "/v1/resets/" + id + "/verify?x=1");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::reset_verify);
    CHECK(r.found->param == id);

    r = find_route("GET", "/v1/health");
    REQUIRE(r.found);
    CHECK(r.found->scope.empty());

    r = find_route("GET", "/v1/resets");
    CHECK_FALSE(r.found);
    CHECK(r.allow == "POST");

    CHECK_FALSE(find_route("GET", "/v1/nope").found);
    CHECK(find_route("GET", "/v1/nope").allow.empty());
    CHECK_FALSE(find_route("GET", "/").found);
    CHECK_FALSE(find_route("POST", "/v2/resets").found);

    r = find_route("POST", "/v1/enrollments/totp/" + id + "/confirm");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::enroll_totp_confirm);
    CHECK(r.found->scope == "enroll");
    r = find_route("POST", "/v1/password/change");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::password_change);
    CHECK(r.found->scope == "change");
    r = find_route("POST", "/v1/password/check");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::password_check);
    CHECK(r.found->scope == "check");
    r = find_route("GET", "/v1/policy");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::policy_rules);
    CHECK_FALSE(r.found->has_body);
    r = find_route("DELETE", "/v1/enrollments/totp");
    REQUIRE(r.found);
    CHECK(r.found->target == endpoint::not_implemented);
}

namespace {

// A request path for a row of the route table: its "{}" filled with an id the daemon issues
// for it (a reset id after resets/, an enrollment id elsewhere).
std::string concrete_path(std::string_view pattern) {
    std::string path(pattern);
    if (const auto at = path.find("{}"); at != std::string::npos) {
        path.replace(at, 2, new_opaque_id());
    }
    return path;
}

std::string ascii_upper(std::string s) {
    for (auto& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

std::string percent_encoded(char c) {
    static constexpr std::string_view hex = "0123456789ABCDEF";
    const auto byte = static_cast<unsigned char>(c);
    return {'%', hex[byte >> 4U], hex[byte & 15U]};
}

// Ways a path can be written that a lenient router might take for it.
std::vector<std::string> variants_of(const std::string& path) {
    const auto last_slash = path.rfind('/');
    const std::string head = path.substr(0, last_slash);
    const std::string tail = path.substr(last_slash + 1);
    const std::string rest = path.substr(std::string_view("/v1").size());  // "/resets/..."
    std::string capital_tail = tail;
    capital_tail[0] = static_cast<char>(capital_tail[0] - 'a' + 'A');
    std::vector<std::string> v = {
        "/" + path,                                              // //v1/resets
        "/v1/" + rest,                                           // /v1//resets
        head + "//" + tail,                                      // an empty segment before the last
        path + "/",                                              // trailing slash
        path + "//",                                             //
        path + "/.",                                             // a dot segment at the end
        "/v1/." + rest,                                          // /v1/./resets
        "/v1/x/.." + rest,                                       // /v1/x/../resets
        "/v1/%2e" + rest,                                        // an encoded dot segment
        "/v1/%2E%2E/v1" + rest,                                  //
        head + "%2f" + tail,                                     // an encoded slash
        head + "%2F" + tail,                                     //
        head + "/" + percent_encoded(tail[0]) + tail.substr(1),  // /v1/%70olicy
        path + ";",                                              // ;params
        path + ";jsessionid=1",                                  //
        "/v1;x=1" + rest,                                        //
        head + "\\" + tail,                                      // a backslash for the last slash
        "\\v1" + rest,                                           //
        ascii_upper(path),                                       // /V1/POLICY
        "/V1" + rest,                                            //
        head + "/" + capital_tail,                               // /v1/Policy
        path + " ",                                              //
        path + "%20",                                            //
        path + "%00",                                            //
        path + "#",                                              //
        path + ".json",                                          //
        "https://127.0.0.1" + path,                              // absolute form
        path.substr(1),                                          // no leading slash
    };
    return v;
}

}  // namespace

TEST_CASE("every route of the table matches only its exact path", "[api][routing]") {
    for (const auto& spec : api::routes()) {
        const std::string path = concrete_path(spec.path);
        INFO(spec.method << " " << path);
        const auto exact = find_route(spec.method, path);
        REQUIRE(exact.found);  // a "{}" the router has no id kind for fails here
        CHECK(exact.found->spec == &spec);
        CHECK(find_route(spec.method, path + "?a=b").found);  // only a query string is cut off
        for (const auto& variant : variants_of(path)) {
            INFO("variant " << variant);
            const auto r = find_route(spec.method, variant);
            CHECK_FALSE(r.found);
            CHECK(r.allow.empty());  // 404, not 405: the variant names no path at all
        }
    }
}

TEST_CASE("a route parameter is an id the daemon could have issued", "[api][routing]") {
    for (int i = 0; i < 200; ++i) {
        const std::string id = new_opaque_id();
        INFO(id);
        CHECK(find_route("POST", "/v1/resets/" + id + "/complete").found);
        CHECK(find_route("POST", "/v1/enrollments/totp/" + id + "/confirm").found);
        CHECK(find_route("POST", "/v1/enrollments/totp/r" + id + "/confirm").found);
        // A replacing enrollment's "r" is no part of a reset id.
        CHECK_FALSE(find_route("POST", "/v1/resets/r" + id + "/complete").found);
    }
    const std::string id = new_opaque_id();
    std::string non_canonical = id;
    non_canonical.back() = 'B';  // 256 bits end in A, E, I, ... (2 padding bits are zero)
    std::string lower = id;
    lower.back() = 'b';
    const std::vector<std::string> refused = {
        "",
        id.substr(1),
        id + "A",
        id + "=",
        non_canonical,
        lower,
        std::string(42, 'A') + "+",
        std::string(42, 'A') + "/",
        std::string(42, 'A') + ".",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "..",
        "%41" + id.substr(1),
        "r" + id,
        "R" + id,
    };
    for (const auto& bad : refused) {
        INFO(bad);
        CHECK_FALSE(find_route("POST", "/v1/resets/" + bad + "/verify").found);
        if (bad != "r" + id) {
            CHECK_FALSE(find_route("POST", "/v1/enrollments/totp/" + bad + "/confirm").found);
        }
    }
    CHECK(find_route("POST", "/v1/resets/" + std::string(42, 'A') + "A/verify").found);
    CHECK(find_route("POST", "/v1/resets/" + std::string(42, '_') + "w/verify").found);
}

TEST_CASE("Accept-Language picks en or sv with q-values", "[messages]") {
    CHECK(pick_language("") == "en");
    CHECK(pick_language("sv") == "sv");
    CHECK(pick_language("sv-SE,sv;q=0.9,en;q=0.8") == "sv");
    CHECK(pick_language("en;q=0.5, SV-se;q=0.9") == "sv");
    CHECK(pick_language("de, fr;q=0.9") == "en");
    CHECK(pick_language("sv;q=0, en") == "en");
    CHECK(pick_language("de, sv;q=0.1") == "sv");
    CHECK(message_for_error("locked", "sv") == "För många misslyckade försök. Försök igen senare.");
    CHECK(message_for_error("no-such-code", "en") == message_for_error("internal", "en"));
    CHECK(message_for_rule("directory_policy", std::nullopt, "Password fails quality", "en") ==
          "The directory refused the password (Password fails quality).");
    CHECK(message_for_rule("history", std::nullopt, "ignored", "en").find("ignored") ==
          std::string::npos);
    CHECK(message_for_rule("min_length", 12, "", "en") == "Use at least 12 characters.");
    CHECK(message_for_rule("min_length", 12, "", "sv") == "Använd minst 12 tecken.");
}

TEST_CASE("every catalog covers every English key", "[messages]") {
    const auto languages = available_languages();
    REQUIRE(languages.size() >= 2);
    CHECK(languages.front() == "en");
    const auto english = catalog_keys("en");
    for (const auto lang : languages) {
        INFO("catalog " << lang);
        CHECK(catalog_keys(lang) == english);
    }
    // Every error code and rule the daemon can emit has an English message.
    for (const char* code : {"bad_request",
                             "unauthenticated",
                             "forbidden",
                             "not_found",
                             "method_not_allowed",
                             "payload_too_large",
                             "headers_too_large",
                             "unsupported_media_type",
                             "directory_unavailable",
                             "overloaded",
                             "internal",
                             "not_implemented",
                             "invalid_code",
                             "locked",
                             "locked_in_directory",
                             "verification_required",
                             "password_rejected",
                             "reset_expired",
                             "enrollment_expired",
                             "invalid_credentials"}) {
        INFO(code);
        CHECK(catalog_entry("en", std::string("error.") + code).has_value());
    }
    for (const char* rule :
         {"min_length", "max_length", "character_classes", "contains_username", "contains_name",
          "banned", "breached", "complexity", "history", "too_young", "directory_policy"}) {
        INFO(rule);
        CHECK(catalog_entry("en", std::string("rule.") + rule).has_value());
    }
}

TEST_CASE("error replies carry the code and a localized message", "[api]") {
    const auto r = error_reply(400, "bad_request", "en", "missing field 'username'");
    CHECK(r.status == 400);
    CHECK(r.body.at("error").as_string() == "bad_request");
    CHECK(r.body.at("message").as_string() ==
          "The request is not valid: missing field 'username'.");
}

TEST_CASE("bearer keys authenticate by SHA-256, scopes are checked", "[client_auth]") {
    std::vector<client_settings> clients(2);
    clients[0].name = "portal";
    clients[0].api_key_sha256 = crypto::sha256("portal-key");
    clients[0].scopes = {"reset", "enroll"};
    clients[1].name = "checker";
    clients[1].api_key_sha256 = crypto::sha256("checker-key");
    clients[1].scopes = {"check"};
    const client_auth auth(clients);
    const auto* c = auth.authenticate("Bearer portal-key");
    REQUIRE(c != nullptr);
    CHECK(c->name == "portal");
    CHECK(auth.authenticate("bearer checker-key")->name == "checker");
    CHECK(auth.authenticate("Bearer portal-key2") == nullptr);
    CHECK(auth.authenticate("Bearer ") == nullptr);
    CHECK(auth.authenticate("Basic cG9ydGFsLWtleQ==") == nullptr);
    CHECK(auth.authenticate("portal-key") == nullptr);
    CHECK(auth.authenticate("") == nullptr);
    CHECK(client_auth::has_scope(*c, "reset"));
    CHECK_FALSE(client_auth::has_scope(*c, "check"));
}

TEST_CASE("worker pool refuses work beyond its queue", "[worker_pool]") {
    worker_pool pool(1, 2);
    std::atomic<bool> release{false};
    std::atomic<int> done{0};
    auto blocker = [&] {
        while (!release) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ++done;
    };
    REQUIRE(pool.try_submit(blocker));
    // Wait until the worker has taken the first job, so the queue is empty.
    while (pool.queued() != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(pool.try_submit([&] { ++done; }));
    CHECK(pool.try_submit([&] { ++done; }));
    CHECK_FALSE(pool.try_submit([&] { ++done; }));
    release = true;
    pool.stop();
    CHECK(done == 3);
    CHECK_FALSE(pool.try_submit([&] { ++done; }));
}
