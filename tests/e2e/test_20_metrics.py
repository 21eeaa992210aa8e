"""20. Metrics (metrics_listen): GET /metrics in the Prometheus text format 0.0.4, scraped from a
real daemon and parsed strictly (every line must parse, every sample must belong to a family
declared before it, no series twice, histograms cumulative with +Inf == _count):
- the counters move by exactly what a few resets, wrong codes, a lockout, a wrong password,
  a plain-text connection to the API port and a reload did; histograms and pool gauges hold;
- build info and start time are there;
- nothing but GET /metrics is served, and oversized, bodied, slow or surplus connections
  are refused without harm;
- https metrics need a client certificate from metrics_client_ca; plain http elsewhere than
  loopback and https without a client CA are refused by --check-config."""
from __future__ import annotations

import math
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (LAB, Api, Daemon, World, config_text, email_of, find_leaks, free_port, start_reset,
                      write_policy_lists)
from nodes import code_world, mail_factors

VERIFY_FAILURES = 3
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A label value: any characters but an unescaped quote, backslash or newline; escapes \\ \" \n.
LABEL = re.compile(rf'({LABEL_NAME})="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(rf"^({METRIC_NAME})(\{{.*\}})? (\S+)$")
HELP = re.compile(rf"^# HELP ({METRIC_NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$")
FLOAT = re.compile(r"^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$")


# --------------------------------------------------------------------------- the strict parser
class Exposition:
    """A parsed scrape: families (name -> type), samples ((name, frozenset(labels)) -> value)."""

    def __init__(self, text: str):
        assert text.endswith("\n"), "the exposition must end with a newline"
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.order: list[tuple[str, dict]] = []
        family = None
        for n, line in enumerate(text[:-1].split("\n"), 1):
            assert line, f"line {n}: empty line"
            if line.startswith("#"):
                if m := HELP.match(line):
                    assert m.group(1) not in self.helps, f"line {n}: second HELP for {m.group(1)}"
                    self.helps[m.group(1)] = unescape_help(m.group(2), n)
                    continue
                m = TYPE.match(line)
                assert m, f"line {n}: a comment that is neither HELP nor TYPE: {line!r}"
                assert m.group(1) not in self.types, f"line {n}: second TYPE for {m.group(1)}"
                assert m.group(1) in self.helps, f"line {n}: TYPE {m.group(1)} without HELP before it"
                family = m.group(1)
                self.types[family] = m.group(2)
                continue
            m = SAMPLE.match(line)
            assert m, f"line {n}: not a sample line: {line!r}"
            name, labels_text, value_text = m.groups()
            assert family is not None, f"line {n}: sample before any TYPE"
            kind = self.types[family]
            allowed = {family} if kind != "histogram" else {family + s for s in ("_bucket", "_sum", "_count")}
            assert name in allowed, f"line {n}: {name} is not part of family {family} ({kind})"
            labels = parse_labels(labels_text or "", n)
            if kind == "histogram" and name.endswith("_bucket"):
                assert "le" in labels, f"line {n}: bucket without le"
            else:
                assert "le" not in labels, f"line {n}: le outside a bucket"
            assert FLOAT.match(value_text), f"line {n}: bad value {value_text!r}"
            key = (name, frozenset(labels.items()))
            assert key not in self.samples, f"line {n}: series given twice: {line!r}"
            self.samples[key] = float(value_text)
            self.order.append((name, labels))

    def value(self, name: str, **labels) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def get(self, name: str, **labels) -> float:
        """The value, 0 for a series not (yet) exposed."""
        v = self.value(name, **labels)
        return 0.0 if v is None else v

    def matching(self, name: str, **labels) -> dict[frozenset, float]:
        """Every series of `name` whose labels include `labels`."""
        return {k[1]: v for k, v in self.samples.items()
                if k[0] == name and all((a, b) in k[1] for a, b in labels.items())}

    def check_histograms(self):
        """Per histogram series: buckets in ascending le, cumulative, +Inf last and equal to
        _count, _sum present and not negative (our histograms measure durations)."""
        checked = 0
        for family, kind in self.types.items():
            if kind != "histogram":
                continue
            series: dict[frozenset, list[tuple[float, float]]] = {}
            for name, labels in self.order:
                if name == family + "_bucket":
                    rest = frozenset((k, v) for k, v in labels.items() if k != "le")
                    le = labels["le"]
                    series.setdefault(rest, []).append(
                        (math.inf if le == "+Inf" else float(le), self.samples[(name, frozenset(labels.items()))]))
            assert series, f"histogram {family} has no series"
            for rest, buckets in series.items():
                les = [le for le, _ in buckets]
                assert les == sorted(les) and len(set(les)) == len(les), f"{family}{dict(rest)}: le order {les}"
                assert les[-1] == math.inf, f"{family}{dict(rest)}: no le=\"+Inf\""
                counts = [c for _, c in buckets]
                assert all(a <= b for a, b in zip(counts, counts[1:])), f"{family}{dict(rest)}: not cumulative {counts}"
                count = self.samples.get((family + "_count", rest))
                total = self.samples.get((family + "_sum", rest))
                assert count == counts[-1], f"{family}{dict(rest)}: _count {count} != +Inf bucket {counts[-1]}"
                assert total is not None and total >= 0, f"{family}{dict(rest)}: _sum {total}"
                checked += 1
        return checked


def unescape_help(text: str, n: int) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            assert i + 1 < len(text) and text[i + 1] in "\\n", f"line {n}: bad escape in HELP"
            out.append("\n" if text[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_labels(text: str, n: int) -> dict[str, str]:
    if not text:
        return {}
    assert text.startswith("{") and text.endswith("}"), f"line {n}: bad label set {text!r}"
    inner, labels, pos = text[1:-1], {}, 0
    while pos < len(inner):
        m = LABEL.match(inner, pos)
        assert m, f"line {n}: bad label at {inner[pos:]!r}"
        name, value = m.group(1), re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        assert name not in labels, f"line {n}: label {name} twice"
        assert not name.startswith("__"), f"line {n}: reserved label name {name}"
        labels[name] = value
        pos = m.end()
        if pos < len(inner):
            assert inner[pos] == ",", f"line {n}: expected ',' at {inner[pos:]!r}"
            pos += 1
            # Prometheus reads a trailing comma; the daemon never writes one
            assert pos < len(inner), f"line {n}: trailing ',' in the label set"
    return labels


def test_the_parser_refuses_what_is_not_the_format():
    """The parser is strict: each of these must fail (the test of the test)."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
    Exposition(good)
    for bad in ["# TYPE a_total counter\na_total 1\n",                        # no HELP
                good + "a_total{x=\"1\"} 3\n",                                 # series twice
                good + "b_total 1\n",                                          # not in the family
                good.replace('x="1"', 'x="a"b"'),                             # unescaped quote
                good.replace('x="1"', 'x="1",'),                              # trailing comma
                good.replace("} 2", "} two"),                                 # not a number
                good.rstrip("\n"),                                            # no final newline
                good + "\n"]:                                                  # empty line
        with pytest.raises(AssertionError):
            Exposition(bad)
    hist = ("# HELP h Seconds.\n# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 1\nh_count 2\n")
    with pytest.raises(AssertionError):
        Exposition(hist).check_histograms()  # not cumulative


# --------------------------------------------------------------------------- plain HTTP client
def http_exchange(port: int, data: bytes, timeout: float = 5.0, wrap=None) -> tuple[int | None, dict, bytes]:
    """Sends `data`, reads until the server closes (or one full response with
    Content-Length); (status or None when closed without a reply, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if wrap is not None:
        s = wrap(s)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionError, ssl.SSLError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, body = buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    finally:
        s.close()
    if not buf:
        return None, {}, b""
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def get_request(path: str = "/metrics", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode()


def scrape(port: int, wrap=None) -> Exposition:
    status, headers, body = http_exchange(port, get_request(), wrap=wrap)
    assert status == 200, f"GET /metrics: {status} {body[:300]!r}"
    assert headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", headers
    e = Exposition(body.decode("utf-8"))
    assert e.check_histograms() > 0
    return e


def wait_until(port: int, check, timeout: float = 20.0) -> Exposition:
    """Scrapes until check(exposition) holds (the courier delivers on its own threads)."""
    deadline = time.monotonic() + timeout
    while True:
        e = scrape(port)
        if check(e) or time.monotonic() > deadline:
            return e
        time.sleep(0.1)


# --------------------------------------------------------------------------- the daemon
@pytest.fixture(scope="module")
def node(binary, workdir, world, pki, keys, lab, smtp_sink):
    metrics_port = free_port()
    directory = workdir / "node-metrics"
    with code_world(world):
        port = free_port()
        d = Daemon(binary, directory, port, world, pki)
        write_policy_lists(binary, directory)
        d.write(config_text(port, lab, keys, factors=mail_factors(codes_per_hour=50),
                            extra=smtp_sink.mail_block() + f'metrics_listen: "http://127.0.0.1:{metrics_port}"\n',
                            verify_failures=VERIFY_FAILURES))
        api = Api(port, pki.ca, keys.portal, world)
        d.start(api)
        try:
            yield d, api, Api(port, pki.ca, keys.changer, world), metrics_port
        finally:
            code = d.stop()
            assert code == 0, f"pwresetd exited with {code}; stderr:\n{d.stderr()[-3000:]}"
            leaks = find_leaks(world, [d.stderr_path, d.audit_path])
            assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def test_build_info_start_time_and_families(node, binary):
    d, _, _, mport = node
    e = scrape(mport)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.split()[1]
    assert e.matching("pwresetd_build_info") == {frozenset({("version", version)}): 1.0}
    started = e.value("pwresetd_process_start_time_seconds")
    assert started is not None and time.time() - 3600 < started <= time.time(), started
    for name, kind in {"pwresetd_http_requests_total": "counter", "pwresetd_reset_steps_total": "counter",
                       "pwresetd_password_changes_total": "counter", "pwresetd_verify_failures_total": "counter",
                       "pwresetd_lockouts_total": "counter", "pwresetd_codes_sent_total": "counter",
                       "pwresetd_code_delivery_failures_total": "counter",
                       "pwresetd_directory_operation_duration_seconds": "histogram",
                       "pwresetd_directory_errors_total": "counter", "pwresetd_directory_pool_size": "gauge",
                       "pwresetd_directory_pool_connections": "gauge",
                       "pwresetd_tls_handshake_failures_total": "counter",
                       "pwresetd_state_operation_duration_seconds": "histogram",
                       "pwresetd_connections_open": "gauge", "pwresetd_http_requests_in_flight": "gauge",
                       "pwresetd_reloads_total": "counter", "pwresetd_build_info": "gauge",
                       "pwresetd_process_start_time_seconds": "gauge"}.items():
        assert e.types.get(name) == kind, f"{name}: {e.types.get(name)}"
    # the configured pool (pool_size 2 in config_text) and its server
    sizes = e.matching("pwresetd_directory_pool_size")
    assert list(sizes.values()) == [2.0], sizes
    assert e.matching("pwresetd_directory_errors_total", server=lab_uri(d), operation="search"), \
        "the configured server's series are exposed from the start"


def lab_uri(d: Daemon) -> str:
    return re.search(r'uris: \["([^"]+)"\]', d.config.read_text()).group(1)


def test_counters_move_by_what_the_flows_did(node, world: World, smtp_sink):
    d, api, change_api, mport = node
    before = scrape(mport)
    requests = "pwresetd_http_requests_total"

    # a real flow: started, a code mailed (and delivered), then verified with it
    r = start_reset(api, "alice")
    assert r.status == 201, r
    rid = r.json["reset_id"]
    mark = smtp_sink.count()
    c = api.call("POST", f"/v1/resets/{rid}/challenge", {"method": "email"})
    assert c.status == 202, c
    code = smtp_sink.wait_code(world, mark, email_of("alice"))
    v = api.call("POST", f"/v1/resets/{rid}/verify", {"method": "email", "code": code})
    assert v.status == 200, v

    # a decoy flow (unknown user): wrong codes until it locks, then one more (refused unseen)
    decoy = start_reset(api, "nobody-metrics-e2e")
    assert decoy.status == 201, decoy
    did = decoy.json["reset_id"]
    statuses = [api.call("POST", f"/v1/resets/{did}/verify", {"method": "email", "code": "000000"}).status
                for _ in range(VERIFY_FAILURES + 1)]
    assert statuses == [401] * (VERIFY_FAILURES - 1) + [423, 423], statuses

    # a wrong current password for an unknown user; an unknown path
    w = change_api.call("POST", "/v1/password/change", {"username": "nobody-metrics-e2e",
                                                         "current_password": "Wrong-Password-Here-1",
                                                         "new_password": "Another-Long-Password-77"})
    assert w.status == 401, w
    assert api.call("GET", "/v1/no-such-thing").status == 404

    # plain text to the TLS port: a failed handshake
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(1024)
        except OSError:
            pass

    after = wait_until(mport, lambda e: e.get("pwresetd_codes_sent_total", channel="email")
                       > before.get("pwresetd_codes_sent_total", channel="email")
                       and e.get("pwresetd_tls_handshake_failures_total", listener="api")
                       > before.get("pwresetd_tls_handshake_failures_total", listener="api"))

    def moved(name, **labels):
        return after.get(name, **labels) - before.get(name, **labels)

    assert moved(requests, method="POST", route="/v1/resets", status="201") == 2
    assert moved(requests, method="POST", route="/v1/resets/{}/challenge", status="202") == 1
    assert moved(requests, method="POST", route="/v1/resets/{}/verify", status="200") == 1
    assert moved(requests, method="POST", route="/v1/resets/{}/verify", status="401") == VERIFY_FAILURES - 1
    assert moved(requests, method="POST", route="/v1/resets/{}/verify", status="423") == 2
    assert moved(requests, method="POST", route="/v1/password/change", status="401") == 1
    assert moved(requests, method="other", route="unmatched", status="404") == 1
    # no raw path ever becomes a label value
    assert not [k for k in after.matching(requests) if any(v.startswith("/v1/resets/") and "{}" not in v
                                                            for _, v in k)]
    assert moved("pwresetd_reset_steps_total", step="start", outcome="flow_started") == 1
    assert moved("pwresetd_reset_steps_total", step="start", outcome="decoy") == 1
    assert moved("pwresetd_reset_steps_total", step="challenge", outcome="queued") == 1
    assert moved("pwresetd_reset_steps_total", step="verify", outcome="verified") == 1
    assert moved("pwresetd_reset_steps_total", step="verify", outcome="invalid_code") == VERIFY_FAILURES - 1
    assert moved("pwresetd_reset_steps_total", step="verify", outcome="locked") == 1
    assert moved("pwresetd_verify_failures_total", method="email") == VERIFY_FAILURES
    assert moved("pwresetd_lockouts_total", kind="verify") == 1
    assert moved("pwresetd_password_changes_total", outcome="invalid_credentials") == 1
    assert moved("pwresetd_codes_sent_total", channel="email") == 1
    assert moved("pwresetd_code_delivery_failures_total", channel="email", reason="failed") == 0
    assert moved("pwresetd_tls_handshake_failures_total", listener="api") == 1
    # directory searches (start x2, challenge, change) on the configured server, no errors
    uri = lab_uri(d)
    searches = moved("pwresetd_directory_operation_duration_seconds_count", directory=dir_name(after),
                     server=uri, operation="search")
    assert searches >= 4, searches
    assert moved("pwresetd_directory_errors_total", directory=dir_name(after), server=uri, operation="search") == 0
    # the state store: two flows stored, each request's per-IP window
    assert moved("pwresetd_state_operation_duration_seconds_count", backend="sqlite", operation="put_flow") == 2
    assert moved("pwresetd_state_operation_duration_seconds_count", backend="sqlite",
                 operation="hit_window") >= 8
    # nothing in flight between requests; pool within its size
    assert after.value("pwresetd_http_requests_in_flight") == 0
    name = dir_name(after)
    assert 0 <= after.get("pwresetd_directory_pool_connections", directory=name, state="in_use") \
        <= after.get("pwresetd_directory_pool_connections", directory=name, state="open") <= 2


def dir_name(e: Exposition) -> str:
    (labels,) = e.matching("pwresetd_directory_pool_size").keys()
    return dict(labels)["directory"]


def test_a_reload_is_counted_and_the_listener_stays(node):
    d, api, _, mport = node
    before = scrape(mport)
    d.proc.send_signal(signal.SIGHUP)
    after = wait_until(mport, lambda e: e.get("pwresetd_reloads_total", outcome="applied")
                       > before.get("pwresetd_reloads_total", outcome="applied"))
    assert after.get("pwresetd_reloads_total", outcome="applied") - before.get("pwresetd_reloads_total",
                                                                                outcome="applied") == 1
    assert after.get("pwresetd_reloads_total", outcome="refused") == before.get("pwresetd_reloads_total",
                                                                                 outcome="refused")
    # the process-wide values survive: build info, start time
    assert after.value("pwresetd_process_start_time_seconds") == before.value("pwresetd_process_start_time_seconds")
    assert api.call("GET", "/v1/health", key=None).status == 200


def test_a_refused_reload_is_counted_and_a_new_address_needs_a_restart(node):
    d, _, _, mport = node
    good = d.config.read_text()
    applied = "pwresetd_reloads_total"

    def reload_and_wait(outcome: str) -> Exposition:
        before = scrape(mport).get(applied, outcome=outcome)
        d.proc.send_signal(signal.SIGHUP)
        after = wait_until(mport, lambda e: e.get(applied, outcome=outcome) > before)
        assert after.get(applied, outcome=outcome) == before + 1, outcome
        return after

    try:
        d.config.write_text(good.replace("limits:\n", "limits:\n  no_such_key: 1\n"))
        reload_and_wait("refused")
        other = free_port()
        d.config.write_text(good.replace(f"127.0.0.1:{mport}", f"127.0.0.1:{other}"))
        reload_and_wait("applied")
        assert re.search(r"event=daemon.reload_needs_restart .*metrics_listen: the metrics listener stays",
                         d.stderr()), d.stderr()[-2000:]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other), timeout=3).close()
    finally:
        d.config.write_text(good)
        reload_and_wait("applied")


def test_only_get_metrics_is_served(node):
    _, _, _, mport = node
    status, headers, _ = http_exchange(mport, get_request("/"))
    assert status == 404, status
    status, _, _ = http_exchange(mport, get_request("/metrics/extra"))
    assert status == 404, status
    status, _, _ = http_exchange(mport, get_request("/v1/health"))
    assert status == 404, status
    for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS"):
        status, headers, _ = http_exchange(mport, get_request(method=method))
        assert status == 405 and headers.get("allow") == "GET", (method, status, headers)
    status, _, body = http_exchange(mport, get_request("/metrics?name[]=x"))
    assert status == 200 and b"pwresetd_build_info" in body


def test_oversized_bodied_malformed_slow_and_surplus_requests_are_refused(node):
    d, _, _, mport = node
    cpu_before = d.cpu_seconds()
    big = get_request(extra="X-Filler: " + "a" * 5000 + "\r\n")
    status, _, _ = http_exchange(mport, big)
    assert status == 431, status
    many = get_request(extra="".join(f"X-{i}: {'b' * 60}\r\n" for i in range(200)))
    status, _, _ = http_exchange(mport, many)
    assert status == 431, status
    bodied = b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"z" * 1000
    status, _, _ = http_exchange(mport, bodied)
    assert status == 413, status
    chunked = b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    status, _, _ = http_exchange(mport, chunked)
    assert status == 413, status
    status, _, _ = http_exchange(mport, b"GARBAGE\r\n\r\n")
    assert status == 400, status

    # a slow client is dropped at the timeout (5 s), and surplus connections at once
    held = [socket.create_connection(("127.0.0.1", mport), timeout=10) for _ in range(16)]
    try:
        held[0].sendall(b"GET /metrics HTTP/1.1\r\n")  # never finished
        t0 = time.monotonic()
        status, _, _ = http_exchange(mport, get_request(), timeout=5)
        assert status is None, "a 17th connection was served"
        assert time.monotonic() - t0 < 3
        held[0].settimeout(10)
        t0 = time.monotonic()
        assert held[0].recv(1024) == b"", "the slow connection got a reply"
        assert 3 < time.monotonic() - t0 < 8, time.monotonic() - t0
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the held connections' sessions end as the daemon sees them closed
        status, _, _ = http_exchange(mport, get_request())
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, "the listener did not recover after the surplus connections closed"
    assert d.cpu_seconds() - cpu_before < 3, "refusing requests cost CPU time"
    assert d.alive()


# --------------------------------------------------------------------------- https + client certificates
def make_client_pki(directory: Path) -> dict[str, Path]:
    """A scraper CA with one client certificate, and a second CA with another."""
    directory.mkdir(parents=True, exist_ok=True)

    def ossl(*args):
        r = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    for ca in ("scrape-ca", "other-ca"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN={ca}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        client = ca.replace("-ca", "-client")
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             f"{client}.key", "-out", f"{client}.csr", "-subj", f"/CN={client}")
        (directory / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        ossl("x509", "-req", "-in", f"{client}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{client}.crt", "-days", "2", "-extfile", "client.ext")
    return {name: directory / name for name in ("scrape-ca.crt", "scrape-client.crt", "scrape-client.key",
                                                "other-client.crt", "other-client.key")}


def test_https_metrics_need_a_client_certificate(binary, workdir, world, pki, keys, lab):
    directory = workdir / "node-metrics-tls"
    files = make_client_pki(directory / "clients")
    mport, port = free_port(), free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    d.write(config_text(port, lab, keys, extra=f'metrics_listen: "https://127.0.0.1:{mport}"\n'
                                               f'metrics_client_ca: {files["scrape-ca.crt"]}\n'))
    d.start(Api(port, pki.ca, keys.portal, world))
    try:
        def wrapper(client: str | None):
            ctx = ssl.create_default_context(cafile=str(pki.ca))
            if client:
                ctx.load_cert_chain(str(files[f"{client}.crt"]), str(files[f"{client}.key"]))
            return lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1")

        e = scrape(mport, wrap=wrapper("scrape-client"))
        assert e.value("pwresetd_build_info", version=next(iter(dict(k)["version"] for k in
                                                                e.matching("pwresetd_build_info")))) == 1
        for client in (None, "other-client"):
            try:
                status, _, _ = http_exchange(mport, get_request(), wrap=wrapper(client))
            except (ssl.SSLError, ConnectionError, OSError):
                status = None
            assert status is None, f"served to {client or 'a client without a certificate'}"
        failed = scrape(mport, wrap=wrapper("scrape-client"))
        assert failed.get("pwresetd_tls_handshake_failures_total", listener="metrics") == 2
        # plain http to the https port is no way in either
        status, _, _ = http_exchange(mport, get_request())
        assert status != 200
    finally:
        code = d.stop()
    assert code == 0, f"pwresetd exited with {code}; stderr:\n{d.stderr()[-3000:]}"


@pytest.mark.parametrize("lines, message", [
    ('metrics_listen: "http://0.0.0.0:{port}"\n',
     "metrics_listen: plain http:// is allowed only on a loopback address (127.0.0.1, [::1]), got '0.0.0.0'; "
     "use https:// with metrics_client_ca"),
    ('metrics_listen: "https://127.0.0.1:{port}"\n',
     "metrics_listen: https:// needs client certificates: set metrics_client_ca to the CA that issued the "
     "scrapers' certificates"),
])
def test_check_config_refuses_exposed_metrics(binary, workdir, world, pki, keys, lab, lines, message):
    directory = workdir / f"metrics-check-{abs(hash(lines))}"
    port = free_port()
    d = Daemon(binary, directory, port, world, pki)
    write_policy_lists(binary, directory)
    d.write(config_text(port, lab, keys, extra=lines.format(port=free_port())))
    r = subprocess.run([str(binary), "--check-config", "-c", str(d.config)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(rf"^{re.escape(str(d.config))}:\d+:\d+: {re.escape(message)}$", r.stderr, re.M), r.stderr
