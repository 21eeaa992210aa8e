#include "store/timed_store.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string_view>

#include "common/metrics.hpp"
#include "common/secret.hpp"
#include "store/state_store.hpp"
#include "support/temp_dir.hpp"
#include "unit/store/store_contract.hpp"

namespace store = pwresetd::store;
namespace metrics = pwresetd::metrics;
namespace contract = pwresetd::store::contract;
using pwresetd::secret;
using pwresetd::testing::temp_dir;

namespace {

constexpr std::string_view sealing_key = "sealing-key-T-0123456789abcdefgh";

struct timed_sqlite_backend {
    temp_dir dir{"pwresetd-timed-store"};
    std::filesystem::path db = dir.path() / "state.db";
    std::unique_ptr<store::state_store> open() {
        return store::with_timing(store::open_sqlite_store(db, secret(sealing_key)), "sqlite");
    }
};

double count_of(std::string_view operation) {
    return metrics::registry::global()
        .value("pwresetd_state_operation_duration_seconds_count",
               {{"backend", "sqlite"}, {"operation", std::string(operation)}})
        .value_or(-1);
}

}  // namespace

TEST_CASE("a timed store meets the state_store contract", "[store][timed]") {
    contract::run_store_contract<timed_sqlite_backend>();
}

TEST_CASE("a timed store counts each call by operation, and failures", "[store][timed]") {
    timed_sqlite_backend backend;
    auto s = backend.open();
    const double flows = count_of("put_flow");
    const double reads = count_of("get_open_flow");
    REQUIRE(flows >= 0);  // every operation's series exists once a timed store is made
    s->put_flow(contract::make_flow("reset-1", "guid-alice"));
    s->put_flow(contract::make_flow("reset-2", "guid-alice"));
    CHECK(s->get_open_flow(contract::id_hash("reset-1"), contract::t0).has_value());
    CHECK(count_of("put_flow") == flows + 2);
    CHECK(count_of("get_open_flow") == reads + 1);

    // A call that throws passes the exception on and is counted as an error.
    const auto errors = [] {
        return metrics::registry::global()
            .value("pwresetd_state_errors_total",
                   {{"backend", "sqlite"}, {"operation", "claim_flow"}})
            .value_or(-1);
    };
    const double before = errors();
    REQUIRE(before >= 0);
    CHECK_THROWS_AS(s->claim_flow(contract::id_hash("reset-1"), contract::t0, contract::t0),
                    std::invalid_argument);
    CHECK(errors() == before + 1);
}
