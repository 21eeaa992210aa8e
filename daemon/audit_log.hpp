#pragma once
// The audit trail: one JSON object per line, appended to audit.file, with `time` in RFC 3339
// UTC with milliseconds and `Z`. Records name who, what and the outcome, never a secret.
// Safe to call from several threads.
#include <boost/json/object.hpp>

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "daemon/outcome.hpp"

namespace pwresetd::daemon {

// A new record of `event` for one request: event, request_id, client and ip, in that order;
// the service adds who and the outcome.
boost::json::object audit_record(const request_context& ctx, std::string_view event);

class audit_log {
public:
    // Opens (creates 0640) the file for appending; throws std::runtime_error naming it.
    explicit audit_log(const std::filesystem::path& file);
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;
    ~audit_log();

    // Adds `time` and appends the record as one line with one write(2).
    void record(boost::json::object fields);

    static std::string rfc3339_now();

private:
    std::mutex mutex_;
    int fd_ = -1;
    std::string path_;
};

}  // namespace pwresetd::daemon
