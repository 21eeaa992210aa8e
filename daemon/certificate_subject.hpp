#pragma once
// Which client certificate a client is (clients[].certificate_subject, API.md "Client
// authentication"). The configured text names one of:
// - a subject DN in RFC 4514 string form, most specific RDN first:
//   "CN=portal.example.test,OU=Web,O=Example,C=SE". It matches a certificate whose subject
//   has the same RDNs in the same order, each with the same attributes: types compare by OID
//   (CN, commonName and 2.5.4.3 are one type), values byte for byte after unescaping (case
//   included), the attributes of a multi-valued RDN ("CN=a+UID=b") in any order. Spaces
//   next to the separators , + = are not part of a value; a space inside one is "\ ".
// - "DNS:<name>": a dNSName in the certificate's subjectAltName, ASCII case ignored; a
//   wildcard is only ever the literal text "*.example.test".
// - "URI:<uri>": a uniformResourceIdentifier in the subjectAltName, byte for byte.
// A certificate is only looked at once TLS has verified it against tls.client_ca.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct x509_st;  // OpenSSL's X509

namespace pwresetd::daemon {

struct dn_attribute {
    std::string oid;    // dotted ("2.5.4.3")
    std::string value;  // UTF-8, unescaped
    friend bool operator==(const dn_attribute&, const dn_attribute&) = default;
    friend auto operator<=>(const dn_attribute&, const dn_attribute&) = default;
};
// RDNs most specific first (RFC 4514 order); each RDN's attributes sorted.
using distinguished_name = std::vector<std::vector<dn_attribute>>;

struct certificate_name {
    enum class kind { subject_dn, dns_name, uri } type = kind::subject_dn;
    distinguished_name dn;  // subject_dn
    std::string name;       // dns_name, uri
    std::string text;       // as configured (for logs and messages)
};

// What a verified client certificate says about whom it was issued to.
struct certified_identity {
    distinguished_name subject;
    std::vector<std::string> dns_names;
    std::vector<std::string> uris;
};

// The configured text parsed, or nullopt with the reason in `why`.
std::optional<certificate_name> parse_certificate_subject(std::string_view text, std::string& why);
// An RFC 4514 DN string parsed (for parse_certificate_subject and tests), or nullopt + why.
std::optional<distinguished_name> parse_distinguished_name(std::string_view text, std::string& why);
// The subject and the DNS and URI subjectAltNames of a certificate (none for nullptr). A
// subject OpenSSL cannot read as UTF-8 comes back empty, which no configured DN matches; a
// name with a NUL byte in it is left out.
certified_identity identity_of(const x509_st* cert);
[[nodiscard]] bool matches(const certificate_name& wanted, const certified_identity& peer);

}  // namespace pwresetd::daemon
