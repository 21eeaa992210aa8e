"""18. The tamper-evident audit trail (issue #11 item 4): every line carries the SHA-256 of the
line before it (`prev`), and a rotated file is continued by a chain record in the new one.

A daemon of its own runs real password changes and a reset against the lab; its audit file is
rotated as logrotate does it (rename, then `create` a new empty file) between requests. Then
the real `pwresetctl audit verify` accepts both files, oldest first (exit 0), and refuses
copies with an edited, a deleted and a reordered line, and with a cut-off last line (exit 1,
naming the file and line). The hashes are also recomputed here, independently of the C++."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import Api, World, enroll, find_leaks, fresh_code, run, start_reset
from nodes import code_world, own_daemon

USER = "bob"  # the session's tests leave his account usable and track his password
CHANGE = "/v1/password/change"
ZEROS = "0" * 64


def new_password(world: World) -> str:
    return world.secret(f"Chain-{secrets.token_hex(6)}-Passw0rd-9!")  # no name parts


def change_password(api: Api, world: World):
    new = new_password(world)
    r = api.call("POST", CHANGE, {"username": USER, "current_password": world.passwords[USER],
                                  "new_password": new})
    assert r.status == 200 and r.json == {"status": "password_changed"}, r
    world.passwords[USER] = new


def reset_password(api: Api, world: World):
    r = start_reset(api, USER)
    assert r.status == 201, r
    rid = r.json["reset_id"]
    code, step = fresh_code(world, USER)
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    assert v.status == 200 and v.json["remaining_methods"] == 0, v
    world.last_step[USER] = step
    new = new_password(world)
    c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": new})
    assert c.status == 200 and c.json["status"] == "password_reset", c
    world.passwords[USER] = new


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path} does not end with a newline"
    return data[:-1].split(b"\n")


def write_lines(path: Path, lines: list[bytes]):
    path.write_bytes(b"".join(l + b"\n" for l in lines))


def verify(pwresetctl: Path, *files: Path, json_output: bool = False) -> subprocess.CompletedProcess:
    args = [str(pwresetctl), "audit", "verify"] + (["--json"] if json_output else []) + [str(f) for f in files]
    return run(args, timeout=30)


@pytest.fixture(scope="module")
def trail(binary, workdir, world, pki, keys, lab):
    """Runs the daemon, rotates its audit file mid-run; returns (rotated, current) paths."""
    directory = workdir / "audit-chain"
    with code_world(world):  # this daemon's TOTP enrollment is its own
        with own_daemon(binary, directory, world, pki, keys, lab) as (d, api):
            changer = Api(d.port, pki.ca, keys.changer, world)
            enroll(api, world, USER)
            change_password(changer, world)
            reset_password(api, world)
            # logrotate's default rotation: rename, then create the new file (create 0640)
            rotated = directory / "audit.jsonl.1"
            os.rename(d.audit_path, rotated)
            fd = os.open(d.audit_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            os.close(fd)
            change_password(changer, world)
            reset_password(api, world)
            change_password(changer, world)
        leaks = find_leaks(world, [rotated])
        assert not leaks, "secrets in the rotated audit file:\n" + "\n".join(leaks)
    return rotated, d.audit_path


def test_every_line_links_to_the_one_before_across_the_rotation(trail):
    rotated, current = trail
    old, new = lines_of(rotated), lines_of(current)
    records = [json.loads(l) for l in old + new]
    assert records[0]["event"] == "audit.chain" and records[0]["prev"] == ZEROS, records[0]
    first_new = json.loads(new[0])
    assert first_new["event"] == "audit.chain" and first_new["reason"] == "rotated", first_new
    assert first_new["previous_file"] == str(rotated), first_new
    assert first_new["prev"] == hashlib.sha256(old[-1]).hexdigest(), "the new file does not link to the old one"
    both = old + new
    for i in range(1, len(both)):
        assert records[i]["prev"] == hashlib.sha256(both[i - 1]).hexdigest(), f"line {i + 1} of the trail"
        assert records[i]["seq"] == records[i - 1]["seq"] + 1, f"seq at line {i + 1}"
    events = [r["event"] for r in records]
    # both files hold real work: a change before the rotation and after it
    assert "password.change" in [json.loads(l)["event"] for l in old], events
    assert "password.change" in [json.loads(l)["event"] for l in new], events
    assert "reset.complete" in events, events


def test_verify_accepts_the_rotated_trail(trail, binary):
    rotated, current = trail
    pwresetctl = binary.parent / "pwresetctl"
    total = len(lines_of(rotated)) + len(lines_of(current))
    r = verify(pwresetctl, rotated, current)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert r.stdout.startswith(f"OK: {total} lines in 2 files"), r.stdout
    j = verify(pwresetctl, rotated, current, json_output=True)
    assert j.returncode == 0, j.stdout + j.stderr
    out = json.loads(j.stdout)
    assert out["ok"] is True and out["lines"] == total and out["trail_begins"] is True, out
    assert out["last_hash"] == hashlib.sha256(lines_of(current)[-1]).hexdigest(), out
    # one file alone is accepted too
    assert verify(pwresetctl, current).returncode == 0
    # the files the wrong way round are not one trail
    swapped = verify(pwresetctl, current, rotated)
    assert swapped.returncode == 1, swapped.stdout
    assert swapped.stdout.startswith(f"{rotated}:1: "), swapped.stdout


@pytest.mark.parametrize("damage, kind", [("edit", "edited"), ("delete", "deleted"), ("swap", "reordered")])
@pytest.mark.parametrize("which", ["rotated", "current"])
def test_verify_names_the_damaged_line(trail, binary, tmp_path, damage, kind, which):
    rotated, current = trail
    pwresetctl = binary.parent / "pwresetctl"
    copies = [tmp_path / rotated.name, tmp_path / current.name]
    old, new = lines_of(rotated), lines_of(current)
    lines = list(old if which == "rotated" else new)
    assert len(lines) >= 4, f"too few lines to damage: {lines}"
    k = 2  # 0-based: the third line, an event with lines after it
    if damage == "edit":
        record = json.loads(lines[k])
        record["ip"] = "192.0.2.66"  # same keys, one value changed
        lines[k] = json.dumps(record, separators=(",", ":")).encode()
    elif damage == "delete":
        del lines[k]
    else:
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
    write_lines(copies[0], lines if which == "rotated" else old)
    write_lines(copies[1], lines if which == "current" else new)
    damaged = copies[0] if which == "rotated" else copies[1]

    r = verify(pwresetctl, *copies)
    assert r.returncode == 1, f"exit {r.returncode} for a {damage}d line: {r.stdout}{r.stderr}"
    assert r.stdout.startswith(f"{damaged}:{k + 1}: {kind}: "), r.stdout
    j = verify(pwresetctl, *copies, json_output=True)
    assert j.returncode == 1
    out = json.loads(j.stdout)
    assert (out["ok"], out["file"], out["line"], out["problem"]) == (False, str(damaged), k + 1, kind), out


def test_verify_reports_a_cut_off_last_line_and_unreadable_files(trail, binary, tmp_path):
    rotated, current = trail
    pwresetctl = binary.parent / "pwresetctl"
    cut = tmp_path / "audit.jsonl"
    data = current.read_bytes()
    cut.write_bytes(data[:-15])
    r = verify(pwresetctl, rotated, cut)
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith(f"{cut}:{len(lines_of(current))}: truncated: "), r.stdout
    missing = verify(pwresetctl, rotated, tmp_path / "no-such-file")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert verify(pwresetctl).returncode == 2  # no FILE: usage
