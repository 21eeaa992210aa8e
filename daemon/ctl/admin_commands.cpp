#include "daemon/ctl/admin_commands.hpp"

#include <unistd.h>

#include <openssl/crypto.h>

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "daemon/admin_protocol.hpp"
#include "daemon/config.hpp"
#include "daemon/ctl/admin_client.hpp"
#include "daemon/ctl/qr.hpp"

namespace pwresetd::ctl {
namespace json = boost::json;
namespace admin = daemon::admin;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr const char* default_socket = "/run/pwresetd/admin.sock";
// Long enough for a status that probes every directory server with its timeout.
constexpr std::chrono::milliseconds reply_timeout{120000};

struct command_info {
    std::string_view name;
    std::string_view synopsis;
    std::string_view summary;
    std::string_view options;  // the command's own options, one per line
};

constexpr command_info status_info{
    "status", "status [--json] [--socket PATH | -c CONFIG]",
    "the daemon's version, uptime, listeners, each directory server's health and latency,\n"
    "the connection pools, the state store and the live counters; exit 1 when a directory\n"
    "server or the state store does not answer",
    ""};
constexpr command_info enroll_info{
    "enroll", "enroll [--replace] [--json] [--socket PATH | -c CONFIG] USER",
    "helpdesk-assisted TOTP enrollment: a new key for USER, stored confirmed; prints the\n"
    "otpauth URI, its QR code and the recovery codes (shown this once, never logged)",
    "  --replace         replace the authenticator (and recovery codes) USER already has\n"};
constexpr command_info unenroll_info{
    "unenroll", "unenroll [--json] [--socket PATH | -c CONFIG] USER",
    "removes USER's authenticator and recovery codes (a new enroll issues fresh ones)", ""};
constexpr command_info unlock_info{
    "unlock", "unlock [--directory] [--json] [--socket PATH | -c CONFIG] USER",
    "clears pwresetd's lockouts of USER (wrong codes, wrong current passwords)",
    "  --directory       also unlock the directory account (AD lockoutTime 0; OpenLDAP\n"
    "                    ppolicy pwdAccountLockedTime removed)\n"};

void print_usage(std::ostream& out, const command_info& info) {
    out << "usage: pwresetctl " << info.synopsis << "\n\n"
        << info.summary << "\n\noptions:\n"
        << info.options
        << "  --json            print the daemon's reply as JSON (one line)\n"
           "  --socket PATH     the admin socket (default: -c CONFIG's admin_socket, else\n"
           "                    "
        << default_socket
        << ")\n"
           "  -c CONFIG         read admin_socket from this configuration file\n"
           "\nexit status: 0 ok, 1 the daemon refused or reports a problem, 2 usage or no\n"
           "connection to the socket\n";
}

struct common_options {
    bool json = false;
    bool help = false;
    std::optional<std::string> socket;
    std::optional<std::string> config;
    bool flag = false;  // --replace / --directory
    std::optional<std::string> user;
    std::string error;
};

common_options parse(arguments args, std::string_view flag, bool wants_user) {
    common_options o;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (options_done || !arg.starts_with("-") || arg == "-") {
            if (!wants_user || o.user) {
                o.error = "unexpected argument '" + std::string(arg) + "'";
                return o;
            }
            o.user = std::string(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (arg == "--json") {
            o.json = true;
        } else if (arg == "-h" || arg == "--help") {
            o.help = true;
        } else if (!flag.empty() && arg == flag) {
            o.flag = true;
        } else if (arg == "--socket" && i + 1 < args.size()) {
            o.socket = args[++i];
        } else if (arg == "-c" && i + 1 < args.size()) {
            o.config = args[++i];
        } else {
            o.error = "unknown or incomplete option '" + std::string(arg) + "'";
            return o;
        }
    }
    if (o.socket && o.config) {
        o.error = "--socket and -c: give one of them";
    } else if (wants_user && !o.user && !o.help) {
        o.error = "USER is missing";
    } else if (o.user && o.user->empty()) {
        o.error = "USER must not be empty";
    }
    return o;
}

int usage_error(const command_info& info, const std::string& message) {
    std::cerr << "pwresetctl " << info.name << ": " << message << "\n\n";
    print_usage(std::cerr, info);
    return exit_usage;
}

// The socket to use, or nullopt after printing why there is none (exit 2).
std::optional<std::filesystem::path> socket_path(const command_info& info,
                                                 const common_options& o) {
    if (o.socket) {
        return std::filesystem::path(*o.socket);
    }
    if (!o.config) {
        return std::filesystem::path(default_socket);
    }
    try {
        if (auto path = daemon::admin_socket_of(*o.config)) {
            return path;
        }
        std::cerr << "pwresetctl " << info.name << ": " << *o.config
                  << " sets no admin_socket (the daemon has none)\n";
    } catch (const daemon::config_error& e) {
        for (const auto& line : e.errors()) {
            std::cerr << "pwresetctl " << info.name << ": " << line << '\n';
        }
    }
    return std::nullopt;
}

// The reply, or nullopt after printing why there is none; *code gets the exit status.
std::optional<json::object> ask(const command_info& info, const common_options& o,
                                const admin::request& request, int& code) {
    const auto socket = socket_path(info, o);
    if (!socket) {
        code = exit_usage;
        return std::nullopt;
    }
    try {
        return ask_daemon(*socket, admin::encode_request(request), reply_timeout);
    } catch (const connect_error& e) {
        std::cerr << "pwresetctl " << info.name << ": " << e.what() << '\n';
        code = exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "pwresetctl " << info.name << ": " << e.what() << '\n';
        code = exit_failure;
    }
    return std::nullopt;
}

admin::request make_request(admin::command cmd, std::string user = {}, bool replace = false,
                            bool directory = false) {
    admin::request r;
    r.cmd = cmd;
    r.user = std::move(user);
    r.replace = replace;
    r.directory = directory;
    return r;
}

std::string text_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::int64_t number_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        return 0;
    }
    if (v->is_int64()) {
        return v->as_int64();
    }
    return v->is_uint64() ? static_cast<std::int64_t>(v->as_uint64()) : 0;
}

