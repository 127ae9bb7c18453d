"""Test harness for the socket-level suites (conformance, interop): starts a server on port 0,
speaks raw RFC 6455 over a plain socket, and waits on events with deadlines.

Python 3.11 standard library only. A suite targets either our binary (`--server PATH`) or a
reference server we trust (`--reference-ws`: node `ws`, `--reference-websockets`: Debian's
python3-websockets), so every check can be proven against a known-good stack first.
Servers are stopped by PID; nothing here ever signals a process it did not start.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

SUPPORT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUPPORT_DIR.parent.parent
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LISTEN_RE = re.compile(rb"switchboard listening on (\d+\.\d+\.\d+\.\d+):(\d+)")

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DEFLATE_TAIL = b"\x00\x00\xff\xff"


class HarnessError(Exception):
    """A harness-level failure: the peer broke the protocol or a deadline passed."""


class DeadlineExceeded(HarnessError):
    pass


class ConnectionClosed(HarnessError):
    """The TCP connection ended (EOF or reset) while we were waiting for something."""

    def __init__(self, how: str):
        super().__init__(f"TCP connection closed by peer ({how})")
        self.how = how


class Deadline:
    """An absolute point in time; `remaining()` never goes below zero."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at


def wait_until(predicate, seconds: float, what: str, poll: float = 0.01):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = Deadline(seconds)
    while True:
        value = predicate()
        if value:
            return value
        if deadline.expired():
            raise DeadlineExceeded(f"timed out after {seconds}s waiting for {what}")
        time.sleep(min(poll, deadline.remaining()))


# --------------------------------------------------------------------------------------------
# Server processes


