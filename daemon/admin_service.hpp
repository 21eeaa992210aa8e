#pragma once
// What the admin socket's commands do (daemon/admin_protocol.hpp): status, and the
// helpdesk's enroll, unenroll and unlock of one user. Blocking (directory and state store);
// runs on the admin server's worker thread. Every enroll, unenroll and unlock is audited
// with the peer's uid, user name and pid; the TOTP key and recovery codes appear only in
// the enroll reply, never in a log or the audit trail.
#include <sys/types.h>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/clock.hpp"
#include "daemon/admin_protocol.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/service_common.hpp"
#include "ldap/directory.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

// Who is on the other end of an admin connection (SO_PEERCRED).
struct admin_peer {
    uid_t uid = 0;
    gid_t gid = 0;
    pid_t pid = 0;
    std::string user;  // the uid's user name; empty when it has none
};

class admin_service {
public:
    // The daemon's live counters for status (connections, requests in flight, ...): read
    // from the caller's atomics, never blocking.
    using counters_fn = std::function<boost::json::object()>;

    admin_service(const config& cfg, ldap::directory& directory, store::state_store& store,
                  audit_log& audit, const factor_keys& keys, counters_fn counters,
                  clock_fn clock = unix_now);

    // The reply for one parsed request.
    boost::json::object handle(const admin::request& request, const admin_peer& peer);

    // When the daemon started (status: uptime), not when this service was built: a reload
    // builds a new one.
    void started_at(std::chrono::steady_clock::time_point steady, std::int64_t unix_time) {
        started_ = steady;
        started_unix_ = unix_time;
    }

private:
    boost::json::object status();
    boost::json::object enroll(const admin::request& request, const admin_peer& peer);
    boost::json::object unenroll(const admin::request& request, const admin_peer& peer);
    boost::json::object unlock(const admin::request& request, const admin_peer& peer);

    const config& cfg_;
    ldap::directory& directory_;
    store::state_store& store_;
    audit_log& audit_;
    const factor_keys& keys_;
    counters_fn counters_;
    clock_fn clock_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::int64_t started_unix_;
};

// The uid's user name from the passwd database (may block on NSS: worker threads only).
std::string user_name_of(uid_t uid);

}  // namespace pwresetd::daemon
