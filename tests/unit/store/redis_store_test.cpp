// The Redis store against a real redis-server on loopback (Debian's redis-server), started
// by the test itself in a temporary folder and always stopped. The state_store contract
// runs over TCP and over a unix socket; the rest is what only Redis has: sealed values on
// the wire, TTLs, reconnects, timeouts, URLs, AUTH and hostile key names.
#include "store/redis_store.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/net.hpp"
#include "support/stderr_capture.hpp"
#include "support/temp_dir.hpp"
#include "unit/store/store_contract.hpp"

namespace store = pwresetd::store;
namespace contract = pwresetd::store::contract;
using contract::id_hash;
using contract::t0;
using pwresetd::secret;
using pwresetd::testing::free_port;
using pwresetd::testing::stderr_capture;
using pwresetd::testing::temp_dir;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view key_a = "sealing-key-A-0123456789abcdefgh";
constexpr std::string_view key_b = "sealing-key-B-0123456789abcdefgh";

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;
struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// A plain hiredis connection for looking at what the store wrote.
class raw_connection {
public:
    explicit raw_connection(int port, int db = 0, std::string_view password = {}) {
        ctx_.reset(redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0}));
        if (!ctx_ || ctx_->err != 0) {
            throw std::runtime_error("raw connection to redis failed");
        }
        redisSetTimeout(ctx_.get(), timeval{5, 0});
        if (!password.empty()) {
            command({"AUTH", password});
        }
        if (db != 0) {
            command({"SELECT", std::to_string(db)});
        }
    }
    reply_ptr command(std::initializer_list<std::string_view> args) {
        return command(std::vector<std::string_view>(args));
    }
    reply_ptr command(const std::vector<std::string_view>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const auto a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        reply_ptr reply(static_cast<redisReply*>(redisCommandArgv(
            ctx_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data())));
        if (!reply) {
            throw std::runtime_error("raw redis command failed");
        }
        return reply;
    }
    std::int64_t integer(std::initializer_list<std::string_view> args) {
        const auto reply = command(args);
        REQUIRE(reply->type == REDIS_REPLY_INTEGER);
        return reply->integer;
    }
    std::vector<std::string> strings(std::initializer_list<std::string_view> args) {
        const auto reply = command(args);
        REQUIRE(reply->type == REDIS_REPLY_ARRAY);
        std::vector<std::string> out;
        for (std::size_t i = 0; i < reply->elements; ++i) {
            out.emplace_back(reply->element[i]->str, reply->element[i]->len);
        }
        return out;
    }

private:
    context_ptr ctx_;
};

// A private redis-server: loopback port and unix socket in a temporary folder, nothing
// saved to disk. It runs as our child (--daemonize no) with PR_SET_PDEATHSIG, so it dies
// with the test process even when that is killed; the destructor stops it otherwise.
class redis_server {
public:
    explicit redis_server(std::string config = {}) : config_(std::move(config)) {
        if (!config_.empty()) {
            std::ofstream(dir_.path() / "redis.conf") << config_ << '\n';
        }
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = free_port();  // another process may take it before redis does: retry
            if (try_start()) {
                return;
            }
        }
        throw std::runtime_error("redis-server did not start; see " +
                                 (dir_.path() / "redis.log").string());
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;
    ~redis_server() { stop(); }

    void start() {
        if (!try_start()) {
            throw std::runtime_error("redis-server did not restart");
        }
    }
    void stop() {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        pid_ = -1;
    }
    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }

    int port() const { return port_; }
    std::string url(int db = 0) const {
        return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
    }
    std::string unix_url(int db = 0) const {
        return "unix:" + (dir_.path() / "redis.sock").string() + "?db=" + std::to_string(db);
    }

private:
    bool try_start() {
        const std::string dir = dir_.path().string();
        std::vector<std::string> args = {"redis-server"};
        if (!config_.empty()) {
            args.push_back(dir + "/redis.conf");
        }
        for (const char* a : {"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--daemonize", "no", "--unixsocketperm", "700"}) {
            args.emplace_back(a);
        }
        args.insert(args.end(), {"--port", std::to_string(port_), "--dir", dir, "--unixsocket",
                                 dir + "/redis.sock", "--logfile", dir + "/redis.log"});
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);

        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(127);
            }
            const int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            context_ptr ctx(redisConnectWithTimeout("127.0.0.1", port_, timeval{0, 200'000}));
            if (ctx && ctx->err == 0) {
                reply_ptr reply(static_cast<redisReply*>(redisCommand(ctx.get(), "PING")));
                // NOAUTH also means it is up (the config asks for a password).
                if (reply &&
                    (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_ERROR)) {
                    return true;
                }
            }
            std::this_thread::sleep_for(20ms);
        }
        stop();
        return false;
    }

    temp_dir dir_{"pwresetd-redis"};
    std::string config_;
    int port_ = 0;
    pid_t pid_ = -1;
};

