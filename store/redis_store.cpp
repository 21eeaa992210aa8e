#include "store/redis_store.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

namespace pwresetd::store {
namespace {

constexpr std::size_t sealing_key_size = 32;
constexpr timeval io_timeout{2, 0};  // connect, and each command's send and receive
constexpr std::size_t max_idle_connections = 8;
constexpr std::size_t scan_batch = 1000;  // SCAN COUNT hint in purge_expired
constexpr int confirm_attempts = 3;

// Redis TTLs are a safety net, not the expiry rule: the data holds expires_at and every
// read compares it with the caller's `now`, as the SQLite store does. A key lives for the
// rest of its data lifetime by this machine's clock plus a day, so clock differences
// between nodes (or a test clock in the past) never make Redis drop live data, and keys
// of abandoned flows, enrollments and counters still go away on their own.
constexpr std::int64_t ttl_slack_s = std::int64_t{24} * 60 * 60;
constexpr std::int64_t max_data_ttl_s = 400LL * 24 * 60 * 60;

constexpr std::string_view key_prefix = "pwresetd:";

// ---------------------------------------------------------------------------------------
// Lua scripts: each check-and-set runs as one script, which Redis executes atomically
// with respect to every other client (every other node). Times are compared as Lua
// numbers (doubles: exact for Unix seconds); reads that need no atomic write compare
// int64 in C++.

enum class script : std::size_t {
    put_flow,
    get_flow,
    update_flow,
    put_pending,
    confirm_totp,
    accept_step,
    record_failure,
    reserve_failure,
    put_code,
    consume_code,
    hit_window,
    set_recovery_codes,
    remove_totp,
    purge,
};

struct script_text {
    const char* name;
    const char* body;
};

// clang-format off
constexpr std::array<script_text, 14> scripts{{
    // Flows: the C++ side computes each version of a flow and its MAC (see flow_record);
    // these scripts only store a version whole, read it whole, or replace it whole when
    // the stored MAC is still the one that was read (compare-and-set).
    //
    // KEYS: flow, methods, user_flows. ARGV: id_hash, ttl, n, n field/value pairs (mac
    // included), methods... Replaces any flow with that id.
    {"put_flow", R"lua(
redis.call('DEL', KEYS[1], KEYS[2])
local n = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
local ttl = tonumber(ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
if #ARGV >= 4 + 2 * n then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 4 + 2 * n))
  redis.call('EXPIRE', KEYS[2], ttl)
end
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('TTL', KEYS[3]) < ttl then redis.call('EXPIRE', KEYS[3], ttl) end
return 1
)lua"},
    // KEYS: flow, methods. ARGV: field names. Returns nil when there is no flow hash, or
    // the fields' values (nil when absent), then the methods.
    {"get_flow", R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local f = redis.call('HMGET', KEYS[1], unpack(ARGV))
local m = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 1, #m do f[#f + 1] = m[i] end
return f
)lua"},
    // KEYS: flow, methods[, user_flows]. ARGV: the mac that was read ('' when none), 'write'
    // or 'keep', an id to drop from user_flows ('' for none), then for 'write': n, n
    // field/value pairs (mac included), methods... Returns 0, changing nothing, when the
    // stored mac is no longer the one read; 1 once done. The methods list gets the hash's TTL.
    {"update_flow", R"lua(
if (redis.call('HGET', KEYS[1], 'mac') or '') ~= ARGV[1] then return 0 end
if ARGV[2] == 'write' then
  local n = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + 2 * n))
  redis.call('DEL', KEYS[2])
  if #ARGV >= 5 + 2 * n then
    redis.call('RPUSH', KEYS[2], unpack(ARGV, 5 + 2 * n))
    local ttl = redis.call('TTL', KEYS[1])
    if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
  end
end
if ARGV[3] ~= '' then redis.call('SREM', KEYS[3], ARGV[3]) end
return 1
)lua"},
    // KEYS: pending. ARGV: user_key, username, user_dn, sealed_key, expires_at, ttl.
    {"put_pending", R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'user_key', ARGV[1], 'username', ARGV[2], 'user_dn', ARGV[3],
           'sealed_key', ARGV[4], 'expires_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
)lua"},
    // KEYS: pending, totp of the user the caller read from pending. ARGV: that user_key, now.
    // 1 confirmed, 0 gone or expired, -1 the pending record now belongs to someone else.
    {"confirm_totp", R"lua(
local f = redis.call('HMGET', KEYS[1], 'user_key', 'sealed_key', 'expires_at')
if not f[1] or tonumber(f[3]) <= tonumber(ARGV[2]) then return 0 end
if f[1] ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], f[2])
redis.call('DEL', KEYS[1])
return 1
)lua"},
    // KEYS: step. ARGV: step. Only a greater step is recorded.
    {"accept_step", R"lua(
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(ARGV[1]) <= tonumber(cur) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
)lua"},
    // KEYS: fail. ARGV: now, expires_at, ttl. Returns the new count.
    {"record_failure", R"lua(
local f = redis.call('HMGET', KEYS[1], 'count', 'expires_at')
local count = 1
if f[1] and tonumber(f[2]) > tonumber(ARGV[1]) then count = tonumber(f[1]) + 1 end
redis.call('HSET', KEYS[1], 'count', tostring(count), 'expires_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return count
)lua"},
    // KEYS: fail. ARGV: now, expires_at, limit, ttl. Returns reserved (1/0), the live count
    // and its expires_at (as stored; '0' when there is none). A refusal writes nothing.
    {"reserve_failure", R"lua(
local f = redis.call('HMGET', KEYS[1], 'count', 'expires_at')
local count = 0
local expires_at = '0'
if f[1] and tonumber(f[2]) > tonumber(ARGV[1]) then
  count = tonumber(f[1])
  expires_at = f[2]
end
if count >= tonumber(ARGV[3]) then return {0, count, expires_at} end
redis.call('HSET', KEYS[1], 'count', tostring(count + 1), 'expires_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, count + 1, ARGV[2]}
)lua"},
    // KEYS: code. ARGV: code_hash, expires_at, ttl. Replaces the live code.
    {"put_code", R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'code_hash', ARGV[1], 'expires_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
)lua"},
    // KEYS: code. ARGV: code_hash, now. Deletes the code if it matches and is live; a wrong
    // or expired code leaves it for purge. The hash is keyed: comparing it in Lua (not in
    // constant time) tells an attacker nothing about a code.
    {"consume_code", R"lua(
local f = redis.call('HMGET', KEYS[1], 'code_hash', 'expires_at')
if not f[1] or f[1] ~= ARGV[1] or tonumber(f[2]) <= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
)lua"},
    // KEYS: window. ARGV: now, expires_at of a new window, limit, ttl.
    // Returns allowed (1/0), count, expires_at of the live window (as stored).
    {"hit_window", R"lua(
local f = redis.call('HMGET', KEYS[1], 'count', 'expires_at')
local limit = tonumber(ARGV[3])
if f[1] and tonumber(f[2]) > tonumber(ARGV[1]) then
  local count = tonumber(f[1])
  if count >= limit then return {0, count, f[2]} end
  redis.call('HSET', KEYS[1], 'count', tostring(count + 1))
  return {1, count + 1, f[2]}
end
if limit < 1 then return {0, 0, ARGV[2]} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'count', '1', 'expires_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, 1, ARGV[2]}
)lua"},
    // KEYS: recovery. ARGV: code hashes. Replaces the set.
    {"set_recovery_codes", R"lua(
redis.call('DEL', KEYS[1])
for i = 1, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
return 1
)lua"},
    // KEYS: totp, recovery. Returns how many TOTP keys were removed (0 or 1).
    {"remove_totp", R"lua(
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return n
)lua"},
    // KEYS: groups of `stride` keys whose first is a hash with expires_at. ARGV: now, stride.
    // Deletes every group whose expires_at <= now.
    {"purge", R"lua(
local now = tonumber(ARGV[1])
local stride = tonumber(ARGV[2])
local n = 0
for i = 1, #KEYS, stride do
  local e = redis.call('HGET', KEYS[i], 'expires_at')
  if e and tonumber(e) <= now then
    for j = i, i + stride - 1 do redis.call('DEL', KEYS[j]) end
    n = n + 1
  end
end
return n
)lua"},
}};
// clang-format on

std::string key(std::string_view kind, std::string_view name) {
    std::string k;
    k.reserve(key_prefix.size() + kind.size() + 1 + name.size());
    k.append(key_prefix).append(kind).append(":").append(name);
    return k;
}

// A flow's one-time code for one method. The flow's id hash has a fixed length, so
// "<id_hash>:<method>" names one pair only.
std::string code_key(std::string_view flow_id_hash, std::string_view method) {
    std::string name(flow_id_hash);
    name.append(":").append(method);
    return key("code", name);
}

bool is_hex_sha256(std::string_view s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

void require_id_hash(std::string_view id_hash, const char* operation) {
    // Never echoes the value: a raw id passed by mistake must not reach a log.
    if (!is_hex_sha256(id_hash)) {
        throw std::invalid_argument(std::string("redis store: ") + operation +
                                    " needs the lowercase hex SHA-256 of the id");
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

std::int64_t redis_ttl_s(std::int64_t expires_at) {
    const std::int64_t wall = unix_now();
    const std::int64_t remaining = expires_at > wall ? expires_at - wall : 0;
    return std::min(remaining, max_data_ttl_s) + ttl_slack_s;
}

int clamp_count(std::int64_t count) {
    return static_cast<int>(std::clamp<std::int64_t>(count, 0, INT_MAX));
}

// ---------------------------------------------------------------------------------------
// URL

struct endpoint {
    std::string shown;  // the URL as it may appear in messages (no credentials)
    bool unix_socket = false;
    std::string host;  // or the socket path
    int port = 6379;
    int db = 0;
};

// The URL with anything between "//" and "@" replaced, so a password pasted into it by
// mistake never reaches a message.
std::string redact(std::string_view url) {
    const auto scheme_end = url.find("//");
    if (scheme_end == std::string_view::npos) {
        return std::string(url);
    }
    const auto start = scheme_end + 2;
    const auto authority_end = url.find_first_of("/?#", start);
    const auto authority =
        url.substr(start, authority_end == std::string_view::npos ? std::string_view::npos
                                                                  : authority_end - start);
    const auto at = authority.rfind('@');
    if (at == std::string_view::npos) {
        return std::string(url);
    }
    return std::string(url.substr(0, start)) + "***" + std::string(url.substr(start + at));
}

[[noreturn]] void bad_url(const endpoint& ep, std::string_view why) {
    throw std::runtime_error("redis store " + ep.shown + ": bad URL: " + std::string(why) +
                             " (expected redis://HOST[:PORT][/DB] or unix:/PATH[?db=N])");
}

endpoint parse_url(std::string_view url) {
    endpoint ep;
    ep.shown = redact(url);
    constexpr std::string_view redis_scheme = "redis://";
    constexpr std::string_view unix_scheme = "unix:";
    constexpr int max_db = 1'000'000;
    if (url.starts_with(redis_scheme)) {
        auto rest = url.substr(redis_scheme.size());
        const auto slash = rest.find('/');
        const auto authority = rest.substr(0, slash);
        if (authority.find('@') != std::string_view::npos) {
            bad_url(ep, "credentials do not belong in the URL; pass the password separately");
        }
        if (rest.find_first_of("?#") != std::string_view::npos) {
            bad_url(ep, "query and fragment are not supported");
        }
        std::string_view port;
        if (authority.starts_with('[')) {
            const auto close = authority.find(']');
            if (close == std::string_view::npos) {
                bad_url(ep, "unterminated [IPv6 address]");
            }
            ep.host = authority.substr(1, close - 1);
            const auto after = authority.substr(close + 1);
            if (!after.empty()) {
                if (after.front() != ':') {
                    bad_url(ep, "unexpected text after the ]");
                }
                port = after.substr(1);
                if (port.empty()) {
                    bad_url(ep, "empty port");
                }
            }
        } else {
            const auto colon = authority.find(':');
            ep.host = authority.substr(0, colon);
            if (colon != std::string_view::npos) {
                port = authority.substr(colon + 1);
                if (port.empty()) {
                    bad_url(ep, "empty port");
                }
            }
        }
        if (ep.host.empty()) {
            bad_url(ep, "no host");
        }
        if (!port.empty()) {
            const auto p = text::parse_int<int>(port);
            if (!p || *p < 1 || *p > 65535) {
                bad_url(ep, "the port must be a number from 1 to 65535");
            }
            ep.port = *p;
        }
        if (slash != std::string_view::npos && slash + 1 < rest.size()) {
            const auto db = text::parse_int<int>(rest.substr(slash + 1));
            if (!db || *db < 0 || *db > max_db) {
                bad_url(ep, "the database must be a number (0, 1, ...)");
            }
            ep.db = *db;
        }
        return ep;
    }
    if (url.starts_with(unix_scheme)) {
        auto rest = url.substr(unix_scheme.size());
        if (rest.starts_with("///")) {
            rest.remove_prefix(2);  // unix:///path
        }
        const auto query = rest.find('?');
        const auto path = rest.substr(0, query);
        if (!path.starts_with('/') || path.size() < 2) {
            bad_url(ep, "the socket path must be absolute");
        }
        ep.unix_socket = true;
        ep.host = path;
        if (query != std::string_view::npos) {
            const auto q = rest.substr(query + 1);
            constexpr std::string_view db_param = "db=";
            const auto db = q.starts_with(db_param)
                                ? text::parse_int<int>(q.substr(db_param.size()))
                                : std::nullopt;
            if (!db || *db < 0 || *db > max_db) {
                bad_url(ep, "the only query parameter is db=N");
            }
            ep.db = *db;
        }
        return ep;
    }
    bad_url(ep, "unknown scheme");
}

// ---------------------------------------------------------------------------------------
// hiredis handles

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// One command as separate binary-safe arguments (redisCommandArgv): keys and values are
// never formatted into a command string. Views point into the caller's data or into
// owned_, which never moves its strings.
class command {
public:
    explicit command(std::string_view name) { add(name); }
    command(const command&) = delete;
    command& operator=(const command&) = delete;
    // A deque hands its storage over on a move, so the views into owned_ stay valid.
    command(command&&) = default;
    command& operator=(command&&) = delete;

    command& add(std::string_view value) {
        argv_.push_back(value.data() != nullptr ? value.data() : "");
        lengths_.push_back(value.size());
        return *this;
    }
    command& add(std::span<const unsigned char> bytes) {
        return add(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    command& add_owned(std::string value) {
        owned_.push_back(std::move(value));
        return add(std::string_view(owned_.back()));
    }
    command& add_int(std::int64_t value) { return add_owned(std::to_string(value)); }
    void replace(std::size_t index, std::string_view value) {
        argv_.at(index) = value.data();
        lengths_.at(index) = value.size();
    }

    std::string_view name() const { return {argv_.front(), lengths_.front()}; }
    redisReply* run(redisContext* ctx) const {
        // hiredis takes char** but only reads the arguments.
        return static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(argv_.size()),
                                                         const_cast<const char**>(argv_.data()),
                                                         lengths_.data()));
    }

private:
    std::vector<const char*> argv_;
    std::vector<std::size_t> lengths_;
    std::deque<std::string> owned_;
};

// hiredis writes with write(2), not send(MSG_NOSIGNAL): writing to a connection the server
// has reset raises SIGPIPE, which would kill the daemon. Blocked for the calling thread
// around each call, and a SIGPIPE raised meanwhile is consumed (libpq's pq_block_sigpipe).
class sigpipe_guard {
public:
    sigpipe_guard() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_, &previous_);
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;
    ~sigpipe_guard() {
        if (!was_pending_) {
            sigset_t pending;
            sigemptyset(&pending);
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec no_wait{0, 0};
                sigtimedwait(&pipe_, nullptr, &no_wait);
            }
        }
        pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }

private:
    sigset_t pipe_{};
    sigset_t previous_{};
    bool was_pending_ = false;
};

std::string_view text_of(const redisReply& r) {
    return r.str != nullptr ? std::string_view(r.str, r.len) : std::string_view();
}

bool is_error(const redisReply& r) {
    return r.type == REDIS_REPLY_ERROR;
}

// The error code of an error reply ("NOSCRIPT", "WRONGPASS"...), without the rest.
std::string_view error_code(const redisReply& r) {
    const auto text = text_of(r);
    return text.substr(0, text.find(' '));
}

// ---------------------------------------------------------------------------------------
// Flow records and their MAC
//
// Anyone who can write to Redis could otherwise mark a flow verified, flip decoy, point it
// at another user or extend it. Each flow hash therefore carries `mac`, an HMAC-SHA-256
// under a key derived from the sealing key, over the flow's id hash, every field and the
// verified methods. A flow whose MAC does not verify (tampered with, written by a version
// without MACs, or under another sealing key) reads as absent. Every change is computed
// here and written with a compare-and-set on the MAC that was read (script update_flow).
// The MAC cannot stop someone with write access from deleting a flow or putting back an
// earlier version of the same flow that they copied.

constexpr std::string_view flow_mac_key_label = "pwresetd redis flow MAC key v1";
constexpr std::string_view flow_mac_context = "pwresetd flow v1";
constexpr int flow_update_attempts = 10;

// A flow hash as Redis holds it: each field as its stored text, so the MAC covers exactly
// the bytes that are written and read back.
struct flow_record {
    std::string user_key;
    std::string username;
    std::string user_dn;
    std::string directory;
    std::string decoy;  // "1" or "0"
    std::string state;  // "open" or "closed"
    std::string created_at;
    std::string expires_at;
    std::string required_methods;
    std::string totp_required;         // "1" or "0"
    std::string claimed_until;         // "0" when unclaimed
    std::vector<std::string> methods;  // the flow_methods list, in order, no duplicates

    static constexpr std::size_t field_count = 11;
    // The hash fields other than mac, by name, in the one order the MAC and scripts use.
    template <class Self>
    static auto fields_of(Self& r) {
        using text = std::conditional_t<std::is_const_v<Self>, const std::string, std::string>;
        return std::array<std::pair<std::string_view, text*>, field_count>{{
            {"user_key", &r.user_key},
            {"username", &r.username},
            {"user_dn", &r.user_dn},
            {"directory", &r.directory},
            {"decoy", &r.decoy},
            {"state", &r.state},
            {"created_at", &r.created_at},
            {"expires_at", &r.expires_at},
            {"required_methods", &r.required_methods},
            {"totp_required", &r.totp_required},
            {"claimed_until", &r.claimed_until},
        }};
    }
};

// Length-prefixed ("<size>:<bytes>") items: no two different flows give the same input.
std::string flow_mac(const secret& key, std::string_view id_hash, const flow_record& r) {
    std::string input;
    const auto item = [&input](std::string_view v) {
        input.append(std::to_string(v.size())).append(":").append(v);
    };
    item(flow_mac_context);
    item(id_hash);
    for (const auto& [name, value] : flow_record::fields_of(r)) {
        item(name);
        item(*value);
    }
    item(std::to_string(r.methods.size()));
    for (const auto& method : r.methods) {
        item(method);
    }
    const auto digest = crypto::hmac_sha256(key, input);
    return crypto::hex_encode(digest);
}

flow_record record_of(const reset_flow& flow) {
    flow_record r;
    r.user_key = flow.user_key;
    r.username = flow.username;
    r.user_dn = flow.user_dn;
    r.directory = flow.directory;
    r.decoy = flow.decoy ? "1" : "0";
    r.state = "open";
    r.created_at = std::to_string(flow.created_at);
    r.expires_at = std::to_string(flow.expires_at);
    r.required_methods = std::to_string(flow.required_methods);
    r.totp_required = flow.totp_required ? "1" : "0";
    r.claimed_until = "0";
    for (const auto& method : flow.verified_methods) {
        if (std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
            r.methods.push_back(method);
        }
    }
    return r;
}

enum class flow_trust { absent, untrusted, trusted };

struct flow_read {
    flow_trust trust = flow_trust::absent;
    std::string stored_mac;  // as stored; empty when absent or missing
    flow_record record;      // as read; to be relied on only when trusted
};

// ---------------------------------------------------------------------------------------

class redis_store final : public state_store {
public:
    redis_store(const std::string& url, secret sealing_key, secret password);
    redis_store(const redis_store&) = delete;
    redis_store& operator=(const redis_store&) = delete;
    ~redis_store() override = default;

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
    [[noreturn]] void fail(std::string_view what) const;
    context_ptr connect() const;
    // Runs one command on a fresh connection during setup; throws unless there is a reply.
    reply_ptr run_on(redisContext* ctx, const command& cmd, std::string_view what) const;
    // Runs one command on a pooled connection; the reply may be an error reply.
    reply_ptr run(const command& cmd);
    // As run(), but an error reply throws.
    reply_ptr run_ok(const command& cmd);
    command script_call(script s, std::size_t key_count) const;
    reply_ptr eval(script s, command& call);
    std::int64_t integer_of(const redisReply& r, std::string_view what) const;
    std::optional<std::int64_t> stored_int(const redisReply& r, std::string_view what) const;
    // A number in a flow whose MAC verified (so this store wrote it).
    std::int64_t flow_int(const std::string& text) const;

    flow_read read_flow(std::string_view id_hash);
    // Reads the flow; when it is trusted, change(record) may edit it and returns true to
    // store the edit, which replaces the stored version only if that is still the one
    // read (else it reads again). With `forget_from` (a user_flows key), the id is dropped
    // from that set in the same step, whatever the flow. Returns whether an edit was stored.
    bool update_flow(std::string_view id_hash, const std::function<bool(flow_record&)>& change,
                     std::string_view forget_from = {});
    void report_untrusted_flow(std::string_view id_hash, std::string_view reason,
                               const flow_read& read);

    endpoint endpoint_;
    secret sealing_key_;
    secret flow_mac_key_;  // derived from sealing_key_; only for flow MACs
    secret password_;
    std::array<std::string, scripts.size()> shas_;  // set in the constructor, then read-only
    std::mutex mutex_;
    std::vector<context_ptr> idle_;  // guarded by mutex_
    // Untrusted flow versions already logged (id hash and MACs), so a tampered flow that is
    // asked for again and again is logged once; cleared when it grows large.
    std::mutex reported_mutex_;
    std::unordered_set<std::string> reported_;  // guarded by reported_mutex_
};

redis_store::redis_store(const std::string& url, secret sealing_key, secret password)
    : endpoint_(parse_url(url)),
      sealing_key_(std::move(sealing_key)),
      password_(std::move(password)) {
    if (sealing_key_.size() != sealing_key_size) {
        fail("the sealing key must be 32 bytes");
    }
    // HMAC as a PRF with a fixed label: a key of its own, so a MAC never doubles as
    // anything made with the sealing key.
    auto derived = crypto::hmac_sha256(sealing_key_, flow_mac_key_label);
    flow_mac_key_ = secret(std::span<const unsigned char>(derived));
    wipe(derived.data(), derived.size());
    const sigpipe_guard guard;
    auto ctx = connect();
    const auto pong = run_on(ctx.get(), command("PING"), "PING");
    if (pong->type != REDIS_REPLY_STATUS || text_of(*pong) != "PONG") {
        fail("PING: unexpected answer");
    }
    // An evicting server could drop a failure counter (a limit bypassed) or a replay mark
    // (a code accepted twice) under memory pressure: refuse it. A server that does not
    // let us read its configuration (CONFIG renamed, ACL) is taken on trust.
    command policy("CONFIG");
    policy.add("GET").add("maxmemory-policy");
    const auto reply = run_on(ctx.get(), policy, "CONFIG GET");
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        text_of(*reply->element[1]) != "noeviction") {
        fail("maxmemory-policy is " + std::string(text_of(*reply->element[1])) +
             ": Redis could evict failure counters and replay marks; set it to noeviction");
    }
    for (std::size_t i = 0; i < scripts.size(); ++i) {
        command load("SCRIPT");
        load.add("LOAD").add(scripts[i].body);
        const auto sha = run_on(ctx.get(), load, "SCRIPT LOAD");
        if (sha->type != REDIS_REPLY_STRING) {
            fail(std::string("SCRIPT LOAD ") + scripts[i].name + ": " +
                 (is_error(*sha) ? std::string(text_of(*sha)) : "unexpected answer"));
        }
        shas_[i] = text_of(*sha);
    }
    idle_.push_back(std::move(ctx));
}

void redis_store::fail(std::string_view what) const {
    throw store_error("redis store " + endpoint_.shown + ": " + std::string(what));
}

context_ptr redis_store::connect() const {
    context_ptr ctx(
        endpoint_.unix_socket
            ? redisConnectUnixWithTimeout(endpoint_.host.c_str(), io_timeout)
            : redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, io_timeout));
    if (!ctx) {
        fail("cannot connect: out of memory");
    }
    if (ctx->err != 0) {
        fail(std::string("cannot connect: ") + ctx->errstr);
    }
    if (redisSetTimeout(ctx.get(), io_timeout) != REDIS_OK) {
        fail(std::string("cannot set the command timeout: ") + ctx->errstr);
    }
    if (!endpoint_.unix_socket) {
        redisEnableKeepAlive(ctx.get());
    }
    if (!password_.empty()) {
        command auth("AUTH");
        auth.add(password_.view());
        const auto reply = run_on(ctx.get(), auth, "AUTH");
        if (is_error(*reply)) {
            // Only the code: the rest of the text is the server's to word.
            fail("authentication failed (" + std::string(error_code(*reply)) + ")");
        }
    }
    if (endpoint_.db != 0) {
        command select("SELECT");
        select.add_int(endpoint_.db);
        const auto reply = run_on(ctx.get(), select, "SELECT");
        if (is_error(*reply)) {
            fail("SELECT " + std::to_string(endpoint_.db) + ": " + std::string(text_of(*reply)));
        }
    }
    return ctx;
}

