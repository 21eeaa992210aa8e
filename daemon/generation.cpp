#include "daemon/generation.hpp"

#include <utility>

#include "daemon/http_server.hpp"
#include "daemon/metrics_server.hpp"

namespace pwresetd::daemon {
namespace {

// The courier owns its settings (secrets included); the configuration keeps its own.
std::optional<factors::mail_settings> copy_of(const std::optional<factors::mail_settings>& m) {
    if (!m) {
        return std::nullopt;
    }
    factors::mail_settings out;
    out.smtp_url = m->smtp_url;
    out.from = m->from;
    out.ca_file = m->ca_file;
    out.require_tls = m->require_tls;
    out.username = m->username;
    out.password = secret(m->password.bytes());
    out.timeout_ms = m->timeout_ms;
    out.retries = m->retries;
    return out;
}

std::optional<factors::sms_settings> copy_of(const factors::sms_settings& s) {
    factors::sms_settings out;
    out.webhook_url = s.webhook_url;
    out.ca_file = s.ca_file;
    out.bearer_token = secret(s.bearer_token.bytes());
    out.timeout_ms = s.timeout_ms;
    out.retries = s.retries;
    return out;
}

class courier_outbox final : public code_outbox {
public:
    explicit courier_outbox(factors::courier& courier) : courier_(courier) {}
    bool send_email(factors::email_message message) override {
        return courier_.send_email(std::move(message));
    }
    bool send_sms(factors::sms_message message) override {
        return courier_.send_sms(std::move(message));
    }

private:
    factors::courier& courier_;
};

int pool_total(const config& cfg) {
    int total = 0;
    for (const auto& d : cfg.directories) {
        total += d.pool_size;
    }
    return total;
}

}  // namespace

generation::generation(config cfg, const process_parts& parts, const generation* older)
    : cfg_(std::move(cfg)),
      directory_connections_(pool_total(cfg_)),
      tls_(make_server_tls(cfg_.tls)),
      metrics_tls_(cfg_.metrics && cfg_.metrics->tls && cfg_.metrics->client_ca
                       ? std::optional<boost::asio::ssl::context>(
                             make_metrics_tls(cfg_.tls, *cfg_.metrics->client_ca))
                       : std::nullopt),
      policy_(cfg_.policy),
      // Codes leave through the courier's own threads: a reply never waits for delivery.
      courier_(std::make_unique<factors::courier>(
          cfg_.factors.email.enabled ? copy_of(cfg_.mail) : std::nullopt,
          cfg_.factors.sms.enabled ? copy_of(cfg_.factors.sms.webhook) : std::nullopt)),
      outbox_(std::make_unique<courier_outbox>(*courier_)),
      directory_(ldap::make_directories(std::move(cfg_.directories))),
      resets_(cfg_, policy_, *directory_, parts.state, parts.audit, *outbox_, parts.keys),
      enrollments_(cfg_, *directory_, parts.state, parts.audit, parts.keys),
      changes_(cfg_, policy_, *directory_, parts.state, parts.audit),
      api_(cfg_, policy_, resets_, enrollments_, changes_, *directory_, parts.state),
      admin_(cfg_, *directory_, parts.state, parts.audit, parts.keys, parts.counters),
      auth_(cfg_.clients),
      serving_{cfg_, tls_, api_, auth_} {
    admin_.started_at(parts.started, parts.started_unix);
    if (older != nullptr) {
        api_.inherit_timing(older->api_);
        enrollments_.inherit_timing(older->enrollments_);
        changes_.inherit_timing(older->changes_);
    }
}

generation::~generation() = default;

std::vector<std::string> needs_restart(const generation& serving, const config& next) {
    const config& running = serving.cfg();
    std::vector<std::string> out;
    const auto endpoints = [](const config& c) {
        std::vector<std::string> texts;
        texts.reserve(c.listen.size());
        for (const auto& ep : c.listen) {
            texts.push_back(ep.text);
        }
        return texts;
    };
    if (endpoints(running) != endpoints(next)) {
        out.emplace_back("listen: the sockets stay as they were bound at start");
    }
    const auto metrics_text = [](const config& c) {
        return c.metrics ? c.metrics->text : std::string("(none)");
    };
    if (metrics_text(running) != metrics_text(next)) {
        out.emplace_back("metrics_listen: the metrics listener stays as it was bound at start");
    }
    if (running.state.backend != next.state.backend || running.state.path != next.state.path ||
        running.state.redis_url != next.state.redis_url ||
        !running.state.redis_password.equals(next.state.redis_password)) {
        out.emplace_back("state: the state store stays the one opened at start");
    }
    if (running.secrets_key_file != next.secrets_key_file) {
        out.emplace_back("secrets.key_file: the key read at start stays in use");
    }
    if (running.admin.socket != next.admin.socket || running.admin.group != next.admin.group) {
        out.emplace_back("admin_socket: the admin socket stays as it was created at start");
    }
    if (running.audit_file != next.audit_file) {
        out.emplace_back("audit.file: the audit trail stays in the file opened at start");
    }
    if (serving.directory_connections() != pool_total(next)) {
        out.emplace_back(
            "directory.pool_size: the number of worker threads stays as it was at start "
            "(the directory pools take the new size)");
    }
    return out;
}

}  // namespace pwresetd::daemon
