// pwresetd: arguments in, exit code out; everything else lives in the libraries.
#include <cstring>
#include <iostream>
#include <string_view>

#include "daemon/app.hpp"

namespace {

void usage(std::ostream& out) {
    out << "usage: pwresetd [-c FILE] [--check-config] [--version]\n"
           "  -c, --config FILE   configuration file (default /etc/pwresetd/pwresetd.yaml)\n"
           "  --check-config      validate the configuration and exit (0 valid, 1 invalid)\n"
           "  --version           print the version and exit\n";
}

}  // namespace

int main(int argc, char** argv) {
    pwresetd::daemon::options opts;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
            opts.config_file = argv[++i];
        } else if (arg == "--check-config") {
            opts.check_only = true;
        } else if (arg == "--version") {
            std::cout << pwresetd::daemon::version_string() << '\n';
            return 0;
        } else if (arg == "-h" || arg == "--help") {
            usage(std::cout);
            return 0;
        } else {
            std::cerr << "pwresetd: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return 1;
        }
    }
    try {
        return pwresetd::daemon::run(opts);
    } catch (const std::exception& e) {
        std::cerr << "pwresetd: " << e.what() << '\n';
        return 2;
    }
}