reply_ptr redis_store::run_on(redisContext* ctx, const command& cmd, std::string_view what) const {
    errno = 0;
    reply_ptr reply(cmd.run(ctx));
    const int saved_errno = errno;
    if (!reply) {
        const bool timed_out =
            ctx->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
        fail(std::string(what) + ": " + (timed_out ? "no answer within the timeout" : ctx->errstr));
    }
    if (is_error(*reply) && error_code(*reply) == "NOAUTH") {
        fail(std::string(what) + ": the server requires a password (NOAUTH)");
    }
    return reply;
}

// The pool holds idle connections; a call borrows one (or connects) and gives it back.
// Several connections, not one behind a mutex: a call waits for a network round trip, and
// worker threads should not queue behind each other for that; Redis itself runs the
// commands one at a time, and the atomicity comes from the scripts, not from the client.
// There is at most one connection per thread calling at the same moment (the daemon's
// worker pool bounds that), and at most max_idle_connections are kept.
reply_ptr redis_store::run(const command& cmd) {
    const sigpipe_guard guard;
    for (int attempt = 0;; ++attempt) {
        context_ptr ctx;
        if (attempt == 0) {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                ctx = std::move(idle_.back());
                idle_.pop_back();
            }
        }
        const bool reused = static_cast<bool>(ctx);
        if (!ctx) {
            ctx = connect();
        }
        errno = 0;
        reply_ptr reply(cmd.run(ctx.get()));
        const int saved_errno = errno;
        if (reply) {
            std::lock_guard lock(mutex_);
            if (idle_.size() < max_idle_connections) {
                idle_.push_back(std::move(ctx));
            }
            return reply;
        }
        const bool timed_out =
            ctx->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
        const bool broken = !timed_out && (ctx->err == REDIS_ERR_IO || ctx->err == REDIS_ERR_EOF);
        // A connection that broke while idle (server restarted, idle timeout, failover):
        // the others in the pool most likely broke with it. Retry once on a new one. The
        // command may have run if the server died after running it; for every command here
        // a second run can only refuse more (a closed flow, an accepted step, a consumed
        // code, one more failure or window hit), never accept twice.
        if (broken && reused && attempt == 0) {
            std::lock_guard lock(mutex_);
            idle_.clear();
            continue;
        }
        fail(std::string(cmd.name()) + ": " +
             (timed_out ? "no answer within the timeout" : ctx->errstr));
    }
}

