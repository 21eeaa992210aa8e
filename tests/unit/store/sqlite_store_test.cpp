#include "store/sqlite_store.hpp"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "support/files.hpp"
#include "support/temp_dir.hpp"
#include "unit/store/store_contract.hpp"

namespace store = pwresetd::store;
namespace contract = pwresetd::store::contract;
using contract::id_hash;
using contract::t0;
using pwresetd::secret;
using pwresetd::testing::temp_dir;

namespace {

constexpr std::string_view key_a = "sealing-key-A-0123456789abcdefgh";
constexpr std::string_view key_b = "sealing-key-B-0123456789abcdefgh";

struct sqlite_backend {
    temp_dir dir{"pwresetd-store"};
    std::filesystem::path db = dir.path() / "state.db";
    std::unique_ptr<store::state_store> open(std::string_view key = key_a) {
        return store::open_sqlite_store(db, secret(key));
    }
};

// Schema version 1 as pwresetd wrote it before version 2 (frozen: never edit).
constexpr const char* v1_schema = R"sql(
CREATE TABLE flows (
    id_hash    TEXT PRIMARY KEY,
    user_key   TEXT NOT NULL,
    username   TEXT NOT NULL,
    user_dn    TEXT NOT NULL,
    directory  TEXT NOT NULL,
    decoy      INTEGER NOT NULL CHECK (decoy IN (0, 1)),
    state      TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX flows_by_user ON flows (user_key);
CREATE INDEX flows_by_expiry ON flows (expires_at);
CREATE TABLE flow_methods (
    id_hash  TEXT NOT NULL REFERENCES flows (id_hash) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    method   TEXT NOT NULL,
    PRIMARY KEY (id_hash, method)
) WITHOUT ROWID;
CREATE TABLE pending_totp (
    id_hash    TEXT PRIMARY KEY,
    user_key   TEXT NOT NULL,
    username   TEXT NOT NULL,
    user_dn    TEXT NOT NULL,
    sealed_key BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pending_totp_by_expiry ON pending_totp (expires_at);
CREATE TABLE totp_keys (
    user_key   TEXT PRIMARY KEY,
    sealed_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE totp_steps (
    user_key TEXT PRIMARY KEY,
    step     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE failures (
    counter_key TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX failures_by_expiry ON failures (expires_at);
PRAGMA user_version = 1;
)sql";

// What schema version 2 added to version 1 (frozen: never edit). A version 2 file is
// v1_schema followed by this.
constexpr const char* v2_upgrade = R"sql(
ALTER TABLE flows ADD COLUMN required_methods INTEGER NOT NULL DEFAULT 1;
ALTER TABLE flows ADD COLUMN totp_required INTEGER NOT NULL DEFAULT 0
    CHECK (totp_required IN (0, 1));
CREATE TABLE codes (
    flow_id_hash TEXT NOT NULL,
    method       TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (flow_id_hash, method)
) WITHOUT ROWID;
CREATE INDEX codes_by_expiry ON codes (expires_at);
CREATE TABLE windows (
    window_key TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX windows_by_expiry ON windows (expires_at);
CREATE TABLE recovery_codes (
    user_key  TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_key, code_hash)
) WITHOUT ROWID;
PRAGMA user_version = 2;
)sql";

struct raw_db_deleter {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using raw_db = std::unique_ptr<sqlite3, raw_db_deleter>;

raw_db open_raw(const std::filesystem::path& path) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    raw_db owned(db);
    REQUIRE(rc == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return owned;
}

void exec_raw(sqlite3* db, const char* sql) {
    INFO(sql);
    REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
}

// Every byte of every file in the folder (database, -wal, -shm) in one string.
std::string all_bytes(const std::filesystem::path& dir) {
    std::string bytes;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.is_regular_file()) {
            bytes += pwresetd::testing::read_file(entry.path());
        }
    }
    return bytes;
}

unsigned file_mode(const std::filesystem::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777U;
}

std::string open_error(const std::filesystem::path& path, std::string_view key = key_a) {
    try {
        store::open_sqlite_store(path, secret(key));
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    FAIL("open_sqlite_store did not throw for " << path);
    return {};
}

// Runs body() in `n` forked processes released at the same moment; each child's exit code
// is what body returned (255 on an exception). Returns the exit codes.
std::vector<int> run_processes(int n, const std::function<int(int)>& body) {
    int release[2];
    REQUIRE(::pipe(release) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < n; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(release[1]);
            char c = 0;
            (void)!::read(release[0], &c, 1);  // returns 0 when the parent closes its end
            int code = 255;
            try {
                code = body(i);
            } catch (...) {
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    ::close(release[0]);
    ::close(release[1]);
    std::vector<int> codes;
    for (const pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFEXITED(status));
        codes.push_back(WEXITSTATUS(status));
    }
    return codes;
}

}  // namespace

TEST_CASE("sqlite store meets the state_store contract", "[store][sqlite]") {
    contract::run_store_contract<sqlite_backend>();
}

TEST_CASE("sqlite store never writes a TOTP key in plaintext", "[store][sqlite]") {
    sqlite_backend backend;
    // 32 distinctive bytes, so a match in the file cannot be an accident.
    const std::string_view plain = "TOTP-KEY-PLAINTEXT-MARKER-7c1f9e";
    {
        auto s = backend.open();
        store::pending_enrollment pending = contract::make_pending("guid-alice", 1);
        pending.username = "username-positive-control";
        pending.key = secret(plain);
        s->put_pending_totp(id_hash("enroll-1"), pending);
        REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
        pending.key = secret(plain);
        s->put_pending_totp(id_hash("enroll-2"), pending);

        const auto bytes = all_bytes(backend.dir.path());
        // The search can succeed: the non-secret username is there in clear.
        CHECK(bytes.find("username-positive-control") != std::string::npos);
        CHECK(bytes.find(plain) == std::string::npos);

        auto raw = open_raw(backend.db);
        for (const char* sql :
             {"SELECT sealed_key FROM totp_keys", "SELECT sealed_key FROM pending_totp"}) {
            sqlite3_stmt* st = nullptr;
            REQUIRE(sqlite3_prepare_v2(raw.get(), sql, -1, &st, nullptr) == SQLITE_OK);
            REQUIRE(sqlite3_step(st) == SQLITE_ROW);
            const std::string blob(static_cast<const char*>(sqlite3_column_blob(st, 0)),
                                   static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
            sqlite3_finalize(st);
            CHECK(blob.size() == 12 + plain.size() + 16);  // nonce || ciphertext || tag
            CHECK(blob.find(plain) == std::string::npos);
        }
    }
    // After the last connection closes, the WAL is checkpointed into the database file.
    CHECK(all_bytes(backend.dir.path()).find(plain) == std::string::npos);
    auto s = backend.open();
    const auto key = s->get_totp("guid-alice");
    REQUIRE(key.has_value());
    CHECK(key->equals(plain));
}

TEST_CASE("sqlite store with another sealing key cannot read the keys", "[store][sqlite]") {
    sqlite_backend backend;
    {
        auto s = backend.open(key_a);
        s->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
        REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
        s->put_pending_totp(id_hash("enroll-2"), contract::make_pending("guid-bob", 2));
    }
    {
        auto s = backend.open(key_b);
        CHECK_FALSE(s->get_totp("guid-alice").has_value());
        CHECK_FALSE(s->get_pending_totp(id_hash("enroll-2"), t0).has_value());
    }
    auto s = backend.open(key_a);
    const auto key = s->get_totp("guid-alice");
    REQUIRE(key.has_value());
    CHECK(key->equals(contract::totp_key(1)));
    const auto pending = s->get_pending_totp(id_hash("enroll-2"), t0);
    REQUIRE(pending.has_value());
    CHECK(pending->key.equals(contract::totp_key(2)));
}

TEST_CASE("sqlite store: a sealed key moved to another user does not open", "[store][sqlite]") {
    sqlite_backend backend;
    auto s = backend.open();
    s->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
    REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
    {
        auto raw = open_raw(backend.db);
        exec_raw(raw.get(), "UPDATE totp_keys SET user_key = 'guid-mallory'");
    }
    CHECK_FALSE(s->get_totp("guid-mallory").has_value());
    CHECK_FALSE(s->get_totp("guid-alice").has_value());
}

TEST_CASE("sqlite store files have mode 0600 whatever the umask", "[store][sqlite]") {
    for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
        INFO("umask " << mask);
        sqlite_backend backend;
        const mode_t previous = ::umask(mask);
        auto s = backend.open();
        s->put_flow(contract::make_flow("reset-1", "guid-alice"));
        ::umask(previous);
        CHECK(file_mode(backend.db) == 0600U);
        CHECK(file_mode(backend.db.string() + "-wal") == 0600U);
        CHECK(file_mode(backend.db.string() + "-shm") == 0600U);
    }
}

TEST_CASE("sqlite store runs in WAL mode with the current schema version", "[store][sqlite]") {
    sqlite_backend backend;
    auto s = backend.open();
    auto raw = open_raw(backend.db);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw.get(), "PRAGMA journal_mode", -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "wal");
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(raw.get(), "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == store::sqlite_store::schema_version);
    sqlite3_finalize(st);
}

TEST_CASE("sqlite store state survives close and reopen", "[store][sqlite]") {
    sqlite_backend backend;
    auto flow = contract::make_flow("reset-1", "guid-alice");
    flow.verified_methods = {"email"};
    const auto closed = contract::make_flow("reset-2", "guid-alice");
    {
        auto s = backend.open();
        s->put_flow(flow);
        s->add_verified_method(flow.id_hash, "totp");
        s->put_flow(closed);
        REQUIRE(s->close_flow(closed.id_hash, t0));
        s->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
        REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
        s->put_pending_totp(id_hash("enroll-2"), contract::make_pending("guid-bob", 2));
        REQUIRE(s->accept_totp_step("guid-alice", 42));
        s->record_failure("verify:alice", t0, 60);
        s->record_failure("verify:alice", t0, 60);
    }
    auto s = backend.open();
    const auto got = s->get_open_flow(flow.id_hash, t0);
    REQUIRE(got.has_value());
    CHECK(got->verified_methods == std::vector<std::string>{"email", "totp"});
    CHECK_FALSE(s->get_open_flow(closed.id_hash, t0).has_value());
    const auto key = s->get_totp("guid-alice");
    REQUIRE(key.has_value());
    CHECK(key->equals(contract::totp_key(1)));
    const auto pending = s->get_pending_totp(id_hash("enroll-2"), t0);
    REQUIRE(pending.has_value());
    CHECK(pending->key.equals(contract::totp_key(2)));
    CHECK(s->last_totp_step("guid-alice") == 42);
    CHECK_FALSE(s->accept_totp_step("guid-alice", 42));
    CHECK(s->get_failures("verify:alice", t0).count == 2);
}

TEST_CASE("sqlite store keeps what was committed when the process is killed", "[store][sqlite]") {
    sqlite_backend backend;
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        try {
            auto s = backend.open();
            s->put_flow(flow);
            s->accept_totp_step("guid-alice", 42);
            s->record_failure("verify:alice", t0, 60);
        } catch (...) {
            ::_exit(1);
        }
        ::kill(::getpid(), SIGKILL);
        ::_exit(2);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);

    auto s = backend.open();
    CHECK(s->get_open_flow(flow.id_hash, t0).has_value());
    CHECK(s->last_totp_step("guid-alice") == 42);
    CHECK(s->get_failures("verify:alice", t0).count == 1);
}

TEST_CASE("sqlite store check-and-set is atomic across processes", "[store][sqlite]") {
    sqlite_backend backend;
    constexpr int flows = 20;
    constexpr int processes = 4;
    {
        auto s = backend.open();
        for (int i = 0; i < flows; ++i) {
            s->put_flow(contract::make_flow("race-" + std::to_string(i), "guid-alice"));
        }
    }

    SECTION("each flow is closed by exactly one process") {
        const auto codes = run_processes(processes, [&](int index) {
            auto s = backend.open();
            int wins = 0;
            for (int i = 0; i < flows; ++i) {
                const int n = (i + index * 5) % flows;
                wins += s->close_flow(id_hash("race-" + std::to_string(n)), t0) ? 1 : 0;
            }
            return wins;
        });
        int total = 0;
        for (const int code : codes) {
            REQUIRE(code != 255);
            total += code;
        }
        CHECK(total == flows);
    }
    SECTION("failure counts from several processes add up") {
        const auto codes = run_processes(processes, [&](int) {
            auto s = backend.open();
            for (int i = 0; i < 50; ++i) {
                s->record_failure("verify:alice", t0, 60);
            }
            return 0;
        });
        CHECK(codes == std::vector<int>(processes, 0));
        CHECK(backend.open()->get_failures("verify:alice", t0).count == processes * 50);
    }
    SECTION("each TOTP step is accepted by exactly one process") {
        const auto codes = run_processes(processes, [&](int) {
            auto s = backend.open();
            int wins = 0;
            for (std::int64_t step = 1; step <= 100; ++step) {
                wins += s->accept_totp_step("guid-alice", step) ? 1 : 0;
            }
            return wins;
        });
        int total = 0;
        for (const int code : codes) {
            REQUIRE(code != 255);
            total += code;
        }
        // A step accepted twice would push the total above the 100 steps there are.
        CHECK(total <= 100);
        CHECK(backend.open()->last_totp_step("guid-alice") == 100);
    }
}

TEST_CASE("sqlite store: several processes creating one new file all succeed", "[store][sqlite]") {
    sqlite_backend backend;
    const auto codes = run_processes(4, [&](int index) {
        auto s = backend.open();
        s->put_flow(contract::make_flow("reset-" + std::to_string(index), "guid-alice"));
        return 0;
    });
    CHECK(codes == std::vector<int>(4, 0));
    auto s = backend.open();
    for (int i = 0; i < 4; ++i) {
        CHECK(s->get_open_flow(id_hash("reset-" + std::to_string(i)), t0).has_value());
    }
}

TEST_CASE("sqlite store: a database locked beyond the busy timeout throws store_error",
          "[store][sqlite]") {
    sqlite_backend backend;
    auto s = backend.open();
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    s->put_flow(flow);
    // Another process holds the write lock for longer than the store waits (5 s).
    auto raw = open_raw(backend.db);
    exec_raw(raw.get(), "BEGIN IMMEDIATE");
    const auto start = std::chrono::steady_clock::now();
    try {
        s->close_flow(flow.id_hash, t0);
        FAIL("close_flow did not throw");
    } catch (const store::store_error& e) {
        CHECK_THAT(e.what(), Catch::Contains(backend.db.string()));
    }
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(waited >= 4.5);
    CHECK(waited < 15.0);
    // Reads are not blocked by a writer in WAL mode; once the lock is gone, writes work.
    CHECK(s->get_open_flow(flow.id_hash, t0).has_value());
    exec_raw(raw.get(), "ROLLBACK");
    CHECK(s->close_flow(flow.id_hash, t0));
}

TEST_CASE("sqlite store refuses a newer schema version", "[store][sqlite]") {
    sqlite_backend backend;
    backend.open().reset();
    const int newer = store::sqlite_store::schema_version + 1;
    {
        auto raw = open_raw(backend.db);
        exec_raw(raw.get(), ("PRAGMA user_version = " + std::to_string(newer)).c_str());
    }
    const auto message = open_error(backend.db);
    CHECK_THAT(message, Catch::Contains(backend.db.string()));
    CHECK_THAT(message, Catch::Contains("schema version " + std::to_string(newer)));
}

TEST_CASE("sqlite store upgrades a version 1 file and keeps its data", "[store][sqlite]") {
    sqlite_backend backend;
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    const std::string insert_flow = "INSERT INTO flows VALUES ('" + flow.id_hash +
                                    "', 'guid-alice', 'Alice', 'CN=Alice', '', 0, 'open', " +
                                    std::to_string(t0) + ", " + std::to_string(flow.expires_at) +
                                    ")";
    const std::string insert_method =
        "INSERT INTO flow_methods VALUES ('" + flow.id_hash + "', 0, 'email')";
    // What pwresetd with schema version 1 wrote, and some data in it.
    auto make_v1_file = [&] {
        auto raw = open_raw(backend.db);
        exec_raw(raw.get(), "PRAGMA journal_mode = WAL");
        exec_raw(raw.get(), v1_schema);
        exec_raw(raw.get(), insert_flow.c_str());
        exec_raw(raw.get(), insert_method.c_str());
        exec_raw(raw.get(), "INSERT INTO totp_steps VALUES ('guid-alice', 42)");
        exec_raw(raw.get(), ("INSERT INTO failures VALUES ('verify:alice', 2, " +
                             std::to_string(t0 + 60) + ")")
                                .c_str());
    };
    const auto version_of = [&] {
        auto raw = open_raw(backend.db);
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(raw.get(), "PRAGMA user_version", -1, &st, nullptr) ==
                SQLITE_OK);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        const int version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return version;
    };
    { std::ofstream created(backend.db); }
    make_v1_file();
    REQUIRE(version_of() == 1);

    SECTION("the old rows read back, with the defaults for the new fields") {
        auto s = backend.open();
        CHECK(version_of() == store::sqlite_store::schema_version);
        const auto got = s->get_open_flow(flow.id_hash, t0);
        REQUIRE(got.has_value());
        CHECK(got->user_key == "guid-alice");
        CHECK(got->username == "Alice");
        CHECK(got->verified_methods == std::vector<std::string>{"email"});
        CHECK(got->required_methods == 1);
        CHECK_FALSE(got->totp_required);
        CHECK(s->last_totp_step("guid-alice") == 42);
        CHECK(s->get_failures("verify:alice", t0).count == 2);
    }
    SECTION("every new operation works on the upgraded file, also after a reopen") {
        {
            auto s = backend.open();
            auto updated = flow;
            updated.required_methods = 2;
            updated.totp_required = true;
            s->put_flow(updated);
            s->put_code(flow.id_hash, "email", contract::code_hash("1"), t0 + 300);
            REQUIRE(s->hit_window("dest:a", t0, 60, 2).allowed);
            s->set_recovery_codes("guid-alice", {contract::code_hash("r1")});
        }
        auto s = backend.open();
        const auto got = s->get_open_flow(flow.id_hash, t0);
        REQUIRE(got.has_value());
        CHECK(got->required_methods == 2);
        CHECK(got->totp_required);
        CHECK(s->consume_code(flow.id_hash, "email", contract::code_hash("1"), t0));
        CHECK(s->hit_window("dest:a", t0, 60, 2).count == 2);
        CHECK(s->consume_recovery_code("guid-alice", contract::code_hash("r1")));
        CHECK(s->claim_flow(flow.id_hash, t0, t0 + 30));
        CHECK(s->reserve_failure("verify:alice", t0, 60, 5).count == 3);
        s->purge_expired(t0 + 1000);
        CHECK_FALSE(s->get_open_flow(flow.id_hash, t0).has_value());
    }
    SECTION("several processes opening the old file at once upgrade it once") {
        const auto codes = run_processes(4, [&](int index) {
            auto s = backend.open();
            s->put_code(flow.id_hash, "m" + std::to_string(index), contract::code_hash("1"),
                        t0 + 300);
            return s->get_open_flow(flow.id_hash, t0).has_value() ? 0 : 1;
        });
        CHECK(codes == std::vector<int>(4, 0));
        CHECK(version_of() == store::sqlite_store::schema_version);
        auto s = backend.open();
        for (int i = 0; i < 4; ++i) {
            CHECK(s->consume_code(flow.id_hash, "m" + std::to_string(i), contract::code_hash("1"),
                                  t0));
        }
    }
}

TEST_CASE("sqlite store upgrades a version 2 file and keeps its data", "[store][sqlite]") {
    sqlite_backend backend;
    const auto open_flow = contract::make_flow("reset-1", "guid-alice");
    const auto closed_flow = contract::make_flow("reset-2", "guid-alice");
    { std::ofstream created(backend.db); }
    {
        // What pwresetd with schema version 2 wrote, and some data in it.
        auto raw = open_raw(backend.db);
        exec_raw(raw.get(), "PRAGMA journal_mode = WAL");
        exec_raw(raw.get(), v1_schema);
        exec_raw(raw.get(), v2_upgrade);
        for (const auto* flow : {&open_flow, &closed_flow}) {
            const std::string insert =
                "INSERT INTO flows (id_hash, user_key, username, user_dn, directory, decoy, "
                "state, created_at, expires_at, required_methods, totp_required) VALUES ('" +
                flow->id_hash + "', 'guid-alice', 'Alice', 'CN=Alice', 'corp', 0, '" +
                (flow == &open_flow ? "open" : "closed") + "', " + std::to_string(t0) + ", " +
                std::to_string(flow->expires_at) + ", 2, 1)";
            exec_raw(raw.get(), insert.c_str());
        }
        exec_raw(
            raw.get(),
            ("INSERT INTO flow_methods VALUES ('" + open_flow.id_hash + "', 0, 'email')").c_str());
        exec_raw(raw.get(), ("INSERT INTO codes VALUES ('" + open_flow.id_hash + "', 'sms', '" +
                             contract::code_hash("1") + "', " + std::to_string(t0 + 300) + ")")
                                .c_str());
        exec_raw(raw.get(), ("INSERT INTO failures VALUES ('verify:alice', 4, " +
                             std::to_string(t0 + 60) + ")")
                                .c_str());
    }

    auto s = backend.open();
    {
        auto raw = open_raw(backend.db);
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(raw.get(), "PRAGMA user_version", -1, &st, nullptr) ==
                SQLITE_OK);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        CHECK(sqlite3_column_int(st, 0) == store::sqlite_store::schema_version);
        sqlite3_finalize(st);
    }
    auto got = s->get_open_flow(open_flow.id_hash, t0);
    REQUIRE(got.has_value());
    CHECK(got->directory == "corp");
    CHECK(got->required_methods == 2);
    CHECK(got->totp_required);
    CHECK(got->verified_methods == std::vector<std::string>{"email"});
    CHECK(got->claimed_until == 0);  // flows of version 2 are unclaimed
    CHECK_FALSE(s->get_open_flow(closed_flow.id_hash, t0).has_value());

    // The new operations work on the old rows.
    CHECK_FALSE(s->claim_flow(closed_flow.id_hash, t0, t0 + 30));
    CHECK(s->claim_flow(open_flow.id_hash, t0, t0 + 30));
    CHECK_FALSE(s->claim_flow(open_flow.id_hash, t0, t0 + 30));
    got = s->get_open_flow(open_flow.id_hash, t0);
    REQUIRE(got.has_value());
    CHECK(got->claimed_until == t0 + 30);
    const auto r = s->reserve_failure("verify:alice", t0, 60, 5);
    CHECK(r.reserved);
    CHECK(r.count == 5);
    CHECK_FALSE(s->reserve_failure("verify:alice", t0, 60, 5).reserved);
    CHECK(s->consume_code(open_flow.id_hash, "sms", contract::code_hash("1"), t0));
    CHECK(s->close_flow(open_flow.id_hash, t0));
}

TEST_CASE("sqlite store open errors name the file", "[store][sqlite]") {
    temp_dir dir;
    SECTION("missing folder") {
        const auto path = dir.path() / "missing" / "state.db";
        const auto message = open_error(path);
        CHECK_THAT(message, Catch::Contains(path.string()));
        CHECK_THAT(message, Catch::Contains("does not exist"));
        CHECK_FALSE(std::filesystem::exists(dir.path() / "missing"));
    }
    SECTION("parent is a file") {
        std::ofstream(dir.path() / "plain-file") << "x";
        const auto path = dir.path() / "plain-file" / "state.db";
        CHECK_THAT(open_error(path), Catch::Contains(path.string()));
    }
    SECTION("read-only folder") {
        if (::geteuid() == 0) {
            SUCCEED("root ignores folder permissions; nothing to check");
            return;
        }
        const auto ro = dir.path() / "ro";
        std::filesystem::create_directory(ro);
        std::filesystem::permissions(
            ro, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
        const auto path = ro / "state.db";
        CHECK_THAT(open_error(path), Catch::Contains(path.string()));
        std::filesystem::permissions(ro, std::filesystem::perms::owner_all);
    }
    SECTION("not a database") {
        const auto path = dir.path() / "state.db";
        std::ofstream(path) << std::string(8192, 'z');
        const auto message = open_error(path);
        CHECK_THAT(message, Catch::Contains(path.string()));
        CHECK_THAT(message, Catch::Contains("not a database"));
    }
    SECTION("sealing key of the wrong size") {
        const auto path = dir.path() / "state.db";
        CHECK_THAT(open_error(path, "short"), Catch::Contains("32 bytes"));
    }
}

TEST_CASE("sqlite store refuses an id that is not a hex SHA-256, without echoing it",
          "[store][sqlite]") {
    sqlite_backend backend;
    auto s = backend.open();
    auto flow = contract::make_flow("reset-1", "guid-alice");
    flow.id_hash = "raw-reset-id-must-not-be-stored";
    try {
        s->put_flow(flow);
        FAIL("put_flow accepted a raw id");
    } catch (const std::invalid_argument& e) {
        CHECK_THAT(e.what(), !Catch::Contains("raw-reset-id"));
    }
    CHECK_THROWS_AS(
        s->put_pending_totp("raw-enrollment-id", contract::make_pending("guid-alice", 1)),
        std::invalid_argument);
    CHECK(all_bytes(backend.dir.path()).find("raw-reset-id") == std::string::npos);
}
