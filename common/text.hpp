#pragma once
// Text checks shared by the API and the directory layer.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::text {

// Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s);
// Decodes strict UTF-8 into code points; nullopt when invalid.
std::optional<std::vector<char32_t>> decode_utf8(std::string_view s);
// True when s contains a C0 control, DEL, or a C1 control (U+0080..U+009F).
bool has_control_characters(std::string_view s);
// ASCII-only lowercase (directory user names compare case-insensitively in ASCII).
std::string ascii_lower(std::string_view s);

}  // namespace pwresetd::text
