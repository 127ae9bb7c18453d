#!/usr/bin/python3
"""RFC 6455 / RFC 7692 conformance of the /echo endpoint, walking the Autobahn|Testsuite case
categories (1.x-7.x, 9.x, 10.x, 12.x, 13.x) with raw sockets, plus handshake cases (H.x).

Case ids follow Autobahn's numbering where a case is Autobahn's; cases of our own carry an
`S` (Switchboard) in their id. Every case runs on a fresh connection and ends with the close
handshake, checking the server closes TCP afterwards (RFC 6455 §7.1.1).

  /usr/bin/python3 test_autobahn_cases.py --server build/release/switchboard
  /usr/bin/python3 test_autobahn_cases.py --reference-ws          # prove the checks on node ws
  /usr/bin/python3 test_autobahn_cases.py --reference-websockets  # and on python3-websockets

Exit status 0 only when every case passed. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                     ConnectionClosed, Deadline, DeadlineExceeded, Frame, HarnessError,
                     Reporter, WSClient, add_target_arguments, encode_frame, http_exchange,
                     parse_extensions, target_from_args)

KIB, MIB = 1024, 1024 * 1024


class CaseFailure(Exception):
    pass


class NonStrict(Exception):
    """Autobahn's NON-STRICT: allowed by the RFC, not what the strictest peer does."""


# Known deviations of the reference stacks from the strict expectation. In a reference run such
# a case must FAIL (proving the check can fail); it is then reported XFAIL and counted as
# passed. If it passes, the table is stale and the run fails (XPASS).
REFERENCE_DEVIATIONS = {
    "reference-ws": {
        # ws validates UTF-8 only on the complete message, so it is not fail-fast.
        "6.4.1": "ws validates UTF-8 at message end (not fail-fast per fragment)",
        "6.4.2": "ws validates UTF-8 at message end (not fail-fast per fragment)",
        "6.4.3": "ws validates UTF-8 at message end (not fail-fast within a frame)",
        "6.4.4": "ws validates UTF-8 at message end (not fail-fast within a frame)",
    },
    "reference-websockets": {
        # websockets decodes each complete frame incrementally: fail-fast per fragment (6.4.1,
        # 6.4.2 pass), but it does not look inside a frame before it is complete.
        "6.4.3": "websockets validates a frame only once complete",
        "6.4.4": "websockets validates a frame only once complete",
    },
}


# --------------------------------------------------------------------------------------------
# Servers shared by the cases


class Servers:
    """Starts each server configuration on first use; restarts one that died."""

    CONFIGS = {
        # The main echo server: defaults except an explicit 16 MiB message cap.
        "main": ["--max-message-size", "16MiB"],
        # Limit server for 1009 cases and the zip bomb.
        "limit": ["--max-message-size", "1MiB"],
        # Policy server: Origin allowlist, two subprotocols, short handshake timeout, and no
        # compression.
        "policy": ["--allowed-origins", "https://a.example,https://b.example",
                   "--subprotocols", "echo,chat", "--handshake-timeout", "1s",
                   "--no-compression"],
        # Keepalive server: pings every second, drops a peer silent for 2 s.
        "keepalive": ["--ping-interval", "1s", "--idle-timeout", "2s"],
    }

    def __init__(self, target):
        self.target = target
        self.procs = {}

    def get(self, name):
        p = self.procs.get(name)
        if p is None or not p.alive():
            if p is not None:
                p.close()
            p = self.target.start(*self.CONFIGS[name], name=name)
            self.procs[name] = p
        return p

    def check_alive(self, name):
        p = self.procs.get(name)
        if p is not None and not p.alive():
            rc = p.proc.poll()
            return f"server '{name}' exited with {rc} during the case; log: {p.log_tail(800)}"
        return None

    def close(self):
        for p in self.procs.values():
            p.close()


# --------------------------------------------------------------------------------------------
# Case registry

CASES = []


def case(cid, server="main", desc=""):
    def deco(fn):
        CASES.append((cid, server, desc or (fn.__doc__ or "").strip(), fn))
        return fn
    return deco


def add_case(cid, fn, server="main", desc=""):
    CASES.append((cid, server, desc, fn))


class Ctx:
    def __init__(self, servers, server_name, target):
        self.servers = servers
        self.server_name = server_name
        self.target = target
        self.clients = []

    @property
    def server(self):
        return self.servers.get(self.server_name)

    def connect(self, server_name=None, timeout=5.0, **kw) -> WSClient:
        s = self.servers.get(server_name or self.server_name)
        c = WSClient(s.host, s.port, timeout=timeout)
        self.clients.append(c)
        c.handshake(**kw)
        return c

    def raw(self, server_name=None, timeout=5.0) -> WSClient:
        s = self.servers.get(server_name or self.server_name)
        c = WSClient(s.host, s.port, timeout=timeout)
        self.clients.append(c)
        return c

    def close_all(self):
        for c in self.clients:
            c.close()


# --------------------------------------------------------------------------------------------
# Expectation helpers


def send_lenient(c: WSClient, data: bytes, chop=None):
    """Sends, tolerating a server that already failed the connection (fail-fast servers)."""
    try:
        c.send_raw(data, chop=chop)
    except (ConnectionClosed, OSError):
        pass


PROBE = b"sb-probe"


def collect(c: WSClient, timeout=5.0):
    """Reads everything up to the server's close frame: returns (events, close_frame|None).

    events are ("msg", opcode, data) for complete data messages, ("pong", payload), ("ping",
    payload). A close_frame of None means TCP ended without one.
    """
    events = []
    partial = []
    deadline = Deadline(timeout)
    while True:
        try:
            f = c.recv_frame(deadline=deadline)
        except ConnectionClosed:
            return events, None
        except DeadlineExceeded:
            raise CaseFailure(f"no close frame from the server within {timeout}s; got "
                              f"{describe_events(events)}") from None
        if f.opcode == OP_CLOSE:
            return events, f
        if f.opcode == OP_PONG:
            events.append(("pong", f.payload))
            if f.payload == PROBE:
                # The server answered a ping sent after the offending data: it did not fail
                # the connection. Stop now instead of waiting for the deadline.
                return events, None
        elif f.opcode == OP_PING:
            events.append(("ping", f.payload))
        else:
            partial.append(f)
            if f.fin:
                data = b"".join(x.payload for x in partial)
                if partial[0].rsv & 4:
                    data = c.inflate_message(data)
                events.append(("msg", partial[0].opcode, data))
                partial = []


def describe_events(events):
    out = []
    for e in events:
        if e[0] == "msg":
            out.append(f"{'TEXT' if e[1] == OP_TEXT else 'BINARY'}({len(e[2])}B)")
        else:
            out.append(f"{e[0].upper()}({e[1][:20]!r})")
    return "[" + ", ".join(out) + "]" if out else "nothing"


def finish_after_close(c: WSClient, close: Frame):
    """We got the server's close frame: answer it and expect the TCP close (§7.1.1)."""
    c.try_send_raw(encode_frame(OP_CLOSE, close.payload[:2]))
    c.expect_tcp_close(timeout=3.0)


def expect_failure(c: WSClient, codes, before=(), timeout=5.0):
    """The server must fail the connection with a close frame carrying one of `codes`.

    `before` lists the events (echoes, pongs) a strict server delivers first; receiving none
    of them is NON-STRICT (the server may discard what it had not processed), receiving
    anything else fails.
    """
    if isinstance(codes, int):
        codes = [codes]
    # A ping after the offending data: a strict server has failed the connection before it
    # reads it; one that carries on answers it, which ends the case at once.
    send_lenient(c, encode_frame(OP_PING, PROBE))
    events, close = collect(c, timeout)
    if ("pong", PROBE) in events:
        raise CaseFailure(f"the connection was not failed: the server went on and answered a "
                          f"ping sent after the offending data (expected close {codes}); "
                          f"events: {describe_events(events)}")
    if close is None:
        raise CaseFailure(f"TCP closed without a close frame; expected close {codes} (RFC 6455 "
                          f"§7.1.7 allows dropping, the Switchboard contract requires the "
                          f"close code); events before: {describe_events(events)}")
    code = close.close_code()
    if code not in codes:
        raise CaseFailure(f"close code {code} (reason {close.close_reason()[:60]!r}), expected "
                          f"{codes}; events before: {describe_events(events)}")
    finish_after_close(c, close)
    want = list(before)
    if events == want:
        return
    if not events and want:
        raise NonStrict(f"closed with {code} but without first delivering "
                        f"{describe_events(want)}")
    if want and events == want[:len(events)]:
        raise NonStrict(f"closed with {code} after only {describe_events(events)} of "
                        f"{describe_events(want)}")
    raise CaseFailure(f"before close {code} got {describe_events(events)}, expected "
                      f"{describe_events(want)}")


def expect_clean_close(c: WSClient, code=1000, reason=b"", accept=None):
    """We start the close handshake; the server must answer with a close frame and then close
    TCP. `accept` lists codes it may answer with (default: the same code or 1000)."""
    c.send_close(code, reason) if code is not None else c.send_close()
    events, close = collect(c)
    if events:
        raise CaseFailure(f"unexpected frames after our close: {describe_events(events)}")
    if close is None:
        raise CaseFailure("TCP closed without answering our close frame (RFC 6455 §5.5.1: "
                          "the endpoint MUST send a Close frame in response)")
    got = close.close_code()
    ok = accept if accept is not None else ([None, 1000] if code is None else [code, 1000])
    if got not in ok:
        raise CaseFailure(f"answered our close {code} with {got}, expected one of {ok}")
    c.expect_tcp_close(timeout=3.0)
    return got


