"""13. Two pwresetd processes sharing one real redis-server (state.backend: redis): a flow
started on one node finishes on the other, a TOTP code or an email code accepted on one is
refused on the other, failures split across both nodes reach the lockout, the flood limit
per destination counts both nodes' codes (Authelia CVE-2025-24806 was the opposite), and so
does the per-IP limit (limits.per_ip_per_minute)."""
import os

import pytest

from conftest import (VERIFY_FAILURES, Api, World, assert_error, assert_rate_limited, email_of, enroll, fresh_code,
                      same_minute, start_reset, wrong_code)
from nodes import RedisServer, code_world, mail_factors, start_node

USER = "bob"  # has an address in both labs; the session's tests leave his account usable
NEW_PASSWORD = "Quartz-Meadow-Lantern-81"


@pytest.fixture(scope="module")
def redis(workdir):
    server = RedisServer(workdir / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nodes(binary, workdir, world, pki, keys, lab, redis, smtp_sink):
    """Node A and node B: the same configuration (and the same secrets.key_file) but their
    own port, log and audit file."""
    key = os.urandom(32)
    started = []
    with code_world(world):
        try:
            for name in ("a", "b"):
                started.append(start_node(binary, workdir / f"node-{name}", world, pki, keys, lab, key,
                                          factors=mail_factors(codes_per_hour=5),
                                          state=f'state:\n  backend: redis\n  redis_url: "{redis.url}"\n',
                                          extra=smtp_sink.mail_block()))
            yield [api for _, api in started]
        finally:
            for d, _ in started:
                code = d.stop()
                assert code == 0, f"node exited with {code}; stderr:\n{d.stderr()[-3000:]}"


def test_flow_started_on_a_completes_on_b(nodes, world: World, lab):
    a, b = nodes
    enroll(a, world, USER)  # the enrollment lives in Redis: node B sees it
    r = start_reset(a, USER)
    assert r.status == 201, r
    rid = r.json["reset_id"]
    code, step = fresh_code(world, USER)
    v = b.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    assert v.status == 200 and v.json["remaining_methods"] == 0, v
    world.last_step[USER] = step
    c = b.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret(NEW_PASSWORD)})
    assert c.status == 200 and c.json["status"] == "password_reset", c
    world.passwords[USER] = NEW_PASSWORD
    # completed on B: closed for A too
    assert_error(a.call("POST", f"/v1/resets/{rid}/complete", {"new_password": NEW_PASSWORD}), 410,
                 "reset_expired")


def test_totp_code_accepted_on_one_node_is_refused_on_the_other(nodes, world: World):
    a, b = nodes
    ra, rb = start_reset(a, USER), start_reset(b, USER)
    assert ra.status == 201 and rb.status == 201
    code, step = fresh_code(world, USER)
    ok = a.call("POST", f"/v1/resets/{ra.json['reset_id']}/verify", {"method": "totp", "code": code})
    assert ok.status == 200, ok
    world.last_step[USER] = step
    again = b.call("POST", f"/v1/resets/{rb.json['reset_id']}/verify", {"method": "totp", "code": code})
    assert_error(again, 401, "invalid_code")


def test_email_code_sent_by_a_works_once_on_b(nodes, world: World, smtp_sink):
    a, b = nodes
    r = start_reset(a, USER)
    rid = r.json["reset_id"]
    mark = smtp_sink.count()
    ch = a.call("POST", f"/v1/resets/{rid}/challenge", {"method": "email"})
    assert ch.status == 202, ch
    code = smtp_sink.wait_code(world, after=mark, to=email_of(USER))
    v = b.call("POST", f"/v1/resets/{rid}/verify", {"method": "email", "code": code})
    assert v.status == 200 and v.json["verified_methods"] == ["email"], v
    # bob has an authenticator (totp_when_enrolled): email alone is not enough
    assert v.json["remaining_methods"] == 1, v
    assert_error(a.call("POST", f"/v1/resets/{rid}/verify", {"method": "email", "code": code}), 401,
                 "invalid_code")