class ServerProcess:
    """One server process started by us; `port` comes from its listening line."""

    def __init__(self, argv: list[str], name: str, start_timeout: float = 15.0, env=None):
        self.argv = argv
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"sb-{name}-", suffix=".log", delete=False)
        self.stdout_lines: list[bytes] = []
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
            env=env, start_new_session=True)
        self.host, self.port = self._read_listening_line(start_timeout)
        # Keep draining stdout so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _read_listening_line(self, timeout: float):
        deadline = Deadline(timeout)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        try:
            while True:
                if deadline.expired():
                    self.kill()
                    raise HarnessError(f"{self.name}: no listening line within {timeout}s; "
                                       f"stdout so far {buf[-500:]!r}; log {self.log_tail()}")
                if not sel.select(deadline.remaining()):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    raise HarnessError(f"{self.name}: exited with {rc} before listening: "
                                       f"{self.log_tail()}")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.stdout_lines.append(line)
                    m = LISTEN_RE.search(line)
                    if m:
                        self._pending = buf
                        return m.group(1).decode(), int(m.group(2))
        finally:
            sel.close()

    def _drain_stdout(self):
        try:
            while True:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return
                self.stdout_lines.extend(chunk.splitlines())
        except OSError:
            return

    def log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log.name, "rb") as f:
                data = f.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """SIGTERM, then SIGKILL after 5 s; only ever our own child, by PID."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def close(self):
        self.kill()
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Target:
    """What a suite runs against: our binary or one of the reference servers."""

    kind: str            # "switchboard", "reference-ws", "reference-websockets"
    path: str | None     # binary path for switchboard

    @property
    def is_reference(self) -> bool:
        return self.kind != "switchboard"

    def start(self, *flags: str, name: str = "server") -> ServerProcess:
        base = ["--host", "127.0.0.1", "--port", "0", "--threads", "1", "--log-level", "warn"]
        if self.kind == "switchboard":
            argv = [self.path, "serve", *base, *flags]
        elif self.kind == "reference-ws":
            node = shutil.which("node") or "/usr/bin/node"
            argv = [node, str(SUPPORT_DIR / "ws_echo_server.mjs"), *base, *flags]
        elif self.kind == "reference-websockets":
            argv = ["/usr/bin/python3", str(SUPPORT_DIR / "websockets_echo_server.py"), *base,
                    *flags]
        else:
            raise ValueError(self.kind)
        env = dict(os.environ)
        env.setdefault("NODE_PATH", str(REPO_ROOT / "node_modules"))
        return ServerProcess(argv, name=f"{self.kind}-{name}", env=env)


def add_target_arguments(parser: argparse.ArgumentParser, required: bool = True):
    g = parser.add_mutually_exclusive_group(required=required)
    g.add_argument("--server", help="path to the switchboard binary")
    g.add_argument("--reference-ws", action="store_true",
                   help="run against tests/support/ws_echo_server.mjs (node ws)")
    g.add_argument("--reference-websockets", action="store_true",
                   help="run against tests/support/websockets_echo_server.py (python3-websockets)")


def target_from_args(args) -> Target:
    if args.server:
        if not os.access(args.server, os.X_OK):
            raise SystemExit(f"--server {args.server}: not an executable file")
        return Target("switchboard", args.server)
    if args.reference_ws:
        return Target("reference-ws", None)
    return Target("reference-websockets", None)


# --------------------------------------------------------------------------------------------
# Framing


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 masking; big-integer XOR keeps 16 MiB payloads fast in pure Python."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                 mask: bool = True, key: bytes | None = None, length_form: str | None = None,
                 declared_length: int | None = None) -> bytes:
    """Builds one frame. rsv is a 3-bit value (RSV1=4, RSV2=2, RSV3=1).

    length_form forces the 7-bit/16-bit/64-bit length encoding ("7", "16", "64"); by default
    the minimal one is used. declared_length lies about the payload length (for limit tests).
    """
    n = len(payload) if declared_length is None else declared_length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    form = length_form or ("7" if n <= 125 else "16" if n <= 0xFFFF else "64")
    if form == "7":
        header = struct.pack("!BB", b0, mbit | n)
    elif form == "16":
        header = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = key if key is not None else os.urandom(4)
        return header + key + mask_bytes(payload, key)
    return header + payload


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8

    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def close_reason(self) -> bytes:
        return self.payload[2:]

    def describe(self) -> str:
        name = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}.get(
            self.opcode, hex(self.opcode))
        extra = f" code={self.close_code()}" if self.opcode == OP_CLOSE else ""
        return (f"{name}(fin={int(self.fin)} rsv={self.rsv} len={len(self.payload)}{extra}"
                f"{' payload=' + repr(self.payload[:40]) if len(self.payload) <= 40 else ''})")


@dataclass
class Message:
    opcode: int          # OP_TEXT or OP_BINARY
    data: bytes
    compressed: bool
    frames: int


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return None if v is None else ", ".join(v)


def parse_http_head(raw: bytes) -> tuple[int, str, dict[str, list[str]]]:
    lines = raw.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise HarnessError(f"bad HTTP status line {lines[0]!r}")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line:
            continue
        if b":" not in line:
            raise HarnessError(f"bad HTTP header line {line!r}")
        k, v = line.split(b":", 1)
        headers.setdefault(k.strip().decode("latin-1").lower(), []).append(
            v.strip().decode("latin-1"))
    return int(m.group(1)), m.group(2).decode("latin-1"), headers


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def parse_extensions(value: str | None) -> list[tuple[str, dict[str, str | None], list[str]]]:
    """Parses Sec-WebSocket-Extensions into [(name, {param: value|None}, [param order])].

    Raises HarnessError on duplicates or syntax the RFC 7692 grammar does not allow.
    """
    out = []
    if not value:
        return out
    for ext in value.split(","):
        parts = [p.strip() for p in ext.split(";")]
        name = parts[0]
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise HarnessError(f"bad extension token {name!r} in {value!r}")
        params: dict[str, str | None] = {}
        order = []
        for p in parts[1:]:
            if not p:
                raise HarnessError(f"empty extension parameter in {value!r}")
            if "=" in p:
                k, v = p.split("=", 1)
                k, v = k.strip(), v.strip()
                if len(v) >= 2 and v[0] == v[-1] == '"':
                    v = v[1:-1]
            else:
                k, v = p, None
            if k in params:
                raise HarnessError(f"duplicate extension parameter {k!r} in {value!r}")
            params[k] = v
            order.append(k)
        out.append((name, params, order))
    return out


@dataclass
class DeflateParams:
    """Negotiated permessage-deflate parameters, from the client's point of view."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


