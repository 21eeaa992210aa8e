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


# ------------------------------------------------- problems after a torn line; empty; FIFOs
# (from the red-team report, operations 1: verify stopped at a torn line; an empty file was OK)
def chained(seq: int, prev: str, **fields) -> str:
    o = {"time": "2026-12-03T10:00:00.000Z", "seq": seq, "prev": prev}
    o.update(fields)
    return json.dumps(o, separators=(",", ":"))


def sha(line: str | bytes) -> str:
    return hashlib.sha256(line.encode() if isinstance(line, str) else line).hexdigest()


def torn_and_bridged() -> list[str]:
    """A trail with a torn line (line 3) and the daemon's incomplete_tail chain record after it."""
    lines = [chained(1, ZEROS, event="audit.chain", reason="new")]
    lines.append(chained(2, sha(lines[-1]), event="reset.started", username="alice"))
    torn = '{"time":"2026-12-03T10:00:00.0'
    lines.append(torn)
    lines.append(chained(1, sha(torn), event="audit.chain", reason="incomplete_tail", previous_file="audit.jsonl"))
    for i in range(2, 8):
        lines.append(chained(i, sha(lines[-1]), event="reset.completed", username=f"user{i}", outcome="password_reset"))
    return lines


def test_verify_after_a_bridged_torn_line_still_finds_and_names_later_tampering(binary, tmp_path):
    pwresetctl = binary.parent / "pwresetctl"
    lines = torn_and_bridged()
    intact = tmp_path / "intact.jsonl"
    intact.write_text("\n".join(lines) + "\n")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines[:5] + lines[7:]) + "\n")  # two records removed after the bridge
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join(lines[:6] + [lines[6].replace("user4", "userX")] + lines[7:]) + "\n")

    a = verify(pwresetctl, intact)
    assert a.returncode == 3, f"exit {a.returncode}: {a.stdout}{a.stderr}"
    assert a.stdout.startswith(f"{intact}:3: garbled: "), a.stdout
    assert f"bridged: {intact}:4, a chain record (incomplete_tail)" in a.stdout, a.stdout
    assert "BRIDGED: 1 line the daemon bridged with a chain record, no other problem (9 chained lines" in a.stdout

    ra = json.loads(verify(pwresetctl, intact, json_output=True).stdout)
    assert (ra["ok"], ra["line"], ra["problem"], ra["bridged"], ra["only_bridged"]) == (False, 3, "garbled", True, True), ra

    b = verify(pwresetctl, tampered)
    assert b.returncode == 1, f"exit {b.returncode}: {b.stdout}{b.stderr}"
    assert b.stdout.startswith(f"{tampered}:6: deleted: 2 lines deleted"), b.stdout
    rb = json.loads(verify(pwresetctl, tampered, json_output=True).stdout)
    assert (rb["line"], rb["problem"], rb["bridged"], rb["only_bridged"]) == (6, "deleted", False, False), rb
    assert [(p["line"], p["problem"], p["bridged"]) for p in rb["problems"]] == [(3, "garbled", True), (6, "deleted", False)]

    e = verify(pwresetctl, edited)
    assert e.returncode == 1, e.stdout
    assert e.stdout.startswith(f"{edited}:7: edited: "), e.stdout


def test_verify_of_an_empty_file_is_a_problem_not_ok(binary, tmp_path):
    pwresetctl = binary.parent / "pwresetctl"
    f = tmp_path / "audit.jsonl"
    f.write_bytes(b"")
    r = verify(pwresetctl, f)
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith(f"{f}: empty: no chain start"), r.stdout
    assert "intact" not in r.stdout
    j = json.loads(verify(pwresetctl, f, json_output=True).stdout)
    assert (j["ok"], j["problem"]) == (False, "empty"), j


def test_verify_refuses_a_fifo_and_a_device_at_once(binary, tmp_path):
    pwresetctl = binary.parent / "pwresetctl"
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        r = run([str(pwresetctl), "audit", "verify", str(path)], timeout=10)  # a hang raises here
        assert r.returncode == 2, f"{path}: exit {r.returncode}: {r.stdout}{r.stderr}"
        assert f"{path}: not a regular file" in r.stderr, r.stderr


def test_verify_takes_a_field_that_is_not_utf8_as_bytes(binary, tmp_path):
    """The daemon writes what Boost.JSON serializes, which copies bytes that are not UTF-8; the
    hash is over bytes, so such a line verifies, and an edit of those bytes is still found."""
    pwresetctl = binary.parent / "pwresetctl"
    first = chained(1, ZEROS, event="audit.chain", reason="new").encode()
    odd = (b'{"time":"2026-12-03T10:00:00.000Z","seq":2,"prev":"' + sha(first).encode()
           + b'","event":"reset.start","username":"caf\xe9\xff"}')
    last = chained(3, sha(odd), event="reset.complete").encode()
    good = tmp_path / "good.jsonl"
    good.write_bytes(first + b"\n" + odd + b"\n" + last + b"\n")
    r = verify(pwresetctl, good)
    assert r.returncode == 0 and r.stdout.startswith("OK: 3 lines"), r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(first + b"\n" + odd.replace(b"\xff", b"\xfe") + b"\n" + last + b"\n")
    r = verify(pwresetctl, bad)
    assert r.returncode == 1 and r.stdout.startswith(f"{bad}:2: edited: "), r.stdout
