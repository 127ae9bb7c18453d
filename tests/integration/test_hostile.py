#!/usr/bin/python3
"""Integration: hostile clients against one server with every defence of docs/security.md on
(TLS, JWT auth, access rules, abuse limits). Each case checks the status or close code the
docs give; every limit must act on the offender only.

One server for the whole suite: TLS on the main port (throwaway CA, tests/support/tls_ca.py),
[auth] with an HS256 secret and an RSA public key (tokens from tests/support/tokens.py),
namespaces `chat` (anonymous = false) and `secret` (private = true; `default` is not
anonymous either), --limit-loopback with server.connection_rate_per_ip = 50 (burst 100),
api.key with api.rate_limit = 100 (burst 200), server.handshake_timeout = 2s,
messaging.rate_limit and max_subscriptions at their defaults (200/s burst 400, 256).

Each case speaks from its own loopback source address (127.0.0.10, .11, …; the kernel routes
all of 127/8 to lo): per-IP limits then see one offender per case, and the control traffic
(the bystander, /metrics) comes from 127.0.0.1 and must never be refused.

A bystander runs through the whole suite on its own thread and event loop: an authenticated
wss:// subscriber of `chat:bystander` and a second authenticated client publishing there every
50 ms. After every case: the server process is alive, the bystander received more (contiguous
offsets, no gap), the publisher's publishes were all accepted, and the server's VmRSS is under
RSS_BOUND_MIB (the peak, sampled every 20 ms, is printed at the end).

Cases:
 1. forged_tokens: at the upgrade (Authorization: Bearer, or ?token=) a wrong-secret, a
    flipped-signature, a payload swapped under a valid signature, an alg:none (three
    spellings), an HS256 token "signed" with the server's RSA public key (HS/RS confusion),
    an RS256-labelled HMAC, an HS512, an ES256 header, an expired, an exp-less, a
    not-yet-valid and three malformed tokens → each 401 `invalid_token` with
    WWW-Authenticate: Bearer, no WebSocket; no token → 401 `token_required`; valid HS256
    and RS256 tokens → 101 and `connected` with their `sub` (whatever `user` says). In
    `connect` (which wins over the upgrade's token): a forged one, a validly signed 9 KiB
    one and a validly signed one nested 20 deep → `invalid_token`.
    No token text reaches the server log.
 2. private_channel: `secret:room` without a token, with a forged one, one for another
    channel, one for another user, an expired one, one for `secret:*` → not subscribed
    (permission_denied / invalid_token as the docs say); with the right token: subscribed
    and a publication arrives; its history and presence are refused to a non-subscriber
    (permission_denied) and served to the subscriber.
 3. session_theft: alice resumes her own session (control: `resumed:true`, her channel
    restored); bob resumes alice's session id while she holds it and after she left →
    `resumed:false` and a new id each time; alice is not taken over (no 4004) and can still
    resume it herself afterwards.
 4. connection_flood: 300 TCP connections from one address as fast as possible: at least
    the burst (100) is admitted, at most burst + rate × elapsed, the rest are closed at once
    without an answer (on a TLS port a plaintext 429 would only be a TLS error; the plain
    port's 429 is checked in test_server_edges); the refused counter grows by exactly the
    refusals; 127.0.0.1 is served meanwhile; after Retry-After the
    flooding address is served again; at most 3 log lines name it. Then a sustained flood
    from a fresh address, 200 connections paced over a second (4 × the rate): admissions
    within the bound, and still at most 3 log lines (one per address and second).
 5. api_flood: 300 calls with a wrong key → all 401 (they spend nothing), then 500
    /api/publish calls with the key on 5 keep-alive connections → at least the burst (200)
    succeed, the rest 429 `rate_limited` with Retry-After: 1, admitted ≤ burst + rate ×
    elapsed, switchboard_api_rate_limited_total grows by exactly the 429s; a call after
    Retry-After works; at most 3 log lines about api.rate_limit ("one log line per run").
 6. request_flood: 1,500 JSON pings back to back on /ws → pongs up to the burst, then
    `rate_limited` errors without id, the last 19 in a row, then `disconnect` 1008
    reconnect:false as the last message and close 1008 `rate limit exceeded`;
    switchboard_rate_limited_total grows.
 7. ping_flood: 500 WebSocket pings at once (below 1,000/s) are all answered and the
    connection stays; 2,500 at once → close 1008 `too many pings` with at most 1,000 pongs.
 8. slowloris_tls: 100 connections from two addresses that stall: 30 send half a
    ClientHello, 25 finish the TLS handshake and send nothing, 25 send a partial HTTP
    request, 20 trickle a request one byte every 250 ms → every one closed within
    handshake_timeout + CLOSE_SLACK_S of its connect (those that sent request bytes get 408),
    none answered 2xx/101; a fresh client is served while they hang.
 9. tls_garbage_before: random bytes (1, 5, 300, 4,096, 20,000), plain HTTP requests, an
    HTTP/2 preface, a handshake record of junk, a ClientHello followed by junk → each closed
    within the bound, nothing 2xx; `failed` TLS handshakes grow; no log line per connection.
10. tls_garbage_after: after a complete TLS handshake: encrypted garbage as the request (400
    or close), a plaintext HTTP request written raw, random raw bytes, a valid request then
    the next record with one ciphertext byte flipped, and on an upgraded, connected /ws:
    random raw bytes and a record header claiming 65,535 B → each closed promptly.
11. oversized_header: a 10,000-byte header, 200 headers of 60 bytes → 431; 1 MiB of headers
    streamed → 431 or a close, never a 101.
12. oversized_message: 100,000-byte message → close 1009; a frame declaring 2^40 bytes →
    close 1009 at once; 2 × 40 KiB fragments → 1009; a 66 KiB `data` (message under 68 KiB)
    → `data_too_large` and a 60 KiB one is published (the limits' boundaries).
13. deep_json: data nested 20 deep is published; 40 deep, 30,000 deep arrays (balanced and
    not), 10,000 deep objects → `bad_json`, the connection stays usable.
14. long_channel_name: a 300-char name, a 193-byte name, a 65-char namespace, a space →
    `bad_channel` on /ws subscribe/publish and 400 `bad_channel` on /api/publish; a 192-byte
    name is fine.
15. max_subscriptions: 256 subscriptions pipelined are accepted, the 257th →
    `limit_exceeded`, the connection stays usable, and after one unsubscribe another works.

The whole file is bounded by SUITE_BUDGET_S (each case also has its own deadline).

  /usr/bin/python3 tests/integration/test_hostile.py --server build/dev/switchboard
  (--only NAME,NAME runs some cases; --transport-only runs the TLS/transport cases against a
  build without [auth] and the abuse limits)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import http.client
import json
import os
import random
import selectors
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import (OP_CONT, OP_PING, OP_PONG, OP_TEXT, BioTls,  # noqa: E402
                     ConnectionClosed, Deadline, HarnessError, HttpResponse, Reporter,
                     WSClient, encode_frame, read_to_eof)
from messaging import (API_KEY, SUBPROTOCOL, CheckFailed, Client, Server,  # noqa: E402
                       check, require_websockets, short, websockets)
from regression import (RssWatch, death_note, sanitized, server_log,  # noqa: E402
                        small_asan_quarantine)
from tls_ca import TestCA  # noqa: E402
from tokens import (TestKeys, b64url, b64url_json, hs256_with_raw_key, mint,  # noqa: E402
                    nested, now, padded_to, unsigned_token)
from tokens import claims as jwt_claims  # noqa: E402

require_websockets()
small_asan_quarantine()

SEED = int(os.environ.get("SB_HOSTILE_SEED", "20240607"))
SUITE_BUDGET_S = 140.0       # the file must finish within 150 s
CASE_TIMEOUT_S = 30.0
HANDSHAKE_TIMEOUT_S = 2.0    # server.handshake_timeout: TLS handshake + HTTP request
# From our connect() to seeing EOF: the server's timer granularity plus scheduling on a busy
# 2-core machine running both the server and this suite (under ASan in CI, next to other
# suites): generous, as the check is that stalled connections end, not how fast.
CLOSE_SLACK_S = 5.0
CONN_RATE = 50               # server.connection_rate_per_ip (burst 2×)
API_RATE = 100               # api.rate_limit (burst 2×)
WS_RATE = 200                # messaging.rate_limit default (burst 2×)
MAX_SUBS = 256               # messaging.max_subscriptions default
PUBLISH_PERIOD_S = 0.05      # the bystander's publisher pace
# A token bucket refills while the server works through what we sent, which can end a little
# after our last send on a busy machine: admission bounds allow rate × (elapsed + LAG_S).
LAG_S = 1.0
# Server RSS bound, checked after every case. What this suite legitimately makes the server
# hold at once: at most ~400 connections (TLS state and buffers, well under 100 KiB each:
# < 40 MiB), one 68 KiB message being parsed (the parser needs ~15 B per input byte: ~1 MiB),
# up to 1,000 pongs and 400 replies queued for a flooding client (< 1 MiB), 256
# subscriptions, a few histories of 10 publications: well under 100 MiB over a baseline of a
# few MiB. 300 MiB leaves room for allocator slack and catches what a missing limit costs
# (answering a ping flood or buffering an endless header grows by hundreds of MiB).
RSS_BOUND_MIB = 300
RSS_BOUND_ASAN_MIB = 800     # shadow memory and redzones under AddressSanitizer

REFUSED_RATE = 'switchboard_connections_refused_total{reason="connection_rate_per_ip"}'
API_LIMITED = "switchboard_api_rate_limited_total"
WS_LIMITED = "switchboard_rate_limited_total"
TLS_FAILED = 'switchboard_tls_handshakes_total{result="failed"}'

CONTROL_IP = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Tokens (tests/support/tokens.py mints them; forged ones are built on its pieces)


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Tokens:
    """Valid and forged JWTs for one run's keys: an HS256 secret and an RSA key pair whose
    public half the server loads (auth.public_key_files)."""

    def __init__(self, directory: Path):
        self.keys = TestKeys(directory)
        self.secret = self.keys.hs_secret
        self.public_file = self.keys.rsa_pub_file

    def user(self, sub: str, ttl: int | None = 600, **extra) -> str:
        return mint(self.secret, "HS256", sub=sub, ttl=ttl, **extra)

    def rs(self, sub: str) -> str:
        return mint(self.keys.rsa, "RS256", sub=sub)

    def subscribe(self, channel: str, sub: str | None = None, ttl: int = 600,
                  key: str | None = None) -> str:
        return mint(key or self.secret, "HS256", sub=sub, ttl=ttl, channel=channel)

    def forged(self, sub: str = "mallory") -> list[tuple[str, str]]:
        good = jwt_claims(sub)
        valid = self.user(sub)
        h, p, s = valid.split(".")
        sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
        sig[0] ^= 0x01
        secret = self.secret.encode()
        return [
            ("wrong secret", mint(self.keys.other_hs_secret, "HS256", sub=sub)),
            ("flipped signature bit", f"{h}.{p}.{b64url(bytes(sig))}"),
            ("payload swapped under a valid signature",
             f"{h}.{b64url_json(jwt_claims('admin'))}.{s}"),
            ("alg none, empty signature", unsigned_token(good)),
            ("alg None, empty signature", unsigned_token(good, alg="None")),
            ("alg NONE with the valid signature",
             f"{b64url_json({'alg': 'NONE', 'typ': 'JWT'})}.{p}.{s}"),
            ("HS256 signed with the RSA public key PEM (HS/RS confusion)",
             hs256_with_raw_key(self.keys.rsa_pub_pem, good)),
            ("RS256 header, HMAC signature",
             hs256_with_raw_key(secret, good, {"alg": "RS256", "typ": "JWT"})),
            ("HS512 with the right secret", mint(self.secret, "HS512", sub=sub)),
            ("ES256 header, HMAC signature",
             hs256_with_raw_key(secret, good, {"alg": "ES256", "typ": "JWT"})),
            ("expired an hour ago", self.user(sub, ttl=-3600)),
            ("no exp", self.user(sub, ttl=None)),
            ("nbf in an hour", self.user(sub, nbf=now() + 3600)),
            ("two parts", f"{h}.{p}"),
            ("not base64", "!!!.@@@.###"),
            ("header not JSON", f"{b64url(b'not json')}.{p}.{s}"),
        ]


# --------------------------------------------------------------------------------------------
# TLS clients


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


def tcp(port: int, ip: str, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(ip, 0))


class TlsWS(WSClient):
    """harness.WSClient over TLS from a chosen source address; a TLS error or alert while
    reading or writing counts as the connection closing."""

    def __init__(self, port: int, ctx: ssl.SSLContext, ip: str, timeout: float = 5.0):
        raw = tcp(port, ip, timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port, self.timeout = "localhost", port, timeout
        self.buf = bytearray()
        self.eof = None
        self.response = None
        self.deflate = None
        self.subprotocol = None
        self._compressor = None
        self._decompressor = None
        self.frames_seen = []

    def _fill(self, deadline: Deadline) -> None:
        try:
            super()._fill(deadline)
        except ssl.SSLError as e:
            self.eof = f"tls: {e.reason or e}"
            raise ConnectionClosed(self.eof) from None

    def send_raw(self, data: bytes, chop: int | None = None):
        try:
            super().send_raw(data, chop)
        except (ssl.SSLError, OSError) as e:
            raise ConnectionClosed(f"send failed: {e.__class__.__name__}") from None

    def send_json(self, obj):
        self.send_frame(OP_TEXT, obj.encode() if isinstance(obj, str) else compact(obj))

    def recv_json(self, timeout: float = 5.0) -> dict:
        return json.loads(self.recv_message(timeout=timeout).data)

    def request(self, obj: dict, timeout: float = 5.0) -> dict:
        self.send_json(obj)
        deadline = Deadline(timeout)
        while True:
            m = self.recv_json(max(0.01, deadline.remaining()))
            if m.get("id") == obj.get("id"):
                return m


def parse_http(raw: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a response held in raw bytes."""
    if not raw.startswith(b"HTTP/1."):
        return None, {}, raw
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, raw
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
    return status, headers, body


