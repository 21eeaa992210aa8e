#pragma once
// An in-memory directory for fast unit tests of the services. Everything it pretends
// (lookup by username, binds, refusals, unlock) is proven again against a real slapd by the
// integration and end-to-end tests.
#include <map>
#include <string>

#include "ldap/directory.hpp"

namespace pwresetd::testing {

class fake_directory final : public ldap::directory {
public:
    struct entry {
        ldap::directory_user user;
        std::string password;
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
        entries_[username] = std::move(e);
    }

    // The stored entry, to give a user an email, a phone or group memberships.
    ldap::directory_user& user_of(const std::string& username) {
        return entries_.at(username).user;
    }

    ldap::lookup_result find_user(std::string_view username) override {
        ++lookups;
        if (down) {
            return {ldap::lookup_status::unavailable, std::nullopt};
        }
        const auto it = entries_.find(std::string(username));
        if (it == entries_.end()) {
            return {ldap::lookup_status::not_found, std::nullopt};
        }
        return {ldap::lookup_status::found, it->second.user};
    }

    ldap::bind_status verify_password(const ldap::directory_user& user,
                                      const secret& password) override {
        if (down) {
            return ldap::bind_status::unavailable;
        }
        const auto* e = by_dn(user.dn);
        if (e == nullptr || password.empty() || !password.equals(e->password)) {
            return ldap::bind_status::invalid_credentials;
        }
        return e->user.locked ? ldap::bind_status::locked : ldap::bind_status::ok;
    }

    ldap::write_result reset_password(const ldap::directory_user& user,
                                      const secret& new_password) override {
        ++writes;
        ldap::write_result r;
        if (down) {
            r.status = ldap::write_status::unavailable;
            return r;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr) {
            r.status = ldap::write_status::failed;
            return r;
        }
        if (new_password.size() < min_length) {
            r.status = ldap::write_status::rejected;
            r.reason = ldap::refusal{"min_length", "Password fails quality checking policy"};
            return r;
        }
        e->password = std::string(new_password.view());
        r.status = ldap::write_status::ok;
        r.unlocked = e->user.locked;
        e->user.locked = false;
        return r;
    }

    ldap::write_result change_password(const ldap::directory_user& user, const secret& current,
                                       const secret& new_password) override {
        ldap::write_result r;
        if (down) {
            r.status = ldap::write_status::unavailable;
            return r;
        }
        auto* e = by_dn(user.dn);
        if (e == nullptr || current.empty() || !current.equals(e->password)) {
            r.status = ldap::write_status::wrong_password;
            return r;
        }
        if (e->user.locked) {
            r.status = ldap::write_status::locked;
            return r;
        }
        if (new_password.size() < min_length) {
            r.status = ldap::write_status::rejected;
            r.reason = ldap::refusal{"min_length", "Password fails quality checking policy"};
            return r;
        }
        ++writes;
        e->password = std::string(new_password.view());
        r.status = ldap::write_status::ok;
        return r;
    }

    bool ping() override { return !down; }

    const std::string& password_of(const std::string& username) {
        return entries_.at(username).password;
    }
    entry& at(const std::string& username) { return entries_.at(username); }

    bool down = false;
    std::size_t min_length = 12;
    int lookups = 0;
    int writes = 0;

private:
    entry* by_dn(const std::string& dn) {
        for (auto& [name, e] : entries_) {
            if (e.user.dn == dn) {
                return &e;
            }
        }
        return nullptr;
    }

    std::map<std::string, entry> entries_;
};

}  // namespace pwresetd::testing
