"""16. Timing: a real user and an unknown one must not be told apart by how long the daemon
takes to answer. For each of start (POST /v1/resets), challenge, verify (a wrong code),
change (a wrong current password) and enroll (a wrong current password), 300 requests for
real users and 300 for unknown ones go out in random order over one keep-alive connection,
timed by the client; a two-sided Mann-Whitney U test (normal approximation with tie and
continuity correction, implemented here: no scipy) must not find a difference at p < 0.01.
p < 0.01 happens 1 time in 100 by chance alone, so on p < 0.01 the whole measurement is
repeated once with fresh users and names, and the test fails only if both are below 0.01.

The daemon here has verify_failures 100 (the maximum) and every user gets fewer than 100
requests of a kind, so what is measured is the real path (code check, directory bind), never
the daemon's lockout; the real users are added for this module with a ppolicy of their own
that never locks them (the lab's default locks after 3 bad binds), so the directory's lockout
never shortens their binds either.

Collected for the OpenLDAP lab only (conftest.collect_ignore): the Samba lab has one
domain-wide lockout policy (3 bad binds) and exempting users from it needs a fine-grained
password policy object, which the lab does not set up; with their accounts locked after 3
binds, real users' wrong passwords would take the directory's "locked" path, not the one
this module means to compare.
"""
from __future__ import annotations

import gc
import http.client
import itertools
import json
import math
import random
import secrets
import statistics
import time
from dataclasses import dataclass, field

import pytest

from conftest import (LAB, Api, Daemon, World, code_for_step, enroll, ldap_admin_modify, ldap_binds, now_step,
                      start_reset)
from nodes import code_world, mail_factors, own_daemon

SAMPLES = 300  # per class (real, unknown) and endpoint
NAMES = 4  # real users (and unknown names) per endpoint and round: each gets SAMPLES / NAMES requests
WARMUP = 10
ALPHA = 0.01
VERIFY_FAILURES = 100  # the daemon's maximum
ENDPOINTS = ["start", "challenge", "verify", "change", "enroll"]
EXPECTED = {"start": 201, "challenge": 202, "verify": 401, "change": 401, "enroll": 401}
NEW_PASSWORD = "Granite-Orchard-Passw0rd-64!"
WRONG_PASSWORD = "Surely-Not-The-Passw0rd-17"
POLICY_DN = "cn=timing-no-lockout,ou=policies,dc=example,dc=test"


