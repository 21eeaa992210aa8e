"""3. Bad input: 400/413/415/431, and hostile usernames get a decoy flow."""
import pytest

from conftest import MAX_BODY_BYTES, Api, Reply, World, assert_error, start_reset, wrong_code


@pytest.mark.parametrize("raw", [
    b'{"username": "alice"',        # truncated
    b'{"username": alice}',         # not JSON
    b'',                            # empty body
    b'\xff\xfe{"username":"a"}',    # not UTF-8
    b'{"username":"alice"} trailing',
])
def test_malformed_json_is_400(api: Api, raw):
    assert_error(api.call("POST", "/v1/resets", raw_body=raw), 400, "bad_request")


@pytest.mark.parametrize("body", [
    {},
    {"user": "alice"},
    {"username": 5},
    {"username": None},
    {"username": ["alice"]},
    {"username": {"name": "alice"}},
    {"username": ""},
    ["alice"],
    "alice",
])
def test_missing_or_invalid_username_is_400(api: Api, body):
    assert_error(api.call("POST", "/v1/resets", body), 400, "bad_request")


def test_username_of_257_bytes_is_400(api: Api):
    assert_error(start_reset(api, "a" * 257), 400, "bad_request")


def test_username_over_256_bytes_counted_in_bytes_is_400(api: Api):
    assert_error(start_reset(api, "é" * 129), 400, "bad_request")  # 129 chars, 258 bytes


def test_username_of_256_bytes_is_accepted(api: Api):
    r = start_reset(api, "a" * 256)
    assert r.status == 201, r


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\n", "\r", "\t", "\x1f", "\x7f"])
def test_username_with_control_char_is_400(api: Api, ch):
    assert_error(start_reset(api, f"al{ch}ice"), 400, "bad_request")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_415(api: Api, ctype):
    r = api.call("POST", "/v1/resets", {"username": "alice"}, content_type=ctype)
    assert_error(r, 415, "unsupported_media_type")


def test_missing_content_type_is_415(api: Api):
    r = api.call("POST", "/v1/resets", {"username": "alice"}, content_type=None)
    assert_error(r, 415, "unsupported_media_type")


def test_json_with_charset_is_fine(api: Api):
    r = api.call("POST", "/v1/resets", {"username": "nobody-charset"}, content_type="application/json; charset=utf-8")
    assert r.status == 201, r


def test_body_over_limit_is_413(api: Api):
    raw = ('{"username": "' + "a" * (MAX_BODY_BYTES + 100) + '"}').encode()
    assert len(raw) > MAX_BODY_BYTES
    assert_error(api.call("POST", "/v1/resets", raw_body=raw), 413, "payload_too_large")


def test_chunked_body_over_limit_is_413(api: Api):
    """Same oversized body, sent chunked (no Content-Length): the limit must hold while reading."""
    raw = ('{"username": "' + "a" * (MAX_BODY_BYTES + 100) + '"}').encode()
    conn = api.connection()
    try:
        conn.request("POST", "/v1/resets", body=iter([raw[i:i + 4096] for i in range(0, len(raw), 4096)]),
                     headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
                     encode_chunked=True)
        resp = conn.getresponse()
        r = Reply("POST", "/v1/resets", "(chunked) " + raw[:60].decode() + "…", resp.status,
                  {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
    assert_error(r, 413, "payload_too_large")


def test_body_over_limit_without_key_still_answers(api: Api):
    """An early error reply drains or gently closes: the client reads 401 (or 413), not a reset."""
    raw = ('{"username": "' + "a" * (MAX_BODY_BYTES + 100) + '"}').encode()
    r = api.call("POST", "/v1/resets", raw_body=raw, key=None)
    assert r.status in (401, 413), r


def test_header_block_over_8k_is_431(api: Api):
    r = api.call("POST", "/v1/resets", {"username": "alice"}, headers={"X-Padding": "p" * 9000})
    assert_error(r, 431, "headers_too_large")


REAL_START_KEYS = {"reset_id", "expires_in", "methods", "required_methods"}


@pytest.mark.parametrize("name", ["*", "alice)(uid=*", "al*", "*)(objectClass=*", "alice\\2a", "uid=alice,ou=people"])
def test_hostile_username_gets_a_decoy_that_never_verifies(api: Api, world: World, name):
    r = start_reset(api, name)
    assert r.status == 201, r
    assert set(r.json) == REAL_START_KEYS, r
    assert r.json["methods"] == [{"method": "totp"}] and r.json["required_methods"] == 1, r
    v = api.call("POST", f"/v1/resets/{r.json['reset_id']}/verify", {"method": "totp", "code": wrong_code(world)})
    assert_error(v, 401, "invalid_code")