def expect_echo(c: WSClient, opcode, data, timeout=5.0):
    m = c.recv_message(timeout=timeout)
    if m.opcode != opcode:
        raise CaseFailure(f"echo opcode {m.opcode}, sent {opcode}")
    if m.data != data:
        i = next((k for k in range(min(len(m.data), len(data))) if m.data[k] != data[k]),
                 min(len(m.data), len(data)))
        raise CaseFailure(f"echo differs: got {len(m.data)} bytes, sent {len(data)}; first "
                          f"difference at byte {i}")
    return m


def expect_pong(c: WSClient, payload, timeout=5.0):
    f = c.recv_frame(timeout=timeout)
    if f.opcode != OP_PONG:
        raise CaseFailure(f"expected PONG({payload[:20]!r}), got {f.describe()}")
    if f.payload != payload:
        raise CaseFailure(f"pong payload {f.payload[:40]!r} != ping payload {payload[:40]!r} "
                          "(RFC 6455 §5.5.3: identical Application data)")


def sync_ping(c: WSClient, marker=b"sync"):
    """Proves nothing else was sent before: the next frame must be the pong to `marker`."""
    c.send_frame(OP_PING, marker)
    f = c.recv_frame()
    if f.opcode != OP_PONG or f.payload != marker:
        raise CaseFailure(f"expected only PONG({marker!r}), got {f.describe()}")


def frames(*specs) -> bytes:
    """specs: (opcode, payload, fin[, rsv]) tuples → concatenated masked frames."""
    out = b""
    for s in specs:
        op, payload, fin = s[0], s[1], s[2]
        rsv = s[3] if len(s) > 3 else 0
        out += encode_frame(op, payload, fin=fin, rsv=rsv)
    return out


def echo_and_close(ctx, opcode, data, chop=None, fragment=None, timeout=10.0, **kw):
    c = ctx.connect(**kw)
    c.send_message(opcode, data, fragment=fragment, chop=chop)
    expect_echo(c, opcode, data, timeout=timeout)
    expect_clean_close(c)


# --------------------------------------------------------------------------------------------
# 1.x Framing

LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]
for _sub, (_op, _fill) in enumerate([(OP_TEXT, b"*"), (OP_BINARY, b"\xfe")], start=1):
    for _i, _n in enumerate(LENGTHS, start=1):
        add_case(f"1.{_sub}.{_i}", lambda ctx, op=_op, d=_fill * _n: echo_and_close(ctx, op, d),
                 desc=f"{'text' if _op == OP_TEXT else 'binary'} message of {_n} bytes")
    add_case(f"1.{_sub}.8", lambda ctx, op=_op, d=_fill * 65536: echo_and_close(ctx, op, d,
                                                                                 chop=997),
             desc="65536 bytes, written in 997-byte chops")


def non_minimal(op, payload, form):
    """RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length". The
    sender broke a MUST, so failing with 1002 is right; echoing is tolerated. Anything else
    (a misparse: wrong echo, other code, hang) fails."""
    def run(ctx):
        c = ctx.connect()
        c.send_frame(op, payload, length_form=form)
        c.send_frame(OP_PING, PROBE)
        seen = []
        while len(seen) < 2:  # the echo and the probe's pong, in either order
            f = c.recv_frame()
            if f.opcode == OP_CLOSE:
                if f.close_code() != 1002 or seen:
                    raise CaseFailure(f"closed with {f.close_code()} after {seen}, expected "
                                      f"1002 or an echo")
                finish_after_close(c, f)
                return
            seen.append((f.opcode, f.payload))
        if sorted(seen) != sorted([(op, payload), (OP_PONG, PROBE)]):
            raise CaseFailure(f"expected the echo or close 1002, got {seen}")
        expect_clean_close(c)
        raise NonStrict("non-minimal length accepted and echoed")
    return run


add_case("1.S.1.1", non_minimal(OP_TEXT, b"hello", "16"),
         desc="5-byte text with a 16-bit length -> close 1002 (or echo, NON-STRICT)")
add_case("1.S.1.2", non_minimal(OP_BINARY, b"\x01" * 200, "64"),
         desc="200-byte binary with a 64-bit length -> close 1002 (or echo, NON-STRICT)")


@case("1.S.2", desc="unmasked client frame -> close 1002 (RFC 6455 §5.1)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_TEXT, b"Hello", mask=False))
    expect_failure(c, 1002)


@case("1.S.3", desc="all-zero masking key is still a masked frame -> echoed")
def _(ctx):
    c = ctx.connect()
    c.send_frame(OP_TEXT, b"zero key", key=b"\x00\x00\x00\x00")
    expect_echo(c, OP_TEXT, b"zero key")
    expect_clean_close(c)


# --------------------------------------------------------------------------------------------
# 2.x Pings/Pongs


def ping_case(payload, chop=None):
    def run(ctx):
        c = ctx.connect()
        c.send_frame(OP_PING, payload, chop=chop)
        expect_pong(c, payload)
        expect_clean_close(c)
    return run


add_case("2.1", ping_case(b""), desc="ping without payload -> pong")
add_case("2.2", ping_case(b"Hello, world!"), desc="ping with small text payload")
add_case("2.3", ping_case(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), desc="ping with binary payload")
add_case("2.4", ping_case(b"\xfe" * 125), desc="ping with 125-byte payload")


@case("2.5", desc="ping with 126-byte payload -> close 1002 (RFC 6455 §5.5)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_PING, b"\xfe" * 126))
    expect_failure(c, 1002)


add_case("2.6", ping_case(b"\xfe" * 125, chop=1), desc="125-byte ping sent in 1-byte chops")


@case("2.7", desc="unsolicited pong without payload is ignored")
def _(ctx):
    c = ctx.connect()
    c.send_frame(OP_PONG, b"")
    sync_ping(c)
    expect_clean_close(c)


@case("2.8", desc="unsolicited pong with payload is ignored")
def _(ctx):
    c = ctx.connect()
    c.send_frame(OP_PONG, b"unsolicited pong payload")
    sync_ping(c)
    expect_clean_close(c)


@case("2.9", desc="unsolicited pong, then ping -> only the ping's pong")
def _(ctx):
    c = ctx.connect()
    c.send_raw(frames((OP_PONG, b"unsolicited pong payload", True),
                      (OP_PING, b"ping payload", True)))
    expect_pong(c, b"ping payload")
    expect_clean_close(c)


def ten_pings(chop):
    def run(ctx):
        c = ctx.connect()
        payloads = [f"payload-{i}".encode() for i in range(10)]
        c.send_raw(b"".join(encode_frame(OP_PING, p) for p in payloads), chop=chop)
        got = []
        while not got or got[-1] != payloads[-1]:
            f = c.recv_frame()
            if f.opcode != OP_PONG:
                raise CaseFailure(f"expected pongs, got {f.describe()}")
            got.append(f.payload)
        if got != payloads:
            # RFC 6455 §5.5.3: a pong may answer only the most recent of several pings.
            if all(p in payloads for p in got) and got == sorted(got, key=payloads.index):
                expect_clean_close(c)
                raise NonStrict(f"{len(got)} pongs for 10 pings (allowed by §5.5.3)")
            raise CaseFailure(f"pongs {got} for pings {payloads}")
        expect_clean_close(c)
    return run


add_case("2.10", ten_pings(None), desc="10 pings in a row -> 10 pongs in order")
add_case("2.11", ten_pings(1), desc="10 pings in a row, 1-byte chops")


@case("2.S.1", desc="ping payloads of every length 0..125 -> pong with the same payload")
def _(ctx):
    c = ctx.connect()
    for n in range(126):
        payload = bytes((i * 7 + n) & 0xFF for i in range(n))
        c.send_frame(OP_PING, payload)
        expect_pong(c, payload)
    expect_clean_close(c)


@case("2.S.2", desc="ping between two data messages -> pong, and both echoes in order")
def _(ctx):
    # The pong is protocol-level and the echo application-level, so their relative order is
    # free; the two echoes must keep their order.
    c = ctx.connect()
    c.send_raw(frames((OP_TEXT, b"one", True), (OP_PING, b"p", True), (OP_TEXT, b"two", True)))
    events = []
    while len(events) < 3:
        f = c.recv_frame()
        events.append((f.opcode, f.payload))
    data = [e for e in events if e[0] != OP_PONG]
    if data != [(OP_TEXT, b"one"), (OP_TEXT, b"two")] or (OP_PONG, b"p") not in events:
        raise CaseFailure(f"got {events}")
    expect_clean_close(c)


# --------------------------------------------------------------------------------------------
# 3.x Reserved bits (no extension negotiated: any RSV bit fails the connection, RFC 6455 §5.2)


@case("3.1", desc="text frame with RSV=1 -> close 1002")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_TEXT, b"Hello, world!", rsv=1))
    expect_failure(c, 1002)