# --------------------------------------------------------------------------- the statistic
def mann_whitney_u(x: list[float], y: list[float]) -> tuple[float, float]:
    """(U of x, two-sided p): ranks of the pooled samples (ties get their average rank),
    U = R_x - n_x(n_x+1)/2, z = (|U - n_x n_y/2| - 1/2) / sigma with the tie-corrected
    sigma^2 = n_x n_y/12 * ((n+1) - sum(t^3 - t)/(n(n-1))), p = erfc(z/sqrt 2)."""
    n1, n2 = len(x), len(y)
    n = n1 + n2
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y], key=lambda t: t[0])
    rank_sum_x = 0.0
    tie_term = 0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # ranks are 1-based
        rank_sum_x += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    u = rank_sum_x - n1 * (n1 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0
    z = max(0.0, abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return u, min(1.0, math.erfc(z / math.sqrt(2)))


def test_mann_whitney_u_against_reference_values():
    # SciPy's documented example (mannwhitneyu(males, females, method="asymptotic")):
    # statistic 17.0, pvalue 0.11134688653314041
    u, p = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert u == 17.0 and abs(p - 0.11134688653314041) < 1e-9, (u, p)
    # complete separation, 5 and 5: U = 0, z = 12 / sqrt(275/12)
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0.0 and abs(p - math.erfc(12 / math.sqrt(275 / 12) / math.sqrt(2))) < 1e-12, (u, p)
    assert mann_whitney_u([3, 3, 3], [3, 3, 3]) == (4.5, 1.0)
    assert mann_whitney_u([1, 2, 3], [1, 2, 3])[1] == 1.0


def test_mann_whitney_u_tie_correction_is_the_exact_permutation_variance():
    """Under the null every split of the pooled values is equally likely: the variance of U
    over all splits must be the tie-corrected formula (checked through the p of U = mean + 1)."""
    x, y = [1, 2, 2, 3], [2, 3, 3, 4, 4]
    pooled = x + y
    us = []
    for idx in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[k] for k in idx]
        ys = [pooled[k] for k in range(len(pooled)) if k not in idx]
        us.append(mann_whitney_u(xs, ys)[0])
    mean = statistics.fmean(us)
    exact_variance = statistics.pvariance(us)
    assert mean == len(x) * len(y) / 2
    n = len(pooled)
    ties = sum(t ** 3 - t for t in (1, 3, 3, 2))  # 1, 2 2 2, 3 3 3, 4 4
    formula = len(x) * len(y) / 12 * ((n + 1) - ties / (n * (n - 1)))
    assert abs(exact_variance - formula) < 1e-9, (exact_variance, formula)


# --------------------------------------------------------------------------- the lab users
def names(kind: str, endpoint: str, rnd: int) -> list[str]:
    """Real ("tim") and unknown ("gho") names of one length, so the lookups look alike."""
    return [f"{kind}-e{ENDPOINTS.index(endpoint)}{rnd}-{i:02d}" for i in range(NAMES)]


def add_lab_users(lab, world: World) -> list[str]:
    """A ppolicy that never locks, and NAMES users per endpoint and round under it."""
    ldif = [f"""dn: {POLICY_DN}
changetype: add
objectClass: device
objectClass: pwdPolicy
cn: timing-no-lockout
pwdAttribute: userPassword
pwdLockout: FALSE
pwdMaxFailure: 0
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdSafeModify: FALSE
"""]
    created = []
    for endpoint in ENDPOINTS:
        for rnd in (0, 1):
            for name in names("tim", endpoint, rnd):
                password = world.secret(f"Lab-Timing-{secrets.token_hex(6)}-Aa1!")
                world.passwords[name] = password
                ldif.append(f"""dn: uid={name},{LAB.people}
changetype: add
objectClass: inetOrgPerson
uid: {name}
cn: Timing Person
sn: Person
displayName: Timing Person
mail: {name}@example.test
userPassword: {password}
pwdPolicySubentry: {POLICY_DN}
""")
                created.append(name)
    m = ldap_admin_modify(lab, "\n".join(ldif))
    assert m.returncode == 0, f"adding the timing users failed (exit {m.returncode}): {m.stderr}"
    return created


@dataclass
class Timing:
    d: Daemon
    api: Api  # reset, enroll
    changer: Api
    flows: dict = field(default_factory=dict)  # name -> reset_id


@pytest.fixture(scope="module")
def timing(binary, workdir, world, pki, keys, lab, smtp_sink):
    created = add_lab_users(lab, world)
    for name in created[:1]:
        assert ldap_binds(lab, name, world.passwords[name]), f"the new user {name} does not bind"
    with code_world(world), own_daemon(binary, workdir / "timing", world, pki, keys, lab,
                                       factors=mail_factors(codes_per_hour=1000), extra=smtp_sink.mail_block(),
                                       verify_failures=VERIFY_FAILURES) as (d, api):
        t = Timing(d, api, Api(d.port, pki.ca, keys.changer, world))
        for rnd in (0, 1):  # verify compares TOTP users with unknown ones
            for name in names("tim", "verify", rnd):
                enroll(api, world, name)
        yield t


# --------------------------------------------------------------------------- measuring
def prepared(t: Timing, endpoint: str, name: str):
    """(client key, method, path, body bytes) of one request of `endpoint` for `name`."""
    key = t.changer.key if endpoint == "change" else t.api.key
    if endpoint == "start":
        return key, "/v1/resets", {"username": name}
    if endpoint in ("challenge", "verify"):
        if name not in t.flows:
            r = start_reset(t.api, name)
            assert r.status == 201, r
            t.flows[name] = r.json["reset_id"]
        rid = t.flows[name]
        if endpoint == "challenge":
            return key, f"/v1/resets/{rid}/challenge", {"method": "email"}
        return key, f"/v1/resets/{rid}/verify", {"method": "totp", "code": None}  # code filled per request
    if endpoint == "change":
        return key, "/v1/password/change", {"username": name, "current_password": WRONG_PASSWORD,
                                            "new_password": NEW_PASSWORD}
    return key, "/v1/enrollments/totp", {"username": name, "current_password": WRONG_PASSWORD}


def wrong_codes(world: World, user: str | None):
    """An endless supply of 6-digit codes valid for none of `user`'s steps around now. The
    first few go to the leak check (a daemon that logged codes would log these too; all of
    them would make the check slow)."""
    avoid = set()
    if user in world.totp:
        cur = now_step()
        avoid = {code_for_step(world.totp[user], s) for s in range(cur - 3, cur + 6)}
    for n in itertools.count():
        code = f"{secrets.randbelow(10 ** 6):06d}"
        if code not in avoid:
            if n < 5:
                world.codes.add(code)
            yield code


def measure(t: Timing, world: World, endpoint: str, rnd: int) -> tuple[list[float], list[float]]:
    """SAMPLES timings (ms) for real users and SAMPLES for unknown names, interleaved at random
    over one keep-alive connection."""
    people = {True: names("tim", endpoint, rnd), False: names("gho", endpoint, rnd)}
    requests = {}
    for group in people.values():
        for name in group:
            key, path, body = prepared(t, endpoint, name)
            codes = wrong_codes(world, name) if endpoint == "verify" else None
            requests[name] = (key, path, body, codes)
    order = [(real, i) for real in (True, False) for i in range(SAMPLES)]
    random.shuffle(order)
    order = [(i % 2 == 0, i) for i in range(WARMUP)] + order
    timings = {True: [], False: []}
    conn = http.client.HTTPSConnection("127.0.0.1", t.d.port, context=t.api.ctx, timeout=30)
    conn.connect()
    sock = conn.sock
    gc.disable()
    try:
        for n, (real, i) in enumerate(order):
            name = people[real][i % NAMES]
            key, path, body, codes = requests[name]
            if codes is not None:
                body = dict(body, code=next(codes))
            data = json.dumps(body).encode()
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            started = time.perf_counter_ns()
            conn.request("POST", path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            took = (time.perf_counter_ns() - started) / 1e6
            assert resp.status == EXPECTED[endpoint], \
                f"{endpoint} for {'real' if real else 'unknown'} {name}: {resp.status} {raw[:200]!r}"
            assert conn.sock is sock, "the daemon closed the keep-alive connection"
            if n >= WARMUP:
                timings[real].append(took)
    finally:
        gc.enable()
        conn.close()
    return timings[True], timings[False]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_real_and_unknown_users_take_the_same_time(timing: Timing, world: World, endpoint):
    results = []
    for rnd in (0, 1):
        real, unknown = measure(timing, world, endpoint, rnd)
        _, p = mann_whitney_u(real, unknown)
        line = (f"{endpoint} (round {rnd + 1}): median real {statistics.median(real):.3f} ms, "
                f"unknown {statistics.median(unknown):.3f} ms, n = {len(real)} + {len(unknown)}, "
                f"Mann-Whitney p = {p:.4g}")
        print("\n" + line)
        results.append(line)
        if p >= ALPHA:
            return
    pytest.fail(f"real and unknown users are told apart by timing twice in a row (p < {ALPHA}):\n"
                + "\n".join(results))
