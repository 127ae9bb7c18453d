"""Shared helpers for the messaging integration suites (tests/integration/): start a server
from a TOML snippet, speak the native protocol (docs/protocol.md) over python3-websockets,
call the HTTP API, read /metrics and the server's RSS.

Everything waits on events with deadlines; nothing sleeps to synchronize. Built on
harness.ServerProcess (servers are stopped by PID, only ever our own child).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (OP_CLOSE, OP_TEXT, ConnectionClosed, Deadline,  # noqa: E402,F401
                     DeadlineExceeded, HarnessError, Reporter, ServerProcess, UnexpectedClose,
                     WSClient, encode_frame)

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - reported by every suite the same way
    websockets = None

SUBPROTOCOL = "switchboard.v1.json"
API_KEY = "secret"


class CheckFailed(AssertionError):
    """One expectation of a case did not hold; the message says what was sent and seen."""


def check(cond, message: str):
    if not cond:
        raise CheckFailed(message)


def short(obj, n: int = 300) -> str:
    s = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return s if len(s) <= n else s[:n] + f"...(+{len(s) - n})"


def require_websockets() -> None:
    if websockets is None:
        print("python3-websockets is not installed: apt-get install -y python3-websockets")
        print("0 passed, 1 failed")
        sys.exit(1)


def suite_arguments(description: str, seed: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--server", required=True, help="path to the switchboard binary")
    if seed:
        p.add_argument("--seed", type=int, default=None, help="reproduce a run")
    args = p.parse_args()
    if not os.access(args.server, os.X_OK):
        raise SystemExit(f"--server {args.server}: not an executable file")
    return args


# --------------------------------------------------------------------------------------------
# Server


class Server:
    """A switchboard process started from a TOML text on 127.0.0.1, port 0."""

    def __init__(self, binary: str, config: str, name: str = "server", threads: int = 2,
                 flags: tuple[str, ...] = (), log_level: str = "warn"):
        self.config_file = tempfile.NamedTemporaryFile(
            "w", prefix=f"sb-{name}-", suffix=".toml", delete=False)
        self.config_file.write(config)
        self.config_file.close()
        argv = [binary, "serve", "--config", self.config_file.name, "--host", "127.0.0.1",
                "--port", "0", "--threads", str(threads), "--log-level", log_level, *flags]
        self.proc = ServerProcess(argv, name=name)
        self.host, self.port = self.proc.host, self.proc.port
        self.pid = self.proc.proc.pid

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise HarnessError("no VmRSS line")

    def close(self):
        self.proc.close()
        try:
            os.unlink(self.config_file.name)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# HTTP API and metrics (blocking; use the async wrappers from inside an event loop)


def http_call(server: Server, method: str, path: str, body=None, key: str | None = API_KEY,
              headers: dict | None = None, timeout: float = 5.0):
    """Returns (status, parsed JSON or text)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("Authorization", f"apikey {key}")
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        text = raw.decode(errors="replace")
        ctype = resp.getheader("Content-Type") or ""
        if "json" in ctype:
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
        return resp.status, text
    finally:
        conn.close()


def api(server: Server, name: str, body, **kw):
    return http_call(server, "POST", f"/api/{name}", body, **kw)


async def api_async(server: Server, name: str, body, **kw):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: api(server, name, body, **kw))


def api_ok(server: Server, name: str, body, **kw):
    status, out = api(server, name, body, **kw)
    check(status == 200, f"POST /api/{name} {short(body)} → {status} {short(out)}")
    return out


async def api_ok_async(server: Server, name: str, body, **kw):
    status, out = await api_async(server, name, body, **kw)
    check(status == 200, f"POST /api/{name} {short(body)} → {status} {short(out)}")
    return out


_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def metrics(server: Server) -> dict[str, float]:
    status, text = http_call(server, "GET", "/metrics", key=None)
    check(status == 200, f"GET /metrics → {status}")
    return parse_metrics(str(text))


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


async def metrics_async(server: Server) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: metrics(server))


