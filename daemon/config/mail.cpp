// mail: the SMTP relay for email codes.
#include "daemon/config/secrets.hpp"
#include "daemon/config/sections.hpp"
#include "factors/delivery.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto mail_keys = std::to_array<key_spec>(
    {"smtp_url", "from", "ca_file", "require_tls", "username", "password_file",
     "password_credential", inline_secret("password"), "timeout_ms", "retries"});

}  // namespace

void read_mail(const config_reader& in, config& cfg) {
    const auto m = in.section("mail", mail_keys);
    if (!m) {
        return;
    }
    report& r = in.r;
    factors::mail_settings mail;
    if (const auto url = m->require(r, "smtp_url")) {
        if (auto v = as_string(r, *url)) {
            const bool smtp = v->starts_with("smtp://");
            const bool smtps = v->starts_with("smtps://");
            const std::size_t host_at = smtp ? 7 : 8;
            if (!smtp && !smtps) {
                r.error(url->value_mark(), url->path,
                        "expected an smtp:// or smtps:// URL, got '" + *v + "'");
            } else if (v->size() <= host_at || v->find('@') != std::string::npos) {
                r.error(url->value_mark(), url->path,
                        "expected smtp[s]://host[:port] (credentials go in "
                        "username and password_file)");
            } else {
                mail.smtp_url = std::move(*v);
            }
        }
    }
    if (const auto from = m->require(r, "from")) {
        if (auto v = as_string(r, *from)) {
            if (const auto problem = factors::email_address_problem(*v); !problem.empty()) {
                r.error(from->value_mark(), from->path, problem);
            } else {
                mail.from = std::move(*v);
            }
        }
    }
    if (const auto f = m->get("ca_file")) {
        mail.ca_file = in.read_certificates_file(*f).value_or(std::filesystem::path()).string();
    }
    read_bool(r, *m, "require_tls", mail.require_tls);
    if (const auto k = m->get("require_tls"); k && !mail.require_tls) {
        r.warning(k->key_mark, k->path,
                  "codes go to the mail server in clear when it offers no STARTTLS");
    }
    read_string(r, *m, "username", mail.username);
    if (auto password = read_secret_pair(in, *m, "password", false)) {
        mail.password = std::move(*password);
    }
    if (!mail.username.empty() && mail.password.empty() && !m->get("password_file") &&
        !m->get("password_credential")) {
        r.error(m->mark(), m->path(), "username needs password_file or password_credential");
    }
    read_int(r, *m, "timeout_ms", 100, 120000, mail.timeout_ms);
    read_int(r, *m, "retries", 0, 5, mail.retries);
    cfg.mail = std::move(mail);
}

}  // namespace pwresetd::daemon::config_detail
