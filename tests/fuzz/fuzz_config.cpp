// Fuzz target: the configuration file (daemon/config.hpp load_config). Each input is
// written to pwresetd.yaml in a per-process folder that also holds every file the test
// fixtures refer to (TLS files, CA, bind password, banned list, breached set) and serves
// as $CREDENTIALS_DIRECTORY, so inputs derived from the fixtures can pass validation.
// config_error is the documented refusal; any other exception escapes and is a finding.
// Properties: a refusal lists at least one error and each names the file; an accepted
// configuration names the file it came from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "daemon/config.hpp"
#include "fuzz_check.hpp"

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& file, std::string_view text, fs::perms mode) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    FUZZ_CHECK(out.good());
    fs::permissions(file, mode);
}

// The folder, made once per process and removed at exit.
class workspace {
public:
    workspace() {
        std::string pattern =
            (pwresetd::fuzz::scratch_root() / "pwresetd-fuzz-config-XXXXXX").string();
        FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr);
        dir_ = pattern;
        const auto owner = fs::perms::owner_read | fs::perms::owner_write;
        const auto shared = owner | fs::perms::group_read | fs::perms::others_read;
        fs::create_directory(dir_ / "tls");
        const std::string_view pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        write_file(dir_ / "tls/server.crt", pem, shared);
        write_file(dir_ / "tls/server.key", "-----BEGIN PRIVATE KEY-----\n", owner);
        write_file(dir_ / "tls/portal-ca.crt", pem, shared);
        write_file(dir_ / "directory-ca.crt", pem, shared);
        write_file(dir_ / "bind-password", "service-secret\n", owner);
        write_file(dir_ / "empty-password", "", owner);
        write_file(dir_ / "banned.txt", "contoso\nwinter\n", shared);
        write_file(dir_ / "breached.bin", "PWRBSET\x1a", shared);
        // Where the fixtures' relative state, key and audit paths point: this folder.
        ::setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
        file_ = dir_ / "pwresetd.yaml";
    }
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;
    ~workspace() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    [[nodiscard]] const fs::path& file() const { return file_; }

private:
    fs::path dir_;
    fs::path file_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const workspace space;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): bytes as chars.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    write_file(space.file(), text, fs::perms::owner_read | fs::perms::owner_write);
    const std::string name = space.file().string();
    try {
        const auto cfg = pwresetd::daemon::load_config(space.file());
        FUZZ_CHECK(cfg.source == fs::absolute(space.file()).lexically_normal());
    } catch (const pwresetd::daemon::config_error& e) {
        FUZZ_CHECK(!e.errors().empty());
        for (const auto& error : e.errors()) {
            FUZZ_CHECK(error.starts_with(name + ":"));
        }
    }
    return 0;
}
