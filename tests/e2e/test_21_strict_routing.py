"""21. Strict routing: the router normalizes nothing. Every route of the daemon's table
(read from daemon/api.cpp, so a new route is walked too) is sent written in ways a lenient
router would take for it: doubled, trailing and dot segments, percent-encoded dots, slashes
and letters, ;params, case variants, backslashes. Each is 401 without a key (authentication
before routing: no route discovery) and 404 not_found with one, while the exact path is
routed (not 404/405). A route's {} takes only an id of the shape the daemon issues."""
from __future__ import annotations

import re

import pytest

from conftest import SOURCE_DIR, Api, RawConnection, RawReply, raw_request

ROUTE_ROW = re.compile(r'route_spec\{\s*"([A-Z]+)",\s*"(/[^"]*)"')
ISSUED_ID = "A" * 43  # the shape of an issued id (43 base64url characters), never issued


def route_table() -> list[tuple[str, str]]:
    text = (SOURCE_DIR / "daemon" / "api.cpp").read_text()
    return ROUTE_ROW.findall(text)


ROUTES = route_table()


def concrete(path: str) -> str:
    return path.replace("{}", ISSUED_ID)


def percent(c: str) -> str:
    return "%{:02X}".format(ord(c))


def variants(path: str) -> list[str]:
    head, _, tail = path.rpartition("/")
    rest = path[len("/v1"):]
    return [
        "/" + path,                       # //v1/resets
        "/v1/" + rest,                    # /v1//resets
        path + "/",                       # /v1/resets/
        path + "//",
        path + "/.",
        "/v1/." + rest,                   # /v1/./resets
        "/v1/x/.." + rest,                # /v1/x/../resets
        "/v1/%2e" + rest,                 # encoded dot segment
        "/v1/%2E%2E/v1" + rest,
        head + "%2f" + tail,              # encoded slash
        head + "%2F" + tail,
        head + "/" + percent(tail[0]) + tail[1:],  # /v1/%70olicy
        path + ";",                       # ;params
        path + ";jsessionid=1",
        "/v1;x=1" + rest,
        head + "\\" + tail,               # backslash
        "\\v1" + rest,
        path.upper(),                     # /V1/POLICY
        "/V1" + rest,
        head + "/" + tail[0].upper() + tail[1:],   # /v1/Policy
        path + "%20",
        path + "%00",
        path + ".json",
    ]


def send(port: int, ca, method: str, target: str, key: str | None) -> RawReply:
    headers = [("Authorization", f"Bearer {key}")] if key else []
    body = b""
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        body = b"{}"
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    with RawConnection(port, ca, timeout=10) as c:
        c.send(raw_request(method, target, headers, body))
        reply = c.read_response(timeout=10)
    assert reply is not None, f"{method} {target}: no reply"
    return reply


def test_the_route_table_was_read():
    # The table has at least the routes of API.md this version serves; an empty parse would
    # make the walk below pass without walking anything.
    assert len(ROUTES) >= 12, ROUTES
    assert ("GET", "/v1/health") in ROUTES and ("POST", "/v1/resets/{}/verify") in ROUTES, ROUTES


@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_every_variant(api: Api, method, path):
    exact = concrete(path)
    routed = send(api.port, api.ca, method, exact, api.key)
    assert routed.status not in (404, 405), f"{method} {exact} is not routed: {routed}"
    for target in variants(exact):
        unauthenticated = send(api.port, api.ca, method, target, None)
        assert unauthenticated.status == 401 and unauthenticated.json.get("error") == "unauthenticated", \
            f"{method} {target} without a key: {unauthenticated}"
        authenticated = send(api.port, api.ca, method, target, api.key)
        assert authenticated.status == 404 and authenticated.json.get("error") == "not_found", \
            f"{method} {target} with a key: {authenticated}"


@pytest.mark.parametrize("param", [
    "bogus",                      # too short
    "A" * 42,
    "A" * 44,
    "A" * 42 + "B",               # 43, but not how 256 bits end
    "A" * 42 + "%41",             # encoded
    "A" * 42 + "=",
    "A" * 42 + ".",
    "r" + "A" * 43,               # an enrollment id's "r" is no part of a reset id
])
def test_a_reset_id_of_another_shape_is_404(api: Api, param):
    target = f"/v1/resets/{param}/verify"
    assert send(api.port, api.ca, "POST", target, None).status == 401
    r = send(api.port, api.ca, "POST", target, api.key)
    assert r.status == 404 and r.json.get("error") == "not_found", f"{target}: {r}"


def test_an_unknown_id_of_the_right_shape_is_still_410(api: Api):
    r = api.call("POST", f"/v1/resets/{ISSUED_ID}/verify", {"method": "totp", "code": "123456"})
    assert r.status == 410 and r.json.get("error") == "reset_expired", r
    r = api.call("POST", f"/v1/enrollments/totp/r{ISSUED_ID}/confirm", {"code": "123456"})
    assert r.status == 410 and r.json.get("error") == "enrollment_expired", r
