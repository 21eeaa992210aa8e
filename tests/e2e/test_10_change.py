"""10. Self-service change (API.md "Change", scope `change`): the user knows the current password.

  200 {"status": "password_changed"} | 401 invalid_credentials (also unknown, disabled,
  protected) | 422 password_rejected | 423 locked (the daemon's own limit, or locked in the
  directory: then the message points to the reset flow).

Users: bob changes (his password is kept in world.passwords, so the other modules still know
it); alice runs into the daemon's failure limit (her password-failure count stays locked; it
counts enrollment's wrong passwords too, so the test first clears it with a change, and no
later test of the session daemon enrolls or changes for alice); carol is locked in the directory
(made so here when she is not); dave (disabled), erin (protected; on Samba also frank,
adminCount=1) are only ever refused. Every test stands alone.

Both labs lock an account after 3 bad binds and the daemon's limit is 3 too, so wherever a
test makes a bind fail (through the daemon or directly), a right bind follows to clear the
directory's count: a 423 here must come from the daemon, never from the directory by accident.
"""
import secrets

import pytest

from conftest import (KIND, LAB, LOCKOUT_S, VERIFY_FAILURES, Api, World, assert_error, directory_lock,
                      ldap_binds, password_stamp)
from nodes import own_daemon

CHANGE = "/v1/password/change"

# Never containing a username or display-name part (AD complexity refuses those), never used
# elsewhere in the suite.
BOB_FIRST = "Quartz-Meadow-Passw0rd-51!"
BOB_SECOND = "Cobalt-Willow-Passw0rd-73!"
UNUSED = "Never-Accepted-Passw0rd-88!"
SHORT = "Sh0rt-Pw!"  # 9 characters: under both labs' minimum (OpenLDAP 12, Samba 10)
LOWERCASE_ONLY = "onlylowercaselettershereandlong"  # long enough, one character class
WRONG = "Wrong-Current-Passw0rd-1"

RULE_CODES = {"min_length", "max_length", "character_classes", "contains_username", "contains_name",
              "banned", "breached", "complexity", "history", "too_young", "directory_policy"}


@pytest.fixture(autouse=True)
def _sensitive(world: World):
    for pw in (BOB_FIRST, BOB_SECOND, UNUSED, SHORT, LOWERCASE_ONLY, WRONG):
        world.secret(pw)


def change(api: Api, user: str, current: str, new: str, **kw):
    return api.call("POST", CHANGE, {"username": user, "current_password": current, "new_password": new}, **kw)


def assert_changed(r):
    assert r.status == 200 and r.json == {"status": "password_changed"}, f"expected 200 password_changed:{r}"


def assert_rejected(r, rule: str):
    assert_error(r, 422, "password_rejected")
    violations = r.json.get("violations")
    assert isinstance(violations, list) and violations, f"422 without violations:{r}"
    for v in violations:
        assert isinstance(v, dict) and v.get("rule") in RULE_CODES, f"unknown rule in {v}:{r}"
        assert isinstance(v.get("message"), str) and v["message"], f"violation without a message {v}:{r}"
    assert rule in [v["rule"] for v in violations], f"expected rule {rule!r}:{r}"


def assert_password(lab, user: str, current: str, refused=()):
    """`current` binds as `user`, none of `refused` does. The failing binds go first: the right
    one then clears the directory's bad-bind count."""
    for pw in refused:
        assert not ldap_binds(lab, user, pw), f"{user}: a password that must not work binds"
    assert ldap_binds(lab, user, current), f"{user}: the current password does not bind"


def do_change(change_api: Api, world: World, lab, user: str, new: str | None = None):
    """A change that must succeed (to `new`, or a fresh password); world.passwords follows it.
    A success also clears the daemon's failure count for the user."""
    new = new or world.secret(f"Fresh-{secrets.token_hex(6)}-Passw0rd-7!")  # no name parts
    old = world.passwords[user]
    assert_changed(change(change_api, user, old, new))
    world.passwords[user] = new
    assert_password(lab, user, new, refused=[old])


# --------------------------------------------------------------------------- success
def test_change_with_right_password(change_api: Api, world: World, lab):
    old = world.passwords["bob"]
    r = change(change_api, "bob", old, BOB_FIRST)
    assert_changed(r)
    world.passwords["bob"] = BOB_FIRST
    assert not ldap_binds(lab, "bob", old), "the old password still binds after a change"
    assert ldap_binds(lab, "bob", BOB_FIRST), "the new password does not bind after a change"