// One server for the whole run (stopped at exit); every fixture starts from FLUSHALL.
redis_server& shared_server() {
    static redis_server server;
    return server;
}

struct redis_backend {
    redis_backend() { raw_connection(shared_server().port()).command({"FLUSHALL"}); }
    std::unique_ptr<store::state_store> open(std::string_view key = key_a) {
        return store::open_redis_store(shared_server().url(), secret(key));
    }
};

struct redis_unix_backend {
    redis_unix_backend() { raw_connection(shared_server().port()).command({"FLUSHALL"}); }
    std::unique_ptr<store::state_store> open() {
        return store::open_redis_store(shared_server().unix_url(3), secret(key_a));
    }
};

// Every value of every key, read by type (hash fields and values, list and set members),
// in one string.
std::string all_values(raw_connection& raw) {
    std::string bytes;
    for (const auto& k : raw.strings({"KEYS", "*"})) {
        const auto type = raw.command({"TYPE", k});
        const std::string_view t(type->str, type->len);
        bytes += k;
        if (t == "string") {
            const auto v = raw.command({"GET", k});
            bytes.append(v->str, v->len);
        } else {
            const auto parts = t == "hash"   ? raw.strings({"HGETALL", k})
                               : t == "list" ? raw.strings({"LRANGE", k, "0", "-1"})
                                             : raw.strings({"SMEMBERS", k});
            for (const auto& p : parts) {
                bytes += p;
            }
        }
    }
    return bytes;
}

