"""End-to-end fixtures: the real pwresetd binary, a real directory lab (OpenLDAP or Samba AD),
HTTPS with a verified certificate.

Everything runs from temporary folders on loopback. Missing pieces (the binary, the lab
script) make the tests FAIL, never skip: a green e2e run must mean the daemon was driven.

Environment (set by tests/e2e/CMakeLists.txt):
  PWRESETD_BINARY          the pwresetd executable
  PWRESETD_SOURCE_DIR      the source tree (for tests/lab/*.sh)
  PWRESETD_E2E_DIRECTORY   openldap (default: tests/lab/openldap.sh, `directory.kind: openldap`)
                           | samba (tests/lab/samba.sh, `directory.kind: active_directory`;
                           Samba's ports are fixed, so the whole run must be inside a private
                           network namespace: tests/lab/in-netns.sh python3 -m pytest ...)

Tests whose expectations differ per directory branch on `world.kind` / `KIND` or are skipped
for the other kind with a reason; everything else runs unchanged against both.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from openapi_check import OpenApi

SOURCE_DIR = Path(os.environ.get("PWRESETD_SOURCE_DIR") or Path(__file__).resolve().parents[2])
# Every reply Api.call gets is checked against it (Api._check_common).
OPENAPI = OpenApi(SOURCE_DIR / "api" / "openapi.json")
KIND = (os.environ.get("PWRESETD_E2E_DIRECTORY") or "openldap").strip().lower()


@dataclass(frozen=True)
class LabKind:
    """What differs between the two labs (see the headers of tests/lab/openldap.sh and
    tests/lab/samba.sh)."""
    script: str
    directory_kind: str  # directory.kind in the daemon's config
    people: str  # where the demo users live
    dn_format: str  # a demo user's DN from its name
    user_filter: str
    users: tuple  # demo users with a fixed password in the lab's password folder
    protected: tuple  # users the daemon must treat as protected (never reset/changed/enrolled)
    lab_keys: tuple  # lab.env keys the fixtures need


LAB_KINDS = {
    # carol is locked (pwdAccountLockedTime), dave disabled (000001010000Z), erin in cn=admins
    "openldap": LabKind(
        script="openldap.sh", directory_kind="openldap", people="ou=people,dc=example,dc=test",
        dn_format="uid={},ou=people,dc=example,dc=test",
        user_filter="(&(objectClass=inetOrgPerson)(uid={username}))",
        users=("alice", "bob", "carol", "dave", "erin"), protected=("erin",),
        lab_keys=("LAB_DIR", "LAB_LDAPS_URI", "LAB_CA", "LAB_SVC_DN", "LAB_SVC_PASSWORD_FILE",
                  "LAB_ADMIN_DN", "LAB_ADMIN_PASSWORD_FILE")),
    # dave disabled (UF_ACCOUNTDISABLE), erin nested in tier0 (via helpdesk-admins), frank
    # adminCount=1; nobody is locked at start; policy min length 10, complexity, history 5,
    # lockout after 3 bad binds; `old password allowed period = 0`.
    "samba": LabKind(
        script="samba.sh", directory_kind="active_directory", people="OU=people,DC=example,DC=test",
        dn_format="CN={},OU=people,DC=example,DC=test",
        user_filter="(&(objectClass=user)(sAMAccountName={username}))",
        users=("alice", "bob", "carol", "dave", "erin", "frank"), protected=("erin", "frank"),
        lab_keys=("LAB_DIR", "LAB_LDAPS_URI", "LAB_CA", "LAB_SVC_DN", "LAB_SVC_PASSWORD_FILE",
                  "LAB_ADMIN_DN", "LAB_ADMIN_PASSWORD_FILE", "LAB_USER_BASE", "LAB_PROTECTED_GROUP",
                  "LAB_PASSWORD_DIR")),
}
LAB = LAB_KINDS.get(KIND)
LAB_SCRIPT = SOURCE_DIR / "tests" / "lab" / (LAB.script if LAB else "openldap.sh")
OPENLDAP_PROTECTED_GROUP = "cn=admins,ou=groups,dc=example,dc=test"
DIRECTORY_LOCKOUT_BINDS = 3  # both labs lock an account after 3 bad binds


# test_16_timing.py compares real users whom the directory never locks (a ppolicy of their
# own) with unknown ones; the Samba lab has one domain-wide lockout policy, so that module is
# collected for the OpenLDAP lab only (its docstring says more).
collect_ignore = [] if KIND == "openldap" else ["test_16_timing.py"]


def pytest_configure(config):
    if LAB is None:
        raise pytest.UsageError(f"PWRESETD_E2E_DIRECTORY={KIND!r}: expected one of {sorted(LAB_KINDS)}")


def pytest_report_header(config):
    return f"pwresetd e2e against: {KIND} ({LAB_SCRIPT})"

# The daemons under test use 10-second TOTP steps (factors.totp.period accepts 10..120): a
# test that needs a second code for one user waits for the next step, so short steps cut
# the suite's waiting by two thirds without changing what any test asserts.
TOTP_PERIOD = 10
VERIFY_FAILURES = 3
LOCKOUT_S = 900
RESET_TTL_S = 900
MAX_BODY_BYTES = 16384
HEALTH_WAIT_S = 10.0

BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
BASE32 = re.compile(r"^[A-Z2-7]+=*$")
RECOVERY_CODE = re.compile(r"^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$")


def user_dn(name: str) -> str:
    return LAB.dn_format.format(name)


def binary_path() -> Path:
    env = os.environ.get("PWRESETD_BINARY")
    if env:
        return Path(env)
    for build in ("build-e2e", "build"):
        candidate = SOURCE_DIR / build / "daemon" / "pwresetd"
        if candidate.exists():
            return candidate
    return SOURCE_DIR / "build-e2e" / "daemon" / "pwresetd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def read_secret_file(path: str) -> str:
    text = Path(path).read_text()
    return text[:-1] if text.endswith("\n") else text


# --------------------------------------------------------------------------- session state
@dataclass
class World:
    """What the session has done so far, shared by every test module: current passwords,
    enrolled TOTP secrets, the last TOTP step the daemon accepted per user (replay rule),
    every secret sent (for the leak check) and every contract violation seen on the wire."""

    kind: str = KIND  # "openldap" | "samba"
    passwords: dict = field(default_factory=dict)  # filled by the lab fixture from its password files
    totp: dict = field(default_factory=dict)
    recovery: dict = field(default_factory=dict)  # user -> unused recovery codes
    last_step: dict = field(default_factory=dict)
    sensitive: set = field(default_factory=set)  # strings that must never be logged
    codes: set = field(default_factory=set)  # every TOTP code sent
    violations: list = field(default_factory=list)  # (request, problem) seen in any reply
    replies: int = 0  # responses checked by Api._check_common

    def secret(self, value: str) -> str:
        self.sensitive.add(value)
        return value


@pytest.fixture(scope="session")
def world() -> World:
    return World()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pwresetd-e2e")


@pytest.fixture(scope="session")
def binary() -> Path:
    path = binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"pwresetd binary not found or not executable: {path} "
                    f"(build it: cmake --build BUILD --target pwresetd; set PWRESETD_BINARY)")
    return path


# --------------------------------------------------------------------------- the LDAP lab
@pytest.fixture(scope="session")
def lab(workdir: Path, world: World):
    if not LAB_SCRIPT.is_file():
        pytest.fail(f"lab script missing: {LAB_SCRIPT}")
    labdir = workdir / "lab"
    labdir.mkdir()
    try:
        started = run(["bash", str(LAB_SCRIPT), "start", str(labdir)], timeout=60)
        if started.returncode != 0:
            pytest.fail(f"lab start failed (exit {started.returncode}):\n{started.stdout}\n{started.stderr}")
        env_file = labdir / "lab.env"
        if not env_file.is_file():
            pytest.fail(f"lab start did not write {env_file}:\n{started.stdout}\n{started.stderr}")
        env = {}
        for line in env_file.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.removeprefix("export ").strip()] = v
        missing = [k for k in LAB.lab_keys if k not in env]
        if missing:
            pytest.fail(f"lab.env lacks {missing}: {env}")
        if "LAB_USER_BASE" in env and env["LAB_USER_BASE"].lower() != LAB.people.lower():
            pytest.fail(f"lab users live in {env['LAB_USER_BASE']}, the tests expect {LAB.people}")
        world.secret(read_secret_file(env["LAB_SVC_PASSWORD_FILE"]))
        world.secret(read_secret_file(env["LAB_ADMIN_PASSWORD_FILE"]))
        # the demo users' passwords, one file per user (openldap.sh: LAB_DIR/passwords)
        pwdir = Path(env.get("LAB_PASSWORD_DIR") or Path(env["LAB_DIR"]) / "passwords")
        for name in LAB.users:
            f = pwdir / name
            if not f.is_file():
                pytest.fail(f"lab has no password file for {name}: {f}")
            world.passwords[name] = world.secret(read_secret_file(str(f)))
        yield env
    finally:
        stopped = run(["bash", str(LAB_SCRIPT), "stop", str(labdir)], timeout=60)
        if stopped.returncode != 0:
            print(f"lab stop failed: {stopped.stdout}{stopped.stderr}")


def ldap_env(lab) -> dict:
    env = dict(os.environ)
    env.pop("LDAPNOINIT", None)  # it would make the client ignore LDAPTLS_CACERT
    env["LDAPTLS_CACERT"] = lab["LAB_CA"]
    env["LDAPTLS_REQCERT"] = "demand"
    return env


def ldap_binds(lab, name: str, password: str) -> bool:
    """True when `password` binds as `name` over LDAPS: ldapwhoami on OpenLDAP, a base search
    of the user's own entry on Samba (which has no whoami exop). False for a wrong password
    and for a locked or disabled account (both labs answer 49). A failed bind counts toward the
    directory's lockout (3 bad binds in both labs); a successful one clears that count."""
    if KIND == "samba":
        cmd = ["ldapsearch", "-x", "-H", lab["LAB_LDAPS_URI"], "-D", user_dn(name), "-w", password,
               "-o", "nettimeout=10", "-s", "base", "-b", user_dn(name), "dn"]
    else:
        cmd = ["ldapwhoami", "-x", "-H", lab["LAB_LDAPS_URI"], "-D", user_dn(name), "-w", password]
    r = run(cmd, env=ldap_env(lab), timeout=20)
    if r.returncode not in (0, 49):  # 49 invalid credentials (also: locked / disabled)
        raise AssertionError(f"{cmd[0]} for {name} failed unexpectedly (exit {r.returncode}): {r.stderr}")
    return r.returncode == 0


