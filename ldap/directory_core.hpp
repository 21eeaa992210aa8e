#pragma once
// What every directory dialect shares (private to ldap/): the settings, the per-URI server
// health, the pool of service connections, the single-entry user search with its one
// retry, the bind as a user, ping, the refusals every write makes before it reaches a
// server, the steps after a reset, and one log vocabulary (every line names its directory).
//
// A dialect (ldap/openldap_directory.cpp, ldap/ad_directory.cpp) is one small file: a class
// that holds the core and supplies only what its servers do differently (the attributes
// it reads, entry -> directory_user with its group checks, its bind and write result
// tables, the password writes), made into a `directory` by dialect_directory below. A new
// dialect also needs a directory_kind and a line in ldap/dialects.hpp and make_directory.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ldap/connection.hpp"
#include "ldap/connection_pool.hpp"
#include "ldap/directory.hpp"

namespace pwresetd::ldap {

// The part of a user lookup a dialect supplies.
class user_reader {
public:
    virtual ~user_reader() = default;
    // Completes `user` from the one entry the search found (the core has set dn, directory,
    // username, email, phone and display name): the id, the flags, the group memberships.
    // found; otherwise unavailable (fail closed), with rc set to the server's code when a
    // search failed (a connection error makes the core retry on a fresh connection).
    virtual lookup_status read_user(LDAP* ld, LDAPMessage* entry, directory_user& user,
                                    int& rc) = 0;
    // A name that matched no entry: the searches read_user makes for a found one, so unknown
    // and real users take the same time (API.md). Results and errors are of no interest.
    virtual void decoy_lookup(LDAP* ld) = 0;
};

// A dialect's bind result table.
using bind_reader = bind_status (*)(const operation_result&);

// One configured list of group DNs whose members a lookup flags (protected_groups,
// two_methods_groups), with the log events and the hint that name it.
struct group_list {
    std::vector<std::string> dns;
    std::string_view missing_event;
    std::string_view failed_event;
    std::string_view missing_hint;

    static group_list protected_groups(const directory_settings& settings);
    static group_list two_methods_groups(const directory_settings& settings);
};

// A password write as a dialect made it: what the server said, what the dialect's result
// table makes of it, and what the operator should look at when it failed ("" if nothing).
struct write_attempt {
    operation_result result;
    write_result out;
    std::string_view hint;
};

// A fresh connection (never a pooled one) and the bind as a user on it.
struct user_session {
    opened_connection connection;
    operation_result bind;
};

// One attribute modification a dialect makes after a successful reset.
struct attribute_change {
    int operation = 0;  // LDAP_MOD_REPLACE / LDAP_MOD_DELETE
    std::string attribute;
    std::vector<std::string_view> values;  // none with LDAP_MOD_DELETE: the attribute goes
};

// What a dialect writes after a successful reset, as force_change_at_next_logon and
// unlock_on_reset ask.
struct reset_followup {
    attribute_change force_change;
    attribute_change unlock;
    // Whether the account is locked now (asked only when unlock_on_reset is set).
    std::function<bool()> locked;
    // A result of the unlock that also means "not locked any more" (LDAP_SUCCESS: none).
    int also_unlocked = 0;
    // The operator hint for a failed modification (null: none).
    std::string_view (*hint)(int ldap_result, std::string_view server_text) = nullptr;
};

class directory_core {
public:
    // Runs on every new pooled connection after the service bind (AD reads the DC's
    // policy-hints support); LDAP_SUCCESS, or the code why the connection is not pooled.
    using connection_setup = std::function<int(LDAP*)>;
    // A dialect's password write on a leased service connection.
    using service_write = std::function<write_attempt(LDAP*)>;
    // What a dialect does on that connection after the write succeeded.
    using after_write = std::function<void(LDAP*, write_result&)>;

    // attributes: what the dialect reads, besides settings.attributes (email, phone,
    // display name).
    directory_core(directory_settings settings, std::vector<std::string> attributes,
                   connection_setup setup = {});
    directory_core(const directory_core&) = delete;
    directory_core& operator=(const directory_core&) = delete;
    directory_core(directory_core&&) = delete;
    directory_core& operator=(directory_core&&) = delete;
    ~directory_core() = default;

    [[nodiscard]] const directory_settings& settings() const noexcept { return settings_; }
    [[nodiscard]] const std::string& name() const noexcept { return settings_.name; }
    [[nodiscard]] int timeout_ms() const noexcept { return settings_.timeout_ms; }
    [[nodiscard]] server_health& health() noexcept { return *health_; }

    // directory::find_user: user_base searched with user_filter, exactly one entry, retried
    // once on a fresh connection after a connection error (a search is idempotent).
    lookup_result find_user(std::string_view username, user_reader& reader);
    // directory::ping: a RootDSE read, retried once on a fresh connection.
    bool ping();
    // directory::probe_servers for this directory: each URI on a fresh connection of its own
    // (outside the pool and the failover order), timed; the health and pool as they are.
    directory_status probe_servers();
    // directory::unlock_account with the dialect's unlock modification (reset_followup's
    // unlock, also_unlocked and hint), on a pooled service connection, logged.
    write_result unlock_account(const directory_user& user, const reset_followup& unlock);

