#pragma once
// What the reset, change and enrollment services share: the keys derived from
// secrets.key_file, opaque ids, the keys counters are kept under, the failure answers for
// wrong passwords, pwresetd's own password policy check and the code checks.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"
#include "daemon/outcome.hpp"
#include "factors/totp.hpp"
#include "ldap/directory.hpp"
#include "policy/password_policy.hpp"
#include "store/state_store.hpp"

namespace pwresetd::daemon {

// Keys derived from secrets.key_file, so every node computes the same hashes and hints.
struct factor_keys {
    secret codes;     // email/SMS code hashes
    secret recovery;  // recovery code hashes
    secret hints;     // decoy destination hints
};
factor_keys derive_factor_keys(const secret& master);

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
// Exactly what new_opaque_id() makes: 43 base64url characters, the last one of the 16 that
// 256 bits can end in (its 2 low bits are padding). The router takes no other reset_id.
bool issued_opaque_id(std::string_view id);
// What enrollment ids look like: an issued opaque id, or "r" and one (enrollment_service.cpp:
// an enrollment that replaces an authenticator).
bool issued_enrollment_id(std::string_view id);
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
// factors::recovery_code_count fresh recovery codes for the user, replacing every earlier
// one; only their keyed hashes are stored. The codes are shown once, by the caller.
std::vector<secret> issue_recovery_codes(store::state_store& store, const factor_keys& keys,
                                         std::string_view user_key);
// The key a made-up name is counted and hinted under: the directory's lookup key, so every
// spelling that would find one entry is one name.
std::string decoy_key_for(const ldap::directory& directory, std::string_view username);

}  // namespace pwresetd::daemon
