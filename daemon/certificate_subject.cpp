#include "daemon/certificate_subject.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "common/text.hpp"

namespace pwresetd::daemon {
namespace {

// RFC 4514 section 3: the names every implementation knows (case-insensitive).
struct short_name {
    std::string_view name;
    std::string_view oid;
};
constexpr auto rfc4514_names = std::to_array<short_name>({
    {"cn", "2.5.4.3"},
    {"l", "2.5.4.7"},
    {"st", "2.5.4.8"},
    {"o", "2.5.4.10"},
    {"ou", "2.5.4.11"},
    {"c", "2.5.4.6"},
    {"street", "2.5.4.9"},
    {"dc", "0.9.2342.19200300.100.1.25"},
    {"uid", "0.9.2342.19200300.100.1.1"},
});

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

struct asn1_object_free {
    void operator()(ASN1_OBJECT* o) const noexcept { ASN1_OBJECT_free(o); }
};

std::string dotted(const ASN1_OBJECT* object) {
    std::array<char, 128> buffer{};
    const int n = OBJ_obj2txt(buffer.data(), static_cast<int>(buffer.size()), object, 1);
    if (n <= 0 || static_cast<std::size_t>(n) >= buffer.size()) {
        return {};
    }
    return std::string(buffer.data(), static_cast<std::size_t>(n));
}

// numericoid = number 1*( DOT number ), number = DIGIT / ( LDIGIT 1*DIGIT ) (RFC 4512 1.4).
bool is_numeric_oid(std::string_view s) {
    std::size_t parts = 0;
    while (true) {
        const auto dot = s.find('.');
        const auto number = s.substr(0, dot);
        if (number.empty() || !std::all_of(number.begin(), number.end(), is_digit) ||
            (number.size() > 1 && number.front() == '0')) {
            return false;
        }
        ++parts;
        if (dot == std::string_view::npos) {
            return parts >= 2;
        }
        s.remove_prefix(dot + 1);
    }
}

// The dotted OID of an attribute type: an RFC 4514 name, a name OpenSSL knows as spelled
// ("serialNumber", "emailAddress"), or a numeric OID.
std::optional<std::string> type_oid(std::string_view type, std::string& why) {
    if (type.empty()) {
        why = "an attribute type is missing";
        return std::nullopt;
    }
    if (is_digit(type.front())) {
        if (!is_numeric_oid(type)) {
            why = "'" + std::string(type) + "' is not a numeric OID";
            return std::nullopt;
        }
        return std::string(type);
    }
    const bool descr = is_alpha(type.front()) && std::all_of(type.begin(), type.end(), [](char c) {
                           return is_alpha(c) || is_digit(c) || c == '-';
                       });
    if (!descr) {
        why = "'" + std::string(type) + "' is not an attribute type";
        return std::nullopt;
    }
    const std::string lower = text::ascii_lower(type);
    for (const auto& known : rfc4514_names) {
        if (known.name == lower) {
            return std::string(known.oid);
        }
    }
    const std::string name(type);
    const std::unique_ptr<ASN1_OBJECT, asn1_object_free> object(OBJ_txt2obj(name.c_str(), 0));
    ERR_clear_error();
    std::string oid = object ? dotted(object.get()) : std::string();
    if (oid.empty()) {
        why = "unknown attribute type '" + name + "' (write it as a numeric OID)";
        return std::nullopt;
    }
    return oid;
}

int hex_value(char c) {
    if (is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void skip_spaces(std::string_view text, std::size_t& i) {
    while (i < text.size() && text[i] == ' ') {
        ++i;
    }
}

// One attribute value of RFC 4514 section 3 from text[i], up to an unescaped , or + or the
// end; i is left on that separator.
std::optional<std::string> read_value(std::string_view text, std::size_t& i, std::string& why) {
    constexpr std::string_view escapable = " \"#+,;<=>\\";
    constexpr std::string_view must_escape = "\";<>";
    if (i < text.size() && text[i] == '#') {
        why = "the #hex (BER) form of a value is not supported; write the value as text";
        return std::nullopt;
    }
    std::string value;
    std::size_t kept = 0;  // unescaped trailing spaces are not part of the value
    while (i < text.size() && text[i] != ',' && text[i] != '+') {
        const char c = text[i];
        if (c == '\\') {
            if (i + 1 >= text.size()) {
                why = "a value ends with a lone backslash";
                return std::nullopt;
            }
            const char next = text[i + 1];
            if (escapable.find(next) != std::string_view::npos) {
                value.push_back(next);
                i += 2;
            } else if (i + 2 < text.size() && hex_value(next) >= 0 && hex_value(text[i + 2]) >= 0) {
                value.push_back(static_cast<char>(hex_value(next) * 16 + hex_value(text[i + 2])));
                i += 3;
            } else {
                why = "'\\" + std::string(1, next) + "' is not an RFC 4514 escape";
                return std::nullopt;
            }
            kept = value.size();
            continue;
        }
        if (must_escape.find(c) != std::string_view::npos) {
            why = "'" + std::string(1, c) + "' in a value must be escaped as '\\" +
                  std::string(1, c) + "'";
            return std::nullopt;
        }
        value.push_back(c);
        if (c != ' ') {
            kept = value.size();
        }
        ++i;
    }
    value.resize(kept);
    if (value.empty()) {
        why = "an attribute value is empty";
        return std::nullopt;
    }
    if (!text::is_valid_utf8(value) || value.find('\0') != std::string::npos) {
        why = "a value is not UTF-8 text";
        return std::nullopt;
    }
    return value;
}

bool plain_ascii_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 127; });
}

struct general_names_free {
    void operator()(GENERAL_NAMES* n) const noexcept { GENERAL_NAMES_free(n); }
};

// An IA5String of a subjectAltName entry, or nullopt when it holds a NUL (a name that could
// read as another one up to the NUL).
std::optional<std::string> ia5_text(const ASN1_IA5STRING* s) {
    const auto* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(s));
    const auto length = static_cast<std::size_t>(ASN1_STRING_length(s));
    if (data == nullptr || std::memchr(data, 0, length) != nullptr) {
        return std::nullopt;
    }
    return std::string(data, length);
}

}  // namespace

