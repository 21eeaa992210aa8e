#include "daemon/admin_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <utility>

namespace pwresetd::daemon::admin {
namespace json = boost::json;

namespace {

struct command_spec {
    std::string_view name;
    command cmd;
    bool needs_user;
    std::string_view option;  // the one boolean option it takes ("" for none)
};

constexpr auto command_table = std::to_array<command_spec>({
    {"status", command::status, false, ""},
    {"enroll", command::enroll, true, "replace"},
    {"unenroll", command::unenroll, true, ""},
    {"unlock", command::unlock, true, "directory"},
});

request_error bad(std::string message) {
    return {"bad_request", std::move(message)};
}

}  // namespace

std::string_view command_name(command c) {
    for (const auto& spec : command_table) {
        if (spec.cmd == c) {
            return spec.name;
        }
    }
    return "?";
}

std::variant<request, request_error> parse_request(std::string_view line) {
    if (line.size() > max_request_bytes) {
        return request_error{"too_large", "a request line has at most " +
                                              std::to_string(max_request_bytes) + " bytes"};
    }
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 4;
    const json::value value = json::parse(line, ec, {}, options);
    if (ec) {
        return bad("not a JSON text");
    }
    const json::object* object = value.if_object();
    if (object == nullptr) {
        return bad("expected a JSON object");
    }
    const json::value* version = object->if_contains("v");
    if (version == nullptr) {
        return bad("missing \"v\" (the protocol version)");
    }
    if (!version->is_int64() || version->as_int64() != protocol_version) {
        return request_error{"unsupported_version",
                             "this daemon speaks version " + std::to_string(protocol_version)};
    }
    const json::value* name = object->if_contains("cmd");
    if (name == nullptr || !name->is_string()) {
        return bad("\"cmd\" must be a string");
    }
    const command_spec* spec = nullptr;
    for (const auto& s : command_table) {
        if (s.name == name->as_string()) {
            spec = &s;
        }
    }
    if (spec == nullptr) {
        return request_error{"unknown_command", "unknown command"};
    }
    request out;
    out.cmd = spec->cmd;
    for (const auto& [key, field] : *object) {
        if (key == "v" || key == "cmd") {
            continue;
        }
        if (key == "user" && spec->needs_user) {
            if (!field.is_string() || field.as_string().empty()) {
                return bad("\"user\" must be a non-empty string");
            }
            if (field.as_string().size() > max_user_bytes) {
                return bad("\"user\" has at most " + std::to_string(max_user_bytes) + " bytes");
            }
            out.user = field.as_string();
        } else if (!spec->option.empty() && key == spec->option) {
            if (!field.is_bool()) {
                return bad("\"" + std::string(spec->option) + "\" must be true or false");
            }
            (spec->cmd == command::enroll ? out.replace : out.directory) = field.as_bool();
        } else {
            return bad("unknown field \"" + std::string(key.substr(0, 32)) + "\" for " +
                       std::string(spec->name));
        }
    }
    if (spec->needs_user && out.user.empty()) {
        return bad(std::string(spec->name) + " needs \"user\"");
    }
    return out;
}

std::string encode_request(const request& r) {
    json::object o;
    o["v"] = protocol_version;
    o["cmd"] = command_name(r.cmd);
    if (r.cmd != command::status) {
        o["user"] = r.user;
    }
    if (r.cmd == command::enroll) {
        o["replace"] = r.replace;
    }
    if (r.cmd == command::unlock) {
        o["directory"] = r.directory;
    }
    return json::serialize(o) + "\n";
}

json::object ok_reply() {
    return {{"v", protocol_version}, {"ok", true}};
}

json::object error_reply(std::string_view code, std::string_view message) {
    return {{"v", protocol_version}, {"ok", false}, {"error", code}, {"message", message}};
}

}  // namespace pwresetd::daemon::admin