def test_reuse_of_a_previous_password_is_history(change_api: Api, world: World, lab):
    before = world.passwords["bob"]
    do_change(change_api, world, lab, "bob", BOB_SECOND if before != BOB_SECOND else BOB_FIRST)
    now = world.passwords["bob"]
    r = change(change_api, "bob", now, before)  # back to the one he had just before
    assert_rejected(r, "history")
    assert_password(lab, "bob", now, refused=[before])


def test_new_equal_to_current_is_history(change_api: Api, world: World, lab):
    cur = world.passwords["bob"]
    r = change(change_api, "bob", cur, cur)
    assert_rejected(r, "history")
    assert_password(lab, "bob", cur)


# --------------------------------------------------------------------------- refused by policy
def test_too_short_is_422_min_length_and_nothing_changed(change_api: Api, world: World, lab):
    cur = world.passwords["bob"]
    stamp = password_stamp(lab, "bob")
    r = change(change_api, "bob", cur, SHORT)
    assert_rejected(r, "min_length")
    assert password_stamp(lab, "bob") == stamp, "bob's password was written despite the 422"
    assert_password(lab, "bob", cur, refused=[SHORT])


@pytest.mark.skipif(KIND != "samba", reason="the OpenLDAP lab has no quality module (pwdCheckModule): "
                                            "complexity is an AD rule")
def test_all_lowercase_is_422_complexity(change_api: Api, world: World, lab):
    cur = world.passwords["bob"]
    r = change(change_api, "bob", cur, LOWERCASE_ONLY)
    assert_rejected(r, "complexity")
    assert_password(lab, "bob", cur, refused=[LOWERCASE_ONLY])


# --------------------------------------------------------------------------- refused: credentials
def test_wrong_current_is_401_and_nothing_changed(change_api: Api, world: World, lab):
    cur = world.passwords["bob"]
    stamp = password_stamp(lab, "bob")
    r = change(change_api, "bob", WRONG, UNUSED)
    assert_error(r, 401, "invalid_credentials")
    assert set(r.json) == {"error", "message"}, f"unexpected fields in the 401:{r}"
    assert password_stamp(lab, "bob") == stamp, "bob's password was written despite the 401"
    assert_password(lab, "bob", cur, refused=[UNUSED])
    do_change(change_api, world, lab, "bob")  # clears the daemon's count for bob


def test_unknown_user_is_401_like_a_wrong_password(change_api: Api, world: World, lab):
    ref = change(change_api, "bob", WRONG, UNUSED)
    assert_password(lab, "bob", world.passwords["bob"])  # clears the directory's count
    assert_error(ref, 401, "invalid_credentials")
    for user in ("nosuchuser", "Zelda.Unknown", "bob*", "bob)(uid=*"):
        r = change(change_api, user, WRONG, UNUSED)
        assert_error(r, 401, "invalid_credentials")
        assert r.json == ref.json, f"unknown {user!r} answers unlike a wrong password ({ref.json}):{r}"
        assert r.headers.get("content-type") == ref.headers.get("content-type"), r
    do_change(change_api, world, lab, "bob")  # clears the daemon's count for bob


@pytest.mark.parametrize("user", ["dave", *LAB.protected])
def test_disabled_or_protected_is_401_and_unchanged(change_api: Api, world: World, lab, user):
    """Even with the right current password: dave is disabled, erin (and frank on AD) protected."""
    cur = world.passwords[user]
    stamp = password_stamp(lab, user)
    r = change(change_api, user, cur, UNUSED)
    assert_error(r, 401, "invalid_credentials")
    assert set(r.json) == {"error", "message"}, f"unexpected fields in the 401:{r}"
    assert password_stamp(lab, user) == stamp, f"{user}'s password was written"
    if user != "dave":  # dave cannot bind at all (disabled)
        assert_password(lab, user, cur, refused=[UNUSED])


# --------------------------------------------------------------------------- 423
def test_daemon_failure_limit_is_423_even_for_the_right_password(change_api: Api, world: World, lab):
    # a success clears the daemon's count (earlier modules' wrong enrollment passwords count too)
    assert ldap_binds(lab, "alice", world.passwords["alice"]), "precondition: alice binds (clears the bad binds)"
    do_change(change_api, world, lab, "alice")
    cur = world.passwords["alice"]
    stamp = password_stamp(lab, "alice")
    for i in range(1, VERIFY_FAILURES):
        r = change(change_api, "alice", WRONG, UNUSED)
        assert_error(r, 401, "invalid_credentials")
    # clear the directory's count: the next 423 is the daemon's limit alone
    assert ldap_binds(lab, "alice", cur), "alice was locked in the directory by the wrong tries"
    last = change(change_api, "alice", WRONG, UNUSED)
    assert_error(last, 423, "locked")
    right = change(change_api, "alice", cur, UNUSED)
    assert_error(right, 423, "locked")
    for r in (last, right):
        ra = r.json.get("retry_after")
        assert ra is None or (isinstance(ra, int) and 0 < ra <= LOCKOUT_S), f"retry_after {ra!r}:{r}"
    assert password_stamp(lab, "alice") == stamp, "alice's password was written while locked"
    # the daemon's lock is its own: the directory account still works with the old password
    assert_password(lab, "alice", cur, refused=[UNUSED])


