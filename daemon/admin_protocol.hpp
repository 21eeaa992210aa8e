#pragma once
// The admin socket's protocol (pwresetctl <-> pwresetd), version 1: one JSON object per
// line each way, the request first. A request is {"v":1,"cmd":"status"} or
// {"v":1,"cmd":"enroll"|"unenroll"|"unlock","user":"NAME"} with the command's options
// ("replace" for enroll, "directory" for unlock, both booleans). A reply is {"v":1,"ok":true,
// ...} with the command's fields, or {"v":1,"ok":false,"error":CODE,"message":TEXT}.
// Unknown fields are refused, so a newer pwresetctl never sends an option an older daemon
// silently ignores.
#include <boost/json/object.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace pwresetd::daemon::admin {

inline constexpr int protocol_version = 1;
// A request line, without its newline; a longer one is refused and the connection closed.
inline constexpr std::size_t max_request_bytes = 4096;
// What pwresetctl accepts as a reply line.
inline constexpr std::size_t max_reply_bytes = std::size_t{1} << 20U;
// A username in a request (the API's limit is lower; the daemon checks it again).
inline constexpr std::size_t max_user_bytes = 256;

enum class command { status, enroll, unenroll, unlock };

struct request {
    command cmd = command::status;
    std::string user;        // enroll, unenroll, unlock
    bool replace = false;    // enroll: replace an authenticator the user has
    bool directory = false;  // unlock: the directory account too
};

// Why a request line was refused: code is bad_request, unsupported_version or
// unknown_command; message says what is wrong (never echoes the line).
struct request_error {
    std::string code;
    std::string message;
};

std::variant<request, request_error> parse_request(std::string_view line);
// The request as one line, newline included.
std::string encode_request(const request& r);
std::string_view command_name(command c);

boost::json::object ok_reply();
boost::json::object error_reply(std::string_view code, std::string_view message);

}  // namespace pwresetd::daemon::admin