def ldap_admin_modify(lab, ldif: str) -> subprocess.CompletedProcess:
    return run(["ldapmodify", "-x", "-H", lab["LAB_LDAPS_URI"], "-D", lab["LAB_ADMIN_DN"],
                "-w", read_secret_file(lab["LAB_ADMIN_PASSWORD_FILE"])],
               input=ldif, env=ldap_env(lab), timeout=20)


def ldap_admin_read(lab, name: str, attrs: list[str]) -> str:
    """The user's entry (only `attrs`) as LDIF, read as the lab's administrator."""
    r = run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", lab["LAB_LDAPS_URI"],
             "-D", lab["LAB_ADMIN_DN"], "-w", read_secret_file(lab["LAB_ADMIN_PASSWORD_FILE"]),
             "-s", "base", "-b", user_dn(name), *attrs], env=ldap_env(lab), timeout=20)
    if r.returncode != 0:
        raise AssertionError(f"admin read of {name} failed (exit {r.returncode}): {r.stderr}")
    return r.stdout


def password_stamp(lab, name: str) -> str:
    """Changes whenever the user's password is written, readable even for a locked or disabled
    account: the password hash + pwdChangedTime (OpenLDAP), pwdLastSet (AD)."""
    attrs = ["pwdLastSet"] if KIND == "samba" else ["userPassword", "pwdChangedTime"]
    text = ldap_admin_read(lab, name, attrs)
    lines = [l for l in text.splitlines() if l and not l.lower().startswith("dn:")]
    assert lines, f"no {attrs} readable on {name}'s entry: {text!r}"
    return "\n".join(sorted(lines))


