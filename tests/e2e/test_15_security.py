"""15. Regression tests for the holes an outside review found. Each one failed on the
behaviour the review described:

  - limits.per_ip_per_minute was not enforced (429 rate_limited + Retry-After, per end-user
    IP: the last X-Forwarded-For value of an authenticated client, else the socket address);
  - a request declaring a huge body (Content-Length or a chunk size) before authentication
    crashed the daemon;
  - HTTP framing was lenient (any Transfer-Encoding, Content-Length together with it, obsolete
    line folding, duplicate JSON keys), which lets a body be read as a second request;
  - limits.max_connections did not exist, and running out of file descriptors made the
    accept loop spin and flood the log;
  - enumeration: username variants ("carol ", "CAROL") were one account for real users but
    several for made-up ones; `remaining_methods` on an unverified flow told members of
    two_methods_groups apart; a wrong password on a directory-locked account said 423;
  - races: concurrent completes of one flow all wrote; concurrent wrong codes or enrollment
    passwords were all evaluated, past verify_failures;
  - enrollment: wrong passwords were not counted (an oracle for passwords), and anyone with
    the password could replace an existing authenticator;
  - a secrets.key_file readable by group/other was only a warning; SMTP went on in clear when
    the server offered no STARTTLS.

Every test drives daemons of its own (own state, own log), so the session daemon's counters
stay untouched and a crash here cannot take the rest of the suite down.
"""
from __future__ import annotations

import os
import resource
import secrets
import socket
import ssl
import time
from dataclasses import dataclass

import pytest

from conftest import (DEFAULT, KIND, LAB, LOCKOUT_S, Api, Daemon, RawConnection, SmtpSink, World, admin_set_password,
                      assert_rate_limited, raw_json_request, same_minute, send_together,
                      assert_error, code_for_step, config_text, directory_lock, email_of, enroll,
                      ensure_directory_unlocked, free_port, fresh_code, ldap_binds, now_step, raw_request, run,
                      start_reset, write_policy_lists, wrong_code)
from nodes import RedisServer, code_world, mail_factors, own_daemon

VF = 5  # limits.verify_failures of this module's daemons
SKEW = 5  # factors.totp.skew_steps of the general daemon: several codes of one authenticator at once
STRONG = "Granite-Orchard-Passw0rd-64!"  # passes both labs' policies, never a real password here
WRONG = "Not-The-Password-At-All-9"


@pytest.fixture(autouse=True)
def _sensitive(world: World):
    for pw in (STRONG, WRONG):
        world.secret(pw)


@dataclass
class Node:
    """One daemon of this module and a client for each of its API keys."""
    d: Daemon
    api: Api  # portal: reset, enroll
    checker: Api  # check
    changer: Api  # change
    ca: str

    def client(self, who: str | None) -> Api:
        return {"portal": self.api, "checker": self.checker, "changer": self.changer, None: self.api}[who]

    def auth(self, who: str | None) -> list[tuple[str, str]]:
        """The Authorization header of `who` for a raw request (none for None)."""
        return [] if who is None else [("Authorization", f"Bearer {self.client(who).key}")]

    def raw(self, timeout: float = 5.0) -> RawConnection:
        return RawConnection(self.d.port, self.ca, timeout)

    def assert_serving(self):
        assert self.d.alive(), (f"pwresetd died (exit {self.d.proc.returncode}); stderr tail:\n"
                                f"{self.d.stderr()[-3000:]}")
        r = self.api.call("GET", "/v1/health", key=None, timeout=5)
        assert r.status == 200 and r.json == {"status": "ok"}, r


def make_node(d: Daemon, api: Api, pki, keys, world: World) -> Node:
    return Node(d, api, Api(d.port, pki.ca, keys.checker, world), Api(d.port, pki.ca, keys.changer, world),
                str(pki.ca))


@pytest.fixture(scope="module")
def node(binary, workdir, world, pki, keys, lab, smtp_sink):
    """The general daemon of this module: verify_failures VF, TOTP skew SKEW, email codes."""
    # no code_world here: the tests that enroll set the session's records aside themselves
    # (module fixtures are not always torn down in the reverse order of their setup)
    with own_daemon(binary, workdir / "sec-node", world, pki, keys, lab,
                    factors=mail_factors(codes_per_hour=50, skew_steps=SKEW),
                    extra=smtp_sink.mail_block(), verify_failures=VF) as (d, api):
        yield make_node(d, api, pki, keys, world)


@pytest.fixture
def up(node: Node) -> Node:
    """`node`, started again if an earlier test crashed it (that test has failed already)."""
    if not node.d.alive():
        node.d.start(node.api)
    return node


def reply_text(r) -> str:
    return "no reply (the connection ended)" if r is None else repr(r)


ERROR_CODES = {400: "bad_request", 401: "unauthenticated", 404: "not_found", 413: "payload_too_large"}


def assert_raw_error(r, statuses: set[int], code: str | None = None):
    assert r is not None and r.status in statuses, f"expected one of {sorted(statuses)}: {reply_text(r)}"
    body = r.json
    assert isinstance(body, dict) and isinstance(body.get("error"), str), f"not a JSON error body: {r}"
    code = code or ERROR_CODES.get(r.status)
    if code is not None:
        assert body["error"] == code, f"expected error {code!r}: {r}"
    assert "no-store" in r.headers.get("cache-control", ""), r


