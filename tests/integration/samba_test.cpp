// The Active Directory directory against a real Samba AD domain controller
// (tests/lab/samba.sh), one lab per test binary, always stopped and removed at exit: the
// directory contract (tests/unit/ldap/directory_contract.hpp), then what only AD does. The
// DC's ports are fixed, so this binary runs inside a private network namespace
// (tests/lab/in-netns.sh; ctest does that). The service account is the delegated,
// non-administrator svc-pwreset. Nothing here prints a password.
//
// Lockout is 3 bad passwords: every test keeps each user below that between good binds,
// except the ones that lock an account on purpose.
#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "integration/lab.hpp"
#include "ldap/ad_password.hpp"
#include "ldap/directory.hpp"
#include "support/stderr_capture.hpp"
#include "unit/ldap/directory_contract.hpp"

using namespace pwresetd;
using namespace pwresetd::ldap;
using namespace pwresetd::testing;

namespace {

// Passwords are named so that a failed CHECK echoes a name, never the value.
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
constexpr const char* bob_simple = "alllowercaselongpassword";
constexpr const char* carol_wrong = "Carol-Wrong-Passw0rd!";
constexpr const char* carol_new = "Carol-New-Passw0rd-1";
constexpr const char* carol_changed = "Carol-Changed-Passw0rd-2";
constexpr const char* dave_password = "Dave-Old-Passw0rd!";
constexpr const char* frank_password = "Frank-Old-Passw0rd!";
constexpr const char* frank_new = "Frank-New-Passw0rd-1";
constexpr const char* gina_new = "Gina-New-Passw0rd-1";
constexpr const char* gina_changed = "Gina-Changed-Passw0rd-2";
constexpr const char* whatever = "Whatever-Passw0rd-1";

// The lab: started on first use, stopped and removed when the test binary exits (also
// after failed tests: a function-local static).
class lab : public lab_process {
public:
    static lab& get() {
        static lab instance;
        return instance;
    }
    [[nodiscard]] std::string user_dn(const std::string& cn) const {
        return "CN=" + cn + "," + (*this)["LAB_USER_BASE"];
    }
    // ldapsearch, not ldapwhoami: Samba has no whoami exop (LAB.md).
    [[nodiscard]] bool binds(const std::string& dn, const std::string& password) const {
        return binds_with("ldapsearch", dn, password, "-s base -b " + shell_quote(dn) + " dn");
    }

