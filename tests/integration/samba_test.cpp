// The Active Directory directory against a real Samba AD domain controller
// (tests/lab/samba.sh), one lab per test binary, always stopped and removed at exit. The
// DC's ports are fixed, so this binary runs inside a private network namespace
// (tests/lab/in-netns.sh; ctest does that). The service account is the delegated,
// non-administrator svc-pwreset. Nothing here prints a password.
//
// Lockout is 3 bad passwords: every test keeps each user below that between good binds,
// except the one that locks carol on purpose.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include "ldap/directory.hpp"
#include "support/files.hpp"
#include "support/lab_fixture.hpp"
#include "support/net.hpp"
#include "support/shell.hpp"
#include "support/stderr_capture.hpp"

namespace fs = std::filesystem;
using namespace pwresetd;
using namespace pwresetd::ldap;
using namespace pwresetd::testing;

namespace {

// Passwords are named so that a failed CHECK echoes a name, never the value.
constexpr const char* alice_password = "Alice-Old-Passw0rd!";
constexpr const char* alice_wrong = "Alice-Wrong-Passw0rd!";
constexpr const char* alice_new = "Alice-New-Passw0rd-1";
constexpr const char* alice_too_short = "Sh0rt!x";
// A quote, a backslash, é and an emoji (U+1F600, a surrogate pair in UTF-16).
constexpr const char* alice_special = "Qu\"ote\\Back-\xC3\xA9t\xC3\xA9-\xF0\x9F\x98\x80-9";
constexpr const char* alice_after_hints = "Alice-Hints-Passw0rd-2";
constexpr const char* alice_undelegated = "Alice-Undelegated-Passw0rd-3";
constexpr const char* bob_password = "Bob-Old-Passw0rd!";
constexpr const char* bob_wrong = "Bob-Wrong-Passw0rd!";
constexpr const char* bob_new = "Bob-New-Passw0rd-1";
constexpr const char* bob_newer = "Bob-Newer-Passw0rd-2";
constexpr const char* bob_too_short = "B0b-short";
constexpr const char* bob_simple = "alllowercaselongpassword";
constexpr const char* carol_password = "Carol-Old-Passw0rd!";
constexpr const char* carol_wrong = "Carol-Wrong-Passw0rd!";
constexpr const char* carol_new = "Carol-New-Passw0rd-1";
constexpr const char* carol_changed = "Carol-Changed-Passw0rd-2";
constexpr const char* dave_password = "Dave-Old-Passw0rd!";
constexpr const char* dave_new = "Dave-New-Passw0rd-1";
constexpr const char* erin_password = "Erin-Old-Passw0rd!";
constexpr const char* erin_new = "Erin-New-Passw0rd-1";
constexpr const char* frank_password = "Frank-Old-Passw0rd!";
constexpr const char* frank_new = "Frank-New-Passw0rd-1";
constexpr const char* gina_new = "Gina-New-Passw0rd-1";
constexpr const char* gina_changed = "Gina-Changed-Passw0rd-2";
constexpr const char* whatever = "Whatever-Passw0rd-1";

// The lab: started on first use, stopped and removed when the test binary exits (also
// after failed tests: a function-local static).
class lab {
public:
    static lab& get() {
        static lab instance;
        return instance;
    }
    lab(const lab&) = delete;
    lab& operator=(const lab&) = delete;

    const std::string& operator[](const std::string& key) const { return fixture_[key]; }
    const fs::path& dir() const { return fixture_.dir(); }
    std::string user_dn(const std::string& cn) const {
        return "CN=" + cn + "," + fixture_["LAB_USER_BASE"];
    }

    // Independent check with ldapsearch (ldapwhoami fails against Samba: no whoami exop,
    // LAB.md); the password goes through a 0600 file, never a command line.
    bool binds(const std::string& dn, const std::string& password) const {
        const fs::path file = fixture_.dir() / "check-password";
        {
            std::ofstream out(file, std::ios::binary | std::ios::trunc);
            out << password;
        }
        fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
        const int rc = run_shell(ldap_tool("ldapsearch") + " -D " + shell_quote(dn) + " -y " +
                                 shell_quote(file.string()) + " -s base -b " + shell_quote(dn) +
                                 " dn >/dev/null 2>&1");
        fs::remove(file);
        return rc == 0;
    }

