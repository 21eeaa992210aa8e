#include "daemon/config/schema.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <system_error>
#include <utility>

namespace pwresetd::daemon::config_detail {

namespace {

int line_of(const YAML::Mark& m) {
    return std::max(m.line, 0) + 1;
}
int column_of(const YAML::Mark& m) {
    return std::max(m.column, 0) + 1;
}

bool is_plain_scalar(const YAML::Node& node) {
    return node.IsScalar() && node.Tag() == "?";
}

}  // namespace

void report::error(const YAML::Mark& at, std::string_view path, std::string_view message) {
    errors_.push_back({line_of(at), column_of(at), format(at, path, message)});
}

void report::warning(const YAML::Mark& at, std::string_view path, std::string_view message) {
    warnings_.push_back(format(at, path, message));
}

void report::file_error(std::string_view message) {
    errors_.push_back({0, 0, file_ + ": " + std::string(message)});
}

std::vector<std::string> report::take_errors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const entry& a, const entry& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    std::vector<std::string> out;
    out.reserve(errors_.size());
    for (auto& e : errors_) {
        out.push_back(std::move(e.text));
    }
    return out;
}

std::string report::format(const YAML::Mark& at, std::string_view path,
                           std::string_view message) const {
    std::string out =
        file_ + ':' + std::to_string(line_of(at)) + ':' + std::to_string(column_of(at)) + ": ";
    if (!path.empty()) {
        out.append(path).append(": ");
    }
    out.append(message);
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const auto lower = [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const std::size_t substitution =
                diagonal + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar: {
            constexpr std::size_t max_shown = 40;
            std::string text = node.Scalar().substr(0, max_shown);
            if (node.Scalar().size() > max_shown) {
                text += "...";
            }
            return node.Tag() == "!" ? "the quoted string \"" + text + '"' : "'" + text + "'";
        }
        default:
            return "nothing";
    }
}

map_view::map_view(report& r, const YAML::Node& node, std::string path,
                   std::span<const key_spec> keys)
    : path_(std::move(path)), mark_(node.Mark()) {
    for (const auto& pair : node) {
        // Copies: yaml-cpp's iterators hand out proxies, a reference would dangle.
        const YAML::Node key = pair.first;
        if (!key.IsScalar()) {
            r.error(key.Mark(), path_, "keys must be plain strings");
            continue;
        }
        const std::string& name = key.Scalar();
        const std::string key_path = path_of(name);
        const auto spec = std::find_if(keys.begin(), keys.end(),
                                       [&](const key_spec& k) { return k.name == name; });
        if (spec == keys.end()) {
            r.error(key.Mark(), key_path, "unknown key" + did_you_mean(name, keys));
            continue;
        }
        if (spec->kind == key_kind::not_yet) {
            r.error(key.Mark(), key_path, "not supported by this version yet");
            continue;
        }
        if (spec->kind == key_kind::inline_secret) {
            std::string message = "secrets are never written inline; use ";
            message.append(name).append("_file or ").append(name).append("_credential");
            r.error(key.Mark(), key_path, message);
            continue;
        }
        const auto [first, inserted] =
            entries_.try_emplace(name, field{key_path, pair.second, key.Mark()});
        if (!inserted) {
            r.error(key.Mark(), key_path,
                    "duplicate key (first at line " +
                        std::to_string(first->second.key_mark.line + 1) + ")");
        }
    }
}

std::optional<field> map_view::get(std::string_view key) const {
    const auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    return it->second;
}

std::optional<field> map_view::require(report& r, std::string_view key) const {
    auto f = get(key);
    if (!f) {
        r.error(mark_, path_, "missing required key '" + std::string(key) + "'");
    }
    return f;
}

std::string map_view::path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + '.' + std::string(key);
}

std::optional<map_view> as_map(report& r, const field& f, std::span<const key_spec> keys) {
    if (!f.value.IsMap()) {
        r.error(f.value_mark(), f.path, "expected a map, got " + describe(f.value));
        return std::nullopt;
    }
    return map_view(r, f.value, f.path, keys);
}

std::optional<std::vector<field>> as_list(report& r, const field& f) {
    if (!f.value.IsSequence()) {
        r.error(f.value_mark(), f.path, "expected a list, got " + describe(f.value));
        return std::nullopt;
    }
    std::vector<field> items;
    std::size_t index = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++index) {
        const YAML::Node item = *it;
        const YAML::Mark at = item.IsNull() ? f.value.Mark() : item.Mark();
        items.push_back({f.path + '[' + std::to_string(index) + ']', item, at});
    }
    return items;
}

std::optional<std::vector<field>> as_nonempty_list(report& r, const field& f,
                                                   std::string_view what) {
    auto items = as_list(r, f);
    if (items && items->empty()) {
        r.error(f.value_mark(), f.path, "needs at least one " + std::string(what));
    }
    return items;
}

std::optional<std::vector<field>> require_nonempty_list(report& r, const map_view& m,
                                                        std::string_view key,
                                                        std::string_view what) {
    const auto f = m.require(r, key);
    return f ? as_nonempty_list(r, *f, what) : std::nullopt;
}

std::optional<std::string> as_string(report& r, const field& f) {
    if (!f.value.IsScalar()) {
        r.error(f.value_mark(), f.path, "expected a string, got " + describe(f.value));
        return std::nullopt;
    }
    if (f.value.Scalar().empty()) {
        r.error(f.value_mark(), f.path, "must not be empty");
        return std::nullopt;
    }
    return f.value.Scalar();
}

std::optional<bool> as_bool(report& r, const field& f) {
    if (is_plain_scalar(f.value) && (f.value.Scalar() == "true" || f.value.Scalar() == "false")) {
        return f.value.Scalar() == "true";
    }
    r.error(f.value_mark(), f.path, "expected true or false, got " + describe(f.value));
    return std::nullopt;
}

std::optional<long long> as_integer(report& r, const field& f, long long low, long long high) {
    const auto range = std::to_string(low) + ".." + std::to_string(high);
    const std::string& text = f.value.Scalar();
    long long value = 0;
    const char* end = text.data() + text.size();
    const auto [stop, err] = std::from_chars(text.data(), end, value);
    if (!is_plain_scalar(f.value) || text.empty() || stop != end ||
        (err != std::errc() && err != std::errc::result_out_of_range)) {
        r.error(f.value_mark(), f.path,
                "expected an integer in " + range + ", got " + describe(f.value));
        return std::nullopt;
    }
    if (err == std::errc::result_out_of_range || value < low || value > high) {
        r.error(f.value_mark(), f.path, "must be in " + range + ", got " + text);
        return std::nullopt;
    }
    return value;
}

void read_bool(report& r, const map_view& m, std::string_view key, bool& out) {
    if (const auto f = m.get(key)) {
        if (const auto v = as_bool(r, *f)) {
            out = *v;
        }
    }
}

void read_string(report& r, const map_view& m, std::string_view key, std::string& out) {
    if (const auto f = m.get(key)) {
        if (auto v = as_string(r, *f)) {
            out = std::move(*v);
        }
    }
}

void read_required_string(report& r, const map_view& m, std::string_view key, std::string& out) {
    if (const auto f = m.require(r, key)) {
        if (auto v = as_string(r, *f)) {
            out = std::move(*v);
        }
    }
}

std::vector<std::string> read_string_list(report& r, const field& f) {
    std::vector<std::string> out;
    if (const auto items = as_list(r, f)) {
        for (const auto& item : *items) {
            if (auto v = as_string(r, item)) {
                out.push_back(std::move(*v));
            }
        }
    }
    return out;
}

}  // namespace pwresetd::daemon::config_detail
