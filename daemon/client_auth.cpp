#include "daemon/client_auth.hpp"

#include <algorithm>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace pwresetd::daemon {

client_auth::client_auth(const std::vector<client_settings>& clients) : clients_(clients) {}

const client_settings* client_auth::authenticate(std::string_view authorization) const {
    // RFC 9110: the scheme is case-insensitive; RFC 6750: one space, then the token.
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() <= scheme.size() ||
        text::ascii_lower(authorization.substr(0, scheme.size())) != scheme) {
        return nullptr;
    }
    std::string_view token = authorization.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
        token.remove_suffix(1);
    }
    if (token.empty()) {
        return nullptr;
    }
    const auto digest = crypto::sha256(token);
    const client_settings* match = nullptr;
    for (const auto& c : clients_) {
        if (c.api_key_sha256 && crypto::constant_time_equal(*c.api_key_sha256, digest) &&
            match == nullptr) {
            match = &c;
        }
    }
    return match;
}

bool client_auth::has_scope(const client_settings& client, std::string_view scope) {
    return scope == any_client ||
           std::find(client.scopes.begin(), client.scopes.end(), scope) != client.scopes.end();
}

}  // namespace pwresetd::daemon
