#include "store/sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/log.hpp"

namespace pwresetd::store {
namespace {

constexpr int busy_timeout_ms = 5000;
constexpr std::size_t sealing_key_size = 32;

// Schema migrations, applied in order inside one BEGIN IMMEDIATE transaction:
// migrations[v] takes a file from PRAGMA user_version v to v + 1 (0 is a new, empty file).
// A released entry is never edited; a change is a new entry.
//
// Version 1: flows, TOTP enrollments, replay steps and failure counters. A flow's verified
// methods live in a child table; `position` keeps the order in which they were verified.
constexpr const char* schema_v1 = R"sql(
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

// Version 2: what a flow requires (flows written by version 1 keep the old rule: one
// method, no authenticator), one live code per flow and method, rate windows (expires_at is
// the window's end) and recovery codes. Codes have no foreign key to flows: a code outlives
// nothing that matters, purge_expired removes it, and the Redis store has none either.
constexpr const char* schema_v2 = R"sql(
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

// Version 3: a flow can be claimed by the one caller completing it until claimed_until (0:
// unclaimed). "Completing" is an open flow whose claim is live, not a new state value:
// widening the CHECK on `state` would mean rebuilding `flows`, and dropping it inside the
// migration transaction (foreign_keys is on and cannot change there) would cascade-delete
// every flow_methods row.
constexpr const char* schema_v3 = R"sql(
ALTER TABLE flows ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 3;
)sql";

constexpr std::array<const char*, 3> migrations{schema_v1, schema_v2, schema_v3};
static_assert(static_cast<int>(migrations.size()) == sqlite_store::schema_version);

std::string describe(const std::filesystem::path& path) {
    return "sqlite store " + path.string();
}

bool is_hex_sha256(std::string_view s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

void require_id_hash(std::string_view id_hash, const char* operation) {
    // The message never echoes the value: a caller passing the raw id by mistake must not
    // see it land in a log either.
    if (!is_hex_sha256(id_hash)) {
        throw std::invalid_argument(std::string("sqlite store: ") + operation +
                                    " needs the lowercase hex SHA-256 of the id");
    }
}

void require_claim_after(std::int64_t now, std::int64_t claim_until) {
    if (claim_until <= now) {
        throw std::invalid_argument("sqlite store: claim_flow needs claim_until after now");
    }
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) {
        return b > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return sum;
}

// Creates the database file with mode 0600 whatever the umask, so the -wal and -shm files
// that SQLite derives from it get the same mode. An existing file is left as it is.
void create_private_file(const std::filesystem::path& path) {
    const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(parent, ec)) {
        throw std::runtime_error(describe(path) + ": the folder " + parent.string() +
                                 " does not exist or is not a folder");
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return;
        }
        throw std::runtime_error(describe(path) +
                                 ": cannot create the file: " + std::strerror(errno));
    }
    const bool ok = ::fchmod(fd, 0600) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok) {
        throw std::runtime_error(describe(path) + ": cannot set mode 0600: " + std::strerror(err));
    }
}

int clamp_count(std::int64_t count) {
    return static_cast<int>(std::clamp<std::int64_t>(count, 0, INT_MAX));
}

}  // namespace

void sqlite_store::db_deleter::operator()(sqlite3* db) const noexcept {
    sqlite3_close_v2(db);
}

void sqlite_store::stmt_deleter::operator()(sqlite3_stmt* stmt) const noexcept {
    sqlite3_finalize(stmt);
}

// A cached prepared statement borrowed for one operation; resetting it and clearing its
// bindings on scope exit is what makes binding borrowed buffers (no copy) safe.
class sqlite_store::statement {
public:
    statement(const sqlite_store& owner, sqlite3_stmt* stmt) : owner_(owner), stmt_(stmt) {}
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;
    ~statement() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

