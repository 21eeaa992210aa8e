#pragma once
// A private folder (mode 0700) under the system temporary folder, removed with everything
// in it when the object goes away. The constructor throws std::runtime_error when the
// folder cannot be made.
#include <filesystem>
#include <string_view>

namespace pwresetd::testing {

class temp_dir {
public:
    // The folder is named PREFIX-XXXXXX, so a leftover says which test made it.
    explicit temp_dir(std::string_view prefix = "pwresetd-test");
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    temp_dir(temp_dir&&) = delete;
    temp_dir& operator=(temp_dir&&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::filesystem::path& name) const {
        return path_ / name;
    }

private:
    std::filesystem::path path_;
};

}  // namespace pwresetd::testing
