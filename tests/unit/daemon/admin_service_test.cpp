#include "daemon/admin_service.hpp"

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "factors/totp.hpp"
#include "fakes/fake_directory.hpp"
#include "store/state_store.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace pwresetd;
using namespace pwresetd::daemon;

namespace {

struct admin_harness {
    testing::temp_dir dir{"pwresetd-adm"};
    config cfg;
    testing::fake_directory directory;
    std::unique_ptr<store::state_store> state;
    std::unique_ptr<audit_log> audit;
    factor_keys keys = derive_factor_keys(secret(std::string(32, 'm')));
    std::int64_t now = 1'700'000'000;
    std::unique_ptr<admin_service> service;
    admin_peer peer{1234, 1234, 4321, "helpdesk"};

    admin_harness() {
        state = store::open_sqlite_store(dir / "state.db", secret(std::string(32, 'k')));
        audit = std::make_unique<audit_log>(dir / "audit.jsonl");
        service = std::make_unique<admin_service>(
            cfg, directory, *state, *audit, keys,
            [] {
                return boost::json::object{{"connections", 7}};
            },
            [this] { return now; });
        directory.add("alice", "Alice-Old-Passw0rd!");
        directory.add("dave", "Dave-Old-Passw0rd!", false, /*disabled=*/true);
        directory.add("erin", "Erin-Old-Passw0rd!", false, false, /*is_protected=*/true);
    }

    // flag: --replace for enroll, --directory for unlock.
    boost::json::object run(admin::command cmd, const std::string& user, bool flag = false) {
        admin::request r;
        r.cmd = cmd;
        r.user = user;
        r.replace = flag && cmd == admin::command::enroll;
        r.directory = flag && cmd == admin::command::unlock;
        return service->handle(r, peer);
    }

    // The audit records of `event`, oldest first.
    std::vector<boost::json::object> records(const std::string& event) const {
        std::vector<boost::json::object> out;
        std::istringstream lines(testing::read_file(dir / "audit.jsonl"));
        for (std::string line; std::getline(lines, line);) {
            auto o = boost::json::parse(line).as_object();
            if (o.at("event").as_string() == event) {
                out.push_back(std::move(o));
            }
        }
        return out;
    }
};

std::string error_of(const boost::json::object& reply) {
    return reply.contains("error") ? std::string(reply.at("error").as_string()) : "";
}

}  // namespace

TEST_CASE("admin enroll stores a confirmed key, recovery codes, and audits no secret", "[admin]") {
    admin_harness h;
    const auto reply = h.run(admin::command::enroll, "Alice");
    REQUIRE(reply.at("ok").as_bool());
    CHECK(reply.at("user").as_string() == "alice");
    const std::string key(reply.at("secret").as_string());
    const auto stored = h.state->get_totp("user:id-alice");
    REQUIRE(stored);
    CHECK(factors::base32_encode(stored->bytes()) == key);
    CHECK(std::string(reply.at("otpauth_uri").as_string()).find("secret=" + key) !=
          std::string::npos);
    const auto& codes = reply.at("recovery_codes").as_array();
    REQUIRE(codes.size() == 10);
    CHECK(consume_recovery_code(*h.state, h.keys, "user:id-alice", codes[3].as_string()));

    const std::string audit = testing::read_file(h.dir / "audit.jsonl");
    CHECK(audit.find(key) == std::string::npos);
    CHECK(audit.find(std::string(codes[0].as_string())) == std::string::npos);
    const auto records = h.records("admin.enroll");
    REQUIRE(records.size() == 1);
    CHECK(records[0].at("outcome").as_string() == "enrolled");
    CHECK(records[0].at("peer_uid").as_int64() == 1234);
    CHECK(records[0].at("peer_user").as_string() == "helpdesk");
    CHECK(records[0].at("peer_pid").as_int64() == 4321);
}