    statement& bind_text(int index, std::string_view text) {
        // A null pointer would bind SQL NULL; an empty view must stay an empty string.
        const char* data = text.data() != nullptr ? text.data() : "";
        check_bind(
            sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_STATIC, SQLITE_UTF8));
        return *this;
    }
    statement& bind_int(int index, std::int64_t value) {
        check_bind(sqlite3_bind_int64(stmt_, index, value));
        return *this;
    }
    statement& bind_blob(int index, std::span<const unsigned char> blob) {
        check_bind(blob.empty() ? sqlite3_bind_zeroblob(stmt_, index, 0)
                                : sqlite3_bind_blob64(stmt_, index, blob.data(), blob.size(),
                                                      SQLITE_STATIC));
        return *this;
    }

    // True when a row is ready, false when the statement has finished.
    bool step() {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc != SQLITE_DONE) {
            owner_.fail(std::string("statement failed (") + first_words() + ")");
        }
        return false;
    }
    // Runs to completion (a RETURNING statement commits only once it is done).
    void run() {
        while (step()) {
        }
    }

    std::int64_t int_at(int column) { return sqlite3_column_int64(stmt_, column); }
    std::string text_at(int column) {
        const auto* text = sqlite3_column_text(stmt_, column);
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
        return text != nullptr ? std::string(reinterpret_cast<const char*>(text), size)
                               : std::string();
    }
    std::vector<unsigned char> blob_at(int column) {
        const auto* blob = static_cast<const unsigned char*>(sqlite3_column_blob(stmt_, column));
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
        return blob != nullptr ? std::vector<unsigned char>(blob, blob + size)
                               : std::vector<unsigned char>();
    }

private:
    void check_bind(int rc) const {
        if (rc != SQLITE_OK) {
            owner_.fail(std::string("cannot bind a parameter (") + first_words() + ")");
        }
    }
    // Enough of the SQL text to tell statements apart; it holds placeholders, never values.
    std::string first_words() const {
        std::string sql = sqlite3_sql(stmt_);
        std::replace(sql.begin(), sql.end(), '\n', ' ');
        return sql.size() > 60 ? sql.substr(0, 60) + "..." : sql;
    }

    const sqlite_store& owner_;
    sqlite3_stmt* stmt_;
};

// BEGIN (read) or BEGIN IMMEDIATE (write: takes the database write lock up front, so a
// read-then-write cannot interleave with another connection, in this process or another);
// rolls back unless committed.
class sqlite_store::transaction {
public:
    enum class kind { read, write };
    transaction(sqlite_store& owner, kind k) : owner_(owner) {
        owner_.exec(k == kind::write ? "BEGIN IMMEDIATE" : "BEGIN");
    }
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    ~transaction() {
        if (!done_) {
            sqlite3_exec(owner_.db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
    void commit() {
        owner_.exec("COMMIT");
        done_ = true;
    }

private:
    sqlite_store& owner_;
    bool done_ = false;
};

sqlite_store::sqlite_store(const std::filesystem::path& path, secret sealing_key)
    : path_(path), sealing_key_(std::move(sealing_key)) {
    if (sealing_key_.size() != sealing_key_size) {
        throw std::runtime_error(describe(path_) + ": the sealing key must be 32 bytes");
    }
    create_private_file(path_);
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(
        path_.c_str(), &raw,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
        nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) {
        if (!db_) {
            throw std::runtime_error(describe(path_) + ": cannot open: " + sqlite3_errstr(rc));
        }
        fail("cannot open");
    }
    set_up_connection();
    create_or_check_schema();
}

sqlite_store::~sqlite_store() = default;

void sqlite_store::fail(std::string_view what) const {
    throw store_error(describe(path_) + ": " + std::string(what) + ": " +
                      sqlite3_errmsg(db_.get()));
}

void sqlite_store::exec(const char* sql, std::string_view what) {
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
        fail(what.empty() ? std::string("cannot run ") + sql : std::string(what));
    }
}

sqlite_store::statement sqlite_store::prepare(std::string_view sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
        sqlite3_stmt* raw = nullptr;
        const char* tail = nullptr;
        if (sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                               SQLITE_PREPARE_PERSISTENT, &raw, &tail) != SQLITE_OK) {
            fail("cannot prepare a statement");
        }
        it = statements_.emplace(sql, stmt_ptr(raw)).first;
    }
    return statement(*this, it->second.get());
}

