#pragma once
// Self-service change (API.md "Change"): the user knows the current password and picks a
// new one. Unknown, disabled and protected users get the same 401 as a wrong password, in
// the same time (decoy_timing), and so does an account the directory has locked: "locked"
// is only said by the daemon's own limit. Wrong passwords count per user (shared with
// enrollment) toward limits.verify_failures (then 423 for limits.lockout_s); the failure
// slot is reserved before the directory is asked, so concurrent guesses cannot overrun it. The
// directory counts them too (a wrong old password is a bad password for AD and ppolicy), so
// verify_failures must be below the directory's lockout threshold for the daemon to stop before the
// account locks. Blocking; runs on a worker thread.
#include <string_view>

#include "common/clock.hpp"
#include "common/secret.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/decoy_timing.hpp"
#include "daemon/outcome.hpp"
#include "daemon/service_common.hpp"
#include "daemon/username.hpp"
#include "ldap/directory.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

class change_service {
public:
    change_service(const config& cfg, const policy::password_policy& policy,
                   ldap::directory& directory, store::state_store& store, audit_log& audit,
                   clock_fn clock = unix_now);

    outcome<bool> change(const request_context& ctx, std::string_view username,
                         const secret& current_password, const secret& new_password);

    // A reload's new service starts from what this one has measured (decoy_timing).
    void inherit_timing(const change_service& older) { bind_timing_.inherit(older.bind_timing_); }

private:
    const limit_settings& limits_;
    const policy::password_policy& policy_;
    ldap::directory& directory_;
    store::state_store& store_;
    audit_log& audit_;
    clock_fn clock_;
    decoy_timing bind_timing_;  // a wrong password's bind, which decoys skip
};

}  // namespace pwresetd::daemon
