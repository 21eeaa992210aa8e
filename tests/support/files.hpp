#pragma once
// Whole-file reads and writes, in binary. Both throw std::runtime_error naming the file
// when it cannot be opened, read or written, so a missing file fails the test instead of
// reading as empty.
#include <filesystem>
#include <string>
#include <string_view>

namespace pwresetd::testing {

[[nodiscard]] std::string read_file(const std::filesystem::path& path);

// Creates the file or replaces its contents.
void write_file(const std::filesystem::path& path, std::string_view bytes);

}  // namespace pwresetd::testing
