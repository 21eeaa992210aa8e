#pragma once
// Request bodies as the API reads them: one JSON object, parsed into memory that is wiped
// when released (bodies carry passwords and codes), no duplicate keys, numbers in range;
// and typed access to its fields with the first problem kept for the 400 message.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace pwresetd::daemon {

// Parses a request body: a JSON object, no duplicate keys (a second "username" must not
// decide which one a check reads), into memory that is wiped when released. Empty optional
// and `problem` set when refused.
struct decoded_body {
    std::optional<boost::json::value> value;
    std::string problem;
};
decoded_body decode_body(std::string_view body);

// Reads string fields of a decoded body; the first problem is kept for the reply.
struct field_reader {
    const boost::json::object& obj;
    std::string problem;

    std::optional<std::string_view> string(std::string_view key);
    // An optional string field: absent is fine, present must be a string.
    bool optional_string(std::string_view key, std::optional<std::string_view>& out);
    void note(std::string p);
};

}  // namespace pwresetd::daemon