bool flag_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_bool() && v->as_bool();
}

// A refusal: printed (to stdout as JSON with --json), exit 1.
int refused(const command_info& info, const common_options& o, const json::object& reply) {
    if (o.json) {
        std::cout << json::serialize(reply) << '\n';
    }
    std::cerr << "pwresetctl " << info.name << ": " << text_of(reply, "message") << " ("
              << text_of(reply, "error") << ")\n";
    return exit_failure;
}

std::string duration_text(std::int64_t s) {
    std::string out;
    if (s >= 86400) {
        out += std::to_string(s / 86400) + "d ";
    }
    if (s >= 3600) {
        out += std::to_string(s / 3600 % 24) + "h ";
    }
    if (s >= 60) {
        out += std::to_string(s / 60 % 60) + "m ";
    }
    return out + std::to_string(s % 60) + "s";
}

std::string utc_text(std::int64_t unix_seconds) {
    const std::time_t t = unix_seconds;
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::array<char, 32> text{};
    (void)std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text.data();
}

// Whether everything status shows answers.
bool print_status(const json::object& reply) {
    bool healthy = true;
    std::cout << "pwresetd " << text_of(reply, "version") << ", up "
              << duration_text(number_of(reply, "uptime_s")) << " (since "
              << utc_text(number_of(reply, "started_at")) << ")\n";
    std::cout << "listeners:";
    if (const auto* l = reply.if_contains("listeners"); l != nullptr && l->is_array()) {
        for (const auto& item : l->as_array()) {
            std::cout << ' ' << (item.is_string() ? std::string(item.as_string()) : "?");
        }
    }
    std::cout << "\nadmin socket: " << text_of(reply, "admin_socket") << '\n';
    if (const auto* ds = reply.if_contains("directories"); ds != nullptr && ds->is_array()) {
        for (const auto& item : ds->as_array()) {
            if (!item.is_object()) {
                continue;
            }
            const auto& d = item.as_object();
            const std::string name = text_of(d, "name");
            const bool ok = flag_of(d, "healthy");
            healthy = healthy && ok;
            std::cout << "directory" << (name.empty() ? "" : " " + name) << ": "
                      << (ok ? "healthy" : "NOT ANSWERING");
            if (const auto* p = d.if_contains("pool"); p != nullptr && p->is_object()) {
                std::cout << ", pool " << number_of(p->as_object(), "open") << "/"
                          << number_of(p->as_object(), "size") << " open, "
                          << number_of(p->as_object(), "in_use") << " in use";
            }
            std::cout << '\n';
            if (const auto* ss = d.if_contains("servers"); ss != nullptr && ss->is_array()) {
                for (const auto& s_item : ss->as_array()) {
                    if (!s_item.is_object()) {
                        continue;
                    }
                    const auto& s = s_item.as_object();
                    std::cout << "  " << text_of(s, "uri") << "  ";
                    if (flag_of(s, "answers")) {
                        std::cout << "up, " << number_of(s, "latency_ms") << " ms";
                    } else {
                        healthy = false;  // a replica down is worth a look too
                        std::cout << "DOWN (result " << number_of(s, "result") << ")";
                    }
                    if (flag_of(s, "marked_down")) {
                        std::cout << ", in backoff";
                    }
                    std::cout << '\n';
                }
            }
        }
    }
    if (const auto* st = reply.if_contains("state"); st != nullptr && st->is_object()) {
        const auto& s = st->as_object();
        const bool ok = flag_of(s, "answers");
        healthy = healthy && ok;
        std::cout << "state: " << text_of(s, "backend") << ' ' << text_of(s, "location") << ", "
                  << (ok ? "answers (" + std::to_string(number_of(s, "latency_ms")) + " ms)"
                         : "NOT ANSWERING: " + text_of(s, "error"))
                  << '\n';
    }
    if (const auto* c = reply.if_contains("counters"); c != nullptr && c->is_object()) {
        std::cout << "counters:";
        for (const auto& [key, value] : c->as_object()) {
            std::cout << ' ' << std::string_view(key) << '=' << json::serialize(value);
        }
        std::cout << '\n';
    }
    return healthy;
}

