// limits: failure counts, lockout, rate and size limits.
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto limit_keys =
    std::to_array<key_spec>({"verify_failures", "lockout_s", "per_ip_per_minute", "reset_ttl_s",
                             "max_body_bytes", "header_timeout_s", "max_connections"});

}  // namespace

void read_limits(const config_reader& in, config& cfg) {
    const auto m = in.section("limits", limit_keys);
    if (!m) {
        return;
    }
    report& r = in.r;
    auto& l = cfg.limits;
    constexpr long long day = 86400;
    read_int(r, *m, "verify_failures", 1, 100, l.verify_failures);
    read_int(r, *m, "lockout_s", 1, 7 * day, l.lockout_s);
    read_int(r, *m, "per_ip_per_minute", 1, 100000, l.per_ip_per_minute);
    read_int(r, *m, "reset_ttl_s", 60, day, l.reset_ttl_s);
    read_int(r, *m, "max_body_bytes", 1024, 10485760, l.max_body_bytes);
    read_int(r, *m, "header_timeout_s", 1, 300, l.header_timeout_s);
    read_int(r, *m, "max_connections", 1, 1000000, l.max_connections);
}

}  // namespace pwresetd::daemon::config_detail
