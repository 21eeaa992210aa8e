#include "common/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <utility>

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

namespace {
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
    emit(line);
    return true;
}

}  // namespace pwresetd::log