reply_ptr redis_store::run_ok(const command& cmd) {
    auto reply = run(cmd);
    if (is_error(*reply)) {
        fail(std::string(cmd.name()) + ": " + std::string(text_of(*reply)));
    }
    return reply;
}

command redis_store::script_call(script s, std::size_t key_count) const {
    command call("EVALSHA");
    call.add(shas_[static_cast<std::size_t>(s)]).add_int(static_cast<std::int64_t>(key_count));
    return call;
}

// EVALSHA, and EVAL when the server no longer has the script (restarted, SCRIPT FLUSH).
reply_ptr redis_store::eval(script s, command& call) {
    auto reply = run(call);
    if (is_error(*reply) && error_code(*reply) == "NOSCRIPT") {
        call.replace(0, "EVAL");
        call.replace(1, scripts[static_cast<std::size_t>(s)].body);
        reply = run(call);
    }
    if (is_error(*reply)) {
        fail(std::string("script ") + scripts[static_cast<std::size_t>(s)].name + ": " +
             std::string(text_of(*reply)));
    }
    return reply;
}

std::int64_t redis_store::integer_of(const redisReply& r, std::string_view what) const {
    if (r.type != REDIS_REPLY_INTEGER) {
        fail(std::string(what) + ": unexpected answer");
    }
    return static_cast<std::int64_t>(r.integer);
}

