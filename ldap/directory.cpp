#include "ldap/directory.hpp"

#include <stdexcept>

#include "ldap/connection.hpp"
#include "ldap/dialects.hpp"

namespace pwresetd::ldap {

std::unique_ptr<directory> make_directory(directory_settings settings) {
    if (settings.uris.empty()) {
        throw std::invalid_argument("directory: no uris");
    }
    if (settings.ca_file.empty()) {
        throw std::invalid_argument("directory: ca_file is required (TLS is always verified)");
    }
    if (settings.bind_dn.empty() || settings.bind_password.empty()) {
        // An empty DN or password makes a simple bind anonymous (RFC 4513 section 5.1.2).
        throw std::invalid_argument("directory: bind_dn and bind password are required");
    }
    if (settings.timeout_ms <= 0 || settings.pool_size <= 0) {
        throw std::invalid_argument("directory: timeout_ms and pool_size must be positive");
    }
    // Before any worker thread exists: setenv is not thread-safe.
    ensure_library_initialized();
    switch (settings.kind) {
        case directory_kind::openldap:
            return make_openldap_directory(std::move(settings));
        case directory_kind::active_directory:
            return make_ad_directory(std::move(settings));
    }
    throw std::invalid_argument("directory: unknown kind");
}

}  // namespace pwresetd::ldap
