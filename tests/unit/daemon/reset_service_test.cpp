#include "daemon/reset_service.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "daemon/enrollment_service.hpp"
#include "factors/totp.hpp"
#include "fakes/fake_directory.hpp"
#include "store/state_store.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;

namespace {

struct temp_folder {
    std::filesystem::path path;
    temp_folder() {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / "pwresetd-svc-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~temp_folder() { std::filesystem::remove_all(path); }
};

struct harness {
    temp_folder dir;
    config cfg;
    testing::fake_directory directory;
    policy::password_policy policy{policy::settings{}};
    std::unique_ptr<store::state_store> state;
    std::unique_ptr<audit_log> audit;
    std::int64_t now = 1'700'000'000;
    std::unique_ptr<reset_service> resets;
    std::unique_ptr<enrollment_service> enrollments;
    request_context ctx{"req-1", "portal", "192.0.2.1"};

    harness() {
        cfg.limits.verify_failures = 3;
        cfg.limits.lockout_s = 900;
        cfg.limits.reset_ttl_s = 900;
        state = store::open_sqlite_store(dir.path / "state.db", secret(std::string(32, 'k')));
        audit = std::make_unique<audit_log>(dir.path / "audit.jsonl");
        auto clock = [this] { return now; };
        resets = std::make_unique<reset_service>(cfg, policy, directory, *state, *audit, clock);
        enrollments = std::make_unique<enrollment_service>(cfg, directory, *state, *audit, clock);
        directory.add("alice", "Alice-Old-Passw0rd!");
        directory.add("bob", "Bob-Old-Passw0rd!");
    }

    // Enrolls the user through the service and returns the TOTP key.
    secret enroll(const std::string& username, const std::string& password) {
        auto started = enrollments->start_totp(ctx, username, secret(password));
        REQUIRE(std::holds_alternative<totp_enrollment_started>(started));
        const auto& s = std::get<totp_enrollment_started>(started);
        auto key = factors::base32_decode(s.secret_base32);
        REQUIRE(key.has_value());
        auto confirmed = enrollments->confirm_totp(ctx, s.enrollment_id, code(*key, 0));
        REQUIRE(std::holds_alternative<bool>(confirmed));
        return std::move(*key);
    }

    // The code for the current step plus `offset` steps.
    std::string code(const secret& key, int offset) const {
        return factors::hotp(key.bytes(),
                             static_cast<std::uint64_t>(factors::totp_step(now, 30) + offset), 6,
                             factors::totp_algorithm::sha1);
    }

    std::string start(const std::string& username) {
        auto r = resets->start(ctx, username);
        REQUIRE(std::holds_alternative<reset_started>(r));
        return std::get<reset_started>(r).reset_id;
    }

