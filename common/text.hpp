#pragma once
// Text checks and conversions shared by the API, the directory layer and the stores.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
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

// A decimal integer that is all of `s` ("-12"; no '+', no spaces); nullopt when malformed or
// out of Int's range.
template <class Int>
std::optional<Int> parse_int(std::string_view s) {
    Int value{};
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (s.empty() || ec != std::errc() || ptr != end) {
        return std::nullopt;
    }
    return value;
}

}  // namespace pwresetd::text
