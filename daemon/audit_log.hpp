#pragma once
// The audit trail: one JSON object per line, appended to audit.file, with `time` in RFC 3339
// UTC with milliseconds and `Z`. Records name who, what and the outcome, never a secret.
// Every line is hash-chained to the one before (common/audit_chain.hpp), across restarts and
// across rotation: before each write the path is checked against the open file (inode), and
// when logrotate has renamed it away and created a new one, the new file begins with a chain
// record holding the hash of the old file's last line. Safe to call from several threads.
#include <sys/types.h>

#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/audit_chain.hpp"
#include "common/log.hpp"
#include "daemon/outcome.hpp"

namespace pwresetd::daemon {

// A new record of `event` for one request: event, request_id, client and ip, in that order;
// the service adds who and the outcome.
boost::json::object audit_record(const request_context& ctx, std::string_view event);

class audit_log {
public:
    // Opens (creates 0640) the file for appending and finds where its chain stands: a
    // non-empty file is continued from its last line; an empty one from the newest rotated
    // file beside it (FILE.1, FILE-20260101, ...) when there is a readable one, else the trail
    // starts (prev = 64 zeros). A damaged last line is logged and bridged by a chain record.
    // Throws std::runtime_error naming the file when it cannot be opened.
    explicit audit_log(const std::filesystem::path& file);
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;
    ~audit_log();

    // Adds `time`, `seq` and `prev` and appends the record as one line with one write(2).
    void record(boost::json::object fields);

    // Where the chain stands after the last line written.
    audit_chain::chain_head head() const;

    static std::string rfc3339_now();

    // How long the path may stay missing after the open file was renamed away before the
    // log creates it itself (logrotate's `create` makes it at once; `nocreate` never does).
    static constexpr std::chrono::seconds missing_grace{5};

private:
    struct chain_start {
        std::string reason;
        std::string previous_file;
    };

    void start_chain_locked();
    void follow_rotation_locked();
    void switch_to_locked(int fd, chain_start why);
    bool write_line_locked(const std::string& line, std::uint64_t seq);

    mutable std::mutex mutex_;
    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::string path_;
    audit_chain::chain_head head_;
    std::optional<chain_start> pending_chain_;  // the next line written is a chain record
    bool pending_newline_ = false;              // the file ends in a torn line
    std::optional<std::chrono::steady_clock::time_point> missing_since_;
    log::rate_limited trouble_{std::chrono::seconds(10)};  // stat/reopen failures
};

}  // namespace pwresetd::daemon
