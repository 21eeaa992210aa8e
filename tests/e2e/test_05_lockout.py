"""5. verify_failures wrong codes lock the user's flows (423), even for a correct code; the
directory account itself is never locked by the daemon."""
from conftest import LOCKOUT_S, VERIFY_FAILURES, Api, World, assert_error, enroll, fresh_code, ldap_binds, \
    start_reset, wrong_code


def test_lockout_after_failures(api: Api, world: World, lab):
    enroll(api, world, "bob")
    r = start_reset(api, "bob")
    assert r.status == 201, r
    rid = r.json["reset_id"]
    verify = f"/v1/resets/{rid}/verify"

    for i in range(1, VERIFY_FAILURES):
        v = api.call("POST", verify, {"method": "totp", "code": wrong_code(world, "bob")})
        assert_error(v, 401, "invalid_code")

    third = api.call("POST", verify, {"method": "totp", "code": wrong_code(world, "bob")})
    assert_error(third, 423, "locked")
    ra = third.json.get("retry_after")
    assert isinstance(ra, int) and 0 < ra <= LOCKOUT_S, f"retry_after {ra!r}:{third}"

    code, step = fresh_code(world, "bob")  # a code the daemon would otherwise accept
    right = api.call("POST", verify, {"method": "totp", "code": code})
    if right.status == 200:
        world.last_step["bob"] = step
    assert_error(right, 423, "locked")
    assert 0 < right.json.get("retry_after", 0) <= LOCKOUT_S, right

    # per user: a new flow for bob is locked too, and its start looks normal (no oracle)
    again = start_reset(api, "bob")
    assert again.status == 201 and set(again.json) == set(r.json), again
    v = api.call("POST", f"/v1/resets/{again.json['reset_id']}/verify", {"method": "totp", "code": code})
    if v.status == 200:
        world.last_step["bob"] = step
    assert_error(v, 423, "locked")

    # complete is still refused on the locked flow
    c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret("Bob-New-Passw0rd-42!")})
    assert c.status in (403, 423), c

    # the daemon never locks the directory account
    assert ldap_binds(lab, "bob", world.passwords["bob"]), "bob's directory account no longer binds"
