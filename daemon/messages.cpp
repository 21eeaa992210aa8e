#include "daemon/messages.hpp"

#include <array>
#include <cstdlib>
#include <optional>

#include "common/text.hpp"

namespace pwresetd::daemon {
namespace {

struct entry {
    std::string_view code;
    std::string_view en;
    std::string_view sv;
};

constexpr std::array error_messages{
    entry{"bad_request", "The request is not valid.", "Begäran är ogiltig."},
    entry{"unauthenticated", "Authentication is required: send a valid API key.",
          "Autentisering krävs: skicka en giltig API-nyckel."},
    entry{"forbidden", "This client may not use this endpoint.",
          "Den här klienten får inte använda den här funktionen."},
    entry{"not_found", "There is no such endpoint.", "Det finns ingen sådan funktion."},
    entry{"method_not_allowed", "This method is not allowed on this endpoint.",
          "Metoden är inte tillåten här."},
    entry{"payload_too_large", "The request body is too large.", "Begärans innehåll är för stort."},
    entry{"headers_too_large", "The request headers are too large.",
          "Begärans huvuden är för stora."},
    entry{"unsupported_media_type", "Send the request body as application/json.",
          "Skicka innehållet som application/json."},
    entry{"directory_unavailable",
          "The directory cannot be reached right now. Try again in a few minutes.",
          "Katalogen kan inte nås just nu. Försök igen om några minuter."},
    entry{"overloaded", "The service is busy. Try again in a moment.",
          "Tjänsten är upptagen. Försök igen om en stund."},
    entry{"internal", "Something went wrong. Try again later.",
          "Något gick fel. Försök igen senare."},
    entry{"not_implemented", "This endpoint is not available in this version.",
          "Funktionen finns inte i den här versionen."},
    entry{"invalid_code", "The code is not correct.", "Koden är inte korrekt."},
    entry{"locked", "Too many failed attempts. Try again later.",
          "För många misslyckade försök. Försök igen senare."},
    entry{"verification_required", "Verify your identity before choosing a new password.",
          "Verifiera din identitet innan du väljer ett nytt lösenord."},
    entry{"locked_in_directory",
          "The account is locked in the directory. Use the password reset to unlock it.",
          "Kontot är låst i katalogen. Använd lösenordsåterställningen för att låsa upp det."},
    entry{"password_rejected", "The new password does not meet the password policy.",
          "Det nya lösenordet uppfyller inte lösenordspolicyn."},
    entry{"reset_expired", "This password reset has expired or was already used. Start again.",
          "Återställningen har gått ut eller redan använts. Börja om."},
    entry{"enrollment_expired", "This enrollment has expired. Start again.",
          "Registreringen har gått ut. Börja om."},
    entry{"invalid_credentials", "The username or password is not correct.",
          "Användarnamnet eller lösenordet är inte korrekt."},
};

constexpr std::array rule_messages{
    entry{"min_length", "The password is too short.", "Lösenordet är för kort."},
    entry{"max_length", "The password is too long.", "Lösenordet är för långt."},
    entry{"complexity", "The password does not meet the directory's complexity rules.",
          "Lösenordet uppfyller inte katalogens krav på komplexitet."},
    entry{"history", "You have used this password before. Choose one you have not used.",
          "Du har använt lösenordet tidigare. Välj ett som du inte har använt."},
    entry{"too_young", "The password was changed too recently to be changed again yet.",
          "Lösenordet ändrades nyss och kan inte ändras igen än."},
    entry{"directory_policy", "The directory refused the password.",
          "Katalogen godtog inte lösenordet."},
};

template <std::size_t N>
const entry* find(const std::array<entry, N>& table, std::string_view code) {
    for (const auto& e : table) {
        if (e.code == code) {
            return &e;
        }
    }
    return nullptr;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

language pick_language(std::string_view header) {
    language best = language::en;
    double best_q = -1.0;
    while (!header.empty()) {
        const auto comma = header.find(',');
        std::string_view item = trim(header.substr(0, comma));
        header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
        double q = 1.0;
        if (const auto semi = item.find(';'); semi != std::string_view::npos) {
            std::string_view params = trim(item.substr(semi + 1));
            item = trim(item.substr(0, semi));
            if (params.size() > 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
                const std::string value(params.substr(2));
                char* end = nullptr;
                q = std::strtod(value.c_str(), &end);
                if (end == value.c_str()) {
                    q = 0.0;
                }
            }
        }
        const std::string primary = text::ascii_lower(item.substr(0, item.find('-')));
        std::optional<language> lang;
        if (primary == "en") {
            lang = language::en;
        } else if (primary == "sv") {
            lang = language::sv;
        }
        if (lang && q > 0.0 && q > best_q) {
            best = *lang;
            best_q = q;
        }
    }
    return best;
}

std::string_view message_for_error(std::string_view code, language lang) {
    const entry* e = find(error_messages, code);
    if (e == nullptr) {
        e = find(error_messages, "internal");
    }
    return lang == language::sv ? e->sv : e->en;
}

std::string message_for_rule(std::string_view rule, std::string_view detail, language lang) {
    const entry* e = find(rule_messages, rule);
    if (e == nullptr) {
        e = find(rule_messages, "directory_policy");
    }
    std::string text(lang == language::sv ? e->sv : e->en);
    if (e->code == "directory_policy" && !detail.empty()) {
        text += " (";
        text += detail;
        text += ")";
    }
    return text;
}

}  // namespace pwresetd::daemon
