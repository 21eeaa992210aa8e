"""8. A daemon whose directory does not answer: 503 directory_unavailable, health degraded."""
import pytest

from conftest import Api, assert_error, free_port, start_daemon


@pytest.fixture(scope="module")
def dead_api(binary, workdir, world, pki, keys, lab):
    dead_uri = f"ldaps://127.0.0.1:{free_port()}"  # nothing listens there
    d, api = start_daemon(binary, workdir / "daemon-dead-directory", world, pki, keys, lab, uris=[dead_uri])
    try:
        yield api
    finally:
        code = d.stop()
    assert code == 0, f"second pwresetd exited with {code} after SIGTERM; stderr:\n{d.stderr()[-3000:]}"


def test_health_degraded(dead_api: Api):
    r = dead_api.call("GET", "/v1/health", key=None)
    assert r.status == 503, r
    assert r.json.get("status") == "degraded" and r.json.get("error") == "directory_unavailable", r
    assert isinstance(r.json.get("message"), str) and r.json["message"], r


def test_reset_start_is_503(dead_api: Api):
    assert_error(dead_api.call("POST", "/v1/resets", {"username": "alice"}), 503, "directory_unavailable")


def test_enroll_is_503(dead_api: Api, world):
    r = dead_api.call("POST", "/v1/enrollments/totp", {"username": "alice", "current_password": world.passwords["alice"]})
    assert_error(r, 503, "directory_unavailable")


def test_auth_still_checked_first(dead_api: Api):
    assert_error(dead_api.call("POST", "/v1/resets", {"username": "alice"}, key=None), 401, "unauthenticated")
