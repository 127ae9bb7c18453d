#!/usr/bin/python3
"""Integration: per-IP connection limits, directly and behind a trusted proxy.

One server with `connection_rate_per_ip = 5` (burst 10), `limit_loopback = true` and
`trusted_proxies = ["127.0.0.2"]`. Every connection is a raw socket bound to its own loopback
source address, so each case floods from an address no other case uses.
1. direct_flood: 30 connections at once from 127.0.0.3 → at most burst + rate × elapsed
   upgrade (101), the rest get 429 `connection_rate_limited` with `Retry-After: 1` at accept;
   `switchboard_connections_refused_total{reason="connection_rate_per_ip"}` grows by the
   refusals; one log line names 127.0.0.3.
2. spoofed_header: the same from 127.0.0.4 with `X-Forwarded-For: 10.9.9.9` on each request:
   the header is ignored (the refusals happen at accept, nothing names 10.9.9.9 in the log).
3. behind_proxy: 30 upgrades from the trusted proxy 127.0.0.2 forwarding for 10.0.0.1: none
   is refused at accept; at the upgrade the forwarded client is limited (429 JSON), and the
   log names 10.0.0.1, not the proxy. Meanwhile upgrades forwarded for 10.0.0.2 all succeed
   (another client), and a header "10.7.7.7, 10.0.0.3" is taken as 10.0.0.3 (the rightmost
   entry, the one the proxy wrote).

  /usr/bin/python3 tests/integration/test_proxies.py --server build/dev/switchboard
"""

from __future__ import annotations

import base64
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import CheckFailed, Server, check, metrics, suite_arguments  # noqa: E402
from regression import server_log  # noqa: E402

RATE = 5
REFUSED = 'switchboard_connections_refused_total{reason="connection_rate_per_ip"}'
CONFIG = f"""
[server]
connection_rate_per_ip = {RATE}
limit_loopback = true
trusted_proxies = ["127.0.0.2"]
"""


def upgrade(server: Server, source: str, xff: str | None = None) -> bytes:
    """One WebSocket upgrade to /echo from `source`; returns what the server answered first
    (the status line and headers, or b"" if it closed without a word)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((source, 0))
        s.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n")
        if xff is not None:
            head += f"X-Forwarded-For: {xff}\r\n"
        s.sendall((head + "\r\n").encode())
        out = b""
        deadline = Deadline(5)
        while b"\r\n\r\n" not in out and not deadline.expired():
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def flood(server: Server, source: str, n: int, xff: str | None = None):
    t0 = time.monotonic()
    answers = [upgrade(server, source, xff) for _ in range(n)]
    return answers, time.monotonic() - t0


def case_direct_flood(server: Server):
    before = metrics(server).get(REFUSED, 0)
    answers, elapsed = flood(server, "127.0.0.3", 30)
    ok = [a for a in answers if status(a) == 101]
    refused = [a for a in answers if status(a) == 429]
    check(len(ok) + len(refused) == len(answers),
          f"answers other than 101/429: {[a[:60] for a in answers if status(a) not in (101, 429)]}")
    check(refused and b"Retry-After: 1" in refused[0] and b"connection_rate_limited" in refused[0],
          f"a refusal: {refused[:1]}")
    bound = 2 * RATE + RATE * (elapsed + 1.0) + 1
    check(2 * RATE <= len(ok) <= bound, f"{len(ok)} of 30 upgraded in {elapsed:.2f}s "
          f"(burst {2 * RATE}, at most {bound:.0f})")
    grown = metrics(server).get(REFUSED, 0) - before
    check(grown == len(refused), f"{REFUSED} grew by {grown}, {len(refused)} refusals seen")
    lines = [ln for ln in server_log(server).splitlines() if "127.0.0.3" in ln]
    check(1 <= len(lines) <= 2, f"{len(lines)} log lines name 127.0.0.3: {lines[:3]}")


def case_spoofed_header(server: Server):
    answers, _ = flood(server, "127.0.0.4", 30, xff="10.9.9.9")
    refused = [a for a in answers if status(a) == 429]
    check(refused, "30 connections from 127.0.0.4: none refused")
    log = server_log(server)
    check("10.9.9.9" not in log, "a client's own X-Forwarded-For reached the log: "
          f"{[ln for ln in log.splitlines() if '10.9.9.9' in ln][:2]}")
    check("127.0.0.4" in log, "the refusals of 127.0.0.4 are not logged under its address")


def case_behind_proxy(server: Server):
    answers, elapsed = flood(server, "127.0.0.2", 30, xff="10.0.0.1")
    ok = [a for a in answers if status(a) == 101]
    refused = [a for a in answers if status(a) == 429]
    check(len(ok) + len(refused) == 30, f"answers other than 101/429: "
          f"{[a[:60] for a in answers if status(a) not in (101, 429)]}")
    check(refused and b"application/json" in refused[0] and
          b"connection_rate_limited" in refused[0], f"a refusal at the upgrade: {refused[:1]}")
    bound = 2 * RATE + RATE * (elapsed + 1.0) + 1
    check(2 * RATE <= len(ok) <= bound, f"{len(ok)} of 30 forwarded for 10.0.0.1 upgraded in "
          f"{elapsed:.2f}s (burst {2 * RATE}, at most {bound:.0f})")
    log = server_log(server)
    check(any("10.0.0.1" in ln and "refused" in ln for ln in log.splitlines()),
          "no log line names the forwarded client 10.0.0.1")
    check(not any("127.0.0.2" in ln and "refused" in ln for ln in log.splitlines()),
          "the trusted proxy itself was refused")
    # Other forwarded clients are not limited by 10.0.0.1's flood.
    others = [status(upgrade(server, "127.0.0.2", f"10.0.0.2")) for _ in range(2 * RATE)]
    check(all(s == 101 for s in others), f"10.0.0.2 through the proxy: {others}")
    # The rightmost entry is the client: 10.7.7.7 (written by the client) is not charged.
    chained = [status(upgrade(server, "127.0.0.2", "10.7.7.7, 10.0.0.3"))
               for _ in range(2 * RATE + 5)]
    check(chained.count(429) >= 1, f"10.0.0.3 (rightmost) not limited: {chained}")
    check(status(upgrade(server, "127.0.0.2", "10.7.7.7")) == 101,
          "10.7.7.7 was charged for 10.0.0.3's upgrades")


def main() -> int:
    args = suite_arguments(__doc__.splitlines()[1])
    rep = Reporter("integration.test_proxies")
    server = Server(args.server, CONFIG, name="proxies", log_level="info")
    try:
        for name, fn in (("direct_flood", case_direct_flood),
                         ("spoofed_header", case_spoofed_header),
                         ("behind_proxy", case_behind_proxy)):
            t0 = time.monotonic()
            try:
                fn(server)
                rep.record(name, True, f"{time.monotonic() - t0:.2f}s")
            except (CheckFailed, OSError) as e:
                rep.record(name, False, str(e))
            check_alive = server.proc.proc.poll() is None
            if not check_alive:
                rep.record(f"{name}: server alive", False, server.proc.log_tail())
                break
    finally:
        server.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
