"""2. Client authentication is checked before routing; scopes give 403."""
import pytest

from conftest import Api, assert_error


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/resets", {"username": "alice"}),
    ("POST", "/v1/enrollments/totp", {"username": "alice", "current_password": "x"}),
    ("GET", "/v1/nope", None),          # unknown path: still 401, no route discovery
    ("POST", "/v1/nope", {"a": 1}),
])
def test_no_key_is_401(api: Api, method, path, body):
    assert_error(api.call(method, path, body, key=None), 401, "unauthenticated")


@pytest.mark.parametrize("auth", [
    "Bearer wrong-key-0123456789abcdefghijklmnopqrstuv",
    "Bearer ",
    "Basic YWxpY2U6cGFzc3dvcmQ=",
    "bearer-without-space",
])
def test_wrong_key_is_401(api: Api, auth):
    r = api.call("POST", "/v1/resets", {"username": "alice"}, key=None, headers={"Authorization": auth})
    assert_error(r, 401, "unauthenticated")


def test_wrong_key_on_unknown_path_is_401(api: Api):
    r = api.call("GET", "/v1/nope", key="not-the-key")
    assert_error(r, 401, "unauthenticated")


def test_key_hash_not_accepted_as_key(api: Api, keys):
    """The configured value is the SHA-256; presenting the hash itself must not authenticate."""
    from conftest import sha256_hex
    r = api.call("POST", "/v1/resets", {"username": "alice"}, key=sha256_hex(keys.portal))
    assert_error(r, 401, "unauthenticated")


def test_check_scope_cannot_reset(checker_api: Api):
    assert_error(checker_api.call("POST", "/v1/resets", {"username": "alice"}), 403, "forbidden")


def test_check_scope_cannot_enroll(checker_api: Api):
    r = checker_api.call("POST", "/v1/enrollments/totp", {"username": "alice", "current_password": "x"})
    assert_error(r, 403, "forbidden")


@pytest.mark.parametrize("method,path", [("GET", "/v1/nope"), ("GET", "/v2/resets"), ("GET", "/v1/resets")])
def test_authenticated_unknown_route_is_404(api: Api, method, path):
    r = api.call(method, path)
    assert r.status in (404, 405), r
    if path != "/v1/resets":
        assert_error(r, 404, "not_found")