def exchange(node: Node, data: bytes, timeout: float = 4.0):
    """Sends `data` on a fresh connection; (first reply or None, the connection)."""
    c = node.raw()
    c.send(data)
    try:
        return c.read_response(timeout), c
    except TimeoutError:
        c.close()
        pytest.fail(f"no answer within {timeout} s (the daemon waits for what the request announced)")


# =========================================================================== 1. per-IP limit
PER_IP = 5


@pytest.fixture(scope="module")
def limited(binary, workdir, world, pki, keys, lab):
    with own_daemon(binary, workdir / "sec-per-ip", world, pki, keys, lab, per_ip_per_minute=PER_IP) as (d, api):
        yield d, api


def start_from(api: Api, xff: str | None, key=DEFAULT, name: str = "nobody-per-ip"):
    return api.call("POST", "/v1/resets", {"username": name}, key=key,
                    headers={"X-Forwarded-For": xff} if xff is not None else None)


def test_per_ip_limit_answers_429_from_the_sixth_request_of_one_forwarded_ip(limited):
    _, api = limited
    same_minute()
    ip = "198.51.100.7"
    # what a proxy chain sends: the last value is the end user's address
    chains = ["203.0.113.1, " + ip, "203.0.113.2, 10.0.0.9, " + ip, ip, ip, "192.0.2.200, " + ip]
    statuses = [start_from(api, xff).status for xff in chains]
    assert statuses == [201] * PER_IP, statuses
    assert_rate_limited(start_from(api, ip))
    # every /v1 route counts, not only the one that was used
    r = api.call("POST", "/v1/enrollments/totp", {"username": "nobody-per-ip", "current_password": WRONG},
                 headers={"X-Forwarded-For": ip})
    assert_rate_limited(r)


def test_per_ip_limit_counts_each_forwarded_ip_on_its_own(limited):
    _, api = limited
    same_minute()
    a, b = "198.51.100.21", "198.51.100.22"
    statuses = [start_from(api, a).status for _ in range(PER_IP + 1)]
    assert statuses == [201] * PER_IP + [429], statuses
    assert start_from(api, b).status == 201
    assert start_from(api, f"{a}, {b}").status == 201  # counted for b, the last value
    assert_rate_limited(start_from(api, f"{b}, {a}"))


def test_per_ip_limit_counts_an_ipv6_slash_64_as_one_address(limited):
    """README: IPv6 end users are counted per /64 (one host has a whole /64 to pick from)."""
    _, api = limited
    same_minute()
    in_one_64 = [f"2001:db8:aa:1::{i:x}" for i in range(1, PER_IP + 2)]
    statuses = [start_from(api, xff).status for xff in in_one_64]
    assert statuses == [201] * PER_IP + [429], statuses
    assert start_from(api, "2001:db8:aa:2::1").status == 201  # the next /64


def test_health_is_never_rate_limited(limited):
    _, api = limited
    same_minute()
    ip = "198.51.100.31"
    statuses = [start_from(api, ip).status for _ in range(PER_IP + 1)]
    assert statuses == [201] * PER_IP + [429], statuses
    for key in (None, api.key):
        for _ in range(2 * PER_IP):
            r = api.call("GET", "/v1/health", key=key, headers={"X-Forwarded-For": ip})
            assert r.status == 200 and r.json == {"status": "ok"}, r


def test_unauthenticated_requests_count_for_the_socket_address(limited):
    """API.md: the limit counts every /v1 request but health, and without an authenticated
    client the address is the socket's (127.0.0.1 here): someone guessing API keys is limited
    too."""
    _, api = limited
    same_minute()
    statuses = [start_from(api, None, key=None).status for _ in range(PER_IP + 1)]
    assert statuses == [401] * PER_IP + [429], statuses
    assert start_from(api, "198.51.100.41").status == 201  # another end user is not affected


def test_unauthenticated_requests_cannot_use_up_the_portals_count(binary, workdir, world, pki, keys, lab):
    """Requests refused before authentication are counted apart (in memory, per socket
    address; README "Security properties"): someone guessing API keys from the portal's own
    address (a shared proxy or NAT) is limited without throttling the portal's real users."""
    with own_daemon(binary, workdir / "sec-per-ip-mixed", world, pki, keys, lab,
                    per_ip_per_minute=PER_IP) as (d, api):
        same_minute()
        statuses = [start_from(api, None, key=DEFAULT if i % 2 == 0 else None).status
                    for i in range(2 * PER_IP)]
        assert statuses == [201, 401] * PER_IP, statuses
        assert start_from(api, None, key=None).status == 429  # the guesser's own count is used up
        assert start_from(api, None).status == 429  # and so is the address's authenticated one
        assert start_from(api, "198.51.100.52").status == 201  # another end user is not affected


def test_forwarded_for_of_an_unauthenticated_client_is_ignored(limited):
    _, api = limited
    same_minute()
    claimed = "192.0.2.44"
    statuses = [start_from(api, claimed, key=None).status for _ in range(2 * PER_IP)]
    assert set(statuses) <= {401, 429}, statuses
    # none of those was charged to the address they claimed
    assert start_from(api, claimed).status == 201