void sqlite_store::set_up_connection() {
    sqlite3_busy_timeout(db_.get(), busy_timeout_ms);
    // The first statement that reads the file: a file that is not a database fails here.
    // Switching a new file to WAL takes an exclusive lock and SQLite may answer SQLITE_BUSY
    // at once, without the busy handler, while another process does the same (two nodes
    // starting together): retry for up to busy_timeout_ms.
    std::string mode;
    for (int waited_ms = 0;; waited_ms += 20) {
        try {
            auto st = prepare("PRAGMA journal_mode = WAL");
            mode = st.step() ? st.text_at(0) : std::string();
            break;
        } catch (const std::runtime_error&) {
            const int code = sqlite3_errcode(db_.get());
            if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || waited_ms >= busy_timeout_ms) {
                throw;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    if (mode != "wal") {
        throw std::runtime_error(describe(path_) + ": cannot switch to WAL journal mode (got \"" +
                                 mode + "\")");
    }
    // In WAL mode, synchronous=NORMAL keeps every committed transaction across a process
    // crash or kill -9 (the WAL is written before COMMIT returns); only a power loss or OS
    // crash may roll back the last transactions, never corrupt the file. That is the
    // durability the project promises, at a fraction of FULL's fsyncs.
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA foreign_keys = ON");
}

int sqlite_store::user_version() {
    auto st = prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.int_at(0)) : 0;
}

void sqlite_store::create_or_check_schema() {
    const auto check_not_newer = [this](int version) {
        if (version > schema_version) {
            throw std::runtime_error(
                describe(path_) + ": schema version " + std::to_string(version) +
                " is newer than this pwresetd understands (" + std::to_string(schema_version) +
                "); run a newer pwresetd or use another file");
        }
    };
    int version = user_version();
    check_not_newer(version);
    if (version == schema_version) {
        return;
    }
    transaction tx(*this, transaction::kind::write);
    version = user_version();  // another process may have created or upgraded it meanwhile
    check_not_newer(version);
    const int found = version;
    for (; version < schema_version; ++version) {
        exec(migrations[static_cast<std::size_t>(version)],
             version == 0 ? "cannot create the schema"
                          : "cannot upgrade the schema from version " + std::to_string(version));
    }
    tx.commit();
    if (found != 0 && found < schema_version) {
        log::info("store.schema_upgraded",
                  {{"path", path_.string()}, {"from", found}, {"to", schema_version}});
    }
}

// --- reset flows ---

void sqlite_store::put_flow(const reset_flow& flow) {
    require_id_hash(flow.id_hash, "put_flow");
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    prepare("DELETE FROM flows WHERE id_hash = ?1").bind_text(1, flow.id_hash).run();
    prepare(
        "INSERT INTO flows (id_hash, user_key, username, user_dn, directory, decoy, state, "
        "created_at, expires_at, required_methods, totp_required) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?9, ?10)")
        .bind_text(1, flow.id_hash)
        .bind_text(2, flow.user_key)
        .bind_text(3, flow.username)
        .bind_text(4, flow.user_dn)
        .bind_text(5, flow.directory)
        .bind_int(6, flow.decoy ? 1 : 0)
        .bind_int(7, flow.created_at)
        .bind_int(8, flow.expires_at)
        .bind_int(9, flow.required_methods)
        .bind_int(10, flow.totp_required ? 1 : 0)
        .run();
    std::int64_t position = 0;
    for (const auto& method : flow.verified_methods) {
        prepare(
            "INSERT OR IGNORE INTO flow_methods (id_hash, position, method) VALUES (?1, ?2, ?3)")
            .bind_text(1, flow.id_hash)
            .bind_int(2, position++)
            .bind_text(3, method)
            .run();
    }
    tx.commit();
}

std::optional<reset_flow> sqlite_store::get_open_flow(std::string_view id_hash, std::int64_t now) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::read);
    reset_flow flow;
    {
        auto st = prepare(
            "SELECT user_key, username, user_dn, directory, decoy, created_at, expires_at, "
            "required_methods, totp_required, claimed_until "
            "FROM flows WHERE id_hash = ?1 AND state = 'open' AND expires_at > ?2");
        st.bind_text(1, id_hash).bind_int(2, now);
        if (!st.step()) {
            return std::nullopt;
        }
        flow.id_hash = id_hash;
        flow.user_key = st.text_at(0);
        flow.username = st.text_at(1);
        flow.user_dn = st.text_at(2);
        flow.directory = st.text_at(3);
        flow.decoy = st.int_at(4) != 0;
        flow.created_at = st.int_at(5);
        flow.expires_at = st.int_at(6);
        flow.required_methods = clamp_count(st.int_at(7));
        flow.totp_required = st.int_at(8) != 0;
        flow.claimed_until = st.int_at(9);
    }
    {
        auto st = prepare("SELECT method FROM flow_methods WHERE id_hash = ?1 ORDER BY position");
        st.bind_text(1, id_hash);
        while (st.step()) {
            flow.verified_methods.push_back(st.text_at(0));
        }
    }
    tx.commit();
    return flow;
}

