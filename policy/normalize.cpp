#include "policy/normalize.hpp"

namespace pwresetd::policy {

namespace {

constexpr char32_t latin1_multiplication_sign = 0xD7;
constexpr char32_t latin1_division_sign = 0xF7;
constexpr char32_t capital_y_with_diaeresis = 0x178;
constexpr char32_t small_y_with_diaeresis = 0xFF;

constexpr bool is_upper(char32_t c) noexcept {
    return (c >= U'A' && c <= U'Z') ||
           (c >= 0xC0 && c <= 0xDE && c != latin1_multiplication_sign) ||
           c == capital_y_with_diaeresis;
}

constexpr bool is_lower(char32_t c) noexcept {
    return (c >= U'a' && c <= U'z') || (c >= 0xDF && c <= 0xFF && c != latin1_division_sign);
}

// Direct lookup for the ASCII range, built once from normalization_substitutions.
constexpr std::array<char32_t, 128> substitution_lookup() {
    std::array<char32_t, 128> table{};
    for (char32_t c = 0; c < table.size(); ++c) {
        table[c] = c;
    }
    for (const auto& s : normalization_substitutions) {
        if (s.from >= table.size() || s.to >= table.size()) {
            throw "normalization_substitutions must stay within ASCII";
        }
        table[s.from] = s.to;
    }
    return table;
}

constexpr std::array<char32_t, 128> ascii_substitutions = substitution_lookup();

}  // namespace

char32_t fold_case(char32_t c) noexcept {
    if (c == capital_y_with_diaeresis) {
        return small_y_with_diaeresis;
    }
    return is_upper(c) ? c + 0x20 : c;
}

char32_t normalize_char(char32_t c) noexcept {
    const char32_t folded = fold_case(c);
    return folded < ascii_substitutions.size() ? ascii_substitutions[folded] : folded;
}

void fold_case(std::span<char32_t> text) noexcept {
    for (char32_t& c : text) {
        c = fold_case(c);
    }
}

void normalize(std::span<char32_t> text) noexcept {
    for (char32_t& c : text) {
        c = normalize_char(c);
    }
}

char_class classify(char32_t c) noexcept {
    if (is_lower(c)) {
        return char_class::lower;
    }
    if (is_upper(c)) {
        return char_class::upper;
    }
    if (c >= U'0' && c <= U'9') {
        return char_class::digit;
    }
    return char_class::other;
}

}  // namespace pwresetd::policy
