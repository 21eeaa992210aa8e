#!/usr/bin/python3
"""A real SMTP server (Debian's python3-aiosmtpd) that stores every message it accepts.

Used by tests/integration/delivery_test.cpp and by the end-to-end tests. Run it with
Debian's /usr/bin/python3 (another python3 on PATH may lack aiosmtpd).

    smtp_sink.py --dir D [--host 127.0.0.1] [--port 0] [--ready-file F]
                 [--tls-cert C --tls-key K [--require-starttls | --smtps]]
                 [--auth-file A] [--delay-ms N]

  --port 0          pick a free port (the default); it is printed on stdout and written
                    to the ready file.
  --tls-cert/--tls-key
                    offer STARTTLS with this certificate (PEM).
  --require-starttls  refuse MAIL/RCPT/DATA until STARTTLS (needs --tls-cert).
  --smtps           implicit TLS (TLS from the first byte) instead of STARTTLS.
  --auth-file A     A holds "user:password" (one line); AUTH PLAIN/LOGIN is then required,
                    and only over TLS.
  --delay-ms N      wait N ms after the end of DATA before answering 250 (tests use it to
                    see that the sender does not wait for the mail server).
  --ready-file F    written atomically once the server listens; it holds the port number
                    and a newline.

Output, for every accepted message, numbered from 1 in arrival order:
  D/<seq>-<unix time ms>.json   the envelope and how the message came in (see below)
  D/<seq>-<unix time ms>.eml    the message exactly as received (headers and body bytes)
Both are written atomically (temporary name, then rename). The .json is renamed into place
first, so whoever sees a .eml can read its .json. <seq> is zero-padded to 6 digits so that
sorted(glob("*.eml")) is arrival order.

The .json sidecar: {
  "seq": 1, "eml": "000001-....eml", "received_at": 1700000000.123,
  "peer": "127.0.0.1", "helo": "...", "mail_from": "noreply@example.test",
  "rcpt_tos": ["alice@example.test"],
  "tls": true|false, "tls_version": "TLSv1.3"|null, "cipher": "..."|null,
  "starttls": true|false (TLS came from STARTTLS), "smtps": true|false,
  "auth_user": "user"|null,
  and what Python's email package (policy=default) reads from the message:
  "headers": {"subject": ..., "from": ..., "to": ..., "date": ..., "message-id": ...,
              "content-type": ..., "content-transfer-encoding": ..., "mime-version": ...,
              "auto-submitted": ...}   (decoded: RFC 2047 subjects come out as text)
  "body": the decoded text/plain body (CRLF line ends as sent), or null when not text,
  "defects": [parser defects, as strings]
}

Runs in the foreground until SIGTERM or SIGINT, then exits 0. Log lines go to stderr.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.exit("smtp_sink.py: aiosmtpd is missing: install python3-aiosmtpd and run this "
             "with Debian's /usr/bin/python3 (scripts/install-deps)")


def write_atomically(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def describe(raw):
    """What a mail reader sees: decoded headers and text body."""
    out = {"headers": {}, "body": None, "defects": []}
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for name in ("subject", "from", "to", "date", "message-id", "content-type",
                     "content-transfer-encoding", "mime-version", "auto-submitted"):
            value = msg.get(name)
            out["headers"][name] = None if value is None else str(value)
        if msg.get_content_maintype() == "text":
            out["body"] = msg.get_content()
        out["defects"] = [repr(d) for d in msg.defects]
    except Exception as e:  # a sink must store what it got, whatever it is
        out["defects"].append("parse failed: %r" % (e,))
    return out


class Sink:
    def __init__(self, directory, delay_ms, smtps):
        self.directory = directory
        self.delay_ms = delay_ms
        self.smtps = smtps
        self.seq = 0

    async def handle_DATA(self, server, session, envelope):
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000.0)
        self.seq += 1
        raw = envelope.original_content or b""
        ssl_object = None
        if server.transport is not None:
            ssl_object = server.transport.get_extra_info("ssl_object")
        stem = "%06d-%d" % (self.seq, int(time.time() * 1000))
        meta = {
            "seq": self.seq,
            "eml": stem + ".eml",
            "received_at": time.time(),
            "peer": session.peer[0] if session.peer else None,
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": ssl_object is not None,
            "tls_version": ssl_object.version() if ssl_object else None,
            "cipher": ssl_object.cipher()[0] if ssl_object else None,
            "starttls": session.ssl is not None,
            "smtps": self.smtps,
            "auth_user": None,
        }
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            meta["auth_user"] = session.auth_data.login.decode("utf-8", "replace")
        meta.update(describe(raw))
        write_atomically(os.path.join(self.directory, stem + ".json"),
                         json.dumps(meta, indent=1, ensure_ascii=False).encode("utf-8"))
        write_atomically(os.path.join(self.directory, stem + ".eml"), raw)
        logging.info("stored %s from %s to %s tls=%s", stem, envelope.mail_from,
                     ",".join(envelope.rcpt_tos), meta["tls"])
        return "250 OK stored as %s" % stem


def make_authenticator(path):
    with open(path, "rb") as f:
        user, _, password = f.read().rstrip(b"\r\n").partition(b":")

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user
              and auth_data.password == password)
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--smtps", action="store_true")
    p.add_argument("--auth-file")
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--ready-file")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="smtp_sink: %(levelname)s %(name)s: %(message)s")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.require_starttls or args.smtps) and not args.tls_cert:
        p.error("--require-starttls and --smtps need --tls-cert/--tls-key")
    if args.require_starttls and args.smtps:
        p.error("--require-starttls and --smtps exclude each other")
    os.makedirs(args.dir, exist_ok=True)

    ctx = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    handler = Sink(args.dir, args.delay_ms, args.smtps)
    smtp_kwargs = {
        "hostname": "sink.test",  # socket.getfqdn() may wait for DNS
        "data_size_limit": 10 * 1024 * 1024,
        "enable_SMTPUTF8": True,
        "timeout": 60,
    }
    if ctx is not None and not args.smtps:
        smtp_kwargs["tls_context"] = ctx
        smtp_kwargs["require_starttls"] = args.require_starttls
    if args.auth_file:
        smtp_kwargs["authenticator"] = make_authenticator(args.auth_file)
        smtp_kwargs["auth_required"] = True
        smtp_kwargs["auth_require_tls"] = True

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET,
                         socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, loop=loop, **smtp_kwargs), sock=sock,
        ssl=ctx if args.smtps else None))
    port = sock.getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(port, flush=True)
    if args.ready_file:
        write_atomically(args.ready_file, ("%d\n" % port).encode())
    logging.info("listening on %s:%d (%s)", args.host, port,
                 "smtps" if args.smtps else "starttls" if ctx else "plain")
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