def test_failures_split_across_nodes_reach_the_lockout(nodes, world: World):
    a, b = nodes
    r = start_reset(a, USER)
    rid = r.json["reset_id"]
    # a success clears the failures the earlier tests left
    code, step = fresh_code(world, USER)
    assert a.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code}).status == 200
    world.last_step[USER] = step
    for i in range(VERIFY_FAILURES - 1):
        node = (a, b)[i % 2]
        assert_error(node.call("POST", f"/v1/resets/{rid}/verify",
                               {"method": "totp", "code": wrong_code(world, USER)}), 401, "invalid_code")
    last = (a, b)[(VERIFY_FAILURES - 1) % 2]
    assert_error(last.call("POST", f"/v1/resets/{rid}/verify",
                           {"method": "totp", "code": wrong_code(world, USER)}), 423, "locked")
    # the other node refuses even a correct code
    code, step = fresh_code(world, USER)
    other = b if last is a else a
    v = other.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    if v.status == 200:
        world.last_step[USER] = step
    assert_error(v, 423, "locked")


def test_flood_limit_counts_codes_from_both_nodes(nodes, world: World, smtp_sink):
    a, b = nodes
    # alice: her address has had no codes from these nodes yet
    ra, rb = start_reset(a, "alice"), start_reset(b, "alice")
    sent = 0
    for i in range(5):
        node, rid = (a, ra.json["reset_id"]) if i % 2 == 0 else (b, rb.json["reset_id"])
        ch = node.call("POST", f"/v1/resets/{rid}/challenge", {"method": "email"})
        assert ch.status == 202, ch
        sent += 1
    over = b.call("POST", f"/v1/resets/{rb.json['reset_id']}/challenge", {"method": "email"})
    assert_error(over, 429, "rate_limited")
    assert 0 < over.json["retry_after"] <= 3600 and over.headers.get("retry-after"), over
    over_a = a.call("POST", f"/v1/resets/{ra.json['reset_id']}/challenge", {"method": "email"})
    assert_error(over_a, 429, "rate_limited")
    # an unknown user meets the same limit with the same reply shape
    unknown = [start_reset((a, b)[i % 2], "nobody-here") for i in range(2)]
    for i in range(5):
        node = (a, b)[i % 2]
        ch = node.call("POST", f"/v1/resets/{unknown[i % 2].json['reset_id']}/challenge", {"method": "email"})
        assert ch.status == 202, ch
    over_unknown = a.call("POST", f"/v1/resets/{unknown[0].json['reset_id']}/challenge", {"method": "email"})
    assert_error(over_unknown, 429, "rate_limited")
    assert set(over_unknown.json) == set(over.json), (over_unknown, over)


PER_IP = 5


@pytest.fixture(scope="module")
def limited_nodes(binary, workdir, world, pki, keys, lab, redis):
    """Two more nodes on the same Redis, with per_ip_per_minute: 5."""
    key = os.urandom(32)
    started = []
    try:
        for name in ("a", "b"):
            started.append(start_node(binary, workdir / f"node-limited-{name}", world, pki, keys, lab, key,
                                      state=f'state:\n  backend: redis\n  redis_url: "{redis.url}"\n',
                                      per_ip_per_minute=PER_IP))
        yield [api for _, api in started]
    finally:
        for d, _ in started:
            code = d.stop()
            assert code == 0, f"node exited with {code}; stderr:\n{d.stderr()[-3000:]}"


def test_per_ip_limit_counts_requests_on_both_nodes(limited_nodes):
    a, b = limited_nodes
    same_minute()
    ip = "198.51.100.77"

    def start(node, xff):
        return node.call("POST", "/v1/resets", {"username": "nobody-per-ip"}, headers={"X-Forwarded-For": xff})

    statuses = [start((a, b)[i % 2], ip).status for i in range(PER_IP)]
    assert statuses == [201] * PER_IP, statuses
    for node in (a, b):
        assert_rate_limited(start(node, ip))
    assert start(b, "198.51.100.78").status == 201  # another address is not affected