    // One attribute's values as Administrator sees them ("attr: value" lines).
    std::string admin_read(const std::string& dn, const std::string& attribute) const {
        const fs::path out = fixture_.dir() / "admin-read.out";
        const int rc = run_shell(ldap_tool("ldapsearch") + " -LLL -o ldif-wrap=no -D " +
                                 shell_quote(fixture_["LAB_ADMIN_DN"]) + " -y " +
                                 shell_quote(fixture_["LAB_ADMIN_PASSWORD_FILE"]) + " -s base -b " +
                                 shell_quote(dn) + " '(objectClass=*)' " + shell_quote(attribute) +
                                 " > " + shell_quote(out.string()) + " 2>/dev/null");
        if (rc != 0) {
            throw std::runtime_error("ldapsearch as Administrator failed");
        }
        std::string text = read_file(out);
        fs::remove(out);
        const auto first_line_end = text.find('\n');  // drop the "dn:" line
        return first_line_end == std::string::npos ? std::string()
                                                   : text.substr(first_line_end + 1);
    }

private:
    // The lab folder, its reaper and lab.env: see support/lab_fixture.hpp.
    lab() {
        WARN("Samba lab ready in " << fixture_.start_seconds() << " s");
        // Hostile environment for the rest of the run: libldap must ignore it (LDAPNOINIT,
        // explicit per-handle TLS options), or the wrong-CA test would pass TLS. Child
        // ldap-utils run with "env -u LDAPNOINIT" and their own settings.
        ::setenv("LDAPTLS_REQCERT", "never", 1);
        ::setenv("LDAPTLS_CACERT", fixture_["LAB_CA"].c_str(), 1);
    }

    std::string ldap_tool(const std::string& tool) const {
        return "env -u LDAPNOINIT LDAPTLS_REQCERT=demand LDAPTLS_CACERT=" +
               shell_quote(fixture_["LAB_CA"]) + " " + tool + " -x -o nettimeout=5 -H " +
               shell_quote(fixture_["LAB_LDAPS_URI"]);
    }

