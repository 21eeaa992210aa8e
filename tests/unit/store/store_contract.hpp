#pragma once
// The state_store contract, written once and run against every backend (SQLite and Redis),
// like Kea's GenericLeaseMgrTest. A backend's test file defines a fixture type
//
//     struct my_backend {
//         my_backend();                              // fresh, empty storage
//         std::unique_ptr<state_store> open();       // a new instance on that storage
//     };
//
// and calls run_store_contract<my_backend>() from a TEST_CASE. Every SECTION starts from a
// new fixture; two open() calls on one fixture stand for two daemons sharing the state.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "store/state_store.hpp"

namespace pwresetd::store::contract {

inline constexpr std::int64_t t0 = 1'700'000'000;

inline std::string id_hash(std::string_view id) {
    return crypto::sha256_hex(id);
}

inline reset_flow make_flow(std::string_view id, std::string user_key,
                            std::int64_t expires_at = t0 + 900) {
    reset_flow flow;
    flow.id_hash = id_hash(id);
    flow.user_key = std::move(user_key);
    flow.username = "user of " + flow.user_key;
    flow.user_dn = "CN=" + flow.user_key + ",OU=People,DC=example,DC=org";
    flow.created_at = t0;
    flow.expires_at = expires_at;
    return flow;
}

// A 20-byte TOTP key with a zero byte and high bytes, so any text handling would show.
inline secret totp_key(unsigned char seed) {
    std::vector<unsigned char> bytes(20);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<unsigned char>(seed + i * 37U);
    }
    bytes[3] = 0x00;
    bytes[4] = 0xff;
    return secret(std::span<const unsigned char>(bytes));
}

inline pending_enrollment make_pending(std::string user_key, unsigned char seed,
                                       std::int64_t expires_at = t0 + 600) {
    pending_enrollment pending;
    pending.user_key = std::move(user_key);
    pending.username = "user of " + pending.user_key;
    pending.user_dn = "uid=" + pending.user_key + ",ou=people,dc=example,dc=org";
    pending.key = totp_key(seed);
    pending.expires_at = expires_at;
    return pending;
}

// A stand-in for the keyed hash the caller computes for a one-time or recovery code.
inline std::string code_hash(std::string_view code) {
    return crypto::sha256_hex(std::string("code:") + std::string(code));
}

// Starts `threads` threads at the same instant, each calling attempt(index); returns how
// many returned true. An exception in a thread fails the test.
template <class Attempt>
int count_winners(int threads, Attempt attempt) {
    std::latch start(threads);
    std::atomic<int> wins{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            start.arrive_and_wait();
            try {
                if (attempt(i)) {
                    ++wins;
                }
            } catch (...) {
                ++errors;
            }
        });
    }
    for (auto& t : pool) {
        t.join();
    }
    REQUIRE(errors.load() == 0);
    return wins.load();
}

