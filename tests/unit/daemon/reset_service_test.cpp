#include "daemon/reset_service.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/decoy_timing.hpp"
#include "daemon/enrollment_service.hpp"
#include "factors/totp.hpp"
#include "fakes/fake_directory.hpp"
#include "store/state_store.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;

namespace {

// Records what would have been sent, so tests can read the codes.
struct recording_outbox final : code_outbox {
    std::vector<factors::email_message> mails;
    std::vector<factors::sms_message> texts;
    bool accept = true;
    bool send_email(factors::email_message m) override {
        if (accept) {
            mails.push_back(std::move(m));
        }
        return accept;
    }
    bool send_sms(factors::sms_message m) override {
        if (accept) {
            texts.push_back(std::move(m));
        }
        return accept;
    }
};

// The first run of `digits` digits in a message text.
std::string code_in(std::string_view text, std::size_t digits = 6) {
    for (std::size_t i = 0; i + digits <= text.size(); ++i) {
        std::size_t n = 0;
        while (n < digits && std::isdigit(static_cast<unsigned char>(text[i + n])) != 0) {
            ++n;
        }
        if (n == digits &&
            (i + n == text.size() || std::isdigit(static_cast<unsigned char>(text[i + n])) == 0)) {
            return std::string(text.substr(i, digits));
        }
    }
    return {};
}

struct harness {
    testing::temp_dir dir{"pwresetd-svc"};
    config cfg;
    testing::fake_directory directory;
    policy::password_policy policy{policy::settings{}};
    std::unique_ptr<store::state_store> state;
    std::unique_ptr<audit_log> audit;
    std::int64_t now = 1'700'000'000;
    std::unique_ptr<reset_service> resets;
    std::unique_ptr<enrollment_service> enrollments;
    request_context ctx{"req-1", "portal", "192.0.2.1"};
    recording_outbox outbox;
    factor_keys keys = derive_factor_keys(secret(std::string(32, 'k')));

    explicit harness(bool codes = false) {
        if (codes) {
            cfg.factors.email.enabled = true;
            cfg.factors.sms.enabled = true;
            cfg.factors.sms.country_code = "+46";
            cfg.factors.order = {"totp", "email", "sms"};
            cfg.mail.emplace();
            cfg.mail->from = "pwreset@example.test";
        }
        cfg.limits.verify_failures = 3;
        cfg.limits.lockout_s = 900;
        cfg.limits.reset_ttl_s = 900;
        state = store::open_sqlite_store(dir / "state.db", secret(std::string(32, 'k')));
        audit = std::make_unique<audit_log>(dir / "audit.jsonl");
        auto clock = [this] { return now; };
        resets = std::make_unique<reset_service>(cfg, policy, directory, *state, *audit, outbox,
                                                 keys, clock);
        enrollments =
            std::make_unique<enrollment_service>(cfg, directory, *state, *audit, keys, clock);
        directory.add("alice", "Alice-Old-Passw0rd!");
        directory.add("bob", "Bob-Old-Passw0rd!");
        if (codes) {
            directory.user_of("alice").email = "alice@example.test";
            directory.user_of("alice").phone = "070-123 45 67";
            directory.user_of("bob").email = "bob@example.test";
        }
    }

    std::vector<secret> last_recovery_codes;

