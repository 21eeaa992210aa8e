#include "daemon/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "factors/codes.hpp"

namespace pwresetd::daemon {

namespace {

namespace fs = std::filesystem;

std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& line : lines) {
        if (!out.empty()) {
            out += '\n';
        }
        out += line;
    }
    return out.empty() ? "invalid configuration" : out;
}

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

// Every error and warning, positioned; sorted by position before they are reported.
class report {
public:
    explicit report(std::string file) : file_(std::move(file)) {}

    void error(const YAML::Mark& at, std::string_view path, std::string_view message) {
        errors_.push_back({line_of(at), column_of(at), format(at, path, message)});
    }
    void warning(const YAML::Mark& at, std::string_view path, std::string_view message) {
        warnings_.push_back(format(at, path, message));
    }
    void file_error(std::string_view message) {
        errors_.push_back({0, 0, file_ + ": " + std::string(message)});
    }

    [[nodiscard]] bool has_errors() const noexcept { return !errors_.empty(); }
    [[nodiscard]] std::vector<std::string> take_warnings() { return std::move(warnings_); }
    [[nodiscard]] std::vector<std::string> take_errors() {
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

private:
    struct entry {
        int line;
        int column;
        std::string text;
    };

    static int line_of(const YAML::Mark& m) { return std::max(m.line, 0) + 1; }
    static int column_of(const YAML::Mark& m) { return std::max(m.column, 0) + 1; }

    [[nodiscard]] std::string format(const YAML::Mark& at, std::string_view path,
                                     std::string_view message) const {
        std::string out =
            file_ + ':' + std::to_string(line_of(at)) + ':' + std::to_string(column_of(at)) + ": ";
        if (!path.empty()) {
            out.append(path).append(": ");
        }
        out.append(message);
        return out;
    }

    std::string file_;
    std::vector<entry> errors_;
    std::vector<std::string> warnings_;
};

// Levenshtein distance, ignoring ASCII case.
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
    disabled_only,  // not implemented; accepted only as a block with `enabled: false`
    refused,        // never valid; `hint` says what to write instead
};

struct key_spec {
    std::string_view name;
    key_kind kind = key_kind::supported;
    std::string_view hint{};
};

constexpr std::string_view inline_secret_hint =
    "secrets are never written inline; use bind_password_file or bind_password_credential";

constexpr auto root_keys = std::to_array<key_spec>({
    {"listen"},
    {"metrics_listen", key_kind::not_yet},
    {"tls"},
    {"clients"},
    {"directory"},
    {"directories"},
    {"policy"},
    {"factors"},
    {"mail"},
    {"limits"},
    {"state"},
    {"secrets"},
    {"audit"},
    {"log"},
    {"admin_socket", key_kind::not_yet},
    {"notify", key_kind::not_yet},
});
constexpr auto tls_keys =
    std::to_array<key_spec>({{"certificate"}, {"private_key"}, {"client_ca", key_kind::not_yet}});
constexpr auto client_keys = std::to_array<key_spec>(
    {{"name"}, {"api_key_sha256"}, {"certificate_subject", key_kind::not_yet}, {"scopes"}});
constexpr auto directory_keys = std::to_array<key_spec>({
    {"kind"},
    {"uris"},
    {"start_tls"},
    {"ca_file"},
    {"bind_dn"},
    {"bind_password_file"},
    {"bind_password_credential"},
    {"bind_password", key_kind::refused, inline_secret_hint},
    {"user_base"},
    {"user_filter"},
    {"timeout_ms"},
    {"pool_size"},
    {"attributes"},
    {"password_write"},
    {"unlock_on_reset"},
    {"force_change_at_next_logon"},
    {"protected_groups"},
    {"require_policy_hints"},
    {"protect_admin_count"},
    {"name"},     // only in `directories:` blocks
    {"domains"},  // only in `directories:` blocks
});
constexpr auto attribute_keys = std::to_array<key_spec>({{"email"}, {"phone"}, {"display_name"}});
constexpr auto policy_keys = std::to_array<key_spec>({
    {"min_length"},
    {"max_length"},
    {"character_classes"},
    {"reject_username"},
    {"banned_words_file"},
    {"breached_hashes_file"},
    {"banned_score_threshold"},
});
constexpr auto factor_keys = std::to_array<key_spec>({
    {"required"},
    {"two_methods_groups"},
    {"totp_when_enrolled"},
    {"codes_per_destination_per_hour"},
    {"totp"},
    {"email"},
    {"sms"},
});
constexpr auto totp_keys = std::to_array<key_spec>(
    {{"enabled"}, {"issuer"}, {"digits"}, {"period"}, {"skew_steps"}, {"algorithm"}});
constexpr std::string_view inline_token_hint =
    "secrets are never written inline; use bearer_token_file or bearer_token_credential";
constexpr std::string_view inline_mail_password_hint =
    "secrets are never written inline; use password_file or password_credential";
constexpr std::string_view inline_redis_password_hint =
    "secrets are never written inline; use redis_password_file or redis_password_credential";
constexpr auto email_keys = std::to_array<key_spec>({{"enabled"}, {"code_ttl_s"}, {"code_digits"}});
constexpr auto sms_keys = std::to_array<key_spec>({
    {"enabled"},
    {"webhook_url"},
    {"code_ttl_s"},
    {"code_digits"},
    {"bearer_token_file"},
    {"bearer_token_credential"},
    {"bearer_token", key_kind::refused, inline_token_hint},
    {"ca_file"},
    {"timeout_ms"},
    {"retries"},
    {"country_code"},
});
constexpr auto mail_keys = std::to_array<key_spec>({
    {"smtp_url"},
    {"from"},
    {"ca_file"},
    {"require_tls"},
    {"username"},
    {"password_file"},
    {"password_credential"},
    {"password", key_kind::refused, inline_mail_password_hint},
    {"timeout_ms"},
    {"retries"},
});
constexpr auto limit_keys = std::to_array<key_spec>({{"verify_failures"},
                                                     {"lockout_s"},
                                                     {"per_ip_per_minute"},
                                                     {"reset_ttl_s"},
                                                     {"max_body_bytes"},
                                                     {"header_timeout_s"},
                                                     {"max_connections"}});