void sqlite_store::add_verified_method(std::string_view id_hash, std::string_view method) {
    std::lock_guard lock(mutex_);
    prepare(
        "INSERT OR IGNORE INTO flow_methods (id_hash, position, method) "
        "SELECT id_hash, (SELECT COALESCE(MAX(position), -1) + 1 FROM flow_methods "
        "WHERE id_hash = ?1), ?2 FROM flows WHERE id_hash = ?1 AND state = 'open'")
        .bind_text(1, id_hash)
        .bind_text(2, method)
        .run();
}

// One UPDATE: whichever connection runs it first takes the claim; for the others the
// WHERE no longer matches.
bool sqlite_store::claim_flow(std::string_view id_hash, std::int64_t now,
                              std::int64_t claim_until) {
    require_claim_after(now, claim_until);
    std::lock_guard lock(mutex_);
    prepare(
        "UPDATE flows SET claimed_until = ?3 "
        "WHERE id_hash = ?1 AND state = 'open' AND expires_at > ?2 AND claimed_until <= ?2")
        .bind_text(1, id_hash)
        .bind_int(2, now)
        .bind_int(3, claim_until)
        .run();
    return sqlite3_changes64(db_.get()) == 1;
}

void sqlite_store::release_flow(std::string_view id_hash) {
    std::lock_guard lock(mutex_);
    prepare("UPDATE flows SET claimed_until = 0 WHERE id_hash = ?1 AND state = 'open'")
        .bind_text(1, id_hash)
        .run();
}

bool sqlite_store::close_flow(std::string_view id_hash, std::int64_t now) {
    std::lock_guard lock(mutex_);
    prepare(
        "UPDATE flows SET state = 'closed' "
        "WHERE id_hash = ?1 AND state = 'open' AND expires_at > ?2")
        .bind_text(1, id_hash)
        .bind_int(2, now)
        .run();
    return sqlite3_changes64(db_.get()) == 1;
}

void sqlite_store::close_user_flows(std::string_view user_key) {
    std::lock_guard lock(mutex_);
    prepare("UPDATE flows SET state = 'closed' WHERE user_key = ?1 AND state = 'open'")
        .bind_text(1, user_key)
        .run();
}

// --- TOTP enrollments ---

