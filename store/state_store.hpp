#pragma once
// The daemon's state, behind one interface: reset flows, TOTP enrollments, the last
// accepted TOTP step per user (replay protection), failure counters with expiry, one-time
// code hashes (email/SMS), rate windows and recovery-code hashes. SQLite is the embedded
// default; Redis (several nodes) implements the same interface.
//
// What callers can rely on, with either backend:
// - Every method is safe to call from several worker threads at once, and on several store
//   instances (daemons) sharing one database or Redis server.
// - Every check-and-set is atomic across all of them: of concurrent callers exactly one
//   claims a flow (claim_flow), closes it (close_flow), confirms an enrollment, accepts a
//   TOTP step, consumes a code or a recovery code; reserve_failure and hit_window never
//   let more than `limit` through; record_failure loses no increment.
// - Times are Unix seconds passed in by the caller (tests control the clock); expiry is
//   checked against that `now`, never against the store's clock.
// - Expected misses are values (nullopt, false, reserved/allowed = false). A record the
//   store cannot trust (a sealed key that does not open, a Redis flow whose MAC does not
//   verify) reads as absent.
// - store_error means the store itself failed at run time (answer 503); the operation may
//   or may not have taken effect. std::invalid_argument means a caller's mistake (an id
//   that is not a hex SHA-256, a claim that ends before it starts).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::store {

// The store itself failed at run time: the connection was lost or timed out, the database
// stayed busy beyond its retries, an I/O error, an answer that makes no sense. The daemon
// answers 503 state_unavailable; the operation may or may not have taken effect.
class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The user a flow or enrollment belongs to. `key` is stable for the person: the
// directory's entryUUID/objectGUID for real users, "decoy:<lowercased name>" otherwise.
struct reset_flow {
    std::string id_hash;  // hex SHA-256 of the reset_id; the id itself is never stored
    std::string user_key;
    std::string username;   // as the portal sent it (for the audit trail)
    std::string user_dn;    // empty for decoys
    std::string directory;  // which configured directory (empty: the only one)
    bool decoy = false;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
    std::vector<std::string> verified_methods;  // in the order they were verified
    // What this user must verify before complete (fixed when the flow starts):
    int required_methods = 1;    // distinct methods (factors.required, 2 for two_methods_groups)
    bool totp_required = false;  // the user has an authenticator (factors.totp_when_enrolled):
                                 // "totp" or "recovery_code" must be among the verified
    // The flow is being completed by whoever claimed it, until this time (see claim_flow);
    // 0 when nobody holds it. A claim at or before `now` has lapsed.
    std::int64_t claimed_until = 0;
};

struct window_hit {
    bool allowed = false;        // the hit was counted (the limit was not reached before it)
    int count = 0;               // hits in the current window, this one included if allowed
    std::int64_t resets_at = 0;  // when the current window ends
};

struct pending_enrollment {
    std::string user_key;
    std::string username;
    std::string user_dn;
    secret key;  // the TOTP key (plaintext in memory, sealed at rest)
    std::int64_t expires_at = 0;
};

struct failure_state {
    int count = 0;
    std::int64_t expires_at = 0;  // when the counter resets; 0 when count == 0
};

struct failure_reservation {
    bool reserved = false;        // a failure slot was counted: the caller may evaluate the attempt
    int count = 0;                // live failures at `now`, this one included when reserved
    std::int64_t expires_at = 0;  // when the counter resets; 0 when count == 0
};

class state_store {
public:
    virtual ~state_store() = default;

    // --- reset flows ---
    // Stores the flow open and unclaimed, replacing any flow with the same id_hash
    // (flow.claimed_until is ignored).
    virtual void put_flow(const reset_flow& flow) = 0;
    // The flow if it exists, is open and has not expired at `now`; a claimed flow is still
    // open (see claimed_until) until it is closed.
    virtual std::optional<reset_flow> get_open_flow(std::string_view id_hash, std::int64_t now) = 0;
    // Appends `method` to the open flow's verified methods (no duplicates).
    virtual void add_verified_method(std::string_view id_hash, std::string_view method) = 0;
    // Atomically moves an open, unexpired flow that nobody holds (or whose claim expired at
    // `now`) to "completing" until `claim_until`; false when it is closed, expired, unknown or
    // held by a live claim. Exactly one of several concurrent callers (threads or store
    // instances) wins. The flow stays open (get_open_flow, add_verified_method, close_flow
    // work as before); the claim only keeps other claimers out. Throws std::invalid_argument
    // unless claim_until > now.
    virtual bool claim_flow(std::string_view id_hash, std::int64_t now,
                            std::int64_t claim_until) = 0;
    // Gives a claimed flow back (the write was refused or failed): it is open again and
    // claimable at once. Does nothing to a closed, unknown or unclaimed flow.
    virtual void release_flow(std::string_view id_hash) = 0;
    // Atomically closes an open, unexpired flow, claimed or not; false when it was not open
    // (already completed, superseded, expired or unknown).
    virtual bool close_flow(std::string_view id_hash, std::int64_t now) = 0;
    // Closes every open flow of the user (a completed reset invalidates the others).
    virtual void close_user_flows(std::string_view user_key) = 0;

