#include "daemon/config/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
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

std::optional<std::string> read_text_file(const std::filesystem::path& file, std::string& why,
                                          std::size_t max_bytes) {
    struct stat info {};
    std::string open_why;
    file_descriptor fd = open_regular_file(file, info, open_why);
    if (fd.get() < 0) {
        // The reason without the "cannot open PATH: " that open_regular_file puts first.
        const std::string prefix = "cannot open " + file.string() + ": ";
        why = open_why.rfind(prefix, 0) == 0 ? open_why.substr(prefix.size()) : open_why;
        return std::nullopt;
    }
    const auto too_large = [&] {
        why = "larger than " + std::to_string(max_bytes) + " bytes";
        return std::nullopt;
    };
    if (static_cast<std::uint64_t>(info.st_size) > max_bytes) {
        return too_large();
    }
    // A regular file read with O_NONBLOCK blocks as usual; the flag only kept a FIFO from
    // hanging the open.
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
        if (text.size() > max_bytes) {  // it grew while being read
            return too_large();
        }
    }
}

}  // namespace pwresetd::daemon::config_detail
