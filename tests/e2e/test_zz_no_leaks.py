"""9. Secrets never leak into the log or the audit trail; contract checks gathered over the run.
Runs last (file order). The daemon fixture repeats the leak check after shutdown."""
import json
import re

from conftest import find_leaks


def test_secrets_not_in_log_or_audit(daemon, world):
    assert world.sensitive, "nothing recorded to look for"
    assert world.totp, "no TOTP secret recorded: did the flow tests run?"
    log = daemon.stderr()
    assert log.strip(), "the daemon logged nothing to stderr"
    leaks = find_leaks(world, [daemon.stderr_path, daemon.audit_path])
    assert not leaks, "secrets found:\n" + "\n".join(leaks)


def test_audit_is_json_lines_with_rfc3339_time(daemon):
    assert daemon.audit_path.exists(), f"no audit file at {daemon.audit_path}"
    lines = [l for l in daemon.audit_path.read_text().splitlines() if l.strip()]
    assert lines, "audit file is empty after a full run"
    for l in lines:
        rec = json.loads(l)
        assert isinstance(rec, dict), l
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec.get("time", "")), f"bad time: {l}"


def test_log_lines_are_key_value(daemon):
    bad = [l for l in daemon.stderr().splitlines() if l.strip() and "=" not in l]
    assert not bad, "stderr lines that are not key=value:\n" + "\n".join(bad[:10])


def test_every_response_had_no_store_and_json(daemon, world):
    assert world.replies >= 50, f"only {world.replies} responses seen: did the other tests run?"
    assert not world.violations, "responses breaking the transport contract:\n" + "\n".join(
        f"{w}: {p}" for w, p in world.violations[:40])
