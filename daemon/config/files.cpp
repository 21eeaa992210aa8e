#include "daemon/config/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>

namespace pwresetd::daemon::config_detail {

file_descriptor::file_descriptor(file_descriptor&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

file_descriptor::~file_descriptor() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

file_descriptor open_regular_file(const std::filesystem::path& path, struct stat& info,
                                  std::string& why) {
    file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0 || ::fstat(fd.get(), &info) != 0) {
        why = "cannot open " + path.string() + ": " + errno_text(errno);
        return file_descriptor(-1);
    }
    if (!S_ISREG(info.st_mode)) {
        why = "cannot open " + path.string() + ": not a regular file";
        return file_descriptor(-1);
    }
    return fd;
}

std::optional<std::string> read_text_file(const std::filesystem::path& file, std::string& why) {
    file_descriptor fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        why = errno_text(errno);
        return std::nullopt;
    }
    std::string text;
    std::array<char, 65536> chunk{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            why = errno_text(errno);
            return std::nullopt;
        }
        if (n == 0) {
            return text;
        }
        text.append(chunk.data(), static_cast<std::size_t>(n));
    }
}

}  // namespace pwresetd::daemon::config_detail
