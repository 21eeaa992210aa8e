#include "daemon/change_service.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

#include "fakes/fake_directory.hpp"
#include "store/state_store.hpp"
#include "support/temp_dir.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;

namespace {

struct change_harness {
    testing::temp_dir dir{"pwresetd-chg"};
    config cfg;
    testing::fake_directory directory;
    policy::password_policy policy{policy::settings{}};
    std::unique_ptr<store::state_store> state;
    std::unique_ptr<audit_log> audit;
    std::int64_t now = 1'700'000'000;
    std::unique_ptr<change_service> changes;
    request_context ctx{"req-2", "portal", "192.0.2.2"};

    change_harness() {
        cfg.limits.verify_failures = 3;
        cfg.limits.lockout_s = 600;
        state = store::open_sqlite_store(dir / "state.db", secret(std::string(32, 'k')));
        audit = std::make_unique<audit_log>(dir / "audit.jsonl");
        changes = std::make_unique<change_service>(cfg, policy, directory, *state, *audit,
                                                   [this] { return now; });
        directory.add("alice", "Alice-Old-Passw0rd!");
        directory.add("dave", "Dave-Old-Passw0rd!", false, /*disabled=*/true);
        directory.add("erin", "Erin-Old-Passw0rd!", false, false, /*is_protected=*/true);
        directory.add("carol", "Carol-Old-Passw0rd!", /*locked=*/true);
    }

    outcome<bool> change(const std::string& user, const std::string& current,
                         const std::string& next) {
        return changes->change(ctx, user, secret(current), secret(next));
    }
};

failure_code code_of(const outcome<bool>& o) {
    return std::get<failure>(o).code;
}

}  // namespace

TEST_CASE("a change with the right current password writes the new one", "[change_service]") {
    change_harness h;
    REQUIRE(std::holds_alternative<bool>(
        h.change("alice", "Alice-Old-Passw0rd!", "Quiet-River-Stone-41")));
    CHECK(h.directory.password_of("alice") == "Quiet-River-Stone-41");
}

TEST_CASE("wrong, unknown, disabled and protected all answer invalid_credentials",
          "[change_service]") {
    change_harness h;
    CHECK(code_of(h.change("alice", "wrong", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    CHECK(code_of(h.change("nobody", "x", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    CHECK(code_of(h.change("dave", "Dave-Old-Passw0rd!", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    CHECK(code_of(h.change("erin", "Erin-Old-Passw0rd!", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    CHECK(h.directory.password_of("dave") == "Dave-Old-Passw0rd!");
    CHECK(h.directory.password_of("erin") == "Erin-Old-Passw0rd!");
    CHECK(h.directory.writes == 0);
}

TEST_CASE("wrong current passwords lock the change for lockout_s", "[change_service]") {
    change_harness h;
    CHECK(code_of(h.change("alice", "wrong-1", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    CHECK(code_of(h.change("alice", "wrong-2", "Quiet-River-Stone-41")) ==
          failure_code::invalid_credentials);
    auto third = h.change("alice", "wrong-3", "Quiet-River-Stone-41");
    REQUIRE(code_of(third) == failure_code::locked);
    CHECK(std::get<failure>(third).retry_after == 600);
    CHECK(code_of(h.change("alice", "Alice-Old-Passw0rd!", "Quiet-River-Stone-41")) ==
          failure_code::locked);
    CHECK(h.directory.password_of("alice") == "Alice-Old-Passw0rd!");
    h.now += 601;
    CHECK(std::holds_alternative<bool>(
        h.change("alice", "Alice-Old-Passw0rd!", "Quiet-River-Stone-41")));
}

TEST_CASE("directory refusals and outages come back as values", "[change_service]") {
    change_harness h;
    // The directory says "locked" whatever the password (AD data 775, ppolicy), so it is no
    // proof: the answer is the one for a wrong password, and it counts.
    auto locked = h.change("carol", "Carol-Old-Passw0rd!", "Quiet-River-Stone-41");
    REQUIRE(code_of(locked) == failure_code::invalid_credentials);
    auto weak = h.change("alice", "Alice-Old-Passw0rd!", "short");
    REQUIRE(code_of(weak) == failure_code::password_rejected);
    CHECK(std::get<failure>(weak).violations.at(0).rule == "min_length");
    CHECK(code_of(h.change("alice", "Alice-Old-Passw0rd!", "")) == failure_code::password_rejected);
    h.directory.down = true;
    CHECK(code_of(h.change("alice", "Alice-Old-Passw0rd!", "Quiet-River-Stone-41")) ==
          failure_code::directory_unavailable);
    CHECK(code_of(h.change(std::string(300, 'a'), "x", "y")) == failure_code::bad_request);
}
