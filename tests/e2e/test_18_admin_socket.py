"""18. The admin socket and pwresetctl status / enroll / unenroll / unlock, run as built
against a daemon of their own (admin_socket set) and the lab directory: what each command
answers, that an enrollment it makes works for a reset, that unlock lifts pwresetd's lockout
(and with --directory the directory's), that hostile clients get an error without
disturbing the API or other admin clients, that the socket's mode keeps other users out,
and that every admin action is audited with the peer's uid and no secret."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (LAB, RECOVERY_CODE, TOTP_PERIOD, VERIFY_FAILURES, Api, Daemon, World, assert_error,
                      code_for_step, config_text, directory_lock, ensure_directory_unlocked, find_leaks,
                      free_port, ldap_binds, run, start_daemon, write_policy_lists)

USER = "bob"  # enrolled, reset, locked and unlocked here (this daemon's own state store)
NEW_PASSWORD = "Admin-Socket-Reset-Passw0rd-7!"
READ_TIMEOUT_S = 5.0  # admin_limits::read_timeout


@pytest.fixture(scope="module")
def admin_dir():
    """The socket's folder under /tmp (not the suite's 0700 work folder), so that another
    user's access is decided by the folder's and the socket's own modes."""
    parent = Path(tempfile.mkdtemp(prefix="pwresetd-admin-"))
    os.chmod(parent, 0o755)
    try:
        yield parent / "run"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def admind(binary, workdir, world, pki, keys, lab, admin_dir):
    d, api = start_daemon(binary, workdir / "admin-daemon", world, pki, keys, lab,
                          extra=f"admin_socket: {admin_dir / 'admin.sock'}\n")
    d.api = api
    d.socket = admin_dir / "admin.sock"
    try:
        yield d
    finally:
        code = d.stop()
    assert code == 0, f"pwresetd exited with {code}; stderr:\n{d.stderr()[-3000:]}"
    assert not d.socket.exists(), "the admin socket was left behind at exit"
    leaks = find_leaks(world, [d.stderr_path, d.audit_path])
    assert not leaks, "secrets in the admin daemon's log/audit:\n" + "\n".join(leaks)


def ctl(binary: Path, *args, user: int | None = None, timeout=60) -> subprocess.CompletedProcess:
    cmd = [str(binary.parent / "pwresetctl"), *[str(a) for a in args]]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return run(cmd, timeout=timeout)


def ctl_json(binary: Path, d: Daemon, *args) -> tuple[int, dict]:
    r = ctl(binary, *args, "--json", "--socket", d.socket)
    try:
        reply = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    except ValueError:
        raise AssertionError(f"pwresetctl {args} printed no JSON: {r.stdout!r} {r.stderr!r}")
    return r.returncode, reply


def secret_of(uri: str) -> str:
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp", uri
    return urllib.parse.parse_qs(parsed.query)["secret"][0]


def unused_code(secret: str, used: set) -> tuple[str, int]:
    """A code for the current (or next) step that this daemon has not accepted yet."""
    while True:
        cur = int(time.time()) // TOTP_PERIOD
        for step in (cur, cur + 1):
            if step not in used:
                return code_for_step(secret, step), step
        time.sleep((cur + 1) * TOTP_PERIOD - time.time() + 0.05)


