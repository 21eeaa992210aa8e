"""pwresetd's own password policy over HTTPS: GET /v1/policy and POST /v1/password/check in
English and Swedish, and a reset refused for a banned or breached password that leaves the
directory unchanged (the old password still binds)."""
from __future__ import annotations

from conftest import (BREACHED_PASSWORD, Api, World, assert_error, ensure_enrolled, fresh_code,
                      ldap_binds, start_reset)


def rules_of(reply) -> dict:
    return {r["rule"]: r for r in reply.json["rules"]}


def test_policy_lists_active_rules_in_english_and_swedish(checker_api: Api):
    r = checker_api.call("GET", "/v1/policy")
    assert r.status == 200, r
    rules = rules_of(r)
    assert rules["min_length"]["value"] == 12
    assert rules["min_length"]["message"] == "Use at least 12 characters."
    for rule in ("max_length", "contains_username", "contains_name", "banned", "breached"):
        assert rule in rules, r
    sv = checker_api.call("GET", "/v1/policy", headers={"Accept-Language": "sv-SE,sv;q=0.9"})
    assert sv.status == 200, sv
    assert rules_of(sv)["min_length"]["message"] == "Använd minst 12 tecken."
    assert [x["rule"] for x in sv.json["rules"]] == [x["rule"] for x in r.json["rules"]]


def test_policy_needs_the_check_scope(api: Api):
    assert_error(api.call("GET", "/v1/policy"), 403, "forbidden")
    assert_error(api.call("POST", "/v1/password/check", {"password": "x"}), 403, "forbidden")


def check(checker_api: Api, body: dict, lang: str | None = None):
    headers = {"Accept-Language": lang} if lang else None
    r = checker_api.call("POST", "/v1/password/check", body, headers=headers)
    assert r.status == 200, r
    return r.json["acceptable"], [v["rule"] for v in r.json["violations"]], r


def test_check_reports_every_violation(checker_api: Api, world: World):
    ok, rules, _ = check(checker_api, {"password": world.secret("Quiet-River-Stone-41")})
    assert ok and rules == []
    ok, rules, r = check(checker_api, {"password": "alice", "username": "alice"})
    assert not ok
    assert "min_length" in rules and "contains_username" in rules, r
    ok, rules, r = check(checker_api, {"password": world.secret("Xq9-Andersson-Zr7vB"),
                                       "display_name": "Alice Andersson"})
    assert rules == ["contains_name"], r


def test_check_uses_the_banned_list_like_entra(checker_api: Api, world: World):
    # Microsoft's worked example: with terms contoso and blank.
    ok, rules, r = check(checker_api, {"password": world.secret("C0ntos0Blank12")})
    assert not ok and "banned" in rules, r
    ok, rules, r = check(checker_api, {"password": world.secret("ContoS0Bl@nkf9!")})
    assert ok, r


def test_check_finds_breached_passwords_in_swedish(checker_api: Api, world: World):
    ok, rules, r = check(checker_api, {"password": world.secret(BREACHED_PASSWORD)}, "sv")
    assert not ok and rules == ["breached"], r
    assert "läckta" in r.json["violations"][0]["message"], r


def test_check_validates_its_input(checker_api: Api):
    assert_error(checker_api.call("POST", "/v1/password/check", {}), 400, "bad_request")
    assert_error(checker_api.call("POST", "/v1/password/check", {"password": 5}), 400, "bad_request")
    assert_error(checker_api.call("POST", "/v1/password/check", {"password": "x", "username": []}),
                 400, "bad_request")


def test_reset_refused_for_banned_and_breached_leaves_directory_unchanged(
        api: Api, world: World, lab):
    ensure_enrolled(api, world, "alice")
    old = world.passwords["alice"]
    r = start_reset(api, "alice")
    rid = r.json["reset_id"]
    code, step = fresh_code(world, "alice")
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code})
    assert v.status == 200, v
    world.last_step["alice"] = step
    for candidate, rule in ((world.secret("C0ntos0-Blank1"), "banned"),
                            (world.secret(BREACHED_PASSWORD), "breached")):
        c = api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": candidate})
        assert_error(c, 422, "password_rejected")
        assert rule in [x["rule"] for x in c.json["violations"]], c
        assert not ldap_binds(lab, "alice", candidate)
        assert ldap_binds(lab, "alice", old), "the directory changed after a refused password"