constexpr auto state_keys = std::to_array<key_spec>({
    {"backend"},
    {"path"},
    {"redis_url"},
    {"redis_password_file"},
    {"redis_password_credential"},
    {"redis_password", key_kind::refused, inline_redis_password_hint},
});
constexpr auto secrets_keys = std::to_array<key_spec>({{"key_file"}});
constexpr auto audit_keys = std::to_array<key_spec>({{"file"}});
constexpr auto log_keys = std::to_array<key_spec>({{"level"}});

template <class T>
struct choice {
    std::string_view name;
    T value;
};

constexpr auto directory_kinds = std::to_array<choice<ldap::directory_kind>>({
    {"openldap", ldap::directory_kind::openldap},
    {"active_directory", ldap::directory_kind::active_directory},
});
constexpr auto password_write_modes = std::to_array<choice<ldap::password_write_mode>>({
    {"exop", ldap::password_write_mode::exop},
    {"modify", ldap::password_write_mode::modify},
});
constexpr auto totp_algorithms = std::to_array<choice<factors::totp_algorithm>>({
    {"SHA1", factors::totp_algorithm::sha1},
    {"SHA256", factors::totp_algorithm::sha256},
    {"SHA512", factors::totp_algorithm::sha512},
});
constexpr auto state_backends = std::to_array<choice<std::string_view>>({
    {"sqlite", "sqlite"},
    {"redis", "redis"},
});
constexpr auto log_levels = std::to_array<choice<log::level>>({
    {"error", log::level::error},
    {"warning", log::level::warning},
    {"info", log::level::info},
    {"debug", log::level::debug},
});
constexpr auto scope_names = std::to_array<choice<std::string_view>>({
    {"reset", "reset"},
    {"change", "change"},
    {"enroll", "enroll"},
    {"check", "check"},
});

// ---- typed access to YAML values -------------------------------------------------------

// A value in the document with its key path; `key_mark` is where its key (or, in a list,
// the element itself) starts, used when the value is empty and has no useful position.
struct field {
    std::string path;
    YAML::Node value;
    YAML::Mark key_mark;

    [[nodiscard]] YAML::Mark value_mark() const { return value.IsNull() ? key_mark : value.Mark(); }
};

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

bool is_plain_scalar(const YAML::Node& node) {
    return node.IsScalar() && node.Tag() == "?";
}

class map_view {
public:
    map_view(report& r, const YAML::Node& node, std::string path, std::span<const key_spec> keys)
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
            if (spec->kind == key_kind::refused) {
                r.error(key.Mark(), key_path, spec->hint);
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

    [[nodiscard]] std::optional<field> get(std::string_view key) const {
        const auto it = entries_.find(key);
        if (it == entries_.end()) {
            return std::nullopt;
        }
        return it->second;
    }

    [[nodiscard]] std::optional<field> require(report& r, std::string_view key) const {
        auto f = get(key);
        if (!f) {
            r.error(mark_, path_, "missing required key '" + std::string(key) + "'");
        }
        return f;
    }

    [[nodiscard]] std::string path_of(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + '.' + std::string(key);
    }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] const YAML::Mark& mark() const noexcept { return mark_; }

private:
    std::string path_;
    YAML::Mark mark_;
    std::map<std::string, field, std::less<>> entries_;
};

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

