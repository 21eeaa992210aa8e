#pragma once
// The directory, as the rest of the daemon sees it: find a user, check a password with a
// bind as that user, reset a password as the service account. <ldap.h> appears only in
// ldap/*.cpp. Every call blocks (libldap) and must run on a worker thread, never on an I/O
// thread. Expected outcomes (not found, refused by policy, server down) are values;
// exceptions mean a bug or a broken configuration.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::ldap {

enum class directory_kind { openldap, active_directory };
enum class password_write_mode { exop, modify };

struct directory_attributes {
    std::string email = "mail";
    std::string phone = "mobile";
    std::string display_name = "displayName";
};

// One `directory:` block of the configuration (CONFIG.md), already validated.
struct directory_settings {
    std::string name;  // empty for the single `directory:` block
    directory_kind kind = directory_kind::openldap;
    std::vector<std::string> uris;  // ldaps:// or ldap:// (then start_tls is true)
    bool start_tls = false;
    std::string ca_file;  // absolute path
    std::string bind_dn;
    secret bind_password;
    std::string user_base;
    std::string user_filter;  // contains {username}
    int timeout_ms = 5000;
    int pool_size = 4;
    directory_attributes attributes;
    password_write_mode password_write = password_write_mode::exop;
    bool unlock_on_reset = true;
    bool force_change_at_next_logon = false;
    std::vector<std::string> protected_groups;
    // Group DNs whose members always need two methods; filled by the daemon from
    // factors.two_methods_groups. Membership counts as for protected_groups: direct on
    // OpenLDAP, direct or nested on AD. Sets directory_user::needs_two_methods.
    std::vector<std::string> two_methods_groups;
    // Active Directory only:
    // refuse resets (fail closed) when the DC lists neither policy-hints control, so
    // history is never silently skipped on a reset.
    bool require_policy_hints = false;
    // accounts with adminCount=1 (members, now or once, of AD's protected groups) are
    // never reset or changed, like Entra password writeback.
    bool protect_admin_count = true;
    // `directories:` routing: a username `user@domain` or `DOMAIN\user` goes to the block
    // that lists the domain (case-insensitive); a bare one to the first block.
    std::vector<std::string> domains;
};

struct directory_user {
    std::string dn;
    std::string id;         // entryUUID (OpenLDAP) / objectGUID hex (AD): stable across renames
    std::string directory;  // name of the configured directory it lives in ("" = the only one)
    std::string username;   // as looked up
    std::string display_name;
    std::string email;
    std::string phone;
    bool locked = false;        // OpenLDAP: pwdAccountLockedTime present
    bool disabled = false;      // OpenLDAP: pwdAccountLockedTime 000001010000Z (admin lock)
    bool is_protected = false;  // member of a protected group (AD: or adminCount=1)
    // Member of one of directory_settings::two_methods_groups: the reset needs two
    // methods whatever factors.required says.
    bool needs_two_methods = false;
};

enum class lookup_status { found, not_found, ambiguous, unavailable };
struct lookup_result {
    lookup_status status = lookup_status::unavailable;
    std::optional<directory_user> user;  // set when found
};

enum class bind_status { ok, invalid_credentials, locked, must_change, unavailable };

// One reason the directory refused a password, with an API rule code (API.md: min_length,
// complexity, history, too_young, directory_policy) and the directory's own words.
struct refusal {
    std::string rule;
    std::string detail;  // never contains the password
};

// ok: written. rejected: the directory's policy refused the new password (reason set).
// wrong_password: (change) the current password is not right. locked: (change) the account
// is locked in the directory. unavailable: no server answered, or the outcome is unknown
// and nothing may be assumed. failed: the directory refused for another reason (rights,
// configuration); the diagnostic says why.
enum class write_status { ok, rejected, wrong_password, locked, unavailable, failed };
struct write_result {
    write_status status = write_status::failed;
    std::optional<refusal> reason;  // set when rejected
    bool unlocked = false;          // the account was locked and this write unlocked it
    std::string diagnostic;         // for the log: result code and server text
};

// One directory server as `pwresetctl status` shows it: what the shared health thinks of
// it, and a probe made just now on a fresh connection (connect, TLS, a RootDSE read).
struct server_status {
    std::string uri;
    bool marked_down = false;  // in backoff after a failure (server_health)
    bool answers = false;      // the probe succeeded
    int latency_ms = -1;       // the probe's connect + TLS + RootDSE read; -1 when it failed
    int result = 0;            // the probe's libldap code
};