    lab_fixture fixture_{"samba.sh", "run this binary through tests/lab/in-netns.sh"};
};

directory_settings lab_settings() {
    const lab& l = lab::get();
    directory_settings s;
    s.kind = directory_kind::active_directory;
    s.uris = {l["LAB_LDAPS_URI"]};
    s.ca_file = l["LAB_CA"];
    s.bind_dn = l["LAB_SVC_DN"];
    s.bind_password = secret(read_file(l["LAB_SVC_PASSWORD_FILE"]));
    s.user_base = l["LAB_USER_BASE"];
    s.user_filter = "(&(objectClass=user)(sAMAccountName={username}))";
    s.timeout_ms = 5000;
    s.pool_size = 2;
    s.protected_groups = {l["LAB_PROTECTED_GROUP"]};
    return s;
}

std::unique_ptr<directory> lab_directory() {
    return make_directory(lab_settings());
}

directory_user must_find(directory& d, std::string_view username) {
    lookup_result r = d.find_user(username);
    REQUIRE(r.status == lookup_status::found);
    REQUIRE(r.user.has_value());
    return *r.user;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

bool is_lower_hex(const std::string& s) {
    return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

TEST_CASE("find_user: objectGUID id, mail, mobile, display name", "[ldap][samba]") {
    auto d = lab_directory();
    const directory_user alice = must_find(*d, "alice");
    CHECK(alice.dn == lab::get().user_dn("alice"));
    CHECK(alice.id.size() == 32);  // 16 bytes of objectGUID, lowercase hex
    CHECK(is_lower_hex(alice.id));
    CHECK(alice.username == "alice");
    CHECK(alice.email == "alice@example.test");
    CHECK(alice.phone == "+46701234567");
    CHECK(alice.display_name == "Alice Andersson");
    CHECK(alice.directory.empty());
    CHECK_FALSE(alice.locked);
    CHECK_FALSE(alice.disabled);
    CHECK_FALSE(alice.is_protected);
    const directory_user bob = must_find(*d, "bob");
    CHECK(bob.id != alice.id);
    CHECK(bob.phone.empty());
    CHECK_FALSE(bob.is_protected);
    CHECK(must_find(*d, "alice").id == alice.id);  // stable, pooled connection reused

    directory_settings named = lab_settings();
    named.name = "corp";
    const auto corp = make_directory(std::move(named));
    CHECK(must_find(*corp, "alice").directory == "corp");
}

TEST_CASE("find_user: not found, ambiguous, hostile names", "[ldap][samba]") {
    auto d = lab_directory();
    CHECK(d->find_user("nobody").status == lookup_status::not_found);
    CHECK(d->find_user("").status == lookup_status::not_found);
    for (const char* name : {"*", "alice)(sAMAccountName=*", "al*", "*)(|(sAMAccountName=*", "\\",
                             "alice*", "*lice", "alice)", "alice\\00"}) {
        INFO("username: " << name);
        CHECK(d->find_user(name).status == lookup_status::not_found);
    }
    directory_settings s = lab_settings();
    s.user_filter = "(&(objectClass=user)(|(sAMAccountName={username})(sAMAccountName=bob)))";
    const auto both = make_directory(std::move(s));
    CHECK(both->find_user("alice").status == lookup_status::ambiguous);
}

TEST_CASE("find_user: disabled, and protected through a nested group or adminCount",
          "[ldap][samba]") {
    auto d = lab_directory();
    const directory_user dave = must_find(*d, "dave");
    CHECK(dave.disabled);
    CHECK_FALSE(dave.is_protected);
    // erin is in helpdesk-admins, which is in tier0 (the protected group): nested only.
    const directory_user erin = must_find(*d, "erin");
    CHECK(erin.is_protected);
    CHECK_FALSE(erin.disabled);
    CHECK(lab::get().admin_read(erin.dn, "memberOf").find("tier0") == std::string::npos);
    const directory_user frank = must_find(*d, "frank");
    CHECK(frank.is_protected);

    // Without the protected group, erin is an ordinary user; without protect_admin_count,
    // frank is: each flag comes from its own rule.
    directory_settings no_groups = lab_settings();
    no_groups.protected_groups.clear();
    auto plain = make_directory(std::move(no_groups));
    CHECK_FALSE(must_find(*plain, "erin").is_protected);
    CHECK(must_find(*plain, "frank").is_protected);
    directory_settings no_admin_count = lab_settings();
    no_admin_count.protect_admin_count = false;
    auto d2 = make_directory(std::move(no_admin_count));
    CHECK_FALSE(must_find(*d2, "frank").is_protected);
    CHECK(must_find(*d2, "erin").is_protected);

    // A protected group given in another case and spacing still matches.
    directory_settings spaced = lab_settings();
    spaced.protected_groups = {"cn=TIER0, ou=People, dc=Example, dc=Test"};
    const auto d3 = make_directory(std::move(spaced));
    CHECK(must_find(*d3, "erin").is_protected);
}

TEST_CASE("find_user: a protected group that does not exist is reported", "[ldap][samba]") {
    const lab& l = lab::get();
    for (const char* group : {"CN=tier9,OU=people,DC=example,DC=test", "this is not a DN"}) {
        INFO("group: " << group);
        directory_settings s = lab_settings();
        s.protected_groups = {group, l["LAB_PROTECTED_GROUP"]};
        std::string log;
        lookup_result r;
        {
            stderr_capture capture;
            r = make_directory(std::move(s))->find_user("erin");
            log = capture.text();
        }
        // The DC answers the IN_CHAIN filter (nobody is in a group that does not exist), so
        // erin is still protected through tier0, and the operator is told about the typo.
        REQUIRE(r.status == lookup_status::found);
        CHECK(r.user->is_protected);
        CHECK(log.find("ldap.protected_group_missing") != std::string::npos);
    }
}

TEST_CASE("find_user: members of two_methods_groups, direct or nested, need two methods",
          "[ldap][samba]") {
    const lab& l = lab::get();
    const std::string mfa_two = "CN=mfa-two," + l["LAB_USER_BASE"];
    // Without the setting nobody does.
    auto plain = lab_directory();
    CHECK_FALSE(must_find(*plain, "erin").needs_two_methods);
    CHECK_FALSE(must_find(*plain, "gina").needs_two_methods);

    // tier0: erin only through helpdesk-admins (nested).
    directory_settings tier0 = lab_settings();
    tier0.protected_groups.clear();
    tier0.two_methods_groups = {l["LAB_PROTECTED_GROUP"]};
    auto d = make_directory(std::move(tier0));
    const directory_user erin = must_find(*d, "erin");
    CHECK(erin.needs_two_methods);
    CHECK_FALSE(erin.is_protected);  // the two lists are independent
    CHECK_FALSE(must_find(*d, "alice").needs_two_methods);
    CHECK_FALSE(must_find(*d, "gina").needs_two_methods);
    const directory_user frank = must_find(*d, "frank");  // adminCount=1: protected, no more
    CHECK(frank.is_protected);
    CHECK_FALSE(frank.needs_two_methods);

    // Both groups (one OR filter): gina is a direct member of mfa-two.
    directory_settings both = lab_settings();
    both.two_methods_groups = {l["LAB_PROTECTED_GROUP"], mfa_two};
    auto d2 = make_directory(std::move(both));
    const directory_user gina = must_find(*d2, "gina");
    CHECK(gina.needs_two_methods);
    CHECK_FALSE(gina.is_protected);
    const directory_user erin2 = must_find(*d2, "erin");
    CHECK(erin2.needs_two_methods);
    CHECK(erin2.is_protected);  // protected_groups still tier0
    CHECK_FALSE(must_find(*d2, "alice").needs_two_methods);
    CHECK_FALSE(must_find(*d2, "bob").needs_two_methods);
}

TEST_CASE("find_user: a two_methods group that does not exist is reported once", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.two_methods_groups = {"CN=mfa-nine,OU=people,DC=example,DC=test",
                            "CN=mfa-two," + l["LAB_USER_BASE"]};
    std::string log;
    lookup_result gina;
    lookup_result alice;
    {
        stderr_capture capture;
        auto d = make_directory(std::move(s));
        gina = d->find_user("gina");
        alice = d->find_user("alice");
        log = capture.text();
    }
    REQUIRE(gina.status == lookup_status::found);
    CHECK(gina.user->needs_two_methods);
    REQUIRE(alice.status == lookup_status::found);
    CHECK_FALSE(alice.user->needs_two_methods);
    CHECK(count_of(log, "event=ldap.two_methods_group_missing") == 1);
    CHECK(log.find("mfa-nine") != std::string::npos);
    CHECK(log.find("event=ldap.protected_group_missing") == std::string::npos);
}

TEST_CASE("verify_password: ok, wrong, empty, disabled", "[ldap][samba]") {
    auto d = lab_directory();
    const directory_user alice = must_find(*d, "alice");
    CHECK(d->verify_password(alice, secret(alice_password)) == bind_status::ok);
    CHECK(d->verify_password(alice, secret(alice_wrong)) == bind_status::invalid_credentials);
    CHECK(d->verify_password(alice, secret("")) == bind_status::invalid_credentials);
    CHECK(d->verify_password(alice, secret(alice_password)) == bind_status::ok);  // resets count
    const directory_user dave = must_find(*d, "dave");
    // data 533 (disabled): not a usable password.
    CHECK(d->verify_password(dave, secret(dave_password)) == bind_status::invalid_credentials);
}

TEST_CASE("reset_password: new binds, old does not; too short is refused", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user alice = must_find(*d, "alice");
    write_result r = d->reset_password(alice, secret(alice_new));
    CHECK(r.status == write_status::ok);
    CHECK_FALSE(r.unlocked);
    CHECK_FALSE(r.reason.has_value());
    CHECK(l.binds(alice.dn, alice_new));
    CHECK_FALSE(l.binds(alice.dn, alice_password));  // old password allowed period = 0
    CHECK(d->verify_password(alice, secret(alice_new)) == bind_status::ok);

    r = d->reset_password(alice, secret(alice_too_short));
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "min_length");
    CHECK(r.reason->detail.find("too short") != std::string::npos);
    CHECK(r.diagnostic.find("result=19") != std::string::npos);
    CHECK(r.diagnostic.find("ad=0000052D") != std::string::npos);
    CHECK(l.binds(alice.dn, alice_new));

    r = d->reset_password(alice, secret(""));
    CHECK(r.status == write_status::rejected);
    CHECK(l.binds(alice.dn, alice_new));
}

TEST_CASE("reset_password: quote, backslash, accent and emoji survive", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user alice = must_find(*d, "alice");
    REQUIRE(d->reset_password(alice, secret(alice_special)).status == write_status::ok);
    // Both our bind and ldapsearch's (raw UTF-8 bytes) get in: the DC stored exactly it.
    CHECK(d->verify_password(alice, secret(alice_special)) == bind_status::ok);
    CHECK(l.binds(alice.dn, alice_special));
    // Invalid UTF-8 never reaches the DC.
    const write_result bad = d->reset_password(alice, secret("Bad-\xC3-Passw0rd-1"));
    CHECK(bad.status == write_status::failed);
    CHECK(bad.diagnostic.find("UTF-8") != std::string::npos);
    CHECK(l.binds(alice.dn, alice_special));
}

TEST_CASE("require_policy_hints: Samba lists neither control, so the reset is refused",
          "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.require_policy_hints = true;
    std::string log;
    write_result r;
    directory_user alice;
    {
        stderr_capture capture;
        auto d = make_directory(std::move(s));
        alice = must_find(*d, "alice");
        r = d->reset_password(alice, secret(alice_after_hints));
        log = capture.text();
    }
    CHECK(r.status == write_status::failed);
    CHECK(r.diagnostic.find("policy-hints") != std::string::npos);
    CHECK(log.find("ldap.reset_refused_no_policy_hints") != std::string::npos);
    CHECK(log.find("ldap.ad_policy_hints_unsupported") != std::string::npos);
    CHECK(l.binds(alice.dn, alice_special));
    CHECK_FALSE(l.binds(alice.dn, alice_after_hints));
    // Without the requirement the same reset goes through (no control sent).
    auto relaxed = lab_directory();
    CHECK(relaxed->reset_password(alice, secret(alice_after_hints)).status == write_status::ok);
    CHECK(l.binds(alice.dn, alice_after_hints));
}

TEST_CASE("delegation: a service account without it cannot reset", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.bind_dn = l["LAB_UNDELEGATED_DN"];
    s.bind_password = secret(read_file(l["LAB_UNDELEGATED_PASSWORD_FILE"]));
    auto d = make_directory(std::move(s));
    const directory_user alice = must_find(*d, "alice");  // reading needs no delegation
    std::string log;
    write_result r;
    {
        stderr_capture capture;
        r = d->reset_password(alice, secret(alice_undelegated));
        log = capture.text();
    }
    CHECK(r.status == write_status::failed);
    CHECK(r.diagnostic.find("result=50") != std::string::npos);
    CHECK(log.find("Reset Password") != std::string::npos);  // the operator hint
    CHECK(l.binds(alice.dn, alice_after_hints));
    CHECK_FALSE(l.binds(alice.dn, alice_undelegated));
}

TEST_CASE("change_password: works, and policy refusals name the rule", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user bob = must_find(*d, "bob");
    write_result r = d->change_password(bob, secret(bob_password), secret(bob_new));
    CHECK(r.status == write_status::ok);
    CHECK(l.binds(bob.dn, bob_new));
    CHECK_FALSE(l.binds(bob.dn, bob_password));
    CHECK(l.binds(bob.dn, bob_new));  // clears the bad-password count

    r = d->change_password(bob, secret(bob_new), secret(bob_too_short));
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "min_length");

    r = d->change_password(bob, secret(bob_new), secret(bob_simple));
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "complexity");