def directory_lock(lab, world: World, name: str, wrong: str = "Not-The-Right-Passw0rd-1"):
    """Makes sure `name` is locked in the directory, as a user would: bad binds (both labs lock
    after 3). Does nothing when already locked."""
    world.secret(wrong)
    if not ldap_binds(lab, name, world.passwords[name]):  # already locked (or the lab's carol)
        return
    for _ in range(DIRECTORY_LOCKOUT_BINDS):
        assert not ldap_binds(lab, name, wrong)
    assert not ldap_binds(lab, name, world.passwords[name]), f"{name} is not locked after bad binds"


def directory_unlock(lab, name: str):
    """An operator's unlock: delete pwdAccountLockedTime (OpenLDAP), lockoutTime 0 (AD)."""
    if KIND == "samba":
        ldif = f"dn: {user_dn(name)}\nchangetype: modify\nreplace: lockoutTime\nlockoutTime: 0\n"
    else:
        ldif = f"dn: {user_dn(name)}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"
    m = ldap_admin_modify(lab, ldif)
    assert m.returncode == 0, f"admin unlock of {name} failed (exit {m.returncode}): {m.stderr}"


def ensure_directory_unlocked(lab, world: World, name: str):
    """After a test that may have made the directory lock `name` (bad binds): unlock it if
    needed and prove the known password binds (which also clears the bad-bind count)."""
    if not ldap_binds(lab, name, world.passwords[name]):
        directory_unlock(lab, name)
        assert ldap_binds(lab, name, world.passwords[name]), f"{name} does not bind after an unlock"


def admin_set_password(lab, world: World, name: str, password: str):
    """The lab administrator sets `name`'s password (no policy, no history: OpenLDAP's rootdn,
    Samba's Administrator) and unlocks the account; world.passwords follows. For putting the
    lab back in a known state after a test found the daemon wrote something unexpected."""
    world.secret(password)
    if KIND == "samba":
        value = base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()
        ldif = (f"dn: {user_dn(name)}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {value}\n-\n"
                f"replace: lockoutTime\nlockoutTime: 0\n")
        m = ldap_admin_modify(lab, ldif)
    else:
        m = run(["ldappasswd", "-x", "-H", lab["LAB_LDAPS_URI"], "-D", lab["LAB_ADMIN_DN"],
                 "-w", read_secret_file(lab["LAB_ADMIN_PASSWORD_FILE"]), "-s", password, user_dn(name)],
                env=ldap_env(lab), timeout=20)
    assert m.returncode == 0, f"admin password set for {name} failed (exit {m.returncode}): {m.stderr}"
    world.passwords[name] = password
    ensure_directory_unlocked(lab, world, name)


# --------------------------------------------------------------------------- certificates
@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def pki(workdir: Path) -> Pki:
    d = workdir / "pki"
    d.mkdir()
    return make_pki(d)


