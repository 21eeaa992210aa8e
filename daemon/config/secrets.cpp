#include "daemon/config/secrets.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "daemon/config/files.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

namespace fs = std::filesystem;

constexpr auto secrets_keys = std::to_array<key_spec>({"key_file"});

std::optional<secret> read_secret_file(report& r, const field& f, const fs::path& path,
                                       bool warn_permissions) {
    struct stat info {};
    std::string why;
    const file_descriptor fd = open_regular_file(path, info, why);
    if (fd.get() < 0) {
        r.error(f.key_mark, f.path, why);
        return std::nullopt;
    }
    if (warn_permissions && (info.st_mode & (S_IRGRP | S_IROTH)) != 0) {
        r.warning(f.key_mark, f.path, path.string() + " is readable by group or others; chmod 600");
    }
    constexpr std::size_t max_size = 4096;
    std::array<char, max_size + 1> buffer{};
    std::size_t size = 0;
    while (size < buffer.size()) {
        const ssize_t n = ::read(fd.get(), buffer.data() + size, buffer.size() - size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r.error(f.key_mark, f.path, "cannot read " + path.string() + ": " + errno_text(errno));
            wipe(buffer.data(), buffer.size());
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        size += static_cast<std::size_t>(n);
    }
    std::optional<secret> out;
    if (size > max_size) {
        r.error(f.key_mark, f.path,
                path.string() + " is larger than " + std::to_string(max_size) + " bytes");
    } else {
        if (size > 0 && buffer[size - 1] == '\n') {
            --size;
        }
        if (size == 0) {
            r.error(f.key_mark, f.path, path.string() + " is empty");
        } else {
            out.emplace(std::string_view(buffer.data(), size));
        }
    }
    wipe(buffer.data(), buffer.size());
    return out;
}

std::optional<secret> read_credential(report& r, const field& f, const std::string& name) {
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
        r.error(f.value_mark(), f.path, "expected a credential name, not a path");
        return std::nullopt;
    }
    const char* folder = std::getenv("CREDENTIALS_DIRECTORY");  // NOLINT(concurrency-mt-unsafe)
    if (folder == nullptr || *folder == '\0') {
        r.error(f.key_mark, f.path,
                "$CREDENTIALS_DIRECTORY is not set (systemd sets it for "
                "LoadCredential= and SetCredentialEncrypted=)");
        return std::nullopt;
    }
    return read_secret_file(r, f, fs::path(folder) / name, false);
}

}  // namespace

std::optional<secret> read_secret_pair(const config_reader& in, const map_view& m,
                                       std::string_view name, bool required) {
    const std::string file_key = std::string(name) + "_file";
    const std::string credential_key = std::string(name) + "_credential";
    const auto file = m.get(file_key);
    const auto credential = m.get(credential_key);
    if (!file && !credential) {
        if (required) {
            in.r.error(m.mark(), m.path(),
                       "missing required key '" + file_key + "' or '" + credential_key + "'");
        }
        return std::nullopt;
    }
    if (file && credential) {
        const auto& later = file->key_mark.pos > credential->key_mark.pos ? *file : *credential;
        in.r.error(later.key_mark, later.path,
                   "use either " + file_key + " or " + credential_key + ", not both");
        return std::nullopt;
    }
    if (file) {
        if (const auto path = in.read_path(*file)) {
            return read_secret_file(in.r, *file, *path, true);
        }
        return std::nullopt;
    }
    if (const auto credential_name = as_string(in.r, *credential)) {
        return read_credential(in.r, *credential, *credential_name);
    }
    return std::nullopt;
}

void read_secrets(const config_reader& in, config& cfg) {
    const auto m = in.section("secrets", secrets_keys);
    in.read_path_in_folder(m, "key_file", "secrets.key_file", cfg.secrets_key_file);
    // A missing key is created (0600) at start; an existing one must be what the daemon
    // will accept: a private regular file (not a link, a FIFO, a folder) of 32 bytes.
    struct stat info {};
    if (::lstat(cfg.secrets_key_file.c_str(), &info) == 0) {
        const auto f = m ? m->get("key_file") : std::nullopt;
        const auto at = f ? f->key_mark : (m ? m->mark() : in.top.mark());
        const std::string name = cfg.secrets_key_file.string();
        if (!S_ISREG(info.st_mode)) {
            in.r.error(at, "secrets.key_file",
                       name + (S_ISLNK(info.st_mode) ? " is a symbolic link; name the file itself"
                                                     : " is not a regular file"));
        } else if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
            in.r.error(at, "secrets.key_file",
                       name + " is accessible by group or others; chmod 600 it");
        } else if (info.st_size != 32) {
            in.r.error(
                at, "secrets.key_file",
                name + " must hold exactly 32 bytes (it has " + std::to_string(info.st_size) + ")");
        }
    }
}

}  // namespace pwresetd::daemon::config_detail
