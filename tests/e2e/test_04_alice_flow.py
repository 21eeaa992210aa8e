"""4. The whole reset flow for alice, step by step (the steps share state, in order)."""
import base64
import re
import urllib.parse

import pytest

from conftest import (BASE32, BASE64URL, RECOVERY_CODE, RESET_TTL_S, Api, World, assert_error, code_for_step, fresh_code,
                      ldap_binds, start_reset, wrong_code)

# New passwords never contain the username or display-name parts: AD complexity refuses those.
NEW_PASSWORD = "Harbor-Tulip-Passw0rd-42!"
ANOTHER_PASSWORD = "Another-Strong-Passw0rd-7"
SHORT_PASSWORD = "short-1A!"

state: dict = {}


@pytest.fixture(autouse=True)
def _sensitive(world: World):
    for pw in (NEW_PASSWORD, ANOTHER_PASSWORD, SHORT_PASSWORD):
        world.secret(pw)


def need(*names):
    missing = [n for n in names if n not in state]
    if missing:
        pytest.fail(f"an earlier step failed (no {missing}); see the first failure of this class")
    return [state[n] for n in names]


class TestAliceFlow:
    def test_01_enroll(self, api: Api, world: World):
        r = api.call("POST", "/v1/enrollments/totp", {"username": "alice", "current_password": world.passwords["alice"]})
        assert r.status == 201, r
        assert set(r.json) >= {"enrollment_id", "secret", "otpauth_uri"}, r
        secret, uri = r.json["secret"], r.json["otpauth_uri"]
        world.secret(secret)
        assert isinstance(secret, str) and BASE32.match(secret), f"secret is not base32:{r}"
        assert len(secret.rstrip("=")) >= 32, f"secret shorter than 160 bits ({len(secret)} base32 chars)"
        assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) >= 20
        assert uri.startswith("otpauth://totp/"), uri
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        assert q.get("secret") == [secret.rstrip("=")] or q.get("secret") == [secret], uri
        assert q.get("issuer", ["Example"]) == ["Example"], uri
        assert "Example" in urllib.parse.unquote(urllib.parse.urlsplit(uri).path), uri
        state.update(enrollment_id=r.json["enrollment_id"], secret=secret)
        world.totp["alice"] = secret  # for the code helpers; confirmed below

    def test_02_confirm_wrong_code_is_401(self, api: Api, world: World):
        (eid,) = need("enrollment_id")
        r = api.call("POST", f"/v1/enrollments/totp/{eid}/confirm", {"code": wrong_code(world, "alice")})
        assert_error(r, 401, "invalid_code")

    def test_03_confirm(self, api: Api, world: World):
        (eid,) = need("enrollment_id")
        code, step = fresh_code(world, "alice")
        r = api.call("POST", f"/v1/enrollments/totp/{eid}/confirm", {"code": code})
        assert r.status == 200 and r.json.get("status") == "enrolled", r
        codes = r.json.get("recovery_codes")
        assert isinstance(codes, list) and len(codes) == 10 and len(set(codes)) == 10, r
        assert all(RECOVERY_CODE.match(c) for c in codes), r
        world.recovery["alice"] = [world.secret(c) for c in codes]
        world.last_step["alice"] = step
        state["enrolled"] = True

    def test_04_unknown_enrollment_is_410(self, api: Api, world: World):
        # well-formed (43 base64url characters, as the daemon issues) but never issued
        r = api.call("POST", f"/v1/enrollments/totp/{'A' * 43}/confirm", {"code": wrong_code(world)})
        assert_error(r, 410, "enrollment_expired")

    def test_05_filter_injection_cannot_reach_alice(self, api: Api, world: World):
        """`al*` / `alice)(uid=*` must not find alice: her valid code fails on those flows."""
        need("enrolled")
        for name in ("al*", "alice)(uid=*", "ALICE*"):
            code, _ = fresh_code(world, "alice")  # valid for alice right now (not consumed on failure)
            r = start_reset(api, name)
            assert r.status == 201, r
            v = api.call("POST", f"/v1/resets/{r.json['reset_id']}/verify", {"method": "totp", "code": code})
            assert_error(v, 401, "invalid_code")

    def test_06_start(self, api: Api):
        need("enrolled")
        r = start_reset(api, "alice")
        assert r.status == 201, r
        assert set(r.json) == {"reset_id", "expires_in", "methods", "required_methods"}, r
        rid = r.json["reset_id"]
        assert isinstance(rid, str) and BASE64URL.match(rid) and len(rid) >= 22, f"reset_id not base64url>=22:{r}"
        assert r.json["expires_in"] == RESET_TTL_S, r
        assert r.json["methods"] == [{"method": "totp"}], r
        assert r.json["required_methods"] == 1, r
        state["reset_id"] = rid
        state["start_reply"] = r.json

    def test_07_complete_before_verify_is_403(self, api: Api, world: World):
        (rid,) = need("reset_id")
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": NEW_PASSWORD})
        world.secret(NEW_PASSWORD)
        assert_error(r, 403, "verification_required")
        assert r.json.get("remaining_methods") == 1, r

    def test_08_challenge_totp_is_400(self, api: Api):
        (rid,) = need("reset_id")
        r = api.call("POST", f"/v1/resets/{rid}/challenge", {"method": "totp"})
        assert_error(r, 400, "bad_request")

    @pytest.mark.parametrize("body", [{"method": "totp"}, {"code": "123456"}, {"method": "totp", "code": 123456},
                                      {"method": "carrier-pigeon", "code": "123456"}])
    def test_09_verify_bad_body_is_400(self, api: Api, body):
        (rid,) = need("reset_id")
        assert_error(api.call("POST", f"/v1/resets/{rid}/verify", body), 400, "bad_request")

    def test_10_wrong_code_is_401(self, api: Api, world: World):
        (rid,) = need("reset_id")
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": wrong_code(world, "alice")})
        assert_error(r, 401, "invalid_code")

    def test_11_right_code_verifies(self, api: Api, world: World):
        (rid,) = need("reset_id")
        code, step = fresh_code(world, "alice")  # the next step: the confirm consumed the current one
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
        assert r.status == 200, r
        assert r.json == {"verified_methods": ["totp"], "remaining_methods": 0}, r
        world.last_step["alice"] = step
        state.update(verified=True, used_code=code)

    def test_12_same_code_on_new_flow_is_replay_401(self, api: Api):
        (code,) = need("used_code")
        r = start_reset(api, "alice")
        assert r.status == 201, r
        state["other_reset_id"] = r.json["reset_id"]
        v = api.call("POST", f"/v1/resets/{r.json['reset_id']}/verify", {"method": "totp", "code": code})
        assert_error(v, 401, "invalid_code")

    def test_13_earlier_step_is_replay_401(self, api: Api, world: World):
        need("used_code")
        rid = state["other_reset_id"]
        older = code_for_step(world.totp["alice"], world.last_step["alice"] - 1)
        world.codes.add(older)
        v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": older})
        assert_error(v, 401, "invalid_code")

    def test_14_too_short_password_is_422_and_changes_nothing(self, api: Api, world: World, lab):
        rid, _ = need("reset_id", "verified")
        world.secret(SHORT_PASSWORD)
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": SHORT_PASSWORD})
        assert_error(r, 422, "password_rejected")
        violations = r.json.get("violations")
        assert isinstance(violations, list) and violations, r
        assert all(isinstance(v.get("rule"), str) and isinstance(v.get("message"), str) for v in violations), r
        assert "min_length" in [v["rule"] for v in violations], r
        # the failing bind first: the successful one then clears the directory's bad-bind count
        assert not ldap_binds(lab, "alice", SHORT_PASSWORD)
        assert ldap_binds(lab, "alice", world.passwords["alice"]), "alice's old password no longer binds after a 422"

    def test_15_strong_password_resets(self, api: Api, world: World, lab):
        rid, _ = need("reset_id", "verified")
        old = world.passwords["alice"]
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": NEW_PASSWORD})
        assert r.status == 200, r
        assert r.json == {"status": "password_reset", "unlocked": False}, r
        world.passwords["alice"] = NEW_PASSWORD
        state["old_password"] = old
        state["completed"] = True
        # the failing bind first: the successful one then clears the directory's bad-bind count
        assert not ldap_binds(lab, "alice", old), "the old password still binds"
        assert ldap_binds(lab, "alice", NEW_PASSWORD), "the new password does not bind"

    def test_16_complete_again_is_410(self, api: Api):
        rid, _ = need("reset_id", "completed")
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": ANOTHER_PASSWORD})
        assert_error(r, 410, "reset_expired")

    def test_17_verify_on_completed_flow_is_410(self, api: Api, world: World):
        rid, _ = need("reset_id", "completed")
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": wrong_code(world, "alice")})
        assert_error(r, 410, "reset_expired")

    def test_18_other_open_flow_invalidated(self, api: Api):
        rid, _ = need("other_reset_id", "completed")
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": ANOTHER_PASSWORD})
        assert_error(r, 410, "reset_expired")

    # ids in the shape the daemon issues (43 base64url characters) that it never issued
    @pytest.mark.parametrize("rid", ["A" * 43, "Zm9vYmFyLWJhei1xdXV4LW5vdC1hbi1pc3N1ZWQtaWQ"])
    def test_19_unknown_reset_id_is_410(self, api: Api, rid):
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": ANOTHER_PASSWORD})
        assert_error(r, 410, "reset_expired")
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": "123456"})
        assert_error(r, 410, "reset_expired")

    # strict routing: text of another shape is no reset id, so no route (test_21_strict_routing)
    @pytest.mark.parametrize("rid", ["AAAAAAAAAAAAAAAAAAAAAA", "nope", "x" * 300])
    def test_19_malformed_reset_id_is_404(self, api: Api, rid):
        r = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": ANOTHER_PASSWORD})
        assert_error(r, 404, "not_found")
        r = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": "123456"})
        assert_error(r, 404, "not_found")

    def test_20_enroll_with_old_password_is_401(self, api: Api):
        (old,) = need("old_password")
        r = api.call("POST", "/v1/enrollments/totp", {"username": "alice", "current_password": old})
        assert_error(r, 401, "invalid_credentials")