// A stored decimal (a string reply); nullopt when the value is absent (nil).
std::optional<std::int64_t> redis_store::stored_int(const redisReply& r,
                                                    std::string_view what) const {
    if (r.type == REDIS_REPLY_NIL) {
        return std::nullopt;
    }
    const auto value =
        r.type == REDIS_REPLY_STRING ? text::parse_int<std::int64_t>(text_of(r)) : std::nullopt;
    if (!value) {
        fail(std::string(what) + ": a stored number is malformed");
    }
    return value;
}

// --- reset flows ---

std::int64_t redis_store::flow_int(const std::string& text) const {
    const auto value = text::parse_int<std::int64_t>(text);
    if (!value) {
        fail("a flow record holds a malformed number");
    }
    return *value;
}

flow_read redis_store::read_flow(std::string_view id_hash) {
    auto call = script_call(script::get_flow, 2);
    call.add_owned(key("flow", id_hash)).add_owned(key("flow_methods", id_hash)).add("mac");
    flow_read read;
    for (const auto& [name, value] : flow_record::fields_of(read.record)) {
        call.add(name);
    }
    const auto reply = eval(script::get_flow, call);
    if (reply->type == REDIS_REPLY_NIL) {
        return read;
    }
    constexpr std::size_t fields = 1 + flow_record::field_count;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < fields) {
        fail("get_flow: unexpected answer");
    }
    for (std::size_t i = 0; i < reply->elements; ++i) {
        const int type = reply->element[i]->type;
        if (type != REDIS_REPLY_STRING && !(i < fields && type == REDIS_REPLY_NIL)) {
            fail("get_flow: unexpected answer");
        }
    }
    read.stored_mac = text_of(*reply->element[0]);
    read.trust = flow_trust::untrusted;
    std::size_t i = 1;
    for (const auto& [name, value] : flow_record::fields_of(read.record)) {
        if (reply->element[i]->type == REDIS_REPLY_NIL) {
            report_untrusted_flow(id_hash, "incomplete", read);
            return read;
        }
        *value = text_of(*reply->element[i++]);
    }
    for (; i < reply->elements; ++i) {
        read.record.methods.emplace_back(text_of(*reply->element[i]));
    }
    if (read.stored_mac.empty()) {
        report_untrusted_flow(id_hash, "no_mac", read);
        return read;
    }
    const auto expected = flow_mac(flow_mac_key_, id_hash, read.record);
    const auto bytes = [](std::string_view text) {
        return std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size());
    };
    if (!crypto::constant_time_equal(bytes(read.stored_mac), bytes(expected))) {
        report_untrusted_flow(id_hash, "mac_mismatch", read);
        return read;
    }
    read.trust = flow_trust::trusted;
    return read;
}

