#!/usr/bin/python3
"""Integration: server-side TLS (wss://, https://) with a throwaway CA (tests/support/tls_ca.py).

1. Routes over TLS, CA trusted: wss:// /echo (text and binary, 0 B, 1 KiB, 1 MiB), wss:// /ws
   (connect, subscribe, a publication made over https:// /api/publish arrives), https://
   /healthz and /metrics on one keep-alive connection; ALPN: ["h2","http/1.1"] → "http/1.1",
   ["h2"] alone → no ALPN and HTTP/1.1 still served; a TLS 1.2 client gets an ECDHE+AEAD
   cipher, a CBC-only TLS 1.2 client and a TLS 1.1-only client are refused.
2. Certificate checks (each server started with the certificate in question): a client without
   the CA, a self-signed certificate, an expired one, one for another name: all refused with
   ssl.SSLCertVerificationError (the verify code is checked), and the server counts a failed
   handshake, also when the client just closes without an alert or the handshake times out.
   The startup warning about an empty
   server.allowed_origins (none with allowed_origins set, none without TLS).
3. SIGHUP: a [tls] config file whose cert/key files are rewritten in place with a second
   certificate; new connections see it (serial, CN) while an open wss:// connection keeps
   echoing; a garbage key and a key of another certificate are refused with an error line and
   the running certificate stays; then the config pointing at other files is applied. A session
   from before a reload gets the new certificate. A passphrase-protected key is refused at
   startup and on reload without a terminal, and must not make a reload wait on a terminal.
4. Session resumption (TLS 1.3 ticket and TLS 1.2), counted as `resumed` in /metrics; a ticket
   from one server process resumes on another with the same --tls-ticket-key file and not on
   one without (a 48-byte key file is a startup error); with
   --no-tls-session-tickets no TLS 1.3 ticket is sent and nothing resumes (TLS 1.2 session-id
   resumption is only reported).
5. --tls-port side by side: ws:// on the main port, wss:// on the TLS port; plain HTTP to the TLS
   port is closed and counted as `failed`; a ClientHello to the plain port gets no TLS.
6. Hostile input (--handshake-timeout 1s): random bytes before a handshake, random bytes and a
   forged application-data record after it (and after a WebSocket upgrade), a ClientHello cut in
   half then silence, a handshake then silence, and 200 half ClientHellos at once. The server
   closes each within the handshake timeout, stays up, and a fresh wss:// echo works.

  /usr/bin/python3 tests/integration/test_tls.py --server build/dev/switchboard
  SB_TLS_CASES=sighup_reload,alpn ... runs only those cases; SB_TLS_SEED sets the garbage seed.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import pty
import random
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import BioTls, Deadline, Reporter, ServerProcess, read_to_eof  # noqa: E402
from messaging import (API_KEY, SUBPROTOCOL, CheckFailed, Client, Server,  # noqa: E402
                       check, metrics, parse_metrics, require_websockets, short, suite_arguments,
                       websockets)
from tls_ca import Cert, TestCA  # noqa: E402

require_websockets()

HANDSHAKE_TIMEOUT_S = 1.0
# From our connect() to seeing EOF: the server's timer wheel granularity plus scheduling on a
# busy 2-core machine. The server's own bound is the handshake timeout.
CLOSE_SLACK_S = 1.5
SEED = int(os.environ.get("SB_TLS_SEED", "20240611"))
HOSTILE_CONNS = 200

CONFIG = f"""
[api]
key = "{API_KEY}"

[namespaces.chat]
history_size = 10
"""

# X509_V_ERR_* as ssl.SSLCertVerificationError.verify_code reports them.
V_SELF_SIGNED_LEAF = 18
V_UNABLE_TO_GET_ISSUER_LOCALLY = 20
V_CERT_HAS_EXPIRED = 10
V_HOSTNAME_MISMATCH = 62
V_IP_MISMATCH = 64

# Runs argv[2:] with the terminal argv[1] as its controlling terminal (as from a shell); the
# process keeps its PID (exec), so ServerProcess still stops it by PID.
PTY_WRAPPER = """import fcntl, os, sys, termios
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
os.dup2(fd, 0)
os.close(fd)
os.execv(sys.argv[2], sys.argv[2:])
"""


def tls_metric(result: str) -> str:
    return f'switchboard_tls_handshakes_total{{result="{result}"}}'


# --------------------------------------------------------------------------------------------
# Blocking TLS helpers


def client_ctx(ca: TestCA | None, *, alpn=None, max_version=None, ciphers=None,
               tickets: bool = True) -> ssl.SSLContext:
    """A verifying client context; ca=None trusts only the system store (not our CA)."""
    ctx = ssl.create_default_context(cafile=ca.cert if ca else None)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, hostname: str = "localhost", session=None,
                timeout: float = 5.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=hostname, session=session)
    except BaseException:
        raw.close()
        raise


def healthz_over(sock: ssl.SSLSocket) -> bytes:
    """GET /healthz with Connection: close on an open TLS socket; the whole response."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    resp, how = read_to_eof(sock, 5)
    check(how == "eof", f"GET /healthz over TLS: {how} after {resp[:120]!r}")
    check(resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"ok\n"),
          f"GET /healthz over TLS → {resp[:200]!r}")
    return resp


def https_request(port: int, ctx: ssl.SSLContext, method: str, path: str, body=None,
                  headers=None, conn: http.client.HTTPSConnection | None = None):
    """(status, text, connection). Host 127.0.0.1: the certificate's IP SAN is checked."""
    own = conn is None
    if own:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    data = None if body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    text = resp.read().decode(errors="replace")
    if own:
        conn.close()
    return resp.status, text, conn


def https_metrics(port: int, ctx: ssl.SSLContext) -> dict[str, float]:
    status, text, _ = https_request(port, ctx, "GET", "/metrics")
    check(status == 200, f"GET https /metrics → {status}")
    return parse_metrics(text)