def make_pki(d: Path) -> Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (openssl CLI)."""
    def ossl(*args):
        r = run(["openssl", *args], cwd=d, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr}")

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pwresetd e2e CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    os.chmod(d / "server.key", 0o600)
    return Pki(ca=d / "ca.crt", cert=d / "server.crt", key=d / "server.key")


# --------------------------------------------------------------------------- client certificates
@dataclass
class ClientCert:
    cert: Path
    key: Path


class ClientCa:
    """A CA for tls.client_ca that issues client certificates (python3-cryptography, so any
    validity window can be written, past or future, without faking the clock)."""

    def __init__(self, d: Path, common_name: str = "pwresetd e2e client CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(self._from_now(-3600)).not_valid_after(self._from_now(2 * 86400))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.path = d / "ca.crt"
        self.path.write_bytes(self._pem(self.cert))

    @staticmethod
    def _from_now(seconds: int):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        return now + datetime.timedelta(seconds=seconds)

    @staticmethod
    def _pem(cert) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, subject: list[tuple[str, str]], dns: tuple = (), uris: tuple = (),
              valid_from_s: int = -3600, valid_to_s: int = 2 * 86400, server_only: bool = False) -> ClientCert:
        """A client certificate: `subject` as (attribute, value) in RFC 4514 order (most specific
        first: [("CN", "portal"), ("O", "Example")]); validity relative to now in seconds;
        `server_only` gives it the serverAuth purpose alone (not one a client may use)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
                "C": NameOID.COUNTRY_NAME, "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID}
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(oids[t], v) for t, v in reversed(subject)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(self._from_now(valid_from_s)).not_valid_after(self._from_now(valid_to_s))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server_only else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        names = [x509.DNSName(n) for n in dns] + [x509.UniformResourceIdentifier(u) for u in uris]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        out = ClientCert(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        out.cert.write_bytes(self._pem(cert))
        out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        os.chmod(out.key, 0o600)
        return out


# --------------------------------------------------------------------------- API keys
@dataclass
class Keys:
    portal: str  # scopes reset, enroll
    checker: str  # scope check
    changer: str  # scope change


@pytest.fixture(scope="session")
def keys(world: World) -> Keys:
    return Keys(portal=world.secret(secrets.token_urlsafe(32)),
                checker=world.secret(secrets.token_urlsafe(32)),
                changer=world.secret(secrets.token_urlsafe(32)))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- config
DEFAULT_FACTORS = f"""\
factors:
  required: 1
  totp:
    enabled: true
    issuer: "Example"
    digits: 6
    period: {TOTP_PERIOD}
    skew_steps: 1
    algorithm: SHA1
"""
DEFAULT_STATE = """\
state:
  backend: sqlite
  path: state.db
"""


# limits.per_ip_per_minute of every daemon the suite starts, unless a test sets its own: the
# maximum the daemon accepts, so the suite's own traffic (all from 127.0.0.1) is never throttled.
PER_IP_PER_MINUTE = 100000


def config_text(port: int, lab: dict, keys: Keys, uris: list[str] | None = None,
                factors: str = DEFAULT_FACTORS, state: str = DEFAULT_STATE, extra: str = "",
                verify_failures: int | None = None, per_ip_per_minute: int = PER_IP_PER_MINUTE,
                max_connections: int | None = None, pool_size: int = 2, unlock_on_reset: bool = True) -> str:
    """The daemon's YAML, in block style so line:column of every key is predictable.
    `factors` and `state` replace those blocks; `extra` adds top-level blocks (mail:);
    `max_connections` is written only when given."""
    uris = uris or [lab["LAB_LDAPS_URI"]]
    more_limits = f"  max_connections: {max_connections}\n" if max_connections is not None else ""
    return f"""\
listen:
  - "https://127.0.0.1:{port}"
tls:
  certificate: server.crt
  private_key: server.key
clients:
  - name: portal
    api_key_sha256: "{sha256_hex(keys.portal)}"
    scopes: [reset, enroll]
  - name: checker
    api_key_sha256: "{sha256_hex(keys.checker)}"
    scopes: [check]
  - name: selfservice
    api_key_sha256: "{sha256_hex(keys.changer)}"
    scopes: [change]
directory:
  kind: {LAB.directory_kind}
  uris: [{", ".join(json.dumps(u) for u in uris)}]
  ca_file: {lab["LAB_CA"]}
  bind_dn: "{lab["LAB_SVC_DN"]}"
  bind_password_file: {lab["LAB_SVC_PASSWORD_FILE"]}
  user_base: "{lab.get("LAB_USER_BASE", LAB.people)}"
  user_filter: "{LAB.user_filter}"
  timeout_ms: 2000
  pool_size: {pool_size}
  unlock_on_reset: {"true" if unlock_on_reset else "false"}
  protected_groups: ["{lab.get("LAB_PROTECTED_GROUP", OPENLDAP_PROTECTED_GROUP)}"]
policy:
  min_length: 12
  reject_username: true
  banned_words_file: banned.txt
  breached_hashes_file: breached.bin
{factors}{extra}limits:
  verify_failures: {verify_failures or VERIFY_FAILURES}
  lockout_s: {LOCKOUT_S}
  reset_ttl_s: {RESET_TTL_S}
  max_body_bytes: {MAX_BODY_BYTES}
  header_timeout_s: 5
  per_ip_per_minute: {per_ip_per_minute}
{more_limits}{state}secrets:
  key_file: secret.key
audit:
  file: audit.jsonl
log:
  level: debug
"""


# --------------------------------------------------------------------------- HTTP client
DEFAULT = object()


class Reply:
    """One HTTP exchange. Unpacks as (status, headers, json); `str()` shows request + reply,
    so a failed assertion names the exact exchange."""

    def __init__(self, method, path, sent, status, headers, raw):
        self.method, self.path, self.sent = method, path, sent
        self.status, self.headers, self.raw = status, headers, raw
        try:
            self.json = json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    def __iter__(self):
        return iter((self.status, self.headers, self.json))

    def __repr__(self):
        sent = self.sent if self.sent is None or len(self.sent) < 300 else self.sent[:300] + "…"
        raw = self.raw[:500].decode("utf-8", "replace")
        return f"\n  request:  {self.method} {self.path} {sent or ''}\n  response: {self.status} {raw}\n"

    __str__ = __repr__


class Api:
    def __init__(self, port: int, ca: Path, key: str | None, world: World,
                 client_cert: ClientCert | None = None, tls_version: ssl.TLSVersion | None = None):
        """`client_cert`: presented when the daemon asks for one (tls.client_ca);
        `tls_version`: the only TLS version offered (default: 1.2 and 1.3)."""
        self.port, self.key, self.world, self.ca = port, key, world, ca
        self.ctx = ssl.create_default_context(cafile=str(ca))  # verifies chain + IP SAN
        assert self.ctx.verify_mode == ssl.CERT_REQUIRED and self.ctx.check_hostname
        if client_cert is not None:
            self.ctx.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        if tls_version is not None:
            self.ctx.minimum_version = self.ctx.maximum_version = tls_version

    def connection(self, timeout=15.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def call(self, method: str, path: str, body=None, key=DEFAULT, headers=None, raw_body: bytes | None = None,
             content_type: str | None = "application/json", conn: http.client.HTTPSConnection | None = None,
             timeout=15.0) -> Reply:
        key = self.key if key is DEFAULT else key
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        data = raw_body if raw_body is not None else (
            json.dumps(body).encode() if body is not None else None)
        if data is not None and content_type:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        own = conn is None
        conn = conn or self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            got = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            if own:
                conn.close()
        shown = None if data is None else data.decode("utf-8", "replace")
        reply = Reply(method, path, shown, resp.status, got, raw)
        self._check_common(reply)
        return reply

    def _check_common(self, r: Reply):
        """API.md: every response carries Cache-Control: no-store and a JSON body; error
        bodies have `error` and a human `message`; api/openapi.json documents the status for the
        operation and its schema fits the body. Recorded, asserted by test_zz_no_leaks."""
        self.world.replies += 1
        where = f"{r.method} {r.path} -> {r.status}"
        if "no-store" not in r.headers.get("cache-control", ""):
            self.world.violations.append((where, f"Cache-Control is {r.headers.get('cache-control')!r}"))
        if not isinstance(r.json, dict):
            self.world.violations.append((where, f"body is not a JSON object: {r.raw[:200]!r}"))
        elif not r.headers.get("content-type", "").startswith("application/json"):
            self.world.violations.append((where, f"Content-Type is {r.headers.get('content-type')!r}"))
        if r.status >= 400 and isinstance(r.json, dict) and "error" in r.json and r.path != "/v1/health":
            if not isinstance(r.json.get("message"), str) or not r.json["message"]:
                self.world.violations.append((where, f"error body without a message: {r.json}"))
        # api/openapi.json: the status is documented for the operation, the body fits its schema
        for problem in OPENAPI.check_reply(r.method, r.path, r.status, r.json):
            self.world.violations.append((where, f"api/openapi.json: {problem}"))


def assert_error(r: Reply, status: int, code: str):
    assert r.status == status, f"expected {status} {code}:{r}"
    assert isinstance(r.json, dict) and r.json.get("error") == code, f"expected error {code!r}:{r}"


def assert_rate_limited(r: Reply, longest: int = 60):
    """429 rate_limited with retry_after seconds (1..longest) and the same Retry-After header."""
    assert_error(r, 429, "rate_limited")
    ra = r.json.get("retry_after")
    assert isinstance(ra, int) and 1 <= ra <= longest, f"retry_after {ra!r}:{r}"
    assert r.headers.get("retry-after") == str(ra), f"Retry-After header {r.headers.get('retry-after')!r}:{r}"


def same_minute(margin_s: float = 10.0):
    """A limiter may count per wall-clock minute: waits for the next minute when fewer than
    `margin_s` seconds are left of this one, so a short burst is counted in one window."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.5)


# --------------------------------------------------------------------------- raw HTTP over TLS
@dataclass
class RawReply:
    status: int
    headers: dict  # lower-case names
    body: bytes

    @property
    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def __repr__(self):
        return f"{self.status} {self.headers} {self.body[:300]!r}"


class RawConnection:
    """One verified TLS connection to the daemon that sends bytes exactly as given (no
    http.client normalizing them) and reads responses as they come."""

    def __init__(self, port: int, ca: Path, timeout: float = 5.0, client_cert: ClientCert | None = None):
        ctx = ssl.create_default_context(cafile=str(ca))
        if client_cert is not None:
            ctx.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Reads more into buf; False on EOF (or a reset), raises TimeoutError at deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no more bytes from the daemon")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise TimeoutError("no more bytes from the daemon") from None
        except (ConnectionError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, timeout: float = 5.0) -> RawReply | None:
        """The next response, or None when the connection ends first; TimeoutError when
        neither happens within `timeout`."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill(deadline):
                break
        body, self.buf = self.buf[:length], self.buf[length:]
        return RawReply(status, headers, body)

    def closed_within(self, timeout: float) -> bool:
        """True when the daemon ends the connection within `timeout` without sending anything
        more; False when more bytes come (kept in buf) or it stays open."""
        deadline = time.monotonic() + timeout
        try:
            while not self.buf:
                if not self._fill(deadline):
                    return True
        except TimeoutError:
            return False
        return False


def raw_request(method: str, path: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                host: str = "127.0.0.1") -> bytes:
    """An HTTP/1.1 request as bytes; `headers` go out in order, exactly as given (no
    Content-Length is added)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_json_request(method: str, path: str, body, key: str | None = None) -> bytes:
    """A request with a JSON body (Content-Type and Content-Length set), as bytes."""
    data = json.dumps(body).encode()
    headers = [("Authorization", f"Bearer {key}")] if key else []
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    return raw_request(method, path, headers, data)


def send_together(port: int, ca: Path, requests: list[bytes], timeout: float = 30.0) -> list[RawReply | None]:
    """Each request on its own connection, all arriving at once: every connection first gets
    all but the last byte of its request, then the last bytes go out together (so the daemon
    sees the requests complete within a millisecond or so, not one TLS handshake apart)."""
    conns = [RawConnection(port, ca, timeout) for _ in requests]
    try:
        for c, req in zip(conns, requests):
            c.send(req[:-1])
        time.sleep(0.1)  # the daemon has read the heads and is waiting for the last byte
        barrier = threading.Barrier(len(conns))
        replies: list = [None] * len(conns)

        def one(i):
            barrier.wait()
            conns[i].send(requests[i][-1:])
            try:
                replies[i] = conns[i].read_response(timeout)
            except TimeoutError as e:
                replies[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(conns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 10)
    finally:
        for c in conns:
            c.close()
    missing = [r for r in replies if not isinstance(r, RawReply)]
    assert not missing, f"{len(missing)} of {len(replies)} requests got no reply: {missing[:3]}"
    return replies


# --------------------------------------------------------------------------- the daemon
class Daemon:
    def __init__(self, binary: Path, directory: Path, port: int, world: World, pki: Pki):
        self.binary, self.dir, self.port, self.world, self.pki = binary, directory, port, world, pki
        self.config = directory / "pwresetd.yaml"
        self.stderr_path = directory / "pwresetd.stderr.log"
        self.audit_path = directory / "audit.jsonl"
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.preexec_fn = None  # run in the child before exec (e.g. resource.setrlimit)

    def write(self, text: str):
        self.dir.mkdir(parents=True, exist_ok=True)
        for src, name in ((self.pki.cert, "server.crt"), (self.pki.key, "server.key")):
            (self.dir / name).write_bytes(src.read_bytes())
        os.chmod(self.dir / "server.key", 0o600)
        self.config.write_text(text)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self, api: Api):
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([str(self.binary), "-c", str(self.config)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         preexec_fn=self.preexec_fn)
        finally:
            err.close()
        deadline = time.monotonic() + HEALTH_WAIT_S
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pwresetd exited with {self.proc.returncode} during startup; stderr:\n"
                            f"{self.stderr()[-4000:]}")
            try:
                api.call("GET", "/v1/health", key=None, timeout=3)
                return
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                last = e
                time.sleep(0.05)
        self.kill()
        pytest.fail(f"pwresetd did not answer /v1/health within {HEALTH_WAIT_S}s (last error: {last!r}); "
                    f"stderr:\n{self.stderr()[-4000:]}")

    def stop(self, timeout=15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            self.exit_code = None if self.proc is None else self.proc.returncode
            return self.exit_code
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"pwresetd did not exit within {timeout}s of SIGTERM")
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def audit(self, event: str | None = None) -> list[dict]:
        """The audit records so far (only `event`'s, if given), oldest first."""
        if not self.audit_path.exists():
            return []
        records = [json.loads(l) for l in self.audit_path.read_text().splitlines() if l.strip()]
        return [r for r in records if event is None or r.get("event") == event]

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


# The password policy's lists (tests/e2e/test_11_policy.py): Microsoft's worked example terms,
# and a breached set compiled by the real `pwresetctl breached compile` from HIBP-style lines.
BANNED_TERMS = ["contoso", "blank"]
BREACHED_PASSWORD = "Summer-Holiday-Lagoon-2019"


def write_policy_lists(binary: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "banned.txt").write_text("# e2e banned terms\n" + "\n".join(BANNED_TERMS) + "\n")
    lines = [hashlib.sha1(BREACHED_PASSWORD.encode()).hexdigest().upper() + ":42"]
    lines += [hashlib.sha1(f"filler-{i}".encode()).hexdigest().upper() + ":1" for i in range(200)]
    pwresetctl = binary.parent / "pwresetctl"
    if not pwresetctl.exists():
        pytest.fail(f"pwresetctl missing next to {binary} (cmake --build BUILD --target pwresetctl)")
    run([str(pwresetctl), "breached", "compile", "-", str(directory / "breached.bin")],
        input="\n".join(lines) + "\n", check=True)


def start_daemon(binary, directory, world, pki, keys, lab, uris=None, preexec_fn=None,
                 **config) -> tuple[Daemon, Api]:
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    d.preexec_fn = preexec_fn
    write_policy_lists(binary, directory)
    d.write(config_text(port, lab, keys, uris, **config))
    api = Api(port, pki.ca, keys.portal, world)
    d.start(api)
    return d, api


@pytest.fixture(scope="session")
def daemon(binary, workdir, world, pki, keys, lab):
    d, _ = start_daemon(binary, workdir / "daemon", world, pki, keys, lab)
    try:
        yield d
    finally:
        code = d.stop()
        print(f"\npwresetd stderr log: {d.stderr_path}\naudit: {d.audit_path}")
    assert code == 0, f"pwresetd exited with {code} after SIGTERM (expected 0); stderr tail:\n{d.stderr()[-3000:]}"
    leaks = find_leaks(world, [d.stderr_path, d.audit_path])
    assert not leaks, "secrets in the daemon's log/audit after shutdown:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def api(daemon, pki, keys, world) -> Api:
    return Api(daemon.port, pki.ca, keys.portal, world)


@pytest.fixture(scope="session")
def checker_api(daemon, pki, keys, world) -> Api:
    return Api(daemon.port, pki.ca, keys.checker, world)


@pytest.fixture(scope="session")
def change_api(daemon, pki, keys, world) -> Api:
    """The `selfservice` client: scope change only."""
    return Api(daemon.port, pki.ca, keys.changer, world)


# --------------------------------------------------------------------------- TOTP
def totp_at(secret: str, t: int) -> str:
    r = run(["oathtool", "--totp", "-d", "6", "-s", f"{TOTP_PERIOD}s", "-b", secret, "--now", f"@{int(t)}"],
            timeout=10)
    if r.returncode != 0:
        raise AssertionError(f"oathtool failed for the daemon's secret: {r.stderr}")
    return r.stdout.strip()


def code_for_step(secret: str, step: int) -> str:
    return totp_at(secret, step * TOTP_PERIOD)


def now_step() -> int:
    return int(time.time()) // TOTP_PERIOD


def fresh_code(world: World, user: str) -> tuple[str, int]:
    """A code the daemon must accept now for `user`: the current step, or the next one
    (skew_steps 1) when the current one was already used. Sleeps only if even the next
    step is used (not expected in this suite)."""
    secret = world.totp[user]
    while True:
        cur = now_step()
        step = max(cur, world.last_step.get(user, -1) + 1)
        if step <= cur + 1:
            code = code_for_step(secret, step)
            world.codes.add(code)
            return code, step
        time.sleep((cur + 1) * TOTP_PERIOD - time.time() + 0.05)


def wrong_code(world: World, user: str | None = None) -> str:
    """A 6-digit code that is valid for none of the steps around now."""
    avoid = set()
    if user and user in world.totp:
        cur = now_step()
        avoid = {code_for_step(world.totp[user], s) for s in range(cur - 3, cur + 4)}
    while True:
        code = f"{secrets.randbelow(10**6):06d}"
        if code not in avoid:
            world.codes.add(code)
            return code


def enroll(api: Api, world: World, user: str) -> str:
    """Enrolls TOTP for `user` (201 + confirm 200) and records the secret and used step."""
    r = api.call("POST", "/v1/enrollments/totp", {"username": user, "current_password": world.passwords[user]})
    assert r.status == 201, f"enrollment of {user}:{r}"
    secret = world.secret(r.json["secret"])
    world.totp[user] = secret
    code, step = fresh_code(world, user)
    c = api.call("POST", f"/v1/enrollments/totp/{r.json['enrollment_id']}/confirm", {"code": code})
    assert c.status == 200 and c.json.get("status") == "enrolled", f"confirm for {user}:{c}"
    assert set(c.json) == {"status", "recovery_codes"}, c
    codes = c.json["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10, c
    assert all(RECOVERY_CODE.match(x) for x in codes), c
    world.recovery[user] = [world.secret(x) for x in codes]
    world.last_step[user] = step
    return secret


def ensure_enrolled(api: Api, world: World, user: str) -> str:
    return world.totp[user] if user in world.totp else enroll(api, world, user)


def start_reset(api: Api, user: str) -> Reply:
    return api.call("POST", "/v1/resets", {"username": user})


# --------------------------------------------------------------------------- leak check
SIX_DIGITS = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})(?![0-9A-Za-z])")
BENIGN_NUMBER_KEYS = re.compile(r"(pid|port|_ms|_us|ms$|us$|duration|elapsed|latency|bytes|size|len|count|time|line)",
                                re.I)


def find_leaks(world: World, files: list[Path]) -> list[str]:
    found = []
    for f in files:
        if not f.exists():
            continue
        text = f.read_text(errors="replace")
        for s in sorted(world.sensitive):
            variants = {s, s.lower(), s.rstrip("=")} if BASE32.match(s) else {s}
            for v in variants:
                if len(v) >= 6 and v in text:
                    line = next(l for l in text.splitlines() if v in l)
                    found.append(f"{f.name}: secret {v[:4]}… appears in: {line[:300]}")
                    break
        # 6-digit codes: flag a whole-token occurrence unless it is the value of an
        # obviously numeric field (pid=, port=, duration_ms=…), which may collide by chance.
        # One pass over every 6-digit token (a pass per code took seconds on a big log).
        first: dict[str, str] = {}
        for m in SIX_DIGITS.finditer(text):
            code = m.group(1)
            if code not in world.codes or code in first:
                continue
            before = text[max(0, m.start() - 40):m.start()]
            km = re.search(r"""["']?([A-Za-z_][\w.-]*)["']?\s*[=:]\s*["']?$""", before)
            if km and BENIGN_NUMBER_KEYS.search(km.group(1)):
                continue
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            first[code] = f"{f.name}: TOTP code {code} appears in: {text[line_start:line_end][:300]}"
        found += [first[code] for code in sorted(first)]
    return found


# --------------------------------------------------------------------------- mail and SMS
LAB_PYTHON = "/usr/bin/python3"  # Debian's: it has python3-aiosmtpd
CODE_RE = re.compile(r"(?<![0-9])([0-9]{6})(?![0-9])")
DELIVERY_WAIT_S = 20.0


def start_lab_server(script: str, args: list[str], directory: Path) -> tuple[subprocess.Popen, int]:
    """tests/lab/<script> in `directory`; waits for its ready file and returns (process, port)."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready"
    log = open(directory / "server.log", "ab")
    try:
        proc = subprocess.Popen([LAB_PYTHON, str(SOURCE_DIR / "tests" / "lab" / script), *args,
                                 "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            return proc, int(ready.read_text().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{script} did not start: {(directory / 'server.log').read_text()[-2000:]}")


def stop_lab_server(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def email_of(user: str) -> str:
    """The user's address in both labs (the `mail` attribute)."""
    return f"{user}@example.test"


# the `mobile` attribute in both labs (bob, dave, erin have none)
MOBILE = {"alice": "+46701234567", "carol": "+46701234569"}


def code_in_text(world: World, text: str) -> str:
    m = CODE_RE.search(text)
    assert m, f"no 6-digit code in the message text ({len(text)} characters)"
    world.codes.add(m.group(1))
    return m.group(1)


class SmtpSink:
    """tests/lab/smtp_sink.py offering STARTTLS with the e2e certificate; pwresetd is
    configured with require_tls and the e2e CA, so every mail proves verified TLS.
    With tls=False the sink speaks plain SMTP only (no STARTTLS offered)."""
    sender = "pwreset@example.test"

    def __init__(self, directory: Path, pki: Pki, tls: bool = True):
        self.dir, self.pki, self.tls = directory / "mail", pki, tls
        args = ["--dir", str(self.dir)]
        if tls:
            args += ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key), "--require-starttls"]
        self.proc, self.port = start_lab_server("smtp_sink.py", args, directory)

    def mail_block(self, require_tls: bool | None = True) -> str:
        """The daemon's `mail:` block for this sink; require_tls None leaves the key out."""
        text = (f'mail:\n  smtp_url: "smtp://127.0.0.1:{self.port}"\n  from: "{self.sender}"\n'
                f"  ca_file: {self.pki.ca}\n  timeout_ms: 5000\n")
        if require_tls is not None:
            text += f"  require_tls: {'true' if require_tls else 'false'}\n"
        return text

    def _emls(self) -> list[Path]:
        return sorted(self.dir.glob("*.eml"))

    def count(self) -> int:
        return len(self._emls())

    def recipients_since(self, after: int) -> list[str]:
        """The envelope recipients of every mail after the first `after` ones."""
        return [to for eml in self._emls()[after:]
                for to in json.loads(eml.with_suffix(".json").read_text())["rcpt_tos"]]

    def wait_message(self, after: int, to: str):
        """The first message to `to` that arrived after the first `after` ones, parsed; fails
        after DELIVERY_WAIT_S. Always for one recipient: a late mail to someone else (a code
        the daemon is still sending for an earlier test) must never be taken for this one."""
        import email
        import email.policy
        assert to, "wait for a recipient: the next mail to anyone may be another test's"
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while time.monotonic() < deadline:
            for eml in self._emls()[after:]:
                meta = json.loads(eml.with_suffix(".json").read_text())
                if meta["rcpt_tos"] == [to]:
                    if self.tls:
                        assert meta["tls"] and meta["starttls"], f"mail came without TLS: {meta}"
                    mail = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
                    assert mail["To"] == to, f"envelope to {to} but To: {mail['To']}"
                    return mail
                assert to not in meta["rcpt_tos"], f"a code mail with several recipients: {meta}"
            time.sleep(0.05)
        pytest.fail(f"no mail to {to} arrived within {DELIVERY_WAIT_S}s "
                    f"(sink log: {(self.dir.parent / 'server.log').read_text()[-1000:]})")

    def code_in(self, world: World, text: str) -> str:
        return code_in_text(world, text)

    def wait_code(self, world: World, after: int, to: str) -> str:
        return code_in_text(world, self.wait_message(after, to).get_content())