def validate_deflate_response(offer: dict[str, str | None],
                              resp: dict[str, str | None]) -> DeflateParams:
    """RFC 7692 §7.1: checks the server's accepted parameters against one offer.

    Raises HarnessError naming the rule broken.
    """
    allowed = {"server_no_context_takeover", "client_no_context_takeover",
               "server_max_window_bits", "client_max_window_bits"}
    for k in resp:
        if k not in allowed:
            raise HarnessError(f"RFC 7692 §7.1: unknown parameter {k!r} in response")
    p = DeflateParams()
    if "server_no_context_takeover" in resp:
        if resp["server_no_context_takeover"] is not None:
            raise HarnessError("RFC 7692 §7.1.1.1: server_no_context_takeover takes no value")
        p.server_no_context_takeover = True
    elif "server_no_context_takeover" in offer:
        raise HarnessError("RFC 7692 §7.1.1.1: offer had server_no_context_takeover; an "
                           "accepting response must include it")
    if "client_no_context_takeover" in resp:
        if resp["client_no_context_takeover"] is not None:
            raise HarnessError("RFC 7692 §7.1.1.2: client_no_context_takeover takes no value")
        p.client_no_context_takeover = True

    def bits(name, v):
        if v is None or not re.fullmatch(r"[1-9][0-9]?", v) or not 8 <= int(v) <= 15:
            raise HarnessError(f"RFC 7692 §7.1.2: {name} value {v!r} not in 8..15")
        return int(v)

    if "server_max_window_bits" in resp:
        sv = bits("server_max_window_bits", resp["server_max_window_bits"])
        if "server_max_window_bits" in offer and offer["server_max_window_bits"] is not None:
            if sv > int(offer["server_max_window_bits"]):
                raise HarnessError(f"RFC 7692 §7.1.2.1: server_max_window_bits={sv} exceeds "
                                   f"offered {offer['server_max_window_bits']}")
        p.server_max_window_bits = sv
    elif "server_max_window_bits" in offer:
        raise HarnessError("RFC 7692 §7.1.2.1: offer had server_max_window_bits; an accepting "
                           "response must include it with the same or a smaller value")
    if "client_max_window_bits" in resp:
        if "client_max_window_bits" not in offer:
            raise HarnessError("RFC 7692 §7.1.2.2: response has client_max_window_bits but the "
                               "offer did not (MUST NOT)")
        cv = bits("client_max_window_bits", resp["client_max_window_bits"])
        ov = offer["client_max_window_bits"]
        if ov is not None and cv > int(ov):
            raise HarnessError(f"RFC 7692 §7.1.2.2: client_max_window_bits={cv} exceeds "
                               f"offered {ov}")
        p.client_max_window_bits = cv
    elif offer.get("client_max_window_bits") is not None:
        p.client_max_window_bits = int(offer["client_max_window_bits"])
    return p


