#pragma once
// A directory lab of tests/lab/ (openldap.sh: slapd on free loopback ports; samba.sh: a
// Samba AD DC on fixed ports, inside tests/lab/in-netns.sh) in a temporary folder of its
// own: `SCRIPT start DIR` on construction, `SCRIPT stop DIR` and removal on destruction.
// If the test process dies without running destructors (a signal, a crash), a reaper
// process stops the lab and removes the folder once the test process is gone. The
// script's own output goes to this process's stderr.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "support/temp_dir.hpp"

namespace pwresetd::testing {

// tests/lab/NAME in the source tree: under $PWRESETD_SOURCE_DIR (set by ctest), else under
// the source folder this library was built from.
[[nodiscard]] std::filesystem::path lab_file(std::string_view name);

class lab_fixture {
public:
    // SCRIPT is a file name under tests/lab/. Throws std::runtime_error when the lab does
    // not start; HINT is added to that message.
    explicit lab_fixture(std::string_view script, std::string_view hint = {});
    ~lab_fixture();
    lab_fixture(const lab_fixture&) = delete;
    lab_fixture& operator=(const lab_fixture&) = delete;
    lab_fixture(lab_fixture&&) = delete;
    lab_fixture& operator=(lab_fixture&&) = delete;

    // A value of DIR/lab.env (LAB_LDAPS_URI, LAB_CA, ...); std::out_of_range when missing.
    [[nodiscard]] const std::string& operator[](const std::string& key) const {
        return env_.at(key);
    }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    // Wall time of `SCRIPT start`.
    [[nodiscard]] double start_seconds() const noexcept { return start_seconds_; }

private:
    void stop() noexcept;

    temp_dir dir_;
    std::string script_;
    std::map<std::string, std::string> env_;
    double start_seconds_ = 0;
};

}  // namespace pwresetd::testing
