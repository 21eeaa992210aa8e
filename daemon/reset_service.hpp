#pragma once
// The reset flow, in one place and in API order: start → challenge → verify → complete
// (API.md "Reset flow"). Every call blocks (directory, store) and runs on a worker thread.
//
// What callers can rely on:
// - start() answers the same way for real, unknown, ambiguous, disabled, protected and
//   unenrolled users: those get a decoy flow that can never be verified. Only a directory
//   that does not answer changes the reply (503), which says nothing about the user.
// - Failures count per user across flows; reaching limits.verify_failures locks the user's
//   verification (even with a correct code) for limits.lockout_s. The directory account is
//   never locked by the daemon.
// - A TOTP code is accepted at most once per user (last accepted time step).
// - An email/SMS code is random, kept only as a keyed hash bound to its flow and method,
//   valid code_ttl_s, accepted once, and replaced by the next challenge. The destination is
//   read from the directory when the code is sent, never taken from the request; sending is
//   queued, so the reply never waits for a mail server or SMS gateway.
// - Codes per destination are limited per hour (429); decoys count the same way.
// - Method rules are fixed when the flow starts: factors.required distinct methods (2 for
//   members of two_methods_groups), and with totp_when_enrolled a user who has an
//   authenticator must verify "totp" or "recovery_code" (one of the codes confirmed with
//   the enrollment, each accepted once). The start reply shows factors.required for every
//   user, so group membership cannot be probed; remaining_methods tells the truth once a
//   method is verified.
// - Failure slots are reserved atomically before a code is evaluated: of any number of
//   concurrent attempts, at most limits.verify_failures are looked at.
// - complete() claims the flow first (of concurrent completes one writes, the others get
//   reset_expired), re-checks the account, writes the password exactly as given, and
//   closes every open flow of the user on success; a refused password gives the flow back.
// - Decoy flows do the same store and TOTP work as real ones, so they take the same time.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/secret.hpp"
#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/outcome.hpp"
#include "daemon/username.hpp"
#include "factors/decoy_hints.hpp"
#include "factors/delivery.hpp"
#include "ldap/directory.hpp"
#include "policy/password_policy.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

struct method_offer {
    std::string method;  // totp | email | sms
    std::string hint;    // email/sms: the masked destination (or a decoy hint)
};

struct reset_started {
    std::string reset_id;
    int expires_in = 0;
    std::vector<method_offer> methods;
    int required_methods = 1;
};

struct reset_challenged {
    std::string method;
    int expires_in = 0;
};

struct reset_verified {
    std::vector<std::string> verified_methods;
    int remaining_methods = 0;
};

struct reset_completed {
    bool unlocked = false;
};

// Where codes go: the courier in the daemon, a recorder in unit tests. Both calls only
// queue and return at once; false when the message could not be queued.
class code_outbox {
public:
    virtual ~code_outbox() = default;
    virtual bool send_email(factors::email_message message) = 0;
    virtual bool send_sms(factors::sms_message message) = 0;
};

// Keys derived from secrets.key_file, so every node computes the same hashes and hints.
struct factor_keys {
    secret codes;     // email/SMS code hashes
    secret recovery;  // recovery code hashes
    secret hints;     // decoy destination hints
};
factor_keys derive_factor_keys(const secret& master);

class reset_service {
public:
    reset_service(const config& cfg, const policy::password_policy& policy,
                  ldap::directory& directory, store::state_store& store, audit_log& audit,
                  code_outbox& outbox, const factor_keys& keys, clock_fn clock = unix_now);

    outcome<reset_started> start(const request_context& ctx, std::string_view username);
    // A claim on a flow being completed lapses after this long (a daemon that died during
    // the write); the flow can then be completed again.
    static constexpr std::int64_t claim_s = 60;
    // `lang` picks the language of the message that carries the code.
    outcome<reset_challenged> challenge(const request_context& ctx, std::string_view reset_id,
                                        std::string_view method, std::string_view lang);
    outcome<reset_verified> verify(const request_context& ctx, std::string_view reset_id,
                                   std::string_view method, std::string_view code);
    outcome<reset_completed> complete(const request_context& ctx, std::string_view reset_id,
                                      const secret& new_password);

    // Methods still to verify before complete() (0: done).
    static int remaining_methods(const store::reset_flow& flow);

private:
    bool code_method_enabled(std::string_view method) const;
    const code_factor_settings& code_settings(std::string_view method) const;  // email | sms
    std::optional<store::reset_flow> open_flow(std::string_view reset_id, std::int64_t now);
    std::optional<failure> locked_failure(const store::reset_flow& flow, std::int64_t now);
    bool check_code(const store::reset_flow& flow, std::string_view method, std::string_view code,
                    std::int64_t now);
    // The user's destination for `method` ("" when none), from the directory's current entry.
    std::string destination(const ldap::directory_user& user, std::string_view method) const;
    // The masked destination, or a decoy hint (factors/decoy_hints.hpp), which learns from
    // every real one shown.
    std::string hint(const std::optional<ldap::directory_user>& user, std::string_view username,
                     std::string_view method);

    const factor_settings& factors_;
    const limit_settings& limits_;
    const policy::password_policy& policy_;
    ldap::directory& directory_;
    store::state_store& store_;
    audit_log& audit_;
    code_outbox& outbox_;
    const factor_keys& keys_;
    clock_fn clock_;
    secret decoy_key_;  // a random TOTP key for decoys, so their verification costs the same
    factors::decoy_hints decoy_hints_;
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
// Wrong current passwords are counted per account (or decoy name) in one counter that
// change and enrollment share: limits.verify_failures guesses in all, then 423.
std::string password_failure_key(std::string_view user_or_decoy_key);
// The answer for a wrong current password that took failure slot `slot` (401, or 423 for
// the failure that reaches the limit), or for a slot that was refused (423).
failure wrong_password_failure(const store::failure_reservation& slot, int limit, std::int64_t now);
// A code from the user's authenticator: accepted once (its time step is recorded).
bool accept_totp_code(store::state_store& store, const factors::totp_params& params,
                      std::string_view user_key, const secret& key, std::string_view code,
                      std::int64_t now);
// One of the user's recovery codes, as typed: consumed when it matches.
bool consume_recovery_code(store::state_store& store, const factor_keys& keys,
                           std::string_view user_key, std::string_view code);
// The key a made-up name is counted and hinted under: the directory's lookup key, so every
// spelling that would find one entry is one name.
std::string decoy_key_for(const ldap::directory& directory, std::string_view username);

}  // namespace pwresetd::daemon