    // Enrolls the user through the service and returns the TOTP key.
    secret enroll(const std::string& username, const std::string& password,
                  std::optional<std::string> proof = std::nullopt) {
        auto started =
            enrollments->start_totp(ctx, username, secret(password),
                                    proof ? std::optional<std::string_view>(*proof) : std::nullopt);
        REQUIRE(std::holds_alternative<totp_enrollment_started>(started));
        const auto& s = std::get<totp_enrollment_started>(started);
        auto key = factors::base32_decode(s.secret_base32);
        REQUIRE(key.has_value());
        auto confirmed = enrollments->confirm_totp(ctx, s.enrollment_id, code(*key, 0));
        REQUIRE(std::holds_alternative<totp_enrollment_confirmed>(confirmed));
        last_recovery_codes =
            std::move(std::get<totp_enrollment_confirmed>(confirmed).recovery_codes);
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

    std::string audit_text() const { return testing::read_file(dir / "audit.jsonl"); }
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
        REQUIRE(s.methods.size() == 1);
        CHECK(s.methods[0].method == "totp");
        CHECK(s.methods[0].hint.empty());
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
    CHECK(std::holds_alternative<totp_enrollment_confirmed>(
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

// ---- email and SMS codes, method rules, recovery codes ---------------------------------

namespace {

reset_started start_full(harness& h, const std::string& name) {
    auto r = h.resets->start(h.ctx, name);
    REQUIRE(std::holds_alternative<reset_started>(r));
    return std::get<reset_started>(r);
}

// Challenges `method` and returns the code that was queued (empty when nothing was sent).
std::string challenge(harness& h, const std::string& id, const std::string& method,
                      std::string_view lang = "en") {
    const auto mails = h.outbox.mails.size();
    const auto texts = h.outbox.texts.size();
    auto r = h.resets->challenge(h.ctx, id, method, lang);
    REQUIRE(std::holds_alternative<reset_challenged>(r));
    CHECK(std::get<reset_challenged>(r).method == method);
    if (h.outbox.mails.size() > mails) {
        return code_in(h.outbox.mails.back().body.view());
    }
    if (h.outbox.texts.size() > texts) {
        return code_in(h.outbox.texts.back().text.view());
    }
    return {};
}

outcome<reset_verified> verify(harness& h, const std::string& id, const std::string& method,
                               const std::string& code) {
    return h.resets->verify(h.ctx, id, method, code);
}

int remaining(const outcome<reset_verified>& r) {
    REQUIRE(std::holds_alternative<reset_verified>(r));
    return std::get<reset_verified>(r).remaining_methods;
}

}  // namespace

TEST_CASE("start lists every enabled method with masked or synthesized hints",
          "[reset_service][codes]") {
    harness h(true);
    const auto alice = start_full(h, "alice");
    REQUIRE(alice.methods.size() == 3);
    CHECK(alice.methods[0].method == "totp");
    CHECK(alice.methods[1].method == "email");
    CHECK(alice.methods[1].hint == "a***@e***.test");
    CHECK(alice.methods[2].method == "sms");
    CHECK(alice.methods[2].hint == "+46 ** *** ** 67");

    // Unknown users and users without a number get hints of the same shape, stable per name.
    const auto nobody = start_full(h, "nobody");
    const auto again = start_full(h, "nobody");
    REQUIRE(nobody.methods.size() == 3);
    CHECK(nobody.methods[1].hint == "n***@e***.test");
    CHECK(nobody.methods[2].hint.starts_with("+46 ** *** ** "));
    CHECK(nobody.methods[2].hint.size() == alice.methods[2].hint.size());
    CHECK(nobody.methods[2].hint == again.methods[2].hint);
    const auto bob = start_full(h, "bob");
    CHECK(bob.methods[2].hint.starts_with("+46 ** *** ** "));
    CHECK(nobody.required_methods == alice.required_methods);
}

TEST_CASE("an email code works once, in its own flow, before it expires",
          "[reset_service][codes]") {
    harness h(true);
    const auto id = start_full(h, "alice").reset_id;
    const auto code = challenge(h, id, "email");
    REQUIRE(code.size() == 6);
    REQUIRE(h.outbox.mails.size() == 1);
    CHECK(h.outbox.mails[0].to == "alice@example.test");
    CHECK(h.outbox.mails[0].subject == "Your password reset code");
    CHECK(h.outbox.mails[0].body.view().find("http") == std::string_view::npos);  // no link
    CHECK(h.outbox.mails[0].reference == "req-1");

    SECTION("once") {
        CHECK(remaining(verify(h, id, "email", code)) == 0);
        CHECK(code_of(verify(h, id, "email", code)) == failure_code::invalid_code);
        CHECK(std::holds_alternative<reset_completed>(
            h.resets->complete(h.ctx, id, secret("A-New-Passw0rd-2024!"))));
    }
    SECTION("typed with spaces") {
        CHECK(remaining(verify(h, id, "email", code.substr(0, 3) + " " + code.substr(3))) == 0);
    }
    SECTION("not after code_ttl_s") {
        h.now += 601;
        CHECK(code_of(verify(h, id, "email", code)) == failure_code::invalid_code);
    }
    SECTION("not in another flow, not for another method") {
        const auto bob = start_full(h, "bob").reset_id;
        challenge(h, bob, "email");
        CHECK(code_of(verify(h, bob, "email", code)) == failure_code::invalid_code);
        const auto alice2 = start_full(h, "alice").reset_id;
        CHECK(code_of(verify(h, alice2, "email", code)) == failure_code::invalid_code);
        CHECK(code_of(verify(h, id, "sms", code)) == failure_code::invalid_code);
        CHECK(remaining(verify(h, id, "email", code)) == 0);  // still alive in its own flow
    }
    SECTION("a new challenge kills the old code") {
        const auto second = challenge(h, id, "email");
        REQUIRE(second.size() == 6);
        if (second != code) {
            CHECK(code_of(verify(h, id, "email", code)) == failure_code::invalid_code);
        }
        CHECK(remaining(verify(h, id, "email", second)) == 0);
    }
    SECTION("the code appears in no audit record") {
        verify(h, id, "email", code);
        CHECK(h.audit_text().find(code) == std::string::npos);
        CHECK(h.audit_text().find("\"destination\":\"a***@e***.test\"") != std::string::npos);
    }
}

TEST_CASE("an SMS code goes to the directory's number, normalized", "[reset_service][codes]") {
    harness h(true);
    const auto id = start_full(h, "alice").reset_id;
    const auto code = challenge(h, id, "sms", "sv");
    REQUIRE(h.outbox.texts.size() == 1);
    CHECK(h.outbox.texts[0].to == "+46701234567");
    CHECK(h.outbox.texts[0].text.view().find("återställning") != std::string_view::npos);
    CHECK(remaining(verify(h, id, "sms", code)) == 0);
}

TEST_CASE("challenges without a destination, and decoys, send nothing and answer the same",
          "[reset_service][codes]") {
    harness h(true);
    const auto bob = start_full(h, "bob").reset_id;  // no phone
    CHECK(challenge(h, bob, "sms").empty());
    const auto nobody = start_full(h, "nobody").reset_id;
    CHECK(challenge(h, nobody, "email").empty());
    CHECK(h.outbox.mails.empty());
    CHECK(h.outbox.texts.empty());
    CHECK(code_of(verify(h, nobody, "email", "123456")) == failure_code::invalid_code);
    // totp is not a method that sends; unknown methods are bad requests.
    CHECK(code_of(h.resets->challenge(h.ctx, bob, "totp", "en")) == failure_code::bad_request);
    CHECK(code_of(h.resets->challenge(h.ctx, bob, "pigeon", "en")) == failure_code::bad_request);
    CHECK(code_of(h.resets->challenge(h.ctx, "x" + bob.substr(1), "email", "en")) ==
          failure_code::reset_expired);
}

TEST_CASE("codes per destination per hour: 429 after the limit, for unknown users too",
          "[reset_service][codes]") {
    harness h(true);
    for (const std::string name : {"alice", "nobody"}) {
        const auto id = start_full(h, name).reset_id;
        for (int i = 0; i < 5; ++i) {
            challenge(h, id, "email");
        }
        auto over = h.resets->challenge(h.ctx, id, "email", "en");
        REQUIRE(code_of(over) == failure_code::rate_limited);
        CHECK(std::get<failure>(over).retry_after == 3600);
        // Another flow to the same address counts against the same limit.
        const auto other = start_full(h, name).reset_id;
        CHECK(code_of(h.resets->challenge(h.ctx, other, "email", "en")) ==
              failure_code::rate_limited);
    }
    CHECK(h.outbox.mails.size() == 5);
    h.now += 3600;
    const auto id = start_full(h, "alice").reset_id;
    CHECK(challenge(h, id, "email").size() == 6);
}

TEST_CASE("a user with an authenticator cannot finish with email alone (totp_when_enrolled)",
          "[reset_service][codes]") {
    harness h(true);
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = start_full(h, "alice").reset_id;
    CHECK(remaining(verify(h, id, "email", challenge(h, id, "email"))) == 1);
    auto early = h.resets->complete(h.ctx, id, secret("A-New-Passw0rd-2024!"));
    REQUIRE(code_of(early) == failure_code::verification_required);
    CHECK(std::get<failure>(early).remaining_methods == 1);
    const auto done = verify(h, id, "totp", h.code(key, 0));
    CHECK(remaining(done) == 0);
    CHECK(std::get<reset_verified>(done).verified_methods ==
          std::vector<std::string>{"email", "totp"});
}

TEST_CASE("totp_when_enrolled: false lets email alone finish", "[reset_service][codes]") {
    harness h(true);
    h.cfg.factors.totp_when_enrolled = false;
    h.enroll("alice", "Alice-Old-Passw0rd!");
    const auto id = start_full(h, "alice").reset_id;
    CHECK(remaining(verify(h, id, "email", challenge(h, id, "email"))) == 0);
}

TEST_CASE("required: 2 needs two distinct methods", "[reset_service][codes]") {
    harness h(true);
    h.cfg.factors.required = 2;
    const auto id = start_full(h, "alice").reset_id;
    const auto code = challenge(h, id, "email");
    CHECK(remaining(verify(h, id, "email", code)) == 1);
    CHECK(remaining(verify(h, id, "email", challenge(h, id, "email"))) == 1);  // same method
    CHECK(remaining(verify(h, id, "sms", challenge(h, id, "sms"))) == 0);
}

TEST_CASE("members of two_methods_groups need two methods; the start reply does not say so",
          "[reset_service][codes]") {
    harness h(true);
    h.directory.user_of("alice").needs_two_methods = true;
    const auto started = start_full(h, "alice");
    CHECK(started.required_methods == 1);
    CHECK(remaining(
              verify(h, started.reset_id, "email", challenge(h, started.reset_id, "email"))) == 1);
    CHECK(remaining(verify(h, started.reset_id, "sms", challenge(h, started.reset_id, "sms"))) ==
          0);
}

TEST_CASE("recovery codes: ten, shown once, each accepted once in place of the authenticator",
          "[reset_service][codes]") {
    harness h(true);
    h.enroll("alice", "Alice-Old-Passw0rd!");
    const auto codes = std::move(h.last_recovery_codes);
    REQUIRE(codes.size() == 10);
    std::set<std::string> distinct;
    for (const auto& c : codes) {
        CHECK(c.size() == 14);
        CHECK(c.view()[4] == '-');
        distinct.emplace(c.view());
    }
    CHECK(distinct.size() == 10);
    CHECK(h.state->recovery_codes_left("user:id-alice") == 10);

    const auto id = start_full(h, "alice").reset_id;
    std::string typed(codes[3].view());
    typed.erase(std::remove(typed.begin(), typed.end(), '-'), typed.end());
    for (auto& ch : typed) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    CHECK(remaining(verify(h, id, "recovery_code", typed)) == 0);
    CHECK(h.state->recovery_codes_left("user:id-alice") == 9);
    const auto id2 = start_full(h, "alice").reset_id;
    CHECK(code_of(verify(h, id2, "recovery_code", std::string(codes[3].view()))) ==
          failure_code::invalid_code);
    CHECK(code_of(verify(h, id2, "recovery_code", "not-a-code")) == failure_code::invalid_code);
    // With email it makes two distinct methods.
    h.cfg.factors.required = 2;
    const auto id3 = start_full(h, "alice").reset_id;
    CHECK(remaining(verify(h, id3, "recovery_code", std::string(codes[0].view()))) == 1);
    CHECK(remaining(verify(h, id3, "email", challenge(h, id3, "email"))) == 0);
    CHECK(h.audit_text().find(std::string(codes[0].view())) == std::string::npos);

    // A new enrollment (proven with one of them) replaces them.
    h.now += 60;
    h.enroll("alice", "Alice-Old-Passw0rd!", std::string(codes[7].view()));
    const auto id4 = start_full(h, "alice").reset_id;
    CHECK(code_of(verify(h, id4, "recovery_code", std::string(codes[5].view()))) ==
          failure_code::invalid_code);
}

TEST_CASE("enrollment password failures count and lock, for real and made-up users alike",
          "[enrollment_service][security]") {
    harness h;  // verify_failures 3
    for (const std::string name : {"alice", "nobody"}) {
        INFO(name);
        CHECK(code_of(h.enrollments->start_totp(h.ctx, name, secret("guess-1"))) ==
              failure_code::invalid_credentials);
        CHECK(code_of(h.enrollments->start_totp(h.ctx, name, secret("guess-2"))) ==
              failure_code::invalid_credentials);
        // The failure that reaches the limit, and every attempt after it, even a right one.
        CHECK(code_of(h.enrollments->start_totp(h.ctx, name, secret("guess-3"))) ==
              failure_code::locked);
        CHECK(code_of(h.enrollments->start_totp(h.ctx, name, secret("Alice-Old-Passw0rd!"))) ==
              failure_code::locked);
    }
    // The counter is the one change uses: the account has no guesses left there either.
    CHECK(h.state->get_failures("password:user:id-alice", h.now).count == 3);
    CHECK(h.state->get_failures("password:decoy:nobody", h.now).count == 3);
    h.now += 901;
    CHECK(std::holds_alternative<totp_enrollment_started>(
        h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"))));
}

TEST_CASE("replacing an authenticator needs a code from it or a recovery code",
          "[enrollment_service][security]") {
    harness h;
    const auto old_key = h.enroll("alice", "Alice-Old-Passw0rd!");
    const auto recovery = std::move(h.last_recovery_codes);
    h.now += 60;

    // A wrong password is still just that: the proof question is not even reached.
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "alice", secret("wrong"))) ==
          failure_code::invalid_credentials);
    // The password alone no longer hands over the account's reset.
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"))) ==
          failure_code::factor_proof_required);
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"),
                                            std::string_view("000000"))) ==
          failure_code::factor_proof_required);

