#pragma once
// The config file as one YAML document.
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "daemon/config/schema.hpp"

namespace pwresetd::daemon::config_detail {

// The root node of the file's only document (an empty map for an empty file). Throws
// config_error with the report's errors when the file cannot be read or is not YAML; a
// second document is reported.
YAML::Node read_document(const std::filesystem::path& file, report& r);

}  // namespace pwresetd::daemon::config_detail
