"""21. Mutual TLS (tls.client_ca, clients[].certificate_subject) beside API keys, black-box over
HTTPS:
- a certificate from the client CA whose subject DN, DNS or URI subjectAltName is configured
  authenticates its client, with that client's scopes (the audit names the client);
- API-key clients go on without a certificate; a client configured with both needs both;
- an expired, not yet valid, other-CA or server-only certificate fails the handshake (TLS 1.2
  and 1.3), an unlisted subject gets 401 (even beside a good key): never routed, which the
  audit shows (no reset started);
- the CertificateRequest names the client CA;
- a reload (SIGHUP) brings a new client CA and new subjects: new connections and old
  keep-alive ones both follow it."""
from __future__ import annotations

import http.client
import secrets
import shutil
import ssl
import time

import pytest

from conftest import (Api, ClientCa, ClientCert, Daemon, assert_error, config_text, find_leaks, free_port,
                      run, sha256_hex, write_policy_lists)
from test_17_systemd import NotifiedDaemon, NotifySocket
from test_19_reload import Reloadable

PORTAL_DN = [("CN", "portal.example.test"), ("O", "pwresetd e2e")]
PORTAL_SUBJECT = "CN=portal.example.test,O=pwresetd e2e"
SAN_NAME = "san-portal.example.test"
BOTH_URI = "spiffe://example.test/both"
TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def mtls_clients(both_key: str, subject: str = PORTAL_SUBJECT) -> str:
    """Clients added before config_text's own (portal, checker, selfservice: API keys)."""
    return (f'  - name: cert-checker\n    certificate_subject: "{subject}"\n    scopes: [check]\n'
            f'  - name: san-resetter\n    certificate_subject: "DNS:{SAN_NAME}"\n    scopes: [reset]\n'
            f'  - name: both\n    api_key_sha256: "{sha256_hex(both_key)}"\n'
            f'    certificate_subject: "URI:{BOTH_URI}"\n    scopes: [check]\n')


def mtls_config(port: int, lab, keys, both_key: str, subject: str = PORTAL_SUBJECT) -> str:
    text = config_text(port, lab, keys)
    text = text.replace("  private_key: server.key\n", "  private_key: server.key\n  client_ca: client-ca.crt\n", 1)
    return text.replace("clients:\n", "clients:\n" + mtls_clients(both_key, subject), 1)


class Certs:
    def __init__(self, ca: ClientCa, other: ClientCa):
        self.ca = ca
        self.portal = ca.issue("portal", PORTAL_DN)
        self.san = ca.issue("san", [("CN", "some other name")], dns=(SAN_NAME,))
        self.both = ca.issue("both", [("CN", "both")], uris=(BOTH_URI,))
        self.unlisted = ca.issue("unlisted", [("CN", "unlisted.example.test"), ("O", "pwresetd e2e")])
        self.case_variant = ca.issue("case", [("CN", "Portal.example.test"), ("O", "pwresetd e2e")])
        self.expired = ca.issue("expired", PORTAL_DN, valid_from_s=-7 * 86400, valid_to_s=-86400)
        self.not_yet = ca.issue("not-yet", PORTAL_DN, valid_from_s=86400, valid_to_s=7 * 86400)
        self.server_only = ca.issue("server-only", PORTAL_DN, server_only=True)
        # Another CA of the very same name: only its key tells it apart.
        self.other_ca = other.issue("other-ca", PORTAL_DN)


@pytest.fixture(scope="module")
def certs(workdir) -> Certs:
    return Certs(ClientCa(workdir / "client-pki" / "ca"), ClientCa(workdir / "client-pki" / "other"))


@pytest.fixture(scope="module")
def both_key(world) -> str:
    return world.secret(secrets.token_urlsafe(32))


@pytest.fixture(scope="module")
def mtls(binary, workdir, world, pki, keys, lab, certs, both_key):
    directory = workdir / "daemon-mtls"
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    d.write(mtls_config(port, lab, keys, both_key))
    shutil.copyfile(certs.ca.path, directory / "client-ca.crt")
    d.start(Api(port, pki.ca, None, world))
    try:
        yield d
    finally:
        code = d.stop()
    assert code == 0, f"pwresetd exited with {code}; stderr:\n{d.stderr()[-3000:]}"
    leaks = find_leaks(world, [d.stderr_path, d.audit_path])
    assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def client(d: Daemon, pki, world, cert: ClientCert | None, key: str | None = None,
           tls_version: ssl.TLSVersion | None = None) -> Api:
    return Api(d.port, pki.ca, key, world, client_cert=cert, tls_version=tls_version)