    // With a code from the old authenticator: a new pending enrollment, and until it is
    // confirmed the old key still works for a reset.
    auto started = h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"),
                                             std::string_view(h.code(old_key, 0)));
    REQUIRE(std::holds_alternative<totp_enrollment_started>(started));
    h.now += 30;
    const auto id = h.start("alice");
    CHECK(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(old_key, 0))));

    // A recovery code proves it too, once.
    h.now += 30;
    const std::string proof(recovery[2].view());
    CHECK(std::holds_alternative<totp_enrollment_started>(h.enrollments->start_totp(
        h.ctx, "alice", secret("Alice-Old-Passw0rd!"), std::string_view(proof))));
    CHECK(code_of(h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"),
                                            std::string_view(proof))) ==
          failure_code::factor_proof_required);
}

TEST_CASE("wrong factor proofs count like wrong codes", "[enrollment_service][security]") {
    harness h;  // verify_failures 3
    (void)h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 60;
    const auto attempt = [&] {
        return h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"),
                                         std::string_view("123456"));
    };
    CHECK(code_of(attempt()) == failure_code::factor_proof_required);
    CHECK(code_of(attempt()) == failure_code::factor_proof_required);
    CHECK(code_of(attempt()) == failure_code::locked);
    CHECK(code_of(attempt()) == failure_code::locked);
    // The same counter guards the reset's verification.
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "654321")) == failure_code::locked);
}

