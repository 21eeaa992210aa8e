#pragma once
// An in-memory directory for fast unit tests of the services. What it pretends is the
// directory contract (tests/unit/ldap/directory_contract.hpp), which runs the same cases
// against it, a real slapd and a real Samba AD DC: lookups are case-insensitive and return
// the name as given; refusals come before the server is asked, in the real order; a
// locked account says "locked" whatever the password; a change refuses the current and
// the last `history_length` passwords; after `max_failures` bad binds (0: no lockout
// policy) the account locks, and a reset unlocks it.
#include <cctype>
#include <cstddef>
#include <deque>
#include <map>
#include <string>

#include "ldap/directory.hpp"

namespace pwresetd::testing {

class fake_directory final : public ldap::directory {
public:
    struct entry {
        ldap::directory_user user;
        std::string password;
        std::deque<std::string> history;  // earlier passwords, newest first
        int failures = 0;                 // bad binds since the last good one
    };

    void add(const std::string& username, std::string password, bool locked = false,
             bool disabled = false, bool is_protected = false) {
        entry e;
        e.user.dn = "uid=" + username + ",ou=people,dc=example,dc=test";
        e.user.id = "id-" + username;
        e.user.username = username;
        e.user.locked = locked;
        e.user.disabled = disabled;
        e.user.is_protected = is_protected;
        e.password = std::move(password);
        entries_[lower(username)] = std::move(e);
    }

    // The stored entry, to give a user an email, a phone or group memberships.
    ldap::directory_user& user_of(const std::string& username) { return at(username).user; }

    ldap::lookup_result find_user(std::string_view username) override {
        ++lookups;
        if (username.empty()) {
            return {ldap::lookup_status::not_found, std::nullopt};
        }
        if (down) {
            return {ldap::lookup_status::unavailable, std::nullopt};
        }
        const auto it = entries_.find(lower(username));
        if (it == entries_.end()) {
            return {ldap::lookup_status::not_found, std::nullopt};
        }
        ldap::directory_user user = it->second.user;
        user.username = std::string(username);  // as looked up, like the real ones
        return {ldap::lookup_status::found, std::move(user)};
    }

    ldap::bind_status verify_password(const ldap::directory_user& user,
                                      const secret& password) override {
        if (password.empty() || user.dn.empty()) {
            return ldap::bind_status::invalid_credentials;  // never sent (RFC 4513 5.1.2)
        }
        if (down) {
            return ldap::bind_status::unavailable;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr) {
            return ldap::bind_status::invalid_credentials;
        }
        if (e->user.locked) {
            return ldap::bind_status::locked;  // AD data 775 and ppolicy: whatever the password
        }
        if (!password.equals(e->password)) {
            if (max_failures > 0 && ++e->failures >= max_failures) {
                e->user.locked = true;
            }
            return ldap::bind_status::invalid_credentials;
        }
        e->failures = 0;
        // A disabled account cannot log on (AD data 533); not a usable password.
        return e->user.disabled ? ldap::bind_status::invalid_credentials : ldap::bind_status::ok;
    }

    ldap::write_result reset_password(const ldap::directory_user& user,
                                      const secret& new_password) override {
        ++writes;
        ldap::write_result r;
        if (refused(user, nullptr, new_password, r)) {
            return r;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr) {
            r.status = ldap::write_status::failed;
            return r;
        }
        if (too_short(new_password, r)) {
            return r;
        }
        store(*e, new_password);
        r.status = ldap::write_status::ok;
        r.unlocked = e->user.locked;
        e->user.locked = false;
        return r;
    }

    ldap::write_result change_password(const ldap::directory_user& user, const secret& current,
                                       const secret& new_password) override {
        ldap::write_result r;
        if (refused(user, &current, new_password, r)) {
            return r;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr || !current.equals(e->password)) {
            r.status = ldap::write_status::wrong_password;
            return r;
        }
        if (e->user.locked) {
            r.status = ldap::write_status::locked;
            return r;
        }
        if (too_short(new_password, r)) {
            return r;
        }
        if (in_history(*e, new_password)) {
            r.status = ldap::write_status::rejected;
            r.reason = ldap::refusal{"history", "Password is in history of old passwords"};
            return r;
        }
        ++writes;
        store(*e, new_password);
        r.status = ldap::write_status::ok;
        return r;
    }

    bool ping() override { return !down; }

    ldap::write_result unlock_account(const ldap::directory_user& user) override {
        ldap::write_result r;
        if (user.dn.empty() || user.disabled || user.is_protected) {
            r.diagnostic = "refused";
            return r;
        }
        if (down) {
            r.status = ldap::write_status::unavailable;
            return r;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr) {
            return r;
        }
        r.status = ldap::write_status::ok;
        r.unlocked = e->user.locked;
        e->user.locked = false;
        e->failures = 0;
        return r;
    }

    // unlock_on_reset per directory name ("" for users added without one).
    bool unlock_on_reset(const ldap::directory_user& user) const override {
        const auto it = unlock_settings.find(user.directory);
        return it != unlock_settings.end() && it->second;
    }
    bool any_unlock_on_reset() const override {
        for (const auto& [name, on] : unlock_settings) {
            if (on) {
                return true;
            }
        }
        return false;
    }

    const std::string& password_of(const std::string& username) { return at(username).password; }
    entry& at(const std::string& username) { return entries_.at(lower(username)); }

    bool down = false;
    std::size_t min_length = 12;
    std::size_t history_length = 5;
    int max_failures = 0;
    std::map<std::string, bool> unlock_settings{{"", true}};
    int lookups = 0;
    int writes = 0;

private:
    static std::string lower(std::string_view s) {
        std::string out(s);
        for (char& c : out) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return out;
    }

    // The refusals the real directories make before asking a server, in their order.
    bool refused(const ldap::directory_user& user, const secret* current,
                 const secret& new_password, ldap::write_result& r) const {
        if (user.dn.empty() || user.disabled || user.is_protected) {
            r.status = ldap::write_status::failed;
        } else if (current != nullptr && current->empty()) {
            r.status = ldap::write_status::wrong_password;
        } else if (new_password.empty()) {
            r.status = ldap::write_status::rejected;
            r.reason = ldap::refusal{"min_length", "empty password"};
        } else if (down) {
            r.status = ldap::write_status::unavailable;
        } else {
            return false;
        }
        return true;
    }

    bool too_short(const secret& new_password, ldap::write_result& r) const {
        if (new_password.size() >= min_length) {
            return false;
        }
        r.status = ldap::write_status::rejected;
        r.reason = ldap::refusal{"min_length", "Password fails quality checking policy"};
        return true;
    }

    bool in_history(const entry& e, const secret& new_password) const {
        if (history_length == 0) {
            return false;
        }
        if (new_password.equals(e.password)) {
            return true;
        }
        for (const auto& old : e.history) {
            if (new_password.equals(old)) {
                return true;
            }
        }
        return false;
    }

    void store(entry& e, const secret& new_password) const {
        e.history.push_front(std::move(e.password));
        while (e.history.size() > history_length) {
            e.history.pop_back();
        }
        e.password = std::string(new_password.view());
        e.failures = 0;
    }

    entry* by_dn(const std::string& dn) {
        for (auto& [name, e] : entries_) {
            if (e.user.dn == dn) {
                return &e;
            }
        }
        return nullptr;
    }

    std::map<std::string, entry> entries_;  // by lower-case username
};

}  // namespace pwresetd::testing
