// factors: which methods prove a reset (totp, email, sms) and in which order they are offered.
#include <algorithm>
#include <limits>
#include <utility>

#include "daemon/config/secrets.hpp"
#include "daemon/config/sections.hpp"
#include "factors/codes.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto factor_keys =
    std::to_array<key_spec>({"required", "two_methods_groups", "totp_when_enrolled",
                             "codes_per_destination_per_hour", "totp", "email", "sms"});
constexpr auto totp_keys =
    std::to_array<key_spec>({"enabled", "issuer", "digits", "period", "skew_steps", "algorithm"});
constexpr auto email_keys =
    std::to_array<key_spec>({"enabled", "code_ttl_s", "code_digits", "hint_domain"});
constexpr auto sms_keys = std::to_array<key_spec>(
    {"enabled", "webhook_url", "code_ttl_s", "code_digits", "bearer_token_file",
     "bearer_token_credential", inline_secret("bearer_token"), "ca_file", "timeout_ms", "retries",
     "country_code"});

constexpr auto totp_algorithms = std::to_array<choice<factors::totp_algorithm>>({
    {"SHA1", factors::totp_algorithm::sha1},
    {"SHA256", factors::totp_algorithm::sha256},
    {"SHA512", factors::totp_algorithm::sha512},
});

void read_totp(report& r, const map_view& m, totp_settings& totp) {
    read_bool(r, m, "enabled", totp.enabled);
    read_string(r, m, "issuer", totp.issuer);
    if (const auto digits = m.get("digits")) {
        if (const auto v = as_integer(r, *digits, 6, 8)) {
            if (*v == 7) {
                r.error(digits->value_mark(), digits->path, "must be 6 or 8, got 7");
            } else {
                totp.params.digits = static_cast<int>(*v);
            }
        }
    }
    read_int(r, m, "period", 10, 120, totp.params.period);
    read_int(r, m, "skew_steps", 0, 10, totp.params.skew_steps);
    read_choice(r, m, "algorithm", totp_algorithms, totp.params.algorithm);
}

void read_code_factor(report& r, const map_view& m, code_factor_settings& f) {
    f.enabled = true;  // a block turns the method on unless it says otherwise
    read_bool(r, m, "enabled", f.enabled);
    read_int(r, m, "code_ttl_s", 5, 86400, f.code_ttl_s);
    read_int(r, m, "code_digits", factors::min_code_digits, factors::max_code_digits,
             f.code_digits);
}

void read_hint_domain(report& r, const map_view& m, std::string& domain) {
    if (const auto f = m.get("hint_domain")) {
        if (auto v = as_string(r, *f)) {
            const bool ok = !v->empty() && v->size() <= 253 && v->find('@') == std::string::npos &&
                            std::none_of(v->begin(), v->end(), [](char c) {
                                return c == ' ' || static_cast<unsigned char>(c) < 0x20;
                            });
            if (!ok) {
                r.error(f->value_mark(), f->path, "expected a mail domain, e.g. \"example.com\"");
            } else {
                domain = std::move(*v);
            }
        }
    }
}

void read_sms(const config_reader& in, const map_view& m, sms_factor_settings& sms) {
    report& r = in.r;
    read_code_factor(r, m, sms);
    if (!sms.enabled) {
        return;
    }
    if (const auto url = m.require(r, "webhook_url")) {
        if (auto v = as_string(r, *url)) {
            if (!v->starts_with("https://") || v->size() <= 8) {
                r.error(url->value_mark(), url->path,
                        "expected an https:// URL (the text holds a code)");
            } else {
                sms.webhook.webhook_url = std::move(*v);
            }
        }
    }
    if (auto token = read_secret_pair(in, m, "bearer_token", false)) {
        sms.webhook.bearer_token = std::move(*token);
    }
    if (const auto f = m.get("ca_file")) {
        sms.webhook.ca_file =
            in.read_certificates_file(*f).value_or(std::filesystem::path()).string();
    }
    read_int(r, m, "timeout_ms", 100, 60000, sms.webhook.timeout_ms);
    read_int(r, m, "retries", 0, 5, sms.webhook.retries);
    if (const auto f = m.get("country_code")) {
        if (auto v = as_string(r, *f)) {
            const bool ok =
                v->size() >= 2 && v->size() <= 4 && (*v)[0] == '+' &&
                std::all_of(v->begin() + 1, v->end(), [](char c) { return c >= '0' && c <= '9'; });
            if (!ok) {
                r.error(f->value_mark(), f->path, "expected '+' and 1 to 3 digits, e.g. \"+46\"");
            } else {
                sms.country_code = std::move(*v);
            }
        }
    }
}

}  // namespace