def rsv_after_valid(rsv, chop=None, framewise=False):
    def run(ctx):
        c = ctx.connect()
        parts = [encode_frame(OP_TEXT, b"Hello, world!"),
                 encode_frame(OP_TEXT, b"Hello, world!", rsv=rsv),
                 encode_frame(OP_PING, b"")]
        if framewise:
            c.send_raw(parts[0])
            expect_echo(c, OP_TEXT, b"Hello, world!")
            send_lenient(c, parts[1] + parts[2])
            expect_failure(c, 1002)
        else:
            send_lenient(c, b"".join(parts), chop=chop)
            expect_failure(c, 1002, before=[("msg", OP_TEXT, b"Hello, world!")])
    return run


add_case("3.2", rsv_after_valid(2, framewise=True),
         desc="valid text, then text with RSV=2, then ping -> echo, close 1002, no pong")
add_case("3.3", rsv_after_valid(3), desc="same with RSV=3, all in one write")
add_case("3.4", rsv_after_valid(4, chop=1), desc="same with RSV=4 (RSV1), 1-byte chops")


@case("3.5", desc="binary frame with RSV=5 -> close 1002")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5))
    expect_failure(c, 1002)


@case("3.6", desc="ping with RSV=6 -> close 1002")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_PING, b"Hello, world!", rsv=6))
    expect_failure(c, 1002)


@case("3.7", desc="close with RSV=7 -> close 1002")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_CLOSE, struct.pack("!H", 1000), rsv=7))
    expect_failure(c, 1002)


# --------------------------------------------------------------------------------------------
# 4.x Opcodes (reserved opcodes fail the connection, RFC 6455 §5.2)


def reserved_opcode(op, payload=b"", after_text=False):
    def run(ctx):
        c = ctx.connect()
        data = b""
        before = []
        if after_text:
            data += encode_frame(OP_TEXT, b"Hello, world!")
            before = [("msg", OP_TEXT, b"Hello, world!")]
        data += encode_frame(op, payload)
        if after_text:
            data += encode_frame(OP_PING, b"")
        send_lenient(c, data)
        expect_failure(c, 1002, before=before)
    return run


for _i, (_op, _pl, _after) in enumerate([(3, b"", False), (4, b"reserved opcode payload", False),
                                         (5, b"", True), (6, b"reserved opcode payload", True),
                                         (7, b"reserved opcode payload", True)], start=1):
    add_case(f"4.1.{_i}", reserved_opcode(_op, _pl, _after),
             desc=f"reserved data opcode {_op}{' after a valid text, then ping' if _after else ''}")
for _i, (_op, _pl, _after) in enumerate([(11, b"", False), (12, b"reserved opcode payload", False),
                                         (13, b"", True), (14, b"reserved opcode payload", True),
                                         (15, b"reserved opcode payload", True)], start=1):
    add_case(f"4.2.{_i}", reserved_opcode(_op, _pl, _after),
             desc=f"reserved control opcode {_op:#x}"
                  f"{' after a valid text, then ping' if _after else ''}")


# --------------------------------------------------------------------------------------------
# 5.x Fragmentation


def fragmented_control(op):
    def run(ctx):
        c = ctx.connect()
        send_lenient(c, frames((op, b"fragment1", False), (OP_CONT, b"fragment2", True)))
        expect_failure(c, 1002)
    return run


add_case("5.1", fragmented_control(OP_PING), desc="ping in 2 fragments -> 1002 (§5.5)")
add_case("5.2", fragmented_control(OP_PONG), desc="pong in 2 fragments -> 1002 (§5.5)")


def two_fragments(mode):
    def run(ctx):
        c = ctx.connect()
        a = encode_frame(OP_TEXT, b"fragment1", fin=False)
        b = encode_frame(OP_CONT, b"fragment2", fin=True)
        if mode == "chop":
            c.send_raw(a + b, chop=1)
        elif mode == "framewise":
            c.send_raw(a)
            c.send_raw(b)
        else:
            c.send_raw(a + b)
        expect_echo(c, OP_TEXT, b"fragment1fragment2")
        expect_clean_close(c)
    return run


add_case("5.3", two_fragments("once"), desc="text in 2 fragments -> echo")
add_case("5.4", two_fragments("chop"), desc="text in 2 fragments, 1-byte chops")
add_case("5.5", two_fragments("framewise"), desc="text in 2 fragments, frame by frame")


def fragments_with_ping(mode):
    def run(ctx):
        c = ctx.connect()
        parts = [encode_frame(OP_TEXT, b"fragment1", fin=False),
                 encode_frame(OP_PING, b"ping payload"),
                 encode_frame(OP_CONT, b"fragment2", fin=True)]
        if mode == "chop":
            c.send_raw(b"".join(parts), chop=1)
        elif mode == "framewise":
            c.send_raw(parts[0])
            c.send_raw(parts[1])
            expect_pong(c, b"ping payload")
            c.send_raw(parts[2])
            expect_echo(c, OP_TEXT, b"fragment1fragment2")
            expect_clean_close(c)
            return
        else:
            c.send_raw(b"".join(parts))
        expect_pong(c, b"ping payload")
        expect_echo(c, OP_TEXT, b"fragment1fragment2")
        expect_clean_close(c)
    return run


add_case("5.6", fragments_with_ping("once"), desc="2 fragments with a ping between -> pong, echo")
add_case("5.7", fragments_with_ping("chop"), desc="same, 1-byte chops")
add_case("5.8", fragments_with_ping("framewise"), desc="same, frame by frame")


def stray_continuation(fin, mode):
    def run(ctx):
        c = ctx.connect()
        data = frames((OP_CONT, b"non-continuation payload", fin),
                      (OP_TEXT, b"Hello, world!", True))
        if mode == "chop":
            send_lenient(c, data, chop=1)
        elif mode == "framewise":
            send_lenient(c, encode_frame(OP_CONT, b"non-continuation payload", fin=fin))
            send_lenient(c, encode_frame(OP_TEXT, b"Hello, world!"))
        else:
            send_lenient(c, data)
        expect_failure(c, 1002)
    return run


for _i, _mode in enumerate(["once", "chop", "framewise"]):
    add_case(f"5.{9 + _i}", stray_continuation(True, _mode),
             desc=f"continuation (FIN=1) with nothing to continue, then text ({_mode}) -> 1002")
    add_case(f"5.{12 + _i}", stray_continuation(False, _mode),
             desc=f"continuation (FIN=0) with nothing to continue, then text ({_mode}) -> 1002")


@case("5.15", desc="complete 2-fragment text, then stray continuation FIN=0, then text -> "
                   "echo, then 1002")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, frames((OP_TEXT, b"fragment1", False), (OP_CONT, b"fragment2", True),
                           (OP_CONT, b"fragment3", False), (OP_TEXT, b"fragment4", True)))
    expect_failure(c, 1002, before=[("msg", OP_TEXT, b"fragment1fragment2")])


def repeated_stray(fin):
    def run(ctx):
        c = ctx.connect()
        one = frames((OP_CONT, b"fragment1", fin), (OP_TEXT, b"fragment2", False),
                     (OP_CONT, b"fragment3", True))
        send_lenient(c, one + one)
        expect_failure(c, 1002)
    return run


add_case("5.16", repeated_stray(False), desc="2x (stray cont FIN=0, 2-fragment text) -> 1002")
add_case("5.17", repeated_stray(True), desc="2x (stray cont FIN=1, 2-fragment text) -> 1002")


