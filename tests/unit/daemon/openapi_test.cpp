// api/openapi.json against the router: every path, method and status in the document is a
// route of api::routes() answering that status (route_statuses), and the other way round;
// scopes, security schemes and not-implemented marks agree; every $ref resolves.
#include <boost/json.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "daemon/api.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/openapi_document.hpp"

using namespace pwresetd::daemon;
namespace json = boost::json;

namespace {

using operation_key = std::pair<std::string, std::string>;  // METHOD, path with {} parameters

// "/v1/resets/{reset_id}/verify" -> "/v1/resets/{}/verify", as api::routes() writes it.
std::string router_path(std::string_view path) {
    std::string out;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '{') {
            out += "{}";
            i = path.find('}', i);
            REQUIRE(i != std::string_view::npos);
        } else {
            out += path[i];
        }
    }
    return out;
}

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
    return out;
}

const json::object& document() {
    static const json::object doc = json::parse(openapi_document()).as_object();
    return doc;
}

// Every operation of the document: key -> the operation object.
std::map<operation_key, const json::object*> operations() {
    std::map<operation_key, const json::object*> out;
    for (const auto& [path, item] : document().at("paths").as_object()) {
        for (const auto& [method, op] : item.as_object()) {
            if (method == "parameters") {
                continue;
            }
            out[{upper(method), router_path(path)}] = &op.as_object();
        }
    }
    return out;
}

std::vector<unsigned> documented_statuses(const json::object& op) {
    std::vector<unsigned> out;
    for (const auto& [status, response] : op.at("responses").as_object()) {
        out.push_back(static_cast<unsigned>(std::stoul(std::string(status))));
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string text_of(const std::vector<unsigned>& statuses) {
    std::string out;
    for (const auto s : statuses) {
        out += std::to_string(s) + ' ';
    }
    return out;
}

void collect_refs(const json::value& v, std::vector<std::string>& out) {
    if (const auto* o = v.if_object()) {
        for (const auto& [key, member] : *o) {
            if (key == "$ref" && member.is_string()) {
                out.emplace_back(member.as_string());
            } else {
                collect_refs(member, out);
            }
        }
    } else if (const auto* a = v.if_array()) {
        for (const auto& member : *a) {
            collect_refs(member, out);
        }
    }
}

}  // namespace

TEST_CASE("the OpenAPI document is 3.1 and declares both client authentications", "[openapi]") {
    const auto& doc = document();
    CHECK(doc.at("openapi").as_string().starts_with("3.1."));
    const auto& schemes = doc.at("components").at("securitySchemes").as_object();
    CHECK(schemes.at("bearerAuth").at("type") == "http");
    CHECK(schemes.at("bearerAuth").at("scheme") == "bearer");
    CHECK(schemes.at("mutualTLS").at("type") == "mutualTLS");

    const json::value whole(doc);
    std::vector<std::string> refs;
    collect_refs(doc, refs);
    CHECK(refs.size() > 20);
    for (const auto& ref : refs) {
        INFO(ref);
        REQUIRE(ref.starts_with("#/"));
        json::error_code ec;
        CHECK(whole.find_pointer(ref.substr(1), ec) != nullptr);
    }
}

TEST_CASE("every route, method and status of the router is in the document and vice versa",
          "[openapi]") {
    auto documented = operations();
    REQUIRE(!documented.empty());
    for (const auto& spec : api::routes()) {
        const operation_key key{std::string(spec.method), std::string(spec.path)};
        INFO(key.first << ' ' << key.second);
        const auto it = documented.find(key);
        REQUIRE(it != documented.end());
        const json::object& op = *it->second;
        CHECK(text_of(documented_statuses(op)) == text_of(route_statuses(spec)));

        // Authentication and scope.
        const auto& security = op.at("security").as_array();
        if (spec.scope.empty()) {
            CHECK(security.empty());
        } else {
            REQUIRE(security.size() == 2);
            const json::array expected =
                spec.scope == client_auth::any_client ? json::array{} : json::array{spec.scope};
            CHECK(security.at(0).at("bearerAuth").as_array() == expected);
            CHECK(security.at(1).at("mutualTLS").as_array() == expected);
            if (spec.scope != client_auth::any_client) {
                CHECK(op.at("x-pwresetd-scope").as_string() == spec.scope);
            }
        }
        const auto* mark = op.if_contains("x-pwresetd-not-implemented");
        CHECK((mark != nullptr && mark->as_bool()) == (spec.target == endpoint::not_implemented));
        CHECK(op.contains("requestBody") == spec.has_body);
        documented.erase(it);
    }
    for (const auto& [key, op] : documented) {
        FAIL_CHECK("documented but not routed: " << key.first << ' ' << key.second);
    }
}

TEST_CASE("the served document is the repository's api/openapi.json", "[openapi]") {
    const auto& text = openapi_document();
    CHECK(text.size() > 10000);
    CHECK(text.front() == '{');
    CHECK(text.back() == '\n');
    CHECK(text.find("/v1/resets/{reset_id}/unlock") != std::string::npos);
}
