#pragma once
// The router behind make_directories(), exposed for tests that give it fake directories.
#include <memory>
#include <string>
#include <vector>

#include "ldap/directory.hpp"

namespace pwresetd::ldap {

struct routed_directory {
    std::string name;
    std::vector<std::string> domains;
    std::unique_ptr<directory> impl;
};

std::unique_ptr<directory> make_router(std::vector<routed_directory> backends);

}  // namespace pwresetd::ldap
