#pragma once
// The catalogs of daemon/messages/*.json, compiled in by CMake (message_catalogs.cpp.in).
#include <string_view>
#include <vector>

namespace pwresetd::daemon {

struct compiled_catalog {
    std::string_view tag;   // file name without .json
    std::string_view json;  // file contents
};

const std::vector<compiled_catalog>& compiled_catalogs();

}  // namespace pwresetd::daemon