// One error line per untrusted version of a flow, not one per request that meets it. The
// line names the flow by its id hash (as the Redis key does) and holds no field values.
void redis_store::report_untrusted_flow(std::string_view id_hash, std::string_view reason,
                                        const flow_read& read) {
    constexpr std::size_t max_reported = 1024;
    std::string seen(id_hash);
    seen.append(":")
        .append(read.stored_mac)
        .append(":")
        .append(flow_mac(flow_mac_key_, id_hash, read.record));
    {
        std::lock_guard lock(reported_mutex_);
        if (reported_.size() >= max_reported) {
            reported_.clear();
        }
        if (!reported_.insert(std::move(seen)).second) {
            return;
        }
    }
    log::error("store.flow_tampered",
               {{"store", endpoint_.shown}, {"id_hash", id_hash}, {"reason", reason}});
}

bool redis_store::update_flow(std::string_view id_hash,
                              const std::function<bool(flow_record&)>& change,
                              std::string_view forget_from) {
    const bool forget = !forget_from.empty();
    for (int attempt = 0; attempt < flow_update_attempts; ++attempt) {
        auto read = read_flow(id_hash);
        const bool write = read.trust == flow_trust::trusted && change(read.record);
        if (!write && !forget) {
            return false;
        }
        auto call = script_call(script::update_flow, forget ? 3 : 2);
        call.add_owned(key("flow", id_hash)).add_owned(key("flow_methods", id_hash));
        if (forget) {
            call.add(forget_from);
        }
        call.add(read.stored_mac).add(write ? "write" : "keep").add(forget ? id_hash : "");
        if (write) {
            call.add_int(static_cast<std::int64_t>(1 + flow_record::field_count))
                .add("mac")
                .add_owned(flow_mac(flow_mac_key_, id_hash, read.record));
            for (const auto& [name, value] : flow_record::fields_of(read.record)) {
                call.add(name).add(*value);
            }
            for (const auto& method : read.record.methods) {
                call.add(method);
            }
        }
        if (integer_of(*eval(script::update_flow, call), "update_flow") == 1) {
            return write;
        }
        // Another caller changed the flow since it was read: decide again on what is there.
    }
    fail("update_flow: the flow kept changing");
}

