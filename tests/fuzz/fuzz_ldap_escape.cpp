// Fuzz target: RFC 4515 filter escaping, RFC 4514 DN escaping, {username} expansion and the
// domain split (ldap/directory.hpp). Input: a username, NUL, a filter template.
// Properties: an escaped filter value has no unescaped * ( ) \ or NUL and decodes back to
// the input; an escaped DN value decodes back and has no unescaped special; expanding
// {username} never adds a filter metacharacter to the template; split_domain loses nothing.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "ldap/directory.hpp"

namespace {

std::optional<unsigned> hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return static_cast<unsigned>(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return static_cast<unsigned>(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return static_cast<unsigned>(c - 'A' + 10);
    }
    return std::nullopt;
}

// RFC 4515 section 3 decoder: `\` must be followed by two hex digits; *, (, ) and NUL may
// not appear unescaped. nullopt when the text is not a valid assertion value.
std::optional<std::string> decode_filter_value(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '*' || c == '(' || c == ')' || c == '\0') {
            return std::nullopt;
        }
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (i + 2 >= text.size()) {
            return std::nullopt;
        }
        const auto hi = hex_value(text[i + 1]);
        const auto lo = hex_value(text[i + 2]);
        if (!hi || !lo) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>((*hi << 4U) | *lo));
        i += 2;
    }
    return out;
}

bool is_dn_special(char c) {
    return c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\' ||
           c == '=';
}

// RFC 4514 section 3 decoder for one attribute value: `\` followed by a special character,
// a space, '#', or two hex digits. Refuses an unescaped special, NUL, leading '#' or space,
// or trailing space.
std::optional<std::string> decode_dn_value(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\0' || (is_dn_special(c) && c != '\\')) {
            return std::nullopt;
        }
        if ((i == 0 && (c == '#' || c == ' ')) || (i + 1 == text.size() && c == ' ')) {
            return std::nullopt;
        }
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (i + 1 >= text.size()) {
            return std::nullopt;
        }
        const char next = text[i + 1];
        if (is_dn_special(next) || next == ' ' || next == '#') {
            out.push_back(next);
            i += 1;
            continue;
        }
        if (i + 2 >= text.size()) {
            return std::nullopt;
        }
        const auto hi = hex_value(next);
        const auto lo = hex_value(text[i + 2]);
        if (!hi || !lo) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>((*hi << 4U) | *lo));
        i += 2;
    }
    return out;
}

std::size_t count_metacharacters(std::string_view filter) {
    std::size_t n = 0;
    for (const char c : filter) {
        n += (c == '*' || c == '(' || c == ')' || c == '\0') ? 1 : 0;
    }
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pwresetd::ldap;
    pwresetd::fuzz::input in(data, size);
    const std::string_view username = in.text();
    const std::string_view filter_template = in.rest_text();

    const std::string filter_value = escape_filter_value(username);
    const auto decoded_filter = decode_filter_value(filter_value);
    FUZZ_CHECK(decoded_filter.has_value());
    FUZZ_CHECK(*decoded_filter == username);

    // The whole input too, NULs included.
    const std::string_view whole = pwresetd::fuzz::input(data, size).rest_text();
    const auto decoded_whole = decode_filter_value(escape_filter_value(whole));
    FUZZ_CHECK(decoded_whole.has_value() && *decoded_whole == whole);

    const std::string dn_value = escape_dn_value(whole);
    const auto decoded_dn = decode_dn_value(dn_value);
    FUZZ_CHECK(decoded_dn.has_value());
    FUZZ_CHECK(*decoded_dn == whole);

    // The username can only ever fill the value it was put in.
    const std::string filter = expand_user_filter(filter_template, username);
    FUZZ_CHECK(count_metacharacters(filter) == count_metacharacters(filter_template));
    if (filter_template.find("{username}") == std::string_view::npos) {
        FUZZ_CHECK(filter == filter_template);
    }

    const auto [domain, bare] = split_domain(username);
    if (domain.empty()) {
        FUZZ_CHECK(bare == username);
    } else {
        FUZZ_CHECK(!bare.empty());
        FUZZ_CHECK(domain.size() + bare.size() + 1 == username.size());
    }
    return 0;
}