TEST_CASE("usernames have one canonical form", "[reset_service][security]") {
    CHECK(canonical_username("carol") == "carol");
    CHECK(canonical_username(" Carol ") == "carol");
    CHECK(canonical_username("CAROL") == "carol");
    CHECK(canonical_username("ca  rol") == "ca rol");
    CHECK(canonical_username("carol\xC2\xA0") == "carol");                // no-break space
    CHECK(canonical_username("ca\xE2\x80\x8Brol") == "carol");            // zero-width space
    CHECK(canonical_username("\xC3\x84lice") == "\xC3\xA4lice");          // Ä -> ä
    CHECK(canonical_username("\xCE\xA3\xCE\xA9") == "\xCF\x83\xCF\x89");  // ΣΩ -> σω
    CHECK(canonical_username("EXAMPLE\\Alice") == "example\\alice");
    CHECK(canonical_username("bad\xFFutf8") == "bad\xFFutf8");
    CHECK(canonical_username("   ").empty());
    // Compatibility forms and full case folding, as a directory's string preparation does
    // (RFC 4518): full-width letters, ligatures, sharp s, dotted capital I, Kelvin sign.
    CHECK(canonical_username("\xEF\xBC\xA3\xEF\xBC\xA1\xEF\xBC\xB2\xEF\xBC\xAF\xEF\xBC\xAC") ==
          "carol");                                         // ＣＡＲＯＬ
    CHECK(canonical_username("\xEF\xAC\x81nn") == "finn");  // ﬁnn
    CHECK(canonical_username("Stra\xC3\x9F"
                             "e") == "strasse");  // Straße
    CHECK(canonical_username("AL\xC4\xB0"
                             "CE") == "alice");  // ALİCE
    CHECK(canonical_username("\xE2\x84\xAA"
                             "arl") == "karl");                                // Kelvin sign
    CHECK(canonical_username("carol\xE3\x80\x80\xE3\x80\x80x") == "carol x");  // ideographic spaces
    CHECK(canonical_username("e\xCC\x81") == "\xC3\xA9");  // e + combining acute: é
}