    r = d->change_password(bob, secret(bob_new), secret(bob_password));  // in history
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "history");

    r = d->change_password(bob, secret(bob_new), secret(bob_new));  // the current one
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "history");

    r = d->change_password(bob, secret(bob_wrong), secret(bob_newer));
    CHECK(r.status == write_status::wrong_password);
    CHECK(r.diagnostic.find("ad=00000056") != std::string::npos);
    CHECK(d->change_password(bob, secret(""), secret(bob_newer)).status ==
          write_status::wrong_password);
    CHECK(l.binds(bob.dn, bob_new));
    CHECK_FALSE(l.binds(bob.dn, bob_newer));

    CHECK(d->change_password(bob, secret(bob_new), secret(bob_newer)).status == write_status::ok);
    CHECK(l.binds(bob.dn, bob_newer));
}

TEST_CASE("lockout: bad binds lock, a change says locked, a reset unlocks", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    directory_user carol = must_find(*d, "carol");
    REQUIRE_FALSE(carol.locked);
    for (int i = 0; i < 3; ++i) {
        CHECK(d->verify_password(carol, secret(carol_wrong)) == bind_status::invalid_credentials);
    }
    // data 775 now, even with the right password.
    CHECK(d->verify_password(carol, secret(carol_password)) == bind_status::locked);
    carol = must_find(*d, "carol");
    CHECK(carol.locked);
    CHECK(d->change_password(carol, secret(carol_password), secret(carol_changed)).status ==
          write_status::locked);

    // unlock_on_reset false: the reset works, the account stays locked (AD semantics).
    directory_settings keep_locked = lab_settings();
    keep_locked.unlock_on_reset = false;
    write_result r =
        make_directory(std::move(keep_locked))->reset_password(carol, secret(carol_new));
    CHECK(r.status == write_status::ok);
    CHECK_FALSE(r.unlocked);
    CHECK(d->verify_password(carol, secret(carol_new)) == bind_status::locked);

    r = d->reset_password(carol, secret(carol_changed));
    CHECK(r.status == write_status::ok);
    CHECK(r.unlocked);
    CHECK_FALSE(must_find(*d, "carol").locked);
    CHECK(d->verify_password(carol, secret(carol_changed)) == bind_status::ok);
    CHECK(l.binds(carol.dn, carol_changed));
    // Resetting an account that is not locked reports nothing unlocked.
    r = d->reset_password(carol, secret(carol_new));
    CHECK(r.status == write_status::ok);
    CHECK_FALSE(r.unlocked);
}