class AdminConnection:
    def __init__(self, path: Path, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self) -> dict | None:
        """The next reply line, or None when the daemon closes the connection first."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def health_ms(api: Api) -> float:
    started = time.monotonic()
    r = api.call("GET", "/v1/health", key=None, timeout=5)
    assert r.status in (200, 503), r
    return (time.monotonic() - started) * 1000


def test_socket_modes(admind, admin_dir):
    folder = os.stat(admin_dir)
    assert stat.S_IMODE(folder.st_mode) == 0o750, oct(folder.st_mode)
    sock = os.lstat(admind.socket)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o660, oct(sock.st_mode)
    assert sock.st_gid == os.getgid()  # no admin_group: the daemon's own group


def test_other_user_cannot_connect(binary, admind, admin_dir):
    nobody = 65534
    r = ctl(binary, "status", "--socket", admind.socket, user=nobody)
    assert r.returncode == 2 and "Permission denied" in r.stderr, r
    # With the folder opened up, the socket's own mode (0660) still keeps them out.
    os.chmod(admin_dir, 0o755)
    try:
        r = ctl(binary, "status", "--socket", admind.socket, user=nobody)
        assert r.returncode == 2 and "Permission denied" in r.stderr, r
    finally:
        os.chmod(admin_dir, 0o750)
    assert ctl(binary, "status", "--socket", admind.socket).returncode == 0


def test_status(binary, admind, lab):
    code, s = ctl_json(binary, admind, "status")
    assert code == 0 and s["ok"] is True and s["v"] == 1, s
    assert re.match(r"^\d+\.\d+\.\d+", s["version"]), s
    assert isinstance(s["uptime_s"], int) and 0 <= s["uptime_s"] < 3600, s
    assert s["listeners"] == [f"https://127.0.0.1:{admind.port}"], s
    assert s["admin_socket"] == str(admind.socket), s
    [d] = s["directories"]
    assert d["healthy"] is True and d["pool"]["size"] == 2, d
    assert 0 <= d["pool"]["idle"] <= d["pool"]["open"] <= 2, d
    assert d["pool"]["in_use"] == d["pool"]["open"] - d["pool"]["idle"], d
    [server] = d["servers"]
    assert server["uri"] == lab["LAB_LDAPS_URI"] and server["answers"] is True, server
    assert isinstance(server["latency_ms"], int) and 0 <= server["latency_ms"] < 2000, server
    assert s["state"]["backend"] == "sqlite" and s["state"]["answers"] is True, s
    assert s["state"]["location"].endswith("state.db"), s
    assert {"connections", "requests_in_flight", "worker_queue"} <= set(s["counters"]), s

    # Human form, and the socket found through -c CONFIG's admin_socket.
    r = ctl(binary, "status", "-c", admind.config)
    assert r.returncode == 0, r
    assert "healthy" in r.stdout and lab["LAB_LDAPS_URI"] in r.stdout and "state: sqlite" in r.stdout, r.stdout


def test_status_reports_a_dead_server(binary, workdir, world, pki, keys, lab, admin_dir):
    """A second URI nobody listens on: status names it down and exits 1; the first answers."""
    dead = f"ldaps://127.0.0.1:{free_port()}"
    sock = admin_dir.parent / "dead" / "admin.sock"
    d, _ = start_daemon(binary, workdir / "admin-dead", world, pki, keys, lab,
                        uris=[lab["LAB_LDAPS_URI"], dead], extra=f"admin_socket: {sock}\n")
    try:
        r = ctl(binary, "status", "--json", "--socket", sock)
        assert r.returncode == 1, r
        servers = {x["uri"]: x for x in json.loads(r.stdout)["directories"][0]["servers"]}
        assert servers[lab["LAB_LDAPS_URI"]]["answers"] is True, servers
        assert servers[dead]["answers"] is False and servers[dead]["latency_ms"] is None, servers
    finally:
        assert d.stop() == 0


def test_enroll_then_reset_with_its_code(binary, admind, world: World, lab):
    api: Api = admind.api
    code, e = ctl_json(binary, admind, "enroll", USER)
    assert code == 0 and e["ok"] is True and e["user"] == USER and e["replaced"] is False, e
    secret = world.secret(secret_of(e["otpauth_uri"]))
    assert secret == e["secret"], e
    assert len(e["recovery_codes"]) == 10 and all(RECOVERY_CODE.match(c) for c in e["recovery_codes"]), e
    for c in e["recovery_codes"]:
        world.secret(c)
    admind.totp = secret
    admind.used_steps = set()

    r = api.call("POST", "/v1/resets", {"username": USER})
    assert r.status == 201, r
    rid = r.json["reset_id"]
    totp, step = unused_code(secret, admind.used_steps)
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": totp})
    assert v.status == 200, v
    admind.used_steps.add(step)
    c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret(NEW_PASSWORD)})
    assert c.status == 200, c
    world.passwords[USER] = NEW_PASSWORD
    assert ldap_binds(lab, USER, NEW_PASSWORD), "the new password does not bind"

    [record] = admind.audit("admin.enroll")
    assert record["outcome"] == "enrolled" and record["username"] == USER, record
    assert record["peer_uid"] == os.getuid() and record["peer_user"] == "root", record
    assert isinstance(record["peer_pid"], int) and record["peer_pid"] > 0, record


def test_enroll_refusals_and_replace(binary, admind, world: World):
    code, e = ctl_json(binary, admind, "enroll", USER)
    assert code == 1 and e["error"] == "already_enrolled", e
    code, e = ctl_json(binary, admind, "enroll", "no-such-user-here")
    assert code == 1 and e["error"] == "unknown_user", e
    code, e = ctl_json(binary, admind, "enroll", LAB.protected[0])
    assert code == 1 and e["error"] == "protected", e

    # --replace: a new key; the human form shows the URI, a QR code and the recovery codes.
    r = ctl(binary, "enroll", "--replace", "--socket", admind.socket, USER)
    assert r.returncode == 0, r
    uri = next(l for l in r.stdout.splitlines() if l.startswith("otpauth://"))
    secret = world.secret(secret_of(uri))
    assert secret != admind.totp
    admind.totp = secret
    assert "replacing the earlier authenticator" in r.stdout, r.stdout
    qr_lines = [l for l in r.stdout.splitlines() if "\u2588" in l or "\u2580" in l or "\u2584" in l]
    assert len(qr_lines) >= 12 and len({len(l) for l in qr_lines}) == 1, r.stdout
    codes = [l.strip() for l in r.stdout.splitlines() if RECOVERY_CODE.match(l.strip())]
    assert len(codes) == 10, r.stdout
    for c in codes:
        world.secret(c)
    outcomes = [(x["outcome"], x.get("reason"), x.get("replaced")) for x in admind.audit("admin.enroll")]
    assert outcomes[-4:] == [("refused", "already_enrolled", None), ("refused", "unknown_user", None),
                             ("refused", "protected", None), ("enrolled", None, True)], outcomes


def test_unlock_lifts_the_code_lockout(binary, admind, world: World):
    api: Api = admind.api
    r = api.call("POST", "/v1/resets", {"username": USER})
    assert r.status == 201, r
    verify = f"/v1/resets/{r.json['reset_id']}/verify"
    cur = int(time.time()) // TOTP_PERIOD
    valid = {code_for_step(admind.totp, s) for s in range(cur - 3, cur + 5)}
    wrong = next(f"{n:06d}" for n in range(123456, 999999) if f"{n:06d}" not in valid)
    for _ in range(VERIFY_FAILURES):
        v = api.call("POST", verify, {"method": "totp", "code": wrong})
    assert_error(v, 423, "locked")
    totp, step = unused_code(admind.totp, admind.used_steps)
    assert_error(api.call("POST", verify, {"method": "totp", "code": totp}), 423, "locked")

    code, u = ctl_json(binary, admind, "unlock", USER)
    assert code == 0 and u["ok"] is True, u
    assert u["cleared"]["code_failures"]["count"] == VERIFY_FAILURES, u
    assert "directory" not in u, u
    v = api.call("POST", verify, {"method": "totp", "code": totp})
    assert v.status == 200, v
    admind.used_steps.add(step)

    record = admind.audit("admin.unlock")[-1]
    assert record["outcome"] == "unlocked" and record["code_failures"] == VERIFY_FAILURES, record
    assert record["peer_uid"] == os.getuid() and record["directory"] is False, record


def test_unlock_directory_account(binary, admind, world: World, lab):
    directory_lock(lab, world, USER)
    assert not ldap_binds(lab, USER, world.passwords[USER])
    try:
        r = ctl(binary, "unlock", "--directory", "--socket", admind.socket, USER)
        assert r.returncode == 0, r
        assert "directory account unlocked" in r.stdout, r.stdout
        assert ldap_binds(lab, USER, world.passwords[USER]), "still locked in the directory"
        record = admind.audit("admin.unlock")[-1]
        assert record["directory"] is True and record["directory_unlocked"] is True, record
    finally:
        ensure_directory_unlocked(lab, world, USER)


def test_unenroll(binary, admind):
    code, u = ctl_json(binary, admind, "unenroll", USER)
    assert code == 0 and u["ok"] is True and u["removed"] == ["totp", "recovery_codes"], u
    code, u = ctl_json(binary, admind, "unenroll", USER)
    assert code == 1 and u["error"] == "not_enrolled", u
    # a code of the removed key no longer verifies
    r = admind.api.call("POST", "/v1/resets", {"username": USER})
    assert r.status == 201, r
    totp, _ = unused_code(admind.totp, admind.used_steps)
    v = admind.api.call("POST", f"/v1/resets/{r.json['reset_id']}/verify", {"method": "totp", "code": totp})
    assert_error(v, 401, "invalid_code")
    outcomes = [x["outcome"] for x in admind.audit("admin.unenroll")]
    assert outcomes == ["unenrolled", "not_enrolled"], outcomes


def test_usage_and_no_daemon(binary, admind, admin_dir):
    assert ctl(binary, "enroll").returncode == 2
    assert ctl(binary, "unlock", "--bogus", USER).returncode == 2
    r = ctl(binary, "status", "--socket", admin_dir / "nothing.sock")
    assert r.returncode == 2 and "cannot connect" in r.stderr, r
    r = ctl(binary, "unlock", "--help")
    assert r.returncode == 0 and "--directory" in r.stdout, r


def test_hostile_clients(binary, admind):
    api: Api = admind.api
    path = admind.socket

    # Garbage is answered, and the connection still serves the next request.
    c = AdminConnection(path)
    c.send(b"this is not json\n")
    assert c.reply()["error"] == "bad_request"
    c.send(b'{"v":1,"cmd":"status","extra":1}\n')
    assert c.reply()["error"] == "bad_request"
    c.send(b'{"v":2,"cmd":"status"}\n')
    assert c.reply()["error"] == "unsupported_version"
    c.send(b'{"v":1,"cmd":"rm -rf"}\n')
    assert c.reply()["error"] == "unknown_command"
    c.send(b'{"v":1,"cmd":"status"}\n')
    assert c.reply()["ok"] is True
    c.close()

    # An oversized line: too_large, then closed.
    c = AdminConnection(path)
    c.send(b'{"v":1,"cmd":"status","user":"' + b"x" * 8000 + b'"}\n')
    reply = c.reply()
    assert reply is not None and reply["error"] == "too_large", reply
    assert c.closed()
    c.close()

    # Slowloris: half a line, then nothing. Meanwhile the API and another admin client are
    # served at once; after the read timeout the slow one gets `timeout` and is closed.
    slow = AdminConnection(path, timeout=READ_TIMEOUT_S + 5)
    slow.send(b'{"v":1,')
    started = time.monotonic()
    assert health_ms(api) < 1000
    assert ctl(binary, "status", "--socket", path, timeout=30).returncode == 0
    reply = slow.reply()
    waited = time.monotonic() - started
    assert reply is not None and reply["error"] == "timeout", reply
    assert READ_TIMEOUT_S - 1 <= waited <= READ_TIMEOUT_S + 3, waited
    slow.close()

    # Connections beyond the limit are answered busy and closed; the API does not notice.
    idle = [AdminConnection(path) for _ in range(8)]
    try:
        extra = AdminConnection(path)
        reply = extra.reply()
        assert reply is not None and reply["error"] == "busy", reply
        extra.close()
        assert health_ms(api) < 1000
    finally:
        for x in idle:
            x.close()
    time.sleep(0.2)
    assert ctl(binary, "status", "--socket", path).returncode == 0
    assert admind.alive()


def test_start_refuses_a_file_that_is_not_a_socket(binary, workdir, world, pki, keys, lab, admin_dir):
    folder = admin_dir.parent / "file"
    folder.mkdir()
    target = folder / "admin.sock"
    target.write_text("not a socket\n")
    d = Daemon(binary, workdir / "admin-file", free_port(), world, pki)
    write_policy_lists(binary, d.dir)
    d.write(config_text(d.port, lab, keys, extra=f"admin_socket: {target}\n"))
    p = subprocess.run([str(binary), "-c", str(d.config)], cwd=d.dir, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2, p
    assert "exists and is not a socket" in p.stderr, p.stderr[-2000:]
    assert target.read_text() == "not a socket\n"


def test_start_replaces_a_stale_socket(binary, workdir, world, pki, keys, lab, admin_dir):
    folder = admin_dir.parent / "stale"
    folder.mkdir()
    target = folder / "admin.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(target))  # bound, never listening: what a killed daemon leaves
    stale.close()
    before = os.lstat(target).st_ino
    d, _ = start_daemon(binary, workdir / "admin-stale", world, pki, keys, lab, extra=f"admin_socket: {target}\n")
    try:
        assert os.lstat(target).st_ino != before
        assert ctl(binary, "status", "--socket", target).returncode == 0
        # and a second daemon (another port) on the same socket refuses to start: somebody
        # answers there
        second = Daemon(binary, workdir / "admin-stale-2", free_port(), world, pki)
        write_policy_lists(binary, second.dir)
        second.write(config_text(second.port, lab, keys, extra=f"admin_socket: {target}\n"))
        p = subprocess.run([str(binary), "-c", str(second.config)], cwd=second.dir, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2 and "another process answers" in p.stderr, p.stderr[-2000:]
        assert ctl(binary, "status", "--socket", target).returncode == 0
    finally:
        assert d.stop() == 0
    assert not target.exists()