TEST_CASE("variants of a name share its lockout, for real and made-up users alike",
          "[reset_service][security]") {
    harness h;  // verify_failures 3
    h.directory.add("carol", "Carol-Old-Passw0rd!");
    (void)h.enroll("carol", "Carol-Old-Passw0rd!");
    for (const std::string name : {"carol", "nosuchuser17"}) {
        INFO(name);
        for (int i = 0; i < 3; ++i) {
            const auto id = h.start(name);
            (void)h.resets->verify(h.ctx, id, "totp", "000000");
        }
        std::string full_width;  // ｃａｒｏｌ: U+FF41.. for a..
        for (const char c : name) {
            const unsigned cp = 0xFF00U + (static_cast<unsigned char>(c) - 0x20U);
            full_width += static_cast<char>(0xE0U | (cp >> 12U));
            full_width += static_cast<char>(0x80U | ((cp >> 6U) & 0x3FU));
            full_width += static_cast<char>(0x80U | (cp & 0x3FU));
        }
        for (const auto& variant : {name, name + " ", " " + name, "  " + name + "  ", full_width}) {
            INFO("variant '" << variant << "'");
            const auto id = h.start(variant);
            CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "000000")) == failure_code::locked);
        }
        std::string upper = name;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        const auto id = h.start(upper);
        CHECK(code_of(h.resets->verify(h.ctx, id, "totp", "000000")) == failure_code::locked);
    }
}

