#pragma once
// What one configuration builds and a reload (SIGHUP) replaces: the TLS context, the password
// policy with its lists, the directory pools, the code courier, the services, the route
// handler and the client keys. What outlives reloads (the state store, the audit log, the
// secret key, the worker pool, the listeners) is passed in. A generation is built whole or
// not at all: a failure throws and leaves the serving one untouched.
#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/admin_service.hpp"
#include "daemon/api.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/change_service.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/enrollment_service.hpp"
#include "daemon/http_session.hpp"
#include "daemon/reset_service.hpp"
#include "factors/delivery.hpp"
#include "ldap/directory.hpp"
#include "policy/password_policy.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

// Built once at start; every generation uses them.
struct process_parts {
    store::state_store& state;
    audit_log& audit;
    const factor_keys& keys;
    admin_service::counters_fn counters;  // the admin socket's status: live counters
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::int64_t started_unix = unix_now();
};

class generation {
public:
    // Throws (std::exception) naming what failed: certificate, key, policy list, ...
    // `older`, when given, hands over what it has learned of response times.
    generation(config cfg, const process_parts& parts, const generation* older = nullptr);
    generation(const generation&) = delete;
    generation& operator=(const generation&) = delete;
    ~generation();

    [[nodiscard]] const config& cfg() const { return cfg_; }
    [[nodiscard]] const serving_set& serving() const { return serving_; }
    [[nodiscard]] api& routes() { return api_; }
    [[nodiscard]] admin_service& admin() { return admin_; }
    [[nodiscard]] int directory_connections() const { return directory_connections_; }
    // The https metrics listener's TLS context (metrics_server.hpp); null without one.
    [[nodiscard]] boost::asio::ssl::context* metrics_tls() {
        return metrics_tls_ ? &*metrics_tls_ : nullptr;
    }

private:
    config cfg_;
    int directory_connections_ = 0;  // the sum of pool_size over the directory blocks
    boost::asio::ssl::context tls_;
    std::optional<boost::asio::ssl::context> metrics_tls_;
    policy::password_policy policy_;
    std::unique_ptr<factors::courier> courier_;
    std::unique_ptr<code_outbox> outbox_;
    std::unique_ptr<ldap::directory> directory_;
    reset_service resets_;
    enrollment_service enrollments_;
    change_service changes_;
    api api_;
    admin_service admin_;
    client_auth auth_;
    serving_set serving_;
};

// The settings a reload cannot change (listeners, the metrics listener, state store, secret key,
// audit file, the number of workers), as "key: what stays" lines; empty when `next` differs from
// what `serving` was built from only in what a reload applies.
std::vector<std::string> needs_restart(const generation& serving, const config& next);

}  // namespace pwresetd::daemon