void redis_store::put_flow(const reset_flow& flow) {
    require_id_hash(flow.id_hash, "put_flow");
    const auto record = record_of(flow);
    auto call = script_call(script::put_flow, 3);
    call.add_owned(key("flow", flow.id_hash))
        .add_owned(key("flow_methods", flow.id_hash))
        .add_owned(key("user_flows", flow.user_key))
        .add(flow.id_hash)
        .add_int(redis_ttl_s(flow.expires_at))
        .add_int(static_cast<std::int64_t>(1 + flow_record::field_count))
        .add("mac")
        .add_owned(flow_mac(flow_mac_key_, flow.id_hash, record));
    for (const auto& [name, value] : flow_record::fields_of(record)) {
        call.add(name).add(*value);
    }
    for (const auto& method : record.methods) {
        call.add(method);
    }
    eval(script::put_flow, call);
}

std::optional<reset_flow> redis_store::get_open_flow(std::string_view id_hash, std::int64_t now) {
    const auto read = read_flow(id_hash);
    if (read.trust != flow_trust::trusted) {
        return std::nullopt;
    }
    const auto& r = read.record;
    const auto expires_at = flow_int(r.expires_at);
    if (r.state != "open" || expires_at <= now) {
        return std::nullopt;
    }
    reset_flow flow;
    flow.id_hash = id_hash;
    flow.user_key = r.user_key;
    flow.username = r.username;
    flow.user_dn = r.user_dn;
    flow.directory = r.directory;
    flow.decoy = r.decoy == "1";
    flow.created_at = flow_int(r.created_at);
    flow.expires_at = expires_at;
    flow.verified_methods = r.methods;
    flow.required_methods = clamp_count(flow_int(r.required_methods));
    flow.totp_required = r.totp_required == "1";
    flow.claimed_until = flow_int(r.claimed_until);
    return flow;
}

void redis_store::add_verified_method(std::string_view id_hash, std::string_view method) {
    update_flow(id_hash, [&](flow_record& r) {
        if (r.state != "open" ||
            std::find(r.methods.begin(), r.methods.end(), method) != r.methods.end()) {
            return false;
        }
        r.methods.emplace_back(method);
        return true;
    });
}

// Of concurrent claimers, each reads the same version; the first compare-and-set replaces
// it, the others find the MAC changed, read again and see a live claim.
bool redis_store::claim_flow(std::string_view id_hash, std::int64_t now, std::int64_t claim_until) {
    if (claim_until <= now) {
        throw std::invalid_argument("redis store: claim_flow needs claim_until after now");
    }
    return update_flow(id_hash, [&](flow_record& r) {
        if (r.state != "open" || flow_int(r.expires_at) <= now || flow_int(r.claimed_until) > now) {
            return false;
        }
        r.claimed_until = std::to_string(claim_until);
        return true;
    });
}

void redis_store::release_flow(std::string_view id_hash) {
    update_flow(id_hash, [&](flow_record& r) {
        if (r.state != "open" || r.claimed_until == "0") {
            return false;
        }
        r.claimed_until = "0";
        return true;
    });
}

bool redis_store::close_flow(std::string_view id_hash, std::int64_t now) {
    return update_flow(id_hash, [&](flow_record& r) {
        if (r.state != "open" || flow_int(r.expires_at) <= now) {
            return false;
        }
        r.state = "closed";
        return true;
    });
}

