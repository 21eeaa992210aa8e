#pragma once
// What every section reader (sections.hpp) is given: the report, the folder relative paths
// are taken from, and the top-level map; and the file checks sections share.
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "daemon/config/schema.hpp"

namespace pwresetd::daemon::config_detail {

class config_reader {
public:
    // `root` must be a map; its keys are checked against `root_keys` now.
    config_reader(const std::filesystem::path& file, report& out, const YAML::Node& root,
                  std::span<const key_spec> root_keys);

    report& r;
    const map_view top;

    // The block `key` of the top-level map, checked against `keys`; nullopt when absent or
    // not a map (reported).
    [[nodiscard]] std::optional<map_view> section(std::string_view key,
                                                  std::span<const key_spec> keys) const;

    // A path as written, made absolute from the config file's folder.
    [[nodiscard]] std::filesystem::path absolute(const std::string& text) const;
    [[nodiscard]] std::optional<std::filesystem::path> read_path(const field& f) const;
    // A path to a regular file that can be opened now (else reported; the path is returned
    // all the same).
    [[nodiscard]] std::optional<std::filesystem::path> read_readable_file(const field& f) const;
    // pem.cpp: a readable file of PEM certificates (a chain, a CA bundle): at least one, each
    // valid now; one that expires within 30 days is a warning.
    [[nodiscard]] std::optional<std::filesystem::path> read_certificates_file(const field& f) const;
    // pem.cpp: a readable file holding an unencrypted PEM private key.
    [[nodiscard]] std::optional<std::filesystem::path> read_private_key_file(const field& f) const;
    // pem.cpp: the key of `key_field` must belong to the first certificate of `certificate`.
    void check_key_pair(const std::filesystem::path& certificate, const field& key_field,
                        const std::filesystem::path& key) const;
    // A path whose folder must exist (the file itself is created by the daemon). An absent
    // key keeps the default, whose folder must exist too.
    void read_path_in_folder(const std::optional<map_view>& m, std::string_view key,
                             std::string_view key_path, std::filesystem::path& out) const;

private:
    void check_folder(const YAML::Mark& at, std::string_view key_path,
                      const std::filesystem::path& file, const std::string& note) const;

    std::filesystem::path base_;
};

}  // namespace pwresetd::daemon::config_detail
