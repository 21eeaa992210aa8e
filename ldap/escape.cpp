// RFC 4515 (search filter assertion values) and RFC 4514 (DN attribute values) escaping.
#include <array>
#include <string>
#include <string_view>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {
namespace {

void append_hex(std::string& out, unsigned char c) {
    static constexpr std::string_view digits = "0123456789abcdef";
    out.push_back('\\');
    out.push_back(digits[c >> 4U]);
    out.push_back(digits[c & 0x0fU]);
}

}  // namespace

std::string escape_filter_value(std::string_view value) {
    // RFC 4515 section 3: '*', '(', ')', '\' and NUL must be escaped as \XX; everything
    // else (UTF-8 included) may appear as is.
    std::string out;
    out.reserve(value.size());
    for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
            append_hex(out, c);
        } else {
            out.push_back(ch);
        }
    }
    return out;
}

std::string escape_dn_value(std::string_view value) {
    // RFC 4514 section 2.4: escape '"', '+', ',', ';', '<', '>', '\' anywhere, '=' (allowed
    // but escaped for safety, as OpenLDAP's ldap_dn2str does), a leading '#' or space, a
    // trailing space, and NUL (as \00).
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char ch = value[i];
        const auto c = static_cast<unsigned char>(ch);
        const bool first = i == 0;
        const bool last = i + 1 == value.size();
        if (c == 0) {
            append_hex(out, c);
        } else if (ch == '"' || ch == '+' || ch == ',' || ch == ';' || ch == '<' || ch == '>' ||
                   ch == '\\' || ch == '=' || (first && (ch == '#' || ch == ' ')) ||
                   (last && ch == ' ')) {
            out.push_back('\\');
            out.push_back(ch);
        } else {
            out.push_back(ch);
        }
    }
    return out;
}

std::string expand_user_filter(std::string_view filter_template, std::string_view username) {
    static constexpr std::string_view placeholder = "{username}";
    const std::string escaped = escape_filter_value(username);
    std::string out;
    out.reserve(filter_template.size() + escaped.size());
    std::size_t pos = 0;
    while (true) {
        const std::size_t hit = filter_template.find(placeholder, pos);
        if (hit == std::string_view::npos) {
            out.append(filter_template.substr(pos));
            break;
        }
        out.append(filter_template.substr(pos, hit - pos));
        out.append(escaped);
        pos = hit + placeholder.size();
    }
    return out;
}

}  // namespace pwresetd::ldap