TEST_CASE("force_change_at_next_logon: must_change on bind, change still works", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.force_change_at_next_logon = true;
    auto d = make_directory(std::move(s));
    const directory_user gina = must_find(*d, "gina");
    CHECK(d->reset_password(gina, secret(gina_new)).status == write_status::ok);
    CHECK(l.admin_read(gina.dn, "pwdLastSet").find("pwdLastSet: 0\n") != std::string::npos);
    CHECK(d->verify_password(gina, secret(gina_new)) == bind_status::must_change);  // data 773
    CHECK_FALSE(l.binds(gina.dn, gina_new));
    // The change is done by the service account (delete + add), so it works although gina
    // cannot bind.
    const write_result r = d->change_password(gina, secret(gina_new), secret(gina_changed));
    CHECK(r.status == write_status::ok);
    CHECK(d->verify_password(gina, secret(gina_changed)) == bind_status::ok);
    CHECK(l.binds(gina.dn, gina_changed));
}

TEST_CASE("disabled and protected accounts are never written", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user dave = must_find(*d, "dave");
    const directory_user erin = must_find(*d, "erin");
    const directory_user frank = must_find(*d, "frank");
    const std::string dave_last_set = l.admin_read(dave.dn, "pwdLastSet");
    REQUIRE(dave_last_set.find("pwdLastSet: ") != std::string::npos);

    for (const directory_user* u : {&dave, &erin, &frank}) {
        INFO("user: " << u->username);
        CHECK(d->reset_password(*u, secret(whatever)).status == write_status::failed);
    }
    CHECK(d->change_password(dave, secret(dave_password), secret(dave_new)).status ==
          write_status::failed);
    CHECK(d->change_password(erin, secret(erin_password), secret(erin_new)).status ==
          write_status::failed);
    CHECK(d->change_password(frank, secret(frank_password), secret(frank_new)).status ==
          write_status::failed);

    CHECK(l.admin_read(dave.dn, "pwdLastSet") == dave_last_set);
    CHECK(must_find(*d, "dave").disabled);
    CHECK(l.binds(erin.dn, erin_password));
    CHECK(l.binds(frank.dn, frank_password));
    CHECK_FALSE(l.binds(erin.dn, whatever));
}