def json_error(body: bytes) -> str | None:
    try:
        return json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None


class Https:
    """Keep-alive HTTPS from one source address; reconnects once if the server closed it."""

    def __init__(self, port: int, ctx: ssl.SSLContext, ip: str):
        self.port, self.ctx, self.ip = port, ctx, ip
        self.conn: http.client.HTTPSConnection | None = None
        self.lock = threading.Lock()

    def request(self, method: str, path: str, body=None, headers=None,
                timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else (body if isinstance(body, bytes) else compact(body))
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        with self.lock:
            for attempt in (0, 1):
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(
                        "127.0.0.1", self.port, context=self.ctx, timeout=timeout,
                        source_address=(self.ip, 0))
                try:
                    self.conn.request(method, path, body=data, headers=hdrs)
                    resp = self.conn.getresponse()
                    raw = resp.read()
                    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
                except (http.client.HTTPException, OSError) as e:
                    self.conn.close()
                    self.conn = None
                    if attempt:
                        raise CheckFailed(f"{method} https://127.0.0.1:{self.port}{path} from "
                                          f"{self.ip}: {e!r}") from None
        raise AssertionError("unreachable")

    def close(self):
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


async def wss(port: int, ctx: ssl.SSLContext, name: str, token: str | None, ip: str,
              timeout: float = 5.0) -> Client:
    """A python3-websockets client on wss:// /ws from `ip`, token in the upgrade request."""
    ws = await asyncio.wait_for(websockets.connect(
        f"wss://localhost:{port}/ws", ssl=ctx, host="127.0.0.1", port=port,
        server_hostname="localhost", local_addr=(ip, 0), subprotocols=[SUBPROTOCOL],
        extra_headers={"Authorization": f"Bearer {token}"} if token else None,
        ping_interval=None, max_size=None, max_queue=None, compression=None,
        open_timeout=timeout, close_timeout=3), timeout + 1)
    return Client(ws, name)


# --------------------------------------------------------------------------------------------
# The bystander: its own thread and event loop, so no case (blocking or not) can starve it


class Bystander:
    CHANNEL = "chat:bystander"

    def __init__(self, port: int, ctx: ssl.SSLContext, token):
        self.port, self.ctx, self.token = port, ctx, token  # token(sub) → JWT or None
        self.count = 0
        self.last_offset = 0
        self.published = 0
        self.problems: list[str] = []
        self.error: str | None = None
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True,
                                       name="bystander")

    def start(self, timeout: float = 15.0):
        self.thread.start()
        if not self.ready.wait(timeout):
            raise CheckFailed(f"bystander not ready within {timeout}s")
        if self.error:
            raise CheckFailed(f"bystander: {self.error}")

    def stop(self):
        self.stopping.set()
        self.thread.join(10)

    def _on_message(self, m):
        if m.get("type") != "message" or m.get("channel") != self.CHANNEL:
            return
        o = m.get("offset")
        if self.last_offset and o != self.last_offset + 1 and len(self.problems) < 5:
            self.problems.append(f"offset {o} after {self.last_offset}")
        if m.get("gap") and len(self.problems) < 5:
            self.problems.append(f"gap:true at offset {o}")
        self.last_offset = o if isinstance(o, int) else self.last_offset
        self.count += 1

    async def _run(self):
        sub = pub = None
        try:
            sub = await wss(self.port, self.ctx, "bystander", self.token("bystander"),
                            CONTROL_IP)
            await sub.connect()
            await sub.subscribe(self.CHANNEL)
            sub.store_messages = False
            sub.on_message = self._on_message
            pub = await wss(self.port, self.ctx, "publisher", self.token("publisher"),
                            CONTROL_IP)
            await pub.connect()
            self.ready.set()
            n = 0
            while not self.stopping.is_set():
                n += 1
                await pub.publish(self.CHANNEL, {"n": n}, timeout=10)
                self.published += 1
                pub.all.clear()
                sub.all.clear()
                if sub.closed.is_set():
                    raise CheckFailed(f"the subscriber was closed: code {sub.close_code} "
                                      f"{sub.close_reason!r}")
                await asyncio.sleep(PUBLISH_PERIOD_S)  # the publication pace
        except Exception as e:  # noqa: BLE001 - reported after the case that saw it
            self.error = f"{e.__class__.__name__}: {e}"
        finally:
            self.ready.set()
            for c in (sub, pub):
                if c is not None:
                    await c.close()
                    await c.stop()


