#include "support/stderr_capture.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>

#include "support/files.hpp"

namespace pwresetd::testing {

stderr_capture::stderr_capture() {
    const auto file = dir_ / "stderr.log";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "open " + file.string());
    }
    std::fflush(stderr);
    saved_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    if (saved_ < 0 || ::dup2(fd, STDERR_FILENO) < 0) {
        const int error = errno;
        ::close(fd);
        restore();
        throw std::system_error(error, std::generic_category(), "redirect fd 2");
    }
    ::close(fd);
}

stderr_capture::~stderr_capture() {
    restore();
}

std::string stderr_capture::text() {
    restore();
    return read_file(dir_ / "stderr.log");
}

void stderr_capture::restore() noexcept {
    if (saved_ >= 0) {
        std::fflush(stderr);
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
        saved_ = -1;
    }
}

}  // namespace pwresetd::testing
