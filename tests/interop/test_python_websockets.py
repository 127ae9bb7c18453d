#!/usr/bin/python3
"""Interop: Debian's python3-websockets client against /echo.

Text and binary at 0 B .. 16 MiB, whole and fragmented (websockets sends an iterable as one
fragmented message), with and without permessage-deflate; subprotocol and close codes seen
by the client. Prints one line per case and `N passed, M failed`; exit 0 only if all pass.

  /usr/bin/python3 test_python_websockets.py --server build/release/switchboard
  /usr/bin/python3 test_python_websockets.py --reference-ws
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Reporter, add_target_arguments, target_from_args  # noqa: E402

try:
    import websockets
    from websockets.extensions.permessage_deflate import PerMessageDeflate
except ImportError:
    print("python3-websockets is not installed: apt-get install -y python3-websockets")
    print("0 passed, 1 failed")
    sys.exit(1)

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
MAX = 16 << 20


def text_of(n: int) -> str:
    """A str whose UTF-8 encoding is exactly n bytes, mixing 1- to 4-byte code points."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 = 10 bytes
    s = unit * (n // 10)
    rest = n - len(s.encode())
    return s + "b" * rest


def binary_of(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def split_str(s: str, size: int) -> list[str]:
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


async def echo_case(url, data, compression, fragment, timeout):
    async with websockets.connect(url, compression="deflate" if compression else None,
                                  max_size=None, max_queue=None, subprotocols=["echo"],
                                  open_timeout=10, close_timeout=10, ping_interval=None) as ws:
        negotiated = any(isinstance(e, PerMessageDeflate) for e in ws.extensions)
        if negotiated != compression:
            raise AssertionError(f"permessage-deflate negotiated={negotiated}, offered="
                                 f"{compression} (response: "
                                 f"{ws.response_headers.get('Sec-WebSocket-Extensions')!r})")
        if ws.subprotocol != "echo":
            raise AssertionError(f"subprotocol {ws.subprotocol!r}, expected 'echo'")
        if fragment:
            pieces = (split_str(data, fragment) if isinstance(data, str)
                      else [data[i:i + fragment] for i in range(0, len(data), fragment)] or [b""])
            await asyncio.wait_for(ws.send(pieces), timeout)
        else:
            await asyncio.wait_for(ws.send(data), timeout)
        got = await asyncio.wait_for(ws.recv(), timeout)
        if type(got) is not type(data):
            raise AssertionError(f"echo type {type(got).__name__}, sent {type(data).__name__}")
        if got != data:
            raise AssertionError(f"echo differs: {len(got)} vs {len(data)} "
                                 f"{'chars' if isinstance(data, str) else 'bytes'}")
        await ws.close(1000, "bye")
    if ws.close_code != 1000:
        raise AssertionError(f"close code seen {ws.close_code}, expected 1000")


async def close_code_case(url, code, reason):
    """The server echoes our close code (or answers 1000); websockets reports what it got."""
    async with websockets.connect(url, open_timeout=10, close_timeout=10) as ws:
        await ws.close(code, reason)
    if ws.close_code not in (code, 1000):
        raise AssertionError(f"closed with {code}, server answered {ws.close_code}")


async def too_big_case(url):
    """A message over --max-message-size (16 MiB here) must be failed with 1009."""
    async with websockets.connect(url, max_size=None, open_timeout=10, close_timeout=10,
                                  compression=None, ping_interval=None) as ws:
        try:
            await asyncio.wait_for(ws.send(b"\x00" * (MAX + 1)), 30)
            await asyncio.wait_for(ws.recv(), 30)
            raise AssertionError("a 16 MiB + 1 message was echoed; expected close 1009")
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            if code != 1009:
                raise AssertionError(f"close code seen {code}, expected 1009") from None


async def run_all(server, rep: Reporter):
    url = f"ws://{server.host}:{server.port}/echo"
    cases = []
    for compression in (False, True):
        for kind in ("text", "binary"):
            for n in SIZES:
                data = text_of(n) if kind == "text" else binary_of(n)
                cases.append((f"{kind}/{n}B/{'deflate' if compression else 'plain'}",
                              data, compression, None))
            for n, frag in [(126, 10), (65536, 4096), (1 << 20, 65536), (16 << 20, 1 << 20)]:
                data = text_of(n) if kind == "text" else binary_of(n)
                cases.append((f"{kind}/{n}B/fragmented-{frag}/"
                               f"{'deflate' if compression else 'plain'}", data, compression,
                               frag))
    for cid, data, compression, frag in cases:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(echo_case(url, data, compression, frag, 60), 90)
            rep.record(cid, True, f"[{time.monotonic() - t0:.2f}s]")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            rep.record(cid, False, f"{e.__class__.__name__}: {e}")
    for code in (1000, 1001, 3000, 4999):
        cid = f"close/{code}"
        try:
            await asyncio.wait_for(close_code_case(url, code, "bye"), 20)
            rep.record(cid, True)
        except Exception as e:  # noqa: BLE001
            rep.record(cid, False, f"{e.__class__.__name__}: {e}")
    try:
        await asyncio.wait_for(too_big_case(url), 60)
        rep.record("close/1009-too-big", True)
    except Exception as e:  # noqa: BLE001
        rep.record("close/1009-too-big", False, f"{e.__class__.__name__}: {e}")


def _terminate(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, _terminate)  # so `finally` stops the server we started
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(ap)
    args = ap.parse_args()
    target = target_from_args(args)
    rep = Reporter(f"interop/test_python_websockets ({target.kind}, websockets "
                   f"{websockets.__version__})")
    server = target.start("--max-message-size", "16MiB", name="py-interop")
    try:
        asyncio.run(run_all(server, rep))
        if not server.alive():
            rep.record("server-alive", False, f"server exited: {server.log_tail(800)}")
    finally:
        server.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