template <class T, std::size_t N>
void read_choice(report& r, const map_view& m, std::string_view key,
                 const std::array<choice<T>, N>& choices, T& out) {
    if (const auto f = m.get(key)) {
        if (const auto v = as_choice(r, *f, choices)) {
            out = *v;
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

// ---- files ------------------------------------------------------------------------------

class file_descriptor {
public:
    explicit file_descriptor(int fd) noexcept : fd_(fd) {}
    file_descriptor(file_descriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    file_descriptor& operator=(file_descriptor&&) = delete;
    ~file_descriptor() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

// Opens a regular file for reading; on failure the descriptor is invalid and `why` says why.
// O_NONBLOCK: a FIFO given by mistake must not hang the check (no effect on regular files).
file_descriptor open_regular_file(const fs::path& path, struct stat& info, std::string& why) {
    file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0 || ::fstat(fd.get(), &info) != 0) {
        why = "cannot open " + path.string() + ": " + errno_text(errno);
        return file_descriptor(-1);
    }
    if (!S_ISREG(info.st_mode)) {
        why = "cannot open " + path.string() + ": not a regular file";
        return file_descriptor(-1);
    }
    return fd;
}

class config_reader {
public:
    config_reader(const fs::path& file, report& r)
        : report_(r), base_(fs::absolute(file).parent_path()) {}

    config read(const YAML::Node& root) {
        config cfg;
        const map_view top(report_, root, "", root_keys);
        root_mark_ = top.mark();
        read_listen(top, cfg);
        read_tls(top, cfg);
        read_clients(top, cfg);
        read_directory(top, cfg);
        read_policy(top, cfg);
        read_mail(top, cfg);
        read_factors(top, cfg);
        read_limits(top, cfg);
        read_state(top, cfg);
        read_secrets(top, cfg);
        read_audit(top, cfg);
        read_log(top, cfg);
        return cfg;
    }

private:
    [[nodiscard]] fs::path absolute(const std::string& text) const {
        const fs::path p(text);
        return (p.is_absolute() ? p : base_ / p).lexically_normal();
    }

    std::optional<fs::path> read_path(const field& f) {
        if (const auto text = as_string(report_, f)) {
            return absolute(*text);
        }
        return std::nullopt;
    }

    std::optional<fs::path> read_readable_file(const field& f) {
        auto path = read_path(f);
        if (path) {
            struct stat info {};
            std::string why;
            if (open_regular_file(*path, info, why).get() < 0) {
                report_.error(f.key_mark, f.path, why);
            }
        }
        return path;
    }

    void check_folder(const YAML::Mark& at, std::string_view key_path, const fs::path& file,
                      const std::string& note) {
        const fs::path folder = file.parent_path();
        std::error_code ec;
        const auto status = fs::status(folder, ec);
        if (status.type() == fs::file_type::not_found) {
            report_.error(at, key_path, "folder " + folder.string() + " does not exist" + note);
        } else if (ec) {
            report_.error(at, key_path,
                          "cannot check folder " + folder.string() + ": " + ec.message() + note);
        } else if (!fs::is_directory(status)) {
            report_.error(at, key_path, folder.string() + " is not a folder" + note);
        }
    }

    // A path whose folder must exist (the file itself is created by the daemon). An absent
    // key keeps the default, whose folder must exist too.
    void read_path_in_folder(const std::optional<map_view>& m, std::string_view key,
                             std::string_view key_path, fs::path& out) {
        const auto f = m ? m->get(key) : std::nullopt;
        if (f) {
            if (auto p = read_path(*f)) {
                out = std::move(*p);
                check_folder(f->key_mark, key_path, out, "");
            }
            return;
        }
        check_folder(m ? m->mark() : root_mark_, key_path, out, " (the default)");
    }

    std::optional<map_view> section(const map_view& top, std::string_view key,
                                    std::span<const key_spec> keys) {
        if (const auto f = top.get(key)) {
            return as_map(report_, *f, keys);
        }
        return std::nullopt;
    }

    void read_listen(const map_view& top, config& cfg) {
        const auto f = top.require(report_, "listen");
        if (!f) {
            return;
        }
        const auto items = as_list(report_, *f);
        if (!items) {
            return;
        }
        if (items->empty()) {
            report_.error(f->value_mark(), f->path, "needs at least one listener");
        }
        for (const auto& item : *items) {
            const auto text = as_string(report_, item);
            if (!text) {
                continue;
            }
            const bool duplicate = std::any_of(cfg.listen.begin(), cfg.listen.end(),
                                               [&](const auto& e) { return e.text == *text; });
            if (duplicate) {
                report_.error(item.value_mark(), item.path, "duplicate listener " + *text);
            } else if (auto endpoint = parse_endpoint(item, *text)) {
                cfg.listen.push_back(std::move(*endpoint));
            }
        }
    }

    std::optional<listen_endpoint> parse_endpoint(const field& f, const std::string& text) {
        constexpr std::string_view unix_prefix = "unix:";
        constexpr std::string_view https_prefix = "https://";
        listen_endpoint e;
        e.text = text;
        const auto fail = [&](std::string_view message) {
            report_.error(f.value_mark(), f.path, message);
            return std::nullopt;
        };
        if (text.starts_with(unix_prefix)) {
            const std::string socket = text.substr(unix_prefix.size());
            if (socket.empty()) {
                return fail("expected unix:/PATH");
            }

            return fail("unix socket listeners are not supported by this version yet");
            e.type = listen_endpoint::kind::unix_socket;
            e.socket_path = absolute(socket);
            constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;
            if (e.socket_path.string().size() > max_socket_path) {
                return fail("socket path is longer than " + std::to_string(max_socket_path) +
                            " bytes");
            }
            return e;
        }
        if (!text.starts_with(https_prefix)) {
            return fail("expected https://HOST:PORT or unix:/PATH, got '" + text + "'");
        }
        const std::string_view rest = std::string_view(text).substr(https_prefix.size());
        std::string_view host;
        std::string_view port;
        if (rest.starts_with('[')) {
            const auto close = rest.find(']');
            if (close == std::string_view::npos) {
                return fail("'[' without ']' in an IPv6 address");
            }
            host = rest.substr(1, close - 1);
            const std::string_view after = rest.substr(close + 1);
            if (!after.starts_with(':')) {
                return fail("needs a port: https://[ADDRESS]:PORT");
            }
            port = after.substr(1);
            in6_addr address{};
            if (::inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1) {
                return fail("'" + std::string(host) + "' is not a valid IPv6 address");
            }
        } else {
            const auto colon = rest.rfind(':');
            if (colon == std::string_view::npos) {
                return fail("needs a port: https://HOST:PORT");
            }
            host = rest.substr(0, colon);
            port = rest.substr(colon + 1);
            if (host.find(':') != std::string_view::npos) {
                return fail("an IPv6 address needs brackets: https://[ADDRESS]:PORT");
            }
            if (const auto why = check_host(host)) {
                return fail(*why);
            }
        }
        unsigned value = 0;
        const auto [stop, err] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || err != std::errc() || stop != port.data() + port.size() || value < 1 ||
            value > 65535) {
            return fail("port must be a number in 1..65535, got '" + std::string(port) + "'");
        }
        e.host = host;
        e.port = static_cast<std::uint16_t>(value);
        return e;
    }

    static std::optional<std::string> check_host(std::string_view host) {
        const std::string quoted = "'" + std::string(host) + "'";
        if (host.empty()) {
            return "needs a host: https://HOST:PORT";
        }
        if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
            in_addr address{};
            if (::inet_pton(AF_INET, std::string(host).c_str(), &address) != 1) {
                return quoted + " is not a valid IPv4 address";
            }
            return std::nullopt;
        }
        // RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
        constexpr std::size_t max_name = 253;
        constexpr std::size_t max_label = 63;
        bool valid = host.size() <= max_name;
        std::size_t start = 0;
        while (valid && start <= host.size()) {
            const auto dot = std::min(host.find('.', start), host.size());
            const std::string_view label = host.substr(start, dot - start);
            valid = !label.empty() && label.size() <= max_label && label.front() != '-' &&
                    label.back() != '-' &&
                    label.find_first_not_of(
                        "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == std::string_view::npos;
            start = dot + 1;
        }
        if (!valid) {
            return quoted + " is not a valid host name or IP address";
        }
        return std::nullopt;
    }

    void read_tls(const map_view& top, config& cfg) {
        const bool needed =
            cfg.listen.empty() || std::any_of(cfg.listen.begin(), cfg.listen.end(), [](auto& e) {
                return e.type == listen_endpoint::kind::https;
            });
        if (!top.get("tls")) {
            if (needed) {
                report_.error(top.mark(), top.path(),
                              "missing required key 'tls' (https listeners need a certificate "
                              "and a private key)");
            }
            return;
        }
        const auto m = section(top, "tls", tls_keys);
        if (!m) {
            return;
        }
        if (const auto f = m->require(report_, "certificate")) {
            cfg.tls.certificate = read_readable_file(*f).value_or(fs::path());
        }
        if (const auto f = m->require(report_, "private_key")) {
            cfg.tls.private_key = read_readable_file(*f).value_or(fs::path());
        }
        if (const auto f = m->get("client_ca")) {
            cfg.tls.client_ca = read_readable_file(*f);
        }
    }

    void read_clients(const map_view& top, config& cfg) {
        const auto f = top.require(report_, "clients");
        if (!f) {
            return;
        }
        const auto items = as_list(report_, *f);
        if (!items) {
            return;
        }
        if (items->empty()) {
            report_.error(f->value_mark(), f->path, "needs at least one client");
        }
        std::map<std::string, std::string, std::less<>> names;  // name -> path of its client
        std::map<std::array<unsigned char, 32>, std::string> keys;
        for (const auto& item : *items) {
            const auto m = as_map(report_, item, client_keys);
            if (!m) {
                continue;
            }
            client_settings client;
            if (const auto name = m->require(report_, "name")) {
                if (auto v = as_string(report_, *name)) {
                    const auto [first, inserted] = names.try_emplace(*v, item.path);
                    if (!inserted) {
                        report_.error(
                            name->value_mark(), name->path,
                            "duplicate client name '" + *v + "' (also " + first->second + ")");
                    }
                    client.name = std::move(*v);
                }
            }
            const auto key = m->get("api_key_sha256");
            const auto subject = m->get("certificate_subject");
            if (!key && !subject) {
                report_.error(m->mark(), m->path(),
                              "missing required key 'api_key_sha256' or 'certificate_subject'");
            }
            if (key) {
                client.api_key_sha256 = read_api_key(*key);
                if (client.api_key_sha256) {
                    const auto [first, inserted] =
                        keys.try_emplace(*client.api_key_sha256, item.path);
                    if (!inserted) {
                        report_.error(key->value_mark(), key->path,
                                      "same API key as " + first->second);
                    }
                }
            }
            if (subject) {
                client.certificate_subject = as_string(report_, *subject).value_or("");
                if (!cfg.tls.client_ca) {
                    report_.error(subject->key_mark, subject->path,
                                  "needs tls.client_ca (client certificates are verified only "
                                  "when it is set)");
                }
            }
            if (const auto scopes = m->require(report_, "scopes")) {
                client.scopes = read_scopes(*scopes);
            }
            cfg.clients.push_back(std::move(client));
        }
    }

    std::optional<std::array<unsigned char, 32>> read_api_key(const field& f) {
        const auto text = as_string(report_, f);
        if (!text) {
            return std::nullopt;
        }
        std::array<unsigned char, 32> digest{};
        const auto bytes =
            text->size() == 2 * digest.size() ? crypto::hex_decode(*text) : std::nullopt;
        if (!bytes) {
            report_.error(f.value_mark(), f.path,
                          "expected 64 hexadecimal characters (the SHA-256 of the API key)");
            return std::nullopt;
        }
        std::copy(bytes->begin(), bytes->end(), digest.begin());
        return digest;
    }

    std::vector<std::string> read_scopes(const field& f) {
        std::vector<std::string> scopes;
        const auto items = as_list(report_, f);
        if (!items) {
            return scopes;
        }
        if (items->empty()) {
            report_.error(f.value_mark(), f.path, "needs at least one scope");
        }
        for (const auto& item : *items) {
            const auto scope = as_choice(report_, item, scope_names);
            if (!scope) {
                continue;
            }
            if (std::find(scopes.begin(), scopes.end(), *scope) != scopes.end()) {
                report_.error(item.value_mark(), item.path,
                              "duplicate scope '" + std::string(*scope) + "'");
                continue;
            }
            scopes.emplace_back(*scope);
        }
        return scopes;
    }

    void read_directory(const map_view& top, config& cfg) {
        const auto single = top.get("directory");
        const auto several = top.get("directories");
        if (single && several) {
            const auto& later = single->key_mark.pos > several->key_mark.pos ? *single : *several;
            report_.error(later.key_mark, later.path,
                          "use either directory or directories, not both");
            return;
        }
        if (several) {
            return read_directory_list(*several, cfg);
        }
        const auto f = top.require(report_, "directory");
        if (!f) {
            return;
        }
        const auto m = as_map(report_, *f, directory_keys);
        if (!m) {
            return;
        }
        for (const char* only_in_list : {"name", "domains"}) {
            if (const auto k = m->get(only_in_list)) {
                report_.error(k->key_mark, k->path, "only in blocks of a `directories:` list");
            }
        }
        cfg.directories.emplace_back();
        read_directory_block(*m, cfg.directories.back());
    }

    void read_directory_list(const field& f, config& cfg) {
        const auto items = as_list(report_, f);
        if (!items) {
            return;
        }
        if (items->empty()) {
            report_.error(f.value_mark(), f.path, "needs at least one directory");
        }
        std::map<std::string, std::string> names;
        std::map<std::string, std::string> domains;
        for (const auto& item : *items) {
            const auto m = as_map(report_, item, directory_keys);
            if (!m) {
                continue;
            }
            auto& d = cfg.directories.emplace_back();
            if (const auto name = m->require(report_, "name")) {
                if (auto v = as_string(report_, *name)) {
                    if (v->empty()) {
                        report_.error(name->value_mark(), name->path, "must not be empty");
                    }
                    const auto [first, inserted] = names.try_emplace(*v, name->path);
                    if (!inserted) {
                        report_.error(
                            name->value_mark(), name->path,
                            "duplicate directory name '" + *v + "' (also " + first->second + ")");
                    }
                    d.name = std::move(*v);
                }
            }
            if (const auto list = m->require(report_, "domains")) {
                d.domains = read_string_list(report_, *list);
                if (d.domains.empty() && list->value.IsSequence()) {
                    report_.error(list->value_mark(), list->path, "needs at least one domain");
                }
                for (const auto& domain : d.domains) {
                    const auto [first, inserted] =
                        domains.try_emplace(text::ascii_lower(domain), list->path);
                    if (!inserted) {
                        report_.error(list->value_mark(), list->path,
                                      "domain '" + domain + "' is also listed in " + first->second);
                    }
                }
            }
            read_directory_block(*m, d);
        }
    }

    void read_directory_block(const map_view& m, ldap::directory_settings& d) {
        if (const auto kind = m.require(report_, "kind")) {
            if (const auto v = as_choice(report_, *kind, directory_kinds)) {
                d.kind = *v;
            }
        }
        read_bool(report_, m, "start_tls", d.start_tls);
        if (const auto uris = m.require(report_, "uris")) {
            read_uris(*uris, d);
        }
        if (const auto ca = m.require(report_, "ca_file")) {
            d.ca_file = read_readable_file(*ca).value_or(fs::path()).string();
        }
        read_required_string(report_, m, "bind_dn", d.bind_dn);
        read_bind_password(m, d);
        read_required_string(report_, m, "user_base", d.user_base);
        if (const auto filter = m.require(report_, "user_filter")) {
            if (auto v = as_string(report_, *filter)) {
                if (v->find("{username}") == std::string::npos) {
                    report_.error(filter->value_mark(), filter->path, "must contain {username}");
                }
                d.user_filter = std::move(*v);
            }
        }
        read_int(report_, m, "timeout_ms", 100, 300000, d.timeout_ms);
        read_int(report_, m, "pool_size", 1, 64, d.pool_size);
        if (const auto attributes = m.get("attributes")) {
            if (const auto a = as_map(report_, *attributes, attribute_keys)) {
                read_string(report_, *a, "email", d.attributes.email);
                read_string(report_, *a, "phone", d.attributes.phone);
                read_string(report_, *a, "display_name", d.attributes.display_name);
            }
        }
        read_choice(report_, m, "password_write", password_write_modes, d.password_write);
        read_bool(report_, m, "unlock_on_reset", d.unlock_on_reset);
        read_bool(report_, m, "force_change_at_next_logon", d.force_change_at_next_logon);
        if (const auto groups = m.get("protected_groups")) {
            d.protected_groups = read_string_list(report_, *groups);
        }
        read_bool(report_, m, "require_policy_hints", d.require_policy_hints);
        read_bool(report_, m, "protect_admin_count", d.protect_admin_count);
        if (d.kind != ldap::directory_kind::active_directory) {
            for (const char* ad_only : {"require_policy_hints", "protect_admin_count"}) {
                if (const auto k = m.get(ad_only)) {
                    report_.error(k->key_mark, k->path, "only for kind: active_directory");
                }
            }
        }
    }

    void read_uris(const field& f, ldap::directory_settings& d) {
        const auto items = as_list(report_, f);
        if (!items) {
            return;
        }
        if (items->empty()) {
            report_.error(f.value_mark(), f.path, "needs at least one URI");
        }
        for (const auto& item : *items) {
            auto uri = as_string(report_, item);
            if (!uri) {
                continue;
            }
            const bool plain = uri->starts_with("ldap://");
            const std::size_t scheme = plain ? 7 : 8;
            if (!plain && !uri->starts_with("ldaps://")) {
                report_.error(item.value_mark(), item.path,
                              "expected an ldaps:// or ldap:// URI, got '" + *uri + "'");
            } else if (uri->size() == scheme) {
                report_.error(item.value_mark(), item.path, "needs a host");
            } else if (plain && !d.start_tls) {
                report_.error(item.value_mark(), item.path, "plain ldap:// needs start_tls: true");
            } else {
                d.uris.push_back(std::move(*uri));
            }
        }
    }

    void read_bind_password(const map_view& m, ldap::directory_settings& d) {
        if (auto password = read_secret_pair(m, "bind_password", true)) {
            d.bind_password = std::move(*password);
        }
    }

    // A secret given as `<name>_file` (a path) or `<name>_credential` (a systemd credential
    // name), never both; nullopt when absent (an error when `required`) or unreadable.
    std::optional<secret> read_secret_pair(const map_view& m, std::string_view name,
                                           bool required) {
        const std::string file_key = std::string(name) + "_file";
        const std::string credential_key = std::string(name) + "_credential";
        const auto file = m.get(file_key);
        const auto credential = m.get(credential_key);
        if (!file && !credential) {
            if (required) {
                report_.error(
                    m.mark(), m.path(),
                    "missing required key '" + file_key + "' or '" + credential_key + "'");
            }
            return std::nullopt;
        }
        if (file && credential) {
            const auto& later = file->key_mark.pos > credential->key_mark.pos ? *file : *credential;
            report_.error(later.key_mark, later.path,
                          "use either " + file_key + " or " + credential_key + ", not both");
            return std::nullopt;
        }
        if (file) {
            if (const auto path = read_path(*file)) {
                return read_secret_file(*file, *path, true);
            }
            return std::nullopt;
        }
        if (const auto credential_name = as_string(report_, *credential)) {
            return read_credential(*credential, *credential_name);
        }
        return std::nullopt;
    }

    std::optional<secret> read_credential(const field& f, const std::string& name) {
        if (name.find('/') != std::string::npos || name == "." || name == "..") {
            report_.error(f.value_mark(), f.path, "expected a credential name, not a path");
            return std::nullopt;
        }
        const char* folder = std::getenv("CREDENTIALS_DIRECTORY");  // NOLINT(concurrency-mt-unsafe)
        if (folder == nullptr || *folder == '\0') {
            report_.error(f.key_mark, f.path,
                          "$CREDENTIALS_DIRECTORY is not set (systemd sets it for "
                          "LoadCredential= and SetCredentialEncrypted=)");
            return std::nullopt;
        }
        return read_secret_file(f, fs::path(folder) / name, false);
    }

    std::optional<secret> read_secret_file(const field& f, const fs::path& path,
                                           bool warn_permissions) {
        struct stat info {};
        std::string why;
        const file_descriptor fd = open_regular_file(path, info, why);
        if (fd.get() < 0) {
            report_.error(f.key_mark, f.path, why);
            return std::nullopt;
        }
        if (warn_permissions && (info.st_mode & (S_IRGRP | S_IROTH)) != 0) {
            report_.warning(f.key_mark, f.path,
                            path.string() + " is readable by group or others; chmod 600");
        }
        constexpr std::size_t max_size = 4096;
        std::array<char, max_size + 1> buffer{};
        std::size_t size = 0;
        while (size < buffer.size()) {
            const ssize_t n = ::read(fd.get(), buffer.data() + size, buffer.size() - size);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                report_.error(f.key_mark, f.path,
                              "cannot read " + path.string() + ": " + errno_text(errno));
                wipe(buffer.data(), buffer.size());
                return std::nullopt;
            }
            if (n == 0) {
                break;
            }
            size += static_cast<std::size_t>(n);
        }
        std::optional<secret> out;
        if (size > max_size) {
            report_.error(f.key_mark, f.path,
                          path.string() + " is larger than " + std::to_string(max_size) + " bytes");
        } else {
            if (size > 0 && buffer[size - 1] == '\n') {
                --size;
            }
            if (size == 0) {
                report_.error(f.key_mark, f.path, path.string() + " is empty");
            } else {
                out.emplace(std::string_view(buffer.data(), size));
            }
        }
        wipe(buffer.data(), buffer.size());
        return out;
    }

    void read_factors(const map_view& top, config& cfg) {
        const auto m = section(top, "factors", factor_keys);
        auto& settings = cfg.factors;
        std::vector<std::pair<std::size_t, std::string>> positions;  // file order of methods
        if (m) {
            read_int(report_, *m, "required", 1, 2, settings.required);
            read_bool(report_, *m, "totp_when_enrolled", settings.totp_when_enrolled);
            read_int(report_, *m, "codes_per_destination_per_hour", 1, 1000,
                     settings.codes_per_destination_per_hour);
            if (const auto groups = m->get("two_methods_groups")) {
                settings.two_methods_groups = read_string_list(report_, *groups);
            }
            if (const auto totp = m->get("totp")) {
                if (const auto t = as_map(report_, *totp, totp_keys)) {
                    read_totp(*t, settings.totp);
                }
            }
            if (const auto email = m->get("email")) {
                if (const auto e = as_map(report_, *email, email_keys)) {
                    read_code_factor(*e, settings.email);
                    if (settings.email.enabled && !cfg.mail) {
                        report_.error(email->key_mark, email->path,
                                      "email codes need a `mail:` block (smtp_url, from)");
                    }
                }
            }
            if (const auto sms = m->get("sms")) {
                if (const auto b = as_map(report_, *sms, sms_keys)) {
                    read_sms(*b, settings.sms);
                }
            }
            for (const char* method : {"totp", "email", "sms"}) {
                if (const auto f = m->get(method)) {
                    positions.emplace_back(f->key_mark.pos, method);
                }
            }
        }
        // Methods without a block come after the listed ones, in the default order.
        std::size_t next = std::numeric_limits<std::size_t>::max() - 3;
        for (const char* method : {"totp", "email", "sms"}) {
            if (std::none_of(positions.begin(), positions.end(),
                             [&](const auto& p) { return p.second == method; })) {
                positions.emplace_back(next++, method);
            }
        }
        std::sort(positions.begin(), positions.end());
        settings.order.clear();
        for (const auto& [pos, method] : positions) {
            const bool enabled = method == "totp"    ? settings.totp.enabled
                                 : method == "email" ? settings.email.enabled
                                                     : settings.sms.enabled;
            if (enabled) {
                settings.order.push_back(method);
            }
        }
        const int enabled = static_cast<int>(settings.order.size());
        const YAML::Mark at = m ? m->mark() : root_mark_;
        if (enabled == 0) {
            report_.error(at, "factors", "no method is enabled (totp, email or sms)");
        } else if (settings.required > enabled) {
            const auto required = m ? m->get("required") : std::nullopt;
            report_.error(required ? required->value_mark() : at, "factors.required",
                          std::to_string(settings.required) + " methods required but only " +
                              std::to_string(enabled) + " enabled");
        } else if (!settings.two_methods_groups.empty() && enabled < 2) {
            const auto groups = m->get("two_methods_groups");
            report_.error(groups->key_mark, groups->path,
                          "members of these groups need 2 methods, but only 1 is enabled");
        }
        for (auto& d : cfg.directories) {
            d.two_methods_groups = settings.two_methods_groups;
        }
    }

    void read_code_factor(const map_view& m, code_factor_settings& f) {
        f.enabled = true;  // a block turns the method on unless it says otherwise
        read_bool(report_, m, "enabled", f.enabled);
        read_int(report_, m, "code_ttl_s", 5, 86400, f.code_ttl_s);
        read_int(report_, m, "code_digits", factors::min_code_digits, factors::max_code_digits,
                 f.code_digits);
    }

    void read_sms(const map_view& m, sms_factor_settings& sms) {
        read_code_factor(m, sms);
        if (!sms.enabled) {
            return;
        }
        if (const auto url = m.require(report_, "webhook_url")) {
            if (auto v = as_string(report_, *url)) {
                if (!v->starts_with("https://") || v->size() <= 8) {
                    report_.error(url->value_mark(), url->path,
                                  "expected an https:// URL (the text holds a code)");
                } else {
                    sms.webhook.webhook_url = std::move(*v);
                }
            }
        }
        if (auto token = read_secret_pair(m, "bearer_token", false)) {
            sms.webhook.bearer_token = std::move(*token);
        }
        if (const auto f = m.get("ca_file")) {
            sms.webhook.ca_file = read_readable_file(*f).value_or(fs::path()).string();
        }
        read_int(report_, m, "timeout_ms", 100, 60000, sms.webhook.timeout_ms);
        read_int(report_, m, "retries", 0, 5, sms.webhook.retries);
        if (const auto f = m.get("country_code")) {
            if (auto v = as_string(report_, *f)) {
                const bool ok = v->size() >= 2 && v->size() <= 4 && (*v)[0] == '+' &&
                                std::all_of(v->begin() + 1, v->end(),
                                            [](char c) { return c >= '0' && c <= '9'; });
                if (!ok) {
                    report_.error(f->value_mark(), f->path,
                                  "expected '+' and 1 to 3 digits, e.g. \"+46\"");
                } else {
                    sms.country_code = std::move(*v);
                }
            }
        }
    }

    void read_mail(const map_view& top, config& cfg) {
        const auto m = section(top, "mail", mail_keys);
        if (!m) {
            return;
        }
        factors::mail_settings mail;
        if (const auto url = m->require(report_, "smtp_url")) {
            if (auto v = as_string(report_, *url)) {
                const bool smtp = v->starts_with("smtp://");
                const bool smtps = v->starts_with("smtps://");
                const std::size_t host_at = smtp ? 7 : 8;
                if (!smtp && !smtps) {
                    report_.error(url->value_mark(), url->path,
                                  "expected an smtp:// or smtps:// URL, got '" + *v + "'");
                } else if (v->size() <= host_at || v->find('@') != std::string::npos) {
                    report_.error(url->value_mark(), url->path,
                                  "expected smtp[s]://host[:port] (credentials go in "
                                  "username and password_file)");
                } else {
                    mail.smtp_url = std::move(*v);
                }
            }
        }
        if (const auto from = m->require(report_, "from")) {
            if (auto v = as_string(report_, *from)) {
                if (const auto problem = factors::email_address_problem(*v); !problem.empty()) {
                    report_.error(from->value_mark(), from->path, problem);
                } else {
                    mail.from = std::move(*v);
                }
            }
        }
        if (const auto f = m->get("ca_file")) {
            mail.ca_file = read_readable_file(*f).value_or(fs::path()).string();
        }
        read_bool(report_, *m, "require_tls", mail.require_tls);
        if (const auto k = m->get("require_tls"); k && !mail.require_tls) {
            report_.warning(k->key_mark, k->path,
                            "codes go to the mail server in clear when it offers no STARTTLS");
        }
        read_string(report_, *m, "username", mail.username);
        if (auto password = read_secret_pair(*m, "password", false)) {
            mail.password = std::move(*password);
        }
        if (!mail.username.empty() && mail.password.empty() && !m->get("password_file") &&
            !m->get("password_credential")) {
            report_.error(m->mark(), m->path(),
                          "username needs password_file or password_credential");
        }
        read_int(report_, *m, "timeout_ms", 100, 120000, mail.timeout_ms);
        read_int(report_, *m, "retries", 0, 5, mail.retries);
        cfg.mail = std::move(mail);
    }

    void read_totp(const map_view& m, totp_settings& totp) {
        read_bool(report_, m, "enabled", totp.enabled);
        read_string(report_, m, "issuer", totp.issuer);
        if (const auto digits = m.get("digits")) {
            if (const auto v = as_integer(report_, *digits, 6, 8)) {
                if (*v == 7) {
                    report_.error(digits->value_mark(), digits->path, "must be 6 or 8, got 7");
                } else {
                    totp.params.digits = static_cast<int>(*v);
                }
            }
        }
        read_int(report_, m, "period", 10, 120, totp.params.period);
        read_int(report_, m, "skew_steps", 0, 10, totp.params.skew_steps);
        read_choice(report_, m, "algorithm", totp_algorithms, totp.params.algorithm);
    }

    void read_policy(const map_view& top, config& cfg) {
        const auto m = section(top, "policy", policy_keys);
        if (!m) {
            return;
        }
        auto& p = cfg.policy;
        // The length limits count Unicode code points; 4096 matches the request guard.
        read_int(report_, *m, "min_length", 1, 4096, p.min_length);
        read_int(report_, *m, "max_length", 1, 4096, p.max_length);
        if (p.max_length < p.min_length) {
            const auto f = m->get("max_length") ? m->get("max_length") : m->get("min_length");
            if (f) {
                report_.error(f->value_mark(), f->path,
                              "max_length (" + std::to_string(p.max_length) +
                                  ") is below min_length (" + std::to_string(p.min_length) + ")");
            }
        }
        read_int(report_, *m, "character_classes", 0, 4, p.character_classes);
        read_bool(report_, *m, "reject_username", p.reject_username);
        read_int(report_, *m, "banned_score_threshold", 1, 100, p.banned_score_threshold);
        if (const auto f = m->get("banned_words_file")) {
            p.banned_words_file = read_readable_file(*f).value_or(fs::path());
        }
        if (const auto f = m->get("breached_hashes_file")) {
            p.breached_hashes_file = read_readable_file(*f).value_or(fs::path());
        }
    }

    void read_limits(const map_view& top, config& cfg) {
        const auto m = section(top, "limits", limit_keys);
        if (!m) {
            return;
        }
        auto& l = cfg.limits;
        constexpr long long day = 86400;
        read_int(report_, *m, "verify_failures", 1, 100, l.verify_failures);
        read_int(report_, *m, "lockout_s", 1, 7 * day, l.lockout_s);
        read_int(report_, *m, "per_ip_per_minute", 1, 100000, l.per_ip_per_minute);
        read_int(report_, *m, "reset_ttl_s", 60, day, l.reset_ttl_s);
        read_int(report_, *m, "max_body_bytes", 1024, 10485760, l.max_body_bytes);
        read_int(report_, *m, "header_timeout_s", 1, 300, l.header_timeout_s);
        read_int(report_, *m, "max_connections", 1, 1000000, l.max_connections);
    }

    void read_state(const map_view& top, config& cfg) {
        const auto m = section(top, "state", state_keys);
        if (m) {
            if (const auto backend = m->get("backend")) {
                if (const auto v = as_choice(report_, *backend, state_backends)) {
                    cfg.state.backend = *v;
                }
            }
            read_string(report_, *m, "redis_url", cfg.state.redis_url);
            if (auto password = read_secret_pair(*m, "redis_password", false)) {
                cfg.state.redis_password = std::move(*password);
            }
        }
        if (cfg.state.backend == "redis") {
            const auto url = m ? m->get("redis_url") : std::nullopt;
            const std::string& u = cfg.state.redis_url;
            if (!url) {
                report_.error(m ? m->mark() : root_mark_, "state", "backend redis needs redis_url");
            } else if (!u.empty() && !u.starts_with("redis://") && !u.starts_with("unix:")) {
                report_.error(url->value_mark(), url->path,
                              "expected redis://HOST[:PORT][/DB] or unix:/PATH[?db=N]");
            } else if (u.find('@') != std::string::npos) {
                report_.error(url->value_mark(), url->path,
                              "credentials never go in the URL; use redis_password_file");
            }
            if (const auto path = m ? m->get("path") : std::nullopt) {
                report_.warning(path->key_mark, path->path, "ignored: only for backend: sqlite");
            }
        } else if (m) {
            for (const char* redis_only :
                 {"redis_url", "redis_password_file", "redis_password_credential"}) {
                if (const auto k = m->get(redis_only)) {
                    report_.warning(k->key_mark, k->path, "ignored: only for backend: redis");
                }
            }
        }
        if (cfg.state.backend == "sqlite") {
            read_path_in_folder(m, "path", "state.path", cfg.state.path);
        }
    }

    void read_secrets(const map_view& top, config& cfg) {
        const auto m = section(top, "secrets", secrets_keys);
        read_path_in_folder(m, "key_file", "secrets.key_file", cfg.secrets_key_file);
        // A missing key is created (0600) at start; an existing one must be what the daemon
        // will accept: a private regular file (not a link, a FIFO, a folder) of 32 bytes.
        struct stat info {};
        if (::lstat(cfg.secrets_key_file.c_str(), &info) == 0) {
            const auto f = m ? m->get("key_file") : std::nullopt;
            const auto at = f ? f->key_mark : (m ? m->mark() : root_mark_);
            const std::string name = cfg.secrets_key_file.string();
            if (!S_ISREG(info.st_mode)) {
                report_.error(
                    at, "secrets.key_file",
                    name + (S_ISLNK(info.st_mode) ? " is a symbolic link; name the file itself"
                                                  : " is not a regular file"));
            } else if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
                report_.error(at, "secrets.key_file",
                              name + " is accessible by group or others; chmod 600 it");
            } else if (info.st_size != 32) {
                report_.error(at, "secrets.key_file",
                              name + " must hold exactly 32 bytes (it has " +
                                  std::to_string(info.st_size) + ")");
            }
        }
    }

    void read_audit(const map_view& top, config& cfg) {
        const auto m = section(top, "audit", audit_keys);
        read_path_in_folder(m, "file", "audit.file", cfg.audit_file);
    }

    void read_log(const map_view& top, config& cfg) {
        if (const auto m = section(top, "log", log_keys)) {
            read_choice(report_, *m, "level", log_levels, cfg.log_level);
        }
    }

    report& report_;
    fs::path base_;
    YAML::Mark root_mark_;
};

std::optional<std::string> read_text_file(const fs::path& file, std::string& why) {
    file_descriptor fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        why = errno_text(errno);
        return std::nullopt;
    }
    std::string text;
    std::array<char, 65536> chunk{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            why = errno_text(errno);
            return std::nullopt;
        }
        if (n == 0) {
            return text;
        }
        text.append(chunk.data(), static_cast<std::size_t>(n));
    }
}

