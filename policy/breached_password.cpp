#include <openssl/evp.h>

#include <stdexcept>

#include "common/secret.hpp"
#include "policy/breached_set.hpp"

namespace pwresetd::policy {

bool breached_set::contains_password(std::string_view password) const {
    sha1_digest digest{};
    unsigned int len = 0;
    if (EVP_Digest(password.data(), password.size(), digest.data(), &len, EVP_sha1(), nullptr) !=
            1 ||
        len != digest.size()) {
        throw std::runtime_error("breached set: SHA-1 failed");
    }
    // The digest of a password is as sensitive as the password for a short one.
    const bool found = contains(digest);
    wipe(digest.data(), digest.size());
    return found;
}

}  // namespace pwresetd::policy