def handshake_failures_exceed(d: Daemon, before: int, timeout: float = 5.0) -> bool:
    """Whether the daemon logs more http.handshake_failed than `before` within `timeout` (the
    client may see the alert before the daemon has written its line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if d.stderr().count("http.handshake_failed") > before:
            return True
        time.sleep(0.05)
    return False


def started_for(d: Daemon, username: str) -> list[dict]:
    return [r for r in d.audit("reset.started") if r.get("username") == username]


def try_reset(api: Api, d: Daemon) -> tuple[object, str]:
    """POST /v1/resets for a fresh name: the reply (or the exception instead of one) and the
    name, so the audit can show whether the request was routed."""
    name = f"mtls-{secrets.token_hex(4)}"
    try:
        return api.call("POST", "/v1/resets", {"username": name}), name
    except (OSError, http.client.HTTPException) as e:  # ssl.SSLError, resets, RemoteDisconnected
        return e, name


# --------------------------------------------------------------------------- accepted
def test_subject_dn_authenticates_its_client_with_its_scopes(mtls, pki, world, certs):
    api = client(mtls, pki, world, certs.portal)
    r = api.call("GET", "/v1/policy")
    assert r.status == 200 and isinstance(r.json.get("rules"), list), r
    reply, name = try_reset(api, mtls)
    assert_error(reply, 403, "forbidden")  # cert-checker has scope check only
    assert not started_for(mtls, name)


def test_dns_san_authenticates_and_the_audit_names_the_client(mtls, pki, world, certs):
    api = client(mtls, pki, world, certs.san)
    reply, name = try_reset(api, mtls)
    assert reply.status == 201, reply
    records = started_for(mtls, name)
    assert len(records) == 1 and records[0].get("client") == "san-resetter", records
    assert_error(api.call("GET", "/v1/policy"), 403, "forbidden")  # no check scope


def test_api_key_clients_need_no_certificate(mtls, pki, world, keys):
    api = client(mtls, pki, world, None, keys.checker)
    assert api.call("GET", "/v1/policy").status == 200
    reply, name = try_reset(client(mtls, pki, world, None, keys.portal), mtls)
    assert reply.status == 201, reply
    assert started_for(mtls, name)[0].get("client") == "portal"


def test_a_client_with_key_and_certificate_needs_both(mtls, pki, world, certs, both_key):
    assert client(mtls, pki, world, certs.both, both_key).call("GET", "/v1/policy").status == 200
    assert_error(client(mtls, pki, world, certs.both).call("GET", "/v1/policy"), 401, "unauthenticated")
    assert_error(client(mtls, pki, world, None, both_key).call("GET", "/v1/policy"), 401, "unauthenticated")


def test_health_needs_no_certificate(mtls, pki, world, certs):
    for cert in (None, certs.unlisted):
        r = client(mtls, pki, world, cert).call("GET", "/v1/health")
        assert r.status == 200 and r.json == {"status": "ok"}, r


def test_the_certificate_request_names_the_client_ca(mtls, pki):
    r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{mtls.port}", "-CAfile", str(pki.ca),
             "-tls1_2", "-verify_return_error"], input="", timeout=20)
    assert "Acceptable client certificate CA names" in r.stdout, r.stdout[-2000:]
    names = r.stdout.split("Acceptable client certificate CA names", 1)[1].splitlines()[1:3]
    assert any("pwresetd e2e client CA" in n for n in names), names


# --------------------------------------------------------------------------- refused
@pytest.mark.parametrize("tls_version", TLS_VERSIONS, ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("which", ["expired", "not_yet", "other_ca", "server_only"])
def test_untrusted_certificates_fail_the_handshake(mtls, pki, world, certs, keys, which, tls_version):
    before = mtls.stderr().count("http.handshake_failed")
    # The portal's API key beside it: a good key does not rescue a bad certificate.
    api = client(mtls, pki, world, getattr(certs, which), keys.portal, tls_version)
    reply, name = try_reset(api, mtls)
    assert isinstance(reply, Exception), f"{which}: an HTTP reply instead of a refused handshake: {reply}"
    assert not started_for(mtls, name), f"{which}: routed"
    assert handshake_failures_exceed(mtls, before), f"{which}: no handshake failure logged: {reply!r}"
    # The daemon goes on serving.
    assert client(mtls, pki, world, certs.portal, tls_version=tls_version).call("GET", "/v1/policy").status == 200


@pytest.mark.parametrize("which", ["unlisted", "case_variant"])
def test_an_unlisted_subject_is_401_before_routing(mtls, pki, world, certs, keys, which):
    cert = getattr(certs, which)
    for key in (None, keys.portal):  # a good API key does not rescue an unlisted certificate
        api = client(mtls, pki, world, cert, key)
        reply, name = try_reset(api, mtls)
        assert_error(reply, 401, "unauthenticated")
        assert not started_for(mtls, name)
        # no route discovery either
        assert_error(api.call("GET", "/v1/nope"), 401, "unauthenticated")


def test_a_key_and_a_certificate_of_two_clients_are_401(mtls, pki, world, certs, keys):
    reply, name = try_reset(client(mtls, pki, world, certs.portal, keys.portal), mtls)
    assert_error(reply, 401, "unauthenticated")
    assert not started_for(mtls, name)


# --------------------------------------------------------------------------- reload
@pytest.fixture
def reloadable_mtls(binary, workdir, world, pki, keys, lab, certs, both_key, request):
    started: list[Reloadable] = []

    def start() -> Reloadable:
        directory = workdir / f"daemon-mtls-reload-{request.node.name}"
        port = free_port()
        d = NotifiedDaemon(binary, directory, port, world, pki)
        write_policy_lists(binary, directory)
        d.write(mtls_config(port, lab, keys, both_key))
        shutil.copyfile(certs.ca.path, directory / "client-ca.crt")
        notify = NotifySocket()
        d.launch(notify, None)
        r = Reloadable(d, notify, lab, keys, {})
        started.append(r)
        r.wait_for("READY=1")
        return r

    yield start
    for r in started:
        running = r.d.alive()
        code = r.d.stop()
        r.notify.close()
        assert not running or code == 0, f"pwresetd exited with {code}; stderr:\n{r.d.stderr()[-3000:]}"
        leaks = find_leaks(world, [r.d.stderr_path, r.d.audit_path])
        assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def test_a_reload_brings_a_new_client_ca(reloadable_mtls, workdir, pki, world, certs):
    r = reloadable_mtls()
    d = r.d
    old_api = client(d, pki, world, certs.portal)
    kept = old_api.connection()  # verified against the old CA, kept open across the reload
    assert old_api.call("GET", "/v1/policy", conn=kept).status == 200
    new_ca = ClientCa(workdir / "client-pki" / f"reload-{secrets.token_hex(3)}", "pwresetd e2e client CA 2")
    new_cert = new_ca.issue("portal", PORTAL_DN)
    assert_error(client(d, pki, world, certs.unlisted).call("GET", "/v1/policy"), 401, "unauthenticated")
    before = d.stderr().count("http.handshake_failed")
    try_reset(client(d, pki, world, new_cert), d)  # not trusted yet
    assert handshake_failures_exceed(d, before)

    shutil.copyfile(new_ca.path, d.dir / "client-ca.crt")
    r.reload()
    assert d.audit("daemon.reload")[-1]["outcome"] == "applied", d.audit("daemon.reload")
    # New connections: the new CA's certificate is accepted, the old CA's refused.
    assert client(d, pki, world, new_cert).call("GET", "/v1/policy").status == 200
    before = d.stderr().count("http.handshake_failed")
    reply, name = try_reset(client(d, pki, world, certs.portal), d)
    assert isinstance(reply, Exception), reply
    assert not started_for(d, name)
    assert handshake_failures_exceed(d, before)
    # The kept connection's certificate is checked against the new CA too (its subject is
    # still configured: only the CA refuses it).
    assert_error(old_api.call("GET", "/v1/policy", conn=kept), 401, "unauthenticated")
    kept.close()


def test_a_reload_brings_new_subjects(reloadable_mtls, pki, world, certs, keys, both_key):
    r = reloadable_mtls()
    d = r.d
    portal_api = client(d, pki, world, certs.portal)
    unlisted_api = client(d, pki, world, certs.unlisted)
    kept = portal_api.connection()
    assert portal_api.call("GET", "/v1/policy", conn=kept).status == 200
    assert_error(unlisted_api.call("GET", "/v1/policy"), 401, "unauthenticated")
    d.config.write_text(mtls_config(d.port, r.lab, keys, both_key, subject="CN=unlisted.example.test,O=pwresetd e2e"))
    r.reload()
    assert unlisted_api.call("GET", "/v1/policy").status == 200
    assert_error(portal_api.call("GET", "/v1/policy"), 401, "unauthenticated")
    assert_error(portal_api.call("GET", "/v1/policy", conn=kept), 401, "unauthenticated")
    kept.close()
