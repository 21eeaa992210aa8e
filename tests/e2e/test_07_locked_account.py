"""7. A locked directory account cannot enroll (enrollment binds with the current password);
once enrolled, a reset unlocks the account (unlock_on_reset: true).

The OpenLDAP lab starts with carol locked, the Samba lab does not: both are brought to the
same state here (bad binds lock in both labs), so the test does not depend on the order."""
from conftest import Api, World, assert_error, directory_lock, directory_unlock, fresh_code, ldap_binds, \
    start_reset

# no username or display-name part: AD complexity refuses those
CAROL_NEW = "Birch-Lantern-Passw0rd-42!"


def test_locked_carol_cannot_enroll(api: Api, world: World, lab):
    directory_lock(lab, world, "carol")
    assert not ldap_binds(lab, "carol", world.passwords["carol"]), "precondition: carol should be locked"
    r = api.call("POST", "/v1/enrollments/totp", {"username": "carol", "current_password": world.passwords["carol"]})
    assert_error(r, 401, "invalid_credentials")


def test_reset_unlocks_a_locked_account(api: Api, world: World, lab):
    world.secret(CAROL_NEW)
    # an operator unlocks carol so she can enroll ...
    directory_unlock(lab, "carol")
    assert ldap_binds(lab, "carol", world.passwords["carol"]), "carol does not bind after the operator's unlock"

    # enrollment, with a check on the way: an unconfirmed enrollment is never used for resets
    e = api.call("POST", "/v1/enrollments/totp", {"username": "carol", "current_password": world.passwords["carol"]})
    assert e.status == 201, e
    world.totp["carol"] = world.secret(e.json["secret"])
    code, step = fresh_code(world, "carol")
    early = start_reset(api, "carol")
    assert early.status == 201, early
    v = api.call("POST", f"/v1/resets/{early.json['reset_id']}/verify", {"method": "totp", "code": code})
    assert_error(v, 401, "invalid_code")  # would be 200 if the unconfirmed secret counted
    c = api.call("POST", f"/v1/enrollments/totp/{e.json['enrollment_id']}/confirm", {"code": code})
    assert c.status == 200 and c.json.get("status") == "enrolled", c
    world.last_step["carol"] = step

    # a confirmed enrollment id cannot be confirmed again
    again = api.call("POST", f"/v1/enrollments/totp/{e.json['enrollment_id']}/confirm", {"code": code})
    assert again.status in (401, 410), again
    # ... then she locks herself out with bad binds (3 in both labs)
    directory_lock(lab, world, "carol", wrong="Carol-Wrong-Passw0rd-1")

    r = start_reset(api, "carol")
    assert r.status == 201, r
    rid = r.json["reset_id"]
    code, step = fresh_code(world, "carol")
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    assert v.status == 200 and v.json == {"verified_methods": ["totp"], "remaining_methods": 0}, v
    world.last_step["carol"] = step
    c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": CAROL_NEW})
    assert c.status == 200 and c.json == {"status": "password_reset", "unlocked": True}, c
    world.passwords["carol"] = CAROL_NEW
    assert ldap_binds(lab, "carol", CAROL_NEW), "carol's new password does not bind (still locked?)"