TEST_CASE("an unverified flow needs factors.required, whoever the user is",
          "[reset_service][security]") {
    harness h(true);
    h.directory.user_of("alice").needs_two_methods = true;
    for (const std::string name : {"alice", "bob", "nobody"}) {
        INFO(name);
        const auto id = h.start(name);
        const auto done = h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"));
        REQUIRE(code_of(done) == failure_code::verification_required);
        CHECK(std::get<failure>(done).remaining_methods == 1);
    }
    // Once a method is verified the truth shows.
    const auto id = h.start("alice");
    CHECK(remaining(verify(h, id, "email", challenge(h, id, "email"))) == 1);
    const auto done = h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"));
    REQUIRE(code_of(done) == failure_code::verification_required);
    CHECK(std::get<failure>(done).remaining_methods == 1);
}

TEST_CASE("complete claims the flow: a held flow is not written twice",
          "[reset_service][security]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    const auto id = h.start("alice");
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(key, 0))));
    // Another worker holds the flow (its directory write is under way).
    REQUIRE(h.state->claim_flow(id_hash(id), h.now, h.now + 60));
    const int writes = h.directory.writes;
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"))) ==
          failure_code::reset_expired);
    CHECK(h.directory.writes == writes);
    // A refused password gives the flow back; the next try writes once.
    h.state->release_flow(id_hash(id));
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("short"))) ==
          failure_code::password_rejected);
    CHECK(std::holds_alternative<reset_completed>(
        h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"))));
    CHECK(h.directory.writes == writes + 1);
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-42"))) ==
          failure_code::reset_expired);
    CHECK(h.directory.password_of("alice") == "Quiet-River-Stone-41");
}

TEST_CASE("a decoy sleeps for one of the real durations", "[decoy_timing]") {
    decoy_timing timing;
    const auto t0 = decoy_timing::clock::now();
    timing.imitate();  // nothing recorded: no wait
    CHECK(decoy_timing::clock::now() - t0 < std::chrono::milliseconds(5));
    timing.record(std::chrono::milliseconds(20));
    timing.record(std::chrono::milliseconds(40));
    CHECK(timing.samples() == 2);
    int short_ones = 0;
    for (int i = 0; i < 24; ++i) {
        const auto t1 = decoy_timing::clock::now();
        timing.imitate();
        const auto slept = decoy_timing::clock::now() - t1;
        // It aims early by how late recent sleeps woke (a few ms on a busy machine), so it
        // may end a little before 20 ms, never near zero.
        CHECK(slept >= std::chrono::milliseconds(12));
        CHECK(slept < std::chrono::milliseconds(200));
        short_ones += slept < std::chrono::milliseconds(35) ? 1 : 0;
    }
    // Both recorded durations are drawn (each has a 2^-24 chance of never being drawn).
    CHECK(short_ones > 0);
    CHECK(short_ones < 24);
}