def wait_metric_sync(read, name: str, pred, seconds: float, what: str) -> float:
    deadline = Deadline(seconds)
    last = None
    while True:
        last = read().get(name)
        if last is not None and pred(last):
            return last
        if deadline.expired():
            raise CheckFailed(f"timed out after {seconds}s waiting for {what} ({name} = {last})")
        time.sleep(0.05)  # polling a counter the server updates; bounded by the deadline


def peer_cert_of(port: int, ctx: ssl.SSLContext) -> dict:
    s = tls_connect(port, ctx)
    try:
        return s.getpeercert()
    finally:
        s.close()


def cn_of(cert: dict) -> str | None:
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def expect_verify_error(port: int, ctx: ssl.SSLContext, codes: set[int], what: str,
                        hostname: str = "localhost") -> ssl.SSLCertVerificationError:
    try:
        s = tls_connect(port, ctx, hostname=hostname)
    except ssl.SSLCertVerificationError as e:
        check(e.verify_code in codes, f"{what}: verify code {e.verify_code} "
              f"({e.verify_message}), expected one of {sorted(codes)}")
        return e
    s.close()
    raise CheckFailed(f"{what}: the TLS handshake succeeded; expected a verification error")


# ---- raw TLS over memory BIOs: we own the TCP socket and can write anything on it


def client_hello(ctx: ssl.SSLContext) -> bytes:
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    check(len(hello) > 100 and hello[0] == 0x16, f"ClientHello of {len(hello)} B")
    return hello


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------------
# Async helpers (python3-websockets over wss://)


async def wss_open(port: int, path: str, ctx: ssl.SSLContext, subprotocols=None,
                   timeout: float = 5.0):
    return await asyncio.wait_for(websockets.connect(
        f"wss://localhost:{port}{path}", ssl=ctx, host="127.0.0.1", port=port,
        server_hostname="localhost", subprotocols=subprotocols, ping_interval=None,
        max_size=None, max_queue=None, compression=None, open_timeout=timeout,
        close_timeout=3), timeout + 1)