    // A fresh connection and a bind as the user. Never retried on another server after the
    // open: the bind may have reached this one and counted as a failed attempt.
    user_session bind_as_user(const directory_user& user, const secret& password);
    // directory::verify_password with the dialect's bind table; an empty password or DN
    // never reaches a server (an unauthenticated bind "succeeds", RFC 4513 5.1.2).
    bind_status verify_password(const directory_user& user, const secret& password,
                                bind_reader read);

    // The refusals every write makes before it reaches a server (logged
    // ldap.write_refused): no DN; a disabled or protected account (defence in depth: the
    // flows check first); an empty current password (change: it would be an anonymous
    // bind); an empty new one (RFC 3062: a request for a generated password). nullopt
    // when the write may go ahead. current is null for a reset.
    std::optional<write_result> refuse_write(const directory_user& user, std::string_view operation,
                                             const secret* current,
                                             const secret& new_password) const;
    // One write as the service account on a pooled connection, never retried (after a
    // connection error it may have reached the server; the connection is discarded),
    // logged once (log_write); then `after` on the same connection when it succeeded.
    write_result write_as_service(const directory_user& user, std::string_view operation,
                                  const service_write& write, const after_write& after = {});
    // The steps after a successful reset; their failures are appended to the diagnostic.
    void after_reset(LDAP* ld, const directory_user& user, const reset_followup& followup,
                     write_result& out) const;

    // One line per write outcome: ldap.password_written, ldap.password_rejected,
    // ldap.password_change_refused (wrong current password, locked),
    // ldap.password_write_unavailable, ldap.password_write_failed (with the hint).
    void log_write(std::string_view operation, const directory_user& user, const write_result& out,
                   std::string_view hint = {}) const;
    void log_group_missing(const group_list& groups, std::string_view group) const;
    void log_group_check_failed(const group_list& groups, std::string_view base,
                                const search_result& r) const;
    // An entry without an attribute the dialect cannot do without (its id): logged
    // ldap.user_entry_incomplete; the lookup is unavailable (rc LDAP_SUCCESS: not the
    // connection's fault).
    lookup_status incomplete_entry(const directory_user& user, std::string_view attribute,
                                   int& rc) const;

private:
    opened_connection open_pooled_connection();
    lookup_result lookup(LDAP* ld, std::string_view username, user_reader& reader, int& rc);
    bool modify_after_reset(LDAP* ld, const directory_user& user, const attribute_change& change,
                            int also_ok, const reset_followup& followup, std::string_view failed,
                            write_result& out) const;

    directory_settings settings_;
    std::vector<std::string> attributes_;
    connection_setup setup_;
    std::shared_ptr<server_health> health_;  // per URI, shared by the pool and user binds
    connection_pool pool_;                   // last: its opener uses the members above
};

// The first value of an attribute of an entry ("" when absent).
std::string first_value(LDAP* ld, LDAPMessage* entry, const std::string& name);

// The directory a dialect makes with a core: the core answers what every directory does
// alike, the dialect the rest. Dialect is constructed with the core (and keeps a reference
// to it) and has
//   static std::vector<std::string> attributes();   // read besides email, phone, name
//   static bind_status read_bind(const operation_result&);   // its bind result table
//   lookup_status read_user(LDAP*, LDAPMessage*, directory_user&, int& rc);  // user_reader
//   void decoy_lookup(LDAP*);                                               // user_reader
//   write_result reset_password(const directory_user&, const secret& new_password);
//   write_result change_password(const directory_user&, const secret& current,
//                                const secret& new_password);
//   static reset_followup unlock_followup();   // unlock, also_unlocked and hint set
// and, when it needs one, `int on_new_connection(LDAP*)` (directory_core::connection_setup).
template <class Dialect>
class dialect_directory final : public directory, private user_reader {
public:
    explicit dialect_directory(directory_settings settings)
        : core_(std::move(settings), Dialect::attributes(), connection_setup()), dialect_(core_) {}

    lookup_result find_user(std::string_view username) override {
        return core_.find_user(username, *this);
    }
    bind_status verify_password(const directory_user& user, const secret& password) override {
        return core_.verify_password(user, password, &Dialect::read_bind);
    }
    write_result reset_password(const directory_user& user, const secret& new_password) override {
        return dialect_.reset_password(user, new_password);
    }
    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password) override {
        return dialect_.change_password(user, current, new_password);
    }
    bool ping() override { return core_.ping(); }
    std::vector<directory_status> probe_servers() override { return {core_.probe_servers()}; }
    write_result unlock_account(const directory_user& user) override {
        return core_.unlock_account(user, Dialect::unlock_followup());
    }
    bool unlock_on_reset(const directory_user& /*user*/) const override {
        return core_.settings().unlock_on_reset;
    }
    bool any_unlock_on_reset() const override { return core_.settings().unlock_on_reset; }

private:
    lookup_status read_user(LDAP* ld, LDAPMessage* entry, directory_user& user, int& rc) override {
        return dialect_.read_user(ld, entry, user, rc);
    }
    void decoy_lookup(LDAP* ld) override { dialect_.decoy_lookup(ld); }

    directory_core::connection_setup connection_setup() {
        if constexpr (requires(Dialect & d, LDAP * ld) { d.on_new_connection(ld); }) {
            // Called only once the pool opens a connection, after construction.
            return [this](LDAP* ld) { return dialect_.on_new_connection(ld); };
        } else {
            return {};
        }
    }

    directory_core core_;
    Dialect dialect_;  // after core_: it is constructed with it
};

}  // namespace pwresetd::ldap