template <class Backend>
void run_store_contract() {
    Backend backend;
    std::unique_ptr<state_store> store = backend.open();
    REQUIRE(store != nullptr);

    SECTION("flows") {
        SECTION("a stored flow reads back field by field") {
            auto flow = make_flow("reset-1", "guid-alice");
            flow.username = "Alice";
            flow.directory = "corp";
            flow.decoy = true;
            flow.user_dn = "";
            flow.verified_methods = {"email", "totp"};
            store->put_flow(flow);

            const auto got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->id_hash == flow.id_hash);
            CHECK(got->user_key == "guid-alice");
            CHECK(got->username == "Alice");
            CHECK(got->user_dn.empty());
            CHECK(got->directory == "corp");
            CHECK(got->decoy);
            CHECK(got->created_at == t0);
            CHECK(got->expires_at == t0 + 900);
            CHECK(got->verified_methods == std::vector<std::string>{"email", "totp"});
            CHECK(got->claimed_until == 0);
        }
        SECTION("what a flow requires reads back") {
            auto flow = make_flow("reset-1", "guid-alice");
            flow.required_methods = 2;
            flow.totp_required = true;
            store->put_flow(flow);
            store->add_verified_method(flow.id_hash, "email");
            auto got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->required_methods == 2);
            CHECK(got->totp_required);
            CHECK(got->verified_methods == std::vector<std::string>{"email"});

            // A second instance (another daemon) reads the same; put_flow replaces them.
            auto other = backend.open();
            got = other->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->required_methods == 2);
            CHECK(got->totp_required);
            flow.required_methods = 3;
            flow.totp_required = false;
            other->put_flow(flow);
            got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->required_methods == 3);
            CHECK_FALSE(got->totp_required);
        }
        SECTION("a flow stored with the defaults requires one method and no authenticator") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            const auto got = store->get_open_flow(flow.id_hash, t0);
            REQUIRE(got.has_value());
            CHECK(got->required_methods == 1);
            CHECK_FALSE(got->totp_required);
        }
        SECTION("an unknown flow reads as absent") {
            CHECK_FALSE(store->get_open_flow(id_hash("nobody"), t0).has_value());
        }
        SECTION("a flow expires at its expires_at") {
            const auto flow = make_flow("reset-1", "guid-alice", t0 + 10);
            store->put_flow(flow);
            CHECK(store->get_open_flow(flow.id_hash, t0 + 9).has_value());
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0 + 10).has_value());
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0 + 100).has_value());
        }
        SECTION("verified methods are appended in order, without duplicates") {
            auto flow = make_flow("reset-1", "guid-alice");
            flow.verified_methods = {"email"};
            store->put_flow(flow);
            store->add_verified_method(flow.id_hash, "totp");
            store->add_verified_method(flow.id_hash, "email");
            store->add_verified_method(flow.id_hash, "totp");
            store->add_verified_method(flow.id_hash, "sms");
            const auto got = store->get_open_flow(flow.id_hash, t0);
            REQUIRE(got.has_value());
            CHECK(got->verified_methods == std::vector<std::string>{"email", "totp", "sms"});
        }
        SECTION("adding a method to an unknown or closed flow changes nothing") {
            store->add_verified_method(id_hash("nobody"), "totp");
            CHECK_FALSE(store->get_open_flow(id_hash("nobody"), t0).has_value());

            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->close_flow(flow.id_hash, t0));
            store->add_verified_method(flow.id_hash, "totp");
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0).has_value());
        }
        SECTION("close_flow succeeds once") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            CHECK(store->close_flow(flow.id_hash, t0 + 1));
            CHECK_FALSE(store->close_flow(flow.id_hash, t0 + 1));
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0 + 1).has_value());
        }
        SECTION("close_flow refuses an expired or unknown flow") {
            const auto flow = make_flow("reset-1", "guid-alice", t0 + 10);
            store->put_flow(flow);
            CHECK_FALSE(store->close_flow(flow.id_hash, t0 + 10));
            CHECK_FALSE(store->close_flow(id_hash("nobody"), t0));
            // The refusal left it open: with an earlier clock it can still be closed.
            CHECK(store->close_flow(flow.id_hash, t0 + 9));
        }
        SECTION("claim_flow holds a flow until claim_until; a second claim is refused") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            CHECK(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 30, t0 + 60));
            CHECK_FALSE(backend.open()->claim_flow(flow.id_hash, t0 + 2, t0 + 32));
            // Still open, and the claim shows.
            const auto got = store->get_open_flow(flow.id_hash, t0 + 2);
            REQUIRE(got.has_value());
            CHECK(got->claimed_until == t0 + 31);
            CHECK(got->user_key == "guid-alice");
        }
        SECTION("a claim that expired can be taken again") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 29, t0 + 59));
            CHECK(store->claim_flow(flow.id_hash, t0 + 30, t0 + 60));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 31, t0 + 61));
            const auto got = store->get_open_flow(flow.id_hash, t0 + 31);
            REQUIRE(got.has_value());
            CHECK(got->claimed_until == t0 + 60);
        }
        SECTION("release_flow makes a claimed flow claimable at once") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            store->release_flow(flow.id_hash);
            auto got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->claimed_until == 0);
            CHECK(backend.open()->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            // Releasing an unclaimed or unknown flow changes nothing.
            store->release_flow(flow.id_hash);
            store->release_flow(flow.id_hash);
            store->release_flow(id_hash("nobody"));
            CHECK_FALSE(store->get_open_flow(id_hash("nobody"), t0).has_value());
            CHECK(store->claim_flow(flow.id_hash, t0 + 2, t0 + 32));
        }
        SECTION("a claimed flow takes verified methods and keeps its claim") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            store->add_verified_method(flow.id_hash, "email");
            const auto got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->verified_methods == std::vector<std::string>{"email"});
            CHECK(got->claimed_until == t0 + 30);
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
        }
        SECTION("close_flow closes a claimed flow; then it cannot be claimed or released") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            CHECK(store->close_flow(flow.id_hash, t0 + 1));
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0 + 1).has_value());
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 40, t0 + 70));
            store->release_flow(flow.id_hash);
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0 + 1).has_value());
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
            CHECK_FALSE(store->close_flow(flow.id_hash, t0 + 1));
        }
        SECTION("close_user_flows closes claimed flows too") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            store->close_user_flows("guid-alice");
            CHECK_FALSE(store->get_open_flow(flow.id_hash, t0).has_value());
            CHECK_FALSE(store->claim_flow(flow.id_hash, t0 + 40, t0 + 70));
        }
        SECTION("claim_flow refuses a closed, expired or unknown flow") {
            CHECK_FALSE(store->claim_flow(id_hash("nobody"), t0, t0 + 30));
            CHECK_FALSE(store->get_open_flow(id_hash("nobody"), t0).has_value());

            const auto closed = make_flow("reset-closed", "guid-alice");
            store->put_flow(closed);
            REQUIRE(store->close_flow(closed.id_hash, t0));
            CHECK_FALSE(store->claim_flow(closed.id_hash, t0, t0 + 30));

            const auto expiring = make_flow("reset-expiring", "guid-alice", t0 + 10);
            store->put_flow(expiring);
            CHECK_FALSE(store->claim_flow(expiring.id_hash, t0 + 10, t0 + 40));
            CHECK_FALSE(store->claim_flow(expiring.id_hash, t0 + 100, t0 + 130));
            // The refusals left it unclaimed: with an earlier clock it can still be claimed.
            CHECK(store->claim_flow(expiring.id_hash, t0 + 9, t0 + 39));
        }
        SECTION("put_flow replaces a claimed flow with an unclaimed one") {
            auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            REQUIRE(store->claim_flow(flow.id_hash, t0, t0 + 30));
            flow.claimed_until = t0 + 1000;  // ignored
            store->put_flow(flow);
            const auto got = store->get_open_flow(flow.id_hash, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->claimed_until == 0);
            CHECK(store->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
        }
        SECTION("claim_flow needs claim_until after now") {
            const auto flow = make_flow("reset-1", "guid-alice");
            store->put_flow(flow);
            CHECK_THROWS_AS(store->claim_flow(flow.id_hash, t0 + 5, t0 + 5), std::invalid_argument);
            CHECK_THROWS_AS(store->claim_flow(flow.id_hash, t0 + 5, t0), std::invalid_argument);
            CHECK(store->claim_flow(flow.id_hash, t0 + 5, t0 + 6));
        }
        SECTION("close_user_flows closes only that user's flows") {
            const auto a1 = make_flow("reset-a1", "guid-alice");
            const auto a2 = make_flow("reset-a2", "guid-alice");
            const auto b1 = make_flow("reset-b1", "guid-bob");
            store->put_flow(a1);
            store->put_flow(a2);
            store->put_flow(b1);
            store->close_user_flows("guid-alice");
            CHECK_FALSE(store->get_open_flow(a1.id_hash, t0).has_value());
            CHECK_FALSE(store->get_open_flow(a2.id_hash, t0).has_value());
            CHECK_FALSE(store->close_flow(a1.id_hash, t0));
            CHECK(store->get_open_flow(b1.id_hash, t0).has_value());
            CHECK(store->close_flow(b1.id_hash, t0));
        }
    }

    SECTION("TOTP enrollments") {
        const auto enrollment = id_hash("enroll-1");
        SECTION("a pending enrollment reads back with its key intact") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
            const auto got = store->get_pending_totp(enrollment, t0 + 1);
            REQUIRE(got.has_value());
            CHECK(got->user_key == "guid-alice");
            CHECK(got->username == "user of guid-alice");
            CHECK(got->user_dn == "uid=guid-alice,ou=people,dc=example,dc=org");
            CHECK(got->expires_at == t0 + 600);
            CHECK(got->key.size() == 20);
            CHECK(got->key.equals(totp_key(7)));
        }
        SECTION("a pending enrollment expires at its expires_at") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7, t0 + 10));
            CHECK(store->get_pending_totp(enrollment, t0 + 9).has_value());
            CHECK_FALSE(store->get_pending_totp(enrollment, t0 + 10).has_value());
            CHECK_FALSE(store->confirm_totp(enrollment, t0 + 10));
            CHECK_FALSE(store->get_totp("guid-alice").has_value());
        }
        SECTION("delete_pending_totp removes it") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
            store->delete_pending_totp(enrollment);
            CHECK_FALSE(store->get_pending_totp(enrollment, t0).has_value());
            CHECK_FALSE(store->confirm_totp(enrollment, t0));
        }
        SECTION("confirm_totp turns the pending key into the user's key, once") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
            CHECK_FALSE(store->get_totp("guid-alice").has_value());
            CHECK(store->confirm_totp(enrollment, t0 + 1));
            const auto key = store->get_totp("guid-alice");
            REQUIRE(key.has_value());
            CHECK(key->equals(totp_key(7)));
            CHECK_FALSE(store->get_pending_totp(enrollment, t0 + 1).has_value());
            CHECK_FALSE(store->confirm_totp(enrollment, t0 + 1));
            CHECK_FALSE(store->get_totp("guid-bob").has_value());
        }
        SECTION("a confirmed enrollment replaces the earlier key") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
            REQUIRE(store->confirm_totp(enrollment, t0));
            const auto second = id_hash("enroll-2");
            store->put_pending_totp(second, make_pending("guid-alice", 99));
            REQUIRE(store->confirm_totp(second, t0));
            const auto key = store->get_totp("guid-alice");
            REQUIRE(key.has_value());
            CHECK(key->equals(totp_key(99)));
            CHECK_FALSE(key->equals(totp_key(7)));
        }
        SECTION("confirm_totp of an unknown enrollment is false") {
            CHECK_FALSE(store->confirm_totp(id_hash("nobody"), t0));
        }
        SECTION("remove_totp removes the key, once") {
            store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
            REQUIRE(store->confirm_totp(enrollment, t0));
            CHECK(store->remove_totp("guid-alice"));
            CHECK_FALSE(store->get_totp("guid-alice").has_value());
            CHECK_FALSE(store->remove_totp("guid-alice"));
        }
    }

    SECTION("one-time codes") {
        const auto flow_a = id_hash("reset-a");
        const auto flow_b = id_hash("reset-b");
        const auto h1 = code_hash("111111");
        const auto h2 = code_hash("222222");
        SECTION("a code is consumed once") {
            store->put_code(flow_a, "email", h1, t0 + 300);
            CHECK(store->consume_code(flow_a, "email", h1, t0 + 1));
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0 + 1));
        }
        SECTION("no code stored: nothing to consume") {
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0));
        }
        SECTION("a wrong code leaves the live one in place") {
            store->put_code(flow_a, "email", h1, t0 + 300);
            CHECK_FALSE(store->consume_code(flow_a, "email", h2, t0 + 1));
            CHECK_FALSE(store->consume_code(flow_a, "email", "", t0 + 1));
            CHECK(store->consume_code(flow_a, "email", h1, t0 + 2));
        }
        SECTION("a code expires at its expires_at") {
            store->put_code(flow_a, "email", h1, t0 + 10);
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0 + 10));
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0 + 100));
            store->put_code(flow_a, "email", h1, t0 + 10);
            CHECK(store->consume_code(flow_a, "email", h1, t0 + 9));
        }
        SECTION("a new code supersedes the earlier one, expiry included") {
            store->put_code(flow_a, "email", h1, t0 + 10);
            store->put_code(flow_a, "email", h2, t0 + 300);
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0 + 1));
            CHECK(store->consume_code(flow_a, "email", h2, t0 + 100));
            CHECK_FALSE(store->consume_code(flow_a, "email", h2, t0 + 100));
        }
        SECTION("codes are kept per method") {
            store->put_code(flow_a, "email", h1, t0 + 300);
            store->put_code(flow_a, "sms", h2, t0 + 300);
            CHECK_FALSE(store->consume_code(flow_a, "sms", h1, t0));
            CHECK_FALSE(store->consume_code(flow_a, "email", h2, t0));
            CHECK(store->consume_code(flow_a, "email", h1, t0));
            CHECK(store->consume_code(flow_a, "sms", h2, t0));
        }
        SECTION("a code stored for one flow is not consumed through another") {
            store->put_code(flow_a, "email", h1, t0 + 300);
            CHECK_FALSE(store->consume_code(flow_b, "email", h1, t0));
            store->put_code(flow_b, "email", h2, t0 + 300);
            CHECK_FALSE(store->consume_code(flow_b, "email", h1, t0));
            CHECK(store->consume_code(flow_a, "email", h1, t0));
            CHECK(store->consume_code(flow_b, "email", h2, t0));
        }
        SECTION("another instance consumes the code this one stored") {
            auto other = backend.open();
            store->put_code(flow_a, "email", h1, t0 + 300);
            CHECK(other->consume_code(flow_a, "email", h1, t0));
            CHECK_FALSE(store->consume_code(flow_a, "email", h1, t0));
        }
    }

    SECTION("rate windows") {
        SECTION("hits count up to the limit; then nothing is counted") {
            auto hit = store->hit_window("dest:a", t0, 3600, 3);
            CHECK(hit.allowed);
            CHECK(hit.count == 1);
            CHECK(hit.resets_at == t0 + 3600);
            hit = store->hit_window("dest:a", t0 + 10, 3600, 3);
            CHECK(hit.allowed);
            CHECK(hit.count == 2);
            CHECK(hit.resets_at == t0 + 3600);  // fixed: the window started at the first hit
            hit = store->hit_window("dest:a", t0 + 20, 3600, 3);
            CHECK(hit.allowed);
            CHECK(hit.count == 3);
            for (int i = 0; i < 3; ++i) {
                hit = store->hit_window("dest:a", t0 + 30 + i, 3600, 3);
                CHECK_FALSE(hit.allowed);
                CHECK(hit.count == 3);
                CHECK(hit.resets_at == t0 + 3600);
            }
        }
        SECTION("an expired window starts again at one") {
            REQUIRE(store->hit_window("dest:a", t0, 60, 2).allowed);
            REQUIRE(store->hit_window("dest:a", t0 + 1, 60, 2).allowed);
            const auto refused = store->hit_window("dest:a", t0 + 59, 60, 2);
            CHECK_FALSE(refused.allowed);
            CHECK(refused.resets_at == t0 + 60);  // a refused hit does not extend the window
            const auto hit = store->hit_window("dest:a", t0 + 60, 60, 2);
            CHECK(hit.allowed);
            CHECK(hit.count == 1);
            CHECK(hit.resets_at == t0 + 120);
        }
        SECTION("windows are independent") {
            REQUIRE(store->hit_window("dest:a", t0, 60, 1).allowed);
            CHECK_FALSE(store->hit_window("dest:a", t0, 60, 1).allowed);
            const auto other = store->hit_window("dest:b", t0, 60, 1);
            CHECK(other.allowed);
            CHECK(other.count == 1);
        }
        SECTION("two instances share one window") {
            auto other = backend.open();
            REQUIRE(store->hit_window("dest:a", t0, 60, 2).allowed);
            const auto hit = other->hit_window("dest:a", t0 + 1, 60, 2);
            CHECK(hit.allowed);
            CHECK(hit.count == 2);
            CHECK_FALSE(store->hit_window("dest:a", t0 + 2, 60, 2).allowed);
        }
    }

    SECTION("recovery codes") {
        const std::vector<std::string> codes = {code_hash("r1"), code_hash("r2"), code_hash("r3")};
        SECTION("a user without codes has none left") {
            CHECK(store->recovery_codes_left("guid-alice") == 0);
            CHECK_FALSE(store->consume_recovery_code("guid-alice", codes[0]));
        }
        SECTION("each code is consumed once") {
            store->set_recovery_codes("guid-alice", codes);
            CHECK(store->recovery_codes_left("guid-alice") == 3);
            CHECK(store->consume_recovery_code("guid-alice", codes[1]));
            CHECK_FALSE(store->consume_recovery_code("guid-alice", codes[1]));
            CHECK(store->recovery_codes_left("guid-alice") == 2);
            CHECK_FALSE(store->consume_recovery_code("guid-alice", code_hash("r9")));
            CHECK(store->recovery_codes_left("guid-alice") == 2);
            CHECK(store->consume_recovery_code("guid-alice", codes[0]));
            CHECK(store->consume_recovery_code("guid-alice", codes[2]));
            CHECK(store->recovery_codes_left("guid-alice") == 0);
        }
        SECTION("setting codes replaces every earlier code") {
            store->set_recovery_codes("guid-alice", codes);
            store->set_recovery_codes("guid-alice", {code_hash("n1"), code_hash("n2")});
            CHECK(store->recovery_codes_left("guid-alice") == 2);
            CHECK_FALSE(store->consume_recovery_code("guid-alice", codes[0]));
            CHECK(store->consume_recovery_code("guid-alice", code_hash("n2")));
            store->set_recovery_codes("guid-alice", {});
            CHECK(store->recovery_codes_left("guid-alice") == 0);
            CHECK_FALSE(store->consume_recovery_code("guid-alice", code_hash("n1")));
        }
        SECTION("codes belong to one user") {
            store->set_recovery_codes("guid-alice", codes);
            store->set_recovery_codes("guid-bob", {codes[0]});
            CHECK(store->consume_recovery_code("guid-alice", codes[0]));
            CHECK_FALSE(store->consume_recovery_code("guid-bob", codes[1]));
            CHECK(store->recovery_codes_left("guid-bob") == 1);
            CHECK(store->consume_recovery_code("guid-bob", codes[0]));
            CHECK(store->recovery_codes_left("guid-alice") == 2);
        }
        SECTION("remove_totp removes the user's codes with the key") {
            store->put_pending_totp(id_hash("enroll-1"), make_pending("guid-alice", 7));
            REQUIRE(store->confirm_totp(id_hash("enroll-1"), t0));
            store->set_recovery_codes("guid-alice", codes);
            store->set_recovery_codes("guid-bob", codes);
            CHECK(store->remove_totp("guid-alice"));
            CHECK(store->recovery_codes_left("guid-alice") == 0);
            CHECK_FALSE(store->consume_recovery_code("guid-alice", codes[0]));
            CHECK(store->recovery_codes_left("guid-bob") == 3);
            // Without a key, remove_totp is false but still leaves no codes behind.
            CHECK_FALSE(store->remove_totp("guid-bob"));
            CHECK(store->recovery_codes_left("guid-bob") == 0);
        }
    }

    SECTION("replay protection accepts only strictly increasing steps") {
        CHECK_FALSE(store->last_totp_step("guid-alice").has_value());
        CHECK(store->accept_totp_step("guid-alice", 100));
        CHECK_FALSE(store->accept_totp_step("guid-alice", 100));
        CHECK_FALSE(store->accept_totp_step("guid-alice", 99));
        CHECK(store->last_totp_step("guid-alice") == 100);
        CHECK(store->accept_totp_step("guid-alice", 101));
        CHECK(store->last_totp_step("guid-alice") == 101);
        CHECK(store->accept_totp_step("guid-bob", 50));
        CHECK(store->last_totp_step("guid-alice") == 101);
        CHECK(store->last_totp_step("guid-bob") == 50);
    }

    SECTION("failure counters") {
        SECTION("a missing counter is zero") {
            const auto state = store->get_failures("verify:nobody", t0);
            CHECK(state.count == 0);
            CHECK(state.expires_at == 0);
        }
        SECTION("failures count up and each one pushes the expiry") {
            auto state = store->record_failure("verify:alice", t0, 60);
            CHECK(state.count == 1);
            CHECK(state.expires_at == t0 + 60);
            state = store->record_failure("verify:alice", t0 + 1, 60);
            CHECK(state.count == 2);
            state = store->record_failure("verify:alice", t0 + 2, 60);
            CHECK(state.count == 3);
            CHECK(state.expires_at == t0 + 62);
            state = store->get_failures("verify:alice", t0 + 61);
            CHECK(state.count == 3);
            CHECK(state.expires_at == t0 + 62);
            CHECK(store->get_failures("verify:bob", t0 + 3).count == 0);
        }
        SECTION("an expired counter reads as zero and starts again at one") {
            store->record_failure("verify:alice", t0, 60);
            store->record_failure("verify:alice", t0, 60);
            const auto expired = store->get_failures("verify:alice", t0 + 60);
            CHECK(expired.count == 0);
            CHECK(expired.expires_at == 0);
            const auto state = store->record_failure("verify:alice", t0 + 60, 30);
            CHECK(state.count == 1);
            CHECK(state.expires_at == t0 + 90);
        }
        SECTION("reserve_failure counts up to the limit; then counts and extends nothing") {
            auto r = store->reserve_failure("verify:alice", t0, 60, 3);
            CHECK(r.reserved);
            CHECK(r.count == 1);
            CHECK(r.expires_at == t0 + 60);
            r = store->reserve_failure("verify:alice", t0 + 1, 60, 3);
            CHECK(r.reserved);
            CHECK(r.count == 2);
            CHECK(r.expires_at == t0 + 61);
            r = store->reserve_failure("verify:alice", t0 + 2, 60, 3);
            CHECK(r.reserved);
            CHECK(r.count == 3);
            CHECK(r.expires_at == t0 + 62);
            for (const std::int64_t at : {t0 + 3, t0 + 30, t0 + 61}) {
                INFO("at t0 + " << at - t0);
                r = store->reserve_failure("verify:alice", at, 60, 3);
                CHECK_FALSE(r.reserved);
                CHECK(r.count == 3);
                CHECK(r.expires_at == t0 + 62);  // a refusal does not extend the counter
            }
            const auto state = store->get_failures("verify:alice", t0 + 61);
            CHECK(state.count == 3);
            CHECK(state.expires_at == t0 + 62);
            CHECK(store->get_failures("verify:alice", t0 + 62).count == 0);
            CHECK(store->get_failures("verify:bob", t0).count == 0);
        }
        SECTION("reserve_failure on an expired counter starts again at one") {
            REQUIRE(store->reserve_failure("verify:alice", t0, 60, 2).reserved);
            REQUIRE(store->reserve_failure("verify:alice", t0, 60, 2).reserved);
            REQUIRE_FALSE(store->reserve_failure("verify:alice", t0 + 59, 60, 2).reserved);
            const auto r = store->reserve_failure("verify:alice", t0 + 60, 30, 2);
            CHECK(r.reserved);
            CHECK(r.count == 1);
            CHECK(r.expires_at == t0 + 90);
            CHECK(store->get_failures("verify:alice", t0 + 60).count == 1);
        }
        SECTION("reserve_failure and record_failure share one counter; clear resets it") {
            store->record_failure("verify:alice", t0, 60);
            store->record_failure("verify:alice", t0, 60);
            auto r = store->reserve_failure("verify:alice", t0 + 1, 60, 3);
            CHECK(r.reserved);
            CHECK(r.count == 3);
            r = store->reserve_failure("verify:alice", t0 + 2, 60, 3);
            CHECK_FALSE(r.reserved);
            CHECK(r.count == 3);
            CHECK(r.expires_at == t0 + 61);
            store->clear_failures("verify:alice");
            r = store->reserve_failure("verify:alice", t0 + 3, 60, 3);
            CHECK(r.reserved);
            CHECK(r.count == 1);
        }
        SECTION("reserve_failure with a limit of zero reserves and stores nothing") {
            const auto r = store->reserve_failure("verify:alice", t0, 60, 0);
            CHECK_FALSE(r.reserved);
            CHECK(r.count == 0);
            CHECK(r.expires_at == 0);
            CHECK(store->get_failures("verify:alice", t0).count == 0);
            CHECK(store->reserve_failure("verify:alice", t0, 60, 1).count == 1);
        }
        SECTION("clear_failures resets one counter") {
            store->record_failure("verify:alice", t0, 60);
            store->record_failure("verify:bob", t0, 60);
            store->clear_failures("verify:alice");
            CHECK(store->get_failures("verify:alice", t0).count == 0);
            CHECK(store->get_failures("verify:bob", t0).count == 1);
            CHECK(store->record_failure("verify:alice", t0, 60).count == 1);
        }
    }

    SECTION("purge_expired deletes expired flows, enrollments, counters, codes and windows") {
        const auto old_flow = make_flow("reset-old", "guid-alice", t0 + 10);
        const auto new_flow = make_flow("reset-new", "guid-alice", t0 + 1000);
        store->put_flow(old_flow);
        store->put_flow(new_flow);
        store->put_pending_totp(id_hash("enroll-old"), make_pending("guid-alice", 1, t0 + 10));
        store->put_pending_totp(id_hash("enroll-new"), make_pending("guid-bob", 2, t0 + 1000));
        store->put_pending_totp(id_hash("enroll-key"), make_pending("guid-carol", 3, t0 + 10));
        REQUIRE(store->confirm_totp(id_hash("enroll-key"), t0));
        REQUIRE(store->accept_totp_step("guid-carol", 5));
        store->record_failure("verify:old", t0, 10);
        store->record_failure("verify:new", t0, 1000);
        store->put_code(old_flow.id_hash, "email", code_hash("1"), t0 + 10);
        store->put_code(new_flow.id_hash, "email", code_hash("2"), t0 + 1000);
        store->put_code(new_flow.id_hash, "sms", code_hash("3"), t0 + 10);
        REQUIRE(store->hit_window("dest:old", t0, 10, 5).allowed);
        REQUIRE(store->hit_window("dest:new", t0, 1000, 5).allowed);
        store->set_recovery_codes("guid-carol", {code_hash("r1"), code_hash("r2")});

        store->purge_expired(t0 + 10);

        // Asking with an earlier clock shows what is really gone.
        CHECK_FALSE(store->get_open_flow(old_flow.id_hash, t0).has_value());
        CHECK(store->get_open_flow(new_flow.id_hash, t0).has_value());
        CHECK_FALSE(store->get_pending_totp(id_hash("enroll-old"), t0).has_value());
        CHECK(store->get_pending_totp(id_hash("enroll-new"), t0).has_value());
        CHECK(store->get_failures("verify:old", t0).count == 0);
        CHECK(store->get_failures("verify:new", t0).count == 1);
        CHECK(store->get_totp("guid-carol").has_value());
        CHECK(store->last_totp_step("guid-carol") == 5);
        CHECK_FALSE(store->consume_code(old_flow.id_hash, "email", code_hash("1"), t0));
        CHECK_FALSE(store->consume_code(new_flow.id_hash, "sms", code_hash("3"), t0));
        CHECK(store->consume_code(new_flow.id_hash, "email", code_hash("2"), t0));
        // A purged window starts again; a live one keeps its count.
        CHECK(store->hit_window("dest:old", t0 + 1, 10, 5).count == 1);
        CHECK(store->hit_window("dest:new", t0 + 1, 1000, 5).count == 2);
        CHECK(store->recovery_codes_left("guid-carol") == 2);  // recovery codes do not expire
    }

    SECTION("concurrency") {
        SECTION("8 threads racing accept_totp_step for one step: exactly one wins") {
            for (std::int64_t step = 1; step <= 20; ++step) {
                const int wins = count_winners(
                    8, [&](int) { return store->accept_totp_step("guid-alice", step); });
                CHECK(wins == 1);
            }
            CHECK(store->last_totp_step("guid-alice") == 20);
        }
        SECTION("two instances racing close_flow: exactly one wins each flow") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 20; ++i) {
                const auto flow = make_flow("race-" + std::to_string(i), "guid-alice");
                store->put_flow(flow);
                const int wins = count_winners(4, [&](int thread) {
                    return instances[thread % 2]->close_flow(flow.id_hash, t0);
                });
                CHECK(wins == 1);
            }
        }
        SECTION("8 threads racing claim_flow: exactly one wins each flow") {
            for (int i = 0; i < 20; ++i) {
                const auto flow = make_flow("race-" + std::to_string(i), "guid-alice");
                store->put_flow(flow);
                const int wins = count_winners(
                    8, [&](int) { return store->claim_flow(flow.id_hash, t0, t0 + 30); });
                CHECK(wins == 1);
                const auto got = store->get_open_flow(flow.id_hash, t0);
                REQUIRE(got.has_value());
                CHECK(got->claimed_until == t0 + 30);
            }
        }
        SECTION("8 threads on two instances racing claim_flow: exactly one wins each flow") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 20; ++i) {
                const auto flow = make_flow("race-" + std::to_string(i), "guid-alice");
                store->put_flow(flow);
                // Each thread asks for a claim of its own length: the winner's shows.
                std::atomic<int> winner{-1};
                const int wins = count_winners(8, [&](int thread) {
                    const bool won =
                        instances[thread % 2]->claim_flow(flow.id_hash, t0, t0 + 30 + thread);
                    if (won) {
                        winner = thread;
                    }
                    return won;
                });
                CHECK(wins == 1);
                const auto got = other->get_open_flow(flow.id_hash, t0);
                REQUIRE(got.has_value());
                CHECK(got->claimed_until == t0 + 30 + winner.load());
            }
        }
        SECTION("8 threads on two instances racing claim and release: one holder at a time") {
            // Each thread claims, checks that nobody else holds the flow, and releases.
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            const auto flow = make_flow("race", "guid-alice");
            store->put_flow(flow);
            std::atomic<int> holders{0};
            std::atomic<int> overlaps{0};
            std::atomic<int> claims{0};
            count_winners(8, [&](int thread) {
                auto* s = instances[thread % 2];
                for (int i = 0; i < 25; ++i) {
                    if (s->claim_flow(flow.id_hash, t0, t0 + 30)) {
                        ++claims;
                        if (++holders != 1) {
                            ++overlaps;
                        }
                        --holders;
                        s->release_flow(flow.id_hash);
                    }
                }
                return true;
            });
            CHECK(overlaps.load() == 0);
            CHECK(claims.load() >= 1);
            CHECK(store->claim_flow(flow.id_hash, t0, t0 + 30));
        }
        SECTION("two instances racing confirm_totp: exactly one wins") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 10; ++i) {
                const auto enrollment = id_hash("race-" + std::to_string(i));
                store->put_pending_totp(enrollment, make_pending("guid-alice", 7));
                const int wins = count_winners(4, [&](int thread) {
                    return instances[thread % 2]->confirm_totp(enrollment, t0);
                });
                CHECK(wins == 1);
            }
        }
        SECTION("8 threads on two instances racing consume_code: exactly one wins") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 10; ++i) {
                const auto flow = id_hash("race-" + std::to_string(i));
                const auto hash = code_hash(std::to_string(i));
                store->put_code(flow, "email", hash, t0 + 300);
                const int wins = count_winners(8, [&](int thread) {
                    return instances[thread % 2]->consume_code(flow, "email", hash, t0);
                });
                CHECK(wins == 1);
            }
        }
        SECTION("20 hits on two instances racing a window with limit 5: exactly 5 counted") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 5; ++i) {
                const auto key = "dest:race-" + std::to_string(i);
                const int wins = count_winners(20, [&](int thread) {
                    return instances[thread % 2]->hit_window(key, t0, 3600, 5).allowed;
                });
                CHECK(wins == 5);
                const auto after = store->hit_window(key, t0, 3600, 5);
                CHECK_FALSE(after.allowed);
                CHECK(after.count == 5);
            }
        }
        SECTION("8 threads on two instances racing consume_recovery_code: exactly one wins") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            std::vector<std::string> codes;
            for (int i = 0; i < 10; ++i) {
                codes.push_back(code_hash("r" + std::to_string(i)));
            }
            store->set_recovery_codes("guid-alice", codes);
            for (const auto& hash : codes) {
                const int wins = count_winners(8, [&](int thread) {
                    return instances[thread % 2]->consume_recovery_code("guid-alice", hash);
                });
                CHECK(wins == 1);
            }
            CHECK(other->recovery_codes_left("guid-alice") == 0);
        }
        SECTION("40 threads racing reserve_failure with limit 5: exactly 5 reserved") {
            for (int i = 0; i < 5; ++i) {
                const auto key = "verify:race-" + std::to_string(i);
                const int wins = count_winners(
                    40, [&](int) { return store->reserve_failure(key, t0, 60, 5).reserved; });
                CHECK(wins == 5);
                const auto state = store->get_failures(key, t0);
                CHECK(state.count == 5);
                CHECK(state.expires_at == t0 + 60);
            }
        }
        SECTION("40 threads on two instances racing reserve_failure with limit 5: exactly 5") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            for (int i = 0; i < 5; ++i) {
                const auto key = "verify:race-" + std::to_string(i);
                const int wins = count_winners(40, [&](int thread) {
                    return instances[thread % 2]->reserve_failure(key, t0, 60, 5).reserved;
                });
                CHECK(wins == 5);
                CHECK(other->get_failures(key, t0).count == 5);
                CHECK_FALSE(store->reserve_failure(key, t0, 60, 5).reserved);
            }
        }
        SECTION("two instances racing record_failure lose no increment") {
            auto other = backend.open();
            state_store* instances[] = {store.get(), other.get()};
            const int wins = count_winners(8, [&](int thread) {
                for (int i = 0; i < 25; ++i) {
                    instances[thread % 2]->record_failure("verify:alice", t0, 60);
                }
                return true;
            });
            CHECK(wins == 8);
            CHECK(store->get_failures("verify:alice", t0).count == 200);
            CHECK(other->get_failures("verify:alice", t0).count == 200);
        }
    }
}

}  // namespace pwresetd::store::contract
