#pragma once
// Running tools the way a person would at a shell (ldapsearch, the lab scripts).
#include <string>
#include <string_view>

namespace pwresetd::testing {

// One shell word: single-quoted, with embedded single quotes escaped.
[[nodiscard]] std::string shell_quote(std::string_view word);

// Runs COMMAND with /bin/sh -c; its exit status, or -1 when it did not exit normally.
// Never put a password on a command line: pass it in a 0600 file.
int run_shell(const std::string& command);

}  // namespace pwresetd::testing
