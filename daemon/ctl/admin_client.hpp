#pragma once
// pwresetctl's side of the admin socket (daemon/admin_protocol.hpp): one request, one reply.
#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace pwresetd::ctl {

// The socket could not be reached (pwresetctl exits 2).
class connect_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Sends `request_line` (newline included) and returns the reply object. Throws
// connect_error when the socket cannot be connected to, std::runtime_error when the reply
// does not come within `timeout` or is not a protocol reply.
boost::json::object ask_daemon(const std::filesystem::path& socket, const std::string& request_line,
                               std::chrono::milliseconds timeout);

}  // namespace pwresetd::ctl
