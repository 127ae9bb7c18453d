"""Server-Sent Events on the client side, for the tests: a parser per the HTML standard's
"Interpreting an event stream" (lines end in CRLF, LF or CR; `data` lines joined by LF; `id`
sets the last event id, which events without one keep; `retry` digits only; `:` comments
ignored; an empty line dispatches), event ids (src/server/session_open.h), and a GET /sse
reader on asyncio over a socket of its own (its cut can be a close or a reset)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct

from harness import Deadline
from messaging import CheckFailed, check, short

ID_RE = re.compile(r"^(s_[0-9a-f]{32})((?:\|[^|!]+![^|!]*![0-9]+)*)$")


# --------------------------------------------------------------------------------------------
# SSE parsing (HTML standard, "Interpreting an event stream")


class SseParser:
    """Feeds bytes, yields dispatched events. `items` logs retry/comment/event in order."""

    def __init__(self):
        self.buf = bytearray()
        self.first = True
        self.data: list[str] = []
        self.event_type = ""
        self.id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None
        self.items: list[tuple[str, object]] = []

    def feed(self, chunk: bytes, eof: bool = False) -> list[dict]:
        self.buf += chunk
        if self.first and len(self.buf) >= 3:
            if self.buf[:3] == b"\xef\xbb\xbf":
                del self.buf[:3]
            self.first = False
        out = []
        while True:
            i_n = self.buf.find(b"\n")
            i_r = self.buf.find(b"\r")
            idx = min(x for x in (i_n, i_r, len(self.buf)) if x >= 0)
            if idx == len(self.buf):
                break
            if self.buf[idx] == 0x0D:
                if idx + 1 == len(self.buf) and not eof:
                    break  # a CR at the end: an LF may follow
                end = idx + 2 if self.buf[idx + 1:idx + 2] == b"\n" else idx + 1
            else:
                end = idx + 1
            line = bytes(self.buf[:idx]).decode("utf-8", errors="replace")
            del self.buf[:end]
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> dict | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.items.append(("comment", line[1:]))
            return None
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event_type = value
        elif name == "id":
            if "\0" not in value:
                self.id_buffer = value
        elif name == "retry":
            if value and value.isascii() and value.isdigit():
                self.retry = int(value)
                self.items.append(("retry", self.retry))
        return None

    def _dispatch(self) -> dict | None:
        self.last_event_id = self.id_buffer
        if not self.data:
            self.event_type = ""
            return None
        data = "\n".join(self.data)
        self.data = []
        try:
            js = json.loads(data)
        except ValueError:
            js = None
        ev = {"event": self.event_type or "message", "data": data, "id": self.last_event_id,
              "json": js if isinstance(js, dict) else {"type": "<not json object>"}}
        self.event_type = ""
        self.items.append(("event", ev))
        return ev


def parse_id(s: str) -> tuple[str, dict[str, tuple[str, int]]]:
    m = ID_RE.match(s or "")
    check(m is not None, f"event id {s!r} is not <session>|<channel>!<epoch>!<offset>|…")
    chans = {}
    for item in m.group(2).split("|")[1:]:
        ch, ep, off = item.split("!")
        chans[ch] = (ep, int(off))
    names = [item.split("!")[0] for item in m.group(2).split("|")[1:]]
    check(names == sorted(names), f"event id {s!r}: channels not sorted by name")
    return m.group(1), chans


# --------------------------------------------------------------------------------------------
# A stream reader on asyncio


class SseStream:
    """GET /sse on a socket of its own; a reader task parses events as they come.

    stop_after: after this many `message` events are parsed the reader closes the socket
    itself and ignores whatever else had arrived (a connection that died mid-stream).
    keep: False keeps `message` events out of `events` (counted through on_message)."""

    def __init__(self, name: str):
        self.name = name
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.parser = SseParser()
        self.events: list[dict] = []
        self.inbox: list[dict] = []
        self.eof = asyncio.Event()
        self.eof_how = ""
        self._arrived = asyncio.Event()
        self.reader = None
        self.writer = None
        self.task = None
        self.stop_after: int | None = None
        self.messages_seen = 0
        self.on_message = None
        self.keep = True
        self.cut = False
        self.cut_rst = False
        self._last_id = ""

    @classmethod
    async def open(cls, server, path: str, headers: dict | None = None,
                   name: str = "sse", stop_after: int | None = None, keep: bool = True,
                   on_message=None, timeout: float = 5.0) -> "SseStream":
        s = cls(name)
        s.stop_after, s.keep, s.on_message = stop_after, keep, on_message
        s.reader, s.writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, limit=1 << 20), timeout)
        hdrs = {"Host": f"{server.host}:{server.port}", "Accept": "text/event-stream",
                "Cache-Control": "no-cache", **(headers or {})}
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        s.writer.write((req + "\r\n").encode())
        head = await asyncio.wait_for(s.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        check(m is not None, f"{name}: bad status line {lines[0]!r}")
        s.status = int(m.group(1))
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                s.headers[k.strip().lower()] = v.strip()
        if s.status != 200:
            n = int(s.headers.get("content-length", "0"))
            s.body = await asyncio.wait_for(s.reader.readexactly(n), timeout) if n else b""
            s.writer.close()
            s.eof.set()
            return s
        s.task = asyncio.ensure_future(s._read())
        return s

    def error_body(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {"raw": self.body.decode(errors="replace")}

    async def _read(self):
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    self.eof_how = "eof"
                    for ev in self.parser.feed(b"", eof=True):
                        self._take(ev)
                    break
                for ev in self.parser.feed(chunk):
                    if self.cut:
                        break
                    self._take(ev)
                if self.cut:
                    self.eof_how = "cut by us"
                    break
        except (ConnectionError, OSError) as e:
            self.eof_how = f"error {e!r}"
        finally:
            self.eof.set()
            self._arrived.set()

    def _take(self, ev: dict):
        self._last_id = ev["id"]  # the id an EventSource would hold after this event
        is_msg = ev["json"].get("type") == "message"
        if is_msg:
            self.messages_seen += 1
            if self.on_message is not None:
                self.on_message(ev)
        if self.keep or not is_msg:
            self.events.append(ev)
            self.inbox.append(ev)
        self._arrived.set()
        if is_msg and self.stop_after is not None and self.messages_seen >= self.stop_after:
            self.abort(rst=self.cut_rst)

    def abort(self, rst: bool = False):
        """Closes our socket now; what else arrives is never parsed."""
        self.cut = True
        if self.writer is None:
            return
        sock = self.writer.get_extra_info("socket")
        if rst and sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()

    @property
    def last_event_id(self) -> str:
        """The last event id of the events taken (the parser may have read further into a
        chunk that a cut discards)."""
        return self._last_id

    def msgs(self, channel: str | None = None) -> list[dict]:
        return [e["json"] for e in self.events if e["json"].get("type") == "message" and
                (channel is None or e["json"].get("channel") == channel)]

    async def expect(self, pred, timeout: float = 5.0, what: str = "an event") -> dict:
        deadline = Deadline(timeout)
        while True:
            for i, ev in enumerate(self.inbox):
                if pred(ev["json"]):
                    del self.inbox[i]
                    return ev
            if self.eof.is_set():
                raise CheckFailed(f"{self.name}: stream ended ({self.eof_how}) while waiting "
                                  f"for {what}; unconsumed: {self._unconsumed()}")
            if deadline.expired():
                raise CheckFailed(f"{self.name}: no {what} within {timeout}s; unconsumed: "
                                  f"{self._unconsumed()}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline.remaining())
            except asyncio.TimeoutError:
                pass

    def _unconsumed(self) -> str:
        return short([e["json"] for e in self.inbox if e["json"].get("type") != "ping"], 400)

    async def expect_type(self, type_: str, timeout: float = 5.0, **fields) -> dict:
        ev = await self.expect(lambda j: j.get("type") == type_ and
                               all(j.get(k) == v for k, v in fields.items()),
                               timeout, f"{type_} {fields or ''}")
        return ev

    async def wait_until(self, pred, timeout: float, what: str):
        deadline = Deadline(timeout)
        while not pred():
            if self.eof.is_set():
                raise CheckFailed(f"{self.name}: stream ended ({self.eof_how}) waiting for "
                                  f"{what}")
            if deadline.expired():
                raise CheckFailed(f"{self.name}: timed out after {timeout}s waiting for {what}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline.remaining())
            except asyncio.TimeoutError:
                pass

    async def wait_eof(self, timeout: float = 10.0):
        try:
            await asyncio.wait_for(self.eof.wait(), timeout)
        except asyncio.TimeoutError:
            raise CheckFailed(f"{self.name}: stream still open after {timeout}s") from None

    async def close(self):
        if not self.eof.is_set():
            self.abort()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 2)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass

    async def opened(self, n_subscribed: int = 0, timeout: float = 5.0) -> dict:
        """Waits for `connected` and n `subscribed`; returns connected's JSON."""
        check(self.status == 200, f"{self.name}: GET → {self.status} {self.body[:300]!r}")
        c = (await self.expect_type("connected", timeout))["json"]
        for _ in range(n_subscribed):
            await self.expect_type("subscribed", timeout)
        return c


async def close_all(streams):
    await asyncio.gather(*[s.close() for s in streams if s is not None],
                         return_exceptions=True)


def qs(*channels: str, **params) -> str:
    parts = [f"channel={c}" for c in channels]
    for k, v in params.items():
        for x in (v if isinstance(v, list) else [v]):
            parts.append(f"{k}={x}")
    return "/sse?" + "&".join(parts)