TEST_CASE("an enrollment started before another was confirmed cannot replace it",
          "[enrollment_service][security]") {
    // Red team: an attacker with the password starts an enrollment while the user has no
    // authenticator, the user then enrolls their own, and the attacker confirms the old one.
    harness h;
    auto attacker = h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"));
    REQUIRE(std::holds_alternative<totp_enrollment_started>(attacker));
    const auto& a = std::get<totp_enrollment_started>(attacker);
    CHECK(a.enrollment_id.size() == 43);
    const auto attacker_key = factors::base32_decode(a.secret_base32);
    REQUIRE(attacker_key.has_value());
    const auto user_key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    CHECK(code_of(h.enrollments->confirm_totp(h.ctx, a.enrollment_id, h.code(*attacker_key, 0))) ==
          failure_code::factor_proof_required);
    CHECK(code_of(h.enrollments->confirm_totp(h.ctx, a.enrollment_id, h.code(*attacker_key, 0))) ==
          failure_code::enrollment_expired);
    // The user's own authenticator still works; a proven replacement still can be confirmed.
    h.now += 30;
    const auto id = h.start("alice");
    CHECK(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(user_key, 0))));
    h.now += 30;
    auto proven = h.enrollments->start_totp(h.ctx, "alice", secret("Alice-Old-Passw0rd!"),
                                            std::string_view(h.code(user_key, 0)));
    REQUIRE(std::holds_alternative<totp_enrollment_started>(proven));
    const auto& p = std::get<totp_enrollment_started>(proven);
    CHECK(p.enrollment_id.size() == 44);
    const auto new_key = factors::base32_decode(p.secret_base32);
    REQUIRE(new_key.has_value());
    h.now += 30;
    CHECK(std::holds_alternative<totp_enrollment_confirmed>(
        h.enrollments->confirm_totp(h.ctx, p.enrollment_id, h.code(*new_key, 0))));
}

namespace {

// A flow of alice's with the authenticator verified; alice is locked in the directory.
std::string verified_locked_flow(harness& h) {
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    h.directory.at("alice").user.locked = true;
    auto id = h.start("alice");
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(key, 0))));
    return id;
}

}  // namespace

TEST_CASE("unlock clears the directory lockout, keeps the password and closes the flow",
          "[reset_service][unlock]") {
    harness h;
    const auto id = verified_locked_flow(h);
    const std::string other = h.start("alice");
    // Wrong current passwords counted against alice (enrollment), as for a change.
    const auto user_key = user_key_for(h.directory.user_of("alice"));
    (void)h.state->reserve_failure(password_failure_key(user_key), h.now, 900, 5);
    REQUIRE(h.state->get_failures(password_failure_key(user_key), h.now).count == 1);
    const int writes = h.directory.writes;

    auto done = h.resets->unlock(h.ctx, id);
    REQUIRE(std::holds_alternative<reset_unlocked>(done));
    CHECK(std::get<reset_unlocked>(done).was_locked);
    CHECK_FALSE(h.directory.at("alice").user.locked);
    CHECK(h.directory.password_of("alice") == "Alice-Old-Passw0rd!");
    CHECK(h.directory.writes == writes);
    CHECK(h.directory.verify_password(h.directory.user_of("alice"),
                                      secret("Alice-Old-Passw0rd!")) == ldap::bind_status::ok);
    CHECK(h.state->get_failures(password_failure_key(user_key), h.now).count == 0);

    // The flow is closed for unlock and complete alike; the user's other flow stays open.
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::reset_expired);
    CHECK(code_of(h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"))) ==
          failure_code::reset_expired);
    CHECK(code_of(h.resets->unlock(h.ctx, other)) == failure_code::verification_required);

    const auto audit = h.audit_text();
    CHECK(audit.find("\"event\":\"reset.unlock\"") != std::string::npos);
    CHECK(audit.find("\"outcome\":\"unlocked\"") != std::string::npos);
    CHECK(audit.find("\"was_locked\":true") != std::string::npos);
}

TEST_CASE("unlock of an account that is not locked is done too", "[reset_service][unlock]") {
    harness h;
    const auto id = verified_locked_flow(h);
    h.directory.at("alice").user.locked = false;
    auto done = h.resets->unlock(h.ctx, id);
    REQUIRE(std::holds_alternative<reset_unlocked>(done));
    CHECK_FALSE(std::get<reset_unlocked>(done).was_locked);
    CHECK(h.directory.password_of("alice") == "Alice-Old-Passw0rd!");
}