std::string open_error(const std::string& url, std::string_view key = key_a,
                       std::string_view password = {}) {
    try {
        store::open_redis_store(url, secret(key), secret(password));
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    FAIL("open_redis_store did not throw for " << url);
    return {};
}

// The message of the store_error that call() throws; any other outcome fails the test.
template <class Call>
std::string call_error(Call call) {
    try {
        call();
    } catch (const store::store_error& e) {
        return e.what();
    }
    FAIL("the call did not throw");
    return {};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("redis store meets the state_store contract", "[store][redis]") {
    contract::run_store_contract<redis_backend>();
}

TEST_CASE("redis store meets the state_store contract over a unix socket, db 3", "[store][redis]") {
    contract::run_store_contract<redis_unix_backend>();
}

TEST_CASE("redis store never writes a TOTP key in plaintext", "[store][redis]") {
    redis_backend backend;
    const std::string_view plain = "TOTP-KEY-PLAINTEXT-MARKER-7c1f9e";
    auto s = backend.open();
    store::pending_enrollment pending = contract::make_pending("guid-alice", 1);
    pending.username = "username-positive-control";
    pending.key = secret(plain);
    s->put_pending_totp(id_hash("enroll-1"), pending);
    REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
    pending.key = secret(plain);
    s->put_pending_totp(id_hash("enroll-2"), pending);

    raw_connection raw(shared_server().port());
    const auto bytes = all_values(raw);
    CHECK(bytes.find("username-positive-control") != std::string::npos);
    CHECK(bytes.find(plain) == std::string::npos);

    const auto active = raw.command({"GET", "pwresetd:totp:guid-alice"});
    REQUIRE(active->type == REDIS_REPLY_STRING);
    CHECK(active->len == 12 + plain.size() + 16);  // nonce || ciphertext || tag
    const auto sealed =
        raw.command({"HGET", "pwresetd:pending:" + id_hash("enroll-2"), "sealed_key"});
    REQUIRE(sealed->type == REDIS_REPLY_STRING);
    CHECK(sealed->len == 12 + plain.size() + 16);

    const auto key = s->get_totp("guid-alice");
    REQUIRE(key.has_value());
    CHECK(key->equals(plain));
}

TEST_CASE("redis store with another sealing key cannot read the keys", "[store][redis]") {
    redis_backend backend;
    auto a = backend.open(key_a);
    a->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
    REQUIRE(a->confirm_totp(id_hash("enroll-1"), t0));
    a->put_pending_totp(id_hash("enroll-2"), contract::make_pending("guid-bob", 2));

    auto b = backend.open(key_b);
    CHECK_FALSE(b->get_totp("guid-alice").has_value());
    CHECK_FALSE(b->get_pending_totp(id_hash("enroll-2"), t0).has_value());

    const auto key = a->get_totp("guid-alice");
    REQUIRE(key.has_value());
    CHECK(key->equals(contract::totp_key(1)));
    const auto pending = a->get_pending_totp(id_hash("enroll-2"), t0);
    REQUIRE(pending.has_value());
    CHECK(pending->key.equals(contract::totp_key(2)));
}

TEST_CASE("redis store: a sealed key moved to another user does not open", "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    s->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
    REQUIRE(s->confirm_totp(id_hash("enroll-1"), t0));
    raw_connection raw(shared_server().port());
    REQUIRE(
        raw.command({"RENAME", "pwresetd:totp:guid-alice", "pwresetd:totp:guid-mallory"})->type ==
        REDIS_REPLY_STATUS);
    CHECK_FALSE(s->get_totp("guid-mallory").has_value());
    CHECK_FALSE(s->get_totp("guid-alice").has_value());
}

TEST_CASE("redis store keys carry a TTL; enrollments and replay marks do not", "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    raw_connection raw(shared_server().port());
    constexpr std::int64_t day = std::int64_t{24} * 60 * 60;

    // The tests' clock is in the past: keys still live a day (the slack), not zero.
    auto flow = contract::make_flow("reset-1", "guid-alice");
    flow.verified_methods = {"email"};
    s->put_flow(flow);
    s->add_verified_method(flow.id_hash, "totp");
    s->put_pending_totp(id_hash("enroll-1"), contract::make_pending("guid-alice", 1));
    s->record_failure("verify:alice", t0, 60);
    s->put_pending_totp(id_hash("enroll-2"), contract::make_pending("guid-bob", 2));
    REQUIRE(s->confirm_totp(id_hash("enroll-2"), t0));
    REQUIRE(s->accept_totp_step("guid-bob", 7));
    for (const std::string& k :
         {"pwresetd:flow:" + flow.id_hash, "pwresetd:flow_methods:" + flow.id_hash,
          std::string("pwresetd:user_flows:guid-alice"), "pwresetd:pending:" + id_hash("enroll-1"),
          std::string("pwresetd:fail:verify:alice")}) {
        INFO(k);
        const auto ttl = raw.integer({"TTL", k});
        CHECK(ttl > day - 60);
        CHECK(ttl <= day);
    }
    CHECK(raw.integer({"TTL", "pwresetd:totp:guid-bob"}) == -1);
    CHECK(raw.integer({"TTL", "pwresetd:step:guid-bob"}) == -1);

    // Codes and windows carry a TTL; recovery codes live as long as the TOTP key.
    s->put_code(flow.id_hash, "email", contract::code_hash("1"), t0 + 300);
    REQUIRE(s->hit_window("dest:a", t0, 3600, 5).allowed);
    s->set_recovery_codes("guid-bob", {contract::code_hash("r1")});
    for (const std::string& k :
         {"pwresetd:code:" + flow.id_hash + ":email", std::string("pwresetd:window:dest:a")}) {
        INFO(k);
        const auto ttl = raw.integer({"TTL", k});
        CHECK(ttl > day - 60);
        CHECK(ttl <= day);
    }
    CHECK(raw.integer({"TTL", "pwresetd:recovery:guid-bob"}) == -1);
    CHECK(raw.integer({"SCARD", "pwresetd:recovery:guid-bob"}) == 1);

    // With a real clock, the rest of the flow's life is added to the slack.
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    auto live = contract::make_flow("reset-2", "guid-carol", now + 3600);
    live.created_at = now;
    s->put_flow(live);
    const auto ttl = raw.integer({"TTL", "pwresetd:flow:" + live.id_hash});
    CHECK(ttl > day + 3600 - 60);
    CHECK(ttl <= day + 3600);
    CHECK(s->get_open_flow(live.id_hash, now).has_value());
    CHECK_FALSE(s->get_open_flow(live.id_hash, now + 3600).has_value());
}

namespace {

// Every flow field, each different from its default, so a change to any of them shows.
store::reset_flow full_flow(std::string_view id) {
    auto flow = contract::make_flow(id, "guid-alice");
    flow.username = "Alice";
    flow.directory = "corp";
    flow.decoy = true;
    flow.required_methods = 2;
    flow.totp_required = true;
    flow.verified_methods = {"email"};
    return flow;
}

std::string flow_key(const store::reset_flow& flow) {
    return "pwresetd:flow:" + flow.id_hash;
}
std::string methods_key(const store::reset_flow& flow) {
    return "pwresetd:flow_methods:" + flow.id_hash;
}

std::size_t count_of(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string_view::npos;
         pos = text.find(what, pos + what.size())) {
        ++n;
    }
    return n;
}

// Every way of using a flow a caller has, on a flow that must read as absent: none of
// them finds it, and none of them makes it readable.
void check_flow_is_refused(store::state_store& s, const store::reset_flow& flow) {
    CHECK_FALSE(s.get_open_flow(flow.id_hash, t0).has_value());
    CHECK_FALSE(s.claim_flow(flow.id_hash, t0, t0 + 30));
    s.add_verified_method(flow.id_hash, "sms");
    s.release_flow(flow.id_hash);
    CHECK_FALSE(s.close_flow(flow.id_hash, t0));
    CHECK_FALSE(s.get_open_flow(flow.id_hash, t0).has_value());
    CHECK_FALSE(s.claim_flow(flow.id_hash, t0, t0 + 30));
}

}  // namespace

TEST_CASE("redis store: a flow edited in Redis reads as absent and is logged once",
          "[store][redis]") {
    struct tampering {
        const char* name;
        std::function<void(raw_connection&, const store::reset_flow&)> apply;
    };
    const std::vector<tampering> tamperings = {
        {"a verified method added",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"RPUSH", methods_key(f), "totp"});
         }},
        {"a verified method replaced",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"LSET", methods_key(f), "0", "totp"});
         }},
        {"the verified methods removed",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"DEL", methods_key(f)});
         }},
        {"decoy flipped",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "decoy", "0"});
         }},
        {"user_key changed",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "user_key", "guid-mallory"});
         }},
        {"user_dn changed",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "user_dn", "CN=Administrator,DC=example,DC=org"});
         }},
        {"required_methods lowered",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "required_methods", "1"});
         }},
        {"totp_required cleared",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "totp_required", "0"});
         }},
        {"expires_at extended",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HSET", flow_key(f), "expires_at", std::to_string(t0 + 999'999)});
         }},
        {"the MAC removed",
         [](raw_connection& raw, const store::reset_flow& f) {
             raw.command({"HDEL", flow_key(f), "mac"});
         }},
        {"the MAC of another flow copied in",
         [](raw_connection& raw, const store::reset_flow& f) {
             const auto other = raw.command({"HGET", "pwresetd:flow:" + id_hash("other"), "mac"});
             REQUIRE(other->type == REDIS_REPLY_STRING);
             raw.command({"HSET", flow_key(f), "mac", std::string(other->str, other->len)});
         }},
    };

    redis_backend backend;
    auto s = backend.open();
    auto other_node = backend.open();
    raw_connection raw(shared_server().port());
    auto other = full_flow("other");
    other.verified_methods = {"email", "totp"};
    s->put_flow(other);
    for (std::size_t i = 0; i < tamperings.size(); ++i) {
        const auto& t = tamperings[i];
        INFO(t.name);
        const auto flow = full_flow("reset-" + std::to_string(i));
        s->put_flow(flow);
        REQUIRE(s->get_open_flow(flow.id_hash, t0).has_value());
        const auto mac_before = raw.command({"HGET", flow_key(flow), "mac"});
        REQUIRE(mac_before->type == REDIS_REPLY_STRING);
        t.apply(raw, flow);
        {
            stderr_capture log;
            check_flow_is_refused(*s, flow);
            check_flow_is_refused(*s, flow);
            const auto text = log.text();
            CHECK(count_of(text, "event=store.flow_tampered") == 1);
            CHECK(count_of(text, "id_hash=" + flow.id_hash) == 1);
            CHECK_THAT(text, Catch::Contains("level=error"));
            CHECK_THAT(text, !Catch::Contains("guid-") && !Catch::Contains("Alice"));
        }
        check_flow_is_refused(*other_node, flow);
        // Storing the flow again makes it valid again; the other flow was never touched.
        s->put_flow(flow);
        const auto got = other_node->get_open_flow(flow.id_hash, t0);
        REQUIRE(got.has_value());
        CHECK(got->verified_methods == std::vector<std::string>{"email"});
        CHECK(got->decoy);
        CHECK(other_node->claim_flow(flow.id_hash, t0, t0 + 30));
        CHECK(s->get_open_flow(other.id_hash, t0).has_value());
    }
}

