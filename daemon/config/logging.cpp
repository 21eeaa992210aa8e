// audit: and log:.
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto audit_keys = std::to_array<key_spec>({"file"});
constexpr auto log_keys = std::to_array<key_spec>({"level"});

constexpr auto log_levels = std::to_array<choice<log::level>>({
    {"error", log::level::error},
    {"warning", log::level::warning},
    {"info", log::level::info},
    {"debug", log::level::debug},
});

}  // namespace

void read_audit(const config_reader& in, config& cfg) {
    const auto m = in.section("audit", audit_keys);
    in.read_path_in_folder(m, "file", "audit.file", cfg.audit_file);
}

void read_log(const config_reader& in, config& cfg) {
    if (const auto m = in.section("log", log_keys)) {
        read_choice(in.r, *m, "level", log_levels, cfg.log_level);
    }
}

}  // namespace pwresetd::daemon::config_detail