void sqlite_store::put_pending_totp(std::string_view enrollment_id_hash,
                                    const pending_enrollment& pending) {
    require_id_hash(enrollment_id_hash, "put_pending_totp");
    const auto sealed = crypto::seal(sealing_key_, pending.key.bytes(), pending.user_key);
    std::lock_guard lock(mutex_);
    prepare(
        "INSERT OR REPLACE INTO pending_totp (id_hash, user_key, username, user_dn, "
        "sealed_key, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind_text(1, enrollment_id_hash)
        .bind_text(2, pending.user_key)
        .bind_text(3, pending.username)
        .bind_text(4, pending.user_dn)
        .bind_blob(5, sealed)
        .bind_int(6, pending.expires_at)
        .run();
}

std::optional<pending_enrollment> sqlite_store::get_pending_totp(
    std::string_view enrollment_id_hash, std::int64_t now) {
    pending_enrollment pending;
    std::vector<unsigned char> sealed;
    {
        std::lock_guard lock(mutex_);
        auto st = prepare(
            "SELECT user_key, username, user_dn, sealed_key, expires_at FROM pending_totp "
            "WHERE id_hash = ?1 AND expires_at > ?2");
        st.bind_text(1, enrollment_id_hash).bind_int(2, now);
        if (!st.step()) {
            return std::nullopt;
        }
        pending.user_key = st.text_at(0);
        pending.username = st.text_at(1);
        pending.user_dn = st.text_at(2);
        sealed = st.blob_at(3);
        pending.expires_at = st.int_at(4);
    }
    auto key = crypto::open(sealing_key_, sealed, pending.user_key);
    if (!key) {
        log::warning("store.unseal_failed",
                     {{"what", "pending_totp"}, {"user_key", pending.user_key}});
        return std::nullopt;
    }
    pending.key = std::move(*key);
    return pending;
}

void sqlite_store::delete_pending_totp(std::string_view enrollment_id_hash) {
    std::lock_guard lock(mutex_);
    prepare("DELETE FROM pending_totp WHERE id_hash = ?1").bind_text(1, enrollment_id_hash).run();
}

bool sqlite_store::confirm_totp(std::string_view enrollment_id_hash, std::int64_t now) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    std::string user_key;
    std::vector<unsigned char> sealed;
    {
        auto st = prepare(
            "SELECT user_key, sealed_key FROM pending_totp "
            "WHERE id_hash = ?1 AND expires_at > ?2");
        st.bind_text(1, enrollment_id_hash).bind_int(2, now);
        if (!st.step()) {
            return false;
        }
        user_key = st.text_at(0);
        sealed = st.blob_at(1);
    }
    // The blob moves as it is: it was sealed for the same user_key.
    prepare(
        "INSERT INTO totp_keys (user_key, sealed_key) VALUES (?1, ?2) "
        "ON CONFLICT (user_key) DO UPDATE SET sealed_key = excluded.sealed_key")
        .bind_text(1, user_key)
        .bind_blob(2, sealed)
        .run();
    prepare("DELETE FROM pending_totp WHERE id_hash = ?1").bind_text(1, enrollment_id_hash).run();
    tx.commit();
    return true;
}

std::optional<secret> sqlite_store::get_totp(std::string_view user_key) {
    std::vector<unsigned char> sealed;
    {
        std::lock_guard lock(mutex_);
        auto st = prepare("SELECT sealed_key FROM totp_keys WHERE user_key = ?1");
        st.bind_text(1, user_key);
        if (!st.step()) {
            return std::nullopt;
        }
        sealed = st.blob_at(0);
    }
    auto key = crypto::open(sealing_key_, sealed, user_key);
    if (!key) {
        log::warning("store.unseal_failed", {{"what", "totp_key"}, {"user_key", user_key}});
    }
    return key;
}

bool sqlite_store::remove_totp(std::string_view user_key) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    prepare("DELETE FROM totp_keys WHERE user_key = ?1").bind_text(1, user_key).run();
    const bool removed = sqlite3_changes64(db_.get()) > 0;
    prepare("DELETE FROM recovery_codes WHERE user_key = ?1").bind_text(1, user_key).run();
    tx.commit();
    return removed;
}

// --- replay protection ---

std::optional<std::int64_t> sqlite_store::last_totp_step(std::string_view user_key) {
    std::lock_guard lock(mutex_);
    auto st = prepare("SELECT step FROM totp_steps WHERE user_key = ?1");
    st.bind_text(1, user_key);
    if (!st.step()) {
        return std::nullopt;
    }
    return st.int_at(0);
}

