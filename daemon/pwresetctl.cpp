// pwresetctl: the operator's tool. A table maps command words to handlers; each handler
// parses its own arguments and returns the exit code (0 success, 1 failure, 2 usage).
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/ctl/admin_commands.hpp"
#include "daemon/ctl/audit_verify.hpp"
#include "daemon/ctl/doctor.hpp"
#include "policy/breached_set.hpp"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

using arguments = std::span<char* const>;

struct command {
    std::vector<std::string_view> words;
    std::string_view synopsis;
    std::string_view summary;
    int (*run)(arguments args);
};

int breached_compile(arguments args);

const std::vector<command>& commands() {
    static const std::vector<command> table = {
        {{"breached", "compile"},
         "breached compile [--skip-bad] [--memory-mib N] [--temp-dir DIR] INPUT OUTPUT",
         "compile HIBP 'SHA1HEX[:count]' lines (INPUT '-' is stdin) into the binary set\n"
         "      that policy.breached_hashes_file names",
         breached_compile},
        {{"audit", "verify"},
         "audit verify [--json] FILE...",
         "check the audit trail's hash chain over FILEs, oldest first; prints OK and the\n"
         "      number of lines, or the first edited, deleted or reordered line as FILE:LINE\n"
         "      (exit 0 intact, 1 a problem found, 2 usage or a file unreadable)",
         pwresetd::ctl::audit_verify},
        {{"doctor"},
         "doctor [-c CONFIG] [--user NAME] [--json]",
         "without the daemon and without changing anything: every directory server's TLS\n"
         "      and certificate, the service bind, a sample user, and each right the configured\n"
         "      mode needs, with the command that would grant a missing one",
         pwresetd::ctl::doctor},
        {{"status"},
         "status [--json] [--socket PATH | -c CONFIG]",
         "the running daemon's health: directories, pools, state store, counters",
         pwresetd::ctl::status_command},
        {{"enroll"},
         "enroll [--replace] [--json] [--socket PATH | -c CONFIG] USER",
         "enroll USER's authenticator (prints the otpauth URI, a QR code, recovery codes)",
         pwresetd::ctl::enroll_command},
        {{"unenroll"},
         "unenroll [--json] [--socket PATH | -c CONFIG] USER",
         "remove USER's authenticator and recovery codes",
         pwresetd::ctl::unenroll_command},
        {{"unlock"},
         "unlock [--directory] [--json] [--socket PATH | -c CONFIG] USER",
         "clear pwresetd's lockouts of USER (--directory: the directory account's too)",
         pwresetd::ctl::unlock_command},
    };
    return table;
}

void usage(std::ostream& out) {
    out << "usage: pwresetctl [--help] [--version] COMMAND [ARGS]\n\ncommands:\n";
    for (const auto& c : commands()) {
        out << "  " << c.synopsis << "\n      " << c.summary << '\n';
    }
    out << "\nbreached compile options:\n"
           "  --skip-bad        skip malformed lines (counted) instead of failing\n"
           "  --memory-mib N    RAM the compiler may use (default 1024); more spills to disk\n"
           "  --temp-dir DIR    folder for spill files (default: OUTPUT's folder)\n"
           "\ndoctor options:\n"
           "  -c, --config FILE configuration file (default /etc/pwresetd/pwresetd.yaml)\n"
           "  --user NAME       check the rights on this user (default: the first user the\n"
           "                    user_filter finds under user_base)\n"
           "  --json            the same report as one JSON object\n"
           "\nstatus, enroll, unenroll, unlock: 'pwresetctl COMMAND --help' for options\n"
           "\nexit status: 0 success, 1 failure (breached compile: a malformed line names its\n"
           "number; doctor: a problem found; the daemon refused or reports a problem), 2 usage\n"
           "(doctor: or a configuration that cannot be read; the admin socket: no connection)\n";
}

int usage_error(const std::string& message) {
    std::cerr << "pwresetctl: " << message << '\n';
    usage(std::cerr);
    return exit_usage;
}

int breached_compile(arguments args) {
    pwresetd::policy::compile_options options;
    std::vector<std::string_view> positional;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (options_done || arg == "-" || !arg.starts_with("--")) {
            positional.push_back(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (arg == "--skip-bad") {
            options.skip_bad = true;
        } else if (arg == "--memory-mib" && i + 1 < args.size()) {
            const std::string_view value = args[++i];
            std::uint64_t mib = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mib);
            if (ec != std::errc{} || end != value.data() + value.size() || mib == 0 ||
                mib > (std::uint64_t{1} << 30)) {
                return usage_error("--memory-mib wants a positive number of MiB, not '" +
                                   std::string(value) + "'");
            }
            options.memory_budget_bytes = mib << 20U;
        } else if (arg == "--temp-dir" && i + 1 < args.size()) {
            options.temp_dir = args[++i];
        } else {
            return usage_error("breached compile: unknown or incomplete option '" +
                               std::string(arg) + "'");
        }
    }
    if (positional.size() != 2) {
        return usage_error("breached compile wants INPUT and OUTPUT");
    }
    const std::string input_name(positional[0]);
    const std::filesystem::path output(positional[1]);
    if (output == "-") {
        return usage_error("breached compile: OUTPUT must be a file");
    }

    std::ifstream file;
    std::istream* input = &std::cin;
    if (input_name != "-") {
        file.open(input_name, std::ios::binary);
        if (!file) {
            std::cerr << "pwresetctl: breached compile: cannot open " << input_name << ": "
                      << std::strerror(errno) << '\n';
            return exit_failure;
        }
        input = &file;
    }
    const auto started = std::chrono::steady_clock::now();
    try {
        const auto stats = pwresetd::policy::compile_breached_set(*input, output, options);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
        std::array<char, 256> line{};
        std::snprintf(line.data(), line.size(),
                      "lines=%llu hashes=%llu skipped=%llu bytes=%llu bytes_per_hash=%.3f "
                      "seconds=%.2f",
                      static_cast<unsigned long long>(stats.lines),
                      static_cast<unsigned long long>(stats.hashes),
                      static_cast<unsigned long long>(stats.skipped),
                      static_cast<unsigned long long>(stats.output_bytes),
                      stats.hashes == 0 ? 0.0
                                        : static_cast<double>(stats.output_bytes) /
                                              static_cast<double>(stats.hashes),
                      took.count());
        std::cerr << "pwresetctl: breached compile: " << output.string() << ": " << line.data()
                  << '\n';
        return exit_ok;
    } catch (const pwresetd::policy::compile_error& e) {
        std::cerr << "pwresetctl: breached compile: "
                  << (input_name == "-" ? std::string("stdin") : input_name) << ": " << e.what()
                  << '\n';
    } catch (const std::exception& e) {
        std::cerr << "pwresetctl: breached compile: " << e.what() << '\n';
    }
    return exit_failure;
}

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    const arguments args(argv + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0));
    if (args.empty()) {
        return usage_error("no command given");
    }
    const std::string_view first = args[0];
    if (first == "-h" || first == "--help" || first == "help") {
        usage(std::cout);
        return exit_ok;
    }
    if (first == "--version") {
        std::cout << "pwresetctl " PWRESETD_VERSION "\n";
        return exit_ok;
    }
    for (const auto& c : commands()) {
        if (args.size() >= c.words.size() &&
            std::equal(c.words.begin(), c.words.end(), args.begin(),
                       [](std::string_view word, const char* arg) { return word == arg; })) {
            return c.run(args.subspan(c.words.size()));
        }
    }
    return usage_error("unknown command '" + std::string(first) + "'");
}
