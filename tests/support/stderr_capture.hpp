#pragma once
// Captures what the process writes to fd 2 (where common/log writes) from construction
// until text() or destruction, in a file of its own temporary folder. Not for use from
// two threads or nested: fd 2 is process-wide.
#include <string>

#include "support/temp_dir.hpp"

namespace pwresetd::testing {

class stderr_capture {
public:
    stderr_capture();  // throws std::system_error when fd 2 cannot be redirected
    ~stderr_capture();
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;
    stderr_capture(stderr_capture&&) = delete;
    stderr_capture& operator=(stderr_capture&&) = delete;

    // Restores fd 2 (capturing stops) and returns everything captured.
    [[nodiscard]] std::string text();

private:
    void restore() noexcept;

    temp_dir dir_{"pwresetd-stderr"};
    int saved_ = -1;
};

}  // namespace pwresetd::testing
