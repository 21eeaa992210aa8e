"""17. Under systemd: the sd_notify protocol as a Type=notify unit with WatchdogSec= sees it
(READY=1 once the port accepts and the directory was tried, STATUS=, WATCHDOG=1 at half the
interval, STOPPING=1 on SIGTERM), and scripts/check-systemd on systemd/pwresetd.service."""
from __future__ import annotations

import json
import os
import secrets
import signal
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (SOURCE_DIR, Api, Daemon, config_text, find_leaks, free_port, write_policy_lists)  # noqa: F401

READY_WAIT_S = 15.0


class NotifySocket:
    """What systemd listens on for a Type=notify service: an abstract AF_UNIX datagram
    socket, given to the daemon as NOTIFY_SOCKET=@name."""

    def __init__(self):
        self.name = f"pwresetd-e2e-notify-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)

    @property
    def address(self) -> str:
        return "@" + self.name

    def receive(self, timeout: float) -> list[str] | None:
        """The lines of the next message, or None when none came within timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None
        return data.decode().splitlines()

    def close(self):
        self.sock.close()


class NotifiedDaemon(Daemon):
    """pwresetd started as systemd starts a Type=notify service: NOTIFY_SOCKET set, and
    WATCHDOG_USEC with WATCHDOG_PID naming the daemon's own pid (sd_watchdog_enabled(3)
    ignores a watchdog meant for another process). `sh -c 'WATCHDOG_PID=$$ exec ...'` gives
    the daemon the pid of the shell it replaces."""

    def launch(self, notify: NotifySocket, watchdog_usec: int | None):
        env = dict(os.environ, NOTIFY_SOCKET=notify.address)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        script = 'exec "$0" -c "$1"'
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            script = 'WATCHDOG_PID=$$ exec "$0" -c "$1"'
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(["/bin/sh", "-c", script, str(self.binary), str(self.config)],
                                         cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        finally:
            err.close()


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def notified(binary, workdir, world, pki, keys, lab, request):
    """start(watchdog_usec=None, uris=None) -> (daemon, notify socket, READY message lines,
    whether the port accepted the moment READY arrived, every message before READY)."""
    started: list[tuple[NotifiedDaemon, NotifySocket]] = []

    def start(watchdog_usec: int | None = None, uris: list[str] | None = None):
        directory = workdir / f"daemon-systemd-{request.node.name}"
        port = free_port()
        d = NotifiedDaemon(binary, directory, port, world, pki)
        write_policy_lists(binary, directory)
        d.write(config_text(port, lab, keys, uris))
        d.api = Api(port, pki.ca, keys.portal, world)
        notify = NotifySocket()
        started.append((d, notify))
        d.launch(notify, watchdog_usec)
        before: list[list[str]] = []
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            lines = notify.receive(deadline - time.monotonic())
            if lines is None:
                break
            if "READY=1" in lines:
                accepted = port_accepts(port)  # at once: READY must mean "connect now"
                return d, notify, lines, accepted, before
            before.append(lines)
        code = d.proc.poll()
        d.kill()
        pytest.fail(f"no READY=1 within {READY_WAIT_S}s (exit code {code}, messages {before}); "
                    f"stderr:\n{d.stderr()[-4000:]}")

    yield start
    for d, notify in started:
        running = d.alive()
        code = d.stop()
        notify.close()
        assert not running or code == 0, f"pwresetd exited with {code} after SIGTERM; stderr:\n{d.stderr()[-3000:]}"
        leaks = find_leaks(world, [d.stderr_path, d.audit_path])
        assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def status_of(lines: list[str]) -> str | None:
    return next((l[len("STATUS="):] for l in lines if l.startswith("STATUS=")), None)


def test_ready_when_the_port_accepts_with_status(notified):
    d, notify, ready, accepted, before = notified()
    assert accepted, f"READY=1 arrived but 127.0.0.1:{d.port} refused a connection"
    assert not any("READY=1" in m for m in before), before
    status = status_of(ready)
    assert status == f"serving on https://127.0.0.1:{d.port}, directory ok", ready
    assert d.api.call("GET", "/v1/health", key=None, timeout=3).status == 200
    # Without WATCHDOG_USEC the daemon sends no keep-alives.
    extra = notify.receive(1.5)
    assert extra is None or "WATCHDOG=1" not in extra, extra


def test_ready_waits_for_the_directory_and_reports_it_degraded(notified):
    dead_uri = f"ldaps://127.0.0.1:{free_port()}"  # nothing listens there
    d, _, ready, accepted, _ = notified(uris=[dead_uri])
    assert accepted, f"READY=1 arrived but 127.0.0.1:{d.port} refused a connection"
    assert status_of(ready) == f"serving on https://127.0.0.1:{d.port}, directory degraded", ready
    # The first directory ping has finished when READY comes: health answers at once, degraded.
    r = d.api.call("GET", "/v1/health", key=None, timeout=3)
    assert r.status == 503 and r.json.get("status") == "degraded", r


def test_watchdog_pings_at_half_the_interval(notified):
    d, notify, _, _, _ = notified(watchdog_usec=1_000_000)
    pings = []
    window_end = time.monotonic() + 2.6
    while (left := window_end - time.monotonic()) > 0:
        lines = notify.receive(left)
        if lines is not None and "WATCHDOG=1" in lines:
            pings.append(time.monotonic())
    # every 0.5 s: 5 in 2.6 s; at least 3 leaves room for a slow machine, and a daemon that
    # pinged once per WatchdogSec (or not at all) would send at most 2.
    assert len(pings) >= 3, f"{len(pings)} WATCHDOG=1 in 2.6 s with WATCHDOG_USEC=1s"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 1.0, f"gaps between WATCHDOG=1 {gaps}: a 1 s watchdog would fire"


def test_stopping_on_sigterm(notified):
    d, notify, _, _, _ = notified(watchdog_usec=1_000_000)
    d.proc.terminate()
    stopping = None
    deadline = time.monotonic() + 10
    while stopping is None and time.monotonic() < deadline:
        lines = notify.receive(deadline - time.monotonic())
        if lines is None:
            break
        if "STOPPING=1" in lines:
            stopping = lines
    assert stopping is not None, "no STOPPING=1 after SIGTERM"
    assert (status_of(stopping) or "").startswith("stopping"), stopping
    assert d.proc.wait(timeout=15) == 0, d.stderr()[-3000:]


# --------------------------------------------------------------------------- the unit file
def check_systemd(binary: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    return subprocess.run([str(SOURCE_DIR / "scripts" / "check-systemd"), "--binary", str(binary), *args],
                          capture_output=True, text=True, timeout=120)


def test_unit_passes_check_systemd(binary):
    r = check_systemd(binary)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "overall exposure level" in r.stdout and "verify: no complaint" in r.stdout, r.stdout


def test_check_systemd_fails_above_its_threshold(binary):
    r = check_systemd(binary, "--max-exposure", "0.1")
    assert r.returncode == 1, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "is above 0.1" in r.stderr, r.stderr


# --------------------------------------------------------------------------- journald
JOURNALD = Path("/lib/systemd/systemd-journald")

# A real systemd-journald in a private mount namespace (its sockets and journal on tmpfs, so
# the host's are untouched), and pwresetd with stderr as its "journal stream": the daemon
# sees JOURNAL_STREAM naming its stderr, as under systemd, and logs natively. The journal is
# dumped as JSON when the daemon has exited.
JOURNAL_HARNESS = r"""
set -eu
out=$1; shift
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald &
journald=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
JOURNAL_STREAM=$(stat -c '%d:%i' "$out/stderr.log") "$@" 2>>"$out/stderr.log" &
echo $! > "$out/daemon.pid"
wait $! || echo $? > "$out/daemon.exit"
sleep 0.3
journalctl -D /run/log/journal --no-pager -o json > "$out/journal.json"
kill $journald
"""


def private_mounts_possible() -> bool:
    """A private mount namespace (unshare -m --propagation private) needs / to be a mount
    point: a chroot (fresh-machine.sh) has none, and then the journald tests cannot run."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


