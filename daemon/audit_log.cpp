#include "daemon/audit_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <vector>

#include "common/log.hpp"

namespace pwresetd::daemon {
namespace {

// The path the open file has now, also after a rename (Linux /proc/self/fd); "" if unknown.
std::string current_path_of(int fd) {
    std::error_code ec;
    std::string path =
        std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
    if (ec) {
        return "";
    }
    constexpr std::string_view deleted = " (deleted)";
    if (std::string_view(path).ends_with(deleted)) {
        path.resize(path.size() - deleted.size());
    }
    return path;
}

bool is_compressed(std::string_view name) {
    constexpr std::array<std::string_view, 7> suffixes = {".gz",  ".xz",   ".bz2", ".zst",
                                                          ".lz4", ".lzma", ".Z"};
    return std::any_of(suffixes.begin(), suffixes.end(),
                       [name](std::string_view s) { return name.ends_with(s); });
}

// Files beside `file` named as logrotate names rotated copies (FILE.1, FILE-20260101,
// FILE.1.gz), newest first.
std::vector<std::filesystem::path> rotated_copies(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    const fs::path folder = file.has_parent_path() ? file.parent_path() : fs::path(".");
    const std::string name = file.filename().string();
    std::vector<std::pair<fs::file_time_type, fs::path>> found;
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string entry = it->path().filename().string();
        if (entry.size() <= name.size() || !entry.starts_with(name) ||
            (entry[name.size()] != '.' && entry[name.size()] != '-')) {
            continue;
        }
        std::error_code entry_ec;
        if (!it->is_regular_file(entry_ec)) {
            continue;
        }
        const auto when = it->last_write_time(entry_ec);
        if (!entry_ec) {
            found.emplace_back(when, it->path());
        }
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
    std::vector<fs::path> out;
    out.reserve(found.size());
    for (auto& f : found) {
        out.push_back(std::move(f.second));
    }
    return out;
}

}  // namespace

boost::json::object audit_record(const request_context& ctx, std::string_view event) {
    boost::json::object o;
    o["event"] = event;
    o["request_id"] = ctx.request_id;
    o["client"] = ctx.client;
    o["ip"] = ctx.remote_ip;
    return o;
}

namespace {

// Opens the file for reading and appending; one this call creates is made 0640 whatever
// the umask (the unit's UMask=0077 would make it 0600), so group pwresetd can read the
// trail as the README says. An existing file keeps the mode the operator gave it.
int open_audit_file(const std::string& path) {
    const int created =
        ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (created >= 0) {
        ::fchmod(created, 0640);
        return created;
    }
    if (errno != EEXIST) {
        return -1;
    }
    return ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
}

}  // namespace

audit_log::audit_log(const std::filesystem::path& file) : path_(file.string()) {
    // Read and write: the tail is read through the same descriptor, so it is this file's.
    fd_ = open_audit_file(path_);
    if (fd_ < 0) {
        throw std::runtime_error(path_ + ": cannot open the audit log: " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd_, &st) == 0) {
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
    start_chain_locked();
    log::info("audit.opened",
              {{"file", path_},
               {"seq", head_.seq},
               {"last_hash", head_.hash},
               {"chain", pending_chain_ ? pending_chain_->reason : std::string("continued")}});
}

audit_log::~audit_log() {
    if (fd_ >= 0) {
        // In the journal: the head at a clean stop, to hold the file's end against later.
        log::info("audit.closed", {{"file", path_}, {"seq", head_.seq}, {"last_hash", head_.hash}});
        ::close(fd_);
    }
}

void audit_log::start_chain_locked() {
    using state = audit_chain::file_tail::state;
    audit_chain::file_tail tail;
    try {
        tail = audit_chain::read_tail(fd_);
    } catch (const std::exception& e) {
        log::error("audit.tail_unreadable", {{"file", path_}, {"error", e.what()}});
        head_ = {};
        pending_chain_ = chain_start{"unreadable_tail", path_};
        return;
    }
    switch (tail.what) {
        case state::chained:
            head_ = {tail.seq, tail.hash};
            return;
        case state::unchained:
            log::warning("audit.tail_unchained",
                         {{"file", path_},
                          {"detail",
                           "the last line is not a chained record; a chain record "
                           "links to it"}});
            head_ = {0, tail.hash};
            pending_chain_ = chain_start{"unchained_tail", path_};
            return;
        case state::incomplete:
            log::error("audit.tail_incomplete",
                       {{"file", path_},
                        {"detail",
                         "the last line has no newline (a torn write); it is ended "
                         "and a chain record links to it"}});
            head_ = {0, tail.hash};
            pending_newline_ = true;
            pending_chain_ = chain_start{"incomplete_tail", path_};
            return;
        case state::too_long:
            log::error("audit.tail_unreadable",
                       {{"file", path_}, {"error", "the last line is longer than 16 MiB"}});
            head_ = {};
            pending_newline_ = !tail.ends_with_newline;
            pending_chain_ = chain_start{"unreadable_tail", path_};
            return;
        case state::empty:
            break;
    }

    // A new or empty file: continue the trail of the newest rotated copy beside it (the
    // daemon was restarted after a rotation it did not see).
    head_ = {};
    pending_chain_ = chain_start{"new", ""};
    for (const auto& previous : rotated_copies(path_)) {
        if (is_compressed(previous.filename().string())) {
            log::warning("audit.predecessor_unreadable",
                         {{"file", path_},
                          {"previous_file", previous.string()},
                          {"detail", "compressed; the trail starts again (prev = zeros)"}});
            return;
        }
        const int fd = ::open(previous.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            log::warning("audit.predecessor_unreadable", {{"file", path_},
                                                          {"previous_file", previous.string()},
                                                          {"error", std::strerror(errno)}});
            return;
        }
        try {
            tail = audit_chain::read_tail(fd);
        } catch (const std::exception& e) {
            tail = {state::too_long, {}, 0, true};
        }
        ::close(fd);
        if (tail.what == state::empty) {
            continue;  // an empty file rotated (`ifempty`): its predecessor has the chain
        }
        if (tail.what == state::too_long) {
            log::warning("audit.predecessor_unreadable",
                         {{"file", path_}, {"previous_file", previous.string()}});
            return;
        }
        head_ = {tail.seq, tail.hash};
        pending_chain_ = chain_start{"rotated", previous.string()};
        return;
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

audit_chain::chain_head audit_log::head() const {
    const std::lock_guard lock(mutex_);
    return head_;
}

// One stat(2) per record: logrotate (rename + create, no copytruncate) leaves the path
// naming a new file while this one stays open under the old name.
void audit_log::follow_rotation_locked() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
        missing_since_.reset();
        if (st.st_dev == dev_ && st.st_ino == ino_) {
            return;
        }
        const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            trouble_.write(log::level::error, "audit.reopen_failed",
                           {{"file", path_}, {"error", std::strerror(err)}});
            return;  // keep writing to the renamed file; the chain stays whole
        }
        switch_to_locked(fd, chain_start{"rotated", current_path_of(fd_)});
        return;
    }
    const int err = errno;
    if (err != ENOENT) {
        trouble_.write(log::level::error, "audit.stat_failed",
                       {{"file", path_}, {"error", std::strerror(err)}});
        return;
    }
    // Renamed away and not created again (yet): logrotate's `create` follows the rename at
    // once, and it refuses (O_EXCL) a file that already exists, so wait a little before
    // creating it here. A deleted file is replaced at once: lines written to it are lost.
    struct stat open_st {};
    const bool deleted = ::fstat(fd_, &open_st) == 0 && open_st.st_nlink == 0;
    const auto now = std::chrono::steady_clock::now();
    if (!deleted) {
        if (!missing_since_) {
            missing_since_ = now;
            log::warning("audit.file_missing",
                         {{"file", path_},
                          {"detail", "renamed away; writing to it until the new file appears"}});
        }
        if (now - *missing_since_ < missing_grace) {
            return;
        }
    }
    const int fd = open_audit_file(path_);
    if (fd < 0) {
        const int open_err = errno;
        trouble_.write(log::level::error, "audit.reopen_failed",
                       {{"file", path_}, {"error", std::strerror(open_err)}});
        return;
    }
    switch_to_locked(
        fd, chain_start{deleted ? "replaced" : "rotated", deleted ? path_ : current_path_of(fd_)});
}

void audit_log::switch_to_locked(int fd, chain_start why) {
    struct stat st {};
    ::fstat(fd, &st);
    log::info("audit.rotated", {{"file", path_},
                                {"previous_file", why.previous_file},
                                {"reason", why.reason},
                                {"seq", head_.seq},
                                {"last_hash", head_.hash}});
    ::close(fd_);
    fd_ = fd;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    missing_since_.reset();
    pending_newline_ = false;
    try {
        const auto tail = audit_chain::read_tail(fd_);
        if (tail.what != audit_chain::file_tail::state::empty) {
            log::warning("audit.new_file_not_empty", {{"file", path_}});
            pending_newline_ = !tail.ends_with_newline;
        }
    } catch (const std::exception& e) {
        log::warning("audit.tail_unreadable", {{"file", path_}, {"error", e.what()}});
    }
    pending_chain_ = std::move(why);
}

bool audit_log::write_line_locked(const std::string& line, std::uint64_t seq) {
    std::string text;
    text.reserve(line.size() + 1);
    text += line;
    text += '\n';
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n == static_cast<ssize_t>(text.size())) {
        head_ = {seq, audit_chain::line_hash(line)};
        return true;
    }
    if (n < 0) {
        const int err = errno;
        log::error("audit.write_failed", {{"file", path_}, {"error", std::strerror(err)}});
        return false;  // nothing written: the head stays where it was
    }
    // A short write (a full disk): the bytes written are the file's last line now. The next
    // write ends it; when it is cut inside the JSON, a chain record links to its bytes.
    const auto written = static_cast<std::size_t>(n);
    log::error("audit.write_failed",
               {{"file", path_}, {"error", "short write"}, {"written", std::uint64_t{written}}});
    pending_newline_ = true;
    if (written >= line.size()) {
        head_ = {seq, audit_chain::line_hash(line)};
        return true;
    }
    head_ = {seq, audit_chain::line_hash(std::string_view(line).substr(0, written))};
    pending_chain_ = chain_start{"incomplete_tail", path_};
    return false;
}

void audit_log::record(boost::json::object fields) {
    const std::lock_guard lock(mutex_);
    const std::string time = rfc3339_now();
    follow_rotation_locked();
    if (pending_newline_) {
        if (::write(fd_, "\n", 1) != 1) {
            const int err = errno;
            log::error("audit.write_failed", {{"file", path_}, {"error", std::strerror(err)}});
            return;
        }
        pending_newline_ = false;
    }
    if (pending_chain_) {
        boost::json::object chain;
        chain["event"] = audit_chain::chain_event;
        chain["reason"] = pending_chain_->reason;
        if (!pending_chain_->previous_file.empty()) {
            chain["previous_file"] = pending_chain_->previous_file;
        }
        const std::uint64_t seq = head_.seq + 1;
        if (!write_line_locked(audit_chain::format_line(time, seq, head_.hash, std::move(chain)),
                               seq)) {
            return;  // logged; the record would not be linked where the file begins
        }
        pending_chain_.reset();
    }
    const std::uint64_t seq = head_.seq + 1;
    write_line_locked(audit_chain::format_line(time, seq, head_.hash, std::move(fields)), seq);
}

}  // namespace pwresetd::daemon
