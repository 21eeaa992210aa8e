"""20. Unlock without reset (POST /v1/resets/{id}/unlock): after the flow is verified as a
complete would need, the directory lockout is cleared and the password is left alone: the
locked account binds again with its OLD password, and the password attributes (hash and
pwdChangedTime on OpenLDAP, pwdLastSet on AD) have not changed. Unverified and decoy flows
get the same 403; a flow acts once, whether unlocked or completed; unlock_on_reset: false
refuses with 403 unlock_disabled.

The module runs its own daemon (fresh state): earlier modules leave the session daemon's
verification lockouts on the demo users."""
import pytest

from conftest import (Api, World, assert_error, directory_lock, ensure_directory_unlocked, ensure_enrolled,
                      fresh_code, ldap_binds, password_stamp, raw_json_request, send_together, start_reset)
from nodes import code_world, own_daemon

USER = "bob"
# passes both labs' policies (no username part, complexity, length)
NEW_PASSWORD = "Copper-Meadow-Passw0rd-58!"


@pytest.fixture(scope="module")
def node(binary, workdir, world, pki, keys, lab):
    ensure_directory_unlocked(lab, world, USER)
    with code_world(world), own_daemon(binary, workdir / "unlock-node", world, pki, keys, lab) as (d, api):
        yield d, api


def verified_flow(api: Api, world: World, user: str) -> str:
    r = start_reset(api, user)
    assert r.status == 201, r
    rid = r.json["reset_id"]
    code, step = fresh_code(world, user)
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    assert v.status == 200 and v.json["remaining_methods"] == 0, v
    world.last_step[user] = step
    return rid


def test_unlock_keeps_the_old_password(node, world: World, lab):
    daemon, api = node
    ensure_enrolled(api, world, USER)
    directory_lock(lab, world, USER)
    before = password_stamp(lab, USER)

    r = start_reset(api, USER)
    assert r.status == 201, r
    early = api.call("POST", f"/v1/resets/{r.json['reset_id']}/unlock", {})
    assert_error(early, 403, "verification_required")
    assert early.json["remaining_methods"] == 1, early
    assert not ldap_binds(lab, USER, world.passwords[USER]), "an unverified unlock unlocked"

    rid = verified_flow(api, world, USER)
    u = api.call("POST", f"/v1/resets/{rid}/unlock", {})
    assert u.status == 200 and u.json == {"status": "unlocked"}, u
    assert password_stamp(lab, USER) == before, "the unlock wrote the password"
    assert ldap_binds(lab, USER, world.passwords[USER]), f"{USER} does not bind with the old password"

    # the flow is closed, for unlock and complete alike
    assert_error(api.call("POST", f"/v1/resets/{rid}/unlock", {}), 410, "reset_expired")
    assert_error(api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": NEW_PASSWORD}), 410,
                 "reset_expired")
    assert password_stamp(lab, USER) == before
    records = [a for a in daemon.audit("reset.unlock") if a.get("username") == USER]
    assert records and records[-1]["outcome"] == "unlocked" and records[-1]["was_locked"] is True, records


def test_decoy_and_unverified_flows_answer_alike(node, world: World):
    _, api = node
    ensure_enrolled(api, world, USER)
    replies = []
    for name in (USER, "nobody-here-at-all", "dave"):  # enrolled, unknown, disabled
        r = start_reset(api, name)
        assert r.status == 201, r
        u = api.call("POST", f"/v1/resets/{r.json['reset_id']}/unlock", {})
        assert_error(u, 403, "verification_required")
        replies.append((u.status, tuple(sorted(u.json)), u.json["remaining_methods"], u.json["message"]))
    assert len(set(replies)) == 1, replies
    assert_error(api.call("POST", "/v1/resets/" + "A" * 43 + "/unlock", {}), 410, "reset_expired")
    bad = api.call("POST", f"/v1/resets/{'A' * 43}/unlock", raw_body=b"[]")
    assert_error(bad, 400, "bad_request")


def test_concurrent_unlock_and_complete_act_once(node, world: World, lab):
    _, api = node
    ensure_enrolled(api, world, USER)
    world.secret(NEW_PASSWORD)
    directory_lock(lab, world, USER)
    before = password_stamp(lab, USER)
    rid = verified_flow(api, world, USER)
    requests = []
    for i in range(6):
        if i % 2 == 0:
            requests.append(raw_json_request("POST", f"/v1/resets/{rid}/unlock", {}, api.key))
        else:
            requests.append(raw_json_request("POST", f"/v1/resets/{rid}/complete",
                                             {"new_password": NEW_PASSWORD}, api.key))
    replies = send_together(api.port, api.ca, requests)
    statuses = sorted(r.status for r in replies)
    assert statuses == [200] + [410] * 5, replies
    winner = next(r for r in replies if r.status == 200)
    if winner.json.get("status") == "password_reset":
        world.passwords[USER] = NEW_PASSWORD
        assert password_stamp(lab, USER) != before
    else:
        assert winner.json == {"status": "unlocked"}, winner
        assert password_stamp(lab, USER) == before
    assert ldap_binds(lab, USER, world.passwords[USER]), f"{USER} does not bind after the one action"
    for r in replies:
        if r.status == 410:
            assert r.json.get("error") == "reset_expired", r


def test_unlock_disabled(binary, workdir, world, pki, keys, lab):
    with own_daemon(binary, workdir / "unlock-off", world, pki, keys, lab, unlock_on_reset=False) as (d, api):
        for name in (USER, "nobody-here-at-all"):
            r = start_reset(api, name)
            assert r.status == 201, r
            u = api.call("POST", f"/v1/resets/{r.json['reset_id']}/unlock", {})
            assert_error(u, 403, "unlock_disabled")
        sv = api.call("POST", f"/v1/resets/{r.json['reset_id']}/unlock", {}, headers={"Accept-Language": "sv"})
        assert_error(sv, 403, "unlock_disabled")
        assert sv.json["message"] != u.json["message"], (sv, u)
    ensure_directory_unlocked(lab, world, USER)
