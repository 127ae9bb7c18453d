"""Shared pieces of the regression suites (tests/integration/test_lifetimes.py,
test_sessions.py, test_server_edges.py): one server per case, a clear report when a server
dies under a case (a crash is a failure of that case, never a hang), RSS sampling, raw
sockets that never read, and small HTTP helpers.

Built on messaging.py and harness.py; waits on events with deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Deadline, HarnessError, Reporter, WSClient  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, Server, check, metrics,  # noqa: E402
                       raw_ws, short)

DISCONNECTS = "switchboard_slow_consumer_disconnects_total"
BACKLOG = "switchboard_outbound_backlog_bytes"
WS_GAUGE = 'switchboard_connections{transport="websocket"}'


def sanitized(binary: str) -> bool:
    """True for an AddressSanitizer build (its RSS carries shadow memory and redzones)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def small_asan_quarantine() -> None:
    """Under AddressSanitizer freed blocks wait in a quarantine (256 MiB by default) before
    reuse, so RSS would measure the sanitizer, not the server: keep it small for the servers
    this process starts (no effect on an uninstrumented binary)."""
    os.environ["ASAN_OPTIONS"] = (
        os.environ.get("ASAN_OPTIONS", "") +
        ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256").lstrip(":")


def server_log(server: Server) -> str:
    """The whole stderr log of a server so far."""
    try:
        with open(server.proc.log.name, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def death_note(server: Server) -> str | None:
    """None while the process runs; else how it ended, with the sanitizer's verdict if any."""
    rc = server.proc.proc.poll()
    if rc is None:
        return None
    if rc < 0:
        try:
            how = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"killed by signal {-rc}"
    else:
        how = f"exited with code {rc}"
    log = server_log(server)
    verdict = ""
    for line in log.splitlines():
        if "ERROR: AddressSanitizer" in line or "runtime error:" in line or \
                line.startswith("SUMMARY:"):
            verdict += " | " + line.strip()[:200]
            if len(verdict) > 500:
                break
    if not verdict:
        verdict = " | log tail: " + log[-600:].replace("\n", " / ")
    return f"SERVER DIED ({server.proc.name}, pid {server.pid}) {how}{verdict}"


def settle(server: Server, seconds: float = 20.0):
    """After a failure: if the server no longer answers /healthz it is probably dying (a
    sanitizer report takes seconds to write): wait for its exit, so the report says so."""
    if server.proc.proc.poll() is not None:
        return
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=3)
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        finally:
            conn.close()
    except OSError:
        server.proc.wait_exit(seconds)


def check_alive(server: Server, when: str):
    note = death_note(server)
    if note:
        raise CheckFailed(f"{when}: {note}")


class Cases:
    """Base of a suite whose cases start their own servers (start()); run() reports a case
    that killed its server as such, and stops every server the case started."""

    def __init__(self, binary: str, rep: Reporter):
        self.binary = binary
        self.rep = rep
        self.live: list[Server] = []

    def start(self, config: str, name: str, **kw) -> Server:
        s = Server(self.binary, config, name=name, **kw)
        self.live.append(s)
        return s

    async def run(self, name: str, timeout: float = 60.0) -> bool:
        fn = getattr(self, "case_" + name)
        t0 = time.monotonic()
        error = None
        try:
            await asyncio.wait_for(fn(), timeout)
        except CheckFailed as e:
            error = str(e)
        except asyncio.TimeoutError:
            error = f"case deadline of {timeout}s passed"
        except Exception as e:  # noqa: BLE001 - any crash of a case is a failure with its trace
            error = (f"{e.__class__.__name__}: {e} "
                     f"[{traceback.format_exc(limit=3).splitlines()[-3:]}]")
        if error is not None:
            await asyncio.gather(*[asyncio.to_thread(settle, s) for s in self.live])
        # A server the case stopped on purpose (a signal under test) did not die.
        dead = [n for n in (death_note(s) for s in self.live
                            if not getattr(s, "stopped_by_case", False)) if n]
        for s in self.live:
            await asyncio.get_running_loop().run_in_executor(None, s.close)
        self.live = []
        if dead and (error is None or "SERVER DIED" not in error):
            error = "; ".join(dead) + (f"; the case then saw: {error}" if error else "")
        self.rep.record(name, error is None,
                        error if error else f"{time.monotonic() - t0:.2f}s")
        return error is None


class RssWatch:
    """Samples a server's RSS every 20 ms on a thread; `peak_kib` is the highest seen."""

    def __init__(self, server: Server):
        self.server = server
        self.baseline_kib = server.rss_kib()
        self.peak_kib = self.baseline_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, self.server.rss_kib())
            except (OSError, HarnessError):
                return  # the process is gone; the case reports that
            self._stop.wait(0.02)  # the sampling period, not a synchronization

    def stop(self) -> float:
        """Stops sampling; returns the growth over the baseline in MiB."""
        self._stop.set()
        self._thread.join(2)
        return self.grown_mib()

    def grown_mib(self) -> float:
        return (self.peak_kib - self.baseline_kib) / 1024


