#pragma once
// The shared state_store for several nodes: one Redis server (hiredis 0.14) that every
// daemon talks to. Every check-and-set is one Lua script (or one atomic command, SREM), so
// two nodes can never both close a flow, accept a TOTP step, consume a code or a recovery
// code, or lose a failure count or a window hit. Expiry is data, checked against the
// caller's `now` exactly like the SQLite store; Redis TTLs (the remaining lifetime by this
// machine's clock, plus a day of slack) only make sure abandoned keys go away. TOTP keys
// are sealed (AES-256-GCM, context user_key) before they reach Redis. Each flow carries an
// HMAC-SHA-256 (key derived from the sealing key, bound to the id hash) over all its fields
// and verified methods: a flow edited by anyone who can write to Redis reads as absent and
// is logged as store.flow_tampered. Flow changes are compare-and-sets on that MAC.
//
// hiredis 0.14 has no TLS: keep Redis on loopback or a private network, or tunnel it.
#include <memory>
#include <string>

#include "common/secret.hpp"
#include "store/state_store.hpp"

namespace pwresetd::store {

// Connects to `url` and fails fast (connect, AUTH, SELECT, PING, SCRIPT LOAD; a server whose
// maxmemory-policy is not noeviction is refused, since it could evict counters):
//   redis://HOST[:PORT][/DB]     default port 6379, db 0; HOST may be [IPv6]
//   unix:/path/to/redis.sock[?db=N]
// Credentials never go in the URL: `password`, when not empty, is sent with AUTH.
// `sealing_key` is the 32-byte secrets.key_file, the same on every node. Connect and
// command timeouts are 2 s each. Throws std::runtime_error naming the URL and what failed;
// the messages never contain the password. Once open, a failing server makes calls throw
// store_error.
std::unique_ptr<state_store> open_redis_store(const std::string& url, secret sealing_key,
                                              secret password = {});

}  // namespace pwresetd::store