@case("5.18", desc="text FIN=0 then a new text frame (not continuation) -> 1002 (§5.4)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, frames((OP_TEXT, b"fragment1", False), (OP_TEXT, b"fragment2", True)))
    expect_failure(c, 1002)


def five_fragments_two_pings(framewise):
    def run(ctx):
        c = ctx.connect()
        first = [encode_frame(OP_TEXT, b"fragment1", fin=False),
                 encode_frame(OP_CONT, b"fragment2", fin=False),
                 encode_frame(OP_PING, b"pongme 1!")]
        second = [encode_frame(OP_CONT, b"fragment3", fin=False),
                  encode_frame(OP_CONT, b"fragment4", fin=False),
                  encode_frame(OP_PING, b"pongme 2!"),
                  encode_frame(OP_CONT, b"fragment5", fin=True)]
        for part in first:
            c.send_raw(part)
        # Autobahn waits a second here; we wait for the first pong instead, which also proves
        # the control frame was answered in the middle of the fragmented message.
        expect_pong(c, b"pongme 1!")
        if framewise:
            for part in second:
                c.send_raw(part)
        else:
            c.send_raw(b"".join(second))
        expect_pong(c, b"pongme 2!")
        expect_echo(c, OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5")
        expect_clean_close(c)
    return run


add_case("5.19", five_fragments_two_pings(False), desc="5 fragments, 2 pings interleaved")
add_case("5.20", five_fragments_two_pings(True), desc="same, frame by frame")


@case("5.S.1", desc="200-byte text in 200 one-byte fragments -> echo")
def _(ctx):
    data = bytes(random.Random(1).randrange(0x20, 0x7F) for _ in range(200))
    echo_and_close(ctx, OP_TEXT, data, fragment=1)


@case("5.S.2", desc="binary in 3 fragments -> echo")
def _(ctx):
    echo_and_close(ctx, OP_BINARY, bytes(range(256)) * 3, fragment=300)


@case("5.S.3", desc="close frame with FIN=0 -> 1002 (§5.5)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, frames((OP_CLOSE, struct.pack("!H", 1000), False)))
    expect_failure(c, 1002)


@case("5.S.4", desc="binary FIN=0 then a text frame -> 1002 (§5.4)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, frames((OP_BINARY, b"\x01\x02", False), (OP_TEXT, b"x", True)))
    expect_failure(c, 1002)


# --------------------------------------------------------------------------------------------
# 6.x UTF-8 handling (RFC 6455 §8.1: invalid UTF-8 in a text message -> 1007)

HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")
INVALID_PAYLOAD = KOSME + bytes.fromhex("eda080") + b"edited"


@case("6.1.1", desc="empty text message -> echo")
def _(ctx):
    echo_and_close(ctx, OP_TEXT, b"")


@case("6.1.2", desc="text message of 3 empty fragments -> echo")
def _(ctx):
    c = ctx.connect()
    c.send_raw(frames((OP_TEXT, b"", False), (OP_CONT, b"", False), (OP_CONT, b"", True)))
    expect_echo(c, OP_TEXT, b"")
    expect_clean_close(c)


@case("6.1.3", desc="fragments: empty, 'middle frame payload', empty -> echo")
def _(ctx):
    c = ctx.connect()
    c.send_raw(frames((OP_TEXT, b"", False), (OP_CONT, b"middle frame payload", False),
                      (OP_CONT, b"", True)))
    expect_echo(c, OP_TEXT, b"middle frame payload")
    expect_clean_close(c)


def bytewise_text(data) -> bytes:
    if len(data) <= 1:
        return encode_frame(OP_TEXT, data)
    return b"".join(encode_frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1],
                                 fin=(i == len(data) - 1)) for i in range(len(data)))


@case("6.2.1", desc="valid UTF-8 in one frame")
def _(ctx):
    echo_and_close(ctx, OP_TEXT, HELLO_UTF8)


@case("6.2.2", desc="valid UTF-8 in 2 fragments split on a code-point boundary")
def _(ctx):
    c = ctx.connect()
    c.send_raw(frames((OP_TEXT, HELLO_UTF8[:12], False), (OP_CONT, HELLO_UTF8[12:], True)))
    expect_echo(c, OP_TEXT, HELLO_UTF8)
    expect_clean_close(c)


@case("6.2.3", desc="valid UTF-8 fragmented byte by byte (splits inside code points)")
def _(ctx):
    c = ctx.connect()
    c.send_raw(bytewise_text(HELLO_UTF8))
    expect_echo(c, OP_TEXT, HELLO_UTF8)
    expect_clean_close(c)


@case("6.2.4", desc="κόσμε fragmented byte by byte")
def _(ctx):
    c = ctx.connect()
    c.send_raw(bytewise_text(KOSME))
    expect_echo(c, OP_TEXT, KOSME)
    expect_clean_close(c)


@case("6.3.1", desc="invalid UTF-8 (surrogate ED A0 80) in one frame -> 1007")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_TEXT, INVALID_PAYLOAD))
    expect_failure(c, 1007)


@case("6.3.2", desc="same fragmented byte by byte -> 1007")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, bytewise_text(INVALID_PAYLOAD))
    expect_failure(c, 1007)


def fail_fast_fragments(p1, p2, p3):
    """6.4.1/6.4.2: the connection must be failed after the fragment that makes the sequence
    invalid, before the rest is sent."""
    def run(ctx):
        c = ctx.connect()
        c.send_raw(encode_frame(OP_TEXT, p1, fin=False))
        send_lenient(c, encode_frame(OP_CONT, p2, fin=False))
        fail_fast_wait(c, encode_frame(OP_CONT, p3, fin=True))
    return run


def fail_fast_chunks(p1, p2, p3):
    """6.4.3/6.4.4: one frame written in 3 chunks; must fail inside the frame."""
    def run(ctx):
        c = ctx.connect()
        whole = encode_frame(OP_TEXT, p1 + p2 + p3)
        hdr = len(whole) - len(p1 + p2 + p3)
        c.send_raw(whole[:hdr + len(p1)])
        send_lenient(c, whole[hdr + len(p1):hdr + len(p1) + len(p2)])
        fail_fast_wait(c, whole[hdr + len(p1) + len(p2):])
    return run


def fail_fast_wait(c, rest):
    try:
        events, close = collect(c, timeout=1.5)
    except CaseFailure:
        # Not failed yet: send the rest to tell "late" from "never".
        send_lenient(c, rest)
        events, close = collect(c, timeout=5.0)
        if close is not None and close.close_code() == 1007:
            finish_after_close(c, close)
            raise CaseFailure("not fail-fast: close 1007 came only after the rest of the "
                              "message was sent (incremental fail-fast UTF-8; Autobahn "
                              "grades this NON-STRICT)") from None
        raise CaseFailure(f"no close 1007 even after the whole message: close="
                          f"{close.close_code() if close else None}, events "
                          f"{describe_events(events)}") from None
    if close is None or close.close_code() != 1007:
        raise CaseFailure(f"expected close 1007, got "
                          f"{close.close_code() if close else 'TCP close without close frame'}")
    if events:
        raise CaseFailure(f"unexpected frames before close: {describe_events(events)}")
    finish_after_close(c, close)


add_case("6.4.1", fail_fast_fragments(KOSME, bytes.fromhex("f4908080"), b"edited"),
         desc="fail-fast: 3 fragments, the 2nd holds U+110000 (F4 90 80 80)")
add_case("6.4.2", fail_fast_fragments(KOSME + b"\xf4", b"\x90", b"\x80\x80edited"),
         desc="fail-fast: 3 fragments, the 2nd holds the byte that makes F4 invalid")
add_case("6.4.3", fail_fast_chunks(KOSME, bytes.fromhex("f4908080"), b"edited"),
         desc="fail-fast inside one frame written in 3 chunks (F4 90 80 80)")
add_case("6.4.4", fail_fast_chunks(KOSME, b"\xf4\x90", b"\x80\x80edited"),
         desc="fail-fast inside one frame written in 3 chunks (F4 90 partial)")


