// The fake directory the service tests use (tests/fakes/fake_directory.hpp) against the
// directory contract that the real slapd and Samba AD meet too.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_directory.hpp"
#include "unit/ldap/directory_contract.hpp"

namespace {

using namespace pwresetd;
using pwresetd::testing::fake_directory;

// The fake behind a directory handle: open() hands out views of one shared fake, as a
// real directory's handles all see one server.
class fake_view final : public ldap::directory {
public:
    explicit fake_view(fake_directory& fake) : fake_(fake) {}
    ldap::lookup_result find_user(std::string_view username) override {
        return fake_.find_user(username);
    }
    ldap::bind_status verify_password(const ldap::directory_user& user,
                                      const secret& password) override {
        return fake_.verify_password(user, password);
    }
    ldap::write_result reset_password(const ldap::directory_user& user,
                                      const secret& new_password) override {
        return fake_.reset_password(user, new_password);
    }
    ldap::write_result change_password(const ldap::directory_user& user, const secret& current,
                                       const secret& new_password) override {
        return fake_.change_password(user, current, new_password);
    }
    bool ping() override { return fake_.ping(); }
    ldap::write_result unlock_account(const ldap::directory_user& user) override {
        return fake_.unlock_account(user);
    }

private:
    fake_directory& fake_;
};

struct fake_backend {
    fake_backend() {
        fake.max_failures = 3;  // the labs' lockout policy
        down_fake.down = true;
        for (auto* f : {&fake, &down_fake}) {
            f->add("dave", "Dave-Old-Passw0rd!", false, /*disabled=*/true);
            f->add("erin", "Erin-Old-Passw0rd!", false, false, /*is_protected=*/true);
        }
        scratch_dir = std::filesystem::temp_directory_path() /
                      ("pwresetd-fake-contract-" + std::to_string(::getpid()));
        std::filesystem::create_directories(scratch_dir);
    }
    ~fake_backend() {
        std::error_code ec;
        std::filesystem::remove_all(scratch_dir, ec);
    }
    fake_backend(const fake_backend&) = delete;
    fake_backend& operator=(const fake_backend&) = delete;

    std::unique_ptr<ldap::directory> open() { return std::make_unique<fake_view>(fake); }
    std::unique_ptr<ldap::directory> open_down() { return std::make_unique<fake_view>(down_fake); }
    std::string add_user(const std::string& password) {
        std::string name = "contract-" + std::to_string(++added);
        for (auto* f : {&fake, &down_fake}) {
            f->add(name, password);
            auto& user = f->user_of(name);
            user.email = name + "@example.test";
            user.phone = ldap::contract::phone;
            user.display_name = ldap::contract::display_name;
        }
        return name;
    }
    bool binds(const ldap::directory_user& user, const std::string& password) {
        const auto& e = fake.at(user.username);
        return e.password == password && !e.user.locked && !e.user.disabled;
    }
    static ldap::contract::known_user disabled_user() { return {"dave", "Dave-Old-Passw0rd!"}; }
    static ldap::contract::known_user protected_user() { return {"erin", "Erin-Old-Passw0rd!"}; }
    static std::vector<std::string> secrets() { return {}; }
    [[nodiscard]] const std::filesystem::path& scratch() const { return scratch_dir; }

    fake_directory fake;
    fake_directory down_fake;  // the same users, "no server answers"
    int added = 0;
    std::filesystem::path scratch_dir;
};

}  // namespace

TEST_CASE("the fake directory meets the directory contract", "[ldap][contract][fake]") {
    ldap::contract::run_directory_contract<fake_backend>();
}

TEST_CASE("the fake directory: no lockout policy unless asked", "[ldap][fake]") {
    fake_directory fake;
    fake.add("alice", "Alice-Old-Passw0rd!");
    const auto alice = *fake.find_user("alice").user;
    for (int i = 0; i < 5; ++i) {
        CHECK(fake.verify_password(alice, secret("Wrong-Passw0rd-1")) ==
              ldap::bind_status::invalid_credentials);
    }
    CHECK(fake.verify_password(alice, secret("Alice-Old-Passw0rd!")) == ldap::bind_status::ok);
}
