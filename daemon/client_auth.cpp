#include "daemon/client_auth.hpp"

#include <algorithm>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace pwresetd::daemon {

client_auth::client_auth(const std::vector<client_settings>& clients) : clients_(clients) {}

const client_settings* client_auth::by_key(std::string_view authorization) const {
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

auth_result client_auth::identify(std::string_view authorization,
                                  const certified_identity* certificate) const {
    const client_settings* keyed = nullptr;
    if (!authorization.empty()) {
        keyed = by_key(authorization);
        if (keyed == nullptr) {
            return {nullptr, "unknown_key"};
        }
    }
    const client_settings* certified = nullptr;
    if (certificate != nullptr) {
        int matched = 0;
        for (const auto& c : clients_) {
            if (c.certificate_subject && matches(*c.certificate_subject, *certificate)) {
                certified = &c;
                ++matched;
            }
        }
        if (matched == 0) {
            return {nullptr, "unlisted_certificate"};
        }
        if (matched > 1) {
            return {nullptr, "ambiguous_certificate"};
        }
    }
    if (keyed == nullptr && certified == nullptr) {
        return {nullptr, "no_credentials"};
    }
    if (keyed != nullptr && certified != nullptr && keyed != certified) {
        return {nullptr, "certificate_and_key_disagree"};
    }
    const client_settings* client = keyed != nullptr ? keyed : certified;
    if (client->api_key_sha256 && keyed == nullptr) {
        return {nullptr, "key_required"};
    }
    if (client->certificate_subject && certified == nullptr) {
        return {nullptr, "certificate_required"};
    }
    return {client, {}};
}

bool client_auth::has_scope(const client_settings& client, std::string_view scope) {
    return scope == any_client ||
           std::find(client.scopes.begin(), client.scopes.end(), scope) != client.scopes.end();
}

}  // namespace pwresetd::daemon