bool sqlite_store::accept_totp_step(std::string_view user_key, std::int64_t step) {
    std::lock_guard lock(mutex_);
    prepare(
        "INSERT INTO totp_steps (user_key, step) VALUES (?1, ?2) "
        "ON CONFLICT (user_key) DO UPDATE SET step = excluded.step "
        "WHERE excluded.step > totp_steps.step")
        .bind_text(1, user_key)
        .bind_int(2, step)
        .run();
    return sqlite3_changes64(db_.get()) == 1;
}

// --- failure counters ---

failure_state sqlite_store::record_failure(std::string_view key, std::int64_t now,
                                           std::int64_t ttl_s) {
    const std::int64_t expires_at = saturating_add(now, ttl_s);
    std::lock_guard lock(mutex_);
    auto st = prepare(
        "INSERT INTO failures (counter_key, count, expires_at) VALUES (?1, 1, ?3) "
        "ON CONFLICT (counter_key) DO UPDATE SET "
        "count = CASE WHEN failures.expires_at <= ?2 THEN 1 ELSE failures.count + 1 END, "
        "expires_at = ?3 "
        "RETURNING count, expires_at");
    st.bind_text(1, key).bind_int(2, now).bind_int(3, expires_at);
    if (!st.step()) {
        fail("record_failure returned no row");
    }
    const failure_state state{clamp_count(st.int_at(0)), st.int_at(1)};
    st.run();
    return state;
}

// A read and a conditional write in one BEGIN IMMEDIATE transaction: no other connection
// can count a failure in between.
failure_reservation sqlite_store::reserve_failure(std::string_view key, std::int64_t now,
                                                  std::int64_t ttl_s, int limit) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    failure_reservation reservation;
    {
        auto st = prepare(
            "SELECT count, expires_at FROM failures WHERE counter_key = ?1 AND expires_at > ?2");
        st.bind_text(1, key).bind_int(2, now);
        if (st.step()) {
            reservation.count = clamp_count(st.int_at(0));
            reservation.expires_at = st.int_at(1);
        }
    }
    if (reservation.count >= limit) {
        return reservation;  // counts nothing, extends nothing; the transaction rolls back
    }
    reservation.reserved = true;
    ++reservation.count;
    reservation.expires_at = saturating_add(now, ttl_s);
    prepare(
        "INSERT INTO failures (counter_key, count, expires_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (counter_key) DO UPDATE SET "
        "count = excluded.count, expires_at = excluded.expires_at")
        .bind_text(1, key)
        .bind_int(2, reservation.count)
        .bind_int(3, reservation.expires_at)
        .run();
    tx.commit();
    return reservation;
}

failure_state sqlite_store::get_failures(std::string_view key, std::int64_t now) {
    std::lock_guard lock(mutex_);
    auto st = prepare(
        "SELECT count, expires_at FROM failures WHERE counter_key = ?1 AND expires_at > ?2");
    st.bind_text(1, key).bind_int(2, now);
    if (!st.step()) {
        return {};
    }
    return {clamp_count(st.int_at(0)), st.int_at(1)};
}

void sqlite_store::clear_failures(std::string_view key) {
    std::lock_guard lock(mutex_);
    prepare("DELETE FROM failures WHERE counter_key = ?1").bind_text(1, key).run();
}

// --- one-time codes ---

void sqlite_store::put_code(std::string_view flow_id_hash, std::string_view method,
                            std::string_view code_hash, std::int64_t expires_at) {
    require_id_hash(flow_id_hash, "put_code");
    std::lock_guard lock(mutex_);
    prepare(
        "INSERT INTO codes (flow_id_hash, method, code_hash, expires_at) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (flow_id_hash, method) DO UPDATE SET "
        "code_hash = excluded.code_hash, expires_at = excluded.expires_at")
        .bind_text(1, flow_id_hash)
        .bind_text(2, method)
        .bind_text(3, code_hash)
        .bind_int(4, expires_at)
        .run();
}

