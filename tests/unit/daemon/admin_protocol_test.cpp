#include "daemon/admin_protocol.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <variant>

using namespace pwresetd::daemon;

namespace {

// The error code for a refused line, or "" when it parsed.
std::string refusal_of(const std::string& line) {
    const auto parsed = admin::parse_request(line);
    const auto* error = std::get_if<admin::request_error>(&parsed);
    return error == nullptr ? std::string() : error->code;
}

admin::request parsed(const std::string& line) {
    auto result = admin::parse_request(line);
    REQUIRE(std::holds_alternative<admin::request>(result));
    return std::get<admin::request>(std::move(result));
}

}  // namespace

TEST_CASE("admin protocol: requests that parse", "[admin]") {
    CHECK(parsed(R"({"v":1,"cmd":"status"})").cmd == admin::command::status);
    const auto enroll = parsed(R"({"cmd":"enroll","v":1,"user":"alice","replace":true})");
    CHECK(enroll.cmd == admin::command::enroll);
    CHECK(enroll.user == "alice");
    CHECK(enroll.replace);
    CHECK_FALSE(enroll.directory);
    const auto unlock =
        parsed("{\"v\":1,\"cmd\":\"unlock\",\"user\":\"bob\",\"directory\":true}\r");
    CHECK(unlock.cmd == admin::command::unlock);
    CHECK(unlock.directory);
    CHECK(parsed(R"({"v":1,"cmd":"unenroll","user":"carol"})").user == "carol");
}

TEST_CASE("admin protocol: refused requests, each with its code", "[admin]") {
    struct row {
        std::string line;
        std::string code;
    };
    const auto rows = GENERATE(values<row>({
        {"", "bad_request"},
        {"not json", "bad_request"},
        {"[1,2]", "bad_request"},
        {R"({"cmd":"status"})", "bad_request"},
        {R"({"v":"1","cmd":"status"})", "unsupported_version"},
        {R"({"v":2,"cmd":"status"})", "unsupported_version"},
        {R"({"v":1})", "bad_request"},
        {R"({"v":1,"cmd":7})", "bad_request"},
        {R"({"v":1,"cmd":"shutdown"})", "unknown_command"},
        {R"({"v":1,"cmd":"status","user":"alice"})", "bad_request"},
        {R"({"v":1,"cmd":"enroll"})", "bad_request"},
        {R"({"v":1,"cmd":"enroll","user":""})", "bad_request"},
        {R"({"v":1,"cmd":"enroll","user":42})", "bad_request"},
        {R"({"v":1,"cmd":"enroll","user":"a","replace":"yes"})", "bad_request"},
        {R"({"v":1,"cmd":"enroll","user":"a","directory":true})", "bad_request"},
        {R"({"v":1,"cmd":"unlock","user":"a","replace":true})", "bad_request"},
        {R"({"v":1,"cmd":"unenroll","user":"a","x":{"y":{"z":{"w":1}}}})", "bad_request"},
    }));
    INFO(rows.line);
    CHECK(refusal_of(rows.line) == rows.code);
}

TEST_CASE("admin protocol: size limits", "[admin]") {
    const std::string head = R"({"v":1,"cmd":"unlock","user":")";
    const std::string tail = R"("})";
    // A username of max_user_bytes parses; one byte more is refused.
    CHECK(parsed(head + std::string(admin::max_user_bytes, 'u') + tail).user.size() ==
          admin::max_user_bytes);
    CHECK(refusal_of(head + std::string(admin::max_user_bytes + 1, 'u') + tail) == "bad_request");
    // A line of max_request_bytes is read (and judged on its content); one byte more is not.
    std::string padded = R"({"v":1,"cmd":"status"})";
    padded += std::string(admin::max_request_bytes - padded.size(), ' ');
    CHECK(refusal_of(padded).empty());
    CHECK(refusal_of(padded + " ") == "too_large");
}

TEST_CASE("admin protocol: what pwresetctl sends parses to the same request", "[admin]") {
    admin::request r;
    r.cmd = admin::command::unlock;
    r.user =
        "D\xC3\xA9sir\xC3\xA9"
        "e \"quoted\"";
    r.directory = true;
    const std::string line = admin::encode_request(r);
    REQUIRE(line.back() == '\n');
    const auto back = parsed(line.substr(0, line.size() - 1));
    CHECK(back.cmd == r.cmd);
    CHECK(back.user == r.user);
    CHECK(back.directory);
    CHECK_FALSE(back.replace);
    CHECK(admin::error_reply("busy", "x").at("ok").as_bool() == false);
    CHECK(admin::ok_reply().at("v").as_int64() == admin::protocol_version);
}
