#pragma once
// Password text normalization shared by the banned-list and name rules, in one place.
//
// fold_case lowercases ASCII and the Latin-1 letters (A-Z, À-Þ except ×, and Ÿ), which
// covers English, Swedish and the other Western European alphabets; every other code point
// is left as it is (no locale, no tables, so the result never depends on the host).
//
// normalize_char is fold_case followed by the substitution table, an extension of the
// Microsoft Entra Password Protection table ("How are passwords evaluated": 0→o, 1→l, $→s,
// @→a), so that "P@$$w0rd" and "password" compare equal. Every mapping is one code point
// to one code point: positions in the normalized text are positions in the password.
#include <array>
#include <span>

namespace pwresetd::policy {

struct substitution {
    char32_t from;
    char32_t to;
};

inline constexpr std::array<substitution, 13> normalization_substitutions{{
    {U'0', U'o'},
    {U'1', U'l'},
    {U'$', U's'},
    {U'@', U'a'},
    {U'3', U'e'},
    {U'4', U'a'},
    {U'5', U's'},
    {U'7', U't'},
    {U'8', U'b'},
    {U'9', U'g'},
    {U'!', U'i'},
    {U'|', U'l'},
    {U'+', U't'},
}};

[[nodiscard]] char32_t fold_case(char32_t c) noexcept;
[[nodiscard]] char32_t normalize_char(char32_t c) noexcept;

// In place, code point by code point.
void fold_case(std::span<char32_t> text) noexcept;
void normalize(std::span<char32_t> text) noexcept;

enum class char_class { lower, upper, digit, other };

// ASCII and Latin-1 letters by case, ASCII digits; everything else (other scripts,
// punctuation, symbols, emoji, combining marks) is `other`.
[[nodiscard]] char_class classify(char32_t c) noexcept;

}  // namespace pwresetd::policy