// Every directory server and the state store answer.
bool directory_and_state_answer(const json::object& reply) {
    bool ok = true;
    if (const auto* ds = reply.if_contains("directories"); ds != nullptr && ds->is_array()) {
        for (const auto& d : ds->as_array()) {
            ok = ok && d.is_object() && flag_of(d.as_object(), "healthy");
            const auto* servers = d.is_object() ? d.as_object().if_contains("servers") : nullptr;
            if (servers != nullptr && servers->is_array()) {
                for (const auto& server : servers->as_array()) {
                    ok = ok && server.is_object() && flag_of(server.as_object(), "answers");
                }
            }
        }
    }
    const auto* st = reply.if_contains("state");
    return ok && st != nullptr && st->is_object() && flag_of(st->as_object(), "answers");
}

}  // namespace

int status_command(arguments args) {
    const auto o = parse(args, "", false);
    if (!o.error.empty()) {
        return usage_error(status_info, o.error);
    }
    if (o.help) {
        print_usage(std::cout, status_info);
        return exit_ok;
    }
    int code = exit_ok;
    const auto reply = ask(status_info, o, make_request(admin::command::status), code);
    if (!reply) {
        return code;
    }
    if (!flag_of(*reply, "ok")) {
        return refused(status_info, o, *reply);
    }
    if (o.json) {
        std::cout << json::serialize(*reply) << '\n';
        return directory_and_state_answer(*reply) ? exit_ok : exit_failure;
    }
    return print_status(*reply) ? exit_ok : exit_failure;
}