TEST_CASE("failover: a dead first URI, then the DC", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.uris = {"ldaps://127.0.0.1:" + std::to_string(free_port()), l["LAB_LDAPS_URI"]};
    s.timeout_ms = 2000;
    auto d = make_directory(std::move(s));
    const directory_user bob = must_find(*d, "bob");
    CHECK(d->ping());
    CHECK(d->verify_password(bob, secret(bob_newer)) == bind_status::ok);
}

TEST_CASE("a dead DC: unavailable", "[ldap][samba]") {
    directory_settings s = lab_settings();
    s.uris = {"ldaps://127.0.0.1:" + std::to_string(free_port())};
    s.timeout_ms = 1000;
    auto d = make_directory(std::move(s));
    directory_user user;
    user.dn = lab::get().user_dn("bob");
    CHECK(d->find_user("bob").status == lookup_status::unavailable);
    CHECK(d->reset_password(user, secret(whatever)).status == write_status::unavailable);
    CHECK(d->change_password(user, secret(whatever), secret(whatever)).status ==
          write_status::unavailable);
    CHECK(d->verify_password(user, secret(whatever)) == bind_status::unavailable);
    CHECK_FALSE(d->ping());
}

TEST_CASE("a wrong CA: unavailable, whatever the environment says", "[ldap][samba]") {
    const lab& l = lab::get();
    REQUIRE(std::string(std::getenv("LDAPTLS_REQCERT")) == "never");
    const fs::path other_key = l.dir() / "other-ca.key";
    const fs::path other_ca = l.dir() / "other-ca.crt";
    REQUIRE(run_shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                      " -keyout " +
                      shell_quote(other_key.string()) + " -out " + shell_quote(other_ca.string()) +
                      " -days 1 -subj /CN=other >/dev/null 2>&1") == 0);
    for (const bool start_tls : {false, true}) {
        INFO("start_tls: " << start_tls);
        directory_settings s = lab_settings();
        s.ca_file = other_ca.string();
        if (start_tls) {
            s.uris = {l["LAB_LDAP_URI"]};
            s.start_tls = true;
        }
        auto d = make_directory(std::move(s));
        CHECK(d->find_user("alice").status == lookup_status::unavailable);
        directory_user user;
        user.dn = l.user_dn("bob");
        CHECK(d->verify_password(user, secret(bob_newer)) == bind_status::unavailable);
    }
}