# --------------------------------------------------------------------------------------------
# The suite


def config_text(cert, tokens: Tokens | None) -> str:
    text = f"""
[server]
handshake_timeout = "{int(HANDSHAKE_TIMEOUT_S * 1000)}ms"

[tls]
cert_file = "{cert.chain}"
key_file = "{cert.key}"

[api]
key = "{API_KEY}"

[namespaces.chat]
history_size = 10

[namespaces.secret]
history_size = 10
"""
    if tokens is None:
        return text
    return text.replace("[server]\n", f"""[server]
connection_rate_per_ip = {CONN_RATE}
""").replace(f'key = "{API_KEY}"\n', f"""key = "{API_KEY}"
rate_limit = {API_RATE}

[auth]
hmac_secrets = ["{tokens.secret}"]
public_key_files = ["{tokens.public_file}"]
""").replace("[namespaces.chat]\n", "[namespaces.chat]\nanonymous = false\n").replace(
        "[namespaces.secret]\n", "[namespaces.secret]\nanonymous = false\nprivate = true\n")


TRANSPORT_CASES = ("slowloris_tls", "tls_garbage_before", "tls_garbage_after",
                   "oversized_header", "oversized_message", "deep_json", "long_channel_name",
                   "max_subscriptions", "ping_flood")


