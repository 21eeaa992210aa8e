#include "common/text.hpp"

namespace pwresetd::text {

std::optional<std::vector<char32_t>> decode_utf8(std::string_view s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c0 = static_cast<unsigned char>(s[i]);
        if (c0 < 0x80) {
            out.push_back(c0);
            ++i;
            continue;
        }
        std::size_t len = 0;
        char32_t cp = 0;
        char32_t min = 0;
        if ((c0 & 0xE0U) == 0xC0U) {
            len = 2;
            cp = c0 & 0x1FU;
            min = 0x80;
        } else if ((c0 & 0xF0U) == 0xE0U) {
            len = 3;
            cp = c0 & 0x0FU;
            min = 0x800;
        } else if ((c0 & 0xF8U) == 0xF0U) {
            len = 4;
            cp = c0 & 0x07U;
            min = 0x10000;
        } else {
            return std::nullopt;
        }
        if (i + len > s.size()) {
            return std::nullopt;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0U) != 0x80U) {
                return std::nullopt;
            }
            cp = (cp << 6U) | (c & 0x3FU);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return std::nullopt;
        }
        out.push_back(cp);
        i += len;
    }
    return out;
}

bool is_valid_utf8(std::string_view s) {
    return decode_utf8(s).has_value();
}

bool has_control_characters(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7F) {
            return true;
        }
        // C1 controls are U+0080..U+009F, encoded as C2 80..C2 9F.
        if (c == 0xC2 && i + 1 < s.size()) {
            const auto n = static_cast<unsigned char>(s[i + 1]);
            if (n >= 0x80 && n <= 0x9F) {
                return true;
            }
        }
    }
    return false;
}

std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

}  // namespace pwresetd::text