// Where each document of a YAML stream starts, and where its root node is.
class document_marks final : public YAML::EventHandler {
public:
    [[nodiscard]] const std::vector<YAML::Mark>& starts() const noexcept { return starts_; }
    [[nodiscard]] const std::vector<YAML::Mark>& roots() const noexcept { return roots_; }

    void OnDocumentStart(const YAML::Mark& mark) override {
        starts_.push_back(mark);
        root_seen_ = false;
    }
    void OnDocumentEnd() override {}
    // An empty document has no node of its own to point at: its start stands for it.
    void OnNull(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
        node(roots_.size() < starts_.size() ? starts_.back() : mark);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  const std::string& /*value*/) override {
        node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/,
                         YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
        node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                    YAML::EmitterStyle::value /*style*/) override {
        node(mark);
    }
    void OnMapEnd() override {}

private:
    void node(const YAML::Mark& mark) {
        if (!root_seen_) {
            roots_.push_back(mark);
            root_seen_ = true;
        }
    }

    std::vector<YAML::Mark> starts_;
    std::vector<YAML::Mark> roots_;
    bool root_seen_ = false;
};

// The first document of `text` (null when there is none), and in `second` the root of a
// second one, if any. Throws YAML::Exception at a syntax error.
// Not YAML::LoadAll: in yaml-cpp 0.7 (Debian 12) it never returns on some malformed input
// (a stray ',' at the top level): the parser stops consuming, and each HandleNextDocument()
// yields one more empty document at the same place, in ever more memory (found by
// tests/fuzz/fuzz_config; jbeder/yaml-cpp#1040, fixed upstream by #1319). So at most two
// documents are walked with the event parser, one that starts where the previous one did is
// refused, and only the first is built.
YAML::Node first_document(const std::string& text, std::optional<YAML::Mark>& second) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    document_marks marks;
    while (marks.starts().size() < 2 && parser.HandleNextDocument(marks)) {
        const auto& starts = marks.starts();
        if (starts.size() == 2 && starts[1].pos == starts[0].pos) {
            const auto at = static_cast<std::size_t>(std::max(starts[1].pos, 0));
            const auto c = at < text.size() ? static_cast<unsigned char>(text[at]) : 0U;
            throw YAML::ParserException(
                starts[1], c > 0x20 && c < 0x7f
                               ? "unexpected '" + std::string(1, static_cast<char>(c)) + "'"
                               : std::string("unexpected character"));
        }
    }
    if (marks.roots().size() > 1) {
        second = marks.roots()[1];
    }
    return marks.starts().empty() ? YAML::Node() : YAML::Load(text);
}

}  // namespace

config_error::config_error(std::vector<std::string> errors)
    : std::runtime_error(join_lines(errors)), errors_(std::move(errors)) {}

config load_config(const fs::path& file) {
    report r(file.string());
    std::string why;
    const auto text = read_text_file(file, why);
    if (!text) {
        r.file_error("cannot read: " + why);
        throw config_error(r.take_errors());
    }
    YAML::Node document;
    std::optional<YAML::Mark> second;
    try {
        document = first_document(*text, second);
    } catch (const YAML::Exception& e) {
        r.error(e.mark, "", e.msg);
        throw config_error(r.take_errors());
    }
    if (second) {
        r.error(*second, "", "only one YAML document is allowed");
    }
    YAML::Node root = document.IsNull() ? YAML::Node(YAML::NodeType::Map) : document;
    config cfg;
    if (!root.IsMap()) {
        r.error(root.Mark(), "", "expected a map of settings at the top, got " + describe(root));
    } else {
        cfg = config_reader(file, r).read(root);
    }
    if (r.has_errors()) {
        throw config_error(r.take_errors());
    }
    cfg.source = fs::absolute(file).lexically_normal();
    cfg.warnings = r.take_warnings();
    return cfg;
}

}  // namespace pwresetd::daemon