def test_locked_in_directory_is_401_until_the_daemons_limit_which_points_to_reset(
        binary, workdir, world: World, pki, keys, lab):
    """A directory says "locked" whatever the password (ppolicy: 49 + accountLocked for the
    right and a wrong one; AD: data 775), so the current password is never proven: carol's
    right password answers 401 like any wrong one, and counts. The daemon's own 423 then
    points to the reset flow, in en and sv. Its own daemon: carol's count stays there."""
    directory_lock(lab, world, "carol")  # locked from the start in the OpenLDAP lab only
    stamp = password_stamp(lab, "carol")
    with own_daemon(binary, workdir / "change-locked-carol", world, pki, keys, lab) as (d, _):
        api = Api(d.port, pki.ca, keys.changer, world)
        for _ in range(1, VERIFY_FAILURES):
            r = change(api, "carol", world.passwords["carol"], UNUSED)
            assert_error(r, 401, "invalid_credentials")
            assert set(r.json) == {"error", "message"}, f"the 401 says more than a wrong password:{r}"
        r = change(api, "carol", world.passwords["carol"], UNUSED)
        assert_error(r, 423, "locked")
        assert "reset" in r.json["message"].lower(), f"the message does not point to the reset flow:{r}"
        sv = change(api, "carol", world.passwords["carol"], UNUSED, headers={"Accept-Language": "sv-SE"})
        assert_error(sv, 423, "locked")
        assert sv.json["message"] != r.json["message"] and "återställ" in sv.json["message"].lower(), \
            f"no Swedish message pointing to the reset:{sv}"
    assert password_stamp(lab, "carol") == stamp, "carol's password was written while locked"
    assert not ldap_binds(lab, "carol", UNUSED)
    # carol stays locked (test_07 expects or makes her so)


# --------------------------------------------------------------------------- request errors
@pytest.mark.parametrize("body", [
    {},
    {"username": "bob"},
    {"username": "bob", "current_password": "x"},
    {"username": "bob", "new_password": "Another-Strong-Passw0rd-7"},
    {"current_password": "x", "new_password": "Another-Strong-Passw0rd-7"},
    {"username": "bob", "current_password": 5, "new_password": "Another-Strong-Passw0rd-7"},
    {"username": "bob", "current_password": "x", "new_password": None},
    {"username": ["bob"], "current_password": "x", "new_password": "Another-Strong-Passw0rd-7"},
    {"username": "", "current_password": "x", "new_password": "Another-Strong-Passw0rd-7"},
    ["bob", "x", "y"],
])
def test_missing_or_invalid_fields_are_400(change_api: Api, body):
    assert_error(change_api.call("POST", CHANGE, body), 400, "bad_request")


def test_malformed_json_is_400(change_api: Api):
    assert_error(change_api.call("POST", CHANGE, raw_body=b'{"username": "bob",'), 400, "bad_request")


def test_wrong_content_type_is_415(change_api: Api):
    r = change_api.call("POST", CHANGE, {"username": "bob", "current_password": "x", "new_password": "y"},
                        content_type="text/plain")
    assert_error(r, 415, "unsupported_media_type")


# --------------------------------------------------------------------------- client scopes
def test_without_key_is_401(change_api: Api):
    r = change(change_api, "bob", WRONG, UNUSED, key=None)
    assert_error(r, 401, "unauthenticated")


def test_clients_without_scope_change_get_403(api: Api, checker_api: Api, world: World):
    """The portal (reset, enroll) and the checker (check) may not change, even with the right
    password; nothing is tried against the directory."""
    for client in (api, checker_api):
        r = change(client, "bob", world.passwords["bob"], UNUSED)
        assert_error(r, 403, "forbidden")


def test_change_scope_cannot_reset_or_enroll(change_api: Api, world: World):
    assert_error(change_api.call("POST", "/v1/resets", {"username": "bob"}), 403, "forbidden")
    r = change_api.call("POST", "/v1/enrollments/totp", {"username": "bob", "current_password": world.passwords["bob"]})
    assert_error(r, 403, "forbidden")