# =========================================================================== 2. declared sizes
# (method, path, client, acceptable statuses): a GET has no body to wait for; an authenticated
# POST gets 413; without a key a POST may also say 401 (authentication comes first).
HUGE_BODY_CASES = [
    ("GET", "/v1/health", None, {400, 413}),
    ("GET", "/v1/policy", "checker", {400, 413}),
    ("GET", "/v1/nope", "portal", {400, 404, 413}),
    ("POST", "/v1/resets", "portal", {413}),
    ("POST", "/v1/password/change", "changer", {413}),
    ("POST", "/v1/enrollments/totp", "portal", {413}),
    ("POST", "/v1/resets", None, {400, 401, 413}),
]
CASE_IDS = [f"{m}-{p.rsplit('/', 1)[1]}-{w or 'nokey'}" for m, p, w, _ in HUGE_BODY_CASES]


def request_head(node: Node, method: str, path: str, who: str | None, more: list) -> list:
    headers = node.auth(who)
    if method == "POST":
        headers.append(("Content-Type", "application/json"))
    return headers + more


@pytest.mark.parametrize("length", ["1000000000000", "18446744073709551615"])
@pytest.mark.parametrize("method,path,who,statuses", HUGE_BODY_CASES, ids=CASE_IDS)
def test_huge_content_length_is_refused_at_once_and_the_daemon_keeps_serving(up: Node, method, path, who,
                                                                              statuses, length):
    head = request_head(up, method, path, who, [("Content-Length", length)])
    r, c = exchange(up, raw_request(method, path, head) + b'{"username": "')
    c.close()
    assert_raw_error(r, statuses)
    up.assert_serving()


@pytest.mark.parametrize("size", ["ffffffffff", "ffffffffffffffff", "fffffffffffffffffffffff"])
@pytest.mark.parametrize("method,path,who,statuses", [
    ("POST", "/v1/resets", "portal", {413}),
    ("POST", "/v1/password/check", "checker", {413}),
    ("POST", "/v1/resets", None, {400, 401, 413}),
    ("GET", "/v1/health", None, {400, 413}),
], ids=["resets-portal", "check-checker", "resets-nokey", "health"])
def test_huge_chunk_size_is_refused_at_once_and_the_daemon_keeps_serving(up: Node, method, path, who, statuses,
                                                                         size):
    head = request_head(up, method, path, who, [("Transfer-Encoding", "chunked")])
    r, c = exchange(up, raw_request(method, path, head) + size.encode() + b"\r\n" + b"x" * 512)
    c.close()
    if len(size) > 16:  # not even a 64-bit number: malformed rather than too large
        statuses = statuses | {400}
    assert_raw_error(r, statuses)
    up.assert_serving()


# =========================================================================== 3. HTTP strictness
SMUGGLED = raw_request("GET", "/v1/health")


def assert_400_then_closed(r, c: RawConnection):
    assert_raw_error(r, {400}, "bad_request")
    closed = c.closed_within(8)
    more = None if closed else (c.read_response(1) if c.buf else "still open after 8 s")
    c.close()
    assert closed, f"after the 400 the connection went on: {more!r} (a body read as a second request?)"


@pytest.mark.parametrize("transfer_encoding", ["xchunked", "chunked, identity", "identity", "chunked, chunked",
                                               "gzip, chunked"])
def test_transfer_encoding_other_than_chunked_is_400_and_closes(up: Node, transfer_encoding):
    """The body is a whole second request: it must never be answered."""
    head = request_head(up, "POST", "/v1/resets", "portal", [("Transfer-Encoding", transfer_encoding)])
    r, c = exchange(up, raw_request("POST", "/v1/resets", head, body=SMUGGLED))
    assert_400_then_closed(r, c)
    up.assert_serving()


