#include "daemon/client_auth.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/crypto.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;

namespace {

certificate_name subject(const std::string& text) {
    std::string why;
    auto name = parse_certificate_subject(text, why);
    REQUIRE(name.has_value());
    return *name;
}

certified_identity cert_with_cn(const std::string& cn) {
    certified_identity id;
    id.subject.push_back({dn_attribute{"2.5.4.3", cn}});
    return id;
}

certified_identity cert_with_dns(const std::string& dns) {
    certified_identity id = cert_with_cn("anything");
    id.dns_names.push_back(dns);
    return id;
}

}  // namespace

TEST_CASE("a client by key, by certificate, or by both", "[client_auth][mtls]") {
    std::vector<client_settings> clients(4);
    clients[0].name = "keyed";
    clients[0].api_key_sha256 = crypto::sha256("keyed-key");
    clients[1].name = "certified";
    clients[1].certificate_subject = subject("CN=certified.example.test");
    clients[2].name = "both";
    clients[2].api_key_sha256 = crypto::sha256("both-key");
    clients[2].certificate_subject = subject("DNS:both.example.test");
    clients[3].name = "san";
    clients[3].certificate_subject = subject("DNS:san.example.test");
    const client_auth auth(clients);

    const auto certified = cert_with_cn("certified.example.test");
    const auto both = cert_with_dns("both.example.test");
    const auto san = cert_with_dns("SAN.example.test");
    const auto unlisted = cert_with_cn("unlisted.example.test");

    auto who = [&](const std::string& authorization, const certified_identity* cert) {
        const auto r = auth.identify(authorization, cert);
        return r.client != nullptr ? r.client->name : "refused:" + std::string(r.refusal);
    };

    // One way each.
    CHECK(who("Bearer keyed-key", nullptr) == "keyed");
    CHECK(who("", &certified) == "certified");
    CHECK(who("", &san) == "san");
    // A client configured with both needs both.
    CHECK(who("Bearer both-key", &both) == "both");
    CHECK(who("Bearer both-key", nullptr) == "refused:certificate_required");
    CHECK(who("", &both) == "refused:key_required");
    // Nothing, or credentials that name nobody.
    CHECK(who("", nullptr) == "refused:no_credentials");
    CHECK(who("Bearer nobody", nullptr) == "refused:unknown_key");
    CHECK(who("Basic a2V5ZWQta2V5", &certified) == "refused:unknown_key");
    CHECK(who("", &unlisted) == "refused:unlisted_certificate");
    // An unlisted certificate is refused even beside a good key; so are two different clients.
    CHECK(who("Bearer keyed-key", &unlisted) == "refused:unlisted_certificate");
    CHECK(who("Bearer keyed-key", &certified) == "refused:certificate_and_key_disagree");
    CHECK(who("Bearer both-key", &certified) == "refused:certificate_and_key_disagree");
    CHECK(auth.authenticate("Bearer keyed-key") == &clients[0]);
    CHECK(auth.authenticate("", &certified) == &clients[1]);
    CHECK(auth.authenticate("Bearer both-key") == nullptr);
}

TEST_CASE("a certificate that matches two clients names neither", "[client_auth][mtls]") {
    std::vector<client_settings> clients(2);
    clients[0].name = "by-dn";
    clients[0].certificate_subject = subject("CN=portal.example.test");
    clients[1].name = "by-san";
    clients[1].certificate_subject = subject("DNS:portal.example.test");
    const client_auth auth(clients);
    certified_identity cert = cert_with_cn("portal.example.test");
    CHECK(auth.identify("", &cert).client == &clients[0]);
    cert.dns_names.emplace_back("portal.example.test");
    const auto r = auth.identify("", &cert);
    CHECK(r.client == nullptr);
    CHECK(r.refusal == "ambiguous_certificate");
}
