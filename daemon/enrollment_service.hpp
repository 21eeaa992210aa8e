#pragma once
// TOTP enrollment (API.md "Enrollment"): the user proves the current password with a bind,
// gets a fresh key, and confirms it with one code; only a confirmed key is ever used for a
// reset, and an existing key stays in use until its replacement is confirmed. Blocking;
// runs on a worker thread.
//
// The password check is no oracle: wrong passwords count in the account's password
// counter (shared with change; decoy names the same way), the slot is reserved before the
// bind, limits.verify_failures of them answer 423, and unknown, disabled and protected
// accounts answer 401 in the time a real wrong password takes. Replacing an authenticator
// also needs `current_code`, a code from it or a recovery code (counted like a reset's
// verification); without it, 403 factor_proof_required, told only after the password.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

struct totp_enrollment_started {
    std::string enrollment_id;
    std::string secret_base32;  // shown once to the user, never logged
    std::string otpauth_uri;
};

struct totp_enrollment_confirmed {
    std::vector<secret> recovery_codes;  // factors::recovery_code_count, shown once
};

class enrollment_service {
public:
    // An unconfirmed enrollment expires after this many seconds.
    static constexpr int pending_ttl_s = 600;

    enrollment_service(const config& cfg, ldap::directory& directory, store::state_store& store,
                       audit_log& audit, const factor_keys& keys, clock_fn clock = unix_now);

    outcome<totp_enrollment_started> start_totp(const request_context& ctx,
                                                std::string_view username,
                                                const secret& current_password,
                                                std::optional<std::string_view> current_code = {});
    // A confirmed enrollment replaces the user's recovery codes with fresh ones.
    outcome<totp_enrollment_confirmed> confirm_totp(const request_context& ctx,
                                                    std::string_view enrollment_id,
                                                    std::string_view code);

    // A reload's new service starts from what this one has measured (decoy_timing).
    void inherit_timing(const enrollment_service& older) {
        bind_timing_.inherit(older.bind_timing_);
    }

private:
    const factor_settings& factors_;
    const limit_settings& limits_;
    ldap::directory& directory_;
    store::state_store& store_;
    audit_log& audit_;
    const factor_keys& keys_;
    clock_fn clock_;
    decoy_timing bind_timing_;  // a wrong password's bind, which decoys skip
};

}  // namespace pwresetd::daemon