    std::string audit_text() const {
        std::ifstream in(dir.path / "audit.jsonl");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
};

failure_code code_of(const auto& outcome) {
    return std::get<failure>(outcome).code;
}

}  // namespace

TEST_CASE("real and decoy flows look the same to the caller", "[reset_service]") {
    harness h;
    h.enroll("alice", "Alice-Old-Passw0rd!");
    for (const std::string name : {"alice", "nobody", "bob"}) {  // bob has no authenticator
        auto r = h.resets->start(h.ctx, name);
        REQUIRE(std::holds_alternative<reset_started>(r));
        const auto& s = std::get<reset_started>(r);
        CHECK(s.reset_id.size() == 43);
        CHECK(plausible_opaque_id(s.reset_id));
        CHECK(s.expires_in == 900);
        CHECK(s.methods == std::vector<std::string>{"totp"});
        CHECK(s.required_methods == 1);
    }
    const auto audit = h.audit_text();
    CHECK(audit.find("\"reason\":\"unknown_user\"") != std::string::npos);
    CHECK(audit.find("\"reason\":\"no_method_enrolled\"") != std::string::npos);
}

TEST_CASE("a verified flow resets the password once", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;  // the enrollment consumed the previous step
    const auto id = h.start("alice");

    auto early = h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"));
    REQUIRE(code_of(early) == failure_code::verification_required);
    CHECK(std::get<failure>(early).remaining_methods == 1);

    auto verified = h.resets->verify(h.ctx, id, "totp", h.code(key, 0));
    REQUIRE(std::holds_alternative<reset_verified>(verified));
    CHECK(std::get<reset_verified>(verified).verified_methods == std::vector<std::string>{"totp"});
    CHECK(std::get<reset_verified>(verified).remaining_methods == 0);

    // pwresetd's own policy refuses first, with every violation, and the directory is not
    // asked.
    auto short_pw = h.resets->complete(h.ctx, id, secret("alice"));
    REQUIRE(code_of(short_pw) == failure_code::password_rejected);
    const auto& violations = std::get<failure>(short_pw).violations;
    REQUIRE(violations.size() == 2);
    CHECK(violations[0].rule == "min_length");
    CHECK(violations[0].value == 12);
    CHECK(violations[1].rule == "contains_username");
    auto empty = h.resets->complete(h.ctx, id, secret(""));
    REQUIRE(code_of(empty) == failure_code::password_rejected);
    CHECK(h.directory.writes == 0);

    // The directory's own refusal (its policy is stricter here) comes back as a violation.
    h.directory.min_length = 30;
    auto refused = h.resets->complete(h.ctx, id, secret("Gentle-Harbor-Lamp-77"));
    REQUIRE(code_of(refused) == failure_code::password_rejected);
    CHECK(std::get<failure>(refused).violations.at(0).rule == "min_length");
    CHECK(h.directory.writes == 1);
    CHECK(h.directory.password_of("alice") == "Alice-Old-Passw0rd!");
    h.directory.min_length = 12;

    auto done = h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"));
    REQUIRE(std::holds_alternative<reset_completed>(done));
    CHECK(h.directory.password_of("alice") == "New-Passw0rd-2024!");

    CHECK(code_of(h.resets->complete(h.ctx, id, secret("Other-Passw0rd-2024!"))) ==
          failure_code::reset_expired);
    CHECK(h.directory.password_of("alice") == "New-Passw0rd-2024!");
    const auto audit = h.audit_text();
    CHECK(audit.find("password_reset") != std::string::npos);
    CHECK(audit.find("New-Passw0rd-2024!") == std::string::npos);
    CHECK(audit.find("Gentle-Harbor") == std::string::npos);
}

TEST_CASE("a completed reset closes the user's other flows", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto first = h.start("alice");
    const auto second = h.start("alice");
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, first, "totp", h.code(key, 0))));
    REQUIRE(std::holds_alternative<reset_completed>(
        h.resets->complete(h.ctx, first, secret("New-Passw0rd-2024!"))));
    CHECK(code_of(h.resets->verify(h.ctx, second, "totp", h.code(key, 1))) ==
          failure_code::reset_expired);
}

TEST_CASE("a TOTP code is accepted once per user", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    // The enrollment confirmation used the current step: the same code fails on a reset.
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(key, 0))) ==
          failure_code::invalid_code);
    const auto next = h.code(key, 1);
    REQUIRE(std::holds_alternative<reset_verified>(h.resets->verify(h.ctx, id, "totp", next)));
    const auto other = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, other, "totp", next)) == failure_code::invalid_code);
}

TEST_CASE("failures lock verification, even for a correct code, until lockout_s",
          "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "000000")) == failure_code::invalid_code);
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "abcdef")) == failure_code::invalid_code);
    auto third = h.resets->verify(h.ctx, id, "totp", "111111");
    REQUIRE(code_of(third) == failure_code::locked);
    CHECK(std::get<failure>(third).retry_after == 900);
    // Failures count per user, across flows.
    const auto other = h.start("alice");
    auto correct = h.resets->verify(h.ctx, other, "totp", h.code(key, 0));
    REQUIRE(code_of(correct) == failure_code::locked);
    h.now += 600;
    CHECK(std::get<failure>(h.resets->verify(h.ctx, other, "totp", h.code(key, 0))).retry_after ==
          300);
    h.now += 301;
    const auto later = h.start("alice");
    CHECK(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, later, "totp", h.code(key, 0))));
}

TEST_CASE("decoys never verify and lock like real users", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = h.start("alice)(uid=*");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(key, 0))) ==
          failure_code::invalid_code);
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(key, 1))) ==
          failure_code::invalid_code);
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "123456")) == failure_code::locked);
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"))) ==
          failure_code::verification_required);
    CHECK(h.directory.writes == 0);
}

TEST_CASE("disabled and protected users get a decoy even when enrolled", "[reset_service]") {
    harness h;
    h.directory.add("erin", "Erin-Old-Passw0rd!");
    const auto key = h.enroll("erin", "Erin-Old-Passw0rd!");
    h.directory.at("erin").user.is_protected = true;
    h.now += 30;
    const auto id = h.start("erin");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(key, 0))) ==
          failure_code::invalid_code);
    CHECK(h.audit_text().find("\"reason\":\"protected\"") != std::string::npos);

    h.directory.at("erin").user.is_protected = false;
    h.directory.at("erin").user.disabled = true;
    const auto id2 = h.start("erin");
    CHECK(code_of(h.resets->verify(h.ctx, id2, "totp", h.code(key, 1))) ==
          failure_code::invalid_code);
    CHECK(h.audit_text().find("\"reason\":\"disabled\"") != std::string::npos);
}