void read_factors(const config_reader& in, config& cfg) {
    report& r = in.r;
    const auto m = in.section("factors", factor_keys);
    auto& settings = cfg.factors;
    std::vector<std::pair<std::size_t, std::string>> positions;  // file order of methods
    if (m) {
        read_int(r, *m, "required", 1, 2, settings.required);
        read_bool(r, *m, "totp_when_enrolled", settings.totp_when_enrolled);
        read_int(r, *m, "codes_per_destination_per_hour", 1, 1000,
                 settings.codes_per_destination_per_hour);
        if (const auto groups = m->get("two_methods_groups")) {
            settings.two_methods_groups = read_string_list(r, *groups);
        }
        if (const auto totp = m->get("totp")) {
            if (const auto t = as_map(r, *totp, totp_keys)) {
                read_totp(r, *t, settings.totp);
            }
        }
        if (const auto email = m->get("email")) {
            if (const auto e = as_map(r, *email, email_keys)) {
                read_code_factor(r, *e, settings.email);
                read_hint_domain(r, *e, settings.email.hint_domain);
                if (settings.email.enabled && !cfg.mail) {
                    r.error(email->key_mark, email->path,
                            "email codes need a `mail:` block (smtp_url, from)");
                }
            }
        }
        if (const auto sms = m->get("sms")) {
            if (const auto b = as_map(r, *sms, sms_keys)) {
                read_sms(in, *b, settings.sms);
            }
        }
        for (const char* method : {"totp", "email", "sms"}) {
            if (const auto f = m->get(method)) {
                positions.emplace_back(f->key_mark.pos, method);
            }
        }
    }
    // Methods without a block come after the listed ones, in the default order.
    std::size_t next = std::numeric_limits<std::size_t>::max() - 3;
    for (const char* method : {"totp", "email", "sms"}) {
        if (std::none_of(positions.begin(), positions.end(),
                         [&](const auto& p) { return p.second == method; })) {
            positions.emplace_back(next++, method);
        }
    }
    std::sort(positions.begin(), positions.end());
    settings.order.clear();
    for (const auto& [pos, method] : positions) {
        const bool enabled = method == "totp"    ? settings.totp.enabled
                             : method == "email" ? settings.email.enabled
                                                 : settings.sms.enabled;
        if (enabled) {
            settings.order.push_back(method);
        }
    }
    const int enabled = static_cast<int>(settings.order.size());
    const YAML::Mark at = m ? m->mark() : in.top.mark();
    if (enabled == 0) {
        r.error(at, "factors", "no method is enabled (totp, email or sms)");
    } else if (settings.required > enabled) {
        const auto required = m ? m->get("required") : std::nullopt;
        r.error(required ? required->value_mark() : at, "factors.required",
                std::to_string(settings.required) + " methods required but only " +
                    std::to_string(enabled) + " enabled");
    } else if (!settings.two_methods_groups.empty() && enabled < 2) {
        const auto groups = m->get("two_methods_groups");
        r.error(groups->key_mark, groups->path,
                "members of these groups need 2 methods, but only 1 is enabled");
    }
    for (auto& d : cfg.directories) {
        d.two_methods_groups = settings.two_methods_groups;
    }
}

}  // namespace pwresetd::daemon::config_detail