TEST_CASE("redis store: changed state cannot be undone by editing Redis", "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    raw_connection raw(shared_server().port());
    SECTION("a closed flow is not reopened") {
        const auto flow = full_flow("reset-1");
        s->put_flow(flow);
        REQUIRE(s->close_flow(flow.id_hash, t0));
        raw.command({"HSET", flow_key(flow), "state", "open"});
        check_flow_is_refused(*s, flow);
    }
    SECTION("a live claim is not dropped") {
        const auto flow = full_flow("reset-1");
        s->put_flow(flow);
        REQUIRE(s->claim_flow(flow.id_hash, t0, t0 + 30));
        raw.command({"HSET", flow_key(flow), "claimed_until", "0"});
        check_flow_is_refused(*s, flow);
    }
    SECTION("a flow moved to another id does not verify there") {
        const auto flow = full_flow("reset-1");
        const auto target = full_flow("reset-2");
        s->put_flow(flow);
        raw.command({"RENAME", flow_key(flow), flow_key(target)});
        raw.command({"RENAME", methods_key(flow), methods_key(target)});
        check_flow_is_refused(*s, target);
        CHECK_FALSE(s->get_open_flow(flow.id_hash, t0).has_value());
    }
}

TEST_CASE("redis store: normal updates keep a flow's MAC valid", "[store][redis]") {
    redis_backend backend;
    auto a = backend.open();
    auto b = backend.open();
    raw_connection raw(shared_server().port());
    const auto flow = full_flow("reset-1");
    std::vector<std::string> macs;
    const auto record_mac = [&] {
        const auto mac = raw.command({"HGET", flow_key(flow), "mac"});
        REQUIRE(mac->type == REDIS_REPLY_STRING);
        macs.emplace_back(mac->str, mac->len);
        CHECK(macs.back().size() == 64);  // hex HMAC-SHA-256
    };
    stderr_capture log;
    a->put_flow(flow);
    record_mac();
    b->add_verified_method(flow.id_hash, "totp");
    record_mac();
    a->add_verified_method(flow.id_hash, "sms");
    record_mac();
    REQUIRE(b->claim_flow(flow.id_hash, t0, t0 + 30));
    record_mac();
    a->release_flow(flow.id_hash);
    record_mac();
    REQUIRE(a->claim_flow(flow.id_hash, t0 + 1, t0 + 31));
    record_mac();
    for (auto* s : {a.get(), b.get()}) {
        const auto got = s->get_open_flow(flow.id_hash, t0 + 2);
        REQUIRE(got.has_value());
        CHECK(got->user_key == "guid-alice");
        CHECK(got->username == "Alice");
        CHECK(got->directory == "corp");
        CHECK(got->decoy);
        CHECK(got->required_methods == 2);
        CHECK(got->totp_required);
        CHECK(got->expires_at == flow.expires_at);
        CHECK(got->claimed_until == t0 + 31);
        CHECK(got->verified_methods == std::vector<std::string>{"email", "totp", "sms"});
    }
    // A store with another sealing key derives another MAC key: the flow is not its own.
    auto foreign = backend.open(key_b);
    CHECK_FALSE(foreign->get_open_flow(flow.id_hash, t0 + 2).has_value());
    CHECK(b->close_flow(flow.id_hash, t0 + 2));
    record_mac();
    // Each version has its own MAC; only the foreign store logged anything.
    for (std::size_t i = 1; i < macs.size(); ++i) {
        CHECK(macs[i] != macs[i - 1]);
    }
    const auto text = log.text();
    CHECK(count_of(text, "event=store.flow_tampered") == 1);
    CHECK_THAT(text, Catch::Contains("reason=mac_mismatch"));
}