class SmsWebhook:
    """tests/lab/webhook.py over HTTPS with the e2e certificate and a bearer token."""

    def __init__(self, directory: Path, pki: Pki, world: World):
        self.dir, self.ca_file = directory / "sms", pki.ca
        directory.mkdir(parents=True, exist_ok=True)
        self.token_file = directory / "sms-token"
        self.token_file.write_text(world.secret(secrets.token_urlsafe(24)) + "\n")
        os.chmod(self.token_file, 0o600)
        self.proc, self.port = start_lab_server(
            "webhook.py", ["--dir", str(self.dir), "--cert", str(pki.cert), "--key", str(pki.key),
                           "--token-file", str(self.token_file)], directory)
        self.url = f"https://127.0.0.1:{self.port}/send"

    def _accepted(self) -> list[Path]:
        return sorted(self.dir.glob("[0-9]*.json"))

    def count(self) -> int:
        return len(self._accepted())

    def recipients_since(self, after: int) -> list[str]:
        """The numbers of every SMS accepted after the first `after` ones."""
        return [json.loads(p.read_text())["body"]["to"] for p in self._accepted()[after:]]

    def wait_message(self, after: int, to: str) -> tuple[str, str, bool]:
        """(to, text, authorized) of the first SMS to the number `to` accepted after the first
        `after` ones; never another number's (see SmtpSink.wait_message)."""
        assert to, "wait for a recipient: the next SMS to anyone may be another test's"
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while time.monotonic() < deadline:
            for path in self._accepted()[after:]:
                rec = json.loads(path.read_text())
                if rec["body"]["to"] == to:
                    return rec["body"]["to"], rec["body"]["text"], rec["auth"] == "ok"
            time.sleep(0.05)
        pytest.fail(f"no SMS to {to} arrived within {DELIVERY_WAIT_S}s")

    def wait_code(self, world: World, after: int, to: str) -> str:
        return code_in_text(world, self.wait_message(after, to)[1])

    def code_in(self, world: World, text: str) -> str:
        return code_in_text(world, text)


@pytest.fixture(scope="session")
def smtp_sink(workdir, pki):
    sink = SmtpSink(workdir / "smtp", pki)
    try:
        yield sink
    finally:
        stop_lab_server(sink.proc)


@pytest.fixture(scope="session")
def sms_webhook(workdir, pki, world):
    hook = SmsWebhook(workdir / "webhook", pki, world)
    try:
        yield hook
    finally:
        stop_lab_server(hook.proc)