@pytest.mark.parametrize("order", ["length-first", "encoding-first"])
def test_content_length_with_transfer_encoding_is_400_and_closes(up: Node, order):
    body = b"0\r\n\r\n" + SMUGGLED  # chunked: empty, then the smuggled request; by length: all of it
    both = [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
    head = request_head(up, "POST", "/v1/resets", "portal", both if order == "length-first" else both[::-1])
    r, c = exchange(up, raw_request("POST", "/v1/resets", head, body=body))
    assert_400_then_closed(r, c)
    up.assert_serving()


def test_a_get_with_a_body_is_never_read_as_a_second_request(up: Node):
    r, c = exchange(up, raw_request("GET", "/v1/health", [("Content-Length", str(len(SMUGGLED)))], body=SMUGGLED))
    assert r is not None, "no reply"
    if r.status == 200:  # the body was read and dropped: the connection may go on, but quietly
        assert c.closed_within(2) or not c.buf, "the body of a GET was answered as a request"
        c.close()
    else:
        assert_raw_error(r, {400, 413})
        c.close()
    up.assert_serving()


@pytest.mark.parametrize("who,path,fold", [
    (None, "/v1/health", [("X-Note", "first\r\n second")]),
    (None, "/v1/health", [("X-Note", "first\r\n\tsecond")]),
    ("checker", "/v1/policy", [("X-Note", "first\r\n second")]),
], ids=["space", "tab", "authenticated"])
def test_obsolete_line_folding_is_400(up: Node, who, path, fold):
    r, c = exchange(up, raw_request("GET", path, up.auth(who) + fold))
    c.close()
    assert_raw_error(r, {400}, "bad_request")
    up.assert_serving()


def test_a_folded_authorization_header_is_400(up: Node):
    key = up.checker.key
    r, c = exchange(up, raw_request("GET", "/v1/policy", [("Authorization", f"Bearer\r\n {key}")]))
    c.close()
    assert_raw_error(r, {400}, "bad_request")


def test_plain_chunked_body_is_still_accepted(up: Node):
    """The positive control for the framing tests: a well-formed chunked body works."""
    body = b'{"username": "nobody-chunked"}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    head = request_head(up, "POST", "/v1/resets", "portal", [("Transfer-Encoding", "chunked")])
    r, c = exchange(up, raw_request("POST", "/v1/resets", head, body=chunked))
    c.close()
    assert r is not None and r.status == 201 and set(r.json) >= {"reset_id", "methods"}, reply_text(r)


@pytest.mark.parametrize("who,path,raw", [
    ("portal", "/v1/resets", b'{"username": "alice", "username": "nosuchuser"}'),
    ("portal", "/v1/resets", b'{"username": "nosuchuser", "username": "nosuchuser"}'),
    ("changer", "/v1/password/change",
     b'{"username": "nosuchuser", "current_password": "x", "new_password": "Granite-Orchard-Passw0rd-64!",'
     b' "username": "nosuchuser2"}'),
    ("checker", "/v1/password/check", b'{"password": "a", "password": "Quiet-River-Stone-41"}'),
    ("portal", "/v1/enrollments/totp", b'{"username": "nosuchuser", "current_password": "x", "username": "y"}'),
], ids=["resets", "resets-same-value", "change", "check", "enroll"])
def test_duplicate_json_keys_are_400(up: Node, who, path, raw):
    assert_error(up.client(who).call("POST", path, raw_body=raw), 400, "bad_request")


# =========================================================================== 4. connections
MAX_CONNECTIONS = 20


def connection_outcome(port: int, ca: str, timeout: float = 3.0) -> str:
    """What a new client gets: "200" (served), "503", "closed" (refused: closed or reset during
    or after the handshake), or "timeout" (left waiting: queued, not refused)."""
    try:
        with RawConnection(port, ca, timeout=timeout) as c:
            c.send(raw_request("GET", "/v1/health"))
            r = c.read_response(timeout)
    except TimeoutError:
        return "timeout"
    except (ssl.SSLError, ConnectionError, OSError):
        return "closed"
    return "closed" if r is None else str(r.status)


def test_connections_beyond_max_connections_are_refused_promptly(binary, workdir, world, pki, keys, lab):
    with own_daemon(binary, workdir / "sec-max-conn", world, pki, keys, lab,
                    max_connections=MAX_CONNECTIONS) as (d, api):
        held = []
        try:
            for _ in range(MAX_CONNECTIONS):  # idle, handshake done (header_timeout_s is 5 s)
                held.append(RawConnection(d.port, str(pki.ca)))
            held[0].send(raw_request("GET", "/v1/health"))
            r = held[0].read_response(3)
            assert r is not None and r.status == 200, f"a held connection is not served: {reply_text(r)}"

            t0 = time.monotonic()
            outcome = connection_outcome(d.port, str(pki.ca))
            took = time.monotonic() - t0
            assert outcome in ("closed", "503"), f"connection {MAX_CONNECTIONS + 1} was {outcome} after {took:.1f} s"
            assert took < 3, f"refusing took {took:.1f} s"
            assert d.alive(), "pwresetd died"

            for c in held[:5]:
                c.close()
            deadline = time.monotonic() + 3
            while (outcome := connection_outcome(d.port, str(pki.ca))) != "200" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert outcome == "200", f"closing 5 connections did not free a slot: {outcome}"
        finally:
            for c in held:
                c.close()
        deadline = time.monotonic() + 5
        while connection_outcome(d.port, str(pki.ca)) != "200" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.call("GET", "/v1/health", key=None).status == 200


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_running_out_of_file_descriptors_does_not_spin(binary, workdir, world, pki, keys, lab):
    """A daemon with a small RLIMIT_NOFILE meets more connections than it has descriptors for:
    it must neither spin on accept (CPU) nor flood its log, and must serve again once they
    close."""
    # how many descriptors such a daemon uses once it is up and has served a request
    with own_daemon(binary, workdir / "sec-fd-probe", world, pki, keys, lab) as (d, api):
        assert start_reset(api, "nobody-fd").status == 201
        baseline = open_fds(d.proc.pid)
    limit = baseline + 24

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with own_daemon(binary, workdir / "sec-fd", world, pki, keys, lab, preexec_fn=low_nofile) as (d, api):
        assert start_reset(api, "nobody-fd").status == 201
        flood = []
        try:
            lines0, cpu0 = len(d.stderr().splitlines()), d.cpu_seconds()
            t0 = time.monotonic()
            for _ in range(4 * limit):  # plain TCP: accepted or left in the backlog, never a handshake
                s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
                flood.append(s)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
            lines, cpu = len(d.stderr().splitlines()) - lines0, d.cpu_seconds() - cpu0
            took = time.monotonic() - t0
            assert d.alive(), f"pwresetd died under the flood; stderr tail:\n{d.stderr()[-2000:]}"
            print(f"\nfd limit {limit} (baseline {baseline}): {len(flood)} connections, {took:.1f} s, "
                  f"{lines} log lines, {cpu:.2f} s CPU")
            assert lines < 200, f"{lines} log lines in {took:.1f} s of a connection flood:\n" + \
                "\n".join(d.stderr().splitlines()[lines0:lines0 + 5])
            assert cpu < 1.0, f"pwresetd used {cpu:.2f} s CPU in {took:.1f} s with nothing to do (spinning)"
        finally:
            for s in flood:
                s.close()
        deadline = time.monotonic() + 10
        while connection_outcome(d.port, str(pki.ca)) != "200" and time.monotonic() < deadline:
            time.sleep(0.2)
        r = start_reset(api, "nobody-fd")
        assert r.status == 201, f"not serving again after the flood:{r}"


# =========================================================================== 5. enumeration
def lock_through_verify(api: Api, world: World, name: str) -> list[int]:
    """VF wrong codes on a new flow of `name`: the statuses (401 ... 423)."""
    rid = start_reset(api, name).json["reset_id"]
    return [api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": wrong_code(world)}).status
            for _ in range(VF)]


def variant_statuses(api: Api, world: World, variant: str):
    s = start_reset(api, variant)
    assert s.status == 201, s
    v = api.call("POST", f"/v1/resets/{s.json['reset_id']}/verify", {"method": "totp", "code": wrong_code(world)})
    return v


def full_width(name: str) -> str:
    """ＣＡＲＯＬ: the compatibility forms a directory's string preparation folds (NFKC)."""
    return "".join(chr(0xFF00 + ord(c) - 0x20) if "!" <= c <= "~" else c for c in name)


def spellings(name: str) -> list[str]:
    return [name + " ", " " + name, name.upper(), name.capitalize(), f"  {name.upper()}\u0020 ",
            full_width(name), full_width(name.upper()), "\u200b" + name + "\u3000"]


def test_username_variants_of_a_locked_real_and_made_up_user_are_locked_alike(up: Node, world: World):
    """The daemon canonicalizes usernames (edge whitespace trimmed, inner whitespace collapsed,
    case folded): a real user's lock covers every spelling of the name, and so must a made-up
    user's, or the difference tells real from made-up names."""
    real, made_up = "carol", "nosuchuser17"
    locked = {name: lock_through_verify(up.api, world, name) for name in (real, made_up)}
    assert locked[real] == locked[made_up] == [401] * (VF - 1) + [423], locked
    for name in (real, made_up):
        for variant in spellings(name):
            v = variant_statuses(up.api, world, variant)
            assert_error(v, 423, "locked")


def test_inner_whitespace_of_a_made_up_name_is_collapsed(up: Node, world: World):
    name = "zelda unknown"
    assert lock_through_verify(up.api, world, name) == [401] * (VF - 1) + [423]
    for variant in ("zelda  unknown", " Zelda   Unknown ", "ZELDA UNKNOWN"):
        assert_error(variant_statuses(up.api, world, variant), 423, "locked")


def email_hint(r) -> str:
    assert r.status == 201, r
    return next(m["hint"] for m in r.json["methods"] if m["method"] == "email")


def test_decoy_email_hints_follow_hint_domain_and_never_drift(binary, workdir, world, pki, keys, lab, smtp_sink):
    """Red team: a decoy's email hint took the domain of mail.from, so with mail sent from
    another domain than the users' addresses one start told a made-up name from a real one;
    a shape learned from traffic then drifted, which real hints never do. The decoy shape is
    now configured (factors.email.hint_domain) and a fixed function of the name."""
    block = smtp_sink.mail_block().replace(smtp_sink.sender, "noreply@mailer.example.net")
    assert "mailer.example.net" in block
    domain = email_of("alice").split("@")[1]
    factors = mail_factors().replace("    code_ttl_s: 600\n", f'    code_ttl_s: 600\n    hint_domain: "{domain}"\n', 1)
    assert "hint_domain" in factors
    names = ("nosuchuser", "Zelda.Unknown", "dave", *LAB.protected)
    with own_daemon(binary, workdir / "sec-hints", world, pki, keys, lab, factors=factors,
                    extra=block) as (d, api):
        first = {name: email_hint(start_reset(api, name)) for name in names}  # before any real hint
        real = email_hint(start_reset(api, "alice"))
        assert real == f"a***@{domain[0]}***.{domain.rsplit('.', 1)[1]}", real
        for user in LAB.users:
            start_reset(api, user)  # real hints of every lab user have been shown
        for name in names:
            # Made-up, disabled (dave) and protected names: as a real user of that name shows.
            hint = email_hint(start_reset(api, name))
            assert hint == name[0].lower() + real[1:], (name, hint, real)
            assert hint == first[name], f"{name}'s hint moved from {first[name]} to {hint}"
            assert email_hint(start_reset(api, name.upper())) == hint
        assert "decoy_hint_mismatch" not in d.stderr()
    # Without hint_domain the decoys show mail.from's domain, and the operator is told.
    with own_daemon(binary, workdir / "sec-hints-default", world, pki, keys, lab, factors=mail_factors(),
                    extra=block) as (d, api):
        assert email_hint(start_reset(api, "nosuchuser")) == "n***@m***.net"
        start_reset(api, "alice")
        deadline = time.monotonic() + 5
        while "decoy_hint_mismatch" not in d.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        warning = [l for l in d.stderr().splitlines() if "decoy_hint_mismatch" in l]
        assert warning and "factors.email.hint_domain" in warning[0], d.stderr()[-2000:]


# two_methods_groups of each lab: (group DN, a member who is a real user with an email address)
TWO_METHODS = {"openldap": ("cn=staff,ou=groups,dc=example,dc=test", "alice"),
               "samba": ("CN=mfa-two,OU=people,DC=example,DC=test", "gina")}


def test_unverified_flows_report_the_start_replys_required_methods_for_everyone(binary, workdir, world, pki, keys,
                                                                                lab, smtp_sink):
    group, member = TWO_METHODS[KIND]
    others = [u for u in ("bob", "carol", "dave", *LAB.protected, "nosuchuser") if u != member]
    with own_daemon(binary, workdir / "sec-two-methods", world, pki, keys, lab,
                    factors=mail_factors(two_methods_groups=group), extra=smtp_sink.mail_block()) as (d, api):
        starts = {}
        for user in (member, *others):
            s = start_reset(api, user)
            assert s.status == 201, s
            starts[user] = s.json
            r = api.call("POST", f"/v1/resets/{s.json['reset_id']}/complete", {"new_password": STRONG})
            assert_error(r, 403, "verification_required")
            assert r.json.get("remaining_methods") == s.json["required_methods"], \
                f"{user}: complete says remaining_methods {r.json.get('remaining_methods')}, " \
                f"the start said required_methods {s.json['required_methods']}:{r}"
        assert len({j["required_methods"] for j in starts.values()}) == 1, starts


def change(api: Api, user: str, current: str, new: str = STRONG):
    return api.call("POST", "/v1/password/change", {"username": user, "current_password": current,
                                                    "new_password": new})


def comparable_headers(r) -> set:
    return set(r.headers) - {"date", "x-request-id"}


def test_wrong_password_on_a_directory_locked_account_is_401_like_any_wrong_password(up: Node, world: World, lab):
    directory_lock(lab, world, "carol")
    reference = change(up.changer, "bob", WRONG)
    assert ldap_binds(lab, "bob", world.passwords["bob"])  # clears the directory's bad-bind count
    unknown = change(up.changer, "nosuchuser-change", WRONG)
    locked = change(up.changer, "carol", WRONG)
    for r in (reference, unknown, locked):
        assert_error(r, 401, "invalid_credentials")
    assert locked.json == reference.json == unknown.json, (reference, unknown, locked)
    assert comparable_headers(locked) == comparable_headers(reference) == comparable_headers(unknown), \
        (reference.headers, locked.headers)


# =========================================================================== 6. races
def at_once(api: Api, method: str, path: str, bodies: list[dict]) -> list:
    """The requests all arriving together, each on its own connection (send_together)."""
    return send_together(api.port, api.ca, [raw_json_request(method, path, b, api.key) for b in bodies])


@pytest.fixture(scope="module")
def redis(workdir):
    server = RedisServer(workdir / "sec-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def racer(request, binary, workdir, world, pki, keys, lab, smtp_sink):
    """verify_failures VF and 8 workers, so concurrent requests really run side by side; with
    either state backend (Redis: every store call is a round trip, so a check and the write
    that follows it are far apart in time)."""
    state = None
    if request.param == "redis":
        state = f'state:\n  backend: redis\n  redis_url: "{request.getfixturevalue("redis").url}"\n'
    with own_daemon(binary, workdir / f"sec-race-{request.param}", world, pki, keys, lab,
                    factors=mail_factors(codes_per_hour=50), extra=smtp_sink.mail_block(),
                    verify_failures=VF, pool_size=8, **({"state": state} if state else {})) as (d, api):
        yield d, api


RACE_WORDS = ["Amber-Falcon", "Basalt-Heron", "Cedar-Lynx", "Delta-Otter", "Ember-Raven", "Fjord-Marten"]


def test_concurrent_completes_of_one_flow_write_exactly_once(racer, world: World, lab):
    d, api = racer
    user = "bob"
    # never used before (the directory refuses a password from the history)
    passwords = [world.secret(f"{w}-{secrets.token_hex(3)}-Passw0rd-6!") for w in RACE_WORDS]
    with code_world(world):
        enroll(api, world, user)
        rid = start_reset(api, user).json["reset_id"]
        code, _ = fresh_code(world, user)
        v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
        assert v.status == 200 and v.json["remaining_methods"] == 0, v
    replies = at_once(api, "POST", f"/v1/resets/{rid}/complete", [{"new_password": pw} for pw in passwords])
    winners = [pw for pw, r in zip(passwords, replies) if r.status == 200]
    if len(winners) != 1:  # put the lab back in a known state before failing
        admin_set_password(lab, world, user, "Restored-Known-Passw0rd-99!")
    assert len(winners) == 1, f"{len(winners)} of {len(replies)} concurrent completes answered 200: {replies}"
    world.passwords[user] = winners[0]
    for pw, r in zip(passwords, replies):
        if pw != winners[0]:
            assert_raw_error(r, {410}, "reset_expired")
    # exactly the winner's password binds (a right bind after each wrong one clears the count)
    for pw in passwords:
        if pw != winners[0]:
            assert not ldap_binds(lab, user, pw), "a loser's password binds"
        assert ldap_binds(lab, user, winners[0]), "the winner's password does not bind"


def failure_counts(records: list[dict]) -> list[int]:
    return [r["failures"] for r in records if isinstance(r.get("failures"), int)]


def test_concurrent_wrong_codes_are_evaluated_at_most_verify_failures_times(racer, world: World):
    d, api = racer
    user = "alice"  # a real flow (her email address); no authenticator here: every code is wrong
    rid = start_reset(api, user).json["reset_id"]
    before = len(d.audit("reset.verify"))
    replies = at_once(api, "POST", f"/v1/resets/{rid}/verify",
                      [{"method": "email", "code": wrong_code(world)} for _ in range(40)])
    statuses = sorted(r.status for r in replies)
    assert set(statuses) <= {401, 423}, replies
    time.sleep(0.2)
    records = [r for r in d.audit("reset.verify")[before:] if r.get("username") == user]
    counts = failure_counts(records)
    evaluated = [r for r in records if r.get("outcome") == "invalid_code" or isinstance(r.get("failures"), int)]
    print(f"\nstatuses {statuses.count(401)}x401 {statuses.count(423)}x423; audit failure counts {sorted(counts)}")
    # the failure that reaches the limit answers 423, every earlier one 401
    assert statuses.count(401) == VF - 1, statuses
    assert counts and max(counts) <= VF, f"{len(counts)} codes were checked, counts up to {max(counts or [0])}"
    assert len(evaluated) <= VF, f"{len(evaluated)} codes were checked (limit {VF}): {evaluated}"


def test_concurrent_wrong_enrollment_passwords_bind_at_most_verify_failures_times(racer, world: World, lab):
    d, api = racer
    user = "bob"
    before = len(d.audit("enrollment.totp_start"))
    try:
        replies = at_once(api, "POST", "/v1/enrollments/totp",
                          [{"username": user, "current_password": WRONG} for _ in range(40)])
    finally:
        ensure_directory_unlocked(lab, world, user)
    statuses = sorted(r.status for r in replies)
    time.sleep(0.2)
    records = [r for r in d.audit("enrollment.totp_start")[before:] if r.get("username") == user]
    binds = [r for r in records if r.get("reason") in ("wrong_password", "account_locked")]
    print(f"\nstatuses {statuses.count(401)}x401 {statuses.count(423)}x423; {len(binds)} binds in the audit")
    assert set(statuses) <= {401, 423}, replies
    assert statuses.count(401) == VF - 1, statuses
    assert len(binds) <= VF, f"{len(binds)} password checks reached the directory (limit {VF})"


# =========================================================================== 7. enrollment
def enroll_start(api: Api, user: str, password: str, current_code: str | None = None):
    body = {"username": user, "current_password": password}
    if current_code is not None:
        body["current_code"] = current_code
    return api.call("POST", "/v1/enrollments/totp", body)


def test_enrollment_password_failures_lock_like_change_for_real_and_unknown_users(binary, workdir, world, pki,
                                                                                 keys, lab):
    user, unknown = "alice", "nosuchuser-enroll"
    seen = {}
    with own_daemon(binary, workdir / "sec-enroll-lock", world, pki, keys, lab, verify_failures=VF) as (d, api):
        for name, right in ((user, world.passwords[user]), (unknown, "Anything-Passw0rd-42!")):
            statuses = []
            for i in range(VF):
                r = enroll_start(api, name, f"{WRONG}-{i}")
                statuses.append(r.status)
                if name == user:
                    assert ldap_binds(lab, user, right)  # the directory's count stays clear
            r = enroll_start(api, name, right)
            statuses.append(r.status)
            if r.status == 423:
                assert_error(r, 423, "locked")
                assert 0 < r.json.get("retry_after", 0) <= LOCKOUT_S, r
            seen[name] = statuses
    assert seen[user] == [401] * (VF - 1) + [423, 423], seen
    assert seen[unknown] == seen[user], seen
    assert ldap_binds(lab, user, world.passwords[user]), "the daemon's lock is its own: the account still binds"


def totp(world: World, user: str, step: int) -> str:
    code = code_for_step(world.totp[user], step)
    world.codes.add(code)
    return code


def test_replacing_an_authenticator_needs_a_code_from_it(up: Node, world: World, lab):
    api, user = up.api, "alice"
    with code_world(world):
        old_secret = enroll(api, world, user)
        s0 = world.last_step[user]
        assert s0 + 5 <= now_step() + SKEW, "the enrollment used a step too far ahead"
        recovery = world.recovery[user]
        password = world.passwords[user]

        # the password is checked first: without it, nothing about the authenticator is told
        r = enroll_start(api, user, WRONG, totp(world, user, s0 + 1))
        assert_error(r, 401, "invalid_credentials")
        assert ldap_binds(lab, user, password)
        assert_error(enroll_start(api, "nosuchuser-replace", WRONG, "123456"), 401, "invalid_credentials")

        for code in (None, wrong_code(world, user), "not-a-code"):
            r = enroll_start(api, user, password, code)
            assert_error(r, 403, "factor_proof_required")

        # a recovery code is a proof
        r = enroll_start(api, user, password, recovery[0])
        assert r.status == 201, r
        world.secret(r.json["secret"])
        # and so is a code from the authenticator
        r = enroll_start(api, user, password, totp(world, user, s0 + 2))
        assert r.status == 201, r
        new_secret = world.secret(r.json["secret"])
        assert new_secret != old_secret

        # until the new one is confirmed, the old authenticator still resets
        rid = start_reset(api, user).json["reset_id"]
        v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": totp(world, user, s0 + 3)})
        assert v.status == 200 and v.json["remaining_methods"] == 0, v

        world.totp[user] = new_secret
        c = api.call("POST", f"/v1/enrollments/totp/{r.json['enrollment_id']}/confirm",
                     {"code": totp(world, user, s0 + 4)})
        assert c.status == 200 and c.json.get("status") == "enrolled", c
        for x in c.json.get("recovery_codes", []):
            world.secret(x)

        # confirmed: the old authenticator no longer works, the new one does
        rid = start_reset(api, user).json["reset_id"]
        old_code = code_for_step(old_secret, s0 + 5)
        world.codes.add(old_code)
        assert_error(api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": old_code}), 401,
                     "invalid_code")
        v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": totp(world, user, s0 + 5)})
        assert v.status == 200, v


# =========================================================================== 9. smaller
def write_config(binary, directory, pki, keys, lab, **config):
    directory.mkdir(parents=True, exist_ok=True)
    write_policy_lists(binary, directory)
    for src, name in ((pki.cert, "server.crt"), (pki.key, "server.key")):
        (directory / name).write_bytes(src.read_bytes())
    os.chmod(directory / "server.key", 0o600)
    path = directory / "pwresetd.yaml"
    path.write_text(config_text(free_port(), lab, keys, **config))
    return path


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o644], ids=lambda m: f"{m:04o}")
def test_key_file_readable_by_group_or_other_is_refused(binary, workdir, pki, keys, lab, mode):
    directory = workdir / f"sec-key-{mode:o}"
    config = write_config(binary, directory, pki, keys, lab)
    key = directory / "secret.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, mode)
    check = run([str(binary), "--check-config", "-c", str(config)], timeout=30)
    if mode == 0o600:
        assert check.returncode == 0, f"a private key file is refused: {check.stderr}"
        return
    assert check.returncode == 1, f"mode {mode:o}: --check-config exit {check.returncode}: {check.stderr}"
    assert "secret.key" in check.stderr, f"the message does not name the file: {check.stderr}"
    try:
        started = run([str(binary), "-c", str(config)], cwd=directory, timeout=10)
    except Exception as e:  # subprocess.TimeoutExpired: it is running (and was killed)
        pytest.fail(f"pwresetd started with a key file of mode {mode:o}: {e}")
    assert started.returncode != 0, f"pwresetd exited {started.returncode} with a key file of mode {mode:o}"
    assert "secret.key" in started.stderr, started.stderr