// One configured directory as `pwresetctl status` shows it.
struct directory_status {
    std::string name;  // "" for the single `directory:` block
    std::size_t pool_size = 0;
    std::size_t pool_open = 0;  // service connections open (idle + leased + being opened)
    std::size_t pool_idle = 0;
    std::vector<server_status> servers;
};

class directory {
public:
    virtual ~directory() = default;
    // Searches user_base with user_filter ({username} escaped per RFC 4515); exactly one
    // entry must match.
    virtual lookup_result find_user(std::string_view username) = 0;
    // Binds as the user on a fresh connection (never on a pooled service connection).
    virtual bind_status verify_password(const directory_user& user, const secret& password) = 0;
    // Administrator reset as the service account (OpenLDAP: RFC 3062 Password Modify with
    // the ppolicy request control, or replace userPassword), then unlock if configured.
    virtual write_result reset_password(const directory_user& user, const secret& new_password) = 0;
    // Self-service change with the current password (API.md "Change"). OpenLDAP: RFC 3062
    // Password Modify with oldPasswd, bound as the user. AD: one modify, delete the old
    // unicodePwd + add the new, as the service account, so a user who must change at next
    // logon can still change.
    virtual write_result change_password(const directory_user& user, const secret& current,
                                         const secret& new_password) = 0;
    // True when a server answers (health checks).
    virtual bool ping() = 0;
    // Probes every configured server on a fresh connection each (pwresetctl status). The
    // default (test doubles): nothing to show.
    virtual std::vector<directory_status> probe_servers() { return {}; }
    // Unlocks the account in the directory as the service account (pwresetctl unlock
    // --directory): OpenLDAP deletes pwdAccountLockedTime, AD writes lockoutTime 0. An
    // account that is not locked is ok too. The default (test doubles): failed.
    virtual write_result unlock_account(const directory_user& /*user*/) {
        write_result out;
        out.diagnostic = "this directory cannot unlock accounts";
        return out;
    }
    // unlock_on_reset of the directory `user` was found in: whether a verified reset flow
    // may clear its lockout without a new password (POST /v1/resets/{id}/unlock). The
    // default (test doubles): off.
    virtual bool unlock_on_reset(const directory_user& /*user*/) const { return false; }
    // Whether any configured directory has unlock_on_reset.
    virtual bool any_unlock_on_reset() const { return false; }
    // The name find_user would search for `username`, and where: two usernames with the same
    // key find the same entry, or both nothing. Made-up names are counted and given decoy
    // hints under it, so that "bob" and "CORP\\bob" are one name whether bob exists or not.
    // A directory searches the name as given; a router names the block it picks.
    virtual std::string lookup_key(std::string_view username) const {
        return std::string(username);
    }
};

// One directory per `directories:` block behind one interface: find_user routes by the
// username's domain (see directory_settings::domains) and searches with the bare name;
// the other calls go to the directory the user was found in. A single block is returned
// as is.
std::unique_ptr<directory> make_directories(std::vector<directory_settings> blocks);

// Splits `user@domain` / `DOMAIN\user` into {domain, user}; {"", username} when neither.
std::pair<std::string, std::string> split_domain(std::string_view username);

// Builds the directory for settings.kind. Connections are opened lazily; a server that is
// down makes calls return `unavailable`, not throw.
std::unique_ptr<directory> make_directory(directory_settings settings);

// RFC 4515 assertion-value escaping: \2a \28 \29 \5c \00 (and every byte >= 0x80 left as is).
std::string escape_filter_value(std::string_view value);
// RFC 4514 attribute-value escaping for DNs.
std::string escape_dn_value(std::string_view value);
// Replaces every {username} in the filter template with the escaped value.
std::string expand_user_filter(std::string_view filter_template, std::string_view username);

// Maps a Password Modify / modify result and an optional ppolicy response error
// (-1 when absent; 0..8 per draft-behera-ldap-password-policy) to a write_result.
write_result map_openldap_write_result(int ldap_result, int ppolicy_error,
                                       std::string_view server_text);

}  // namespace pwresetd::ldap
