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
// - unlock() is complete() without a password: the same verification, the same claim (of
//   concurrent unlocks and completes of one flow, one acts), then the directory lockout is
//   cleared (directory::unlock_account), the password is left as it is, pwresetd's own
//   password-failure count is cleared as after a reset, and the flow is closed (the user's
//   other flows stay open). Refused with unlock_disabled where the user's directory has
//   unlock_on_reset off; when no configured directory has it on, before verification
//   (a fact of the configuration, the same for every flow, decoys included).
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
#include "daemon/service_common.hpp"
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

struct reset_unlocked {
    bool was_locked = false;  // what the directory said when the flow was re-checked
};

// Where codes go: the courier in the daemon, a recorder in unit tests. Both calls only
// queue and return at once; false when the message could not be queued.
class code_outbox {
public:
    virtual ~code_outbox() = default;
    virtual bool send_email(factors::email_message message) = 0;
    virtual bool send_sms(factors::sms_message message) = 0;
};

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
    // POST /v1/resets/{id}/unlock: clears the directory lockout, the password unchanged.
    outcome<reset_unlocked> unlock(const request_context& ctx, std::string_view reset_id);

    // Methods still to verify before complete() (0: done).
    static int remaining_methods(const store::reset_flow& flow);

private:
    bool code_method_enabled(std::string_view method) const;
    const code_factor_settings& code_settings(std::string_view method) const;  // email | sms
    std::optional<store::reset_flow> open_flow(std::string_view reset_id, std::int64_t now);
    // verification_required while the flow still needs methods (always for a decoy).
    std::optional<failure> unverified(const store::reset_flow& flow) const;
    std::optional<failure> locked_failure(const store::reset_flow& flow, std::int64_t now);
    bool check_code(const store::reset_flow& flow, std::string_view method, std::string_view code,
                    std::int64_t now);
    // The user's destination for `method` ("" when none), from the directory's current entry.
    std::string destination(const ldap::directory_user& user, std::string_view method) const;
    // The masked destination, or a decoy hint (factors/decoy_hints.hpp); a real hint of
    // another shape than the decoys' is logged for the operator.
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

}  // namespace pwresetd::daemon