def test_under_journald_each_field_is_a_journal_field(binary, workdir, world, pki, keys, lab):
    if os.geteuid() != 0 or not JOURNALD.exists() or shutil.which("unshare") is None:
        pytest.skip("needs root, unshare and systemd-journald (package systemd)")
    if not private_mounts_possible():
        pytest.skip("no private mount namespace here (/ is not a mount point: a chroot)")
    directory = workdir / "daemon-journald"
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    d.write(config_text(port, lab, keys))
    (directory / "stderr.log").write_text("")
    api = Api(port, pki.ca, keys.portal, world)
    harness = subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c", JOURNAL_HARNESS,
                                "harness", str(directory), str(binary), "-c", str(d.config)], cwd=directory)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while not port_accepts(port) and time.monotonic() < deadline:
            assert harness.poll() is None, (directory / "stderr.log").read_text()[-3000:]
            time.sleep(0.1)
        assert api.call("GET", "/v1/health", key=None).status == 200
        # An event with fields of its own: an unauthenticated call (ip, request_id).
        r = api.call("GET", "/v1/policy", key=world.secret("not-a-key-" + secrets.token_hex(8)))
        assert r.status == 401, r
        pid = int((directory / "daemon.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        assert harness.wait(timeout=30) == 0
    finally:
        if harness.poll() is None:
            harness.kill()
    assert not (directory / "daemon.exit").exists(), (directory / "daemon.exit").read_text()
    entries = [json.loads(l) for l in (directory / "journal.json").read_text().splitlines() if l.strip()]
    ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "pwresetd"]
    events = {e.get("PWRESETD_EVENT") for e in ours}
    assert {"daemon.starting", "daemon.ready", "http.unauthenticated", "daemon.stopped"} <= events, events
    ready = next(e for e in ours if e["PWRESETD_EVENT"] == "daemon.ready")
    assert ready["PRIORITY"] == "6" and ready["PWRESETD_STATUS"].startswith("serving on"), ready
    assert ready["MESSAGE"].startswith("level=info event=daemon.ready"), ready
    refused = next(e for e in ours if e["PWRESETD_EVENT"] == "http.unauthenticated")
    assert refused["PWRESETD_IP"] == "127.0.0.1" and refused["PWRESETD_REQUEST_ID"] == r.headers["x-request-id"]
    # Logged natively: nothing of it went to stderr.
    assert "event=daemon.ready" not in (directory / "stderr.log").read_text()
    leaks = find_leaks(world, [directory / "journal.json", directory / "stderr.log"])
    assert not leaks, "secrets in the journal:\n" + "\n".join(leaks)


NO_JOURNALD_HARNESS = r"""
set -eu
out=$1; shift
mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
JOURNAL_STREAM=$(stat -c '%d:%i' "$out/stderr.log") exec "$@" 2>>"$out/stderr.log"
"""


def test_journal_stream_without_journald_still_logs_to_stderr(binary, workdir, world, pki, keys, lab):
    """$JOURNAL_STREAM names stderr but journald's socket is not there (sd_journal_sendv(3)
    reports success then and would lose every line): the lines go to stderr."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    if not private_mounts_possible():
        pytest.skip("no private mount namespace here (/ is not a mount point: a chroot)")
    directory = workdir / "daemon-no-journald"
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    d.write(config_text(port, lab, keys))
    (directory / "stderr.log").write_text("")
    harness = subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c", NO_JOURNALD_HARNESS,
                                "harness", str(directory), str(binary), "-c", str(d.config)], cwd=directory)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while not port_accepts(port) and time.monotonic() < deadline:
            assert harness.poll() is None, (directory / "stderr.log").read_text()[-3000:]
            time.sleep(0.1)
        harness.send_signal(signal.SIGTERM)
        assert harness.wait(timeout=30) == 0
    finally:
        if harness.poll() is None:
            harness.kill()
    log = (directory / "stderr.log").read_text()
    assert "event=daemon.ready" in log and "event=daemon.stopped" in log, log[-2000:]
