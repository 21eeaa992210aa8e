#pragma once
// Human messages for error codes and violation rules, in English and Swedish. Machine codes
// never change with the language (API.md); Accept-Language picks the text.
#include <string>
#include <string_view>

namespace pwresetd::daemon {

enum class language { en, sv };

// RFC 9110 Accept-Language with q-values and region tags (`sv-SE` → sv); fallback en.
language pick_language(std::string_view accept_language);
std::string_view message_for_error(std::string_view error_code, language lang);
// `detail` is the directory's own words, shown for directory_policy only.
std::string message_for_rule(std::string_view rule, std::string_view detail, language lang);

}  // namespace pwresetd::daemon