TEST_CASE("redis store: a flow without a MAC (from a version before MACs) reads as absent",
          "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    raw_connection raw(shared_server().port());
    // The hash as the version before MACs wrote it, every field present.
    const auto reply = raw.command({"HSET",
                                    flow_key(flow),
                                    "user_key",
                                    "guid-alice",
                                    "username",
                                    "Alice",
                                    "user_dn",
                                    "",
                                    "directory",
                                    "",
                                    "decoy",
                                    "0",
                                    "state",
                                    "open",
                                    "created_at",
                                    std::to_string(t0),
                                    "expires_at",
                                    std::to_string(flow.expires_at),
                                    "required_methods",
                                    "1",
                                    "totp_required",
                                    "0",
                                    "claimed_until",
                                    "0"});
    REQUIRE(reply->type == REDIS_REPLY_INTEGER);
    stderr_capture log;
    check_flow_is_refused(*s, flow);
    const auto text = log.text();
    CHECK(count_of(text, "event=store.flow_tampered") == 1);
    CHECK_THAT(text, Catch::Contains("reason=no_mac"));
}

TEST_CASE("redis store: hostile user keys work and do not collide", "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    const std::vector<std::string> users = {
        "decoy:john smith",
        "decoy:john  smith",
        "decoy:a\nb",
        "decoy:a\r\n*1\r\n$8\r\nFLUSHALL\r\n",
        "decoy:{tag}",
        "decoy:*",
        "decoy:a*",
        "decoy:?",
        "decoy:[ab]",
        "decoy:a",
        "decoy:a ",
        std::string("decoy:nul\0byte", 14),
        std::string("decoy:nul"),
        "decoy:\xc3\xa5sa",
        "decoy:" + std::string(100'000, 'x'),
        "user:",
        "",
    };
    for (std::size_t i = 0; i < users.size(); ++i) {
        INFO("user " << i);
        const auto seed = static_cast<unsigned char>(i + 1);
        const auto& user = users[i];
        s->put_flow(contract::make_flow("reset-" + std::to_string(i), user));
        const auto enrollment = id_hash("enroll-" + std::to_string(i));
        s->put_pending_totp(enrollment, contract::make_pending(user, seed));
        REQUIRE(s->confirm_totp(enrollment, t0));
        REQUIRE(s->accept_totp_step(user, 1000 + static_cast<std::int64_t>(i)));
        for (std::size_t n = 0; n <= i; ++n) {
            s->record_failure("verify:" + user, t0, 60);
            REQUIRE(s->hit_window("dest:" + user, t0, 60, 100).allowed);
        }
        std::vector<std::string> codes;
        for (std::size_t n = 0; n <= i; ++n) {
            codes.push_back(contract::code_hash(std::to_string(n)));
        }
        s->set_recovery_codes(user, codes);
    }
    for (std::size_t i = 0; i < users.size(); ++i) {
        INFO("user " << i);
        const auto& user = users[i];
        const auto key = s->get_totp(user);
        REQUIRE(key.has_value());
        CHECK(key->equals(contract::totp_key(static_cast<unsigned char>(i + 1))));
        CHECK(s->last_totp_step(user) == 1000 + static_cast<std::int64_t>(i));
        CHECK(s->get_failures("verify:" + user, t0).count == static_cast<int>(i + 1));
        CHECK(s->hit_window("dest:" + user, t0, 60, 100).count == static_cast<int>(i + 2));
        CHECK(s->recovery_codes_left(user) == static_cast<int>(i + 1));
        const auto flow = s->get_open_flow(id_hash("reset-" + std::to_string(i)), t0);
        REQUIRE(flow.has_value());
        CHECK(flow->user_key == user);
    }
    // Closing the flows of "decoy:*" (a glob pattern elsewhere) touches that user only.
    s->close_user_flows("decoy:*");
    for (std::size_t i = 0; i < users.size(); ++i) {
        INFO("user " << i);
        CHECK(s->get_open_flow(id_hash("reset-" + std::to_string(i)), t0).has_value() ==
              (users[i] != "decoy:*"));
    }
    // The command-injection-looking name did not run anything.
    raw_connection raw(shared_server().port());
    CHECK(raw.integer({"DBSIZE"}) > 0);
}