class Suite:
    def __init__(self, binary: str, rep: Reporter, transport_only: bool):
        self.binary = binary
        self.rep = rep
        self.transport_only = transport_only
        self.tmp = Path(tempfile.mkdtemp(prefix="sb-hostile-"))
        self.ca = TestCA(self.tmp / "ca")
        self.cert = self.ca.issue("server")
        self.ctx = ssl.create_default_context(cafile=self.ca.cert)
        self.tokens = Tokens(self.tmp)
        self.asan = sanitized(binary)
        self.rss_bound = RSS_BOUND_ASAN_MIB if self.asan else RSS_BOUND_MIB
        self.server: Server | None = None
        self.bystander: Bystander | None = None
        self.watch: RssWatch | None = None
        self.control: Https | None = None
        self.next_ip = 10
        self.dead: str | None = None

    # ---- setup
    def start(self):
        config = config_text(self.cert, None if self.transport_only else self.tokens)
        flags = () if self.transport_only else ("--limit-loopback",)
        self.server = Server(self.binary, config, name="hostile", threads=2, flags=flags,
                             log_level="info")
        line = b"\n".join(self.server.proc.stdout_lines)
        check(b"(tls)" in line, f"listening line without ' (tls)': {line[-200:]!r}")
        self.port = self.server.port
        self.control = Https(self.port, self.ctx, CONTROL_IP)
        self.bystander = Bystander(self.port, self.ctx, self.token)
        self.bystander.start()
        self.watch = RssWatch(self.server)

    def stop(self):
        if self.bystander:
            self.bystander.stop()
        if self.watch:
            self.watch.stop()
        if self.control:
            self.control.close()
        if self.server:
            self.server.close()
        self.ca.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers
    def ip(self) -> str:
        """A loopback source address no earlier case used (its own per-IP buckets)."""
        self.next_ip += 1
        check(self.next_ip < 255, "out of loopback addresses")
        return f"127.0.0.{self.next_ip}"

    def token(self, sub: str) -> str | None:
        return None if self.transport_only else self.tokens.user(sub)

    def metrics(self) -> dict[str, float]:
        status, _, raw = self.control.request("GET", "/metrics")
        check(status == 200, f"GET /metrics → {status}")
        return parse_metrics(raw.decode(errors="replace"))

    def metric(self, name: str) -> float:
        v = self.metrics().get(name)
        check(v is not None, f"/metrics has no {name}")
        return v

    def log(self) -> str:
        return server_log(self.server)

    def alive(self, when: str):
        note = death_note(self.server)
        if note:
            self.dead = note
            raise CheckFailed(f"{when}: {note}")

    async def client(self, name: str, ip: str, sub: str | None = None) -> Client:
        c = await wss(self.port, self.ctx, name, self.token(sub or name), ip)
        await c.connect()
        return c

    def raw_ws(self, ip: str, sub: str, connect: bool = True) -> TlsWS:
        """A raw TLS WebSocket on /ws with a connection token, connected."""
        w = TlsWS(self.port, self.ctx, ip)
        tok = self.token(sub)
        w.handshake(path="/ws", protocols=[SUBPROTOCOL],
                    extra=[("Authorization", f"Bearer {tok}")] if tok else None)
        if connect:
            r = w.request({"type": "connect", "id": "c1", "user": sub})
            check(r.get("type") == "connected", f"raw connect → {short(r)}")
        return w

    def upgrade(self, ip: str, token: str | None = None, query: str | None = None,
                extra=None) -> tuple[HttpResponse, TlsWS]:
        w = TlsWS(self.port, self.ctx, ip)
        path = "/ws" if query is None else f"/ws?token={urllib.parse.quote(query, safe='')}"
        hdrs = list(extra or [])
        if token is not None:
            hdrs.append(("Authorization", f"Bearer {token}"))
        resp = w.handshake(path=path, protocols=[SUBPROTOCOL], extra=hdrs, expect_status=None)
        return resp, w

    # ---- after every case
    def after_case(self):
        self.alive("after the case")
        b = self.bystander
        if b.error:
            raise CheckFailed(f"bystander: {b.error}")
        if b.problems:
            raise CheckFailed(f"bystander saw {b.problems}")
        c0, p0 = b.count, b.published
        deadline = Deadline(5)
        while b.count < c0 + 2 or b.published < p0 + 2:
            self.alive("while waiting for the bystander")
            if b.error:
                raise CheckFailed(f"bystander: {b.error}")
            if deadline.expired():
                raise CheckFailed(f"bystander stuck: received {b.count - c0}, published "
                                  f"{b.published - p0} in 5 s (should be ~100)")
            time.sleep(0.02)  # polling a counter of the bystander thread, deadline-bound
        rss = self.server.rss_kib() / 1024
        peak = self.watch.peak_kib / 1024
        check(peak < self.rss_bound, f"server RSS peaked at {peak:.1f} MiB (bound "
              f"{self.rss_bound} MiB); now {rss:.1f} MiB")
        return rss

    async def run(self, name: str, t_start: float) -> bool:
        fn = getattr(self, "case_" + name)
        t0 = time.monotonic()
        error = None
        if self.dead:
            self.rep.record(name, False, f"not run: {self.dead}")
            return False
        left = SUITE_BUDGET_S - (t0 - t_start)
        if left < 5:
            self.rep.record(name, False, f"not run: the suite budget of {SUITE_BUDGET_S:.0f}s "
                            "is spent")
            return False
        timeout = min(CASE_TIMEOUT_S, left)
        try:
            if asyncio.iscoroutinefunction(fn):
                await asyncio.wait_for(fn(), timeout)
            else:
                await asyncio.wait_for(asyncio.to_thread(fn), timeout)
        except (CheckFailed, HarnessError) as e:
            error = f"{e.__class__.__name__ + ': ' if isinstance(e, HarnessError) else ''}{e}"
        except asyncio.TimeoutError as e:
            if time.monotonic() - t0 >= timeout - 0.1:
                error = f"case deadline of {timeout:.0f}s passed"
            else:  # a timeout inside the case (a socket's, an inner wait_for's)
                error = (f"{e.__class__.__name__} after {time.monotonic() - t0:.2f}s "
                         f"[{traceback.format_exc(limit=8).splitlines()[-8:]}]")
        except Exception as e:  # noqa: BLE001 - any crash of a case is a failure with its trace
            error = (f"{e.__class__.__name__}: {e} "
                     f"[{traceback.format_exc(limit=8).splitlines()[-8:]}]")
        took = time.monotonic() - t0
        try:
            rss = await asyncio.to_thread(self.after_case)
            after = f"; RSS {rss:.1f} MiB, bystander {self.bystander.count} received"
        except CheckFailed as e:
            error = (error + "; " if error else "") + f"after the case: {e}"
            after = ""
        if error and not self.dead:
            note = death_note(self.server)
            if note:
                self.dead = note
                error = f"{note}; the case saw: {error}"
        self.rep.record(name, error is None, error if error else f"{took:.2f}s{after}")
        return error is None

    # ================================================================== 1. forged tokens
    def case_forged_tokens(self):
        ip = self.ip()
        forged = self.tokens.forged()
        log0 = len(self.log())
        for i, (what, tok) in enumerate(forged):
            via_query = i % 4 == 3  # every fourth through ?token=, the browsers' way
            resp, w = self.upgrade(ip, None if via_query else tok, tok if via_query else None)
            w.close()
            where = "?token=" if via_query else "Authorization: Bearer"
            check(resp.status == 401, f"forged token ({what}) in {where} → {resp.status} "
                  f"{resp.body[:160]!r}, expected 401 invalid_token")
            check(json_error(resp.body) == "invalid_token",
                  f"forged token ({what}) → 401 with body {resp.body[:160]!r}, expected "
                  "{\"error\":\"invalid_token\",…}")
            www = resp.header("www-authenticate") or ""
            check(www.lower().startswith("bearer"),
                  f"forged token ({what}) → 401 without WWW-Authenticate: Bearer ({www!r})")
        resp, w = self.upgrade(ip)
        w.close()
        check(resp.status == 401 and json_error(resp.body) == "token_required",
              f"upgrade without a token (no namespace is anonymous) → {resp.status} "
              f"{resp.body[:160]!r}, expected 401 token_required")
        # Valid tokens: HS256 and RS256, both in the header and in the query.
        for what, tok, sub in (("HS256", self.tokens.user("hs-user"), "hs-user"),
                               ("RS256", self.tokens.rs("rs-user"), "rs-user")):
            for via_query in (False, True):
                resp, w = self.upgrade(ip, None if via_query else tok,
                                       tok if via_query else None)
                try:
                    check(resp.status == 101, f"valid {what} token → {resp.status} "
                          f"{resp.body[:160]!r}")
                    r = w.request({"type": "connect", "id": 1, "user": "admin"})
                    check(r.get("type") == "connected" and r.get("user") == sub,
                          f"connect with a valid {what} token (sub {sub}, user 'admin') → "
                          f"{short(r)}")
                finally:
                    w.close()
        # In connect: it wins over the upgrade's (valid) token and is verified the same way.
        big = padded_to(self.tokens.secret, 9 * 1024, sub="big")
        deep = self.tokens.user("deep", extra=nested(20))
        for what, tok in (("wrong secret", forged[0][1]), ("alg none", forged[3][1]),
                          ("HS/RS confusion", forged[6][1]), ("expired", forged[10][1]),
                          (f"validly signed, {len(big)} B", big),
                          ("validly signed, claims nested 21 deep", deep)):
            resp, w = self.upgrade(ip, self.tokens.user("carrier"))
            try:
                check(resp.status == 101, f"upgrade with a valid token → {resp.status}")
                r = w.request({"type": "connect", "id": 2, "token": tok})
                check(r.get("type") == "error" and r.get("code") == "invalid_token",
                      f"connect with a {what} token → {short(r)}, expected error "
                      "invalid_token")
            finally:
                w.close()
        log = self.log()[log0:]
        for what, tok in forged + [("big", big), ("nested", deep)]:
            parts = [p for p in tok.split(".") if len(p) >= 16]
            leaked = [p for p in parts if p in log]
            check(not leaked, f"the server log holds part of a token ({what}): "
                  f"{leaked[:1]}")
        print(f"NOTE       forged_tokens: {len(forged)} forged tokens refused at the upgrade, "
              f"6 in connect; {len(log)} log bytes hold none of them", flush=True)

    # ================================================================== 2. private channels
    async def case_private_channel(self):
        ip = self.ip()
        t = self.tokens
        ch = "secret:room"
        alice = await self.client("alice", ip)
        bob = await self.client("bob", ip)
        try:
            attempts = [
                ("no token", None, {"permission_denied"}),
                ("a forged token (wrong secret)",
                 t.subscribe(ch, "alice", key=t.keys.other_hs_secret),
                 {"invalid_token"}),
                ("a token for secret:other", t.subscribe("secret:other", "alice"),
                 {"permission_denied"}),
                ("a token for bob", t.subscribe(ch, "bob"), {"permission_denied"}),
                ("an expired token", t.subscribe(ch, "alice", ttl=-3600), {"invalid_token"}),
                ("a token for secret:*", t.subscribe("secret:*", "alice"),
                 {"permission_denied", "invalid_token"}),
                ("alice's connection token", t.user("alice"),
                 {"permission_denied", "invalid_token"}),
            ]
            for what, tok, codes in attempts:
                req = {"type": "subscribe", "channel": ch}
                if tok is not None:
                    req["token"] = tok
                r = await alice.request(req)
                check(r.get("type") == "error" and r.get("code") in codes,
                      f"subscribe {ch} with {what} → {short(r)}, expected {sorted(codes)}")
            r = await bob.request({"type": "subscribe", "channel": ch,
                                   "token": t.subscribe(ch, "alice")})
            check(r.get("type") == "error" and r.get("code") == "permission_denied",
                  f"bob subscribes {ch} with alice's subscribe token → {short(r)}")
            r = await alice.request({"type": "subscribe", "channel": ch,
                                     "token": t.subscribe(ch, "alice")})
            check(r.get("type") == "subscribed", f"subscribe {ch} with the right token → "
                  f"{short(r)}")
            p = await bob.publish(ch, "for alice only")
            await alice.expect(lambda m: m.get("type") == "message" and
                               m.get("offset") == p.get("offset"), 5,
                               f"the publication on {ch}")
            # A private channel's history and presence are for its subscribers only.
            for kind in ("history", "presence"):
                h = await bob.request({"type": kind, "channel": ch})
                check(h.get("type") == "error" and h.get("code") == "permission_denied",
                      f"bob, not subscribed to private {ch}, asks its {kind} → {short(h, 160)}")
            h = await alice.request({"type": "history", "channel": ch})
            check(h.get("type") == "history", f"alice, a subscriber, asks the history of "
                  f"{ch} → {short(h, 160)}")
        finally:
            for c in (alice, bob):
                await c.close()
                await c.stop()

    # ================================================================== 3. session theft
    async def case_session_theft(self):
        ip = self.ip()
        opened: list[Client] = []

        async def resume(name: str, sub: str, sid: str) -> tuple[Client, dict]:
            c = await wss(self.port, self.ctx, name, self.token(sub), ip)
            opened.append(c)
            return c, await c.request({"type": "connect", "session": sid})

        try:
            alice = await self.client("alice", ip)
            opened.append(alice)
            sid = alice.session
            await alice.subscribe("chat:alice-diary")
            await alice.close()
            await alice.wait_closed(5)
            # Control: alice resumes her own session (nobody else involved).
            alice, r = await resume("alice-2", "alice", sid)
            chans = [c.get("channel") for c in r.get("channels") or []]
            check(r.get("type") == "connected" and r.get("resumed") is True and
                  r.get("session") == sid and "chat:alice-diary" in chans,
                  f"alice resumes her own session (no other user involved) → {short(r)}")
            # Bob, with alice's session id, while she holds it.
            _, r = await resume("bob", "bob", sid)
            check(r.get("type") == "connected" and r.get("resumed") is False and
                  r.get("session") not in (None, sid) and not r.get("channels"),
                  f"bob resumes alice's live session → {short(r)}, expected resumed:false "
                  "and a new session")
            await alice.ping_ok()
            check(not alice.messages(type_="disconnect"), f"alice got "
                  f"{alice.messages(type_='disconnect')} when bob tried her session")
            await alice.close()
            await alice.wait_closed(5)
            # Bob again after she left (the session lives on for its TTL).
            _, r = await resume("bob-2", "bob", sid)
            check(r.get("type") == "connected" and r.get("resumed") is False and
                  r.get("session") not in (None, sid) and not r.get("channels"),
                  f"bob resumes alice's session after she left → {short(r)}")
            # Bob's attempts left it intact.
            _, r = await resume("alice-3", "alice", sid)
            chans = [c.get("channel") for c in r.get("channels") or []]
            check(r.get("type") == "connected" and r.get("resumed") is True and
                  r.get("session") == sid and "chat:alice-diary" in chans,
                  f"alice resumes her own session after bob's attempts → {short(r)}")
        finally:
            for c in opened:
                await c.close()
                await c.stop()

    # ================================================================== 4. connection flood
    def flood(self, ip: str, n: int, per_s: float | None, read_s: float):
        """Opens n TCP connections from ip (as fast as possible, or paced at per_s) and sorts
        them by what arrives within read_s after the last: a 429 answer (refused at accept)
        or nothing (admitted: the server waits for a ClientHello). Returns (refused answers,
        admitted count, seconds the opening took)."""
        socks: list[socket.socket] = []
        opened: list[float] = []
        sel = selectors.DefaultSelector()
        data: dict[int, bytes] = {}
        early_close: list[str] = []
        try:
            t0 = time.monotonic()
            for i in range(n):
                if per_s:
                    pause = t0 + i / per_s - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # the flood's pace, not a synchronization
                s = tcp(self.port, ip)
                opened.append(time.monotonic())
                s.setblocking(False)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, i)
            elapsed = time.monotonic() - t0
            deadline = Deadline(read_s)
            while not deadline.expired():
                for key, _ in sel.select(min(0.1, deadline.remaining())):
                    i = key.data
                    try:
                        chunk = key.fileobj.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    if chunk:
                        data[i] = data.get(i, b"") + chunk
                        continue
                    sel.unregister(key.fileobj)
                    age = time.monotonic() - opened[i]
                    if i not in data and age < HANDSHAKE_TIMEOUT_S - 0.1:
                        early_close.append(f"#{i} after {age:.2f}s")
        finally:
            sel.close()
            for s in socks:
                s.close()
        # On a TLS port a refused connection is closed at once with no answer (a plaintext
        # 429 would only be a TLS error to the client); an admitted one waits for its
        # ClientHello until the handshake timeout. Any bytes at all are wrong here.
        check(not data, f"flood from {ip}: the server sent bytes before any ClientHello: "
              f"{[d[:80] for d in data.values()][:3]}")
        return early_close, n - len(early_close), elapsed

    def case_connection_flood(self):
        ip = self.ip()
        n = 300
        before = self.metric(REFUSED_RATE)
        log0 = len(self.log())
        refused, admitted, elapsed = self.flood(ip, n, None, 1.0)
        t_refused = time.monotonic()
        check(refused, f"{n} connections from {ip} in {elapsed:.3f}s: none refused "
              f"(connection_rate_per_ip {CONN_RATE}, burst {2 * CONN_RATE})")
        check(admitted >= 2 * CONN_RATE,
              f"only {admitted} of {n} admitted: the burst is {2 * CONN_RATE}")
        bound = 2 * CONN_RATE + CONN_RATE * (elapsed + LAG_S) + 1
        check(admitted <= bound, f"{admitted} of {n} admitted in {elapsed:.3f}s; at most "
              f"{bound:.0f} may be (burst {2 * CONN_RATE} + {CONN_RATE}/s)")
        grown = self.metric(REFUSED_RATE) - before
        check(grown == len(refused), f"{REFUSED_RATE} grew by {grown:.0f}, "
              f"{len(refused)} refusals were seen")
        # Only the offender: the control address is served right after its flood.
        st, _, _ = Https(self.port, self.ctx, CONTROL_IP).request("GET", "/healthz")
        check(st == 200, f"GET /healthz from {CONTROL_IP} right after {ip}'s flood → {st}")
        # A second later the bucket has refilled: the address is served again.
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t_refused)))  # the refill wait
        st, _, _ = Https(self.port, self.ctx, ip).request("GET", "/healthz")
        check(st == 200, f"GET /healthz from {ip} a second after its flood → {st}")
        lines = [ln for ln in self.log()[log0:].splitlines() if ip in ln]
        check(len(lines) <= 3, f"{len(lines)} log lines name {ip} for one run of "
              f"refusals: {lines[:3]}")
        # A sustained flood, 4 × the rate for a second, from a fresh address: the limit holds
        # over time, and the log does not follow the flood (the accept loop says: logged
        # "once per IP and second, not per connection").
        ip2 = self.ip()
        log1 = len(self.log())
        refused2, admitted2, elapsed2 = self.flood(ip2, 4 * CONN_RATE, 4 * CONN_RATE, 0.5)
        bound2 = 2 * CONN_RATE + CONN_RATE * (elapsed2 + LAG_S) + 1
        check(refused2 and admitted2 <= bound2, f"{4 * CONN_RATE} connections over "
              f"{elapsed2:.2f}s: {admitted2} admitted (at most {bound2:.0f}), "
              f"{len(refused2)} refused")
        lines2 = [ln for ln in self.log()[log1:].splitlines() if ip2 in ln]
        check(len(lines2) <= 3, f"a {elapsed2:.1f}s flood at {4 * CONN_RATE}/s from {ip2}: "
              f"{len(lines2)} log lines name it (one per run of refusals, i.e. after every "
              f"admitted connection?), e.g. {lines2[:2]}")
        print(f"NOTE       connection_flood: {n} connections in {elapsed * 1000:.0f} ms → "
              f"{admitted} admitted, {len(refused)} closed at accept, {len(lines)} log line(s); "
              f"{4 * CONN_RATE} over {elapsed2:.2f}s → {admitted2} admitted, "
              f"{len(refused2)} closed at accept, {len(lines2)} log line(s)", flush=True)

    # ================================================================== 5. API flood
    def case_api_flood(self):
        ip = self.ip()
        body = {"channel": "chat:api-flood", "data": "x"}

        def burst(key: str, calls: int, conns: int):
            def worker(k):
                h = Https(self.port, self.ctx, ip)
                out = []
                try:
                    for _ in range(calls // conns):
                        out.append(h.request("POST", "/api/publish", body,
                                             {"Authorization": f"apikey {key}"}))
                finally:
                    h.close()
                return out
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(conns) as ex:
                results = [r for part in ex.map(worker, range(conns)) for r in part]
            return results, time.monotonic() - t0

        before = self.metric(API_LIMITED)
        log0 = len(self.log())
        wrong, _ = burst("not-the-key", 300, 3)
        statuses = sorted({r[0] for r in wrong})
        check(statuses == [401] and all(json_error(r[2]) == "unauthorized" for r in wrong),
              f"300 calls with a wrong key → statuses {statuses}, expected all 401 "
              "unauthorized")
        check(self.metric(API_LIMITED) == before, "calls with a wrong key counted as rate "
              "limited")
        results, elapsed = burst(API_KEY, 500, 5)
        ok = [r for r in results if r[0] == 200]
        limited = [r for r in results if r[0] == 429]
        other = [r for r in results if r[0] not in (200, 429)]
        check(not other, f"API flood: unexpected answers {[(r[0], r[2][:80]) for r in other[:3]]}")
        check(limited, f"500 API calls in {elapsed:.2f}s: none 429 (api.rate_limit {API_RATE})")
        bad = [r for r in limited if r[1].get("retry-after") != "1" or
               json_error(r[2]) != "rate_limited"]
        check(not bad, f"a 429 without Retry-After: 1 or error rate_limited: "
              f"{bad[0][1]} {bad[0][2][:120]!r}" if bad else "")
        check(len(ok) >= 2 * API_RATE - 2, f"only {len(ok)} of 500 calls succeeded: the burst "
              f"is {2 * API_RATE} (did the 300 wrong-key calls spend tokens?)")
        bound = 2 * API_RATE + API_RATE * (elapsed + LAG_S) + 1
        check(len(ok) <= bound, f"{len(ok)} of 500 calls succeeded in {elapsed:.2f}s; at most "
              f"{bound:.0f} may (burst {2 * API_RATE} + {API_RATE}/s)")
        grown = self.metric(API_LIMITED) - before
        check(grown == len(limited), f"{API_LIMITED} grew by {grown:.0f}, {len(limited)} "
              "429s were seen")
        time.sleep(1.0)  # the Retry-After the 429s asked for
        st, _, raw = Https(self.port, self.ctx, ip).request(
            "POST", "/api/publish", body, {"Authorization": f"apikey {API_KEY}"})
        check(st == 200, f"an API call a second after the flood → {st} {raw[:120]!r}")
        lines = [ln for ln in self.log()[log0:].splitlines() if "api.rate_limit" in ln]
        check(len(lines) <= 3, f"{len(lines)} log lines about api.rate_limit for one flood "
              f"(\"one log line per run\"): {lines[:3]}")
        print(f"NOTE       api_flood: 500 calls in {elapsed:.2f}s: {len(ok)} ok, "
              f"{len(limited)} × 429; {len(lines)} log line(s)", flush=True)

    # ================================================================== 6. /ws request flood
    async def case_request_flood(self):
        ip = self.ip()
        before = await asyncio.to_thread(self.metric, WS_LIMITED)
        c = await self.client("flooder", ip)
        try:
            n = 1500
            t0 = time.monotonic()
            sent = 0
            try:
                for i in range(n):
                    await c.send({"type": "ping", "id": i})
                    sent += 1
            except websockets.exceptions.ConnectionClosed:
                pass
            elapsed = time.monotonic() - t0
            code, reason = await c.wait_closed(5)
            msgs = c.all
            pongs = [m for m in msgs if m.get("type") == "pong"]
            errors = [m for m in msgs if m.get("type") == "error"]
            limited = [m for m in errors if m.get("code") == "rate_limited"]
            disc = [m for m in msgs if m.get("type") == "disconnect"]
            check(code == 1008 and reason == "rate limit exceeded",
                  f"{sent} pings in {elapsed:.2f}s: closed {code} {reason!r}, expected 1008 "
                  "'rate limit exceeded'")
            check(len(disc) == 1 and disc[0].get("code") == 1008 and
                  disc[0].get("reconnect") is False and msgs[-1] is disc[0],
                  f"disconnect events {disc}, last message {short(msgs[-1:])}: expected one "
                  "disconnect 1008 reconnect:false, last")
            others = [e for e in errors if e not in limited]
            check(limited and not others, f"{len(limited)} rate_limited errors; other errors: "
                  f"{short(others[:3])}")
            check(all("id" not in m for m in limited), f"rate_limited with an id: "
                  f"{short([m for m in limited if 'id' in m][:2])}")
            tail = msgs[-20:-1]
            check(len(tail) == 19 and all(m.get("code") == "rate_limited" for m in tail),
                  f"the 19 messages before the disconnect: {short(tail, 400)}")
            check(len(pongs) >= 2 * WS_RATE - 2, f"only {len(pongs)} pongs: the burst is "
                  f"{2 * WS_RATE}")
            bound = 2 * WS_RATE + WS_RATE * (elapsed + LAG_S) + 1
            check(len(pongs) <= bound, f"{len(pongs)} pongs for pings sent in {elapsed:.2f}s "
                  f"(at most {bound:.0f})")
            grown = await asyncio.to_thread(self.metric, WS_LIMITED) - before
            check(grown >= len(limited), f"{WS_LIMITED} grew by {grown:.0f}, "
                  f"{len(limited)} rate_limited errors seen")
            print(f"NOTE       request_flood: {sent} pings in {elapsed:.2f}s → {len(pongs)} "
                  f"pongs, {len(limited)} rate_limited, close {code}", flush=True)
        finally:
            await c.stop()

    # ================================================================== 7. ping flood
    def case_ping_flood(self):
        ip = self.ip()
        polite = self.raw_ws(ip, "pinger")
        try:
            polite.send_raw(b"".join(encode_frame(OP_PING, b"%04d" % i) for i in range(500)))
            r = polite.request({"type": "ping", "id": "after-500"})
            check(r.get("type") == "pong", f"JSON ping after 500 WebSocket pings → {short(r)}")
            pongs = sum(1 for f in polite.frames_seen if f.opcode == OP_PONG)
            check(pongs == 500, f"500 WebSocket pings at once (below 1,000/s) got {pongs} "
                  "pongs")
        finally:
            polite.close()
        w = self.raw_ws(ip, "ping-flooder")
        try:
            flood = b"".join(encode_frame(OP_PING, b"%04d" % i) for i in range(2500))
            t0 = time.monotonic()
            try:
                w.send_raw(flood)
            except ConnectionClosed:
                pass
            try:
                f = w.expect_close(1008, timeout=5, allow_data=True)
            except HarnessError as e:
                raise CheckFailed(f"2,500 WebSocket pings at once: {e}") from None
            took = time.monotonic() - t0
            check(f.close_reason() == b"too many pings",
                  f"ping flood closed 1008 with reason {f.close_reason()!r}")
            pongs = sum(1 for fr in w.frames_seen if fr.opcode == OP_PONG)
            check(pongs <= 1001, f"{pongs} pongs answered a flood (at most 1,000 a second)")
            print(f"NOTE       ping_flood: 500 pings answered; 2,500 → close 1008 after "
                  f"{pongs} pongs, {took:.2f}s", flush=True)
        finally:
            w.close()

    # ================================================================== 8. slowloris over TLS
    def witness(self, channel: str) -> float:
        """A fresh client from the control address (blocking, on its own thread, so a busy
        event loop here cannot make it slow): connect, subscribe, publish, receive."""
        t0 = time.monotonic()
        w = self.raw_ws(CONTROL_IP, "witness")
        try:
            r = w.request({"type": "subscribe", "id": "sub", "channel": channel})
            check(r.get("type") == "subscribed", f"witness subscribe → {short(r)}")
            p = w.request({"type": "publish", "id": "pub", "channel": channel, "data": "here"})
            check(p.get("type") == "published", f"witness publish → {short(p)}")
            deadline = Deadline(5)
            while True:
                m = w.recv_json(max(0.01, deadline.remaining()))
                if m.get("type") == "message" and m.get("offset") == p.get("offset"):
                    return time.monotonic() - t0
        finally:
            w.close()

    async def case_slowloris_tls(self):
        ips = [self.ip(), self.ip()]
        hello = client_hello(self.ctx)
        request = (b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
        kinds = ["half_hello"] * 30 + ["tls_only"] * 25 + ["partial_http"] * 25 + \
                ["trickle"] * 20
        limit = HANDSHAKE_TIMEOUT_S + CLOSE_SLACK_S

        async def one(kind: str, i: int) -> dict:
            ip = ips[i % 2]
            out = {"kind": kind, "how": "timeout", "got": b"", "first_byte": None, "sent": 0}
            t0 = time.monotonic()
            try:
                if kind == "half_hello":
                    r, w = await asyncio.open_connection("127.0.0.1", self.port,
                                                         local_addr=(ip, 0))
                    w.write(hello[: len(hello) // 2])
                else:
                    r, w = await asyncio.open_connection(
                        "127.0.0.1", self.port, ssl=self.ctx, server_hostname="localhost",
                        local_addr=(ip, 0), ssl_handshake_timeout=limit + 3)
                    if kind == "partial_http":
                        w.write(request)
                        out["first_byte"], out["sent"] = time.monotonic() - t0, len(request)
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
                # The server may close a handshake that this (busy) client did not finish in
                # time: fine if it waited for the timeout, a problem if it refused at once.
                out.update(how=f"closed during our TLS handshake: {e!r}",
                           took=time.monotonic() - t0, handshake_closed=True)
                return out
            out["handshake_s"] = time.monotonic() - t0
            deadline = Deadline(limit + 3)
            try:
                while not deadline.expired():
                    wait = deadline.remaining()
                    if kind == "trickle":
                        wait = min(wait, 0.25)
                    try:
                        chunk = await asyncio.wait_for(r.read(65536), wait)
                    except asyncio.TimeoutError:
                        if kind == "trickle" and not w.is_closing():
                            w.write(request[out["sent"]:][:1])  # one byte
                            if out["first_byte"] is None:
                                out["first_byte"] = time.monotonic() - t0
                            out["sent"] += 1
                        continue
                    if not chunk:
                        out["how"] = "eof"
                        break
                    out["got"] += chunk
            except (ConnectionResetError, BrokenPipeError):
                out["how"] = "reset"
            except ssl.SSLError as e:
                out["how"] = f"tls: {e.reason}"
            finally:
                w.close()
            out["took"] = time.monotonic() - t0
            return out

        tasks = [asyncio.ensure_future(one(k, i)) for i, k in enumerate(kinds)]
        try:
            witness_s = await asyncio.to_thread(self.witness, "chat:witness")
        finally:
            results = await asyncio.gather(*tasks)
        problems = []
        by_kind: dict[str, list[float]] = {}
        answered_408 = {k: 0 for k in set(kinds)}
        late_handshakes = 0
        for o in results:
            kind, took, how, got = o["kind"], o["took"], o["how"], o["got"]
            by_kind.setdefault(kind, []).append(took)
            status, _, _ = parse_http(got)
            if o.get("handshake_closed"):
                late_handshakes += 1
                if took < HANDSHAKE_TIMEOUT_S - 0.2 or took > limit:
                    problems.append(f"{kind}: {how} after {took:.2f}s")
                continue
            if how not in ("eof", "reset") and not how.startswith("tls:"):
                problems.append(f"{kind}: {how} after {took:.2f}s")
            elif took > limit:
                problems.append(f"{kind}: closed after {took:.2f}s")
            if status is not None and status < 400:
                problems.append(f"{kind}: answered {got[:60]!r}")
            if status == 408:
                answered_408[kind] += 1
            elif o["first_byte"] is not None and o["first_byte"] < took - 0.3:
                # The server held request bytes for a while when its timer fired: 408.
                problems.append(f"{kind}: no 408 ({how}, {got[:60]!r}) though {o['sent']} "
                                f"request byte(s) went out {o['first_byte']:.2f}s after the "
                                f"connect and it closed after {took:.2f}s")
        check(not problems, f"{len(problems)} of {len(kinds)} slow connections: "
              f"{problems[:4]} (handshake_timeout {HANDSHAKE_TIMEOUT_S}s, slack "
              f"{CLOSE_SLACK_S}s)")
        hs = [o["handshake_s"] for o in results if "handshake_s" in o and o["kind"] != "half_hello"]
        print("NOTE       slowloris_tls: " + ", ".join(
            f"{k} ×{len(v)} closed after {min(v):.2f}-{max(v):.2f}s"
            f" ({answered_408[k]} × 408)" for k, v in sorted(by_kind.items())) +
            f"; our TLS handshakes took up to {max(hs, default=0):.2f}s"
            f"{f' ({late_handshakes} closed before we finished)' if late_handshakes else ''}"
            f"; a fresh client was served in {witness_s:.2f}s meanwhile", flush=True)

    # ================================================================== 9. garbage before TLS
    async def case_tls_garbage_before(self):
        ip = self.ip()
        rng = random.Random(SEED + 9)
        hello = client_hello(self.ctx)
        plain = (b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        variants = [(f"{n} random bytes", rng.randbytes(n), n >= 300)
                    for n in (1, 5, 300, 4096, 20000)]
        variants += [
            ("a plain HTTP upgrade request", plain, True),
            ("a plain GET /healthz", b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", True),
            ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", True),
            ("a handshake record of junk", b"\x16\x03\x01\x00\x40" + rng.randbytes(64), True),
            ("a ClientHello, then junk records", hello + b"\x17\x03\x03\x00\x40" +
             rng.randbytes(64), True),
        ]
        limit = HANDSHAKE_TIMEOUT_S + CLOSE_SLACK_S
        before = await asyncio.to_thread(self.metric, TLS_FAILED)
        log0 = len(self.log())

        def one(what: str, data: bytes):
            s = tcp(self.port, ip)
            t0 = time.monotonic()
            try:
                try:
                    s.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got, how = read_to_eof(s, limit + 2)
                return what, time.monotonic() - t0, how, got
            finally:
                s.close()

        results = await asyncio.gather(*[asyncio.to_thread(one, w, d) for w, d, _ in variants])
        problems = []
        for what, took, how, got in results:
            if how == "timeout":
                problems.append(f"{what}: still open after {took:.2f}s")
            elif took > limit:
                problems.append(f"{what}: closed after {took:.2f}s")
            if b"HTTP/1.1 1" in got or b"HTTP/1.1 2" in got:
                problems.append(f"{what}: answered {got[:60]!r}")
        check(not problems, f"garbage before the TLS handshake: {problems}")
        must_fail = sum(1 for _, _, fails in variants if fails)
        failed = await asyncio.to_thread(self.metric, TLS_FAILED) - before
        check(failed >= must_fail, f"{TLS_FAILED} grew by {failed:.0f} for {len(variants)} "
              f"garbage connections ({must_fail} of them unparseable at once)")
        lines = [ln for ln in self.log()[log0:].splitlines() if ip in ln or "tls" in ln.lower()]
        check(len(lines) <= 2, f"failed handshakes logged above debug level: {lines[:3]}")
        print("NOTE       tls_garbage_before: " + ", ".join(
            f"{w.split(',')[0]} {t:.2f}s" for w, t, _, _ in results) +
            f"; failed handshakes +{failed:.0f}", flush=True)

    # ================================================================== 10. garbage after TLS
    def case_tls_garbage_after(self):
        ip = self.ip()
        rng = random.Random(SEED + 10)
        prompt = 3.0  # a TLS error closes at once; only timers take handshake_timeout

        def closed_soon(sock, what, t0, bound=prompt) -> bytes:
            got, how = read_to_eof(sock, bound + 3)
            took = time.monotonic() - t0
            check(how != "timeout", f"{what}: the connection is still open after {took:.2f}s")
            check(took <= bound, f"{what}: closed after {took:.2f}s (bound {bound}s)")
            return got

        # (a) encrypted garbage as the HTTP request: 400 or a close, never a success.
        t = BioTls(self.port, self.ctx, ip)
        try:
            t0 = time.monotonic()
            t.write(rng.randbytes(4096))
            got = closed_soon(t.sock, "encrypted random bytes as the request", t0)
        finally:
            t.close()
        # (b) a plaintext HTTP request written raw after the handshake; (c) random raw bytes.
        for what, data in (("a plaintext request after the handshake",
                            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                           ("3,000 random raw bytes after the handshake", rng.randbytes(3000))):
            t = BioTls(self.port, self.ctx, ip)
            try:
                t0 = time.monotonic()
                try:
                    t.sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got = closed_soon(t.sock, what, t0)
                check(b"HTTP/1.1 2" not in got, f"{what}: answered {got[:80]!r}")
            finally:
                t.close()
        # (d) a valid request answered, then the next record with one ciphertext byte flipped.
        t = BioTls(self.port, self.ctx, ip)
        try:
            t.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = t.read_until(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200"), f"GET /healthz over BIO → {head[:80]!r}")
            rec = bytearray(t.records(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            check(len(rec) > 30 and rec[0] == 0x17, f"record of {len(rec)} B")
            rec[len(rec) // 2] ^= 0x40
            t0 = time.monotonic()
            t.sock.sendall(bytes(rec))
            got = closed_soon(t.sock, "a record with a flipped ciphertext byte", t0)
            check(b"HTTP/1.1 200" not in got, f"a corrupted record was answered: {got[:80]!r}")
        finally:
            t.close()
        # (e) on an upgraded, connected /ws.
        tok = self.token("garbage-after")
        for what, make in (("random raw bytes", lambda: rng.randbytes(2000)),
                           ("a record header claiming 65,535 B",
                            lambda: b"\x17\x03\x03\xff\xff" + rng.randbytes(64))):
            t = BioTls(self.port, self.ctx, ip)
            try:
                t.write(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
                        (f"Authorization: Bearer {tok}\r\n".encode() if tok else b"") +
                        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode())
                head = t.read_until(b"\r\n\r\n")
                check(head.startswith(b"HTTP/1.1 101"), f"upgrade over BIO → {head[:80]!r}")
                t.write(encode_frame(OP_TEXT, b'{"type":"connect","id":1}'))
                t.read_until(b'"connected"')
                t0 = time.monotonic()
                try:
                    t.sock.sendall(make())
                except (BrokenPipeError, ConnectionResetError):
                    pass
                closed_soon(t.sock, f"{what} on a connected /ws", t0)
            finally:
                t.close()

    # ================================================================== 11. oversized header
    def case_oversized_header(self):
        ip = self.ip()
        tok = self.token("header")
        auth = [("Authorization", f"Bearer {tok}")] if tok else []
        for what, extra in (("a 10,000-byte header", [("X-Junk", "a" * 10000)]),
                            ("200 headers of 60 bytes",
                             [(f"X-H{i:03d}", "b" * 53) for i in range(200)])):
            resp, w = self.upgrade(ip, extra=auth + extra)
            try:
                check(resp.status == 431, f"{what} → {resp.status} {resp.body[:120]!r}, "
                      "expected 431")
                _, how = read_to_eof(w.sock, 3)
                check(how != "timeout", f"{what}: connection open 3 s after the 431")
            finally:
                w.close()
        # 1 MiB of header lines, streamed: the server must stop reading at its limit.
        w = TlsWS(self.port, self.ctx, ip)
        try:
            head = b"GET /ws HTTP/1.1\r\nHost: localhost\r\n"
            line = b"X-Stream: " + b"c" * 1000 + b"\r\n"
            sent = 0
            try:
                w.sock.sendall(head)
                while sent < 1 << 20:
                    w.sock.sendall(line * 16)
                    sent += len(line) * 16
            except (OSError, ssl.SSLError):
                pass
            got, how = read_to_eof(w.sock, 5)
            status, _, _ = parse_http(got)
            check(how != "timeout", f"1 MiB of headers: connection still open ({sent} B sent)")
            check(status in (None, 431), f"1 MiB of headers → {got[:80]!r}")
            print(f"NOTE       oversized_header: streamed {sent} B of headers → "
                  f"{status or how}", flush=True)
        finally:
            w.close()

    # ================================================================== 12. oversized message
    async def case_oversized_message(self):
        ip = self.ip()
        c = await self.client("bigmouth", ip)
        try:
            r = await c.request({"type": "publish", "channel": "chat:big",
                                 "data": "d" * (60 * 1024)})
            check(r.get("type") == "published", f"60 KiB data → {short(r)}")
            r = await c.request({"type": "publish", "channel": "chat:big",
                                 "data": "d" * (66 * 1024)})
            check(r.get("type") == "error" and r.get("code") == "data_too_large",
                  f"66 KiB data (message under 68 KiB) → {short(r)}")
            try:
                await c.send({"type": "publish", "id": 9, "channel": "chat:big",
                              "data": "e" * 100_000})
            except websockets.exceptions.ConnectionClosed:
                pass
            code, reason = await c.wait_closed(5)
            check(code == 1009, f"a 100,000-byte message → close {code} {reason!r}, "
                  "expected 1009")
        finally:
            await c.stop()
        # A frame that declares 2^40 bytes: refused at the header, not after the payload.
        w = self.raw_ws(ip, "declared")
        try:
            t0 = time.monotonic()
            w.send_raw(encode_frame(OP_TEXT, b"x" * 100, declared_length=1 << 40))
            w.expect_close(1009, timeout=5)
            check(time.monotonic() - t0 < 3, "the 2^40-byte frame closed only after "
                  f"{time.monotonic() - t0:.2f}s")
        finally:
            w.close()
        w = self.raw_ws(ip, "fragments")
        try:
            w.send_raw(encode_frame(OP_TEXT, b"f" * 40960, fin=False))
            w.send_raw(encode_frame(OP_CONT, b"f" * 40960, fin=True))
            w.expect_close(1009, timeout=5)
        finally:
            w.close()

    # ================================================================== 13. deep JSON
    async def case_deep_json(self):
        ip = self.ip()
        c = await self.client("nester", ip)
        try:
            def nest(n):
                return "[" * n + "1" + "]" * n
            r = await c.request({"type": "publish", "channel": "chat:deep",
                                 "data": json.loads(nest(20))})
            check(r.get("type") == "published", f"data nested 20 deep → {short(r)}")
            bodies = [("arrays 40 deep", nest(40)),
                      ("arrays 30,000 deep", nest(30000)),
                      ("30,000 unclosed arrays", "[" * 30000),
                      ("objects 10,000 deep", '{"a":' * 10000 + "1" + "}" * 10000)]
            for i, (what, data) in enumerate(bodies):
                msg = '{"type":"publish","id":%d,"channel":"chat:deep","data":%s}' % (i + 10,
                                                                                       data)
                await c.send(msg)
                r = await c.expect(lambda m: m.get("type") in ("error", "published"), 5,
                                   f"the answer to {what}")
                check(r.get("type") == "error" and r.get("code") == "bad_json",
                      f"a publish with {what} ({len(msg)} B) → {short(r)}, expected bad_json")
                await c.ping_ok()
        finally:
            await c.close()
            await c.stop()

    # ================================================================== 14. channel names
    async def case_long_channel_name(self):
        ip = self.ip()
        c = await self.client("namer", ip)
        try:
            for what, ch in (("a 300-char name", "chat:" + "a" * 300),
                             ("a 193-byte name", "chat:" + "b" * 193),
                             ("a 65-char namespace", "n" * 65 + ":x"),
                             ("a 300-char name without namespace", "c" * 300),
                             ("a space", "chat:a b")):
                for req in ({"type": "subscribe", "channel": ch},
                            {"type": "publish", "channel": ch, "data": 1}):
                    r = await c.request(req)
                    check(r.get("type") == "error" and r.get("code") == "bad_channel",
                          f"{req['type']} with {what} → {short(r)}, expected bad_channel")
            ok = "chat:" + "d" * 192
            r = await c.request({"type": "subscribe", "channel": ok})
            check(r.get("type") == "subscribed", f"subscribe with a 192-byte name → {short(r)}")
            st, _, raw = await asyncio.to_thread(
                Https(self.port, self.ctx, ip).request, "POST", "/api/publish",
                {"channel": "chat:" + "a" * 300, "data": 1}, {"Authorization": f"apikey {API_KEY}"})
            check(st == 400 and json_error(raw) == "bad_channel",
                  f"/api/publish with a 300-char name → {st} {raw[:120]!r}")
        finally:
            await c.close()
            await c.stop()

    # ================================================================== 15. subscriptions
    async def case_max_subscriptions(self):
        ip = self.ip()
        c = await self.client("hoarder", ip)
        try:
            for i in range(MAX_SUBS + 1):
                await c.send({"type": "subscribe", "id": f"s{i}", "channel": f"chat:many-{i}"})
            replies = []
            for i in range(MAX_SUBS + 1):
                replies.append(await c.expect(lambda m, i=i: m.get("id") == f"s{i}", 10,
                                              f"reply to subscribe #{i}"))
            bad = [(i, short(r, 120)) for i, r in enumerate(replies[:MAX_SUBS])
                   if r.get("type") != "subscribed"]
            check(not bad, f"of the first {MAX_SUBS} subscriptions {len(bad)} failed: "
                  f"{bad[:3]}")
            last = replies[MAX_SUBS]
            check(last.get("type") == "error" and last.get("code") == "limit_exceeded",
                  f"subscription #{MAX_SUBS + 1} → {short(last)}, expected limit_exceeded")
            await c.ping_ok()
            r = await c.request({"type": "unsubscribe", "channel": "chat:many-0"})
            check(r.get("type") == "unsubscribed", f"unsubscribe → {short(r)}")
            r = await c.request({"type": "subscribe", "channel": "chat:many-extra"})
            check(r.get("type") == "subscribed", f"subscribe after an unsubscribe at the "
                  f"limit → {short(r)}")
        finally:
            await c.close()
            await c.stop()


CASES = ("forged_tokens", "private_channel", "session_theft", "connection_flood", "api_flood",
         "request_flood", "ping_flood", "slowloris_tls", "tls_garbage_before",
         "tls_garbage_after", "oversized_header", "oversized_message", "deep_json",
         "long_channel_name", "max_subscriptions")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="path to the switchboard binary")
    p.add_argument("--only", default="", help="comma-separated case names")
    p.add_argument("--transport-only", action="store_true",
                   help="no [auth] and no abuse limits in the config; only the TLS and "
                        "transport cases (for builds before them)")
    args = p.parse_args()
    if not os.access(args.server, os.X_OK):
        raise SystemExit(f"--server {args.server}: not an executable file")
    names = [n for n in args.only.split(",") if n] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; cases: {', '.join(CASES)}")
    if args.transport_only:
        names = [n for n in names if n in TRANSPORT_CASES]
    rep = Reporter("integration.test_hostile")
    t_start = time.monotonic()
    suite = Suite(args.server, rep, args.transport_only)
    try:
        try:
            await asyncio.to_thread(suite.start)
        except Exception as e:  # noqa: BLE001 - a setup failure fails the suite, with its cause
            rep.record("setup", False, f"{e.__class__.__name__}: {e}")
            return rep.finish()
        print(f"NOTE       server pid {suite.server.pid} on 127.0.0.1:{suite.port} (tls), "
              f"RSS {suite.watch.baseline_kib / 1024:.1f} MiB at start; RSS bound "
              f"{suite.rss_bound} MiB", flush=True)
        for name in names:
            await suite.run(name, t_start)
        if suite.watch:
            print(f"NOTE       peak server RSS {suite.watch.peak_kib / 1024:.1f} MiB (start "
                  f"{suite.watch.baseline_kib / 1024:.1f} MiB, bound {suite.rss_bound} MiB); "
                  f"bystander received {suite.bystander.count}, published "
                  f"{suite.bystander.published}", flush=True)
    finally:
        await asyncio.to_thread(suite.stop)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
