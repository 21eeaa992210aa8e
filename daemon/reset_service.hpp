#pragma once
// The reset flow, in one place and in API order: start → verify → complete (API.md "Reset
// flow"). Every call blocks (directory, store) and runs on a worker thread.
//
// What callers can rely on:
// - start() answers the same way for real, unknown, ambiguous, disabled, protected and
//   unenrolled users: those get a decoy flow that can never be verified. Only a directory
//   that does not answer changes the reply (503), which says nothing about the user.
// - Failures count per user across flows; reaching limits.verify_failures locks the user's
//   verification (even with a correct code) for limits.lockout_s. The directory account is
//   never locked by the daemon.
// - A TOTP code is accepted at most once per user (last accepted time step).
// - complete() writes the password exactly as given, re-checks the account first, and closes
//   every open flow of the user on success; a refused password leaves the flow usable.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/outcome.hpp"
#include "ldap/directory.hpp"
#include "policy/password_policy.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

using clock_fn = std::function<std::int64_t()>;
std::int64_t unix_now();

struct reset_started {
    std::string reset_id;
    int expires_in = 0;
    std::vector<std::string> methods;
    int required_methods = 1;
};

struct reset_verified {
    std::vector<std::string> verified_methods;
    int remaining_methods = 0;
};

struct reset_completed {
    bool unlocked = false;
};

// Username rules of API.md: 1..256 bytes, no control characters. Empty when acceptable,
// else the reason.
std::string username_problem(std::string_view username);

class reset_service {
public:
    reset_service(const config& cfg, const policy::password_policy& policy,
                  ldap::directory& directory, store::state_store& store, audit_log& audit,
                  clock_fn clock = unix_now);

    outcome<reset_started> start(const request_context& ctx, std::string_view username);
    outcome<reset_verified> verify(const request_context& ctx, std::string_view reset_id,
                                   std::string_view method, std::string_view code);
    outcome<reset_completed> complete(const request_context& ctx, std::string_view reset_id,
                                      const secret& new_password);

private:
    std::vector<std::string> enabled_methods() const;
    std::optional<store::reset_flow> open_flow(std::string_view reset_id, std::int64_t now);

    const factor_settings& factors_;
    const limit_settings& limits_;
    const policy::password_policy& policy_;
    ldap::directory& directory_;
    store::state_store& store_;
    audit_log& audit_;
    clock_fn clock_;
    secret decoy_key_;  // a random TOTP key for decoys, so their verification costs the same
};

// pwresetd's own policy, before the directory is asked: every violation at once, or nullopt
// when the password is acceptable. Also refuses an empty or absurdly long password.
std::optional<failure> policy_failure(const policy::password_policy& policy, const secret& password,
                                      std::string_view username, std::string_view display_name);
// The API violation for a directory's refusal.
violation directory_violation(const ldap::write_result& written);
// hex SHA-256 of an opaque id from the API (reset_id, enrollment_id); only this is stored.
std::string id_hash(std::string_view id);
// A fresh opaque id: 256 random bits, base64url (43 characters).
std::string new_opaque_id();
// A well-formed opaque id: base64url characters only, 22..128 of them.
bool plausible_opaque_id(std::string_view id);
// The key counters and enrollments use for a directory user or a decoy.
std::string user_key_for(const ldap::directory_user& user);
std::string decoy_key_for(std::string_view username);

}  // namespace pwresetd::daemon
