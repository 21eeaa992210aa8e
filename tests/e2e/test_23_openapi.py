"""21. The OpenAPI document: GET /v1/openapi.json serves api/openapi.json to any authenticated
client (no scope needed), 401 without one; and one real request of every documented
operation gets a reply whose status is documented for it and whose body validates against
that status's schema (openapi_check.py). Every other reply of the suite is checked the
same way on the fly (Api._check_common, asserted by test_zz_no_leaks)."""
import json

from conftest import OPENAPI, SOURCE_DIR, Api, World, assert_error, ensure_enrolled, fresh_code

BOGUS_ID = "A" * 43


def test_served_document_is_the_repository_file(api: Api, checker_api: Api, change_api: Api):
    expected = json.loads((SOURCE_DIR / "api" / "openapi.json").read_text())
    for client in (api, checker_api, change_api):  # scopes reset+enroll, check, change
        r = client.call("GET", "/v1/openapi.json")
        assert r.status == 200, r
        assert r.json == expected, "the served document differs from api/openapi.json"
    assert_error(api.call("GET", "/v1/openapi.json", key=None), 401, "unauthenticated")
    assert_error(api.call("GET", "/v1/openapi.json", key="not-a-key"), 401, "unauthenticated")
    wrong = api.call("POST", "/v1/openapi.json", {})
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers.get("allow") == "GET", wrong


def test_a_real_reply_of_every_operation_validates(api: Api, checker_api: Api, change_api: Api, world: World):
    ensure_enrolled(api, world, "alice")
    seen = {}

    def sample(client: Api, method: str, path: str, body=None, expect: int | None = None, **kw):
        r = client.call(method, path, body, **kw)
        found = OPENAPI.operation(method, path)
        assert found is not None, f"{method} {path} matches no documented operation"
        problems = OPENAPI.check_reply(method, path, r.status, r.json)
        assert not problems, f"{r}\n" + "\n".join(problems)
        if expect is not None:
            assert r.status == expect, r
        seen.setdefault((method, found[0]), set()).add(r.status)
        return r

    sample(api, "GET", "/v1/health", expect=200)
    sample(api, "GET", "/v1/openapi.json", expect=200)
    sample(checker_api, "GET", "/v1/policy", expect=200)
    sample(checker_api, "POST", "/v1/password/check", {"password": "short"}, expect=200)
    sample(checker_api, "POST", "/v1/password/check", {"nothing": 1}, expect=400)
    sample(change_api, "POST", "/v1/password/change",
           {"username": "nobody-at-all", "current_password": "Wrong-Passw0rd-1", "new_password": "Whatever-Passw0rd-2"},
           expect=401)
    sample(checker_api, "POST", "/v1/password/change", {}, expect=403)

    started = sample(api, "POST", "/v1/resets", {"username": "alice"}, expect=201)
    rid = started.json["reset_id"]
    sample(api, "POST", f"/v1/resets/{rid}/challenge", {"method": "email"}, expect=400)  # email is off here
    sample(api, "POST", f"/v1/resets/{BOGUS_ID}/challenge", {"method": "totp"}, expect=400)
    sample(api, "POST", f"/v1/resets/{rid}/complete", {"new_password": "Whatever-Passw0rd-2"}, expect=403)
    sample(api, "POST", f"/v1/resets/{rid}/unlock", {}, expect=403)
    code, step = fresh_code(world, "alice")
    sample(api, "POST", f"/v1/resets/{rid}/verify", {"method": "totp", "code": code}, expect=200)
    world.last_step["alice"] = step
    sample(api, "POST", f"/v1/resets/{rid}/complete", {"new_password": "short"}, expect=422)
    sample(api, "POST", f"/v1/resets/{BOGUS_ID}/verify", {"method": "totp", "code": "123456"}, expect=410)
    sample(api, "POST", f"/v1/resets/{BOGUS_ID}/complete", {"new_password": "x"}, expect=410)
    sample(api, "POST", f"/v1/resets/{BOGUS_ID}/unlock", {}, expect=410)
    sample(api, "POST", f"/v1/resets/{rid}/unlock", raw_body=b"{", expect=400)
    sample(api, "POST", f"/v1/resets/{rid}/unlock", raw_body=b"{}", content_type="text/plain", expect=415)

    sample(api, "POST", "/v1/enrollments/totp", {"username": "nobody-at-all", "current_password": "Wrong-Passw0rd-1"},
           expect=401)
    sample(api, "POST", f"/v1/enrollments/totp/{BOGUS_ID}/confirm", {"code": "123456"}, expect=410)
    sample(api, "POST", "/v1/enrollments", {"username": "alice", "current_password": "x"}, expect=501)
    sample(api, "DELETE", "/v1/enrollments/totp", {"username": "alice", "current_password": "x"}, expect=501)
    sample(api, "POST", "/v1/resets", {"username": "alice"}, key=None, expect=401)
    sample(change_api, "POST", "/v1/resets", {"username": "alice"}, expect=403)

    missing = sorted(set(OPENAPI.operations()) - set(seen))
    assert not missing, f"documented operations no sample reached: {missing}"
