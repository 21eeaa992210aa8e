// state: where flows, counters and enrollments live (sqlite, or redis for several nodes).
#include "daemon/config/secrets.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto state_keys =
    std::to_array<key_spec>({"backend", "path", "redis_url", "redis_password_file",
                             "redis_password_credential", inline_secret("redis_password")});

constexpr auto state_backends = std::to_array<choice<std::string_view>>({
    {"sqlite", "sqlite"},
    {"redis", "redis"},
});

}  // namespace

void read_state(const config_reader& in, config& cfg) {
    report& r = in.r;
    const auto m = in.section("state", state_keys);
    if (m) {
        if (const auto backend = m->get("backend")) {
            if (const auto v = as_choice(r, *backend, state_backends)) {
                cfg.state.backend = *v;
            }
        }
        read_string(r, *m, "redis_url", cfg.state.redis_url);
        if (auto password = read_secret_pair(in, *m, "redis_password", false)) {
            cfg.state.redis_password = std::move(*password);
        }
    }
    if (cfg.state.backend == "redis") {
        const auto url = m ? m->get("redis_url") : std::nullopt;
        const std::string& u = cfg.state.redis_url;
        if (!url) {
            r.error(m ? m->mark() : in.top.mark(), "state", "backend redis needs redis_url");
        } else if (!u.empty() && !u.starts_with("redis://") && !u.starts_with("unix:")) {
            r.error(url->value_mark(), url->path,
                    "expected redis://HOST[:PORT][/DB] or unix:/PATH[?db=N]");
        } else if (u.find('@') != std::string::npos) {
            r.error(url->value_mark(), url->path,
                    "credentials never go in the URL; use redis_password_file");
        }
        if (const auto path = m ? m->get("path") : std::nullopt) {
            r.warning(path->key_mark, path->path, "ignored: only for backend: sqlite");
        }
    } else if (m) {
        for (const char* redis_only :
             {"redis_url", "redis_password_file", "redis_password_credential"}) {
            if (const auto k = m->get(redis_only)) {
                r.warning(k->key_mark, k->path, "ignored: only for backend: redis");
            }
        }
    }
    if (cfg.state.backend == "sqlite") {
        in.read_path_in_folder(m, "path", "state.path", cfg.state.path);
    }
}

}  // namespace pwresetd::daemon::config_detail
