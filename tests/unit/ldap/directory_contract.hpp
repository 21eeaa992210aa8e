#pragma once
// The ldap::directory contract, written once and run against the fake the service tests use
// (tests/fakes/fake_directory.hpp; unit_ldap_contract), a real slapd (integ_openldap) and a
// real Samba AD DC (integ_samba), like the state_store contract. A backend's test file
// defines a fixture type
//
//     struct my_backend {
//         my_backend();                                    // cheap: a shared lab stays up
//         std::unique_ptr<ldap::directory> open();         // default settings
//         std::unique_ptr<ldap::directory> open_down();    // the same, but no server answers
//         // A new ordinary user (a name no earlier call returned): not locked, in no group,
//         // mail NAME@example.test, contract::phone, contract::display_name.
//         std::string add_user(const std::string& password);
//         // Whether the password binds, checked without the directory under test.
//         bool binds(const ldap::directory_user& user, const std::string& password);
//         contract::known_user disabled_user();   // disabled by an administrator
//         contract::known_user protected_user();  // member of a protected group
//         std::vector<std::string> secrets();     // what must never reach the log
//         std::filesystem::path scratch();        // a folder for temporary files
//     };
//
// and calls run_directory_contract<my_backend>() from a TEST_CASE. Fixtures of real servers
// also have `ldap::directory_settings settings()` (what open() uses) and
// `std::string plain_uri()` (ldap:// of the same server), and get the transport sections.
//
// The directory policy the cases assume (both labs, and the fake as its fixture sets it
// up): a password of fewer than 10 characters is too short, a change may not reuse the
// current or the previous password, and 3 bad binds lock an account. Every SECTION starts
// from a new fixture; users are never shared between sections.
#include <catch2/catch.hpp>

#include <chrono>
#include <concepts>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "ldap/directory.hpp"
#include "support/stderr_capture.hpp"

namespace pwresetd::ldap::contract {

inline const std::string phone = "+46701112233";
inline const std::string display_name = "Robin Quist";

// A user every lab has, with its password; the contract never changes its password.
struct known_user {
    std::string username;
    std::string password;
};

// Passwords are named so that a failed CHECK echoes a name, never the value. None contains
// a part of a username or of display_name (AD complexity refuses those).
inline constexpr const char* first_password = "Blue-Harbor-Lamp-41";
inline constexpr const char* second_password = "Green-Meadow-Kite-52";
inline constexpr const char* third_password = "Amber-Valley-Oar-63";
inline constexpr const char* wrong_password = "Grey-Canyon-Bell-74";
inline constexpr const char* too_short = "Sh0rt-1x";

// Names that are filter metacharacters or junk: with escaping (RFC 4515) none matches.
inline const std::vector<std::string> hostile_names = {
    "*",      "al*",       "*)(|(uid=*",   "*)(|(sAMAccountName=*",
    "\\",     "a\\2a",     "alice)(uid=*", "(uid=alice)",
    "alice)", "alice\\00", "*lice",        "\x01\x02\xff\xfe garbage"};

inline std::string upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

inline directory_user must_find(directory& d, std::string_view username) {
    lookup_result r = d.find_user(username);
    REQUIRE(r.status == lookup_status::found);
    REQUIRE(r.user.has_value());
    return *r.user;
}

// Fixtures of real servers (TLS, StartTLS, other settings).
template <class Backend>
concept real_server = requires(Backend b) {
    { b.settings() } -> std::same_as<directory_settings>;
    { b.plain_uri() } -> std::same_as<std::string>;
};

template <class Backend>
void run_transport_contract(Backend& backend) {
    // The lab fixture makes the environment hostile (do not verify, trust the lab CA):
    // libldap must ignore it.
    REQUIRE(std::getenv("LDAPTLS_REQCERT") != nullptr);
    REQUIRE(std::string(std::getenv("LDAPTLS_REQCERT")) == "never");
    const std::string name = backend.add_user(first_password);
    const directory_user user = must_find(*backend.open(), name);

    SECTION("ldap:// with StartTLS works; without it nothing is sent") {
        directory_settings s = backend.settings();
        s.uris = {backend.plain_uri()};
        s.start_tls = true;
        auto d = make_directory(std::move(s));
        CHECK(must_find(*d, name).id == user.id);
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::ok);
        CHECK(d->ping());

        directory_settings plain = backend.settings();
        plain.uris = {backend.plain_uri()};
        plain.start_tls = false;
        auto refused = make_directory(std::move(plain));
        CHECK(refused->find_user(name).status == lookup_status::unavailable);
        CHECK(refused->verify_password(user, secret(first_password)) == bind_status::unavailable);
        CHECK_FALSE(refused->ping());
    }
    SECTION("a wrong CA file is refused, on ldaps:// and with StartTLS") {
        const auto key = backend.scratch() / "other-ca.key";
        const auto ca = backend.scratch() / "other-ca.crt";
        const std::string command =
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" +
            key.string() + "' -out '" + ca.string() + "' -days 1 -subj /CN=other >/dev/null 2>&1";
        REQUIRE(std::system(command.c_str()) == 0);
        for (const bool start_tls : {false, true}) {
            INFO("start_tls: " << start_tls);
            directory_settings s = backend.settings();
            s.ca_file = ca.string();
            if (start_tls) {
                s.uris = {backend.plain_uri()};
                s.start_tls = true;
            }
            auto d = make_directory(std::move(s));
            std::string log;
            {
                testing::stderr_capture capture;
                CHECK(d->find_user(name).status == lookup_status::unavailable);
                log = capture.text();
            }
            CHECK(log.find("TLS") != std::string::npos);
            CHECK(log.find("certificate") != std::string::npos);
            CHECK(d->verify_password(user, secret(first_password)) == bind_status::unavailable);
            CHECK_FALSE(d->ping());
        }
    }
    SECTION("a wrong service password: unavailable, and never logged") {
        const std::string wrong_service = "Svc-Wrong-Passw0rd-9";
        directory_settings s = backend.settings();
        s.bind_password = secret(wrong_service);
        std::string log;
        {
            testing::stderr_capture capture;
            auto d = make_directory(std::move(s));
            CHECK(d->find_user(name).status == lookup_status::unavailable);
            CHECK_FALSE(d->ping());
            log = capture.text();
        }
        CHECK(log.find("ldap.service_bind_failed") != std::string::npos);
        CHECK(log.find(wrong_service) == std::string::npos);
    }
}