def read_to_eof(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Reads until EOF/reset or the deadline: (bytes, "eof"|"reset"|"timeout"). A TLS alert
    (the peer's last word before its close) is appended as "<tls: REASON>" and counts as EOF."""
    deadline = Deadline(timeout)
    out = b""
    while True:
        rem = deadline.remaining()
        if rem <= 0:
            return out, "timeout"
        sock.settimeout(rem)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return out, "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return out, "reset"
        except ssl.SSLError as e:
            return out + f"<tls: {e.reason}>".encode(), "eof"
        if not chunk:
            return out, "eof"
        out += chunk


class BioTls:
    """A TLS client over ssl.MemoryBIO on a plain socket (optionally from a chosen loopback
    source address): the raw socket stays ours, to write anything on it after the handshake.
    A server that closes during the handshake raises HarnessError."""

    def __init__(self, port: int, ctx: ssl.SSLContext, ip: str | None = None,
                 timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(ip, 0) if ip else None)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        deadline = Deadline(timeout)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._pull(deadline)
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pull(self, deadline: Deadline):
        self.sock.settimeout(max(0.01, deadline.remaining()))
        chunk = self.sock.recv(65536)
        if chunk == b"":
            raise HarnessError("server closed during the TLS exchange")
        self.inc.write(chunk)

    def write(self, data: bytes):
        self.obj.write(data)
        self.flush()

    def records(self, data: bytes) -> bytes:
        """The TLS records that carry `data`, not sent."""
        self.obj.write(data)
        return self.out.read()

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = Deadline(timeout)
        buf = b""
        while marker not in buf:
            try:
                buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pull(deadline)
        return buf

    def close(self):
        self.sock.close()


class WSClient:
    """A raw-socket WebSocket client that can produce any frame, valid or not.

    Every frame read from the server is checked against the rules a server must keep
    (RFC 6455 §5.1 unmasked, §5.2 RSV without extension, §5.5 control-frame size and FIN).
    """

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.host, self.port = host, port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof: str | None = None
        self.response: HttpResponse | None = None
        self.deflate: DeflateParams | None = None
        self.subprotocol: str | None = None
        self._compressor = None
        self._decompressor = None
        self.frames_seen: list[Frame] = []

    # ---- raw IO
    def send_raw(self, data: bytes, chop: int | None = None):
        """Sends bytes, optionally in chops of `chop` bytes (each its own send call)."""
        try:
            if not chop:
                self.sock.sendall(data)
                return
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(data), chop):
                self.sock.sendall(data[i:i + chop])
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed(f"send failed: {e.__class__.__name__}") from None

    def try_send_raw(self, data: bytes) -> bool:
        """Sends and swallows a broken connection (used after the peer may have closed)."""
        try:
            self.send_raw(data)
            return True
        except (ConnectionClosed, OSError):
            return False

    def _fill(self, deadline: Deadline) -> None:
        if self.eof:
            raise ConnectionClosed(self.eof)
        rem = deadline.remaining()
        if rem <= 0:
            raise DeadlineExceeded("deadline passed while reading")
        self.sock.settimeout(rem)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise DeadlineExceeded("deadline passed while reading") from None
        except ConnectionResetError:
            self.eof = "reset"
            raise ConnectionClosed("reset") from None
        if not chunk:
            self.eof = "eof"
            raise ConnectionClosed("eof")
        self.buf += chunk

    def read_until(self, marker: bytes, deadline: Deadline, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise HarnessError(f"no {marker!r} within {limit} bytes")
            self._fill(deadline)

    def read_exact(self, n: int, deadline: Deadline) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # ---- handshake
    def handshake(self, path: str = "/echo", extensions: str | None = None,
                  protocols: list[str] | None = None, origin: str | None = None,
                  extra: list[tuple[str, str]] | None = None, key: str | None = None,
                  trailing: bytes = b"", expect_status: int | None = 101,
                  timeout: float | None = None) -> HttpResponse:
        key = key or base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin:
            lines.append(f"Origin: {origin}")
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        for k, v in extra or []:
            lines.append(f"{k}: {v}")
        req = ("\r\n".join(lines) + "\r\n\r\n").encode() + trailing
        self.send_raw(req)
        resp = self.read_http_response(Deadline(timeout or self.timeout))
        self.response = resp
        if expect_status is not None and resp.status != expect_status:
            raise HarnessError(f"handshake: expected {expect_status}, got {resp.status} "
                               f"{resp.reason}: {resp.body[:200]!r}")
        if resp.status == 101:
            self._check_101(resp, key, extensions, protocols)
        return resp

    def _check_101(self, resp: HttpResponse, key: str, extensions, protocols):
        # RFC 6455 §4.2.2 / §4.1 client-side validation of the server's handshake.
        up = resp.header("upgrade")
        if not up or up.lower() != "websocket":
            raise HarnessError(f"RFC 6455 §4.1: 101 without 'Upgrade: websocket' ({up!r})")
        conn = resp.header("connection") or ""
        if "upgrade" not in [t.strip().lower() for t in conn.split(",")]:
            raise HarnessError(f"RFC 6455 §4.1: 101 without 'Connection: Upgrade' ({conn!r})")
        acc = resp.header("sec-websocket-accept")
        if acc != accept_for(key):
            raise HarnessError(f"RFC 6455 §4.2.2: Sec-WebSocket-Accept {acc!r} != "
                               f"{accept_for(key)!r}")
        proto = resp.header("sec-websocket-protocol")
        if proto is not None:
            if not protocols or proto not in protocols:
                raise HarnessError(f"RFC 6455 §4.1: server selected subprotocol {proto!r} not "
                                   f"offered ({protocols})")
            self.subprotocol = proto
        exts = parse_extensions(resp.header("sec-websocket-extensions"))
        if exts:
            if not extensions:
                raise HarnessError(f"RFC 6455 §9.1: server answered extensions "
                                   f"{resp.header('sec-websocket-extensions')!r} none offered")
            if len(exts) != 1 or exts[0][0] != "permessage-deflate":
                raise HarnessError(f"unexpected extensions in response: {exts}")
            offers = [o for o in parse_extensions(extensions) if o[0] == "permessage-deflate"]
            # The response must be a valid acceptance of at least one of the offers.
            errors = []
            for _, oparams, _ in offers:
                try:
                    self.deflate = validate_deflate_response(oparams, exts[0][1])
                    break
                except HarnessError as e:
                    errors.append(str(e))
            else:
                raise HarnessError("response matches no offer: " + "; ".join(errors))
            self._compressor = None
            self._decompressor = None

    def read_http_response(self, deadline: Deadline) -> HttpResponse:
        head = self.read_until(b"\r\n\r\n", deadline, limit=64 * 1024)
        status, reason, headers = parse_http_head(head[:-4])
        body = b""
        if status != 101:
            cl = headers.get("content-length")
            if cl:
                body = self.read_exact(int(cl[0]), deadline)
            elif "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
                body = self._read_chunked(deadline)
        return HttpResponse(status, reason, headers, body, head)

    def _read_chunked(self, deadline):
        body = b""
        while True:
            line = self.read_until(b"\r\n", deadline)
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                self.read_until(b"\r\n", deadline)
                return body
            body += self.read_exact(n, deadline)
            self.read_exact(2, deadline)

    # ---- frames
    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                   chop: int | None = None, **kw):
        self.send_raw(encode_frame(opcode, payload, fin=fin, rsv=rsv, **kw), chop=chop)

    def send_close(self, code: int | None = None, reason: bytes = b"", raw: bytes | None = None):
        if raw is not None:
            payload = raw
        elif code is None:
            payload = b""
        else:
            payload = struct.pack("!H", code) + reason
        self.send_frame(OP_CLOSE, payload)

    def recv_frame(self, timeout: float | None = None, deadline: Deadline | None = None) -> Frame:
        deadline = deadline or Deadline(self.timeout if timeout is None else timeout)
        while len(self.buf) < 2:
            self._fill(deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill(deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill(deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        masked = bool(b1 & 0x80)
        if masked:
            off += 4
        while len(self.buf) < off + n:
            self._fill(deadline)
        payload = bytes(self.buf[off:off + n])
        if masked:
            payload = mask_bytes(payload, bytes(self.buf[off - 4:off]))
        del self.buf[:off + n]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, masked)
        self.frames_seen.append(f)
        self._check_server_frame(f)
        return f

    def _check_server_frame(self, f: Frame):
        if f.masked:
            raise HarnessError("RFC 6455 §5.1: server sent a masked frame")
        if f.opcode in (3, 4, 5, 6, 7) or f.opcode >= 0xB:
            raise HarnessError(f"RFC 6455 §5.2: server sent reserved opcode {f.opcode:#x}")
        allowed_rsv = 4 if self.deflate else 0
        if f.rsv & ~allowed_rsv:
            raise HarnessError(f"RFC 6455 §5.2: server frame has RSV bits {f.rsv:#05b} without "
                               "a negotiated extension defining them")
        if f.rsv & 4 and f.opcode == OP_CONT:
            raise HarnessError("RFC 7692 §6.1: RSV1 set on a continuation frame")
        if f.is_control:
            if len(f.payload) > 125:
                raise HarnessError("RFC 6455 §5.5: server control frame payload > 125")
            if not f.fin:
                raise HarnessError("RFC 6455 §5.5: server sent a fragmented control frame")
            if f.rsv:
                raise HarnessError("RFC 7692 §6.1: RSV1 on a control frame")
        if f.opcode == OP_CLOSE:
            if len(f.payload) == 1:
                raise HarnessError("RFC 6455 §5.5.1: server close frame with a 1-byte payload")
            code = f.close_code()
            if code is not None and not valid_close_code_on_wire(code):
                raise HarnessError(f"RFC 6455 §7.4: server sent close code {code}")
            try:
                f.close_reason().decode("utf-8")
            except UnicodeDecodeError:
                raise HarnessError("RFC 6455 §5.5.1: close reason not UTF-8") from None

    def recv_message(self, timeout: float | None = None, on_control=None,
                     inflate: bool = True) -> Message:
        """Reads one data message, answering pings with pongs unless `on_control` handles them.

        Raises HarnessError on a close frame (with its code) so callers notice an early close.
        """
        deadline = Deadline(self.timeout if timeout is None else timeout)
        frames = []
        while True:
            f = self.recv_frame(deadline=deadline)
            if f.is_control:
                if on_control and on_control(f):
                    continue
                if f.opcode == OP_PING:
                    self.send_frame(OP_PONG, f.payload)
                    continue
                if f.opcode == OP_PONG:
                    continue
                raise UnexpectedClose(f)
            if not frames:
                if f.opcode == OP_CONT:
                    raise HarnessError("RFC 6455 §5.4: server sent continuation without a start")
            elif f.opcode != OP_CONT:
                raise HarnessError("RFC 6455 §5.4: server started a new message inside a "
                                   "fragmented one")
            if frames and f.rsv & 4:
                raise HarnessError("RFC 7692 §6.1: RSV1 on a non-first fragment")
            frames.append(f)
            if f.fin:
                break
        data = b"".join(fr.payload for fr in frames)
        compressed = bool(frames[0].rsv & 4)
        if compressed and inflate:
            data = self.inflate_message(data)
        if frames[0].opcode == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise HarnessError("RFC 6455 §8.1: server sent a text message that is not "
                                   "UTF-8") from None
        return Message(frames[0].opcode, data, compressed, len(frames))

    # ---- permessage-deflate
    def deflate_message(self, data: bytes) -> bytes:
        """RFC 7692 §7.2.1: compress, sync-flush, strip the 00 00 ff ff tail."""
        p = self.deflate
        if p is None:
            raise HarnessError("deflate not negotiated")
        if self._compressor is None or p.client_no_context_takeover:
            self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                                -max(9, p.client_max_window_bits))
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if not out.endswith(DEFLATE_TAIL):
            raise HarnessError("zlib sync flush did not end in 00 00 ff ff")
        return out[:-4]

    def inflate_message(self, data: bytes) -> bytes:
        """RFC 7692 §7.2.2: append 00 00 ff ff and inflate with the negotiated window.

        Inflating with exactly server_max_window_bits makes a server that back-references
        further than it agreed fail here ("invalid distance too far back").
        """
        p = self.deflate
        if p is None:
            raise HarnessError("RFC 6455 §5.2: RSV1 set but no extension negotiated")
        if self._decompressor is None or p.server_no_context_takeover:
            self._decompressor = zlib.decompressobj(-p.server_max_window_bits)
        try:
            out = self._decompressor.decompress(data + DEFLATE_TAIL)
        except zlib.error as e:
            raise HarnessError(f"RFC 7692: server's compressed message does not inflate with "
                               f"window bits {p.server_max_window_bits} and context takeover="
                               f"{not p.server_no_context_takeover}: {e}") from None
        return out

    def send_message(self, opcode: int, data: bytes, compress: bool = False,
                     fragment: int | None = None, chop: int | None = None):
        payload = self.deflate_message(data) if compress else data
        if not fragment or len(payload) <= fragment:
            self.send_frame(opcode, payload, rsv=4 if compress else 0, chop=chop)
            return
        pieces = [payload[i:i + fragment] for i in range(0, len(payload), fragment)]
        out = bytearray()
        for i, piece in enumerate(pieces):
            out += encode_frame(opcode if i == 0 else OP_CONT, piece,
                                fin=(i == len(pieces) - 1),
                                rsv=(4 if compress and i == 0 else 0))
        self.send_raw(bytes(out), chop=chop)

    # ---- closing
    def expect_close(self, codes, timeout: float | None = None, reply: bool = True,
                     allow_data: bool = False) -> Frame:
        """Reads until the server's close frame; returns it. `codes` is a code, a list, or
        None for "no status code" (an empty close payload).

        Fails if a data frame arrives first unless allow_data. Answers pings meanwhile.
        """
        if not isinstance(codes, (list, tuple, set)):
            codes = [codes]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        while True:
            try:
                f = self.recv_frame(deadline=deadline)
            except ConnectionClosed as e:
                raise HarnessError(f"expected close frame {list(codes)}, but TCP closed ({e.how})"
                                   f" without a close frame") from None
            except DeadlineExceeded:
                raise HarnessError(f"expected close frame {list(codes)}, got nothing within "
                                   f"{self.timeout if timeout is None else timeout}s") from None
            if f.opcode == OP_CLOSE:
                code = f.close_code()
                if code not in codes:
                    raise HarnessError(f"expected close code {list(codes)}, got {code} "
                                       f"reason={f.close_reason()[:60]!r}")
                if reply:
                    self.try_send_raw(encode_frame(OP_CLOSE, f.payload[:2]))
                return f
            if f.opcode == OP_PING:
                self.try_send_raw(encode_frame(OP_PONG, f.payload))
                continue
            if f.opcode == OP_PONG:
                continue
            if not allow_data:
                raise HarnessError(f"expected close {list(codes)}, got {f.describe()}")

    def expect_tcp_close(self, timeout: float = 3.0, allow_frames: bool = False) -> str:
        """After the close handshake the server must close the TCP connection
        (RFC 6455 §7.1.1: the server SHOULD close first) and send nothing more (§5.5.1)."""
        deadline = Deadline(timeout)
        while True:
            try:
                f = self.recv_frame(deadline=deadline)
            except ConnectionClosed as e:
                return e.how
            except DeadlineExceeded:
                raise HarnessError(f"server did not close the TCP connection within {timeout}s "
                                   "after the close handshake (RFC 6455 §7.1.1)") from None
            if not allow_frames:
                raise HarnessError(f"RFC 6455 §5.5.1: frame after the close frame: "
                                   f"{f.describe()}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class UnexpectedClose(HarnessError):
    def __init__(self, frame: Frame):
        super().__init__(f"unexpected close frame from server: code={frame.close_code()} "
                         f"reason={frame.close_reason()[:80]!r}")
        self.frame = frame


def valid_close_code_on_wire(code: int) -> bool:
    """RFC 6455 §7.4.1/§7.4.2 and the IANA registry: codes an endpoint may put on the wire."""
    if 1000 <= code <= 1003 or 1007 <= code <= 1014:
        return True
    return 3000 <= code <= 4999


def connect(server, path="/echo", timeout: float = 5.0, **kw) -> WSClient:
    c = WSClient(server.host, server.port, timeout=timeout)
    try:
        c.handshake(path=path, **kw)
    except Exception:
        c.close()
        raise
    return c


def http_exchange(host: str, port: int, request: bytes, timeout: float = 5.0,
                  chop: int | None = None) -> tuple[HttpResponse | None, WSClient]:
    """Sends a raw HTTP request and reads one response (None if the server closed without one)."""
    c = WSClient(host, port, timeout=timeout)
    try:
        c.send_raw(request, chop=chop)
    except ConnectionClosed:
        pass
    try:
        return c.read_http_response(Deadline(timeout)), c
    except ConnectionClosed:
        return None, c


# --------------------------------------------------------------------------------------------
# Reporting


class Reporter:
    """Collects per-case results and prints `N passed, M failed` at the end."""

    def __init__(self, suite: str):
        self.suite = suite
        self.passed = 0
        self.failed = 0
        self.failures: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.started = time.monotonic()

    def record(self, case_id: str, ok: bool, detail: str = "", status: str | None = None):
        status = status or ("PASS" if ok else "FAIL")
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append((case_id, detail))
        line = f"{status:<10} {case_id}"
        if detail:
            line += f"  -- {detail}"
        print(line, flush=True)

    def note(self, text: str):
        self.notes.append(text)
        print(f"NOTE       {text}", flush=True)

    def finish(self) -> int:
        took = time.monotonic() - self.started
        if self.failures:
            print(f"\n{len(self.failures)} failure(s) in {self.suite}:")
            for cid, d in self.failures:
                print(f"  {cid}: {d}")
        print(f"\n{self.suite}: {took:.1f}s")
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1
