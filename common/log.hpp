#pragma once
// Structured logging: one line per event, `level=... event=... key=value ...`, values
// quoted and escaped when needed, so a hostile username cannot forge a line. Secrets have
// no way in: `secret` has no conversion to text, and callers pass only redacted values.
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::log {

enum class level { error = 0, warning = 1, info = 2, debug = 3 };

std::optional<level> parse_level(std::string_view name);
void set_level(level l);
level current_level();
bool enabled(level l);

struct field {
    std::string_view key;
    std::string value;
    field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const char* v) : key(k), value(v) {}
    field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
    field(std::string_view k, std::int64_t v) : key(k), value(std::to_string(v)) {}
    field(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
    field(std::string_view k, unsigned v) : key(k), value(std::to_string(v)) {}
    field(std::string_view k, std::uint64_t v) : key(k), value(std::to_string(v)) {}
};

// Formats a line without writing it (used by tests and by write()).
std::string format(level l, std::string_view event, std::initializer_list<field> fields);

// Under systemd, stderr is a journal stream ($JOURNAL_STREAM names its device and inode);
// then each event goes to journald natively, with its fields as journal fields:
// MESSAGE (the same key=value line), PRIORITY, SYSLOG_IDENTIFIER=pwresetd,
// PWRESETD_EVENT and PWRESETD_<KEY> per field (upper case, other than [A-Z0-9_] as `_`),
// so `journalctl -u pwresetd PWRESETD_EVENT=reset.completed PWRESETD_USER=alice` works.
// When journald cannot take it, the line goes to stderr as always.
std::vector<std::string> journal_fields(level l, std::string_view event,
                                        std::initializer_list<field> fields, std::string_view line);
// Whether `journal_stream` ("DEVICE:INODE", the $JOURNAL_STREAM value) names `fd`.
bool is_journal_stream(const char* journal_stream, int fd);
// Quotes and escapes a value for a key=value line when it is not a plain token.
std::string quote(std::string_view value);

void write(level l, std::string_view event, std::initializer_list<field> fields);
inline void error(std::string_view event, std::initializer_list<field> f = {}) {
    write(level::error, event, f);
}
inline void warning(std::string_view event, std::initializer_list<field> f = {}) {
    write(level::warning, event, f);
}
inline void info(std::string_view event, std::initializer_list<field> f = {}) {
    write(level::info, event, f);
}
inline void debug(std::string_view event, std::initializer_list<field> f = {}) {
    write(level::debug, event, f);
}

// For events an outside party can trigger at will (accept failures, refused connections):
// at most one line per `event` per `interval`; the next line written says how many were
// suppressed in between (`suppressed=N`). Returns whether a line was written.
class rate_limited {
public:
    explicit rate_limited(std::chrono::steady_clock::duration interval = std::chrono::seconds(1))
        : interval_(interval) {}
    bool write(level l, std::string_view event, std::initializer_list<field> fields);

private:
    std::mutex mutex_;
    std::chrono::steady_clock::duration interval_;
    std::chrono::steady_clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

}  // namespace pwresetd::log
