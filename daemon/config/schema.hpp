#pragma once
// The schema engine behind load_config: a report that collects every error and warning with
// its position, the keys each map accepts (unknown ones get a did-you-mean), and typed
// readers that report a wrong value and assign only a valid one, so defaults stay when a key
// is absent or wrong. Section readers (sections.hpp) are written with these.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::daemon::config_detail {

// Every error and warning, positioned; errors are sorted by position before they are
// reported, warnings keep the order they were found in.
class report {
public:
    explicit report(std::string file) : file_(std::move(file)) {}

    void error(const YAML::Mark& at, std::string_view path, std::string_view message);
    void warning(const YAML::Mark& at, std::string_view path, std::string_view message);
    // An error about the file as a whole (it cannot be read): no position.
    void file_error(std::string_view message);

    [[nodiscard]] bool has_errors() const noexcept { return !errors_.empty(); }
    [[nodiscard]] std::size_t error_count() const noexcept { return errors_.size(); }
    [[nodiscard]] std::vector<std::string> take_warnings() { return std::move(warnings_); }
    [[nodiscard]] std::vector<std::string> take_errors();

private:
    struct entry {
        int line;
        int column;
        std::string text;
    };

    [[nodiscard]] std::string format(const YAML::Mark& at, std::string_view path,
                                     std::string_view message) const;

    std::string file_;
    std::vector<entry> errors_;
    std::vector<std::string> warnings_;
};

// Levenshtein distance, ignoring ASCII case.
std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'NAME'?)" for the name closest to `word`, or "" when none is close enough.
// Items are key_spec or choice: anything with a `name`.
template <class Items>
std::string did_you_mean(std::string_view word, const Items& names) {
    const std::size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
    std::string_view best;
    std::size_t best_distance = limit + 1;
    for (const auto& item : names) {
        const std::string_view candidate = item.name;
        const std::size_t d = edit_distance(word, candidate);
        if (d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best.empty() ? std::string() : " (did you mean '" + std::string(best) + "'?)";
}

// ---- schema: the keys each map accepts ------------------------------------------------

enum class key_kind {
    supported,
    not_yet,        // in CONFIG.md, not implemented by this version
    inline_secret,  // never valid: the secret goes in `<name>_file` or `<name>_credential`
};

// Tables list plain names ("issuer"), not_yet("notify") and inline_secret("password").
struct key_spec {
    // NOLINTNEXTLINE(google-explicit-constructor): tables of plain names read best.
    constexpr key_spec(const char* key, key_kind k = key_kind::supported) : name(key), kind(k) {}

    std::string_view name;
    key_kind kind;
};

constexpr key_spec not_yet(const char* key) {
    return {key, key_kind::not_yet};
}
constexpr key_spec inline_secret(const char* key) {
    return {key, key_kind::inline_secret};
}

// A word the file may write for a value, and the value it stands for.
template <class T>
struct choice {
    std::string_view name;
    T value;
};

// ---- typed access to YAML values -------------------------------------------------------

// A value in the document with its key path; `key_mark` is where its key (or, in a list,
// the element itself) starts, used when the value is empty and has no useful position.
struct field {
    std::string path;
    YAML::Node value;
    YAML::Mark key_mark;

    [[nodiscard]] YAML::Mark value_mark() const { return value.IsNull() ? key_mark : value.Mark(); }
};

// How a value is named in a message: "a map", "'text'", "the quoted string \"text\"".
std::string describe(const YAML::Node& node);

// The entries of one YAML map, checked against its keys: unknown, not yet supported,
// inline secrets and duplicate keys are reported when the view is made and left out of it.
class map_view {
public:
    map_view(report& r, const YAML::Node& node, std::string path, std::span<const key_spec> keys);

    [[nodiscard]] std::optional<field> get(std::string_view key) const;
    // As get(); an absent key is reported as missing.
    [[nodiscard]] std::optional<field> require(report& r, std::string_view key) const;

    [[nodiscard]] std::string path_of(std::string_view key) const;
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] const YAML::Mark& mark() const noexcept { return mark_; }

private:
    std::string path_;
    YAML::Mark mark_;
    std::map<std::string, field, std::less<>> entries_;
};

// Each as_* reports a value of the wrong type or out of range and returns nullopt for it.
std::optional<map_view> as_map(report& r, const field& f, std::span<const key_spec> keys);
std::optional<std::vector<field>> as_list(report& r, const field& f);
// As as_list; an empty list is reported as "needs at least one <what>" (and returned).
std::optional<std::vector<field>> as_nonempty_list(report& r, const field& f,
                                                   std::string_view what);
// The list under a required key of `m`; missing (nullopt), not a list (nullopt) and empty are
// reported.
std::optional<std::vector<field>> require_nonempty_list(report& r, const map_view& m,
                                                        std::string_view key,
                                                        std::string_view what);
std::optional<std::string> as_string(report& r, const field& f);  // never empty
std::optional<bool> as_bool(report& r, const field& f);
std::optional<long long> as_integer(report& r, const field& f, long long low, long long high);

template <class T, std::size_t N>
std::optional<T> as_choice(report& r, const field& f, const std::array<choice<T>, N>& choices) {
    if (f.value.IsScalar()) {
        for (const auto& c : choices) {
            if (c.name == f.value.Scalar()) {
                return c.value;
            }
        }
    }
    std::string names;
    for (const auto& c : choices) {
        names.append(names.empty() ? "" : ", ").append(c.name);
    }
    const std::string hint = f.value.IsScalar() ? did_you_mean(f.value.Scalar(), choices) : "";
    r.error(f.value_mark(), f.path,
            "expected one of " + names + ", got " + describe(f.value) + hint);
    return std::nullopt;
}

// Small helpers that assign only a valid value, so defaults stay when the key is absent.
template <class T>
void read_int(report& r, const map_view& m, std::string_view key, long long low, long long high,
              T& out) {
    if (const auto f = m.get(key)) {
        if (const auto v = as_integer(r, *f, low, high)) {
            out = static_cast<T>(*v);
        }
    }
}

void read_bool(report& r, const map_view& m, std::string_view key, bool& out);
void read_string(report& r, const map_view& m, std::string_view key, std::string& out);
void read_required_string(report& r, const map_view& m, std::string_view key, std::string& out);

template <class T, std::size_t N>
void read_choice(report& r, const map_view& m, std::string_view key,
                 const std::array<choice<T>, N>& choices, T& out) {
    if (const auto f = m.get(key)) {
        if (const auto v = as_choice(r, *f, choices)) {
            out = *v;
        }
    }
}

// The valid strings of a list (wrong elements are reported and left out).
std::vector<std::string> read_string_list(report& r, const field& f);

}  // namespace pwresetd::daemon::config_detail
