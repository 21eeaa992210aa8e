"""19. Reload on SIGHUP (RELOADING=1 ... READY=1 as systemd's notify protocol has it) and
socket activation (sockets passed as systemd passes them):
- new API keys, a new certificate and new policy lists take effect; open connections and
  requests in flight are not dropped, and a revoked key is refused on an old connection;
- a configuration with errors is kept out, each error logged with file:line:column, and the
  old one goes on serving; so is one whose directory does not answer;
- settings a reload cannot change are named; every reload is audited;
- under load, no request fails while the daemon reloads again and again;
- with LISTEN_FDS the daemon serves the passed socket and binds nothing of its own."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (SOURCE_DIR, Api, Daemon, assert_error, config_text, find_leaks, free_port, make_pki,
                      sha256_hex, write_policy_lists)
from test_17_systemd import NotifiedDaemon, NotifySocket, port_accepts, status_of

WAIT_S = 15.0


class Reloadable:
    """A daemon started as a Type=notify service, with the helpers to rewrite its config and
    send SIGHUP, waiting for the RELOADING=1 ... READY=1 pair."""

    def __init__(self, daemon: NotifiedDaemon, notify: NotifySocket, lab, keys, extra_keys: dict):
        self.d, self.notify, self.lab, self.keys = daemon, notify, lab, keys
        self.extra_keys = extra_keys  # client name -> key, for clients a test adds

    def wait_for(self, word: str, timeout: float = WAIT_S) -> list[list[str]]:
        """Every message up to and including the first with `word`; fails when none comes."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.notify.receive(deadline - time.monotonic())
            if lines is None:
                break
            seen.append(lines)
            if word in lines:
                return seen
        pytest.fail(f"no {word} within {timeout}s; messages {seen}; stderr:\n{self.d.stderr()[-3000:]}")

    def reload(self) -> list[str]:
        """SIGHUP; returns the READY=1 message that ends the reload."""
        self.d.proc.send_signal(signal.SIGHUP)
        seen = self.wait_for("RELOADING=1")
        reloading = seen[-1]
        assert any(l.startswith("MONOTONIC_USEC=") for l in reloading), reloading
        return self.wait_for("READY=1")[-1]


def clients_block(keys, extra: dict, drop_checker: bool = False) -> str:
    """The clients: block of config_text with `extra` clients (name -> key, scope check)."""
    text = config_text(1, {"LAB_LDAPS_URI": "x", "LAB_CA": "x", "LAB_SVC_DN": "x",
                           "LAB_SVC_PASSWORD_FILE": "x"}, keys)
    block = text[text.index("clients:\n"):text.index("directory:\n")]
    if drop_checker:
        block = re.sub(r"  - name: checker\n(    .*\n)+", "", block)
    for name, key in extra.items():
        block += f'  - name: {name}\n    api_key_sha256: "{sha256_hex(key)}"\n    scopes: [check]\n'
    return block


def rewrite(r: Reloadable, extra_clients: dict | None = None, drop_checker: bool = False,
            uris: list[str] | None = None, replace: tuple[str, str] | None = None, port: int | None = None):
    text = config_text(port or r.d.port, r.lab, r.keys, uris)
    text = text.replace(text[text.index("clients:\n"):text.index("directory:\n")],
                        clients_block(r.keys, extra_clients or {}, drop_checker))
    if replace:
        assert replace[0] in text, replace[0]
        text = text.replace(*replace)
    r.d.config.write_text(text)


@pytest.fixture
def reloadable(binary, workdir, world, pki, keys, lab, request):
    started: list[Reloadable] = []

    def start() -> Reloadable:
        directory = workdir / f"daemon-reload-{request.node.name}"
        port = free_port()
        d = NotifiedDaemon(binary, directory, port, world, pki)
        write_policy_lists(binary, directory)
        d.write(config_text(port, lab, keys))
        d.api = Api(port, pki.ca, keys.checker, world)
        notify = NotifySocket()
        d.launch(notify, None)
        r = Reloadable(d, notify, lab, keys, {})
        started.append(r)
        r.wait_for("READY=1")
        return r

    yield start
    for r in started:
        running = r.d.alive()
        code = r.d.stop()
        r.notify.close()
        assert not running or code == 0, f"pwresetd exited with {code}; stderr:\n{r.d.stderr()[-3000:]}"
        leaks = find_leaks(world, [r.d.stderr_path, r.d.audit_path])
        assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def reload_records(d: Daemon) -> list[dict]:
    return d.audit("daemon.reload")