async def wait_metric(server: Server, name: str, pred, seconds: float, what: str,
                      poll: float = 0.05) -> float:
    """Polls /metrics until pred(value) holds (a metric, not a timer, is the event)."""
    deadline = Deadline(seconds)
    last = None
    while True:
        m = await metrics_async(server)
        last = m.get(name)
        if last is not None and pred(last):
            return last
        if deadline.expired():
            raise CheckFailed(f"timed out after {seconds}s waiting for {what} "
                              f"({name} = {last})")
        await asyncio.sleep(poll)


# --------------------------------------------------------------------------------------------
# Checking offset streams


def compress(xs: list[int], limit: int = 40) -> str:
    """[1,2,3,7,8] → "1-3,7-8" (order kept; for messages)."""
    out, i = [], 0
    xs = list(xs)
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and isinstance(xs[j], int) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    s = ",".join(out[:limit])
    return s + (f",...(+{len(out) - limit} runs)" if len(out) > limit else "")


def stream_report(got: list[int], want) -> str | None:
    """None if `got` holds every offset of `want` and first arrivals increase (an older one
    may come again: at-least-once)."""
    seen, firsts = set(), []
    for o in got:
        if o not in seen:
            seen.add(o)
            firsts.append(o)
    missing = sorted(set(want) - seen)
    if missing:
        return f"missing offsets {compress(missing)} (received {compress(got)})"
    if firsts != sorted(firsts):
        return f"out of order: first arrivals {compress(firsts)}"
    return None


# --------------------------------------------------------------------------------------------
# Native-protocol client on python3-websockets


