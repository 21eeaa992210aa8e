#pragma once
// The embedded state_store: one SQLite file in WAL mode, one connection per instance
// guarded by a mutex. Every check-and-set is a single SQL statement or a BEGIN IMMEDIATE
// transaction, so several processes may share the file (two daemons, pwresetctl) and still
// see each operation happen once. TOTP keys are sealed (AES-256-GCM, context user_key)
// before they reach SQLite; a key that cannot be opened with the current sealing key reads
// as absent. Reset ids are stored only as the caller's hex SHA-256.
#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "common/secret.hpp"
#include "store/state_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace pwresetd::store {

class sqlite_store final : public state_store {
public:
    // The schema version this code writes (PRAGMA user_version); newer files are refused.
    static constexpr int schema_version = 3;

    // See open_sqlite_store.
    sqlite_store(const std::filesystem::path& path, secret sealing_key);
    sqlite_store(const sqlite_store&) = delete;
    sqlite_store& operator=(const sqlite_store&) = delete;
    ~sqlite_store() override;

    void put_flow(const reset_flow& flow) override;
    std::optional<reset_flow> get_open_flow(std::string_view id_hash, std::int64_t now) override;
    void add_verified_method(std::string_view id_hash, std::string_view method) override;
    bool claim_flow(std::string_view id_hash, std::int64_t now, std::int64_t claim_until) override;
    void release_flow(std::string_view id_hash) override;
    bool close_flow(std::string_view id_hash, std::int64_t now) override;
    void close_user_flows(std::string_view user_key) override;

    void put_pending_totp(std::string_view enrollment_id_hash,
                          const pending_enrollment& pending) override;
    std::optional<pending_enrollment> get_pending_totp(std::string_view enrollment_id_hash,
                                                       std::int64_t now) override;
    void delete_pending_totp(std::string_view enrollment_id_hash) override;
    bool confirm_totp(std::string_view enrollment_id_hash, std::int64_t now) override;
    std::optional<secret> get_totp(std::string_view user_key) override;
    bool remove_totp(std::string_view user_key) override;

    std::optional<std::int64_t> last_totp_step(std::string_view user_key) override;
    bool accept_totp_step(std::string_view user_key, std::int64_t step) override;

    failure_state record_failure(std::string_view key, std::int64_t now,
                                 std::int64_t ttl_s) override;
    failure_reservation reserve_failure(std::string_view key, std::int64_t now, std::int64_t ttl_s,
                                        int limit) override;
    failure_state get_failures(std::string_view key, std::int64_t now) override;
    void clear_failures(std::string_view key) override;

    void put_code(std::string_view flow_id_hash, std::string_view method,
                  std::string_view code_hash, std::int64_t expires_at) override;
    bool consume_code(std::string_view flow_id_hash, std::string_view method,
                      std::string_view code_hash, std::int64_t now) override;

    window_hit hit_window(std::string_view key, std::int64_t now, std::int64_t window_s,
                          int limit) override;

    void set_recovery_codes(std::string_view user_key,
                            const std::vector<std::string>& code_hashes) override;
    bool consume_recovery_code(std::string_view user_key, std::string_view code_hash) override;
    int recovery_codes_left(std::string_view user_key) override;

    void purge_expired(std::int64_t now) override;

private:
    struct db_deleter {
        void operator()(sqlite3* db) const noexcept;
    };
    struct stmt_deleter {
        void operator()(sqlite3_stmt* stmt) const noexcept;
    };
    using db_ptr = std::unique_ptr<sqlite3, db_deleter>;
    using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;
    class statement;
    class transaction;

    [[noreturn]] void fail(std::string_view what) const;
    void exec(const char* sql, std::string_view what = {});
    // `sql` is a string literal: the cache keeps the view.
    statement prepare(std::string_view sql);
    void set_up_connection();
    void create_or_check_schema();
    int user_version();

    std::filesystem::path path_;
    secret sealing_key_;
    std::mutex mutex_;
    db_ptr db_;
    // Prepared once, reused under mutex_; declared after db_ so they are finalized first.
    std::unordered_map<std::string_view, stmt_ptr> statements_;
};

}  // namespace pwresetd::store
