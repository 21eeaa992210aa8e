#include "daemon/certificate_subject.hpp"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace pwresetd::daemon;

namespace {

struct x509_free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;

struct entry {
    const char* type;
    std::string value;
    int set = 0;  // X509_NAME_add_entry_by_txt: 0 a new RDN, -1 the same RDN as the last
};

// A certificate with just a subject and subjectAltNames, as identity_of() reads them (no key,
// no signature: what it says is all that is looked at once TLS has verified it).
x509_ptr certificate(const std::vector<entry>& subject_asn1_order, const std::string& san = "") {
    x509_ptr cert(X509_new());
    REQUIRE(cert);
    X509_NAME* name = X509_get_subject_name(cert.get());
    for (const auto& e : subject_asn1_order) {
        REQUIRE(X509_NAME_add_entry_by_txt(name, e.type, MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(e.value.data()),
                                           static_cast<int>(e.value.size()), -1, e.set) == 1);
    }
    if (!san.empty()) {
        X509_EXTENSION* ext =
            X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
        REQUIRE(ext != nullptr);
        REQUIRE(X509_add_ext(cert.get(), ext, -1) == 1);
        X509_EXTENSION_free(ext);
    }
    return cert;
}

certificate_name parsed(const std::string& text) {
    std::string why;
    auto name = parse_certificate_subject(text, why);
    INFO(text << ": " << why);
    REQUIRE(name.has_value());
    return std::move(*name);
}

std::string refusal(const std::string& text) {
    std::string why;
    const auto name = parse_certificate_subject(text, why);
    CHECK_FALSE(name.has_value());
    return why;
}

}  // namespace

TEST_CASE("a certificate subject DN is read in RFC 4514 order", "[mtls]") {
    const auto cert =
        certificate({{"C", "SE"}, {"O", "Example AB"}, {"CN", "portal.example.test"}});
    const auto id = identity_of(cert.get());
    REQUIRE(id.subject.size() == 3);
    CHECK(id.subject[0] == std::vector<dn_attribute>{{"2.5.4.3", "portal.example.test"}});
    CHECK(id.subject[2] == std::vector<dn_attribute>{{"2.5.4.6", "SE"}});
    CHECK(matches(parsed("CN=portal.example.test,O=Example AB,C=SE"), id));
    // Type names by any spelling, spaces next to separators.
    CHECK(matches(parsed("cn = portal.example.test, o=Example AB , 2.5.4.6=SE"), id));
    CHECK(matches(parsed("commonName=portal.example.test,O=Example AB,countryName=SE"), id));
    // The whole DN, in order, values case included.
    CHECK_FALSE(matches(parsed("CN=portal.example.test"), id));
    CHECK_FALSE(
        matches(parsed("C=SE,O=Example AB,CN=portal.example.test"), id));  // OpenSSL's order
    CHECK_FALSE(matches(parsed("CN=Portal.example.test,O=Example AB,C=SE"), id));
    CHECK_FALSE(matches(parsed("CN=portal.example.test,O=Example AB,C=SE,DC=test"), id));
    CHECK_FALSE(matches(parsed("CN=portal.example.test,OU=Example AB,C=SE"), id));
    CHECK_FALSE(matches(parsed("DNS:portal.example.test"), id));  // a CN is not a SAN
}