template <class Backend>
void run_directory_contract() {
    Backend backend;

    SECTION("find_user: one entry, with id, mail, phone and display name") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        const directory_user user = must_find(*d, name);
        CHECK_FALSE(user.dn.empty());
        CHECK_FALSE(user.id.empty());
        CHECK(user.username == name);
        CHECK(user.directory.empty());  // unnamed: the only directory
        CHECK(user.email == name + "@example.test");
        CHECK(user.phone == phone);
        CHECK(user.display_name == display_name);
        CHECK_FALSE(user.locked);
        CHECK_FALSE(user.disabled);
        CHECK_FALSE(user.is_protected);
        CHECK_FALSE(user.needs_two_methods);

        // Stable: the same entry, the same id (and the pooled connection reused).
        const directory_user again = must_find(*d, name);
        CHECK(again.id == user.id);
        CHECK(again.dn == user.dn);
        // Another user, another id.
        CHECK(must_find(*d, backend.add_user(first_password)).id != user.id);
        // Names compare without case (uid, sAMAccountName); the name comes back as given.
        const directory_user shouted = must_find(*d, upper(name));
        CHECK(shouted.id == user.id);
        CHECK(shouted.username == upper(name));
    }
    SECTION("find_user: not found, empty, hostile names") {
        auto d = backend.open();
        const std::string name = backend.add_user(first_password);
        const lookup_result nobody = d->find_user("nobody-" + name);
        CHECK(nobody.status == lookup_status::not_found);
        CHECK_FALSE(nobody.user.has_value());
        CHECK(d->find_user("").status == lookup_status::not_found);
        for (const auto& hostile : hostile_names) {
            INFO("username: " << hostile);
            CHECK(d->find_user(hostile).status == lookup_status::not_found);
        }
        // A prefix or a wildcard never reaches the real entry.
        for (const std::string& near : {name + "*", "*" + name.substr(1), name.substr(0, 3) + "*",
                                        name + ")(uid=*", name + "\\2a"}) {
            INFO("username: " << near);
            CHECK(d->find_user(near).status == lookup_status::not_found);
        }
        CHECK(d->find_user(name).status == lookup_status::found);
    }
    SECTION("verify_password: right, wrong, empty, an entry that does not exist") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        const directory_user user = must_find(*d, name);
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::ok);
        CHECK(d->verify_password(user, secret(wrong_password)) == bind_status::invalid_credentials);
        CHECK(d->verify_password(user, secret("")) == bind_status::invalid_credentials);
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::ok);  // count 0
        directory_user ghost = user;
        ghost.dn = "cn=no-such-entry-" + name + user.dn.substr(user.dn.find(','));
        CHECK(d->verify_password(ghost, secret(first_password)) ==
              bind_status::invalid_credentials);
    }
    SECTION("reset_password: the new password binds, the old one does not; too short") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        const directory_user user = must_find(*d, name);
        write_result r = d->reset_password(user, secret(second_password));
        CHECK(r.status == write_status::ok);
        CHECK_FALSE(r.unlocked);
        CHECK_FALSE(r.reason.has_value());
        CHECK(backend.binds(user, second_password));
        CHECK_FALSE(backend.binds(user, first_password));
        CHECK(d->verify_password(user, secret(second_password)) == bind_status::ok);

        r = d->reset_password(user, secret(too_short));
        CHECK(r.status == write_status::rejected);
        REQUIRE(r.reason.has_value());
        CHECK(r.reason->rule == "min_length");
        CHECK(backend.binds(user, second_password));
        CHECK_FALSE(backend.binds(user, too_short));

        // An empty password is refused without asking the server to generate one.
        r = d->reset_password(user, secret(""));
        CHECK(r.status == write_status::rejected);
        REQUIRE(r.reason.has_value());
        CHECK(r.reason->rule == "min_length");
        CHECK(backend.binds(user, second_password));
    }
    SECTION("change_password: wrong current, too short, history; then the change") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        const directory_user user = must_find(*d, name);
        write_result r = d->change_password(user, secret(wrong_password), secret(second_password));
        CHECK(r.status == write_status::wrong_password);
        CHECK_FALSE(r.reason.has_value());
        CHECK(d->change_password(user, secret(""), secret(second_password)).status ==
              write_status::wrong_password);
        CHECK(backend.binds(user, first_password));  // and the bad-password count is 0 again
        CHECK_FALSE(backend.binds(user, second_password));

        r = d->change_password(user, secret(first_password), secret(too_short));
        CHECK(r.status == write_status::rejected);
        REQUIRE(r.reason.has_value());
        CHECK(r.reason->rule == "min_length");
        r = d->change_password(user, secret(first_password), secret(""));
        CHECK(r.status == write_status::rejected);
        CHECK(backend.binds(user, first_password));

        r = d->change_password(user, secret(first_password), secret(second_password));
        CHECK(r.status == write_status::ok);
        CHECK_FALSE(r.reason.has_value());
        CHECK(backend.binds(user, second_password));
        CHECK_FALSE(backend.binds(user, first_password));
        CHECK(d->verify_password(user, secret(second_password)) == bind_status::ok);

        for (const char* reused : {first_password, second_password}) {  // previous, current
            r = d->change_password(user, secret(second_password), secret(reused));
            CHECK(r.status == write_status::rejected);
            REQUIRE(r.reason.has_value());
            CHECK(r.reason->rule == "history");
        }
        CHECK(backend.binds(user, second_password));
        CHECK(d->change_password(user, secret(second_password), secret(third_password)).status ==
              write_status::ok);
        CHECK(backend.binds(user, third_password));
    }
    SECTION("lockout: bad binds lock; locked whatever the password; a reset unlocks") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        directory_user user = must_find(*d, name);
        for (int i = 0; i < 3; ++i) {
            CHECK(d->verify_password(user, secret(wrong_password)) ==
                  bind_status::invalid_credentials);
        }
        user = must_find(*d, name);
        CHECK(user.locked);
        CHECK_FALSE(user.disabled);
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::locked);
        CHECK(d->verify_password(user, secret(wrong_password)) == bind_status::locked);
        CHECK(d->change_password(user, secret(first_password), secret(second_password)).status ==
              write_status::locked);
        CHECK_FALSE(backend.binds(user, second_password));

        const write_result r = d->reset_password(user, secret(third_password));
        CHECK(r.status == write_status::ok);
        CHECK(r.unlocked);
        CHECK_FALSE(must_find(*d, name).locked);
        CHECK(d->verify_password(user, secret(third_password)) == bind_status::ok);
        CHECK(backend.binds(user, third_password));
        // Nothing to unlock the next time (a new lookup: the daemon never resets without).
        const write_result again = d->reset_password(must_find(*d, name), secret(second_password));
        CHECK(again.status == write_status::ok);
        CHECK_FALSE(again.unlocked);
    }
    SECTION("unlock_account: a locked account binds again; disabled and protected refused") {
        const std::string name = backend.add_user(first_password);
        auto d = backend.open();
        directory_user user = must_find(*d, name);
        // not locked: nothing to do, and fine
        CHECK(d->unlock_account(user).status == write_status::ok);
        for (int i = 0; i < 3; ++i) {
            CHECK(d->verify_password(user, secret(wrong_password)) ==
                  bind_status::invalid_credentials);
        }
        user = must_find(*d, name);
        REQUIRE(user.locked);
        CHECK_FALSE(backend.binds(user, first_password));
        const write_result r = d->unlock_account(user);
        CHECK(r.status == write_status::ok);
        CHECK_FALSE(must_find(*d, name).locked);
        CHECK(backend.binds(user, first_password));
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::ok);

        const directory_user dave = must_find(*d, backend.disabled_user().username);
        CHECK(d->unlock_account(dave).status == write_status::failed);
        CHECK(must_find(*d, dave.username).disabled);  // the administrative lock stays
        const directory_user erin = must_find(*d, backend.protected_user().username);
        CHECK(d->unlock_account(erin).status == write_status::failed);
    }
    SECTION("disabled and protected accounts: flagged, and never written") {
        auto d = backend.open();
        const known_user disabled = backend.disabled_user();
        const directory_user dave = must_find(*d, disabled.username);
        CHECK(dave.disabled);
        CHECK_FALSE(dave.is_protected);
        // Not a usable password (AD data 533; ppolicy's administrative lock).
        const bind_status bound = d->verify_password(dave, secret(disabled.password));
        CHECK((bound == bind_status::invalid_credentials || bound == bind_status::locked));
        CHECK(d->reset_password(dave, secret(second_password)).status == write_status::failed);
        CHECK(d->change_password(dave, secret(disabled.password), secret(second_password)).status ==
              write_status::failed);
        CHECK(must_find(*d, disabled.username).disabled);

        const known_user guarded = backend.protected_user();
        const directory_user erin = must_find(*d, guarded.username);
        CHECK(erin.is_protected);
        CHECK_FALSE(erin.disabled);
        CHECK(d->reset_password(erin, secret(second_password)).status == write_status::failed);
        CHECK(d->change_password(erin, secret(guarded.password), secret(second_password)).status ==
              write_status::failed);
        CHECK(backend.binds(erin, guarded.password));
        CHECK_FALSE(backend.binds(erin, second_password));
        CHECK(d->verify_password(erin, secret(guarded.password)) == bind_status::ok);
    }
    SECTION("ping; a directory that does not answer is unavailable, quickly") {
        CHECK(backend.open()->ping());
        const std::string name = backend.add_user(first_password);
        const directory_user user = must_find(*backend.open(), name);
        const auto start = std::chrono::steady_clock::now();
        auto d = backend.open_down();
        CHECK(d->find_user(name).status == lookup_status::unavailable);
        CHECK(d->verify_password(user, secret(first_password)) == bind_status::unavailable);
        CHECK(d->reset_password(user, secret(second_password)).status == write_status::unavailable);
        CHECK(d->change_password(user, secret(first_password), secret(second_password)).status ==
              write_status::unavailable);
        CHECK_FALSE(d->ping());
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
        // What is refused before a server is asked is refused the same when none answers.
        CHECK(d->find_user("").status == lookup_status::not_found);
        CHECK(d->verify_password(user, secret("")) == bind_status::invalid_credentials);
        CHECK(d->change_password(user, secret(""), secret(second_password)).status ==
              write_status::wrong_password);
        const write_result empty = d->reset_password(user, secret(""));
        CHECK(empty.status == write_status::rejected);
        directory_user disabled = user;
        disabled.disabled = true;
        CHECK(d->reset_password(disabled, secret(second_password)).status == write_status::failed);
        directory_user no_dn = user;
        no_dn.dn.clear();
        CHECK(d->verify_password(no_dn, secret(first_password)) ==
              bind_status::invalid_credentials);
        CHECK(d->reset_password(no_dn, secret(second_password)).status == write_status::failed);
        CHECK(backend.binds(user, first_password));
    }
    SECTION("no password ever reaches the log") {
        const std::string name = backend.add_user(first_password);
        std::string log;
        {
            testing::stderr_capture capture;
            auto d = backend.open();
            const directory_user user = must_find(*d, name);
            (void)d->verify_password(user, secret(wrong_password));
            (void)d->reset_password(user, secret(too_short));
            (void)d->change_password(user, secret(wrong_password), secret(third_password));
            (void)d->change_password(user, secret(first_password), secret(too_short));
            (void)d->reset_password(user, secret(second_password));
            (void)d->verify_password(user, secret(second_password));
            log = capture.text();
        }
        for (const std::string& value :
             {std::string(first_password), std::string(second_password),
              std::string(third_password), std::string(wrong_password), std::string(too_short)}) {
            CHECK(log.find(value) == std::string::npos);
        }
        for (const auto& value : backend.secrets()) {
            CHECK(log.find(value) == std::string::npos);
        }
    }
    if constexpr (real_server<Backend>) {
        SECTION("transport") {
            run_transport_contract(backend);
        }
    }
}

}  // namespace pwresetd::ldap::contract
