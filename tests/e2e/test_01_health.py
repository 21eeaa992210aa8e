"""1. Health without a key; transport basics (Cache-Control, JSON, keep-alive, verified TLS)."""
import http.client
import socket
import ssl

import pytest

from conftest import Api


def test_health_ok_without_key(api: Api):
    r = api.call("GET", "/v1/health", key=None)
    assert r.status == 200, r
    assert r.json == {"status": "ok"}, r
    assert "no-store" in r.headers.get("cache-control", ""), r.headers
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers


def test_health_with_a_key_too(api: Api):
    r = api.call("GET", "/v1/health")
    assert r.status == 200 and r.json == {"status": "ok"}, r


@pytest.mark.parametrize("method,path,authenticated", [
    ("GET", "/v1/health", False),                  # 200
    ("POST", "/v1/resets", False),                 # 401
    ("GET", "/v1/nope", True),                     # 404
    ("POST", "/v1/resets/bogus/verify", True),     # 404 (not an id the daemon issues)
    ("POST", f"/v1/resets/{'A' * 43}/verify", True),  # 410
])
def test_every_response_is_json_and_no_store(api: Api, method, path, authenticated):
    body = {"method": "totp", "code": "000000"} if method == "POST" else None
    r = api.call(method, path, body, key=api.key if authenticated else None)
    assert "no-store" in r.headers.get("cache-control", ""), f"Cache-Control missing:{r}"
    assert isinstance(r.json, dict), f"body is not a JSON object:{r}"
    assert r.headers.get("content-type", "").startswith("application/json"), f"Content-Type {r.headers}:{r}"


def test_keep_alive_two_requests_one_connection(api: Api):
    conn = api.connection()
    try:
        a = api.call("GET", "/v1/health", key=None, conn=conn)
        sock = conn.sock
        b = api.call("GET", "/v1/health", key=None, conn=conn)
        assert a.status == 200 and b.status == 200, (a, b)
        assert conn.sock is sock, "the daemon closed the connection after the first request (no keep-alive)"
    finally:
        conn.close()


def test_tls_version_and_aead_suite(api: Api):
    conn = api.connection()
    try:
        conn.connect()
        version, cipher = conn.sock.version(), conn.sock.cipher()[0]
    finally:
        conn.close()
    assert version in ("TLSv1.2", "TLSv1.3"), version
    assert any(a in cipher for a in ("GCM", "CHACHA20", "CCM")) or version == "TLSv1.3", f"non-AEAD suite {cipher}"


def test_certificate_really_verified(api: Api):
    """Sanity of the harness: a client without our CA must refuse the daemon's certificate."""
    c = http.client.HTTPSConnection("127.0.0.1", api.port, context=ssl.create_default_context(), timeout=5)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            c.request("GET", "/v1/health")
    finally:
        c.close()


def test_tls12_cbc_suites_refused(api: Api):
    ca_pem = "".join(ssl.DER_cert_to_PEM_cert(d) for d in api.ctx.get_ca_certs(binary_form=True))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
                    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA")
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                pytest.fail(f"daemon accepted the non-AEAD suite {tls.cipher()}")