std::optional<distinguished_name> parse_distinguished_name(std::string_view text,
                                                           std::string& why) {
    distinguished_name dn;
    std::vector<dn_attribute> rdn;
    std::size_t i = 0;
    while (true) {
        skip_spaces(text, i);
        const auto equals = text.find('=', i);
        if (equals == std::string_view::npos) {
            why = "expected type=value at column " + std::to_string(i + 1);
            return std::nullopt;
        }
        std::string_view type = text.substr(i, equals - i);
        while (!type.empty() && type.back() == ' ') {
            type.remove_suffix(1);
        }
        auto oid = type_oid(type, why);
        if (!oid) {
            return std::nullopt;
        }
        i = equals + 1;
        skip_spaces(text, i);
        auto value = read_value(text, i, why);
        if (!value) {
            return std::nullopt;
        }
        rdn.push_back(dn_attribute{std::move(*oid), std::move(*value)});
        if (i < text.size() && text[i] == '+') {
            ++i;
            continue;  // the next attribute of this RDN
        }
        std::sort(rdn.begin(), rdn.end());
        dn.push_back(std::move(rdn));
        rdn = {};
        if (i >= text.size()) {
            return dn;
        }
        ++i;  // ','
    }
}

std::optional<certificate_name> parse_certificate_subject(std::string_view text, std::string& why) {
    certificate_name out;
    out.text = std::string(text);
    const auto colon = text.find(':');
    if (colon != std::string_view::npos && colon < text.find('=')) {
        const std::string prefix = text::ascii_lower(text.substr(0, colon));
        out.name = std::string(text.substr(colon + 1));
        if (prefix == "dns") {
            out.type = certificate_name::kind::dns_name;
        } else if (prefix == "uri") {
            out.type = certificate_name::kind::uri;
        } else {
            why = "'" + std::string(text.substr(0, colon)) +
                  ":' names no supported subjectAltName (DNS: or URI:), and a subject DN is "
                  "type=value,...";
            return std::nullopt;
        }
        if (!plain_ascii_name(out.name)) {
            why = "a " + std::string(text.substr(0, colon)) +
                  ": name is printable ASCII without spaces, and not empty";
            return std::nullopt;
        }
        return out;
    }
    auto dn = parse_distinguished_name(text, why);
    if (!dn) {
        return std::nullopt;
    }
    out.dn = std::move(*dn);
    return out;
}

bool matches(const certificate_name& wanted, const certified_identity& peer) {
    switch (wanted.type) {
        case certificate_name::kind::subject_dn:
            return !wanted.dn.empty() && peer.subject == wanted.dn;
        case certificate_name::kind::dns_name: {
            const std::string name = text::ascii_lower(wanted.name);
            return std::any_of(peer.dns_names.begin(), peer.dns_names.end(),
                               [&](const std::string& n) { return text::ascii_lower(n) == name; });
        }
        case certificate_name::kind::uri:
            return std::find(peer.uris.begin(), peer.uris.end(), wanted.name) != peer.uris.end();
    }
    return false;
}

certified_identity identity_of(const x509_st* cert) {
    certified_identity out;
    if (cert == nullptr) {
        return out;
    }
    const X509_NAME* name = X509_get_subject_name(cert);
    distinguished_name asn1_order;
    int last_set = -1;
    bool readable = true;
    for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
        const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
        dn_attribute attribute;
        attribute.oid = dotted(X509_NAME_ENTRY_get_object(entry));
        unsigned char* utf8 = nullptr;
        const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
        if (length < 0 || attribute.oid.empty()) {
            readable = false;
            break;
        }
        attribute.value.assign(reinterpret_cast<const char*>(utf8),
                               static_cast<std::size_t>(length));
        OPENSSL_free(utf8);
        // Entries of one multi-valued RDN share their set number.
        const int set = X509_NAME_ENTRY_set(entry);
        if (set != last_set || asn1_order.empty()) {
            asn1_order.emplace_back();
            last_set = set;
        }
        asn1_order.back().push_back(std::move(attribute));
    }
    ERR_clear_error();
    if (readable) {
        for (auto it = asn1_order.rbegin(); it != asn1_order.rend(); ++it) {
            std::sort(it->begin(), it->end());
            out.subject.push_back(std::move(*it));
        }
    }
    const std::unique_ptr<GENERAL_NAMES, general_names_free> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    ERR_clear_error();
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
        int type = 0;
        const void* value = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names.get(), i), &type);
        if (type != GEN_DNS && type != GEN_URI) {
            continue;
        }
        if (auto text = ia5_text(static_cast<const ASN1_IA5STRING*>(value))) {
            (type == GEN_DNS ? out.dns_names : out.uris).push_back(std::move(*text));
        }
    }
    return out;
}

}  // namespace pwresetd::daemon