TEST_CASE("admin enroll refuses unknown, disabled, protected and enrolled users", "[admin]") {
    admin_harness h;
    CHECK(error_of(h.run(admin::command::enroll, "nobody")) == "unknown_user");
    CHECK(error_of(h.run(admin::command::enroll, "dave")) == "disabled");
    CHECK(error_of(h.run(admin::command::enroll, "erin")) == "protected");
    CHECK(error_of(h.run(admin::command::enroll, "bad\nname")) == "bad_request");
    h.directory.down = true;
    CHECK(error_of(h.run(admin::command::enroll, "alice")) == "directory_unavailable");
    h.directory.down = false;
    const auto first = h.run(admin::command::enroll, "alice");
    REQUIRE(first.at("ok").as_bool());
    CHECK(error_of(h.run(admin::command::enroll, "alice")) == "already_enrolled");
    const auto second = h.run(admin::command::enroll, "alice", true);
    REQUIRE(second.at("ok").as_bool());
    CHECK(second.at("replaced").as_bool());
    CHECK(second.at("secret") != first.at("secret"));
    // the first key's recovery codes went with it
    CHECK_FALSE(consume_recovery_code(*h.state, h.keys, "user:id-alice",
                                      first.at("recovery_codes").as_array()[0].as_string()));
    CHECK(h.state->recovery_codes_left("user:id-alice") == 10);
}

TEST_CASE("admin unenroll removes the key and the recovery codes", "[admin]") {
    admin_harness h;
    REQUIRE(h.run(admin::command::enroll, "alice").at("ok").as_bool());
    const auto reply = h.run(admin::command::unenroll, "alice");
    CHECK(reply.at("ok").as_bool());
    CHECK_FALSE(h.state->get_totp("user:id-alice"));
    CHECK(h.state->recovery_codes_left("user:id-alice") == 0);
    CHECK(error_of(h.run(admin::command::unenroll, "alice")) == "not_enrolled");
    const auto records = h.records("admin.unenroll");
    REQUIRE(records.size() == 2);
    CHECK(records[0].at("outcome").as_string() == "unenrolled");
    CHECK(records[1].at("outcome").as_string() == "not_enrolled");
}

TEST_CASE("admin unlock clears every per-user lockout counter", "[admin]") {
    admin_harness h;
    for (int i = 0; i < 3; ++i) {
        (void)h.state->record_failure("verify:user:id-alice", h.now, 900);
    }
    (void)h.state->record_failure(password_failure_key("user:id-alice"), h.now, 900);
    (void)h.state->record_failure("verify:user:id-other", h.now, 900);
    const auto reply = h.run(admin::command::unlock, "alice");
    REQUIRE(reply.at("ok").as_bool());
    CHECK(reply.at("cleared").at("code_failures").at("count").as_int64() == 3);
    CHECK(reply.at("cleared").at("password_failures").at("count").as_int64() == 1);
    CHECK(h.state->get_failures("verify:user:id-alice", h.now).count == 0);
    CHECK(h.state->get_failures(password_failure_key("user:id-alice"), h.now).count == 0);
    CHECK(h.state->get_failures("verify:user:id-other", h.now).count == 1);  // others kept
    const auto records = h.records("admin.unlock");
    REQUIRE(records.size() == 1);
    CHECK(records[0].at("code_failures").as_int64() == 3);
    CHECK(records[0].at("peer_uid").as_int64() == 1234);
}

TEST_CASE("admin unlock --directory unlocks the account, or says why not", "[admin]") {
    admin_harness h;
    h.directory.user_of("alice").locked = true;
    (void)h.state->record_failure("verify:user:id-alice", h.now, 900);
    const auto reply = h.run(admin::command::unlock, "alice", true);
    REQUIRE(reply.at("ok").as_bool());
    CHECK(reply.at("directory").at("unlocked").as_bool());
    CHECK(reply.at("directory").at("was_locked").as_bool());
    CHECK_FALSE(h.directory.user_of("alice").locked);
    // A protected account is never unlocked in the directory; pwresetd's counters are
    // cleared all the same.
    (void)h.state->record_failure("verify:user:id-erin", h.now, 900);
    const auto refused = h.run(admin::command::unlock, "erin", true);
    CHECK_FALSE(refused.at("ok").as_bool());
    CHECK(error_of(refused) == "directory_unlock_failed");
    CHECK(h.state->get_failures("verify:user:id-erin", h.now).count == 0);
    const auto records = h.records("admin.unlock");
    REQUIRE(records.size() == 2);
    CHECK(records[0].at("outcome").as_string() == "unlocked");
    CHECK(records[1].at("outcome").as_string() == "partly_unlocked");
}

TEST_CASE("admin status reports the state store and the counters", "[admin]") {
    admin_harness h;
    const auto reply = h.run(admin::command::status, "");
    CHECK(reply.at("ok").as_bool());
    CHECK(reply.at("state").at("backend").as_string() == "sqlite");
    CHECK(reply.at("state").at("answers").as_bool());
    CHECK(reply.at("counters").at("connections").as_int64() == 7);
    CHECK(reply.at("directories").as_array().empty());  // the fake has no servers to probe
}
