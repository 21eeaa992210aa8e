#!/usr/bin/python3
"""An HTTPS receiver for the SMS webhook: stores every JSON body it accepts.

Used by tests/integration/delivery_test.cpp and by the end-to-end tests. Standard library
only; the tests run it with /usr/bin/python3.

    webhook.py --cert C --key K --dir D [--host 127.0.0.1] [--port 0] [--ready-file F]
               [--token-file T] [--fail-first N] [--delay-ms N]

  --port 0          pick a free port (the default); it is printed on stdout and written
                    to the ready file.
  --cert/--key      the server certificate and key (PEM). TLS 1.2 or later only.
  --token-file T    T holds the expected bearer token (one line; trailing newline ignored).
                    A POST without "Authorization: Bearer <token>" gets 401.
  --fail-first N    answer 503 to the first N requests (any path, any token), for retries.
  --delay-ms N      wait N ms before handling each request (for client timeouts).
  --ready-file F    written atomically once the server listens; it holds the port number
                    and a newline.

Any path is accepted. Answers: 503 (--fail-first), then 405 for a method other than POST,
401 for a missing or wrong token, 400 when the body is not a JSON object with string "to"
and "text", else 200 {"ok": true, "id": <seq>}.

Output (requests are numbered from 1 in arrival order, whatever the answer):
  D/requests.jsonl   one line per request: {"seq", "method", "path", "status", "auth"}
                     (no body), appended after the answer is decided.
  D/<seq>.json       only for accepted (200) requests, written atomically:
                     {"seq", "path", "auth", "content_type", "body": <the JSON body>}
                     <seq> is zero-padded to 6 digits (000003.json).
"auth" is "ok" (token matched), "none" (no --token-file; the header is not checked),
"missing" or "wrong". Delayed requests are still handled (and may be stored) after the
client has given up, as a real gateway would.

Runs in the foreground until SIGTERM or SIGINT, then exits 0. Log lines go to stderr.
"""

import argparse
import hmac
import http.server
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

MAX_BODY = 64 * 1024


def write_atomically(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class State:
    def __init__(self, args, token):
        self.dir = args.dir
        self.token = token
        self.fail_first = args.fail_first
        self.delay_ms = args.delay_ms
        self.lock = threading.Lock()
        self.seq = 0

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def record(self, entry):
        with self.lock:
            with open(os.path.join(self.dir, "requests.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook-lab"
    timeout = 30

    def log_message(self, fmt, *args):
        sys.stderr.write("webhook: %s %s\n" % (self.address_string(), fmt % args))

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def auth_outcome(self, state):
        if state.token is None:
            return "none"
        header = self.headers.get("Authorization")
        if header is None:
            return "missing"
        expected = b"Bearer " + state.token
        return "ok" if hmac.compare_digest(header.encode("latin-1"), expected) else "wrong"

    def handle_any(self):
        state = self.server.state
        seq = state.next_seq()
        if state.delay_ms > 0:
            time.sleep(state.delay_ms / 1000.0)
        auth = self.auth_outcome(state)
        body = None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            status, payload = 413, {"error": "bad or too large Content-Length"}
        else:
            raw = self.rfile.read(length)
            if seq <= state.fail_first:
                status, payload = 503, {"error": "failing on purpose"}
            elif self.command != "POST":
                status, payload = 405, {"error": "POST only"}
            elif auth in ("missing", "wrong"):
                status, payload = 401, {"error": "bad token"}
            else:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    body = None
                if not (isinstance(body, dict) and isinstance(body.get("to"), str)
                        and isinstance(body.get("text"), str)):
                    status, payload = 400, {"error": "want a JSON object with to and text"}
                else:
                    status, payload = 200, {"ok": True, "id": seq}
        if status == 200:
            record = {"seq": seq, "path": self.path, "auth": auth,
                      "content_type": self.headers.get("Content-Type"), "body": body}
            write_atomically(os.path.join(state.dir, "%06d.json" % seq),
                             json.dumps(record, indent=1, ensure_ascii=False).encode("utf-8"))
        state.record({"seq": seq, "method": self.command, "path": self.path,
                      "status": status, "auth": auth})
        try:
            self.answer(status, payload)
        except OSError:
            pass  # the client gave up (timeout tests)

    do_POST = handle_any
    do_GET = handle_any
    do_PUT = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, context, state):
        self.context = context
        self.state = state
        super().__init__(address, Handler)

    # The TLS handshake runs in the request's thread, so a client that connects and says
    # nothing (or rejects the certificate) cannot stall the accept loop.
    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write("webhook: TLS handshake with %s failed: %s\n" % (client_address, e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--token-file")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--ready-file")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    token = None
    if args.token_file:
        with open(args.token_file, "rb") as f:
            token = f.read().rstrip(b"\r\n")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)

    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    server = Server((args.host, args.port), ctx, State(args, token))
    port = server.server_address[1]

    def on_signal(signum, frame):
        # shutdown() waits for serve_forever(), which runs in this thread: use another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(port, flush=True)
    if args.ready_file:
        write_atomically(args.ready_file, ("%d\n" % port).encode())
    sys.stderr.write("webhook: listening on https://%s:%d/\n" % (args.host, port))
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