class Client:
    """One /ws connection. A reader task collects every message; `request` matches replies by
    id, `expect` waits for the first not-yet-consumed message matching a predicate."""

    def __init__(self, ws, name: str):
        self.ws = ws
        self.name = name
        self.all: list = []        # every message received, parsed, in order
        self.inbox: list = []      # not yet consumed by expect()
        self.binary: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._next_id = 1
        self.client_id: str | None = None
        self.session: str | None = None
        self.on_message = None     # optional callback(msg) run in the reader, before queuing
        self.store_messages = True  # False: `message` events go to on_message only (volume)
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server: Server, name: str = "client", timeout: float = 5.0,
                   subprotocols=(SUBPROTOCOL,), extensions=None) -> "Client":
        """extensions: websockets extension factories to offer (e.g. permessage-deflate);
        none by default."""
        ws = await asyncio.wait_for(websockets.connect(
            server.ws_url, subprotocols=list(subprotocols) if subprotocols else None,
            ping_interval=None, max_size=None, max_queue=None, compression=None,
            extensions=extensions, open_timeout=timeout, close_timeout=3), timeout)
        return cls(ws, name)

    async def _read(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self.binary.append(raw)
                    continue
                try:
                    msg = json.loads(raw)
                except ValueError:
                    msg = {"type": "<not json>", "raw": raw}
                if self.on_message is not None:
                    self.on_message(msg)
                if self.store_messages or msg.get("type") != "message":
                    self.all.append(msg)
                    self.inbox.append(msg)
                self._arrived.set()
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - recorded, the waiters report it
            self.all.append({"type": "<reader error>", "error": repr(e)})
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()
            self._arrived.set()

    # ---- sending
    def next_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def request(self, obj: dict, timeout: float = 5.0) -> dict:
        """Sends obj with a fresh id (unless it has one) and returns the reply with that id."""
        if "id" not in obj:
            obj = {**obj, "id": self.next_id()}
        rid = obj["id"]
        await self.send(obj)
        return await self.expect(lambda m: m.get("id") == rid and m.get("type") not in
                                 ("message", "join", "leave", "disconnect"), timeout,
                                 f"reply to {short(obj, 200)}")

    # ---- receiving
    async def expect(self, pred, timeout: float = 5.0, what: str = "a message") -> dict:
        deadline = Deadline(timeout)
        while True:
            for i, m in enumerate(self.inbox):
                if pred(m):
                    del self.inbox[i]
                    return m
            if self.closed.is_set():
                raise CheckFailed(f"{self.name}: connection closed (code {self.close_code} "
                                  f"reason {self.close_reason!r}) while waiting for {what}; "
                                  f"unconsumed: {short(self.inbox, 400)}")
            if deadline.expired():
                raise CheckFailed(f"{self.name}: no {what} within {timeout}s; unconsumed: "
                                  f"{short(self.inbox, 400)}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline.remaining())
            except asyncio.TimeoutError:
                pass

    async def expect_type(self, type_: str, timeout: float = 5.0, **fields) -> dict:
        def pred(m):
            return m.get("type") == type_ and all(m.get(k) == v for k, v in fields.items())
        return await self.expect(pred, timeout, f"{type_} {fields or ''}")

    async def wait_until(self, pred, timeout: float, what: str):
        """Waits until pred() (over this client's state) holds; wakes on every arrival."""
        deadline = Deadline(timeout)
        while not pred():
            if self.closed.is_set():
                raise CheckFailed(f"{self.name}: closed (code {self.close_code}) while waiting "
                                  f"for {what}")
            if deadline.expired():
                raise CheckFailed(f"{self.name}: timed out after {timeout}s waiting for {what}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline.remaining())
            except asyncio.TimeoutError:
                pass

    def messages(self, channel: str | None = None, type_: str = "message") -> list[dict]:
        return [m for m in self.all if m.get("type") == type_ and
                (channel is None or m.get("channel") == channel)]

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except asyncio.TimeoutError:
            raise CheckFailed(f"{self.name}: still open after {timeout}s") from None
        return self.close_code, self.close_reason

    # ---- protocol shortcuts
    async def connect(self, timeout: float = 5.0, **fields) -> dict:
        r = await self.request({"type": "connect", **fields}, timeout)
        check(r.get("type") == "connected", f"{self.name}: connect {short(fields)} → {short(r)}")
        self.client_id = r.get("client")
        self.session = r.get("session")
        return r

    async def subscribe(self, channel: str, since: dict | None = None,
                        timeout: float = 5.0) -> dict:
        req = {"type": "subscribe", "channel": channel}
        if since is not None:
            req["since"] = since
        r = await self.request(req, timeout)
        check(r.get("type") == "subscribed" and r.get("channel") == channel,
              f"{self.name}: {short(req)} → {short(r)}")
        return r

    async def publish(self, channel: str, data, timeout: float = 5.0, **fields) -> dict:
        req = {"type": "publish", "channel": channel, "data": data, **fields}
        r = await self.request(req, timeout)
        check(r.get("type") == "published", f"{self.name}: {short(req)} → {short(r)}")
        return r

    async def ping_ok(self, timeout: float = 5.0):
        """The connection is alive and usable: a ping gets its pong with the same id."""
        rid = f"alive-{self.next_id()}"
        r = await self.request({"type": "ping", "id": rid}, timeout)
        check(r.get("type") == "pong" and r.get("id") == rid,
              f"{self.name}: ping id={rid} → {short(r)}")

    async def close(self, code: int = 1000):
        try:
            await asyncio.wait_for(self.ws.close(code), 5)
        except (asyncio.TimeoutError, websockets.exceptions.WebSocketException, OSError):
            pass
        self.closed_by_us = True

    def abort(self, rst: bool = True):
        """Drops the TCP connection with no close frame (RST if rst)."""
        transport = self.ws.transport
        if rst:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        transport.abort()

    async def stop(self):
        """Test teardown: abort without waiting, and let the reader finish."""
        if not self.closed.is_set():
            self.abort(rst=False)
        try:
            await asyncio.wait_for(self._reader, 2)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass


async def open_clients(server: Server, n: int, prefix: str = "c", connect: bool = True,
                       **connect_fields) -> list[Client]:
    clients = await asyncio.gather(*[Client.open(server, f"{prefix}{i}") for i in range(n)])
    if connect:
        await asyncio.gather(*[c.connect(user=f"{prefix}{i}", **connect_fields)
                               for i, c in enumerate(clients)])
    return list(clients)


async def stop_all(clients):
    await asyncio.gather(*[c.stop() for c in clients if c is not None],
                         return_exceptions=True)


# --------------------------------------------------------------------------------------------
# Raw-socket native client (for clients that must misbehave: never read, die without a close)


def raw_ws(server: Server, path: str = "/ws", rcvbuf: int | None = None,
           protocols: list[str] | None = None, timeout: float = 5.0,
           extensions: str | None = None) -> WSClient:
    """A harness.WSClient on any route; rcvbuf (set before connect, so the window scale is
    fixed small at the handshake) keeps the kernel from absorbing much for a client that
    stops reading."""
    w = WSClient.__new__(WSClient)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    w.host, w.port, w.timeout, w.sock = server.host, server.port, timeout, sock
    w.buf = bytearray()
    w.eof = None
    w.response = None
    w.deflate = None
    w.subprotocol = None
    w._compressor = None
    w._decompressor = None
    w.frames_seen = []
    w.handshake(path=path, protocols=protocols, extensions=extensions)
    return w


class RawClient:
    """harness.WSClient on /ws with JSON helpers; reads only when told to."""

    def __init__(self, server: Server, rcvbuf: int | None = None, timeout: float = 5.0,
                 extensions: str | None = None):
        self.ws = raw_ws(server, "/ws", rcvbuf, [SUBPROTOCOL], timeout, extensions)
        self.ws.frames_seen = []
        self._id = 0
        self.client_id = None

    def send(self, obj):
        from harness import OP_TEXT
        self.ws.send_frame(OP_TEXT, json.dumps(obj).encode())

    def recv_json(self, timeout: float = 5.0) -> dict:
        m = self.ws.recv_message(timeout=timeout)
        return json.loads(m.data)

    def request(self, obj, timeout: float = 5.0) -> dict:
        self._id += 1
        obj = {**obj, "id": f"raw-{self._id}"}
        self.send(obj)
        deadline = Deadline(timeout)
        while True:
            m = self.recv_json(timeout=max(0.01, deadline.remaining()))
            if m.get("id") == obj["id"]:
                return m

    def connect(self, **fields) -> dict:
        r = self.request({"type": "connect", **fields})
        check(r.get("type") == "connected", f"raw connect → {short(r)}")
        self.client_id = r.get("client")
        return r

    def kill(self):
        """Abrupt end: RST, no close frame."""
        try:
            self.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.ws.close()

    def close(self):
        self.ws.close()


def drain_raw(raw: RawClient, seconds: float):
    """Reads a RawClient's messages until the close frame or EOF, answering the close.
    Returns (the JSON messages, the close code or a description of how the TCP connection
    ended)."""
    msgs = []
    deadline = Deadline(seconds)
    while True:
        try:
            m = raw.ws.recv_message(timeout=max(0.01, deadline.remaining()))
        except UnexpectedClose as e:
            raw.ws.try_send_raw(encode_frame(OP_CLOSE, e.frame.payload[:2]))
            return msgs, e.frame.close_code()
        except ConnectionClosed as e:
            return msgs, f"TCP {e.how} without a close frame"
        except DeadlineExceeded:
            return msgs, f"nothing more within {seconds}s and no close"
        if m.opcode == OP_TEXT:
            msgs.append(json.loads(m.data))

# --------------------------------------------------------------------------------------------
# Running cases


async def run_case(rep: Reporter, name: str, fn, timeout: float = 30.0):
    """Runs one async case under a deadline and records PASS/FAIL with the reason."""
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(fn(), timeout)
    except CheckFailed as e:
        rep.record(name, False, str(e))
        return False
    except asyncio.TimeoutError:
        rep.record(name, False, f"case deadline of {timeout}s passed")
        return False
    except Exception as e:  # noqa: BLE001 - any crash of a case is a failure with its trace
        rep.record(name, False, f"{e.__class__.__name__}: {e} "
                   f"[{traceback.format_exc(limit=3).splitlines()[-3:]}]")
        return False
    rep.record(name, True, f"{time.monotonic() - t0:.2f}s")
    return True