// One DELETE: the row goes to whichever connection deletes it first. The hash is keyed, so
// comparing it in SQL (not in constant time) tells an attacker nothing about a code.
bool sqlite_store::consume_code(std::string_view flow_id_hash, std::string_view method,
                                std::string_view code_hash, std::int64_t now) {
    std::lock_guard lock(mutex_);
    prepare(
        "DELETE FROM codes "
        "WHERE flow_id_hash = ?1 AND method = ?2 AND code_hash = ?3 AND expires_at > ?4")
        .bind_text(1, flow_id_hash)
        .bind_text(2, method)
        .bind_text(3, code_hash)
        .bind_int(4, now)
        .run();
    return sqlite3_changes64(db_.get()) == 1;
}

// --- rate windows ---

window_hit sqlite_store::hit_window(std::string_view key, std::int64_t now, std::int64_t window_s,
                                    int limit) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    window_hit hit;
    {
        auto st = prepare(
            "SELECT count, expires_at FROM windows WHERE window_key = ?1 AND expires_at > ?2");
        st.bind_text(1, key).bind_int(2, now);
        if (st.step()) {
            hit.count = clamp_count(st.int_at(0));
            hit.resets_at = st.int_at(1);
        } else {
            hit.resets_at = saturating_add(now, window_s);
        }
    }
    if (hit.count >= limit) {
        return hit;  // counts nothing; the transaction rolls back
    }
    hit.allowed = true;
    ++hit.count;
    prepare(
        "INSERT INTO windows (window_key, count, expires_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (window_key) DO UPDATE SET "
        "count = excluded.count, expires_at = excluded.expires_at")
        .bind_text(1, key)
        .bind_int(2, hit.count)
        .bind_int(3, hit.resets_at)
        .run();
    tx.commit();
    return hit;
}

// --- recovery codes ---

void sqlite_store::set_recovery_codes(std::string_view user_key,
                                      const std::vector<std::string>& code_hashes) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    prepare("DELETE FROM recovery_codes WHERE user_key = ?1").bind_text(1, user_key).run();
    for (const auto& hash : code_hashes) {
        prepare("INSERT OR IGNORE INTO recovery_codes (user_key, code_hash) VALUES (?1, ?2)")
            .bind_text(1, user_key)
            .bind_text(2, hash)
            .run();
    }
    tx.commit();
}

bool sqlite_store::consume_recovery_code(std::string_view user_key, std::string_view code_hash) {
    std::lock_guard lock(mutex_);
    prepare("DELETE FROM recovery_codes WHERE user_key = ?1 AND code_hash = ?2")
        .bind_text(1, user_key)
        .bind_text(2, code_hash)
        .run();
    return sqlite3_changes64(db_.get()) == 1;
}

int sqlite_store::recovery_codes_left(std::string_view user_key) {
    std::lock_guard lock(mutex_);
    auto st = prepare("SELECT COUNT(*) FROM recovery_codes WHERE user_key = ?1");
    st.bind_text(1, user_key);
    return st.step() ? clamp_count(st.int_at(0)) : 0;
}

void sqlite_store::purge_expired(std::int64_t now) {
    std::lock_guard lock(mutex_);
    transaction tx(*this, transaction::kind::write);
    // flow_methods rows go with their flow (ON DELETE CASCADE).
    prepare("DELETE FROM flows WHERE expires_at <= ?1").bind_int(1, now).run();
    prepare("DELETE FROM pending_totp WHERE expires_at <= ?1").bind_int(1, now).run();
    prepare("DELETE FROM failures WHERE expires_at <= ?1").bind_int(1, now).run();
    prepare("DELETE FROM codes WHERE expires_at <= ?1").bind_int(1, now).run();
    prepare("DELETE FROM windows WHERE expires_at <= ?1").bind_int(1, now).run();
    tx.commit();
}

std::unique_ptr<state_store> open_sqlite_store(const std::filesystem::path& path,
                                               secret sealing_key) {
    return std::make_unique<sqlite_store>(path, std::move(sealing_key));
}

}  // namespace pwresetd::store