TEST_CASE("unlock needs what complete needs; decoys and unknown ids answer alike",
          "[reset_service][unlock][security]") {
    harness h(true);
    h.enroll("alice", "Alice-Old-Passw0rd!");
    h.directory.at("alice").user.locked = true;
    h.directory.user_of("bob").needs_two_methods = true;
    // alice (enrolled), bob (email only, two methods), nobody (decoy): the same answer.
    for (const std::string name : {"alice", "bob", "nobody"}) {
        INFO(name);
        const auto id = h.start(name);
        const auto done = h.resets->unlock(h.ctx, id);
        REQUIRE(code_of(done) == failure_code::verification_required);
        CHECK(std::get<failure>(done).remaining_methods == 1);
    }
    CHECK(h.directory.at("alice").user.locked);
    // bob verified email but needs a second method.
    const auto id = h.start("bob");
    CHECK(remaining(verify(h, id, "email", challenge(h, id, "email"))) == 1);
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::verification_required);
    CHECK(code_of(h.resets->unlock(h.ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")) ==
          failure_code::reset_expired);
    CHECK(code_of(h.resets->unlock(h.ctx, "x")) == failure_code::reset_expired);
    CHECK(h.audit_text().find("reset.unlock") == std::string::npos);  // nothing acted
}

TEST_CASE("unlock_on_reset off: unlock_disabled, before verification when no directory allows it",
          "[reset_service][unlock]") {
    harness h;
    const auto key = h.enroll("alice", "Alice-Old-Passw0rd!");
    h.now += 30;
    h.directory.at("alice").user.locked = true;
    h.directory.unlock_settings[""] = false;
    for (const std::string name : {"alice", "nobody"}) {
        INFO(name);
        CHECK(code_of(h.resets->unlock(h.ctx, h.start(name))) == failure_code::unlock_disabled);
    }
    CHECK(h.directory.at("alice").user.locked);

    // Two directories, unlock on in one: refused after verification for a user of the
    // other, and the flow can still be completed.
    h.directory.unlock_settings = {{"corp", true}, {"lab", false}};
    h.directory.user_of("alice").directory = "lab";
    const auto id = h.start("alice");
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::verification_required);
    REQUIRE(std::holds_alternative<reset_verified>(
        h.resets->verify(h.ctx, id, "totp", h.code(key, 0))));
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::unlock_disabled);
    CHECK(h.directory.at("alice").user.locked);
    CHECK(h.audit_text().find("\"reason\":\"unlock_disabled\"") != std::string::npos);
    CHECK(std::holds_alternative<reset_completed>(
        h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"))));
    CHECK_FALSE(h.directory.at("alice").user.locked);
}

TEST_CASE("unlock: a dead directory or an account changed since verification",
          "[reset_service][unlock]") {
    harness h;
    const auto id = verified_locked_flow(h);
    h.directory.down = true;
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::directory_unavailable);
    h.directory.down = false;
    CHECK(h.directory.at("alice").user.locked);
    // The flow survived the outage; now the account became protected: refused and closed.
    h.directory.at("alice").user.is_protected = true;
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::reset_expired);
    CHECK(h.directory.at("alice").user.locked);
    h.directory.at("alice").user.is_protected = false;
    CHECK(code_of(h.resets->unlock(h.ctx, id)) == failure_code::reset_expired);
}

TEST_CASE("concurrent unlocks and completes of one flow: exactly one acts",
          "[reset_service][unlock][security]") {
    harness h;
    const auto id = verified_locked_flow(h);
    const int writes = h.directory.writes;
    constexpr std::size_t n = 8;
    std::array<int, n> results{};  // 1 unlocked, 2 reset, 3 reset_expired, 0 other
    std::vector<std::thread> threads;
    std::latch start(static_cast<std::ptrdiff_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            if (i % 2 == 0) {
                auto r = h.resets->unlock(h.ctx, id);
                results[i] = std::holds_alternative<reset_unlocked>(r)   ? 1
                             : code_of(r) == failure_code::reset_expired ? 3
                                                                         : 0;
            } else {
                auto r = h.resets->complete(h.ctx, id, secret("Quiet-River-Stone-41"));
                results[i] = std::holds_alternative<reset_completed>(r)  ? 2
                             : code_of(r) == failure_code::reset_expired ? 3
                                                                         : 0;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto acted =
        std::count_if(results.begin(), results.end(), [](int r) { return r == 1 || r == 2; });
    CHECK(acted == 1);
    CHECK(std::count(results.begin(), results.end(), 3) == static_cast<std::ptrdiff_t>(n) - 1);
    CHECK_FALSE(h.directory.at("alice").user.locked);
    const bool reset = std::find(results.begin(), results.end(), 2) != results.end();
    CHECK(h.directory.writes == writes + (reset ? 1 : 0));
    CHECK(h.directory.password_of("alice") ==
          (reset ? "Quiet-River-Stone-41" : "Alice-Old-Passw0rd!"));
}