TEST_CASE("redis store: many instances and threads race the check-and-sets", "[store][redis]") {
    redis_backend backend;
    constexpr int instances = 4;
    constexpr int threads = 8;
    std::vector<std::unique_ptr<store::state_store>> nodes;
    for (int i = 0; i < instances; ++i) {
        nodes.push_back(backend.open());
    }
    const auto node = [&](int thread) {
        return nodes[static_cast<std::size_t>(thread % instances)].get();
    };

    SECTION("each flow is closed exactly once") {
        constexpr int flows = 50;
        for (int i = 0; i < flows; ++i) {
            nodes[0]->put_flow(contract::make_flow("race-" + std::to_string(i), "guid-alice"));
        }
        std::array<std::atomic<int>, flows> winners{};
        contract::count_winners(threads, [&](int thread) {
            for (int i = 0; i < flows; ++i) {
                const int n = (i + thread * 7) % flows;
                if (node(thread)->close_flow(id_hash("race-" + std::to_string(n)), t0)) {
                    ++winners[static_cast<std::size_t>(n)];
                }
            }
            return true;
        });
        for (const auto& w : winners) {
            CHECK(w.load() == 1);
        }
    }
    SECTION("each TOTP step is accepted at most once, and the last one is kept") {
        constexpr int steps = 200;
        std::array<std::atomic<int>, steps + 1> winners{};
        contract::count_winners(threads, [&](int thread) {
            for (int step = 1; step <= steps; ++step) {
                if (node(thread)->accept_totp_step("guid-alice", step)) {
                    ++winners[static_cast<std::size_t>(step)];
                }
            }
            return true;
        });
        for (const auto& w : winners) {
            CHECK(w.load() <= 1);
        }
        CHECK(nodes[1]->last_totp_step("guid-alice") == steps);
    }
    SECTION("failure counts are exact") {
        contract::count_winners(threads, [&](int thread) {
            for (int i = 0; i < 50; ++i) {
                node(thread)->record_failure("verify:alice", t0, 60);
            }
            return true;
        });
        CHECK(nodes[2]->get_failures("verify:alice", t0).count == threads * 50);
    }
}