    // A new enabled user in OU=people (so the delegation is inherited), added by the
    // Administrator with its password: unicodePwd, quoted UTF-16LE, from a 0600 file.
    void add_contract_user(const std::string& name, const std::string& password) const {
        const auto value = encode_unicode_pwd(password);
        if (!value) {
            throw std::invalid_argument("add_contract_user: the password is not UTF-8");
        }
        const fs::path file = dir() / "unicode-pwd.bin";
        const auto bytes = value->bytes();
        write_private_file(
            file, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        const std::string dn = user_dn(name);
        admin_apply("dn: " + dn + "\nchangetype: add\nobjectClass: user\n" +
                    "sAMAccountName: " + name + "\nuserPrincipalName: " + name +
                    "@example.test\nmail: " + name + "@example.test\nmobile: " + contract::phone +
                    "\ndisplayName: " + contract::display_name + "\nunicodePwd:< file://" +
                    file.string() + "\nuserAccountControl: 512\n\n");
        fs::remove(file);
    }

private:
    lab()
        : lab_process("samba.sh", "pwresetd-samba",
                      " (run this binary through tests/lab/in-netns.sh)") {
        WARN("Samba lab ready in " << start_seconds() << " s");
    }
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

using contract::must_find;

using samba_backend = lab_backend<lab, lab_settings>;

bool is_lower_hex(const std::string& s) {
    return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

TEST_CASE("Samba AD meets the directory contract", "[ldap][samba][contract]") {
    contract::run_directory_contract<samba_backend>();
}

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
    const auto named_directory = make_directory(std::move(named));
    CHECK(must_find(*named_directory, "alice").directory == "corp");
}

TEST_CASE("find_user: a filter that matches two entries is ambiguous", "[ldap][samba]") {
    directory_settings s = lab_settings();
    s.user_filter = "(&(objectClass=user)(|(sAMAccountName={username})(sAMAccountName=bob)))";
    const lookup_result r = make_directory(std::move(s))->find_user("alice");
    CHECK(r.status == lookup_status::ambiguous);
    CHECK_FALSE(r.user.has_value());
}

TEST_CASE("find_user: disabled, and protected through a nested group or adminCount",
          "[ldap][samba]") {
    auto d = lab_directory();
    const directory_user dave = must_find(*d, "dave");
    CHECK(dave.disabled);
    CHECK_FALSE(dave.is_protected);
    // data 533 (disabled): not a usable password.
    CHECK(d->verify_password(dave, secret(dave_password)) == bind_status::invalid_credentials);
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
    const auto spaced_directory = make_directory(std::move(spaced));
    CHECK(must_find(*spaced_directory, "erin").is_protected);
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

TEST_CASE("reset_password: the refusal names the rule and keeps AD's code", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user alice = must_find(*d, "alice");
    REQUIRE(d->reset_password(alice, secret(alice_new)).status == write_status::ok);
    const write_result r = d->reset_password(alice, secret(alice_too_short));
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "min_length");
    CHECK(r.reason->detail.find("too short") != std::string::npos);
    CHECK(r.diagnostic.find("result=19") != std::string::npos);
    CHECK(r.diagnostic.find("ad=0000052D") != std::string::npos);
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

TEST_CASE("change_password: complexity is named; a wrong password is 00000056", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user bob = must_find(*d, "bob");
    REQUIRE(d->change_password(bob, secret(bob_password), secret(bob_new)).status ==
            write_status::ok);
    write_result r = d->change_password(bob, secret(bob_new), secret(bob_simple));
    CHECK(r.status == write_status::rejected);
    REQUIRE(r.reason.has_value());
    CHECK(r.reason->rule == "complexity");

    r = d->change_password(bob, secret(bob_wrong), secret(bob_newer));
    CHECK(r.status == write_status::wrong_password);
    CHECK(r.diagnostic.find("ad=00000056") != std::string::npos);
    CHECK(l.binds(bob.dn, bob_new));  // clears the bad-password count
    CHECK_FALSE(l.binds(bob.dn, bob_newer));

    CHECK(d->change_password(bob, secret(bob_new), secret(bob_newer)).status == write_status::ok);
    CHECK(l.binds(bob.dn, bob_newer));
}

TEST_CASE("lockout: with unlock_on_reset false a reset leaves the account locked",
          "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    directory_user carol = must_find(*d, "carol");
    REQUIRE_FALSE(carol.locked);
    for (int i = 0; i < 3; ++i) {
        CHECK(d->verify_password(carol, secret(carol_wrong)) == bind_status::invalid_credentials);
    }
    carol = must_find(*d, "carol");
    REQUIRE(carol.locked);
    // An administrator reset does not unlock an AD account; lockoutTime 0 does.
    directory_settings keep_locked = lab_settings();
    keep_locked.unlock_on_reset = false;
    write_result r =
        make_directory(std::move(keep_locked))->reset_password(carol, secret(carol_new));
    CHECK(r.status == write_status::ok);
    CHECK_FALSE(r.unlocked);
    CHECK(must_find(*d, "carol").locked);
    CHECK(d->verify_password(carol, secret(carol_new)) == bind_status::locked);

    r = d->reset_password(carol, secret(carol_changed));
    CHECK(r.status == write_status::ok);
    CHECK(r.unlocked);
    CHECK(l.admin_read(carol.dn, "lockoutTime").find("lockoutTime: 0\n") != std::string::npos);
    CHECK(l.binds(carol.dn, carol_changed));
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

TEST_CASE("adminCount and disabled accounts are never written", "[ldap][samba]") {
    const lab& l = lab::get();
    auto d = lab_directory();
    const directory_user dave = must_find(*d, "dave");
    const directory_user frank = must_find(*d, "frank");
    REQUIRE(frank.is_protected);  // adminCount=1
    const std::string dave_last_set = l.admin_read(dave.dn, "pwdLastSet");
    REQUIRE(dave_last_set.find("pwdLastSet: ") != std::string::npos);

    CHECK(d->reset_password(frank, secret(frank_new)).status == write_status::failed);
    CHECK(d->change_password(frank, secret(frank_password), secret(frank_new)).status ==
          write_status::failed);
    CHECK(d->reset_password(dave, secret(whatever)).status == write_status::failed);

    CHECK(l.admin_read(dave.dn, "pwdLastSet") == dave_last_set);
    CHECK(l.binds(frank.dn, frank_password));
    CHECK_FALSE(l.binds(frank.dn, frank_new));
}

TEST_CASE("failover: a dead first URI, then the DC", "[ldap][samba]") {
    const lab& l = lab::get();
    directory_settings s = lab_settings();
    s.uris = {"ldaps://127.0.0.1:" + std::to_string(closed_port()), l["LAB_LDAPS_URI"]};
    s.timeout_ms = 2000;
    auto d = make_directory(std::move(s));
    const directory_user bob = must_find(*d, "bob");
    CHECK(d->ping());
    CHECK(d->verify_password(bob, secret(bob_newer)) == bind_status::ok);
}
