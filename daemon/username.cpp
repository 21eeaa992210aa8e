#include "daemon/username.hpp"

#include <clocale>
#include <cstdint>
#include <cstdlib>
#include <cwctype>
#include <memory>

#include <unicase.h>
#include <unistr.h>

#include "common/text.hpp"

namespace pwresetd::daemon {
namespace {

constexpr std::size_t max_username_bytes = 256;

// RFC 4518 2.2 maps these to SPACE and these to nothing before a directory compares names.
bool maps_to_space(ucs4_t cp) {
    return cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
bool maps_to_nothing(ucs4_t cp) {
    return cp == 0xAD || cp == 0x034F || cp == 0x180E || (cp >= 0x200B && cp <= 0x200D) ||
           cp == 0x2060 || cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F);
}

locale_t utf8_ctype() {
    // glibc's C.UTF-8 carries Unicode simple case mappings; without it, ASCII only.
    static const locale_t loc =
        ::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return loc;
}

ucs4_t simple_lower(ucs4_t cp) {
    if (cp < 0x80) {
        return cp >= 'A' && cp <= 'Z' ? cp - 'A' + 'a' : cp;
    }
    const locale_t loc = utf8_ctype();
    return loc == static_cast<locale_t>(nullptr)
               ? cp
               : static_cast<ucs4_t>(::towlower_l(static_cast<wint_t>(cp), loc));
}

void append(std::string& out, ucs4_t cp) {
    std::uint8_t buf[6];
    const int n = u8_uctomb(buf, cp, sizeof buf);
    if (n > 0) {
        out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
    }
}

// Applies `step` to every code point of `in` (a byte that is not UTF-8 is passed on as is,
// with `cp` < 0). `step` appends to `out`.
template <typename Step>
std::string each_code_point(std::string_view in, Step step) {
    std::string out;
    out.reserve(in.size());
    const auto* s = reinterpret_cast<const std::uint8_t*>(in.data());
    for (std::size_t i = 0; i < in.size();) {
        ucs4_t cp = 0;
        const int len = u8_mbtoucr(&cp, s + i, in.size() - i);
        if (len <= 0) {
            out.push_back(in[i]);
            ++i;
            continue;
        }
        step(out, cp);
        i += static_cast<std::size_t>(len);
    }
    return out;
}

// Unicode full case folding and NFKC; the input unchanged when it is not UTF-8.
std::string fold_nfkc(const std::string& in) {
    std::size_t length = 0;
    const auto* s = reinterpret_cast<const std::uint8_t*>(in.data());
    if (u8_check(s, in.size()) != nullptr) {
        return in;
    }
    std::unique_ptr<std::uint8_t, decltype(&std::free)> folded(
        u8_casefold(s, in.size(), nullptr, UNINORM_NFKC, nullptr, &length), &std::free);
    if (!folded) {
        return in;
    }
    return {reinterpret_cast<const char*>(folded.get()), length};
}

}  // namespace

std::string username_problem(std::string_view username) {
    if (username.empty()) {
        return "username must not be empty";
    }
    if (username.size() > max_username_bytes) {
        return "username is longer than 256 bytes";
    }
    if (text::has_control_characters(username)) {
        return "username contains control characters";
    }
    return {};
}

std::string canonical_username(std::string_view username) {
    // Map (RFC 4518 2.2) and lower-case one code point at a time...
    const std::string mapped = each_code_point(username, [](std::string& out, ucs4_t cp) {
        if (maps_to_nothing(cp)) {
            return;
        }
        append(out, maps_to_space(cp) ? ucs4_t{0x20} : simple_lower(cp));
    });
    // ... fold and normalize (2.3), which can bring new spaces ("¨" is " ̈") ...
    const std::string folded = fold_nfkc(mapped);
    // ... then the insignificant spaces (2.6.1): trimmed, and a run counts as one.
    bool pending_space = false;
    return each_code_point(folded, [&pending_space](std::string& out, ucs4_t cp) {
        if (maps_to_nothing(cp)) {
            return;
        }
        if (maps_to_space(cp)) {
            pending_space = !out.empty();
            return;
        }
        if (pending_space) {
            out.push_back(' ');
            pending_space = false;
        }
        append(out, cp);
    });
}

}  // namespace pwresetd::daemon
