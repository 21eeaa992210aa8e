#include "daemon/config/reader.hpp"

#include <system_error>
#include <utility>

#include "daemon/config/files.hpp"

namespace pwresetd::daemon::config_detail {

namespace fs = std::filesystem;

config_reader::config_reader(const fs::path& file, report& out, const YAML::Node& root,
                             std::span<const key_spec> root_keys)
    : r(out), top(out, root, "", root_keys), base_(fs::absolute(file).parent_path()) {}

std::optional<map_view> config_reader::section(std::string_view key,
                                               std::span<const key_spec> keys) const {
    if (const auto f = top.get(key)) {
        return as_map(r, *f, keys);
    }
    return std::nullopt;
}

fs::path config_reader::absolute(const std::string& text) const {
    const fs::path p(text);
    return (p.is_absolute() ? p : base_ / p).lexically_normal();
}

std::optional<fs::path> config_reader::read_path(const field& f) const {
    if (const auto text = as_string(r, f)) {
        return absolute(*text);
    }
    return std::nullopt;
}

std::optional<fs::path> config_reader::read_readable_file(const field& f) const {
    auto path = read_path(f);
    if (path) {
        struct stat info {};
        std::string why;
        if (open_regular_file(*path, info, why).get() < 0) {
            r.error(f.key_mark, f.path, why);
        }
    }
    return path;
}

void config_reader::check_folder(const YAML::Mark& at, std::string_view key_path,
                                 const fs::path& file, const std::string& note) const {
    const fs::path folder = file.parent_path();
    std::error_code ec;
    const auto status = fs::status(folder, ec);
    if (status.type() == fs::file_type::not_found) {
        r.error(at, key_path, "folder " + folder.string() + " does not exist" + note);
    } else if (ec) {
        r.error(at, key_path,
                "cannot check folder " + folder.string() + ": " + ec.message() + note);
    } else if (!fs::is_directory(status)) {
        r.error(at, key_path, folder.string() + " is not a folder" + note);
    }
}

void config_reader::read_path_in_folder(const std::optional<map_view>& m, std::string_view key,
                                        std::string_view key_path, fs::path& out) const {
    const auto f = m ? m->get(key) : std::nullopt;
    if (f) {
        if (auto p = read_path(*f)) {
            out = std::move(*p);
            check_folder(f->key_mark, key_path, out, "");
        }
        return;
    }
    check_folder(m ? m->mark() : top.mark(), key_path, out, " (the default)");
}

}  // namespace pwresetd::daemon::config_detail
