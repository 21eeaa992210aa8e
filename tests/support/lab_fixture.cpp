#include "support/lab_fixture.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "support/files.hpp"
#include "support/shell.hpp"

namespace pwresetd::testing {

std::filesystem::path lab_file(std::string_view name) {
    const char* env = std::getenv("PWRESETD_SOURCE_DIR");
    const std::filesystem::path root =
        env != nullptr && *env != '\0' ? env : PWRESETD_DEFAULT_SOURCE_DIR;
    return root / "tests" / "lab" / name;
}

lab_fixture::lab_fixture(std::string_view script, std::string_view hint)
    : dir_("pwresetd-" + std::filesystem::path(script).stem().string()),
      script_(lab_file(script).string()) {
    const std::string dir = shell_quote(dir_.path().string());
    const std::string quoted_script = shell_quote(script_);
    run_shell("nohup sh -c 'while kill -0 " + std::to_string(::getpid()) +
              " 2>/dev/null; do sleep 0.5; done; \"$0\" stop \"$1\"; rm -rf \"$1\"' " +
              quoted_script + " " + dir + " >/dev/null 2>&1 &");
    const auto start = std::chrono::steady_clock::now();
    if (run_shell(quoted_script + " start " + dir + " >&2") != 0) {
        stop();
        std::string message = "tests/lab/" + std::string(script) + " start failed";
        if (!hint.empty()) {
            message += " (" + std::string(hint) + ")";
        }
        throw std::runtime_error(message);
    }
    start_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    try {
        std::istringstream lines(read_file(dir_ / "lab.env"));
        for (std::string line; std::getline(lines, line);) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) {
                env_[line.substr(0, eq)] = line.substr(eq + 1);
            }
        }
    } catch (...) {
        stop();  // no destructor runs for a constructor that throws
        throw;
    }
}

lab_fixture::~lab_fixture() {
    stop();
}

void lab_fixture::stop() noexcept {
    run_shell(shell_quote(script_) + " stop " + shell_quote(dir_.path().string()) + " >&2");
}

}  // namespace pwresetd::testing
