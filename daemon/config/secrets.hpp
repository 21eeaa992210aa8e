#pragma once
// Secrets in the configuration: never inline, read from a file (`<name>_file`) or from a
// systemd credential (`<name>_credential`, a name in $CREDENTIALS_DIRECTORY). At most
// 4096 bytes, one trailing newline stripped, never empty; a secret file readable by group
// or others is a warning. The secrets.key_file rules are in read_secrets (sections.hpp).
#include <optional>
#include <string_view>

#include "common/secret.hpp"
#include "daemon/config/reader.hpp"

namespace pwresetd::daemon::config_detail {

// A secret given as `<name>_file` (a path) or `<name>_credential` (a systemd credential
// name), never both; nullopt when absent (an error when `required`) or unreadable.
std::optional<secret> read_secret_pair(const config_reader& in, const map_view& m,
                                       std::string_view name, bool required);

}  // namespace pwresetd::daemon::config_detail