async def poll_metric(server: Server, name: str, pred, seconds: float, what: str,
                      extra: tuple[str, ...] = ()) -> float:
    """Polls /metrics until pred(value); a dead server ends the wait at once."""
    deadline = Deadline(seconds)
    loop = asyncio.get_running_loop()
    while True:
        check_alive(server, f"while waiting for {what}")
        try:
            m = await loop.run_in_executor(None, metrics, server)
        except OSError as e:
            await asyncio.to_thread(settle, server)
            check_alive(server, f"while waiting for {what}")
            raise CheckFailed(f"GET /metrics failed while waiting for {what}: {e}") from None
        value = m.get(name)
        if value is not None and pred(value):
            return value
        if deadline.expired():
            more = ", ".join(f"{k} = {m.get(k)}" for k in extra)
            raise CheckFailed(f"no {what} within {seconds}s ({name} = {value}"
                              f"{'; ' + more if more else ''})")
        await asyncio.sleep(0.05)  # polling period of a metric (the metric is the event)


def publish_many(server: Server, channel: str, n: int, data, key: str = API_KEY,
                 timeout: float = 10.0) -> list[dict]:
    """n × POST /api/publish over one keep-alive connection; returns the replies."""
    body = json.dumps({"channel": channel, "data": data}).encode()
    out = []
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        for i in range(n):
            conn.request("POST", "/api/publish", body=body,
                         headers={"Authorization": f"apikey {key}",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            check(resp.status == 200, f"POST /api/publish #{i + 1} to {channel} → "
                  f"{resp.status} {short(raw.decode(errors='replace'))}")
            out.append(json.loads(raw))
    finally:
        conn.close()
    return out


def rst_close(sock: socket.socket):
    """Closes with RST (no FIN handshake to wait for)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


async def healthy_roundtrip(server: Server, channel: str, name: str = "healthy",
                            timeout: float = 10.0) -> None:
    """A fresh python3-websockets client connects, subscribes, publishes and receives its own
    publication: the server still serves others."""
    check_alive(server, f"before {name} connects")
    c = await Client.open(server, name, timeout=timeout)
    try:
        await c.connect(user=name, timeout=timeout)
        await c.subscribe(channel, timeout=timeout)
        marker = f"{name}-{time.monotonic_ns()}"
        r = await c.publish(channel, marker, timeout=timeout)
        await c.expect(lambda m: m.get("type") == "message" and m.get("data") == marker and
                       m.get("offset") == r.get("offset"), timeout,
                       f"its own publication on {channel}")
    finally:
        await c.close()
        await c.stop()


def http_raw(server: Server, request: bytes, timeout: float = 5.0):
    """Sends a raw HTTP/1.1 request on a fresh socket; returns (HttpResponse, WSClient) so the
    caller can read on (the socket stays open)."""
    c = WSClient(server.host, server.port, timeout=timeout)
    c.send_raw(request)
    return c.read_http_response(Deadline(timeout)), c