// The user's set lists flows that may be open; each is checked and dropped from the set in
// one compare-and-set, so a flow stored meanwhile is either closed or left for the next
// call, and a flow replaced under another user is not touched.
void redis_store::close_user_flows(std::string_view user_key) {
    const auto set_key = key("user_flows", user_key);
    command members("SMEMBERS");
    members.add(set_key);
    const auto reply = run_ok(members);
    if (reply->type != REDIS_REPLY_ARRAY) {
        fail("close_user_flows: unexpected answer");
    }
    for (std::size_t i = 0; i < reply->elements; ++i) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            fail("close_user_flows: unexpected answer");
        }
        update_flow(
            text_of(*reply->element[i]),
            [&](flow_record& r) {
                if (r.user_key != user_key || r.state != "open") {
                    return false;
                }
                r.state = "closed";
                return true;
            },
            set_key);
    }
}

// --- TOTP enrollments ---

void redis_store::put_pending_totp(std::string_view enrollment_id_hash,
                                   const pending_enrollment& pending) {
    require_id_hash(enrollment_id_hash, "put_pending_totp");
    const auto sealed = crypto::seal(sealing_key_, pending.key.bytes(), pending.user_key);
    auto call = script_call(script::put_pending, 1);
    call.add_owned(key("pending", enrollment_id_hash))
        .add(pending.user_key)
        .add(pending.username)
        .add(pending.user_dn)
        .add(std::span<const unsigned char>(sealed))
        .add_int(pending.expires_at)
        .add_int(redis_ttl_s(pending.expires_at));
    eval(script::put_pending, call);
}

std::optional<pending_enrollment> redis_store::get_pending_totp(std::string_view enrollment_id_hash,
                                                                std::int64_t now) {
    command get("HMGET");
    get.add_owned(key("pending", enrollment_id_hash))
        .add("user_key")
        .add("username")
        .add("user_dn")
        .add("sealed_key")
        .add("expires_at");
    const auto reply = run_ok(get);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        fail("get_pending_totp: unexpected answer");
    }
    const auto field = [&](std::size_t i) -> const redisReply& { return *reply->element[i]; };
    const auto expires_at = stored_int(field(4), "get_pending_totp");
    if (!expires_at || *expires_at <= now) {
        return std::nullopt;
    }
    pending_enrollment pending;
    pending.user_key = text_of(field(0));
    pending.username = text_of(field(1));
    pending.user_dn = text_of(field(2));
    pending.expires_at = *expires_at;
    const auto sealed = text_of(field(3));
    auto key_bytes = crypto::open(
        sealing_key_,
        std::span(reinterpret_cast<const unsigned char*>(sealed.data()), sealed.size()),
        pending.user_key);
    if (!key_bytes) {
        log::warning("store.unseal_failed",
                     {{"what", "pending_totp"}, {"user_key", pending.user_key}});
        return std::nullopt;
    }
    pending.key = std::move(*key_bytes);
    return pending;
}

void redis_store::delete_pending_totp(std::string_view enrollment_id_hash) {
    command del("DEL");
    del.add_owned(key("pending", enrollment_id_hash));
    run_ok(del);
}

// The user's key name depends on the pending record, and a script must name its keys up
// front: read the owner, then let the script check the owner is still the same.
bool redis_store::confirm_totp(std::string_view enrollment_id_hash, std::int64_t now) {
    const auto pending_key = key("pending", enrollment_id_hash);
    for (int attempt = 0; attempt < confirm_attempts; ++attempt) {
        command owner("HGET");
        owner.add(pending_key).add("user_key");
        const auto user = run_ok(owner);
        if (user->type != REDIS_REPLY_STRING) {
            return false;
        }
        auto call = script_call(script::confirm_totp, 2);
        call.add(pending_key)
            .add_owned(key("totp", text_of(*user)))
            .add(text_of(*user))
            .add_int(now);
        const auto result = integer_of(*eval(script::confirm_totp, call), "confirm_totp");
        if (result >= 0) {
            return result == 1;
        }
    }
    fail("confirm_totp: the enrollment kept changing owner");
}

std::optional<secret> redis_store::get_totp(std::string_view user_key) {
    command get("GET");
    get.add_owned(key("totp", user_key));
    const auto reply = run_ok(get);
    if (reply->type == REDIS_REPLY_NIL) {
        return std::nullopt;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        fail("get_totp: unexpected answer");
    }
    const auto sealed = text_of(*reply);
    auto key_bytes = crypto::open(
        sealing_key_,
        std::span(reinterpret_cast<const unsigned char*>(sealed.data()), sealed.size()), user_key);
    if (!key_bytes) {
        log::warning("store.unseal_failed", {{"what", "totp_key"}, {"user_key", user_key}});
    }
    return key_bytes;
}

bool redis_store::remove_totp(std::string_view user_key) {
    auto call = script_call(script::remove_totp, 2);
    call.add_owned(key("totp", user_key)).add_owned(key("recovery", user_key));
    return integer_of(*eval(script::remove_totp, call), "remove_totp") > 0;
}

// --- replay protection ---

std::optional<std::int64_t> redis_store::last_totp_step(std::string_view user_key) {
    command get("GET");
    get.add_owned(key("step", user_key));
    return stored_int(*run_ok(get), "last_totp_step");
}

bool redis_store::accept_totp_step(std::string_view user_key, std::int64_t step) {
    auto call = script_call(script::accept_step, 1);
    call.add_owned(key("step", user_key)).add_int(step);
    return integer_of(*eval(script::accept_step, call), "accept_totp_step") == 1;
}

// --- failure counters ---

failure_state redis_store::record_failure(std::string_view counter_key, std::int64_t now,
                                          std::int64_t ttl_s) {
    const std::int64_t expires_at = saturating_add(now, ttl_s);
    auto call = script_call(script::record_failure, 1);
    call.add_owned(key("fail", counter_key))
        .add_int(now)
        .add_int(expires_at)
        .add_int(redis_ttl_s(expires_at));
    const auto count = integer_of(*eval(script::record_failure, call), "record_failure");
    return {clamp_count(count), expires_at};
}