def test_new_keys_apply_and_an_old_connection_stays_open(reloadable, world, pki):
    r = reloadable()
    api = r.d.api
    kept = api.connection()  # one keep-alive connection across the reload
    assert api.call("GET", "/v1/policy", conn=kept).status == 200
    fresh_key = world.secret(os.urandom(24).hex())
    rewrite(r, extra_clients={"fresh": fresh_key}, drop_checker=True)
    ready = r.reload()
    assert (status_of(ready) or "").startswith("serving on"), ready
    # The revoked key is refused on the connection it used before the reload ...
    assert_error(api.call("GET", "/v1/policy", conn=kept), 401, "unauthenticated")
    # ... which is still open, and the new key works on it and on new connections.
    assert api.call("GET", "/v1/policy", key=fresh_key, conn=kept).status == 200
    assert api.call("GET", "/v1/policy", key=fresh_key).status == 200
    kept.close()
    records = reload_records(r.d)
    assert records and records[-1]["outcome"] == "applied" and records[-1]["needs_restart"] == [], records


def test_bad_config_is_kept_out_with_every_error_positioned(reloadable):
    r = reloadable()
    good = r.d.config.read_text()
    bad = good.replace("limits:\n", "limits:\n  verfy_failures: 3\n").replace(
        "  pool_size: 2\n", "  pool_size: many\n")
    r.d.config.write_text(bad)
    before = len(r.d.stderr())
    ready = r.reload()
    assert (status_of(ready) or "").startswith("serving on"), ready
    log = r.d.stderr()[before:]
    errors = [l for l in log.splitlines() if "config.reload_error" in l]
    lines = bad.splitlines()
    typo_line = next(i for i, l in enumerate(lines, 1) if "verfy_failures" in l)
    pool_line = next(i for i, l in enumerate(lines, 1) if "pool_size: many" in l)
    assert any(f"pwresetd.yaml:{typo_line}:3: limits.verfy_failures" in l for l in errors), errors
    assert any(f"pwresetd.yaml:{pool_line}:14: directory.pool_size" in l for l in errors), errors
    assert "daemon.reload_refused" in log, log
    # The old configuration still serves.
    assert r.d.api.call("GET", "/v1/policy").status == 200
    record = reload_records(r.d)[-1]
    assert record["outcome"] == "refused" and record["errors"] == 2, record


def test_a_directory_that_does_not_answer_is_kept_out(reloadable):
    r = reloadable()
    rewrite(r, uris=[f"ldaps://127.0.0.1:{free_port()}"])  # nothing listens there
    ready = r.reload()
    assert status_of(ready) == f"serving on https://127.0.0.1:{r.d.port}, directory ok", ready
    assert r.d.api.call("GET", "/v1/health", key=None).status == 200
    record = reload_records(r.d)[-1]
    assert record["outcome"] == "refused" and "directory" in record["reason"], record


def test_settings_that_need_a_restart_are_named(reloadable):
    r = reloadable()
    other = free_port()
    rewrite(r, port=other)
    r.reload()
    record = reload_records(r.d)[-1]
    assert record["outcome"] == "applied", record
    assert any(line.startswith("listen:") for line in record["needs_restart"]), record
    assert "daemon.reload_needs_restart" in r.d.stderr()
    assert port_accepts(r.d.port) and not port_accepts(other)


def test_a_new_certificate_is_served_to_new_connections(reloadable, workdir):
    r = reloadable()
    api = r.d.api
    kept = api.connection()
    assert api.call("GET", "/v1/policy", conn=kept).status == 200
    old_cert = kept.sock.getpeercert(binary_form=True)
    # A new key pair from another CA: the daemon must serve it after the reload.
    other_dir = workdir / f"pki-reload-{time.monotonic_ns()}"
    other_dir.mkdir()
    other = make_pki(other_dir)
    shutil.copyfile(other.cert, r.d.dir / "server.crt")
    shutil.copyfile(other.key, r.d.dir / "server.key")
    os.chmod(r.d.dir / "server.key", 0o600)
    r.reload()
    new_api = Api(r.d.port, other.ca, api.key, api.world)
    conn = new_api.connection()
    assert new_api.call("GET", "/v1/policy", conn=conn).status == 200
    assert conn.sock.getpeercert(binary_form=True) != old_cert
    conn.close()
    # The connection made before the reload goes on with the old certificate.
    assert api.call("GET", "/v1/policy", conn=kept).status == 200
    kept.close()
    # And the old CA no longer verifies new connections.
    with pytest.raises(ssl.SSLCertVerificationError):
        api.call("GET", "/v1/policy")