TEST_CASE("an account that became protected after verification is not reset", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = h.start("alice");
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(key, 0))));
    h.directory.at("alice").user.is_protected = true;
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"))) ==
          failure_code::reset_expired);
    CHECK(h.directory.writes == 0);
    CHECK(h.directory.password_of("alice") == "Alice-Old-Passw0rd!");
}

TEST_CASE("a dead directory is 503, never a success", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = h.start("alice");
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(key, 0))));
    h.directory.down = true;
    CHECK(code_of(h.resets->start(h.ctx, "alice")) == failure_code::directory_unavailable);
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"))) ==
          failure_code::directory_unavailable);
    h.directory.down = false;
    // The flow survives the outage.
    CHECK(std::holds_alternative<reset_completed>(
        h.resets->complete(h.ctx, id, secret("New-Passw0rd-2024!"))));
}

TEST_CASE("bad usernames, methods and ids", "[reset_service]") {
    harness h;
    CHECK(code_of(h.resets->start(h.ctx, std::string(257, 'a'))) == failure_code::bad_request);
    CHECK(std::holds_alternative<reset_started>(h.resets->start(h.ctx, std::string(256, 'a'))));
    CHECK(code_of(h.resets->start(h.ctx, "ali\nce")) == failure_code::bad_request);
    CHECK(code_of(h.resets->start(h.ctx, "")) == failure_code::bad_request);
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, id, "email", "123456")) == failure_code::bad_request);
    CHECK(code_of(h.resets->verify(h.ctx, id, "carrier-pigeon", "1")) == failure_code::bad_request);
    CHECK(code_of(h.resets->verify(h.ctx, "not-an-id", "totp", "123456")) ==
          failure_code::reset_expired);
    CHECK(code_of(h.resets->verify(h.ctx, std::string(43, 'A'), "totp", "123456")) ==
          failure_code::reset_expired);
}

TEST_CASE("flows expire after reset_ttl_s", "[reset_service]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    const auto id = h.start("alice");
    h.now += 901;
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(key, 0))) ==
          failure_code::reset_expired);
}

TEST_CASE("enrollment needs the current password and one good code", "[enrollment_service]") {
    harness h;
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "alice", secret("wrong"))) ==
          failure_code::invalid_credentials);
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "nobody", secret("x"))) ==
          failure_code::invalid_credentials);
    h.directory.add("carol", "Carol-Old-Passw0rd!", /*locked=*/true);
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "carol", secret("Carol-Old-Passw0rd!"))) ==
          failure_code::invalid_credentials);

    auto started = h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"));
    REQUIRE(std::holds_alternative<totp_enrollment_started>(started));
    const auto& s = std::get<totp_enrollment_started>(started);
    CHECK(s.secret_base32.size() >= 32);
    CHECK(s.otpauth_uri.rfind("otpauth://totp/", 0) == 0);
    const auto key = factors::base32_decode(s.secret_base32);
    REQUIRE(key.has_value());
    // Not usable before confirmation: a reset is a decoy.
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", h.code(*key, 1))) ==
          failure_code::invalid_code);

    CHECK(code_of(h.enrollments->confirm_totp(h.ctx, s.enrollment_id, "000000")) ==
          failure_code::invalid_code);
    CHECK(std::holds_alternative<bool>(
        h.enrollments->confirm_totp(h.ctx, s.enrollment_id, h.code(*key, 0))));
    CHECK(code_of(h.enrollments->confirm_totp(h.ctx, s.enrollment_id, h.code(*key, 1))) ==
          failure_code::enrollment_expired);
    CHECK(h.audit_text().find(s.secret_base32) == std::string::npos);
}

TEST_CASE("wrong confirmation codes burn a pending enrollment", "[enrollment_service]") {
    harness h;
    auto started = h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"));
    REQUIRE(std::holds_alternative<totp_enrollment_started>(started));
    const auto& s = std::get<totp_enrollment_started>(started);
    const auto key = factors::base32_decode(s.secret_base32);
    for (int i = 0; i < 3; ++i) {
        CHECK(code_of(h.enrollments->confirm_totp(h.ctx, s.enrollment_id, "999999")) ==
              failure_code::invalid_code);
    }
    CHECK(code_of(h.enrollments->confirm_totp(h.ctx, s.enrollment_id, h.code(*key, 0))) ==
          failure_code::enrollment_expired);
}