TEST_CASE("redis store reconnects after the server restarts", "[store][redis]") {
    redis_server server;
    const bool over_unix_socket = GENERATE(false, true);
    const auto url = over_unix_socket ? server.unix_url(2) : server.url();
    INFO(url);
    auto s = store::open_redis_store(url, secret(key_a));
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    s->put_flow(flow);
    REQUIRE(s->get_open_flow(flow.id_hash, t0).has_value());

    SECTION("a restart between calls is invisible (the state is gone: no persistence)") {
        server.stop();
        server.start();
        CHECK_FALSE(s->get_open_flow(flow.id_hash, t0).has_value());
        s->put_flow(flow);  // the scripts are gone too: EVALSHA falls back to EVAL
        CHECK(s->get_open_flow(flow.id_hash, t0).has_value());
        CHECK(s->close_flow(flow.id_hash, t0));
    }
    SECTION("a stopped server makes calls fail fast with a clear error, then recover") {
        server.stop();
        // The pooled connection is dead: writing to it raises SIGPIPE (at once on a unix
        // socket), which must not kill the process; the retry finds nothing listening.
        CHECK_THROWS_AS(s->accept_totp_step(std::string(4 << 20, 'x'), 1), store::store_error);
        const auto start = std::chrono::steady_clock::now();
        const auto message = call_error([&] { s->get_open_flow(flow.id_hash, t0); });
        CHECK(seconds_since(start) < 3.0);
        CHECK_THAT(message, Catch::Contains(url));
        CHECK_THAT(message, Catch::Contains("cannot connect"));
        CHECK_THROWS_AS(s->record_failure("verify:alice", t0, 60), store::store_error);
        server.start();
        CHECK(s->accept_totp_step("guid-alice", 1));
        s->put_flow(flow);
        CHECK(s->close_flow(flow.id_hash, t0));
    }
}

TEST_CASE("redis store: every call on a stopped server throws store_error at once",
          "[store][redis]") {
    redis_server server;
    auto s = store::open_redis_store(server.url(), secret(key_a));
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    s->put_flow(flow);
    server.stop();
    // The first call finds the pooled connection dead and retries once on a new one; every
    // call finds nothing listening: a typed error, no crash, no wait for the 2 s timeout.
    const std::vector<std::pair<const char*, std::function<void()>>> calls = {
        {"put_flow", [&] { s->put_flow(flow); }},
        {"get_open_flow", [&] { s->get_open_flow(flow.id_hash, t0); }},
        {"add_verified_method", [&] { s->add_verified_method(flow.id_hash, "email"); }},
        {"close_flow", [&] { s->close_flow(flow.id_hash, t0); }},
        {"close_user_flows", [&] { s->close_user_flows("guid-alice"); }},
        {"get_totp", [&] { s->get_totp("guid-alice"); }},
        {"accept_totp_step", [&] { s->accept_totp_step("guid-alice", 1); }},
        {"record_failure", [&] { s->record_failure("verify:alice", t0, 60); }},
        {"get_failures", [&] { s->get_failures("verify:alice", t0); }},
        {"consume_code", [&] { s->consume_code(flow.id_hash, "email", "h", t0); }},
        {"hit_window", [&] { s->hit_window("dest:a", t0, 60, 5); }},
        {"consume_recovery_code", [&] { s->consume_recovery_code("guid-alice", "h"); }},
        {"purge_expired", [&] { s->purge_expired(t0); }},
    };
    for (const auto& [name, call] : calls) {
        INFO(name);
        const auto start = std::chrono::steady_clock::now();
        const auto message = call_error(call);
        CHECK(seconds_since(start) < 1.0);
        CHECK_THAT(message, Catch::Contains(server.url()));
    }
}

TEST_CASE("redis store: a hung server times out instead of hanging the caller", "[store][redis]") {
    redis_server server;
    auto s = store::open_redis_store(server.url(), secret(key_a));
    s->record_failure("verify:alice", t0, 60);
    server.pause();
    const auto start = std::chrono::steady_clock::now();
    const auto message = call_error([&] { s->record_failure("verify:alice", t0, 60); });
    const double elapsed = seconds_since(start);
    server.resume();
    std::this_thread::sleep_for(200ms);  // let it run what was queued before the new call
    CHECK(elapsed >= 1.5);
    CHECK(elapsed < 6.0);
    CHECK_THAT(message, Catch::Contains(server.url()));
    CHECK_THAT(message, Catch::Contains("no answer"));
    // The command reached the server before it hung, so it ran once it woke up.
    CHECK(s->get_failures("verify:alice", t0).count == 2);
    CHECK(s->record_failure("verify:alice", t0, 60).count == 3);
}

