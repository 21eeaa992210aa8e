"""6. Unknown, disabled and protected users get a decoy flow with the same shape as a real one,
which can never verify nor complete."""
import pytest

from conftest import BASE64URL, LAB, Api, World, assert_error, ensure_enrolled, ldap_binds, start_reset, wrong_code

# erin: member of the protected group (OpenLDAP directly, Samba nested via helpdesk-admins);
# frank (Samba only): adminCount=1, protected by protect_admin_count.
PROTECTED = list(LAB.protected)


def shape(j: dict) -> dict:
    return {k: type(v).__name__ for k, v in j.items()}


@pytest.fixture(scope="module")
def real_start(api: Api, world: World) -> dict:
    ensure_enrolled(api, world, "alice")
    r = start_reset(api, "alice")
    assert r.status == 201, r
    return r.json


@pytest.mark.parametrize("user", ["nosuchuser", "Zelda.Unknown", "dave", *PROTECTED, "carol-not-really"])
def test_decoy_start_looks_real(api: Api, real_start: dict, user):
    r = start_reset(api, user)
    assert r.status == 201, r
    assert shape(r.json) == shape(real_start), f"decoy shape differs from alice's {real_start}:{r}"
    assert r.json["methods"] == real_start["methods"], r
    assert r.json["required_methods"] == real_start["required_methods"], r
    assert r.json["expires_in"] == real_start["expires_in"], r
    rid = r.json["reset_id"]
    assert BASE64URL.match(rid) and len(rid) == len(real_start["reset_id"]), f"reset_id differs in form:{r}"
    assert rid != real_start["reset_id"]


@pytest.mark.parametrize("user", ["nosuchuser", "dave", *PROTECTED])
def test_decoy_never_verifies_nor_completes(api: Api, world: World, user):
    r = start_reset(api, user)
    assert r.status == 201, r
    rid = r.json["reset_id"]
    for code in (wrong_code(world), "000000"):
        world.codes.add(code)
        v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
        assert_error(v, 401, "invalid_code")
    c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret("Decoy-Strong-Passw0rd-9")})
    assert_error(c, 403, "verification_required")
    assert c.json.get("remaining_methods") == 1, c


@pytest.mark.parametrize("user", ["dave", *PROTECTED, "nosuchuser"])
def test_disabled_protected_unknown_cannot_enroll(api: Api, world: World, user):
    pw = world.passwords.get(user, "Nobody-Passw0rd-123!")
    r = api.call("POST", "/v1/enrollments/totp", {"username": user, "current_password": pw})
    assert_error(r, 401, "invalid_credentials")


def test_wrong_password_cannot_enroll(api: Api, world: World, lab):
    r = api.call("POST", "/v1/enrollments/totp", {"username": "bob", "current_password": world.secret("Not-Bobs-Passw0rd-1")})
    assert_error(r, 401, "invalid_credentials")
    # a right bind clears the directory's bad-bind count, so later tests start from zero
    assert ldap_binds(lab, "bob", world.passwords["bob"]), "bob no longer binds"
