"""14. Durability with SQLite: a `kill -9` while requests are in flight loses no failure that
was answered, and a code that was accepted before the crash is refused after the restart.
Every answer the daemon gives is committed first."""
import http.client
import threading

import pytest

from conftest import Api, World, assert_error, email_of, enroll, fresh_code, start_reset, wrong_code
from nodes import code_world, mail_factors, start_node

USER = "bob"
LIMIT = 40  # verify_failures for this daemon: high, so the crash lands mid-count


@pytest.fixture(scope="module")
def node(binary, workdir, world, pki, keys, lab, smtp_sink):
    with code_world(world):
        d, api = start_node(binary, workdir / "node-durable", world, pki, keys, lab,
                            factors=mail_factors(codes_per_hour=50), extra=smtp_sink.mail_block(),
                            verify_failures=LIMIT)
        try:
            yield d, api
        finally:
            d.kill()


def crash_and_restart(d, api: Api):
    d.proc.kill()  # SIGKILL: no drain, no destructor, no checkpoint
    d.proc.wait(timeout=10)
    d.start(api)


def test_answered_failures_survive_kill_9(node, world: World):
    d, api = node
    enroll(api, world, USER)
    rid = start_reset(api, USER).json["reset_id"]
    answered = []
    stop = threading.Event()
    errors = []

    def hammer():
        while not stop.is_set():
            try:
                r = api.call("POST", f"/v1/resets/{rid}/verify",
                             {"method": "totp", "code": wrong_code(world, USER)}, timeout=5)
            except (OSError, http.client.HTTPException):
                return  # the daemon died under us: this request has no answer
            if r.status == 401:
                answered.append(r)
            elif r.status != 423:
                errors.append(r)
                return

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    while len(answered) < LIMIT // 2 and not errors:
        threading.Event().wait(0.01)
    d.proc.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    acknowledged = len(answered)
    assert LIMIT // 2 <= acknowledged < LIMIT, acknowledged
    d.proc.wait(timeout=10)
    d.start(api)

    # Count what is left before the lockout: at most LIMIT - acknowledged failures.
    left = 0
    while True:
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": wrong_code(world, USER)})
        if r.status == 423:
            break
        assert_error(r, 401, "invalid_code")
        left += 1
        assert left <= LIMIT, "never locked"
    assert left + 1 <= LIMIT - acknowledged, (
        f"{acknowledged} failures were answered before the crash, but {left + 1} more were needed "
        f"to reach the limit of {LIMIT}: some answered failures were lost")


def test_accepted_codes_stay_used_after_kill_9(node, world: World, smtp_sink):
    d, api = node
    # Email: a consumed code stays consumed, and the flow keeps its verified method.
    rid = start_reset(api, "alice").json["reset_id"]
    mark = smtp_sink.count()
    assert api.call("POST", f"/v1/resets/{rid}/challenge", {"method": "email"}).status == 202
    code = smtp_sink.wait_code(world, after=mark, to=email_of("alice"))
    ok = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "email", "code": code})
    assert ok.status == 200 and ok.json["remaining_methods"] == 0, ok
    crash_and_restart(d, api)
    assert_error(api.call("POST", f"/v1/resets/{rid}/verify", {"method": "email", "code": code}), 401,
                 "invalid_code")
    # verified before the crash: complete gets as far as the policy (403 would mean it forgot)
    done = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret("short")})
    assert_error(done, 422, "password_rejected")

    # TOTP: the accepted step is remembered across the crash.
    enroll(api, world, "alice")
    first = start_reset(api, "alice").json["reset_id"]
    code, step = fresh_code(world, "alice")
    ok = api.call("POST", f"/v1/resets/{first}/verify", {"method": "totp", "code": code})
    assert ok.status == 200, ok
    world.last_step["alice"] = step
    crash_and_restart(d, api)
    second = start_reset(api, "alice").json["reset_id"]
    assert_error(api.call("POST", f"/v1/resets/{second}/verify", {"method": "totp", "code": code}), 401,
                 "invalid_code")