def test_a_new_banned_word_applies_after_reload(reloadable, world):
    r = reloadable()
    # Entra-style scoring: a banned term counts 1 point, every other character 1; 5 pass.
    candidate = world.secret("Marmalade0rbit12")
    body = {"password": candidate}
    first = r.d.api.call("POST", "/v1/password/check", body)
    assert first.status == 200 and first.json["acceptable"], first
    with open(r.d.dir / "banned.txt", "a") as f:
        f.write("marmalade\norbit\n")
    r.reload()
    second = r.d.api.call("POST", "/v1/password/check", body)
    assert second.status == 200 and not second.json["acceptable"], second
    assert "banned" in [v["rule"] for v in second.json["violations"]], second


def test_no_request_fails_while_reloading_under_load(reloadable):
    r = reloadable()
    api = r.d.api
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def hammer(keep_alive: bool):
        conn = api.connection() if keep_alive else None
        while not stop.is_set():
            try:
                status = api.call("GET", "/v1/policy", conn=conn).status
                with lock:
                    results.append((status, ""))
            except Exception as e:  # a dropped connection is exactly what must not happen
                with lock:
                    results.append((0, repr(e)))
                if conn is not None:
                    conn.close()
                    conn = api.connection()
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=hammer, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            time.sleep(0.3)
            r.reload()
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    failed = [x for x in results if x[0] != 200]
    assert len(results) > 50, f"only {len(results)} requests made"
    assert not failed, f"{len(failed)} of {len(results)} requests failed during reloads: {failed[:5]}"
    assert [rec["outcome"] for rec in reload_records(r.d)][-5:] == ["applied"] * 5


# --------------------------------------------------------------------------- socket activation
def test_socket_activation_serves_the_passed_socket_only(binary, workdir, world, pki, keys, lab):
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    directory = workdir / "daemon-socket-activation"
    config_port, passed_port = free_port(), free_port()
    d = Daemon(binary, directory, config_port, world, pki)
    write_policy_lists(binary, directory)
    # admin_socket names another path: with a passed Unix socket the daemon creates none.
    configured_admin = directory / "configured-admin.sock"
    admin_path = directory / "passed-admin.sock"
    d.write(config_text(config_port, lab, keys, extra=f"admin_socket: {configured_admin}\n"))
    err = open(d.stderr_path, "ab")
    try:
        # systemd-socket-activate binds, listens and execs the daemon with LISTEN_FDS=1,
        # LISTEN_PID and LISTEN_FDNAMES, as pwresetd.socket would.
        # pwresetd.socket passes a TCP socket (the API) and a Unix one (the admin socket).
        d.proc = subprocess.Popen([activate, "-l", f"127.0.0.1:{passed_port}", "-l", str(admin_path),
                                   str(binary), "-c", str(d.config)], cwd=directory,
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    finally:
        err.close()
    try:
        api = Api(passed_port, pki.ca, keys.checker, world)
        deadline = time.monotonic() + WAIT_S
        reply = None
        while time.monotonic() < deadline and reply is None:
            try:
                reply = api.call("GET", "/v1/health", key=None, timeout=3)
            except (ConnectionError, OSError):
                time.sleep(0.1)
        assert reply is not None and reply.status == 200, d.stderr()[-3000:]
        assert api.call("GET", "/v1/policy").status == 200
        assert not port_accepts(config_port), "the listen address of the config was bound too"
        pwresetctl = binary.parent / "pwresetctl"
        status = subprocess.run([str(pwresetctl), "status", "--json", "--socket", str(admin_path)],
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, f"{status.stdout}\n{status.stderr}"
        assert json.loads(status.stdout)["version"], status.stdout
        assert not configured_admin.exists(), "the configured admin socket was created too"
        assert "admin.listening" in d.stderr() and "http.socket_activation" in d.stderr()
    finally:
        code = d.stop()
    assert code == 0, d.stderr()[-3000:]