    // --- TOTP enrollments; keys are sealed with AES-256-GCM (context: user_key) ---
    virtual void put_pending_totp(std::string_view enrollment_id_hash,
                                  const pending_enrollment& pending) = 0;
    virtual std::optional<pending_enrollment> get_pending_totp(std::string_view enrollment_id_hash,
                                                               std::int64_t now) = 0;
    virtual void delete_pending_totp(std::string_view enrollment_id_hash) = 0;
    // Atomically turns the pending enrollment into the user's active TOTP key (replacing
    // any earlier one) and deletes the pending record; false if it no longer exists.
    virtual bool confirm_totp(std::string_view enrollment_id_hash, std::int64_t now) = 0;
    virtual std::optional<secret> get_totp(std::string_view user_key) = 0;
    // Removes the key and the user's recovery codes; false when there was no key.
    virtual bool remove_totp(std::string_view user_key) = 0;

    // --- replay protection ---
    virtual std::optional<std::int64_t> last_totp_step(std::string_view user_key) = 0;
    // Atomically records `step` as the last accepted step if it is greater than the stored
    // one (or none is stored); false otherwise (the code was already used).
    virtual bool accept_totp_step(std::string_view user_key, std::int64_t step) = 0;

    // --- failure counters (e.g. "verify:<user_key>") ---
    // Adds one failure; the counter expires `ttl_s` after this failure.
    virtual failure_state record_failure(std::string_view key, std::int64_t now,
                                         std::int64_t ttl_s) = 0;
    // Atomically counts one failure when fewer than `limit` are live at `now` (the counter
    // then expires ttl_s after now); otherwise counts nothing, extends nothing, and returns
    // reserved = false. The caller evaluates the attempt only when reserved, and calls
    // clear_failures() if it succeeded: of many concurrent attempts, at most `limit` are
    // evaluated per counter lifetime. Shares the counter with record_failure.
    virtual failure_reservation reserve_failure(std::string_view key, std::int64_t now,
                                                std::int64_t ttl_s, int limit) = 0;
    // The live counter at `now` (count 0 when none or expired).
    virtual failure_state get_failures(std::string_view key, std::int64_t now) = 0;
    virtual void clear_failures(std::string_view key) = 0;

    // --- one-time codes (email, SMS), bound to one flow and one method ---
    // `code_hash` is a keyed hash computed by the caller; the code itself is never stored.
    // Stores it as the flow's only live code for `method`, replacing (superseding) any
    // earlier one.
    virtual void put_code(std::string_view flow_id_hash, std::string_view method,
                          std::string_view code_hash, std::int64_t expires_at) = 0;
    // Atomically deletes the flow's live code for `method` and returns true when it equals
    // `code_hash` and has not expired at `now`; false otherwise (a wrong code leaves the
    // live one in place). Two callers can never both consume one code.
    virtual bool consume_code(std::string_view flow_id_hash, std::string_view method,
                              std::string_view code_hash, std::int64_t now) = 0;

    // --- rate windows (e.g. "dest:<hash of an address>": codes per destination per hour) ---
    // A fixed window that starts at the first hit and lasts `window_s`. Atomically counts
    // one hit when fewer than `limit` hits were counted in the live window; otherwise
    // counts nothing and returns allowed = false.
    virtual window_hit hit_window(std::string_view key, std::int64_t now, std::int64_t window_s,
                                  int limit) = 0;

    // --- recovery codes: keyed hashes, computed by the caller ---
    // Replaces every recovery code of the user with these.
    virtual void set_recovery_codes(std::string_view user_key,
                                    const std::vector<std::string>& code_hashes) = 0;
    // Atomically removes one matching code; false when the user has no such code.
    virtual bool consume_recovery_code(std::string_view user_key, std::string_view code_hash) = 0;
    virtual int recovery_codes_left(std::string_view user_key) = 0;

    // Deletes expired flows, pending enrollments, counters, codes and windows.
    virtual void purge_expired(std::int64_t now) = 0;
};

// Opens (creating if needed, mode 0600) the SQLite database at `path` in WAL mode.
// `sealing_key` is the 32-byte secrets.key_file. Throws std::runtime_error naming the file.
std::unique_ptr<state_store> open_sqlite_store(const std::filesystem::path& path,
                                               secret sealing_key);

}  // namespace pwresetd::store
