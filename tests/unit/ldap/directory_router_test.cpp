#include "ldap/directory_router.hpp"

#include <catch2/catch.hpp>

#include "fakes/fake_directory.hpp"

using namespace pwresetd;
using pwresetd::testing::fake_directory;

TEST_CASE("split_domain understands UPN and down-level names", "[directory_router]") {
    using p = std::pair<std::string, std::string>;
    CHECK(ldap::split_domain("alice@example.test") == p{"example.test", "alice"});
    CHECK(ldap::split_domain("EXAMPLE\\alice") == p{"EXAMPLE", "alice"});
    CHECK(ldap::split_domain("alice") == p{"", "alice"});
    CHECK(ldap::split_domain("@example.test") == p{"", "@example.test"});
    CHECK(ldap::split_domain("alice@") == p{"", "alice@"});
    CHECK(ldap::split_domain("\\alice") == p{"", "\\alice"});
    CHECK(ldap::split_domain("a@b@c.test") == p{"c.test", "a@b"});
}

TEST_CASE("usernames are routed by domain; calls go to the user's directory",
          "[directory_router]") {
    auto corp = std::make_unique<fake_directory>();
    auto lab = std::make_unique<fake_directory>();
    corp->add("alice", "corp-password-1");
    lab->add("alice", "lab-password-1");
    lab->add("bob", "lab-password-2");
    fake_directory* corp_raw = corp.get();
    fake_directory* lab_raw = lab.get();
    std::vector<ldap::routed_directory> backends;
    backends.push_back({"corp", {"corp.example.test", "CORP"}, std::move(corp)});
    backends.push_back({"lab", {"lab.example.test", "LAB"}, std::move(lab)});
    const auto router = ldap::make_router(std::move(backends));

    auto r = router->find_user("alice@LAB.example.test");
    REQUIRE(r.status == ldap::lookup_status::found);
    CHECK(r.user->directory == "lab");
    CHECK(router->verify_password(*r.user, secret("lab-password-1")) == ldap::bind_status::ok);
    CHECK(router->verify_password(*r.user, secret("corp-password-1")) ==
          ldap::bind_status::invalid_credentials);

    r = router->find_user("corp\\alice");
    REQUIRE(r.status == ldap::lookup_status::found);
    CHECK(r.user->directory == "corp");
    CHECK(router->reset_password(*r.user, secret("New-corp-password-1")).status ==
          ldap::write_status::ok);
    CHECK(corp_raw->password_of("alice") == "New-corp-password-1");
    CHECK(lab_raw->password_of("alice") == "lab-password-1");

    // Bare names go to the first directory; bob lives only in lab.
    r = router->find_user("alice");
    CHECK(r.user->directory == "corp");
    CHECK(router->find_user("bob").status == ldap::lookup_status::not_found);
    CHECK(router->find_user("bob@lab.example.test").status == ldap::lookup_status::found);
    // An unlisted domain is searched in the first directory with the whole name.
    CHECK(router->find_user("alice@elsewhere.test").status == ldap::lookup_status::not_found);

    // An unlock goes to the user's directory too.
    lab_raw->user_of("alice").locked = true;
    corp_raw->user_of("alice").locked = true;
    r = router->find_user("LAB\\alice");
    REQUIRE(r.status == ldap::lookup_status::found);
    CHECK(router->unlock_account(*r.user).unlocked);
    CHECK_FALSE(lab_raw->user_of("alice").locked);
    CHECK(corp_raw->user_of("alice").locked);

    CHECK(router->ping());
    lab_raw->down = true;
    CHECK_FALSE(router->ping());
    CHECK(router->find_user("bob@lab.example.test").status == ldap::lookup_status::unavailable);
}

TEST_CASE("every spelling that finds one entry has one lookup key, found or not",
          "[directory_router][security]") {
    std::vector<ldap::routed_directory> backends;
    backends.push_back({"corp", {"corp.example.test", "corp"}, std::make_unique<fake_directory>()});
    backends.push_back({"lab", {"lab.example.test", "lab"}, std::make_unique<fake_directory>()});
    const auto router = ldap::make_router(std::move(backends));
    // Made-up names: the key must not depend on whether the name exists, only on the route.
    for (const std::string name : {"nosuchuser", "alice"}) {
        INFO(name);
        const auto key = router->lookup_key(name);
        CHECK(router->lookup_key(name + "@corp.example.test") == key);
        CHECK(router->lookup_key("corp\\" + name) == key);
        CHECK(router->lookup_key("lab\\" + name) == router->lookup_key(name + "@lab.example.test"));
        CHECK(router->lookup_key("lab\\" + name) != key);
        CHECK(router->lookup_key(name + "@elsewhere.test") != key);
        CHECK(router->lookup_key(name).starts_with(name));  // decoy hints start like the name
    }
    // A single directory searches the name as given.
    fake_directory single;
    CHECK(single.lookup_key("corp\\alice") == "corp\\alice");
}

TEST_CASE("unlock_on_reset is the setting of the user's directory", "[directory_router]") {
    auto corp = std::make_unique<fake_directory>();
    auto lab = std::make_unique<fake_directory>();
    corp->add("alice", "corp-password-1");
    lab->add("alice", "lab-password-1");
    lab->unlock_settings[""] = false;
    fake_directory* corp_raw = corp.get();
    fake_directory* lab_raw = lab.get();
    std::vector<ldap::routed_directory> backends;
    backends.push_back({"corp", {"corp.example.test"}, std::move(corp)});
    backends.push_back({"lab", {"lab.example.test"}, std::move(lab)});
    const auto router = ldap::make_router(std::move(backends));

    const auto in_corp = router->find_user("alice@corp.example.test");
    const auto in_lab = router->find_user("alice@lab.example.test");
    REQUIRE(in_corp.user);
    REQUIRE(in_lab.user);
    CHECK(router->unlock_on_reset(*in_corp.user));
    CHECK_FALSE(router->unlock_on_reset(*in_lab.user));
    CHECK(router->any_unlock_on_reset());
    corp_raw->unlock_settings[""] = false;
    CHECK_FALSE(router->unlock_on_reset(*in_corp.user));
    CHECK_FALSE(router->any_unlock_on_reset());
    lab_raw->unlock_settings[""] = true;
    CHECK(router->unlock_on_reset(*in_lab.user));
    CHECK(router->any_unlock_on_reset());
}