def payload(kind: str, n: int):
    if kind == "binary":
        return bytes((i * 31 + 7) & 0xFF for i in range(n)) if n < 4096 else \
            (bytes(range(256)) * (n // 256 + 1))[:n]
    unit = "aé€😀"  # 10 UTF-8 bytes
    return unit * (n // 10) + "b" * (n % 10)


async def echo_round(ws, kind: str, n: int):
    data = payload(kind, n)
    await ws.send(data)
    got = await asyncio.wait_for(ws.recv(), 30)
    check(type(got) is type(data), f"echo of {kind} {n} B came back as {type(got).__name__}")
    check(got == data, f"echo of {kind} {n} B differs ({len(got)} B back)")


async def echo_ok(port: int, ctx: ssl.SSLContext, what: str = "fresh wss:// echo"):
    try:
        ws = await wss_open(port, "/echo", ctx, ["echo"])
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
        raise CheckFailed(f"{what}: cannot open: {e!r}") from None
    try:
        await echo_round(ws, "text", 100)
        await echo_round(ws, "binary", 100)
    finally:
        await ws.close()


# --------------------------------------------------------------------------------------------
# The suite


class Suite:
    def __init__(self, binary: str, rep: Reporter, ca: TestCA):
        self.binary = binary
        self.rep = rep
        self.ca = ca
        self.good = ca.issue("server")
        self.second = ca.issue("server2", cn="localhost-2")
        self.expired = ca.issue("expired", expired=True)
        self.wrong = ca.issue("wrong", cn="wrong.example", dns=("wrong.example",), ips=())
        self.rogue = ca.self_signed("rogue")
        self.trusting = client_ctx(ca)
        self.servers: list[Server] = []

    def start(self, name: str, cert: Cert | None = None, flags: tuple[str, ...] = (),
              config: str = CONFIG, threads: int = 2) -> Server:
        tls = ("--tls-cert", cert.chain, "--tls-key", cert.key) if cert else ()
        s = Server(self.binary, config, name=name, threads=threads, flags=(*tls, *flags))
        self.servers.append(s)
        return s

    def close_all(self):
        for s in self.servers:
            s.close()

    def alive(self, s: Server):
        check(s.proc.alive(), f"{s.proc.name} died: {s.proc.log_tail(800)}")

    # ---- 1. routes

    def main_server(self) -> Server:
        if not hasattr(self, "_main"):
            self._main = self.start("tls-main", self.good)
            line = self._main.proc.stdout_lines[0].decode(errors="replace")
            check(line.endswith("(tls)"), f"listening line {line!r} does not end in (tls)")
        return self._main

    async def case_wss_echo(self):
        s = self.main_server()
        ws = await wss_open(s.port, "/echo", self.trusting, ["echo"])
        try:
            check(ws.subprotocol == "echo", f"subprotocol {ws.subprotocol!r}")
            obj = ws.transport.get_extra_info("ssl_object")
            check(obj is not None and obj.version() in ("TLSv1.3", "TLSv1.2"),
                  f"wss:// without TLS? version {obj and obj.version()}")
            for kind in ("text", "binary"):
                for n in (0, 1024, 1 << 20):
                    await echo_round(ws, kind, n)
        finally:
            await ws.close()
        check(ws.close_code == 1000, f"close code {ws.close_code}")

    async def case_wss_messaging(self):
        s = self.main_server()
        ws = await wss_open(s.port, "/ws", self.trusting, [SUBPROTOCOL])
        c = Client(ws, "wss-client")
        try:
            check(ws.subprotocol == SUBPROTOCOL, f"subprotocol {ws.subprotocol!r}")
            r = await c.connect(user="tls-alice")
            check(r.get("resumed") is False and str(r.get("session", "")).startswith("s_"),
                  f"connected → {short(r)}")
            await c.subscribe("chat:tls")
            loop = asyncio.get_running_loop()
            status, text, _ = await loop.run_in_executor(None, lambda: https_request(
                s.port, self.trusting, "POST", "/api/publish",
                {"channel": "chat:tls", "data": {"via": "https"}},
                {"Authorization": f"apikey {API_KEY}"}))
            check(status == 200, f"https POST /api/publish → {status} {text[:200]}")
            m = await c.expect_type("message", 5, channel="chat:tls")
            check(m.get("data") == {"via": "https"}, f"message → {short(m)}")
            await c.publish("chat:tls", {"via": "wss"})
            m = await c.expect_type("message", 5, channel="chat:tls")
            check(m.get("data") == {"via": "wss"}, f"message → {short(m)}")
            await c.ping_ok()
        finally:
            await c.close()
            await c.stop()

    async def case_https_healthz_metrics(self):
        s = self.main_server()
        status, text, conn = https_request(s.port, self.trusting, "GET", "/healthz")
        check(status == 200 and text == "ok\n", f"https GET /healthz → {status} {text!r}")
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=self.trusting,
                                           timeout=5)
        try:
            status, text, _ = https_request(s.port, self.trusting, "GET", "/healthz", conn=conn)
            check(status == 200, f"keep-alive 1: GET /healthz → {status}")
            sock1 = conn.sock
            status, text, _ = https_request(s.port, self.trusting, "GET", "/metrics", conn=conn)
            check(status == 200, f"keep-alive 2: GET /metrics → {status}")
            check(conn.sock is sock1, "the second request did not reuse the TLS connection")
            m = parse_metrics(text)
            for r in ("full", "resumed", "failed"):
                check(tls_metric(r) in m, f"/metrics lacks {tls_metric(r)}")
            check(m[tls_metric("full")] >= 1, f"full handshakes {m[tls_metric('full')]}")
        finally:
            conn.close()
        status, text, _ = https_request(s.port, self.trusting, "POST", "/api/info", {},
                                        {"Authorization": f"apikey {API_KEY}"})
        check(status == 200 and "uptime_ms" in text, f"https POST /api/info → {status} {text}")

    async def case_alpn(self):
        s = self.main_server()
        sock = tls_connect(s.port, client_ctx(self.ca, alpn=["h2", "http/1.1"]))
        try:
            check(sock.selected_alpn_protocol() == "http/1.1",
                  f"ALPN offered h2,http/1.1 → {sock.selected_alpn_protocol()!r}")
            healthz_over(sock)
        finally:
            sock.close()
        sock = tls_connect(s.port, client_ctx(self.ca, alpn=["h2"]))
        try:
            check(sock.selected_alpn_protocol() is None,
                  f"ALPN offered h2 only → {sock.selected_alpn_protocol()!r}, expected none")
            healthz_over(sock)
        finally:
            sock.close()

    async def case_tls12_ciphers(self):
        s = self.main_server()
        sock = tls_connect(s.port, client_ctx(self.ca, max_version=ssl.TLSVersion.TLSv1_2))
        try:
            name, version, _ = sock.cipher()
            check(version == "TLSv1.2", f"capped client negotiated {version}")
            check(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name),
                  f"TLS 1.2 cipher {name}: not ECDHE+AEAD")
            healthz_over(sock)
        finally:
            sock.close()
        cbc = client_ctx(self.ca, max_version=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
                                 "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA")
        try:
            sock = tls_connect(s.port, cbc)
        except ssl.SSLCertVerificationError as e:
            raise CheckFailed(f"CBC-only client: certificate error {e}") from None
        except (ssl.SSLError, ConnectionResetError) as e:
            self.rep.note(f"CBC-only TLS 1.2 client refused: {getattr(e, 'reason', e)}")
        else:
            got = sock.cipher()
            sock.close()
            raise CheckFailed(f"a CBC-only TLS 1.2 client was served with {got}")

    async def case_tls11_refused(self):
        s = self.main_server()
        try:
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1: on purpose
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(self.ca.cert)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            client_hello(ctx)
        except (ssl.SSLError, ValueError, CheckFailed) as e:
            raise Skip(f"the local OpenSSL cannot make a TLS 1.1-only client ({e})") from None
        before = https_metrics(s.port, self.trusting)[tls_metric("failed")]
        try:
            sock = tls_connect(s.port, ctx)
        except ssl.SSLError as e:
            reason = str(e.reason or e)
            check("NO_PROTOCOLS_AVAILABLE" not in reason and "NO_CIPHERS" not in reason,
                  f"the client refused itself ({reason}); no ClientHello was sent")
            self.rep.note(f"TLS 1.1-only client refused: {reason}")
        except ConnectionResetError:
            self.rep.note("TLS 1.1-only client: connection reset")
        else:
            v = sock.version()
            sock.close()
            raise CheckFailed(f"a TLS 1.1-only client was served ({v})")
        wait_metric_sync(lambda: https_metrics(s.port, self.trusting), tls_metric("failed"),
                         lambda v: v >= before + 1, 5, "the refused TLS 1.1 handshake counted")

    # ---- 2. certificate checks

    async def case_untrusted_client_refused(self):
        s = self.main_server()
        before = https_metrics(s.port, self.trusting)[tls_metric("failed")]
        # The ssl module sends an alert (unknown_ca) before it closes: a failed handshake.
        expect_verify_error(s.port, client_ctx(None), {V_UNABLE_TO_GET_ISSUER_LOCALLY},
                            "client without the CA")
        wait_metric_sync(lambda: https_metrics(s.port, self.trusting), tls_metric("failed"),
                         lambda v: v >= before + 1, 5, "the refused handshake counted")
        try:
            ws = await wss_open(s.port, "/echo", client_ctx(None), ["echo"])
        except ssl.SSLCertVerificationError:
            pass
        else:
            await ws.close()
            raise CheckFailed("wss:// without the CA opened")
        await echo_ok(s.port, self.trusting)

    async def case_failed_counts_aborted_handshakes(self):
        """Every TLS connection that ends before its handshake completes is a failed one,
        whether the client sent an alert or not (scanners, asyncio clients that reject the
        certificate, slowloris cut by the handshake timeout)."""
        s = self.hostile_server()
        loop = asyncio.get_running_loop()

        def failed():
            return https_metrics(s.port, self.trusting)[tls_metric("failed")]

        hello = client_hello(self.trusting)
        missed = []

        async def step(what, action, settle):
            before = failed()
            await action()
            try:
                await loop.run_in_executor(None, lambda: wait_metric_sync(
                    lambda: https_metrics(s.port, self.trusting), tls_metric("failed"),
                    lambda v: v >= before + 1, settle, what))
            except CheckFailed:
                missed.append(what)

        async def asyncio_untrusted():
            try:
                ws = await wss_open(s.port, "/echo", client_ctx(None), ["echo"])
                await ws.close()
            except ssl.SSLCertVerificationError:
                pass

        async def hello_then_close():
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(hello)
            # The server's flight (ServerHello .. Finished) shows it took the ClientHello.
            c.settimeout(5)
            check(c.recv(1) != b"", "no ServerHello")
            c.close()

        async def half_hello_timeout():
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            t0 = time.monotonic()
            c.sendall(hello[: len(hello) // 2])
            await loop.run_in_executor(None, self.expect_closed, c, "half ClientHello", t0)
            c.close()

        await step("a python3-websockets client rejecting the certificate (no alert, TCP "
                   "close)", asyncio_untrusted, 2)
        await step("a ClientHello, the server's flight, then TCP close", hello_then_close, 2)
        await step("half a ClientHello cut by the handshake timeout", half_hello_timeout, 2)
        check(not missed, "switchboard_tls_handshakes_total{result=\"failed\"} did not count: " +
              "; ".join(missed))
        await self.after_hostile(s)

    async def case_self_signed_refused(self):
        s = self.start("tls-rogue", self.rogue)
        expect_verify_error(s.port, self.trusting, {V_SELF_SIGNED_LEAF},
                            "self-signed certificate not from the CA")
        # The same server is fine for a client that trusts that certificate itself.
        sock = tls_connect(s.port, ssl.create_default_context(cafile=self.rogue.cert))
        healthz_over(sock)
        sock.close()
        self.alive(s)

    async def case_expired_refused(self):
        s = self.start("tls-expired", self.expired)
        expect_verify_error(s.port, self.trusting, {V_CERT_HAS_EXPIRED}, "expired certificate")
        self.alive(s)

    async def case_wrong_name_refused(self):
        s = self.start("tls-wrong-name", self.wrong)
        expect_verify_error(s.port, self.trusting, {V_HOSTNAME_MISMATCH},
                            "certificate for wrong.example, client asks for localhost")
        expect_verify_error(s.port, self.trusting, {V_IP_MISMATCH, V_HOSTNAME_MISMATCH},
                            "certificate without IP SAN, client asks for 127.0.0.1",
                            hostname="127.0.0.1")
        # The name it was made for does verify (the chain itself is fine).
        sock = tls_connect(s.port, self.trusting, hostname="wrong.example")
        healthz_over(sock)
        sock.close()
        self.alive(s)

    async def case_allowed_origins_warning(self):
        s = self.main_server()
        log = s.proc.log_tail(20000)
        check("allowed_origins is empty" in log,
              f"no startup warning about an empty server.allowed_origins; log: {log[-600:]}")
        quiet = self.start("tls-origins", self.good,
                           ("--allowed-origins", "https://app.example.test"))
        log = quiet.proc.log_tail(20000)
        check("allowed_origins is empty" not in log,
              f"warning logged although allowed_origins is set: {log[-600:]}")
        plain = self.start("plain-no-tls")
        log = plain.proc.log_tail(20000)
        check("allowed_origins is empty" not in log, f"warning without TLS: {log[-600:]}")

    # ---- 3. SIGHUP certificate reload

    async def case_sighup_reload(self):
        d = Path(self.ca.dir) / "reload"
        d.mkdir(exist_ok=True)
        live_cert, live_key = d / "live.pem", d / "live.key"
        live_cert.write_bytes(self.good.pem())
        live_key.write_bytes(self.good.key_pem())
        config = CONFIG + f'\n[tls]\ncert_file = "{live_cert}"\nkey_file = "{live_key}"\n'
        s = self.start("tls-reload", None, config=config)
        check(s.proc.stdout_lines[0].endswith(b"(tls)"), "config-file [tls] did not turn TLS on")
        loop = asyncio.get_running_loop()

        def serial_now():
            return peer_cert_of(s.port, self.trusting).get("serialNumber")

        async def wait_serial(want: Cert, what: str):
            deadline = Deadline(10)
            seen = None
            while True:
                seen = await loop.run_in_executor(None, serial_now)
                if seen == want.serial_hex:
                    return
                if deadline.expired():
                    raise CheckFailed(f"{what}: new connections still see serial {seen}, "
                                      f"expected {want.serial_hex} ({want.name})")
                await asyncio.sleep(0.05)  # polling the server's state after a signal

        check(serial_now() == self.good.serial_hex, "before reload: not the first certificate")
        first = tls_connect(s.port, self.trusting)
        healthz_over(first)  # the TLS 1.3 ticket arrives
        old_session = first.session
        first.close()
        a = await wss_open(s.port, "/echo", self.trusting, ["echo"])
        try:
            a_cert = a.transport.get_extra_info("ssl_object").getpeercert()
            check(a_cert["serialNumber"] == self.good.serial_hex, "A: not the first certificate")
            await echo_round(a, "text", 1000)

            # In place, as a renewal job does: same paths, new contents.
            live_key.write_bytes(self.second.key_pem())
            live_cert.write_bytes(self.second.pem())
            s.proc.signal(signal.SIGHUP)
            await wait_serial(self.second, "after SIGHUP with renewed files")
            cert = await loop.run_in_executor(None, peer_cert_of, s.port, self.trusting)
            check(cn_of(cert) == self.second.cn, f"new certificate CN {cn_of(cert)!r}")
            # A session from before the reload: the connection works and is on the new
            # certificate (a resumed session would carry the old one).
            late = tls_connect(s.port, self.trusting, session=old_session)
            try:
                serial = late.getpeercert()["serialNumber"]
                check(serial == self.second.serial_hex,
                      f"a session from before the reload (resumed={late.session_reused}) shows "
                      f"serial {serial}, not the new certificate's {self.second.serial_hex}")
                healthz_over(late)
            finally:
                late.close()
            await echo_round(a, "text", 1000)
            await echo_round(a, "binary", 70000)
            await echo_ok(s.port, self.trusting, "wss:// with the new certificate")

            # Broken key files: refused, logged, the running certificate stays.
            bad = [(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
                    "a garbage key"),
                   (self.good.key_pem(), "the key of another certificate")]
            for n, (key_bytes, what) in enumerate(bad, start=1):
                live_key.write_bytes(key_bytes)
                s.proc.signal(signal.SIGHUP)
                await loop.run_in_executor(None, lambda n=n: _wait_log_count(
                    s, "keeping the running certificate", n, 10))
                check(serial_now() == self.second.serial_hex,
                      f"after a reload with {what}: new connections see another certificate")
                await echo_round(a, "text", 10)
                self.alive(s)
            log = s.proc.log_tail(20000)
            check("cannot load private key" in log or "private key" in log,
                  f"reload error does not name the key: {log[-600:]}")

            # The config file itself changes: other paths.
            live_key.write_bytes(self.second.key_pem())  # leave a consistent pair behind
            with open(s.config_file.name, "w") as f:
                f.write(CONFIG + f'\n[tls]\ncert_file = "{self.good.cert}"\n'
                        f'key_file = "{self.good.key}"\n')
            s.proc.signal(signal.SIGHUP)
            await wait_serial(self.good, "after SIGHUP with new paths in the config file")
            await echo_round(a, "text", 1 << 16)
        finally:
            await a.close()
        check(a.close_code == 1000, f"A closed with {a.close_code} across three reloads")
        self.alive(s)

    def encrypted_key(self, cert: Cert) -> bytes:
        out = Path(self.ca.dir) / f"{cert.name}.enc.key"
        r = subprocess.run(["openssl", "pkey", "-in", cert.key, "-aes256", "-passout",
                            "pass:secret", "-out", str(out)], capture_output=True, timeout=30)
        check(r.returncode == 0, f"openssl pkey -aes256: {r.stderr[-300:]!r}")
        return out.read_bytes()

    async def case_encrypted_key_refused(self):
        """No terminal (a daemon): a passphrase-protected key is refused at startup and on
        reload, fast and with an error, never waited on."""
        enc = Path(self.ca.dir) / "startup.enc.key"
        enc.write_bytes(self.encrypted_key(self.good))
        t0 = time.monotonic()
        r = subprocess.run([self.binary, "serve", "--host", "127.0.0.1", "--port", "0",
                            "--tls-cert", self.good.cert, "--tls-key", str(enc)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
                           start_new_session=True)
        took = time.monotonic() - t0
        err = r.stderr.decode(errors="replace")
        check(r.returncode != 0 and "private key" in err,
              f"startup with an encrypted key: exit {r.returncode}, stderr {err[-300:]!r}")
        check(took < 5, f"startup with an encrypted key took {took:.1f}s to fail")
        d = Path(self.ca.dir) / "enc-reload"
        d.mkdir(exist_ok=True)
        (d / "live.pem").write_bytes(self.good.pem())
        (d / "live.key").write_bytes(self.good.key_pem())
        s = self.start("tls-enc-key", None, ("--tls-cert", str(d / "live.pem"),
                                             "--tls-key", str(d / "live.key")))
        (d / "live.key").write_bytes(self.encrypted_key(self.second))
        (d / "live.pem").write_bytes(self.second.pem())
        s.proc.signal(signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(None, lambda: _wait_log_count(
            s, "keeping the running certificate", 1, 5))
        check(peer_cert_of(s.port, self.trusting)["serialNumber"] == self.good.serial_hex,
              "after a reload with an encrypted key: not the running certificate")
        await echo_ok(s.port, self.trusting)

    async def case_encrypted_key_reload_with_a_terminal(self):
        """A server started from a terminal: a SIGHUP reload meeting a passphrase-protected key
        must fail like any bad key, not wait for a passphrase on the terminal (that blocks the
        thread that handles SIGHUP and SIGTERM)."""
        d = Path(self.ca.dir) / "enc-tty"
        d.mkdir(exist_ok=True)
        (d / "live.pem").write_bytes(self.good.pem())
        (d / "live.key").write_bytes(self.good.key_pem())
        master, slave = pty.openpty()
        tty_path = os.ttyname(slave)
        os.close(slave)
        argv = ["/usr/bin/python3", "-c", PTY_WRAPPER, tty_path, self.binary, "serve",
                "--host", "127.0.0.1", "--port", "0", "--threads", "2", "--log-level", "info",
                "--tls-cert", str(d / "live.pem"), "--tls-key", str(d / "live.key")]
        proc = ServerProcess(argv, name="tls-enc-tty")
        loop = asyncio.get_running_loop()
        try:
            (d / "live.key").write_bytes(self.encrypted_key(self.second))
            (d / "live.pem").write_bytes(self.second.pem())
            proc.signal(signal.SIGHUP)
            probe = Server.__new__(Server)
            probe.proc = proc
            try:
                await loop.run_in_executor(None, lambda: _wait_log_count(
                    probe, "keeping the running certificate", 1, 3))
                refused = True
            except CheckFailed:
                refused = False
            prompt = b""
            os.set_blocking(master, False)
            try:
                prompt = os.read(master, 4096)
            except OSError:
                pass
            proc.signal(signal.SIGTERM)
            rc = await loop.run_in_executor(None, proc.wait_exit, 3)
            check(refused and rc is not None,
                  f"reload with an encrypted key and a controlling terminal: "
                  f"{'refused' if refused else 'no error within 3 s'}; the terminal saw "
                  f"{prompt[:80]!r}; SIGTERM then "
                  f"{'exit ' + str(rc) if rc is not None else 'ignored for 3 s'}")
        finally:
            if proc.alive():
                os.kill(proc.proc.pid, signal.SIGKILL)  # our child, by PID: it may be stuck
            proc.close()
            os.close(master)

    # ---- 4. resumption

    def _resume(self, port: int, ctx: ssl.SSLContext):
        """(ticket?, reused?) of a second connection offering the first one's session."""
        s1 = tls_connect(port, ctx)
        try:
            version = s1.version()
            healthz_over(s1)  # reading after the handshake lets a TLS 1.3 ticket arrive
            sess = s1.session
        finally:
            s1.close()
        s2 = tls_connect(port, ctx, session=sess)
        try:
            reused = s2.session_reused
            healthz_over(s2)
        finally:
            s2.close()
        return version, sess.has_ticket, reused

    async def case_session_resumption(self):
        s = self.main_server()
        before = https_metrics(s.port, self.trusting)[tls_metric("resumed")]
        v, ticket, reused = self._resume(s.port, client_ctx(self.ca))
        check(v == "TLSv1.3", f"default client negotiated {v}")
        check(ticket, "TLS 1.3: no session ticket arrived after the handshake")
        check(reused, "TLS 1.3: the second connection offering the ticket was not resumed")
        v, ticket, reused = self._resume(
            s.port, client_ctx(self.ca, max_version=ssl.TLSVersion.TLSv1_2))
        check(v == "TLSv1.2", f"capped client negotiated {v}")
        check(reused, f"TLS 1.2: not resumed (ticket {ticket})")
        m = https_metrics(s.port, self.trusting)
        check(m[tls_metric("resumed")] >= before + 2,
              f"resumed counter {m[tls_metric('resumed')]} (was {before}) after two resumptions")

    async def case_shared_ticket_key(self):
        # A ticket from one server process resumes on another (a restart, or another node)
        # when both read the same tls.ticket_key_file; without it, each has its own key.
        key_file = os.path.join(self.ca.dir, "ticket.key")
        with open(key_file, "wb") as f:
            f.write(os.urandom(80))
        flags = ("--tls-ticket-key", key_file)
        ctx = client_ctx(self.ca)
        first = self.start("tls-ticket-a", self.good, flags)
        s1 = tls_connect(first.port, ctx)
        try:
            healthz_over(s1)  # the TLS 1.3 ticket arrives after the handshake
            sess = s1.session
        finally:
            s1.close()
        check(sess.has_ticket, "no session ticket from the first server")
        first.close()
        for name, extra, want in (("tls-ticket-b", flags, True), ("tls-ticket-c", (), False)):
            other = self.start(name, self.good, extra)
            s2 = tls_connect(other.port, ctx, session=sess)
            try:
                reused = s2.session_reused
                healthz_over(s2)
            finally:
                s2.close()
            check(reused == want, f"{name} ({'same' if extra else 'no'} ticket key file): "
                  f"resumed={reused}, expected {want}")
            other.close()
        bad = os.path.join(self.ca.dir, "short.key")
        with open(bad, "wb") as f:
            f.write(os.urandom(48))
        r = subprocess.run([self.binary, "serve", "--host", "127.0.0.1", "--port", "0",
                            "--tls-cert", self.good.chain, "--tls-key", self.good.key,
                            "--tls-ticket-key", bad], capture_output=True, text=True, timeout=10)
        check(r.returncode != 0 and "exactly 80 random bytes" in r.stderr,
              f"a 48-byte ticket key file: exit {r.returncode}, stderr {r.stderr[-300:]!r}")

    async def case_no_session_tickets(self):
        s = self.start("tls-no-tickets", self.good, ("--no-tls-session-tickets",))
        v, ticket, reused = self._resume(s.port, client_ctx(self.ca))
        check(v == "TLSv1.3", f"default client negotiated {v}")
        check(not ticket, "--no-tls-session-tickets: a TLS 1.3 ticket arrived")
        check(not reused, "--no-tls-session-tickets: TLS 1.3 connection resumed")
        m = https_metrics(s.port, self.trusting)
        check(m[tls_metric("resumed")] == 0, f"resumed counter {m[tls_metric('resumed')]}")
        # TLS 1.2 without tickets may still resume from the server's session-id cache: that
        # is not a ticket, so it is only reported.
        v, ticket, reused = self._resume(
            s.port, client_ctx(self.ca, max_version=ssl.TLSVersion.TLSv1_2))
        check(v == "TLSv1.2", f"capped client negotiated {v}")
        self.rep.note(f"--no-tls-session-tickets, TLS 1.2: ticket={ticket}, resumed by session "
                      f"id={reused}")
        check(not ticket, "--no-tls-session-tickets: a TLS 1.2 ticket was issued")

    # ---- 5. side by side

    async def case_side_by_side(self):
        tls_port = free_port()
        s = self.start("tls-split", self.good, ("--tls-port", str(tls_port)))
        lines = [ln.decode(errors="replace") for ln in s.proc.stdout_lines]
        lines += getattr(s.proc, "_pending", b"").decode(errors="replace").splitlines()
        check(not lines[0].endswith("(tls)"), f"main port line {lines[0]!r} says tls")
        want = f"switchboard listening on 127.0.0.1:{tls_port} (tls)"
        deadline = Deadline(5)
        while want not in lines and not deadline.expired():
            await asyncio.sleep(0.02)  # the drain thread appends stdout lines
            lines = [ln.decode(errors="replace") for ln in s.proc.stdout_lines]
            lines += getattr(s.proc, "_pending", b"").decode(errors="replace").splitlines()
        check(want in lines, f"no line {want!r}; stdout {lines}")
        # Plain ws:// and http:// on the main port.
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/echo", subprotocols=["echo"],
                                      ping_interval=None, open_timeout=5) as ws:
            await echo_round(ws, "text", 5000)
        status = metrics(s).get(tls_metric("full"))
        check(status is not None, "/metrics over the plain port lacks the TLS counters")
        # wss:// and https:// on the TLS port.
        await echo_ok(tls_port, self.trusting, "wss:// on --tls-port")
        c = Client(await wss_open(tls_port, "/ws", self.trusting, [SUBPROTOCOL]), "split-ws")
        try:
            await c.connect()
            await c.ping_ok()
        finally:
            await c.close()
            await c.stop()
        before = metrics(s)[tls_metric("failed")]
        # Plain HTTP to the TLS port: no response, the connection is closed.
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got, how = read_to_eof(raw, 5)
        raw.close()
        check(how in ("eof", "reset"), f"plain HTTP to the TLS port: still open after 5 s "
              f"(got {got[:80]!r})")
        check(not got.startswith(b"HTTP/"), f"plain HTTP to the TLS port answered: {got[:80]!r}")
        wait_metric_sync(lambda: metrics(s), tls_metric("failed"), lambda v: v >= before + 1, 5,
                         "plain HTTP on the TLS port counted as a failed handshake")
        # A TLS ClientHello to the plain port: no TLS there.
        try:
            sock = tls_connect(s.port, self.trusting)
        except (ssl.SSLError, ConnectionResetError, socket.timeout) as e:
            self.rep.note(f"TLS to the plain port: {e.__class__.__name__}: "
                          f"{getattr(e, 'reason', None) or e}")
        else:
            sock.close()
            raise CheckFailed("a TLS handshake succeeded on the plain main port")
        self.alive(s)
        status, text, _ = await asyncio.get_running_loop().run_in_executor(
            None, lambda: https_request(tls_port, self.trusting, "GET", "/healthz"))
        check(status == 200, f"https /healthz on the TLS port after all that → {status}")

    # ---- 6. hostile input

    def hostile_server(self) -> Server:
        if not hasattr(self, "_hostile"):
            self._hostile = self.start("tls-hostile", self.good, (
                "--handshake-timeout", f"{int(HANDSHAKE_TIMEOUT_S * 1000)}ms"))
        return self._hostile

    async def after_hostile(self, s: Server):
        self.alive(s)
        await echo_ok(s.port, self.trusting)
        self.alive(s)

    def expect_closed(self, sock: socket.socket, what: str, t0: float) -> float:
        limit = HANDSHAKE_TIMEOUT_S + CLOSE_SLACK_S
        got, how = read_to_eof(sock, limit + 3 - (time.monotonic() - t0))
        took = time.monotonic() - t0
        check(how in ("eof", "reset"), f"{what}: the server kept the connection open "
              f"{took:.2f}s (handshake timeout {HANDSHAKE_TIMEOUT_S}s)")
        check(took <= limit, f"{what}: closed after {took:.2f}s; handshake timeout is "
              f"{HANDSHAKE_TIMEOUT_S}s")
        check(b"HTTP/1.1 2" not in got, f"{what}: answered {got[:80]!r}")
        return took

    async def case_garbage_before_handshake(self):
        s = self.hostile_server()
        rng = random.Random(SEED)
        before = https_metrics(s.port, self.trusting)[tls_metric("failed")]
        took = []
        for n in (1, 5, 300, 4096, 20000):
            raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            t0 = time.monotonic()
            try:
                raw.sendall(bytes(rng.getrandbits(8) for _ in range(n)))
            except (BrokenPipeError, ConnectionResetError):
                pass
            took.append(self.expect_closed(raw, f"{n} random bytes before a handshake", t0))
            raw.close()
        # A valid-looking record header with junk inside.
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        t0 = time.monotonic()
        raw.sendall(b"\x16\x03\x01\x00\x40" + bytes(rng.getrandbits(8) for _ in range(64)))
        took.append(self.expect_closed(raw, "a handshake record of junk", t0))
        raw.close()
        wait_metric_sync(lambda: https_metrics(s.port, self.trusting), tls_metric("failed"),
                         lambda v: v >= before + 1, 5, "garbage counted as failed handshakes")
        self.rep.note(f"garbage before the handshake closed after "
                      f"{', '.join(f'{t:.2f}' for t in took)} s (seed {SEED})")
        await self.after_hostile(s)

    async def case_garbage_after_handshake(self):
        s = self.hostile_server()
        rng = random.Random(SEED + 1)
        variants = [
            ("random bytes", lambda: bytes(rng.getrandbits(8) for _ in range(3000)), False),
            ("a forged application-data record",
             lambda: b"\x17\x03\x03\x01\x00" + bytes(rng.getrandbits(8) for _ in range(256)),
             False),
            ("a forged record after a WebSocket upgrade",
             lambda: b"\x17\x03\x03\x00\x80" + bytes(rng.getrandbits(8) for _ in range(128)),
             True),
            ("a record claiming 65535 B", lambda: b"\x17\x03\x03\xff\xff" + b"\x00" * 64, True),
        ]
        for what, make, upgrade in variants:
            t = BioTls(s.port, self.trusting)
            try:
                t0 = time.monotonic()
                if upgrade:
                    t.write(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                    head = t.read_until(b"\r\n\r\n")
                    check(head.startswith(b"HTTP/1.1 101"), f"upgrade over BIO → {head[:80]!r}")
                try:
                    t.sock.sendall(make())
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got, how = read_to_eof(t.sock, 5)
                took = time.monotonic() - t0
                check(how in ("eof", "reset"),
                      f"{what} after the TLS handshake: connection still open after 5 s")
                if not upgrade:
                    check(took <= HANDSHAKE_TIMEOUT_S + CLOSE_SLACK_S,
                          f"{what}: closed after {took:.2f}s")
            finally:
                t.close()
            await self.after_hostile(s)

    async def case_half_client_hello(self):
        s = self.hostile_server()
        hello = client_hello(self.trusting)
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        t0 = time.monotonic()
        raw.sendall(hello[: len(hello) // 2])
        took = self.expect_closed(raw, "half a ClientHello, then silence", t0)
        raw.close()
        self.rep.note(f"half ClientHello closed after {took:.2f}s")
        # A complete handshake, then no request: the same timer.
        t = BioTls(s.port, self.trusting)
        try:
            self.expect_closed(t.sock, "a TLS handshake, then no request", time.monotonic())
        finally:
            t.close()
        await self.after_hostile(s)

    async def case_many_half_hellos(self):
        s = self.hostile_server()
        hello = client_hello(self.trusting)
        socks = []
        sel = selectors.DefaultSelector()
        try:
            t0 = time.monotonic()
            for i in range(HOSTILE_CONNS):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(hello[: len(hello) // 2])
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, i)
                socks.append(c)
            opened = time.monotonic() - t0
            # While they hang, the server serves others.
            await echo_ok(s.port, self.trusting, f"wss:// echo while {HOSTILE_CONNS} half "
                          "ClientHellos hang")
            open_ = set(range(HOSTILE_CONNS))
            limit = opened + HANDSHAKE_TIMEOUT_S + CLOSE_SLACK_S + 1
            deadline = Deadline(limit + 3 - (time.monotonic() - t0))
            while open_ and not deadline.expired():
                for key, _ in sel.select(min(0.5, deadline.remaining())):
                    try:
                        data = key.fileobj.recv(4096)
                    except (ConnectionResetError, BlockingIOError) as e:
                        data = b"" if isinstance(e, ConnectionResetError) else None
                    if data == b"":
                        sel.unregister(key.fileobj)
                        open_.discard(key.data)
            took = time.monotonic() - t0
            check(not open_, f"{len(open_)} of {HOSTILE_CONNS} half ClientHellos still open "
                  f"after {took:.2f}s (handshake timeout {HANDSHAKE_TIMEOUT_S}s)")
            check(took <= limit, f"the last of {HOSTILE_CONNS} closed after {took:.2f}s "
                  f"(opening them took {opened:.2f}s)")
            self.rep.note(f"{HOSTILE_CONNS} half ClientHellos: opened in {opened:.2f}s, all "
                          f"closed after {took:.2f}s")
        finally:
            sel.close()
            for c in socks:
                c.close()
        await self.after_hostile(s)


def _wait_log_count(s: Server, text: str, n: int, seconds: float):
    deadline = Deadline(seconds)
    while s.proc.log_tail(200000).count(text) < n:
        if deadline.expired():
            raise CheckFailed(f"no {n}. log line {text!r} within {seconds}s; log: "
                              f"{s.proc.log_tail(600)}")
        time.sleep(0.02)  # the log file is the only event a failed reload produces


CASES = [
    "wss_echo", "wss_messaging", "https_healthz_metrics", "alpn", "tls12_ciphers",
    "tls11_refused", "untrusted_client_refused", "failed_counts_aborted_handshakes",
    "self_signed_refused", "expired_refused", "wrong_name_refused", "allowed_origins_warning",
    "sighup_reload", "encrypted_key_refused", "encrypted_key_reload_with_a_terminal",
    "session_resumption", "shared_ticket_key", "no_session_tickets", "side_by_side",
    "garbage_before_handshake", "garbage_after_handshake", "half_client_hello",
    "many_half_hellos",
]


# Cases that fail because of a server bug that is reported and not fixed yet: their failure
# prints XFAIL with the reason and does not fail the suite; once they pass, a NOTE asks to
# remove the entry.
KNOWN_SERVER_BUGS: dict[str, str] = {}


class Skip(Exception):
    """The case cannot run here (e.g. the local OpenSSL refuses to build such a client)."""


async def run_one(rep: Reporter, name: str, fn, timeout: float = 30.0):
    """messaging.run_case plus SKIP (prints its reason, counts as neither) and XFAIL for the
    entries of KNOWN_SERVER_BUGS."""
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(fn(), timeout)
    except Skip as e:
        print(f"{'SKIP':<10} {name}  -- {e}", flush=True)
        return
    except CheckFailed as e:
        fail(rep, name, str(e))
        return
    except asyncio.TimeoutError:
        fail(rep, name, f"case deadline of {timeout}s passed")
        return
    except Exception as e:  # noqa: BLE001 - any crash of a case is a failure with its trace
        fail(rep, name, f"{e.__class__.__name__}: {e} "
             f"[{traceback.format_exc(limit=3).splitlines()[-3:]}]")
        return
    rep.record(name, True, f"{time.monotonic() - t0:.2f}s")
    if name in KNOWN_SERVER_BUGS:
        rep.note(f"{name} passes now: remove it from KNOWN_SERVER_BUGS")


def fail(rep: Reporter, name: str, detail: str):
    if name in KNOWN_SERVER_BUGS:
        print(f"{'XFAIL':<10} {name}  -- known server bug: {KNOWN_SERVER_BUGS[name]}; "
              f"seen: {detail}", flush=True)
    else:
        rep.record(name, False, detail)


async def run_all(suite: Suite, rep: Reporter, only: list[str] | None):
    for name in CASES:
        if not only or name in only:
            await run_one(rep, name, getattr(suite, "case_" + name))


def main() -> int:
    args = suite_arguments(__doc__)
    only = os.environ.get("SB_TLS_CASES")
    rep = Reporter("integration.test_tls")
    ca = TestCA()
    suite = None
    try:
        suite = Suite(args.server, rep, ca)
        asyncio.run(run_all(suite, rep, only.split(",") if only else None))
    finally:
        if suite is not None:
            suite.close_all()
        ca.cleanup()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