TEST_CASE("escapes and multi-valued RDNs", "[mtls]") {
    const auto cert = certificate({{"O", "Example, Inc."},
                                   {"CN", "portal+1 \"a\""},
                                   {"UID", "p1", -1},  // CN=...+UID=p1: one RDN
                                   {"OU", "caf\xc3\xa9"}});
    const auto id = identity_of(cert.get());
    REQUIRE(id.subject.size() == 3);
    CHECK(id.subject[1].size() == 2);
    CHECK(matches(parsed(R"(OU=caf\c3\a9,CN=portal\+1 \"a\"+UID=p1,O=Example\, Inc.)"), id));
    CHECK(matches(parsed("OU=caf\xc3\xa9,UID=p1+CN=portal\\+1 \\\"a\\\",O=Example\\, Inc."), id));
    CHECK_FALSE(matches(parsed(R"(OU=caf\c3\a9,CN=portal\+1 \"a\",UID=p1,O=Example\, Inc.)"), id));
    CHECK_FALSE(matches(parsed(R"(OU=cafe,CN=portal\+1 \"a\"+UID=p1,O=Example\, Inc.)"), id));
    // A space that belongs to a value is escaped; unescaped ones at its ends are not part of it.
    const auto spaced = identity_of(certificate({{"CN", " padded "}}).get());
    CHECK(matches(parsed(R"(CN=\ padded\ )"), spaced));
    CHECK_FALSE(matches(parsed("CN= padded "), spaced));
}

TEST_CASE("subjectAltName DNS and URI names", "[mtls]") {
    const auto cert =
        certificate({{"CN", "something else"}},
                    "DNS:portal.example.test,DNS:*.wild.example.test,URI:spiffe://example.test/"
                    "portal,email:portal@example.test");
    const auto id = identity_of(cert.get());
    CHECK(id.dns_names == std::vector<std::string>{"portal.example.test", "*.wild.example.test"});
    CHECK(id.uris == std::vector<std::string>{"spiffe://example.test/portal"});
    CHECK(matches(parsed("DNS:portal.example.test"), id));
    CHECK(matches(parsed("dns:PORTAL.Example.Test"), id));  // DNS names ignore ASCII case
    CHECK_FALSE(matches(parsed("DNS:other.example.test"), id));
    CHECK_FALSE(matches(parsed("DNS:portal.example"), id));
    // No wildcard expansion: only the literal text.
    CHECK_FALSE(matches(parsed("DNS:a.wild.example.test"), id));
    CHECK(matches(parsed("DNS:*.wild.example.test"), id));
    CHECK(matches(parsed("URI:spiffe://example.test/portal"), id));
    CHECK_FALSE(matches(parsed("URI:spiffe://example.test/Portal"), id));  // URIs exactly
    CHECK_FALSE(matches(parsed("URI:spiffe://example.test/portal/"), id));
    CHECK(matches(parsed("CN=something else"), id));
    // No certificate: nothing matches.
    const auto none = identity_of(nullptr);
    CHECK_FALSE(matches(parsed("CN=something else"), none));
    CHECK_FALSE(matches(parsed("DNS:portal.example.test"), none));
}

TEST_CASE("configured subjects that are refused, with the reason", "[mtls]") {
    CHECK(refusal("portal.example.test").find("type=value") != std::string::npos);
    CHECK(refusal("CN=a;O=b").find("must be escaped") != std::string::npos);
    CHECK(refusal("CN=a,").find("expected type=value") != std::string::npos);
    CHECK(refusal("CN=#04024869").find("#hex") != std::string::npos);
    CHECK(refusal("CN=").find("empty") != std::string::npos);
    CHECK(refusal("CN=a\\").find("backslash") != std::string::npos);
    CHECK(refusal("CN=a\\q").find("escape") != std::string::npos);
    CHECK(refusal("CN=a\\00").find("UTF-8") != std::string::npos);
    CHECK(refusal("CN=\\ff").find("UTF-8") != std::string::npos);
    CHECK(refusal("noSuchType=a").find("unknown attribute type") != std::string::npos);
    CHECK(refusal("1.02.3=a").find("numeric OID") != std::string::npos);
    CHECK(refusal("email:portal@example.test").find("DNS: or URI:") != std::string::npos);
    CHECK(refusal("DNS:").find("not empty") != std::string::npos);
    CHECK(refusal("DNS:a b").find("without spaces") != std::string::npos);
    CHECK(refusal("URI:").find("not empty") != std::string::npos);
}
