#pragma once
// Human messages for error codes and policy rules. One catalog file per language,
// daemon/messages/<lang>.json (flat: "error.<code>", "rule.<rule>"), compiled into the
// binary: adding a language is adding one file. English is complete by test; another
// catalog's missing key falls back to English. Machine codes never change with the language
// (API.md); Accept-Language picks the text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::daemon {

// A language tag of one of the compiled-in catalogs ("en", "sv").
using language = std::string_view;
inline constexpr language default_language = "en";

// Every catalog compiled in, English first.
std::vector<std::string_view> available_languages();

// RFC 9110 Accept-Language with q-values and region tags (`sv-SE` → sv); fallback en.
language pick_language(std::string_view accept_language);
std::string message_for_error(std::string_view error_code, language lang);
// `{value}` is replaced by the rule's number; `detail` (the directory's own words) is shown
// for directory_policy.
std::string message_for_rule(std::string_view rule, std::optional<std::int64_t> value,
                             std::string_view detail, language lang);

// A catalog text with `{minutes}` filled in (e.g. "mail.code.subject").
std::string message_text(std::string_view key, language lang, int minutes = 0);
// The text that carries a one-time code ("mail.code.body", "sms.code.text"): `{code}` and
// `{minutes}` filled in, built without leaving a copy of the code outside the secret.
secret code_message(std::string_view key, language lang, const secret& code, int minutes);

// The catalog's raw entry, or nullopt (tests: every catalog covers every key).
std::optional<std::string> catalog_entry(language lang, std::string_view key);
std::vector<std::string> catalog_keys(language lang);

}  // namespace pwresetd::daemon
