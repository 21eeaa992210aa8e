// directory: one block, or directories: a list of blocks routed by domain.
#include <map>

#include "common/text.hpp"
#include "daemon/config/secrets.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

namespace fs = std::filesystem;

// name and domains: only in the blocks of a `directories:` list.
constexpr auto directory_keys = std::to_array<key_spec>({"kind",
                                                         "uris",
                                                         "start_tls",
                                                         "ca_file",
                                                         "bind_dn",
                                                         "bind_password_file",
                                                         "bind_password_credential",
                                                         inline_secret("bind_password"),
                                                         "user_base",
                                                         "user_filter",
                                                         "timeout_ms",
                                                         "pool_size",
                                                         "attributes",
                                                         "password_write",
                                                         "unlock_on_reset",
                                                         "force_change_at_next_logon",
                                                         "protected_groups",
                                                         "require_policy_hints",
                                                         "protect_admin_count",
                                                         "name",
                                                         "domains"});
constexpr auto attribute_keys = std::to_array<key_spec>({"email", "phone", "display_name"});

constexpr auto directory_kinds = std::to_array<choice<ldap::directory_kind>>({
    {"openldap", ldap::directory_kind::openldap},
    {"active_directory", ldap::directory_kind::active_directory},
});
constexpr auto password_write_modes = std::to_array<choice<ldap::password_write_mode>>({
    {"exop", ldap::password_write_mode::exop},
    {"modify", ldap::password_write_mode::modify},
});

void read_uris(report& r, const field& f, ldap::directory_settings& d) {
    const auto items = as_nonempty_list(r, f, "URI");
    if (!items) {
        return;
    }
    for (const auto& item : *items) {
        auto uri = as_string(r, item);
        if (!uri) {
            continue;
        }
        const bool plain = uri->starts_with("ldap://");
        const std::size_t scheme = plain ? 7 : 8;
        if (!plain && !uri->starts_with("ldaps://")) {
            r.error(item.value_mark(), item.path,
                    "expected an ldaps:// or ldap:// URI, got '" + *uri + "'");
        } else if (uri->size() == scheme) {
            r.error(item.value_mark(), item.path, "needs a host");
        } else if (plain && !d.start_tls) {
            r.error(item.value_mark(), item.path, "plain ldap:// needs start_tls: true");
        } else {
            d.uris.push_back(std::move(*uri));
        }
    }
}

void read_directory_block(const config_reader& in, const map_view& m, ldap::directory_settings& d) {
    report& r = in.r;
    if (const auto kind = m.require(r, "kind")) {
        if (const auto v = as_choice(r, *kind, directory_kinds)) {
            d.kind = *v;
        }
    }
    read_bool(r, m, "start_tls", d.start_tls);
    if (const auto uris = m.require(r, "uris")) {
        read_uris(r, *uris, d);
    }
    if (const auto ca = m.require(r, "ca_file")) {
        d.ca_file = in.read_certificates_file(*ca).value_or(fs::path()).string();
    }
    read_required_string(r, m, "bind_dn", d.bind_dn);
    if (auto password = read_secret_pair(in, m, "bind_password", true)) {
        d.bind_password = std::move(*password);
    }
    read_required_string(r, m, "user_base", d.user_base);
    if (const auto filter = m.require(r, "user_filter")) {
        if (auto v = as_string(r, *filter)) {
            const auto first = v->find("{username}");
            if (first == std::string::npos) {
                r.error(filter->value_mark(), filter->path, "must contain {username}");
            } else if (v->find("{username}", first + 1) != std::string::npos) {
                // Two attributes (uid or mail, sAMAccountName or userPrincipalName) find one
                // account under two names, while a made-up name's two spellings stay two:
                // counting then tells them apart (README "Security properties").
                r.warning(filter->value_mark(), filter->path,
                          "matches {username} in more than one attribute: an attacker who "
                          "knows both forms of a name can tell real accounts from made-up "
                          "ones by their shared lockout; use one attribute, and `domains:` "
                          "for user@domain and DOMAIN\\user");
            }
            d.user_filter = std::move(*v);
        }
    }
    read_int(r, m, "timeout_ms", 100, 300000, d.timeout_ms);
    read_int(r, m, "pool_size", 1, 64, d.pool_size);
    if (const auto attributes = m.get("attributes")) {
        if (const auto a = as_map(r, *attributes, attribute_keys)) {
            read_string(r, *a, "email", d.attributes.email);
            read_string(r, *a, "phone", d.attributes.phone);
            read_string(r, *a, "display_name", d.attributes.display_name);
        }
    }
    read_choice(r, m, "password_write", password_write_modes, d.password_write);
    read_bool(r, m, "unlock_on_reset", d.unlock_on_reset);
    read_bool(r, m, "force_change_at_next_logon", d.force_change_at_next_logon);
    if (const auto groups = m.get("protected_groups")) {
        d.protected_groups = read_string_list(r, *groups);
    }
    read_bool(r, m, "require_policy_hints", d.require_policy_hints);
    read_bool(r, m, "protect_admin_count", d.protect_admin_count);
    if (d.kind != ldap::directory_kind::active_directory) {
        for (const char* ad_only : {"require_policy_hints", "protect_admin_count"}) {
            if (const auto k = m.get(ad_only)) {
                r.error(k->key_mark, k->path, "only for kind: active_directory");
            }
        }
    }
}

