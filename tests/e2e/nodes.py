"""Helpers for the e2e modules that run their own pwresetd processes (code factors, several
nodes on one Redis, kill -9 durability): a private redis-server, the factors block with email
and SMS, and a way to keep those daemons' TOTP enrollments out of the session's records."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (TOTP_PERIOD, Api, Daemon, World, config_text, find_leaks, free_port, start_daemon,
                      write_policy_lists)


class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence, in its own folder,
    with maxmemory-policy noeviction (the daemon refuses any other)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not installed (scripts/install-deps installs it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "redis.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--dir", str(self.dir), "--maxmemory-policy", "noeviction", "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited with {self.proc.returncode}: "
                            f"{(self.dir / 'redis.log').read_text()[-2000:]}")
            if self.ping():
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail("redis-server did not answer PING within 10 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def mail_factors(codes_per_hour: int = 5, required: int = 1, sms: str | None = None,
                 two_methods_groups: str | None = None, totp_when_enrolled: bool = True,
                 skew_steps: int = 1) -> str:
    """A factors block with totp and email (and sms when given its block's body)."""
    text = f"""\
factors:
  required: {required}
  totp_when_enrolled: {"true" if totp_when_enrolled else "false"}
  codes_per_destination_per_hour: {codes_per_hour}
"""
    if two_methods_groups:
        text += f'  two_methods_groups: ["{two_methods_groups}"]\n'
    text += f"""\
  totp:
    enabled: true
    issuer: "Example"
    period: {TOTP_PERIOD}
    skew_steps: {skew_steps}
  email:
    enabled: true
    code_ttl_s: 600
"""
    if sms:
        text += "  sms:\n" + "".join(f"    {line}\n" for line in sms.strip().splitlines())
    return text


@contextlib.contextmanager
def code_world(world: World):
    """These daemons keep their own enrollments: set the session's TOTP records aside while
    they run and put them back after, so later session tests still find theirs."""
    saved = (dict(world.totp), dict(world.last_step), dict(world.recovery))
    world.totp.clear()
    world.last_step.clear()
    world.recovery.clear()
    try:
        yield
    finally:
        for target, old in zip((world.totp, world.last_step, world.recovery), saved):
            target.clear()
            target.update(old)


def start_node(binary, directory: Path, world: World, pki, keys, lab, key: bytes | None = None,
               **config) -> tuple[Daemon, Api]:
    """A pwresetd of its own; `key` is written as secrets.key_file (nodes sharing state must
    share it)."""
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    if key is not None:
        key_file = directory / "secret.key"
        key_file.write_bytes(key)
        os.chmod(key_file, 0o600)
    d.write(config_text(port, lab, keys, **config))
    api = Api(port, pki.ca, keys.portal, world)
    d.start(api)
    return d, api


@contextlib.contextmanager
def own_daemon(binary, directory: Path, world: World, pki, keys, lab, **config):
    """start_daemon for one module or test. On the way out it must exit 0 on SIGTERM (when it
    was still running: a test that crashed it has already failed) and have no secret in its
    log or audit trail."""
    d, api = start_daemon(binary, directory, world, pki, keys, lab, **config)
    try:
        yield d, api
    finally:
        running = d.alive()
        code = d.stop()
    assert not running or code == 0, f"pwresetd exited with {code} after SIGTERM; stderr:\n{d.stderr()[-3000:]}"
    leaks = find_leaks(world, [d.stderr_path, d.audit_path])
    assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)
