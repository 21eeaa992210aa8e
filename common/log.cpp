#include "common/log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>

// CODE_FILE/CODE_LINE would name this file for every event: nothing an operator can use.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace pwresetd::log {
namespace {

std::atomic<int> g_level{static_cast<int>(level::info)};

std::string_view level_name(level l) {
    switch (l) {
        case level::error:
            return "error";
        case level::warning:
            return "warning";
        case level::info:
            return "info";
        case level::debug:
            return "debug";
    }
    return "info";
}

bool plain_token(std::string_view v) {
    if (v.empty()) {
        return false;
    }
    for (const char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F || c == '"' || c == '=' || c == '\\') {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<level> parse_level(std::string_view name) {
    if (name == "error") {
        return level::error;
    }
    if (name == "warning") {
        return level::warning;
    }
    if (name == "info") {
        return level::info;
    }
    if (name == "debug") {
        return level::debug;
    }
    return std::nullopt;
}

void set_level(level l) {
    g_level.store(static_cast<int>(l), std::memory_order_relaxed);
}
level current_level() {
    return static_cast<level>(g_level.load(std::memory_order_relaxed));
}
bool enabled(level l) {
    return static_cast<int>(l) <= g_level.load(std::memory_order_relaxed);
}

std::string quote(std::string_view value) {
    if (plain_token(value)) {
        return std::string(value);
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (u < 0x20 || u == 0x7F) {
                    out += "\\x";
                    out.push_back(hex[u >> 4U]);
                    out.push_back(hex[u & 0x0FU]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out += '"';
    return out;
}

std::vector<std::string> journal_fields(level l, std::string_view event,
                                        std::initializer_list<field> fields,
                                        std::string_view line) {
    static constexpr std::string_view priority[] = {"3", "4", "6", "7"};  // syslog levels
    std::vector<std::string> out;
    out.reserve(fields.size() + 4);
    out.push_back("MESSAGE=" + std::string(line));
    out.push_back("PRIORITY=" + std::string(priority[static_cast<int>(l)]));
    out.emplace_back("SYSLOG_IDENTIFIER=pwresetd");
    out.push_back("PWRESETD_EVENT=" + std::string(event));
    for (const auto& f : fields) {
        std::string name = "PWRESETD_";
        for (const char c : f.key) {
            const bool keep = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
            name.push_back(keep                     ? c
                           : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A')
                                                    : '_');
        }
        name.push_back('=');
        out.push_back(name + f.value);
    }
    return out;
}

bool is_journal_stream(const char* journal_stream, int fd) {
    if (journal_stream == nullptr) {
        return false;
    }
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(journal_stream, "%llu:%llu", &device, &inode) != 2) {  // NOLINT(cert-err34-c)
        return false;
    }
    struct stat st {};
    return ::fstat(fd, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == device &&
           static_cast<unsigned long long>(st.st_ino) == inode;
}

namespace {

// sd_journal_sendv(3) reports success when journald's socket does not exist, so the line
// would be lost: send natively only when the socket is there.
bool to_journal() {
    static const bool journal =
        is_journal_stream(std::getenv("JOURNAL_STREAM"),  // NOLINT(concurrency-mt-unsafe)
                          STDERR_FILENO) &&
        ::access("/run/systemd/journal/socket", W_OK) == 0;
    return journal;
}

// One datagram to journald; false when it did not take it.
bool send_to_journal(const std::vector<std::string>& entries) {
    std::vector<iovec> iov;
    iov.reserve(entries.size());
    for (const auto& e : entries) {
        iov.push_back({const_cast<char*>(e.data()),
                       e.size()});  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    }
    return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0;
}

void emit(std::string& line) {
    line += '\n';
    // One write(2) per line keeps lines from different threads whole.
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) {
            break;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}
}  // namespace

std::string format(level l, std::string_view event, std::initializer_list<field> fields) {
    std::string line = "level=";
    line += level_name(l);
    line += " event=";
    line += quote(event);
    for (const auto& f : fields) {
        line += ' ';
        line += f.key;
        line += '=';
        line += quote(f.value);
    }
    return line;
}

void write(level l, std::string_view event, std::initializer_list<field> fields) {
    if (!enabled(l)) {
        return;
    }
    std::string line = format(l, event, fields);
    if (to_journal() && send_to_journal(journal_fields(l, event, fields, line))) {
        return;
    }
    emit(line);
}

bool rate_limited::write(level l, std::string_view event, std::initializer_list<field> fields) {
    std::uint64_t suppressed = 0;
    {
        const std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) {
            ++suppressed_;
            return false;
        }
        last_ = now;
        suppressed = std::exchange(suppressed_, 0);
    }
    if (!enabled(l)) {
        return false;
    }
    std::string line = format(l, event, fields);
    if (suppressed > 0) {
        line += " suppressed=" + std::to_string(suppressed);
    }
    if (to_journal()) {
        auto entries = journal_fields(l, event, fields, line);
        if (suppressed > 0) {
            entries.push_back("PWRESETD_SUPPRESSED=" + std::to_string(suppressed));
        }
        if (send_to_journal(entries)) {
            return true;
        }
    }
    emit(line);
    return true;
}

}  // namespace pwresetd::log