TEST_CASE("redis store open errors name the URL", "[store][redis]") {
    SECTION("nothing listens") {
        const auto url = "redis://127.0.0.1:" + std::to_string(free_port()) + "/0";
        const auto message = open_error(url);
        CHECK_THAT(message, Catch::Contains(url));
        CHECK_THAT(message, Catch::Contains("cannot connect"));
    }
    SECTION("no such socket") {
        const std::string url = "unix:/nonexistent/pwresetd/redis.sock";
        const auto message = open_error(url);
        CHECK_THAT(message, Catch::Contains(url));
        CHECK_THAT(message, Catch::Contains("cannot connect"));
    }
    SECTION("malformed URLs") {
        for (const std::string url :
             {"", "http://127.0.0.1", "redis://", "redis://:6379", "redis://host:0",
              "redis://host:70000", "redis://host:63x9", "redis://host:", "redis://host/x",
              "redis://host/-1", "redis://host/1?timeout=1", "redis://[::1", "unix:",
              "unix:relative.sock", "unix:/run/redis.sock?database=1", "unix:/run/r.sock?db=x"}) {
            INFO(url);
            const auto message = open_error(url);
            CHECK_THAT(message, Catch::Contains("redis store " + url + ": bad URL"));
        }
    }
    SECTION("a password in the URL is refused and never echoed") {
        const auto message = open_error("redis://:hunter2@127.0.0.1:6379/0");
        CHECK_THAT(message, Catch::Contains("redis://***@127.0.0.1:6379/0"));
        CHECK_THAT(message, Catch::Contains("credentials do not belong in the URL"));
        CHECK_THAT(message, !Catch::Contains("hunter2"));
    }
    SECTION("a database the server does not have") {
        const auto url = shared_server().url(99999);
        const auto message = open_error(url);
        CHECK_THAT(message, Catch::Contains(url));
        CHECK_THAT(message, Catch::Contains("SELECT 99999"));
    }
    SECTION("a sealing key of the wrong size") {
        CHECK_THAT(open_error(shared_server().url(), "short"), Catch::Contains("32 bytes"));
    }
}

TEST_CASE("redis store refuses a server that may evict keys", "[store][redis]") {
    redis_server server("maxmemory-policy volatile-lru");
    const auto message = open_error(server.url());
    CHECK_THAT(message, Catch::Contains(server.url()));
    CHECK_THAT(message, Catch::Contains("maxmemory-policy is volatile-lru"));
}

TEST_CASE("redis store authenticates with a password kept out of messages", "[store][redis]") {
    const std::string password = "pw-Secret-8d41c2";
    redis_server server("requirepass " + password);
    SECTION("no password") {
        const auto message = open_error(server.url());
        CHECK_THAT(message, Catch::Contains(server.url()));
        CHECK_THAT(message, Catch::Contains("NOAUTH"));
    }
    SECTION("a wrong password") {
        const auto message = open_error(server.url(), key_a, "wrong-Secret-1f2e3d");
        CHECK_THAT(message, Catch::Contains(server.url()));
        CHECK_THAT(message, Catch::Contains("authentication failed"));
        CHECK_THAT(message, !Catch::Contains("wrong-Secret"));
    }
    SECTION("the right password, also on reconnect and with SELECT") {
        auto s = store::open_redis_store(server.url(5), secret(key_a), secret(password));
        const auto flow = contract::make_flow("reset-1", "guid-alice");
        s->put_flow(flow);
        CHECK(s->get_open_flow(flow.id_hash, t0).has_value());
        raw_connection raw(server.port(), 5, password);
        CHECK(raw.integer({"EXISTS", "pwresetd:flow:" + flow.id_hash}) == 1);
        server.stop();
        server.start();
        s->put_flow(flow);
        CHECK(s->close_flow(flow.id_hash, t0));
    }
}

TEST_CASE("redis store survives SCRIPT FLUSH", "[store][redis]") {
    redis_backend backend;
    auto s = backend.open();
    raw_connection(shared_server().port()).command({"SCRIPT", "FLUSH"});
    const auto flow = contract::make_flow("reset-1", "guid-alice");
    s->put_flow(flow);
    CHECK(s->close_flow(flow.id_hash, t0));
    CHECK(s->accept_totp_step("guid-alice", 1));
}

TEST_CASE("redis store refuses an id that is not a hex SHA-256, without echoing it",
          "[store][redis]") {
    redis_backend backend;
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
    raw_connection raw(shared_server().port());
    CHECK(raw.integer({"DBSIZE"}) == 0);
}