@pytest.fixture(scope="module")
def plain_sink(workdir, pki):
    """An SMTP server that offers no STARTTLS."""
    from conftest import stop_lab_server
    sink = SmtpSink(workdir / "smtp-plain", pki, tls=False)
    try:
        yield sink
    finally:
        stop_lab_server(sink.proc)


def challenge_email(api: Api, user: str):
    rid = start_reset(api, user).json["reset_id"]
    r = api.call("POST", f"/v1/resets/{rid}/challenge", {"method": "email"})
    assert r.status == 202, r


def test_smtp_without_starttls_is_refused_by_default(binary, workdir, world, pki, keys, lab, plain_sink):
    with own_daemon(binary, workdir / "sec-plain-default", world, pki, keys, lab, factors=mail_factors(),
                    extra=plain_sink.mail_block(require_tls=None)) as (d, api):
        mark = plain_sink.count()
        challenge_email(api, "alice")
        time.sleep(3)  # delivery is asynchronous: what would be sent has arrived by now
        assert plain_sink.recipients_since(mark) == [], "a code went out over SMTP without TLS"
        assert d.alive()


def test_smtp_in_clear_only_with_require_tls_false_and_a_warning(binary, workdir, world, pki, keys, lab,
                                                                  plain_sink):
    with own_daemon(binary, workdir / "sec-plain-allowed", world, pki, keys, lab, factors=mail_factors(),
                    extra=plain_sink.mail_block(require_tls=False)) as (d, api):
        warned = [l for l in d.stderr().splitlines() if "require_tls" in l and "warn" in l.lower()]
        assert warned, f"no warning about require_tls: false at start:\n{d.stderr()[-2000:]}"
        mark = plain_sink.count()
        challenge_email(api, "alice")
        plain_sink.wait_code(world, after=mark, to=email_of("alice"))


def test_a_trickled_body_after_an_early_error_cannot_hold_the_connection(up: Node):
    """Red team: the drain after an early reply (401 here) reset its 2 s deadline on every
    byte, so a client sending one byte a second held the connection for as long as it liked
    (and, with max_connections of them, locked everyone out). The deadline is now one for
    the whole drain."""
    c = up.raw()
    try:
        c.send(b"POST /v1/resets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1000000\r\n\r\n")
        r = c.read_response(4.0)
        assert r is not None and r.status == 401, r
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8.0:
            try:
                c.send(b"x")
            except (OSError, ssl.SSLError):
                closed = True
                break
            if c.closed_within(0.7):
                closed = True
                break
        assert closed, "the daemon kept draining a trickled body for 8 s"
        assert time.monotonic() - started < 5.0, "the drain outlived its 2 s deadline by far"
    finally:
        c.close()
