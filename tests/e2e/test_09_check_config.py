"""10. --check-config: 0 for a good file, 1 with file:line:col for a bad one; --version."""
import re

from conftest import run


def check(binary, path):
    return run([str(binary), "--check-config", "-c", str(path)], timeout=30)


def test_good_config_passes(binary, daemon):
    r = check(binary, daemon.config)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"


def _bad(daemon, name, edits):
    lines = daemon.config.read_text().splitlines()
    for after, text in sorted(edits, reverse=True):  # insert bottom-up so line numbers hold
        lines.insert(after, text)
    bad = daemon.dir / name
    bad.write_text("\n".join(lines) + "\n")
    return bad, lines


def test_unknown_key_names_file_line_col(binary, daemon):
    lines = daemon.config.read_text().splitlines()
    at = lines.index("limits:") + 1  # new key becomes line at+1 (1-based), column 3
    bad, new = _bad(daemon, "bad-unknown-key.yaml", [(at, "  verify_failurez: 3")])
    assert new[at] == "  verify_failurez: 3"
    r = check(binary, bad)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    assert f"bad-unknown-key.yaml:{at + 1}:3" in r.stderr, f"no file:line:col ({at + 1}:3) in: {r.stderr}"
    assert "verify_failurez" in r.stderr, r.stderr


def test_every_error_reported(binary, daemon):
    lines = daemon.config.read_text().splitlines()
    at1 = lines.index("limits:") + 1
    at2 = len(lines)
    bad, new = _bad(daemon, "bad-two-keys.yaml", [(at1, "  verify_failurez: 3"), (at2, "colour: blue")])
    r = check(binary, bad)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    assert f"bad-two-keys.yaml:{at1 + 1}:3" in r.stderr, r.stderr
    line2 = new.index("colour: blue") + 1
    assert f"bad-two-keys.yaml:{line2}:1" in r.stderr, r.stderr


def test_missing_referenced_file_is_an_error(binary, daemon):
    text = daemon.config.read_text().replace("certificate: server.crt", "certificate: no-such.crt")
    bad = daemon.dir / "bad-missing-file.yaml"
    bad.write_text(text)
    r = check(binary, bad)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    assert re.search(r"bad-missing-file\.yaml:\d+:\d+", r.stderr), r.stderr


def test_missing_config_file_fails(binary, workdir):
    r = check(binary, workdir / "does-not-exist.yaml")
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"


def test_version(binary):
    r = run([str(binary), "--version"], timeout=10)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+\.\d+", r.stdout + r.stderr), r.stdout + r.stderr
