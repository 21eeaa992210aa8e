#pragma once
// Portal authentication (API.md "Client authentication"): `Authorization: Bearer <key>`
// whose SHA-256 matches a configured client, a client certificate (verified by TLS against
// tls.client_ca) that matches a client's certificate_subject, or both. Keys are never stored
// in clear; every configured digest is compared in constant time, without stopping at the
// first match.
//
// The rule, in order: an Authorization header that matches no key is refused; a certificate
// that matches no client, or more than one, is refused (whatever the header says); a key and
// a certificate of two different clients are refused; a client configured with both an
// api_key_sha256 and a certificate_subject must present both; one configured with one of
// them, that one.
#include <string_view>
#include <vector>

#include "daemon/certificate_subject.hpp"
#include "daemon/config.hpp"

namespace pwresetd::daemon {

struct auth_result {
    const client_settings* client = nullptr;
    std::string_view refusal;  // when client is nullptr: why, as a log field value
};

class client_auth {
public:
    explicit client_auth(const std::vector<client_settings>& clients);
    // `authorization`: the header's value ("" when absent); `certificate`: what the client's
    // verified certificate says, nullptr when it presented none.
    [[nodiscard]] auth_result identify(std::string_view authorization,
                                       const certified_identity* certificate) const;
    // The client the credentials authenticate, or nullptr.
    [[nodiscard]] const client_settings* authenticate(
        std::string_view authorization, const certified_identity* certificate = nullptr) const {
        return identify(authorization, certificate).client;
    }
    // A route's scope: one of the client's scopes, or any_client (every authenticated client).
    [[nodiscard]] static bool has_scope(const client_settings& client, std::string_view scope);
    static constexpr std::string_view any_client = "*";

private:
    const client_settings* by_key(std::string_view authorization) const;

    const std::vector<client_settings>& clients_;
};

}  // namespace pwresetd::daemon
