#pragma once
// Plain file access for load_config, with errors as text for the report: the descriptor
// closes itself, a FIFO given by mistake cannot hang the check.
#include <sys/stat.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace pwresetd::daemon::config_detail {

class file_descriptor {
public:
    explicit file_descriptor(int fd) noexcept : fd_(fd) {}
    file_descriptor(file_descriptor&& other) noexcept;
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    file_descriptor& operator=(file_descriptor&&) = delete;
    ~file_descriptor();
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

// strerror's text for an errno value.
std::string errno_text(int err);

// Opens a regular file for reading; on failure the descriptor is invalid and `why` says why.
// O_NONBLOCK: a FIFO given by mistake must not hang the check (no effect on regular files).
file_descriptor open_regular_file(const std::filesystem::path& path, struct stat& info,
                                  std::string& why);

// The whole of a regular file of at most `max_bytes`; nullopt and `why` when it cannot be
// opened or read, is not a regular file (a FIFO or a device never blocks or streams the
// check), or is larger.
inline constexpr std::size_t max_text_file_bytes = std::size_t{16} * 1024 * 1024;
std::optional<std::string> read_text_file(const std::filesystem::path& file, std::string& why,
                                          std::size_t max_bytes = max_text_file_bytes);

}  // namespace pwresetd::daemon::config_detail
