#pragma once
// Portal authentication (API.md "Client authentication"): `Authorization: Bearer <key>`
// whose SHA-256 matches a configured client. Keys are never stored in clear; every
// configured digest is compared in constant time, without stopping at the first match.
#include <string_view>
#include <vector>

#include "daemon/config.hpp"

namespace pwresetd::daemon {

class client_auth {
public:
    explicit client_auth(const std::vector<client_settings>& clients);
    // The client the header authenticates, or nullptr.
    [[nodiscard]] const client_settings* authenticate(std::string_view authorization) const;
    // A route's scope: one of the client's scopes, or any_client (every authenticated client).
    [[nodiscard]] static bool has_scope(const client_settings& client, std::string_view scope);
    static constexpr std::string_view any_client = "*";

private:
    const std::vector<client_settings>& clients_;
};

}  // namespace pwresetd::daemon
