// clients: the portals, their API keys and scopes.
#include <algorithm>
#include <map>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto client_keys =
    std::to_array<key_spec>({"name", "api_key_sha256", "certificate_subject", "scopes"});

constexpr auto scope_names = std::to_array<choice<std::string_view>>({
    {"reset", "reset"},
    {"change", "change"},
    {"enroll", "enroll"},
    {"check", "check"},
});

std::optional<std::array<unsigned char, 32>> read_api_key(report& r, const field& f) {
    const auto text = as_string(r, f);
    if (!text) {
        return std::nullopt;
    }
    std::array<unsigned char, 32> digest{};
    const auto bytes = text->size() == 2 * digest.size() ? crypto::hex_decode(*text) : std::nullopt;
    if (!bytes) {
        r.error(f.value_mark(), f.path,
                "expected 64 hexadecimal characters (the SHA-256 of the API key)");
        return std::nullopt;
    }
    std::copy(bytes->begin(), bytes->end(), digest.begin());
    return digest;
}

std::vector<std::string> read_scopes(report& r, const field& f) {
    std::vector<std::string> scopes;
    const auto items = as_nonempty_list(r, f, "scope");
    if (!items) {
        return scopes;
    }
    for (const auto& item : *items) {
        const auto scope = as_choice(r, item, scope_names);
        if (!scope) {
            continue;
        }
        if (std::find(scopes.begin(), scopes.end(), *scope) != scopes.end()) {
            r.error(item.value_mark(), item.path, "duplicate scope '" + std::string(*scope) + "'");
            continue;
        }
        scopes.emplace_back(*scope);
    }
    return scopes;
}

// Two texts that name the same certificates ("CN=a,O=b" and "cn = a, o = b") give one key.
std::string subject_key(const certificate_name& name) {
    switch (name.type) {
        case certificate_name::kind::dns_name:
            return "dns:" + text::ascii_lower(name.name);
        case certificate_name::kind::uri:
            return "uri:" + name.name;
        case certificate_name::kind::subject_dn:
            break;
    }
    std::string key = "dn:";
    for (const auto& rdn : name.dn) {
        for (const auto& a : rdn) {
            // Lengths first: a value holding the separators cannot collide with another DN.
            key += std::to_string(a.oid.size()) + ":" + a.oid + std::to_string(a.value.size()) +
                   ":" + a.value + "+";
        }
        key += ",";
    }
    return key;
}

}  // namespace

void read_clients(const config_reader& in, config& cfg) {
    const auto items = require_nonempty_list(in.r, in.top, "clients", "client");
    if (!items) {
        return;
    }
    std::map<std::string, std::string, std::less<>> names;  // name -> path of its client
    std::map<std::array<unsigned char, 32>, std::string> keys;
    std::map<std::string, std::string> subjects;  // one certificate names one client
    for (const auto& item : *items) {
        const auto m = as_map(in.r, item, client_keys);
        if (!m) {
            continue;
        }
        client_settings client;
        if (const auto name = m->require(in.r, "name")) {
            if (auto v = as_string(in.r, *name)) {
                const auto [first, inserted] = names.try_emplace(*v, item.path);
                if (!inserted) {
                    in.r.error(name->value_mark(), name->path,
                               "duplicate client name '" + *v + "' (also " + first->second + ")");
                }
                client.name = std::move(*v);
            }
        }
        const auto key = m->get("api_key_sha256");
        const auto subject = m->get("certificate_subject");
        if (!key && !subject) {
            in.r.error(m->mark(), m->path(),
                       "missing required key 'api_key_sha256' or 'certificate_subject'");
        }
        if (key) {
            client.api_key_sha256 = read_api_key(in.r, *key);
            if (client.api_key_sha256) {
                const auto [first, inserted] = keys.try_emplace(*client.api_key_sha256, item.path);
                if (!inserted) {
                    in.r.error(key->value_mark(), key->path, "same API key as " + first->second);
                }
            }
        }
        if (subject) {
            if (const auto text = as_string(in.r, *subject)) {
                std::string why;
                client.certificate_subject = parse_certificate_subject(*text, why);
                if (!client.certificate_subject) {
                    in.r.error(subject->value_mark(), subject->path, why);
                } else if (const auto [first, inserted] = subjects.try_emplace(
                               subject_key(*client.certificate_subject), item.path);
                           !inserted) {
                    in.r.error(subject->value_mark(), subject->path,
                               "same certificate subject as " + first->second);
                }
            }
            if (!cfg.tls.client_ca) {
                in.r.error(subject->key_mark, subject->path,
                           "needs tls.client_ca (client certificates are verified only "
                           "when it is set)");
            }
        }
        if (const auto scopes = m->require(in.r, "scopes")) {
            client.scopes = read_scopes(in.r, *scopes);
        }
        cfg.clients.push_back(std::move(client));
    }
}

}  // namespace pwresetd::daemon::config_detail
