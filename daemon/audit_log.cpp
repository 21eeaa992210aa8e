#include "daemon/audit_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "common/log.hpp"

namespace pwresetd::daemon {

boost::json::object audit_record(const request_context& ctx, std::string_view event) {
    boost::json::object o;
    o["event"] = event;
    o["request_id"] = ctx.request_id;
    o["client"] = ctx.client;
    o["ip"] = ctx.remote_ip;
    return o;
}

audit_log::audit_log(const std::filesystem::path& file) : path_(file.string()) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        throw std::runtime_error(path_ + ": cannot open the audit log: " + std::strerror(errno));
    }
}

audit_log::~audit_log() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

std::string audit_log::rfc3339_now() {
    const auto now = std::chrono::system_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms.count() % 1000));
    return std::string(buf, n) + frac;
}

void audit_log::record(boost::json::object fields) {
    boost::json::object line;
    line["time"] = rfc3339_now();
    for (auto& kv : fields) {
        line[kv.key()] = std::move(kv.value());
    }
    std::string text = boost::json::serialize(line);
    text += '\n';
    const std::lock_guard lock(mutex_);
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
        log::error("audit.write_failed", {{"file", path_}, {"error", std::strerror(errno)}});
    }
}

}  // namespace pwresetd::daemon
