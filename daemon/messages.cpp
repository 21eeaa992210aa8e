#include "daemon/messages.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include "common/text.hpp"
#include "daemon/message_catalogs.hpp"

namespace pwresetd::daemon {
namespace {

struct catalog {
    std::string tag;
    std::map<std::string, std::string, std::less<>> entries;
};

std::vector<catalog> load_catalogs() {
    std::vector<catalog> out;
    for (const auto& source : compiled_catalogs()) {
        catalog c;
        c.tag = std::string(source.tag);
        const auto doc = boost::json::parse(source.json);
        for (const auto& [key, value] : doc.as_object()) {
            c.entries.emplace(std::string(key), std::string(value.as_string()));
        }
        out.push_back(std::move(c));
    }
    std::stable_partition(out.begin(), out.end(),
                          [](const catalog& c) { return c.tag == default_language; });
    if (out.empty() || out.front().tag != default_language) {
        throw std::logic_error("messages: the English catalog is missing");
    }
    return out;
}

const std::vector<catalog>& catalogs() {
    static const std::vector<catalog> all = load_catalogs();
    return all;
}

const catalog& find_catalog(language lang) {
    for (const auto& c : catalogs()) {
        if (c.tag == lang) {
            return c;
        }
    }
    return catalogs().front();
}

std::string lookup(language lang, std::string_view key) {
    if (auto v = catalog_entry(lang, key)) {
        return *v;
    }
    if (auto v = catalog_entry(default_language, key)) {
        return *v;
    }
    return {};
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
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

std::vector<std::string_view> available_languages() {
    std::vector<std::string_view> tags;
    for (const auto& c : catalogs()) {
        tags.emplace_back(c.tag);
    }
    return tags;
}

std::optional<std::string> catalog_entry(language lang, std::string_view key) {
    for (const auto& c : catalogs()) {
        if (c.tag == lang) {
            if (const auto it = c.entries.find(key); it != c.entries.end()) {
                return it->second;
            }
            return std::nullopt;
        }
    }
    return std::nullopt;
}

std::vector<std::string> catalog_keys(language lang) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : find_catalog(lang).entries) {
        keys.push_back(k);
    }
    return keys;
}

language pick_language(std::string_view header) {
    language best = default_language;
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
        for (const auto& c : catalogs()) {
            if (c.tag == primary && q > 0.0 && q > best_q) {
                best = c.tag;
                best_q = q;
            }
        }
    }
    return best;
}

std::string message_for_error(std::string_view code, language lang) {
    std::string text = lookup(lang, "error." + std::string(code));
    return text.empty() ? lookup(lang, "error.internal") : text;
}

std::string message_for_rule(std::string_view rule, std::optional<std::int64_t> value,
                             std::string_view detail, language lang) {
    std::string key = "rule." + std::string(rule);
    if (rule == "directory_policy" && !detail.empty()) {
        key += ".detail";
    }
    std::string text = lookup(lang, key);
    if (text.empty()) {
        text = lookup(lang, "rule.directory_policy");
    }
    replace_all(text, "{value}", value ? std::to_string(*value) : std::string());
    replace_all(text, "{detail}", detail);
    return text;
}

std::string message_text(std::string_view key, language lang, int minutes) {
    std::string text = lookup(lang, key);
    replace_all(text, "{minutes}", std::to_string(minutes));
    return text;
}

secret code_message(std::string_view key, language lang, const secret& code, int minutes) {
    const std::string text = message_text(key, lang, minutes);
    const auto at = text.find("{code}");
    if (at == std::string::npos) {
        throw std::logic_error("message catalog entry without {code}: " + std::string(key));
    }
    constexpr std::string_view marker = "{code}";
    std::string buffer;
    buffer.reserve(text.size() + code.size());
    buffer.append(text, 0, at).append(code.view()).append(text, at + marker.size());
    secret out(buffer);
    wipe(buffer.data(), buffer.capacity());
    return out;
}

}  // namespace pwresetd::daemon