failure_reservation redis_store::reserve_failure(std::string_view counter_key, std::int64_t now,
                                                 std::int64_t ttl_s, int limit) {
    const std::int64_t expires_at = saturating_add(now, ttl_s);
    auto call = script_call(script::reserve_failure, 1);
    call.add_owned(key("fail", counter_key))
        .add_int(now)
        .add_int(expires_at)
        .add_int(limit)
        .add_int(redis_ttl_s(expires_at));
    const auto reply = eval(script::reserve_failure, call);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        fail("reserve_failure: unexpected answer");
    }
    const auto live_until = stored_int(*reply->element[2], "reserve_failure");
    if (!live_until) {
        fail("reserve_failure: unexpected answer");
    }
    return {integer_of(*reply->element[0], "reserve_failure") == 1,
            clamp_count(integer_of(*reply->element[1], "reserve_failure")), *live_until};
}

failure_state redis_store::get_failures(std::string_view counter_key, std::int64_t now) {
    command get("HMGET");
    get.add_owned(key("fail", counter_key)).add("count").add("expires_at");
    const auto reply = run_ok(get);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        fail("get_failures: unexpected answer");
    }
    const auto count = stored_int(*reply->element[0], "get_failures");
    const auto expires_at = stored_int(*reply->element[1], "get_failures");
    if (!count || !expires_at || *expires_at <= now) {
        return {};
    }
    return {clamp_count(*count), *expires_at};
}

void redis_store::clear_failures(std::string_view counter_key) {
    command del("DEL");
    del.add_owned(key("fail", counter_key));
    run_ok(del);
}

// --- one-time codes ---

void redis_store::put_code(std::string_view flow_id_hash, std::string_view method,
                           std::string_view code_hash, std::int64_t expires_at) {
    require_id_hash(flow_id_hash, "put_code");
    auto call = script_call(script::put_code, 1);
    call.add_owned(code_key(flow_id_hash, method))
        .add(code_hash)
        .add_int(expires_at)
        .add_int(redis_ttl_s(expires_at));
    eval(script::put_code, call);
}

bool redis_store::consume_code(std::string_view flow_id_hash, std::string_view method,
                               std::string_view code_hash, std::int64_t now) {
    auto call = script_call(script::consume_code, 1);
    call.add_owned(code_key(flow_id_hash, method)).add(code_hash).add_int(now);
    return integer_of(*eval(script::consume_code, call), "consume_code") == 1;
}

// --- rate windows ---

window_hit redis_store::hit_window(std::string_view window_key, std::int64_t now,
                                   std::int64_t window_s, int limit) {
    const std::int64_t expires_at = saturating_add(now, window_s);
    auto call = script_call(script::hit_window, 1);
    call.add_owned(key("window", window_key))
        .add_int(now)
        .add_int(expires_at)
        .add_int(limit)
        .add_int(redis_ttl_s(expires_at));
    const auto reply = eval(script::hit_window, call);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        fail("hit_window: unexpected answer");
    }
    const auto resets_at = stored_int(*reply->element[2], "hit_window");
    if (!resets_at) {
        fail("hit_window: unexpected answer");
    }
    return {integer_of(*reply->element[0], "hit_window") == 1,
            clamp_count(integer_of(*reply->element[1], "hit_window")), *resets_at};
}

// --- recovery codes: a set per user, without TTL (they last as long as the TOTP key) ---

void redis_store::set_recovery_codes(std::string_view user_key,
                                     const std::vector<std::string>& code_hashes) {
    auto call = script_call(script::set_recovery_codes, 1);
    call.add_owned(key("recovery", user_key));
    for (const auto& hash : code_hashes) {
        call.add(hash);
    }
    eval(script::set_recovery_codes, call);
}

// SREM is atomic on its own: of several callers, one removes the member.
bool redis_store::consume_recovery_code(std::string_view user_key, std::string_view code_hash) {
    command srem("SREM");
    srem.add_owned(key("recovery", user_key)).add(code_hash);
    return integer_of(*run_ok(srem), "consume_recovery_code") == 1;
}

int redis_store::recovery_codes_left(std::string_view user_key) {
    command scard("SCARD");
    scard.add_owned(key("recovery", user_key));
    return clamp_count(integer_of(*run_ok(scard), "recovery_codes_left"));
}

// Redis TTLs remove abandoned keys a day after they expire; this removes what has expired
// by the caller's clock right away, as SQLite does. It SCANs the flow, pending, failure,
// code and window keys (O(keys), in steps of scan_batch, never blocking the server for
// long) and deletes, in one script per batch, the ones whose expires_at has passed. User
// flow sets keep stale ids until close_user_flows or their own TTL drops them; TOTP keys,
// steps and recovery codes never expire.
void redis_store::purge_expired(std::int64_t now) {
    struct kind {
        std::string_view name;
        std::string_view companion;  // a key deleted together with the hash, or empty
    };
    for (const kind k : {kind{"flow", "flow_methods"}, kind{"pending", {}}, kind{"fail", {}},
                         kind{"code", {}}, kind{"window", {}}}) {
        const auto pattern = key(k.name, "*");
        std::string cursor = "0";
        do {
            command scan("SCAN");
            scan.add(cursor).add("MATCH").add(pattern).add("COUNT").add_int(
                static_cast<std::int64_t>(scan_batch));
            const auto reply = run_ok(scan);
            if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                reply->element[0]->type != REDIS_REPLY_STRING ||
                reply->element[1]->type != REDIS_REPLY_ARRAY) {
                fail("SCAN: unexpected answer");
            }
            cursor = text_of(*reply->element[0]);
            const auto& keys = *reply->element[1];
            if (keys.elements == 0) {
                continue;
            }
            const std::size_t stride = k.companion.empty() ? 1 : 2;
            auto call = script_call(script::purge, keys.elements * stride);
            const auto hash_prefix = key(k.name, "");
            for (std::size_t i = 0; i < keys.elements; ++i) {
                const auto name = text_of(*keys.element[i]);
                call.add(name);
                if (stride == 2) {
                    call.add_owned(key(k.companion, name.substr(hash_prefix.size())));
                }
            }
            call.add_int(now).add_int(static_cast<std::int64_t>(stride));
            eval(script::purge, call);
        } while (cursor != "0");
    }
}

}  // namespace

std::unique_ptr<state_store> open_redis_store(const std::string& url, secret sealing_key,
                                              secret password) {
    return std::make_unique<redis_store>(url, std::move(sealing_key), std::move(password));
}

}  // namespace pwresetd::store