int enroll_command(arguments args) {
    const auto o = parse(args, "--replace", true);
    if (!o.error.empty()) {
        return usage_error(enroll_info, o.error);
    }
    if (o.help) {
        print_usage(std::cout, enroll_info);
        return exit_ok;
    }
    const admin::request request = make_request(admin::command::enroll, *o.user, o.flag);
    int code = exit_ok;
    auto reply = ask(enroll_info, o, request, code);
    if (!reply) {
        return code;
    }
    if (!flag_of(*reply, "ok")) {
        return refused(enroll_info, o, *reply);
    }
    if (o.json) {
        std::string text = json::serialize(*reply);
        std::cout << text << '\n';
        OPENSSL_cleanse(text.data(), text.size());
    } else {
        const std::string uri = text_of(*reply, "otpauth_uri");
        std::cout << "enrolled " << text_of(*reply, "user") << " (" << text_of(*reply, "dn") << ")"
                  << (flag_of(*reply, "replaced") ? ", replacing the earlier authenticator" : "")
                  << "\n\nScan with the authenticator app, or type the key in:\n\n";
        try {
            std::cout << terminal_qr(uri, ::isatty(STDOUT_FILENO) == 1) << '\n';
        } catch (const std::exception& e) {
            std::cout << "(no QR code: " << e.what() << ")\n";
        }
        std::cout << uri << "\nkey: " << text_of(*reply, "secret")
                  << "\n\nrecovery codes (each works once; give them to the user):\n";
        if (const auto* codes = reply->if_contains("recovery_codes");
            codes != nullptr && codes->is_array()) {
            for (const auto& c : codes->as_array()) {
                std::cout << "  " << (c.is_string() ? std::string(c.as_string()) : "?") << '\n';
            }
        }
    }
    std::cout.flush();
    for (auto& [key, value] : *reply) {
        if (value.is_string()) {
            OPENSSL_cleanse(value.as_string().data(), value.as_string().size());
        }
    }
    return exit_ok;
}

int unenroll_command(arguments args) {
    const auto o = parse(args, "", true);
    if (!o.error.empty()) {
        return usage_error(unenroll_info, o.error);
    }
    if (o.help) {
        print_usage(std::cout, unenroll_info);
        return exit_ok;
    }
    int code = exit_ok;
    const auto reply = ask(unenroll_info, o, make_request(admin::command::unenroll, *o.user), code);
    if (!reply) {
        return code;
    }
    if (!flag_of(*reply, "ok")) {
        return refused(unenroll_info, o, *reply);
    }
    if (o.json) {
        std::cout << json::serialize(*reply) << '\n';
    } else {
        std::cout << "unenrolled " << text_of(*reply, "user") << " (" << text_of(*reply, "dn")
                  << "): authenticator and recovery codes removed\n";
    }
    return exit_ok;
}

int unlock_command(arguments args) {
    const auto o = parse(args, "--directory", true);
    if (!o.error.empty()) {
        return usage_error(unlock_info, o.error);
    }
    if (o.help) {
        print_usage(std::cout, unlock_info);
        return exit_ok;
    }
    int code = exit_ok;
    const auto reply =
        ask(unlock_info, o, make_request(admin::command::unlock, *o.user, false, o.flag), code);
    if (!reply) {
        return code;
    }
    const bool ok = flag_of(*reply, "ok");
    if (o.json) {
        std::cout << json::serialize(*reply) << '\n';
    } else if (reply->contains("cleared")) {
        const auto* cleared = reply->if_contains("cleared");
        std::int64_t codes = 0;
        std::int64_t passwords = 0;
        if (cleared->is_object()) {
            if (const auto* c = cleared->as_object().if_contains("code_failures");
                c != nullptr && c->is_object()) {
                codes = number_of(c->as_object(), "count");
            }
            if (const auto* c = cleared->as_object().if_contains("password_failures");
                c != nullptr && c->is_object()) {
                passwords = number_of(c->as_object(), "count");
            }
        }
        std::cout << "unlocked " << text_of(*reply, "user") << " in pwresetd: cleared " << codes
                  << " wrong code(s), " << passwords << " wrong password(s)\n";
        if (const auto* d = reply->if_contains("directory"); d != nullptr && d->is_object()) {
            const auto& dir = d->as_object();
            if (flag_of(dir, "unlocked")) {
                std::cout << "directory account unlocked"
                          << (flag_of(dir, "was_locked") ? "" : " (it was not locked)") << '\n';
            }
        }
    }
    if (!ok) {
        std::cerr << "pwresetctl unlock: " << text_of(*reply, "message") << " ("
                  << text_of(*reply, "error") << ")\n";
        return exit_failure;
    }
    return exit_ok;
}

}  // namespace pwresetd::ctl