void read_directory_list(const config_reader& in, const field& f, config& cfg) {
    report& r = in.r;
    const auto items = as_nonempty_list(r, f, "directory");
    if (!items) {
        return;
    }
    std::map<std::string, std::string> names;
    std::map<std::string, std::string> domains;
    for (const auto& item : *items) {
        const auto m = as_map(r, item, directory_keys);
        if (!m) {
            continue;
        }
        auto& d = cfg.directories.emplace_back();
        if (const auto name = m->require(r, "name")) {
            if (auto v = as_string(r, *name)) {
                if (v->empty()) {
                    r.error(name->value_mark(), name->path, "must not be empty");
                }
                const auto [first, inserted] = names.try_emplace(*v, name->path);
                if (!inserted) {
                    r.error(name->value_mark(), name->path,
                            "duplicate directory name '" + *v + "' (also " + first->second + ")");
                }
                d.name = std::move(*v);
            }
        }
        if (const auto list = m->require(r, "domains")) {
            d.domains = read_string_list(r, *list);
            if (d.domains.empty() && list->value.IsSequence()) {
                r.error(list->value_mark(), list->path, "needs at least one domain");
            }
            for (const auto& domain : d.domains) {
                const auto [first, inserted] =
                    domains.try_emplace(text::ascii_lower(domain), list->path);
                if (!inserted) {
                    r.error(list->value_mark(), list->path,
                            "domain '" + domain + "' is also listed in " + first->second);
                }
            }
        }
        read_directory_block(in, *m, d);
    }
}

}  // namespace

void read_directory(const config_reader& in, config& cfg) {
    const auto single = in.top.get("directory");
    const auto several = in.top.get("directories");
    if (single && several) {
        const auto& later = single->key_mark.pos > several->key_mark.pos ? *single : *several;
        in.r.error(later.key_mark, later.path, "use either directory or directories, not both");
        return;
    }
    if (several) {
        return read_directory_list(in, *several, cfg);
    }
    const auto f = in.top.require(in.r, "directory");
    if (!f) {
        return;
    }
    const auto m = as_map(in.r, *f, directory_keys);
    if (!m) {
        return;
    }
    for (const char* only_in_list : {"name", "domains"}) {
        if (const auto k = m->get(only_in_list)) {
            in.r.error(k->key_mark, k->path, "only in blocks of a `directories:` list");
        }
    }
    cfg.directories.emplace_back();
    read_directory_block(in, *m, cfg.directories.back());
}

}  // namespace pwresetd::daemon::config_detail
