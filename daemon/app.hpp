#pragma once
// The process, in startup order (STYLE.md): arguments → configuration (--check-config stops
// here) → logging → process hardening → TLS → state → directory → services → listeners →
// workers → READY → run; SIGTERM/SIGINT drain in-flight requests, then exit 0.
#include <filesystem>
#include <string>

namespace pwresetd::daemon {

struct options {
    std::filesystem::path config_file = "/etc/pwresetd/pwresetd.yaml";
    bool check_only = false;
};

// Exit codes: 0 success, 1 invalid configuration, 2 startup failure.
int run(const options& opts);

std::string version_string();

}  // namespace pwresetd::daemon
