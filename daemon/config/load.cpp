// load_config: the blocks of CONFIG.md, read in its order.
#include "daemon/config.hpp"
#include "daemon/config/document.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon {

namespace {

using config_detail::key_spec;
using config_detail::not_yet;

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

constexpr auto root_keys = std::to_array<key_spec>(
    {"listen", "metrics_listen", "metrics_client_ca", "tls", "clients", "directory", "directories",
     "policy", "factors", "mail", "limits", "state", "secrets", "audit", "log", "admin_socket",
     "admin_group", not_yet("notify")});

}  // namespace

config_error::config_error(std::vector<std::string> errors)
    : std::runtime_error(join_lines(errors)), errors_(std::move(errors)) {}

config load_config(const std::filesystem::path& file) {
    using namespace config_detail;  // NOLINT(google-build-using-namespace)
    report r(file.string());
    const YAML::Node root = read_document(file, r);
    config cfg;
    if (!root.IsMap()) {
        r.error(root.Mark(), "", "expected a map of settings at the top, got " + describe(root));
    } else {
        const config_reader in(file, r, root, root_keys);
        read_listen(in, cfg);
        read_tls(in, cfg);
        read_metrics(in, cfg);
        read_clients(in, cfg);
        read_directory(in, cfg);  // or directories:
        read_policy(in, cfg);
        read_mail(in, cfg);  // before factors: email codes need it
        read_factors(in, cfg);
        read_limits(in, cfg);
        read_state(in, cfg);
        read_secrets(in, cfg);
        read_audit(in, cfg);
        read_log(in, cfg);
        read_admin(in, cfg);
    }
    if (r.has_errors()) {
        throw config_error(r.take_errors());
    }
    cfg.source = std::filesystem::absolute(file).lexically_normal();
    cfg.warnings = r.take_warnings();
    return cfg;
}

}  // namespace pwresetd::daemon