def utf8_sequences():
    """The UTF-8 decoder stress sequences (Markus Kuhn) in Autobahn's 6.5-6.23 order."""
    groups = []
    vss = KOSME
    groups.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"),
        (True, b"hello\xe2\x82\xacworld"), (True, b"hello\xf0\xa4\xad\xa2world"),
        (True, vss)]))

    def valid(b):
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    groups.append(("All prefixes of a valid UTF-8 string with multi-byte code points",
                   [(valid(vss[:i]), vss[:i]) for i in range(1, len(vss) + 1)]))
    groups.append(("First possible sequence of a certain length",
                   [(True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"),
                    (True, b"\xf0\x90\x80\x80")]))
    groups.append(("First possible sequence length 5/6 (invalid code points)",
                   [(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    groups.append(("Last possible sequence of a certain length",
                   [(True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"),
                    (True, b"\xf4\x8f\xbf\xbf")]))
    groups.append(("Last possible sequence length 4/5/6 (invalid code points)",
                   [(False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"),
                    (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    groups.append(("Other boundary conditions",
                   [(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
                    (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    groups.append(("Unexpected continuation bytes",
                   [(False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"),
                    (False, b"\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf"),
                    (False, b"\x80\xbf\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf\x80\xbf"),
                    (False, bytes(range(0x80, 0xbf)))]))
    groups.append(("Lonely start characters",
                   [(False, b"".join(bytes([i, 0x20]) for i in range(a, b)))
                    for a, b in [(0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb),
                                 (0xfc, 0xfd)]]))
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
               b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
               b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    groups.append(("Sequences with last continuation byte missing",
                   [(False, k) for k in missing]))
    groups.append(("Concatenation of incomplete sequences", [(False, b"".join(missing))]))
    groups.append(("Impossible bytes",
                   [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]))
    groups.append(("Examples of an overlong ASCII character",
                   [(False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
                    (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")]))
    groups.append(("Maximum overlong sequences",
                   [(False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
                    (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    groups.append(("Overlong representation of the NUL character",
                   [(False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
                    (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")]))
    groups.append(("Single UTF-16 surrogates",
                   [(False, bytes.fromhex(h)) for h in
                    ["eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf"]]))
    groups.append(("Paired UTF-16 surrogates",
                   [(False, bytes.fromhex(h)) for h in
                    ["eda080edb080", "eda080edbfbf", "edadbfedb080", "edadbfedbfbf",
                     "edae80edb080", "edae80edbfbf", "edafbfedb080", "edafbfedbfbf"]]))
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]:
        for z2 in [0x8f, 0x9f, 0xaf, 0xbf]:
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # above U+10FFFF
            for z3 in [0xbe, 0xbf]:
                zz = bytes([z1, z2, 0xbf, z3])
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):  # overlong
                    nonchars.append((True, zz))
    groups.append(("Non-character code points (valid UTF-8)", nonchars))
    groups.append(("Unicode specials (i.e. replacement char)",
                   [(True, bytes([0xef, 0xbf, b])) for b in range(0xb9, 0xc0)]))
    # Self-check the vectors against Python's strict decoder (which follows RFC 3629).
    for name, seqs in groups:
        for ok, b in seqs:
            assert valid(b) == ok, (name, b)
    return groups


def utf8_case(payload, ok, bytewise):
    def run(ctx):
        c = ctx.connect()
        data = bytewise_text(payload) if bytewise else encode_frame(OP_TEXT, payload)
        if ok:
            c.send_raw(data)
            expect_echo(c, OP_TEXT, payload)
            expect_clean_close(c)
        else:
            send_lenient(c, data)
            expect_failure(c, 1007)
    return run


for _g, (_name, _seqs) in enumerate(utf8_sequences(), start=5):
    for _j, (_ok, _payload) in enumerate(_seqs, start=1):
        add_case(f"6.{_g}.{_j}", utf8_case(_payload, _ok, False),
                 desc=f"{_name}: {_payload.hex()} -> {'echo' if _ok else '1007'}")
        add_case(f"6.{_g}.{_j}.S", utf8_case(_payload, _ok, True),
                 desc=f"same, fragmented byte by byte")


# --------------------------------------------------------------------------------------------
# 7.x Close handling


@case("7.1.1", desc="text echo, then close 1000 -> close 1000, TCP closed by the server")
def _(ctx):
    c = ctx.connect()
    c.send_frame(OP_TEXT, b"Hello World!")
    expect_echo(c, OP_TEXT, b"Hello World!")
    expect_clean_close(c, 1000, accept=[1000])


@case("7.1.2", desc="two close frames -> one close answer, second ignored")
def _(ctx):
    c = ctx.connect()
    c.send_raw(encode_frame(OP_CLOSE, struct.pack("!H", 1000)) +
               encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
    events, close = collect(c)
    if events or close is None or close.close_code() != 1000:
        raise CaseFailure(f"got {describe_events(events)} then close "
                          f"{close.close_code() if close else None}")
    c.expect_tcp_close()


def close_then(extra, desc_what):
    def run(ctx):
        c = ctx.connect()
        c.send_raw(encode_frame(OP_CLOSE, struct.pack("!H", 1000)) + extra)
        events, close = collect(c)
        if events:
            raise CaseFailure(f"RFC 6455 §5.5.1: data after close must be ignored; got "
                              f"{describe_events(events)} for the {desc_what}")
        if close is None or close.close_code() != 1000:
            raise CaseFailure(f"expected close 1000, got {close.close_code() if close else None}")
        c.expect_tcp_close()
    return run


add_case("7.1.3", close_then(encode_frame(OP_PING, b"Hello World!"), "ping"),
         desc="close, then ping -> close, no pong")
add_case("7.1.4", close_then(encode_frame(OP_TEXT, b"Hello World!"), "text"),
         desc="close, then text -> close, no echo")


@case("7.1.5", desc="first fragment, close, last fragment -> close, no echo")
def _(ctx):
    c = ctx.connect()
    c.send_raw(encode_frame(OP_TEXT, b"fragment1", fin=False) +
               encode_frame(OP_CLOSE, struct.pack("!H", 1000)) +
               encode_frame(OP_CONT, b"fragment2", fin=True))
    events, close = collect(c)
    if events or close is None or close.close_code() != 1000:
        raise CaseFailure(f"got {describe_events(events)}, close "
                          f"{close.close_code() if close else None}")
    c.expect_tcp_close()


@case("7.1.6", desc="256 KiB text, close, ping -> (echo allowed), close, no pong")
def _(ctx):
    c = ctx.connect()
    big = (b"BAsd7&jh23" * 26215)[:256 * KIB]
    send_lenient(c, encode_frame(OP_TEXT, big) + encode_frame(OP_CLOSE, struct.pack("!H", 1000))
                 + encode_frame(OP_PING, b"Hello World!"))
    events, close = collect(c, timeout=10)
    if any(e[0] == "pong" for e in events) or any(e[0] == "msg" and e[2] != big for e in events):
        raise CaseFailure(f"after close: {describe_events(events)}")
    if close is None or close.close_code() != 1000:
        raise CaseFailure(f"expected close 1000, got {close.close_code() if close else None}")
    c.expect_tcp_close()


@case("7.3.1", desc="close with empty payload -> close (empty or 1000)")
def _(ctx):
    c = ctx.connect()
    expect_clean_close(c, None)


@case("7.3.2", desc="close with 1-byte payload -> 1002 (§5.5.1)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_CLOSE, b"\x03"))
    expect_failure(c, 1002)


@case("7.3.3", desc="close 1000 without reason -> close 1000")
def _(ctx):
    expect_clean_close(ctx.connect(), 1000, accept=[1000])


@case("7.3.4", desc="close 1000 with reason -> close 1000")
def _(ctx):
    expect_clean_close(ctx.connect(), 1000, b"Hello World!", accept=[1000])


@case("7.3.5", desc="close 1000 with a 123-byte reason (max) -> close 1000")
def _(ctx):
    expect_clean_close(ctx.connect(), 1000, b"*" * 123, accept=[1000])


@case("7.3.6", desc="close 1000 with a 124-byte reason (payload 126) -> 1002 (§5.5)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"*" * 124))
    expect_failure(c, 1002)


@case("7.5.1", desc="close reason that is not UTF-8 -> 1007 (§5.5.1)")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_CLOSE, struct.pack("!H", 1000) + INVALID_PAYLOAD))
    expect_failure(c, 1007)


def valid_code(code):
    def run(ctx):
        got = expect_clean_close(ctx.connect(), code)
        if got != code:
            raise NonStrict(f"answered close {code} with {got} (RFC 6455 §5.5.1: typically "
                            "echoes the code; Autobahn accepts 1000)")
    return run


for _i, _code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999,
                            4000, 4999], start=1):
    add_case(f"7.7.{_i}", valid_code(_code), desc=f"close with valid code {_code} -> echoed")


def invalid_code(code):
    def run(ctx):
        c = ctx.connect()
        send_lenient(c, encode_frame(OP_CLOSE, struct.pack("!H", code)))
        expect_failure(c, 1002)
    return run


for _i, _code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], start=1):
    add_case(f"7.9.{_i}", invalid_code(_code), desc=f"close with invalid code {_code} -> 1002")
add_case("7.9.S.1015", invalid_code(1015), desc="close with code 1015 (never on the wire) -> 1002")
add_case("7.9.S.1012", lambda ctx: valid_code(1012)(ctx),
         desc="close with 1012 (IANA: service restart) -> accepted")
add_case("7.13.1", invalid_code(5000), desc="close with code 5000 -> 1002 (contract; Autobahn: "
                                           "informational)")
add_case("7.13.2", invalid_code(65535), desc="close with code 65535 -> 1002 (contract)")


# --------------------------------------------------------------------------------------------
# 9.x Limits/performance


def text_block(n):
    base = b"BAsd7&jh23"
    return (base * (n // len(base) + 1))[:n]


def big_echo(opcode, n, fragment=None, chop=None):
    def run(ctx):
        data = text_block(n) if opcode == OP_TEXT else (bytes(range(256)) * (n // 256 + 1))[:n]
        timeout = 10 + n / MIB * 2
        c = ctx.connect(timeout=timeout)
        c.send_message(opcode, data, fragment=fragment, chop=chop)
        expect_echo(c, opcode, data, timeout=timeout)
        expect_clean_close(c)
    return run


SIZES_9 = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB]
for _sub, _op in [(1, OP_TEXT), (2, OP_BINARY)]:
    for _i, _n in enumerate(SIZES_9, start=1):
        add_case(f"9.{_sub}.{_i}", big_echo(_op, _n),
                 desc=f"{'text' if _op == OP_TEXT else 'binary'} message of {_n // KIB} KiB")
for _sub, _op in [(3, OP_TEXT), (4, OP_BINARY)]:
    for _i, _frag in enumerate([64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB,
                                4 * MIB], start=1):
        add_case(f"9.{_sub}.{_i}", big_echo(_op, 4 * MIB, fragment=_frag),
                 desc=f"4 MiB {'text' if _op == OP_TEXT else 'binary'} in {_frag}-byte fragments")
for _sub, _op in [(5, OP_TEXT), (6, OP_BINARY)]:
    for _i, _chop in enumerate([64, 128, 256, 512, 1024, 2048], start=1):
        add_case(f"9.{_sub}.{_i}", big_echo(_op, MIB, chop=_chop),
                 desc=f"1 MiB {'text' if _op == OP_TEXT else 'binary'} in {_chop}-byte chops")


def round_trips(opcode, n, count=1000):
    def run(ctx):
        c = ctx.connect()
        data = text_block(n) if opcode == OP_TEXT else os.urandom(n)
        for _ in range(count):
            c.send_frame(opcode, data)
            expect_echo(c, opcode, data)
        expect_clean_close(c)
    return run


for _sub, _op in [(7, OP_TEXT), (8, OP_BINARY)]:
    for _i, _n in enumerate([0, 16, 64, 256, 1024, 4096], start=1):
        add_case(f"9.{_sub}.{_i}", round_trips(_op, _n),
                 desc=f"1000 {'text' if _op == OP_TEXT else 'binary'} round trips of {_n} B")

for _op, _name in [(OP_TEXT, "text"), (OP_BINARY, "binary")]:
    for _frag in [64 * KIB, 4 * KIB]:
        add_case(f"9.S.16M.{_name}.{_frag // KIB}K", big_echo(_op, 16 * MIB, fragment=_frag),
                 desc=f"16 MiB {_name} in {_frag // KIB} KiB fragments")


@case("9.S.L.1", server="limit", desc="message of exactly --max-message-size (1 MiB) -> echo")
def _(ctx):
    for op in (OP_TEXT, OP_BINARY):
        c = ctx.connect()
        data = text_block(MIB)
        c.send_frame(op, data)
        expect_echo(c, op, data, timeout=10)
        expect_clean_close(c)


@case("9.S.L.2", server="limit", desc="single frame of 1 MiB + 1 -> 1009")
def _(ctx):
    c = ctx.connect()
    send_lenient(c, encode_frame(OP_BINARY, b"\x00" * (MIB + 1)))
    expect_failure(c, 1009)


@case("9.S.L.3", server="limit", desc="frame header declaring 2 MiB -> 1009 before the payload "
                                      "arrives (fail fast on the length)")
def _(ctx):
    c = ctx.connect()
    hdr_and_part = encode_frame(OP_BINARY, b"\x00" * (64 * KIB), declared_length=2 * MIB)
    send_lenient(c, hdr_and_part)
    expect_failure(c, 1009, timeout=3)


@case("9.S.L.4", server="limit", desc="3 fragments of 512 KiB (1.5 MiB total) -> 1009")
def _(ctx):
    c = ctx.connect()
    piece = b"a" * (512 * KIB)
    send_lenient(c, frames((OP_TEXT, piece, False), (OP_CONT, piece, False),
                           (OP_CONT, piece, True)))
    expect_failure(c, 1009)


@case("9.S.L.5", server="limit", desc="64-bit length with the most significant bit set -> "
                                      "1002 or 1009 (§5.2: MSB MUST be 0)")
def _(ctx):
    c = ctx.connect()
    raw = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63) + os.urandom(4) + b"\x00" * 16
    send_lenient(c, raw)
    expect_failure(c, [1002, 1009])


# --------------------------------------------------------------------------------------------
# 10.x Misc


@case("10.1.1", desc="64 KiB text in 1300-byte fragments -> echo")
def _(ctx):
    echo_and_close(ctx, OP_TEXT, text_block(65536), fragment=1300)


# --------------------------------------------------------------------------------------------
# 12.x / 13.x permessage-deflate (RFC 7692)

DEFLATE_SIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 131072, 262144]


def sample_text(n, seed):
    rnd = random.Random(seed)
    words = ["switchboard", "channel", "presence", "offset", "epoch", "publish", "subscribe",
             "lobby", "message", "hello", "world", "κόσμε", "данные", "数据", "🎉"]
    out = []
    size = 0
    while size < n:
        rec = json.dumps({"id": rnd.randrange(1 << 30), "ch": rnd.choice(words) + ":" +
                          rnd.choice(words), "text": " ".join(rnd.choice(words)
                                                             for _ in range(rnd.randrange(3, 12))),
                          "n": rnd.random()}, ensure_ascii=False) + "\n"
        out.append(rec)
        size += len(rec.encode())
    data = "".join(out).encode()[:n]
    while True:  # cut on a code-point boundary
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            data = data[:-1]


def sample_binary(n, seed):
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        if rnd.random() < 0.5:
            out += bytes([rnd.randrange(256)]) * rnd.randrange(1, 64)
        else:
            out += rnd.randbytes(rnd.randrange(1, 64))
    return bytes(out[:n])


def deflate_session(offer, size, count, opcode=OP_TEXT, fragment=None, server="main",
                    seed=0):
    def run(ctx):
        c = ctx.connect(server, extensions=offer, timeout=15)
        if c.deflate is None:
            raise CaseFailure(f"server declined permessage-deflate offer {offer!r} "
                              f"(response: {c.response.header('sec-websocket-extensions')!r})")
        for i in range(count):
            data = (sample_text if opcode == OP_TEXT else sample_binary)(size, seed * 1000 + i)
            c.send_message(opcode, data, compress=True, fragment=fragment)
            m = expect_echo(c, opcode, data, timeout=15)
            ctx.stats["deflate_msgs"] += 1
            ctx.stats["deflate_compressed"] += int(m.compressed)
        expect_clean_close(c)
    return run


def count_for(size):
    return 20 if size <= 4096 else 8 if size <= 65536 else 3


OFFERS_13 = [
    "permessage-deflate",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
] + [f"permessage-deflate; server_max_window_bits={b}" for b in range(9, 16)] + [
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=9",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
    # Several offers in preference order (Autobahn 13.7 style).
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10, "
    "permessage-deflate; server_no_context_takeover, permessage-deflate",
]

# 12.x: the browser-style offer, text and binary data, whole and auto-fragmented.
_BROWSER = "permessage-deflate; client_max_window_bits"
for _i, _size in enumerate(DEFLATE_SIZES, start=1):
    add_case(f"12.1.{_i}", deflate_session(_BROWSER, _size, count_for(_size), seed=_i),
             desc=f"{count_for(_size)} compressed text messages of {_size} B")
    add_case(f"12.2.{_i}", deflate_session(_BROWSER, _size, count_for(_size), OP_BINARY,
                                           seed=100 + _i),
             desc=f"{count_for(_size)} compressed binary messages of {_size} B")
for _i, (_size, _frag) in enumerate([(8192, 256), (65536, 256), (131072, 1024),
                                     (131072, 4096), (262144, 32768)], start=1):
    add_case(f"12.3.{_i}", deflate_session(_BROWSER, _size, 3, fragment=_frag, seed=200 + _i),
             desc=f"compressed text of {_size} B auto-fragmented to {_frag} B")
for _j, _offer in enumerate(OFFERS_13, start=1):
    for _i, _size in enumerate(DEFLATE_SIZES, start=1):
        add_case(f"13.{_j}.{_i}", deflate_session(_offer, _size, count_for(_size),
                                                  seed=1000 * _j + _i),
                 desc=f"offer '{_offer}': {count_for(_size)} messages of {_size} B")


@case("12.S.1", desc="uncompressed message (RSV1=0) on a deflate connection -> echoed")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    if c.deflate is None:
        raise CaseFailure("deflate not negotiated")
    c.send_message(OP_TEXT, b"plain text", compress=False)
    expect_echo(c, OP_TEXT, b"plain text")
    c.send_message(OP_TEXT, b"compressed text", compress=True)
    expect_echo(c, OP_TEXT, b"compressed text")
    expect_clean_close(c)


@case("12.S.2", server="limit", desc="zip bomb: 16 MiB of zeros compressed to ~16 KiB on a "
                                     "1 MiB server -> 1009")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate", timeout=10)
    if c.deflate is None:
        raise CaseFailure("deflate not negotiated")
    bomb = c.deflate_message(b"\x00" * (16 * MIB))
    send_lenient(c, encode_frame(OP_BINARY, bomb, rsv=4))
    expect_failure(c, 1009, timeout=10)


@case("12.S.3", server="limit", desc="compressed message inflating to exactly 1 MiB -> echo")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate", timeout=10)
    data = text_block(MIB)
    c.send_message(OP_TEXT, data, compress=True)
    expect_echo(c, OP_TEXT, data, timeout=10)
    expect_clean_close(c)


@case("12.S.4", desc="RSV1 frame that is not valid deflate data -> 1007 or 1002")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    send_lenient(c, encode_frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=4))
    expect_failure(c, [1002, 1007])


@case("12.S.5", desc="compressed text inflating to invalid UTF-8 -> 1007")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    send_lenient(c, encode_frame(OP_TEXT, c.deflate_message(INVALID_PAYLOAD), rsv=4))
    expect_failure(c, 1007)


@case("3.S.1", desc="deflate negotiated: RSV2 still -> 1002")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    send_lenient(c, encode_frame(OP_TEXT, b"x", rsv=2))
    expect_failure(c, 1002)


@case("3.S.2", desc="deflate negotiated: RSV1 on a continuation frame -> 1002 (RFC 7692 §6.1)")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    send_lenient(c, frames((OP_TEXT, b"abc", False), (OP_CONT, b"def", True, 4)))
    expect_failure(c, 1002)


@case("3.S.3", desc="deflate negotiated: RSV1 on a ping -> 1002 (RFC 7692 §6.1)")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate")
    send_lenient(c, encode_frame(OP_PING, b"", rsv=4))
    expect_failure(c, 1002)


@case("13.S.1", server="policy", desc="--no-compression: offer declined, RSV1 -> 1002")
def _(ctx):
    c = ctx.connect(extensions="permessage-deflate; client_max_window_bits",
                    origin="https://a.example")
    if c.response.header("sec-websocket-extensions"):
        raise CaseFailure(f"extension accepted despite --no-compression: "
                          f"{c.response.header('sec-websocket-extensions')!r}")
    c.send_frame(OP_TEXT, b"ok")
    expect_echo(c, OP_TEXT, b"ok")
    send_lenient(c, encode_frame(OP_TEXT, b"x", rsv=4))
    expect_failure(c, 1002)


def invalid_offer(offer):
    """RFC 7692 §7.1: an offer with an invalid parameter MUST be declined; failing the whole
    handshake (400) is also accepted. Accepting it is the failure."""
    def run(ctx):
        c = ctx.raw()
        resp = c.handshake(extensions=offer, expect_status=None)
        if resp.status == 101:
            ext = resp.header("sec-websocket-extensions")
            if ext:
                raise CaseFailure(f"accepted invalid offer {offer!r}: {ext!r}")
            c.send_frame(OP_TEXT, b"ok")
            expect_echo(c, OP_TEXT, b"ok")
            expect_clean_close(c)
        elif resp.status != 400:
            raise CaseFailure(f"invalid offer {offer!r}: status {resp.status}, expected 101 "
                              f"without the extension, or 400")
    return run


for _i, _offer in enumerate([
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
], start=1):
    add_case(f"13.S.2.{_i}", invalid_offer(_offer), desc=f"invalid offer {_offer!r} declined")


# --------------------------------------------------------------------------------------------
# H.x Handshake (RFC 6455 §4, Switchboard's contract)

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(path="/echo", method="GET", version="HTTP/1.1", headers=None, drop=(), host=None):
    base = {"Host": host or "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": GOOD_KEY, "Sec-WebSocket-Version": "13"}
    for d in drop:
        base.pop(d, None)
    base.update(headers or {})
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in base.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rejection(ctx, req, status, headers=(), server=None, json_body=True, chop=None):
    s = ctx.servers.get(server or ctx.server_name)
    resp, c = http_exchange(s.host, s.port, req, chop=chop)
    ctx.clients.append(c)
    if resp is None:
        raise CaseFailure(f"connection closed without a response; expected {status}")
    if resp.status != status:
        raise CaseFailure(f"status {resp.status} {resp.reason}, expected {status}; body "
                          f"{resp.body[:120]!r}")
    for name, check in headers:
        v = resp.header(name)
        if v is None or not check(v):
            raise CaseFailure(f"{status} response header {name}: {v!r} is wrong")
    if json_body:
        try:
            body = json.loads(resp.body)
        except ValueError:
            raise CaseFailure(f"{status} body is not JSON: {resp.body[:120]!r}") from None
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and
                isinstance(body.get("message"), str)):
            raise CaseFailure(f"{status} body lacks string 'error'/'message': {body!r}")
    return resp


def has_token(token):
    return lambda v: token.lower() in [t.strip().lower() for t in v.split(",")]


@case("H.1", desc="/healthz -> 200")
def _(ctx):
    s = ctx.server
    resp, c = http_exchange(s.host, s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    ctx.clients.append(c)
    if resp is None or resp.status != 200:
        raise CaseFailure(f"/healthz: {resp.status if resp else 'no response'}")


@case("H.2", desc="POST upgrade -> 405 with Allow: GET (RFC 9110 §15.5.6)")
def _(ctx):
    rejection(ctx, request(method="POST", headers={"Content-Length": "0"}), 405,
              [("allow", has_token("GET"))])


@case("H.3", desc="missing Sec-WebSocket-Key -> 400 (RFC 6455 §4.2.1)")
def _(ctx):
    rejection(ctx, request(drop=["Sec-WebSocket-Key"]), 400)


for _i, _key in enumerate(["abc", base64.b64encode(b"x" * 15).decode(),
                           base64.b64encode(b"x" * 17).decode(), "dGhlIHNhbXBsZSBub25jZQ",
                           "!!!!!!!!!!!!!!!!!!!!!!=="], start=1):
    add_case(f"H.4.{_i}", lambda ctx, k=_key: rejection(ctx, request(
        headers={"Sec-WebSocket-Key": k}), 400),
        desc=f"Sec-WebSocket-Key {_key!r} (not base64 of 16 bytes) -> 400")


@case("H.5", desc="Connection without the upgrade token -> 400 (RFC 6455 §4.2.1)")
def _(ctx):
    rejection(ctx, request(headers={"Connection": "keep-alive"}), 400)


@case("H.6", desc="HTTP/1.0 upgrade request -> 400 (RFC 6455 §4.2.1: HTTP/1.1 or higher)")
def _(ctx):
    rejection(ctx, request(version="HTTP/1.0"), 400)


@case("H.7", desc="Sec-WebSocket-Version: 8 -> 426 with Sec-WebSocket-Version: 13 (§4.4)")
def _(ctx):
    rejection(ctx, request(headers={"Sec-WebSocket-Version": "8"}), 426,
              [("sec-websocket-version", has_token("13")), ("upgrade", has_token("websocket"))])


@case("H.7.S", desc="Sec-WebSocket-Version missing -> 426 (+ version header) or 400")
def _(ctx):
    s = ctx.server
    resp, c = http_exchange(s.host, s.port, request(drop=["Sec-WebSocket-Version"]))
    ctx.clients.append(c)
    if resp is None or resp.status not in (400, 426):
        raise CaseFailure(f"got {resp.status if resp else 'no response'}")
    if resp.status == 426 and not has_token("13")(resp.header("sec-websocket-version") or ""):
        raise CaseFailure("426 without Sec-WebSocket-Version: 13")


@case("H.8", desc="plain GET /echo (no Upgrade) -> 426 with Sec-WebSocket-Version: 13 and "
                  "Upgrade: websocket (RFC 9110 §15.5.22)")
def _(ctx):
    rejection(ctx, b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426,
              [("sec-websocket-version", has_token("13")), ("upgrade", has_token("websocket"))])


@case("H.9", desc="upgrade on an unknown path -> 404")
def _(ctx):
    rejection(ctx, request(path="/no-such-endpoint"), 404)


@case("H.10", desc="'Connection: keep-alive, Upgrade', 'Upgrade: WebSocket', lower-case "
                   "header names -> 101")
def _(ctx):
    s = ctx.server
    req = (f"GET /echo HTTP/1.1\r\nhost: 127.0.0.1:{s.port}\r\nupgrade: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {GOOD_KEY}\r\n"
           f"sec-websocket-version: 13\r\n\r\n").encode()
    c = ctx.raw()
    c.send_raw(req)
    resp = c.read_http_response(Deadline(5))
    if resp.status != 101:
        raise CaseFailure(f"status {resp.status}, expected 101")
    if resp.header("sec-websocket-accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=":
        raise CaseFailure(f"Sec-WebSocket-Accept {resp.header('sec-websocket-accept')!r} "
                          "(RFC 6455 §1.3 example value expected)")
    c.send_frame(OP_TEXT, b"hi")
    expect_echo(c, OP_TEXT, b"hi")
    expect_clean_close(c)


@case("H.11.1", desc="default subprotocols: offering 'echo' selects 'echo'")
def _(ctx):
    c = ctx.connect(protocols=["echo"])
    if c.subprotocol != "echo":
        raise CaseFailure(f"selected {c.subprotocol!r}")
    expect_clean_close(c)


@case("H.11.2", desc="no subprotocol offered -> 101 without Sec-WebSocket-Protocol (§4.2.2)")
def _(ctx):
    c = ctx.connect()
    if c.response.header("sec-websocket-protocol") is not None:
        raise CaseFailure("server sent Sec-WebSocket-Protocol although the client offered none")
    expect_clean_close(c)


@case("H.11.3", server="policy", desc="--subprotocols echo,chat: offering 'chat' -> 'chat'")
def _(ctx):
    c = ctx.connect(protocols=["chat"], origin="https://a.example")
    if c.subprotocol != "chat":
        raise CaseFailure(f"selected {c.subprotocol!r}")
    expect_clean_close(c)


@case("H.11.4", server="policy", desc="offering 'foo, chat' -> 'chat' (one supported value)")
def _(ctx):
    c = ctx.connect(protocols=["foo", "chat"], origin="https://a.example")
    if c.subprotocol != "chat":
        raise CaseFailure(f"selected {c.subprotocol!r}")
    expect_clean_close(c)


@case("H.11.5", server="policy", desc="offering only 'foo' -> no subprotocol selected (101 "
                                     "without the header) or a 4xx rejection")
def _(ctx):
    c = ctx.raw()
    resp = c.handshake(protocols=["foo"], origin="https://a.example", expect_status=None)
    if resp.status == 101:
        if resp.header("sec-websocket-protocol") is not None:
            raise CaseFailure(f"selected {resp.header('sec-websocket-protocol')!r}")
        expect_clean_close(c)
    elif not 400 <= resp.status < 500:
        raise CaseFailure(f"status {resp.status}")


@case("H.11.6", server="policy", desc="offering 'echo, chat' selects exactly one of them")
def _(ctx):
    c = ctx.connect(protocols=["echo", "chat"], origin="https://a.example")
    if c.subprotocol not in ("echo", "chat"):
        raise CaseFailure(f"selected {c.subprotocol!r}")
    expect_clean_close(c)


for _i, _origin in enumerate(["https://a.example", "https://b.example"], start=1):
    add_case(f"H.12.{_i}", lambda ctx, o=_origin: expect_clean_close(
        ctx.connect(origin=o)), server="policy", desc=f"allowed Origin {_origin} -> 101")
for _i, _origin in enumerate(["https://evil.example", "https://a.example.evil.example",
                              "http://a.example", "null"], start=3):
    add_case(f"H.12.{_i}", lambda ctx, o=_origin: rejection(
        ctx, request(headers={"Origin": o}), 403), server="policy",
        desc=f"Origin {_origin} not in --allowed-origins -> 403")


@case("H.13.1", desc="64 KiB of request headers (many lines) -> 431")
def _(ctx):
    pad = {f"X-Pad-{i}": "p" * 1000 for i in range(64)}
    rejection(ctx, request(headers=pad), 431)


@case("H.13.2", desc="one 64 KiB header line -> 431")
def _(ctx):
    rejection(ctx, request(headers={"X-Big": "b" * 65536}), 431)


@case("H.14.1", server="policy", desc="slowloris: request trickled 1 byte / 100 ms -> closed "
                                     "by --handshake-timeout 1s")
def _(ctx):
    c = ctx.raw()
    start = time.monotonic()
    req = request(headers={"Origin": "https://a.example"})
    deadline = Deadline(4.0)
    for b in req:
        if deadline.expired():
            raise CaseFailure("still open 4 s after connecting (handshake timeout is 1 s)")
        try:
            c.sock.sendall(bytes([b]))
        except OSError:
            break
        c.sock.settimeout(0.1)  # the trickle's pace; also notices the close meanwhile
        try:
            chunk = c.sock.recv(4096)
            if not chunk:
                break
            c.buf += chunk
            if c.buf.startswith(b"HTTP/1.1 101"):
                raise CaseFailure("handshake completed while trickling?")
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
    else:
        # Whole request sent: must not be upgraded (too late), must be closed soon.
        pass
    try:
        while True:
            c._fill(deadline)
    except ConnectionClosed:
        pass
    except DeadlineExceeded:
        raise CaseFailure("connection still open 4 s after connecting") from None
    took = time.monotonic() - start
    if b"101 Switching" in c.buf:
        raise CaseFailure("upgraded a request that took longer than the handshake timeout")
    if took < 0.7:
        raise CaseFailure(f"closed after {took:.2f}s, before the 1 s timeout")


@case("H.14.2", server="policy", desc="silent connection -> closed by --handshake-timeout 1s")
def _(ctx):
    c = ctx.raw()
    start = time.monotonic()
    try:
        while True:
            c._fill(Deadline(4.0 - (time.monotonic() - start)))
    except ConnectionClosed:
        pass
    except DeadlineExceeded:
        raise CaseFailure("silent connection still open after 4 s") from None
    took = time.monotonic() - start
    if took < 0.7:
        raise CaseFailure(f"closed after {took:.2f}s, before the 1 s timeout")


@case("H.14.3", server="policy", desc="handshake split over 300 ms (inside the timeout) -> 101; "
                                     "the upgraded connection outlives the handshake timeout")
def _(ctx):
    c = ctx.raw()
    req = request(headers={"Origin": "https://a.example"})
    c.send_raw(req[:20])
    time.sleep(0.3)  # traffic shape, not synchronization
    c.send_raw(req[20:])
    resp = c.read_http_response(Deadline(5))
    if resp.status != 101:
        raise CaseFailure(f"status {resp.status}")
    c.deflate = None
    # Nothing may arrive (and the connection must not close) for 1.5 s past the timeout.
    try:
        f = c.recv_frame(timeout=1.5)
        raise CaseFailure(f"unexpected {f.describe()}")
    except DeadlineExceeded:
        pass
    except ConnectionClosed as e:
        raise CaseFailure(f"upgraded connection closed by the handshake timer ({e.how})") from None
    c.send_frame(OP_TEXT, b"still here")
    expect_echo(c, OP_TEXT, b"still here")
    expect_clean_close(c)


@case("H.15.1", desc="frames pipelined in the same write as the handshake request -> echoed")
def _(ctx):
    c = ctx.raw()
    c.handshake(trailing=encode_frame(OP_TEXT, b"pipelined") + encode_frame(OP_BINARY, b"\x01"))
    expect_echo(c, OP_TEXT, b"pipelined")
    expect_echo(c, OP_BINARY, b"\x01")
    expect_clean_close(c)


@case("H.15.2", desc="garbage pipelined after the handshake request -> 101, then close 1002")
def _(ctx):
    c = ctx.raw()
    c.handshake(trailing=b"GARBAGE\r\nNOT A FRAME\r\n\r\n")
    expect_failure(c, 1002)


@case("H.17.1", server="keepalive", desc="--ping-interval 1s: server pings; a peer that "
                                        "answers stays open past --idle-timeout 2s")
def _(ctx):
    c = ctx.connect()
    start = time.monotonic()
    pings = 0
    deadline = Deadline(4.0)
    while not deadline.expired():
        try:
            f = c.recv_frame(deadline=deadline)
        except DeadlineExceeded:
            break
        except ConnectionClosed as e:
            raise CaseFailure(f"closed ({e.how}) after {time.monotonic() - start:.1f}s although "
                              f"every ping was answered") from None
        if f.opcode == OP_PING:
            pings += 1
            c.send_frame(OP_PONG, f.payload)
        elif f.opcode == OP_CLOSE:
            raise CaseFailure(f"close {f.close_code()} after {time.monotonic() - start:.1f}s "
                              f"although every ping was answered")
        else:
            raise CaseFailure(f"unexpected {f.describe()}")
    if pings < 2:
        raise CaseFailure(f"{pings} ping(s) in 4 s with --ping-interval 1s")
    c.send_frame(OP_TEXT, b"alive")
    expect_echo(c, OP_TEXT, b"alive")
    expect_clean_close(c)


@case("H.17.2", server="keepalive", desc="a peer that never answers pings is closed after "
                                        "--idle-timeout 2s (close frame or TCP close)")
def _(ctx):
    c = ctx.connect()
    start = time.monotonic()
    deadline = Deadline(6.0)
    while True:
        try:
            f = c.recv_frame(deadline=deadline)
        except DeadlineExceeded:
            raise CaseFailure("silent peer still connected 6 s after the handshake") from None
        except ConnectionClosed:
            break
        if f.opcode == OP_CLOSE:
            c.try_send_raw(encode_frame(OP_CLOSE, f.payload[:2]))
            break
        if f.opcode != OP_PING:
            raise CaseFailure(f"unexpected {f.describe()}")
    took = time.monotonic() - start
    if took < 1.5:
        raise CaseFailure(f"closed after {took:.1f}s, before the 2 s idle timeout")


@case("H.16", desc="SIGTERM: every WebSocket gets close 1001, process exits 0 (runs last)")
def _(ctx):
    s = ctx.servers.get("main")
    clients = [ctx.connect("main") for _ in range(3)]
    for c in clients:
        c.send_frame(OP_TEXT, b"before shutdown")
        expect_echo(c, OP_TEXT, b"before shutdown")
    s.signal(signal.SIGTERM)
    for c in clients:
        events, close = collect(c, timeout=10)
        if close is None or close.close_code() != 1001:
            raise CaseFailure(f"expected close 1001, got "
                              f"{close.close_code() if close else 'TCP close without close'}")
        finish_after_close(c, close)
    rc = s.wait_exit(10)
    if rc is None:
        raise CaseFailure("process still running 10 s after SIGTERM")
    if rc != 0:
        raise CaseFailure(f"exit status {rc} after SIGTERM, expected 0")


# --------------------------------------------------------------------------------------------
# Runner


def _terminate(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, _terminate)  # so `finally` stops the servers we started
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(ap, required=False)
    ap.add_argument("--only", action="append", default=[],
                    help="run only cases whose id starts with this prefix (repeatable)")
    ap.add_argument("--skip", action="append", default=[], help="skip ids with this prefix")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for cid, server, desc, _ in CASES:
            print(f"{cid:<16} [{server}] {desc}")
        return 0
    if not (args.server or args.reference_ws or args.reference_websockets):
        ap.error("one of --server, --reference-ws, --reference-websockets is required")
    target = target_from_args(args)
    skip = list(args.skip)
    if target.kind == "reference-websockets":
        # websockets is only a protocol reference; the handshake contract is ws-emulated.
        skip += ["H.", "13.S.1"]
    selected = [c for c in CASES
                if (not args.only or any(c[0].startswith(p) for p in args.only))
                and not any(c[0].startswith(p) for p in skip)]
    # SIGTERM stops the main server: run it last.
    selected.sort(key=lambda c: c[0] == "H.16")
    deviations = REFERENCE_DEVIATIONS.get(target.kind, {})
    rep = Reporter(f"conformance/test_autobahn_cases ({target.kind})")
    servers = Servers(target)
    stats = {"deflate_msgs": 0, "deflate_compressed": 0}
    non_strict = 0
    try:
        for cid, server, desc, fn in selected:
            ctx = Ctx(servers, server, target)
            ctx.stats = stats
            t0 = time.monotonic()
            ok, status, detail = True, "PASS", ""
            try:
                fn(ctx)
            except NonStrict as e:
                status, detail = "NON-STRICT", str(e)
                non_strict += 1
            except (CaseFailure, HarnessError, OSError, AssertionError) as e:
                ok, status, detail = False, "FAIL", f"{e.__class__.__name__}: {e}"
            except Exception as e:  # a bug in the case itself must be loud too
                ok, status = False, "FAIL"
                detail = f"{e.__class__.__name__}: {e}\n{traceback.format_exc()}"
            finally:
                ctx.close_all()
            if cid != "H.16":
                dead = servers.check_alive(server)
                if dead:
                    ok, status, detail = False, "FAIL", dead + " | " + detail
            if cid in deviations:
                if ok and status == "PASS":
                    ok, status = False, "XPASS"
                    detail = f"expected reference deviation did not happen: {deviations[cid]}"
                elif not ok:
                    ok, status = True, "XFAIL"
                    detail = f"known reference deviation ({deviations[cid]}): {detail}"
            took = time.monotonic() - t0
            rep.record(cid, ok, (detail + f" [{took:.2f}s]") if detail or took > 2 else "",
                       status=status)
    finally:
        servers.close()
    if stats["deflate_msgs"]:
        rep.note(f"server compressed {stats['deflate_compressed']} of {stats['deflate_msgs']} "
                 "echoes on deflate connections")
    if non_strict:
        rep.note(f"{non_strict} case(s) NON-STRICT (allowed by the RFC, counted as passed)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