TEST_CASE("ldap:// with StartTLS works; without it nothing is sent", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.uris = {l["LAB_LDAP_URI"]};
    s.start_tls = true;
    auto d = make_directory(std::move(s));
    const directory_user bob = must_find(*d, "bob");
    CHECK(d->verify_password(bob, secret(bob_newer)) == bind_status::ok);
    CHECK(d->ping());

    directory_settings plain = lab_settings();
    plain.uris = {l["LAB_LDAP_URI"]};
    plain.start_tls = false;
    auto refused = make_directory(std::move(plain));
    CHECK(refused->find_user("bob").status == lookup_status::unavailable);
    CHECK(refused->verify_password(bob, secret(bob_newer)) == bind_status::unavailable);
}

TEST_CASE("no password ever reaches the log", "[ldap][samba]") {
    const lab& l = lab::get();
    const std::string svc_password = read_file(l["LAB_SVC_PASSWORD_FILE"]);
    const char* wrong = "Log-Wrong-Passw0rd-7";
    const char* shorty = "L0g-short";
    const char* fresh = "Log-Fresh-Passw0rd-8";
    std::string log;
    {
        stderr_capture capture;
        auto d = lab_directory();
        const directory_user bob = must_find(*d, "bob");
        d->verify_password(bob, secret(wrong));
        d->reset_password(bob, secret(shorty));
        d->change_password(bob, secret(wrong), secret(fresh));
        d->change_password(bob, secret(bob_newer), secret(shorty));
        log = capture.text();
    }
    CHECK_FALSE(log.empty());
    CHECK(log.find(svc_password) == std::string::npos);
    CHECK(log.find(wrong) == std::string::npos);
    CHECK(log.find(shorty) == std::string::npos);
    CHECK(log.find(fresh) == std::string::npos);
    CHECK(log.find(bob_newer) == std::string::npos);
}
