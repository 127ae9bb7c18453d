#!/usr/bin/python3
"""Integration: reconnect-storm protection (docs/configuration.md, server.admission_rate and
server.reconnect_spread) and the load tester's storm scenario.

1. admission: a node with --admission-rate 20 admits a burst of 60 WebSocket upgrades up to
   its bucket (20) and answers the rest at once with 503, error "overloaded", a Retry-After of
   1..(spread + 1) s with more than one value among the refusals, and a body that names the
   setting; SSE opens and long-polling opens are refused the same way while the bucket is
   empty; /metrics counts every refusal under reason="admission_rate"; plain HTTP (/healthz)
   is never refused; a second later the bucket has refilled and a new session opens.
2. spread_zero: with --reconnect-spread 0, SIGTERM tells every native client to come back at
   once (reconnect_after_ms 0). (The default spread is checked by test_sigterm and test_sse.)
3. bench_storm: `switchboard bench storm` against a server it starts itself: 200 subscribers,
   SIGTERM 1 s after all connected, the server started again: every dropped client is back
   (its JSON `back` equals the drops), none lost to the bench; then the same with --kill9.
5. metrics: what operators watch for storms — refused upgrades by reason (a missing
   Connection: upgrade, a bad key, a forbidden method), session resumes by result (resumed,
   not_found), WebSocket disconnects by close code (1000 here), the per-loop lag gauge (one
   series per loop), and per-namespace publications, deliveries and subscriptions (2, 2, 1,
   then 0 subscriptions once the subscriber closed).
4. handover: --handover-socket. A second server started with the same path takes the first
   one's listening sockets: the first drains and exits 0, its clients get 1001 and reconnect
   to the second on the same port; the socket file (mode 0600) then belongs to the second and
   is removed when it exits; a stale socket file is replaced, a regular file is a startup
   error that names the path. Then `bench storm --handover` with --reconnect-spread 0 (500
   clients all reconnecting at the moment of the hand-over): every one is back and the only
   errors are the 1001 closes (and 503 shutting_down answers), no connection refused or reset.

  /usr/bin/python3 tests/integration/test_storm.py --server build/release/switchboard
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Reporter  # noqa: E402
from messaging import (API_KEY, Client, Server, check, http_call,  # noqa: E402
                       metrics_async, require_websockets, run_case, short, stop_all,
                       suite_arguments, wait_metric)

require_websockets()

CONFIG = f"""
[api]
key = "{API_KEY}"

[namespaces.chat]
history_size = 100
"""

ADMISSION_METRIC = 'switchboard_connections_refused_total{reason="admission_rate"}'


def exchange(host: str, port: int, request: str) -> tuple[int, dict, str]:
    """One request on its own socket: (status, headers, body) of the answer's head and as much
    body as Content-Length says (none for a stream: what came with the head)."""
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split() if lines else []
        status = int(parts[1]) if len(parts) > 1 else 0
        headers = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                   for ln in lines[1:] if ":" in ln}
        n = int(headers.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        return status, headers, body.decode(errors="replace")
    finally:
        s.close()


def raw_upgrade(host: str, port: int, path: str = "/ws") -> tuple[int, dict, str]:
    """One native WebSocket upgrade: the answer's status, headers and body."""
    return exchange(host, port, f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: "
                    "websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: switchboard.v1.json\r\n\r\n")


def stream_status(host: str, port: int, path: str) -> tuple[int, dict, str]:
    """GET `path` (an SSE open): the status line and, for a refusal, its headers and body."""
    return exchange(host, port, f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n")


class Suite:
    def __init__(self, binary: str):
        self.binary = binary

    async def case_admission(self):
        s = Server(self.binary, CONFIG, name="admission", threads=1,
                   flags=("--admission-rate", "20", "--reconnect-spread", "3s"))
        try:
            loop = asyncio.get_running_loop()
            answers = await asyncio.gather(*[loop.run_in_executor(
                None, raw_upgrade, s.host, s.port) for _ in range(60)])
            ok = [a for a in answers if a[0] == 101]
            refused = [a for a in answers if a[0] == 503]
            check(len(ok) + len(refused) == 60,
                  f"60 upgrades → statuses {sorted(set(a[0] for a in answers))}, expected only "
                  "101 and 503")
            # The bucket holds one second's worth (20); more refill while the burst is under way
            # (a token per 50 ms: a slow, sanitized run takes longer), but most are refused.
            check(20 <= len(ok) <= 40,
                  f"{len(ok)} of 60 upgrades admitted at --admission-rate 20 (burst 20)")
            afters = set()
            for status, headers, body in refused:
                ra = headers.get("retry-after", "")
                check(ra.isdigit() and 1 <= int(ra) <= 4,
                      f"503 Retry-After {ra!r}: want 1..4 s (spread 3 s + 1)")
                afters.add(int(ra))
                js = json.loads(body)
                check(js.get("error") == "overloaded" and "admission_rate" in js.get("message", ""),
                      f"503 body {body!r}: want error overloaded naming server.admission_rate")
            check(len(afters) > 1, f"{len(refused)} refusals all said Retry-After {afters}: "
                  "they should be spread")
            # With the bucket empty, SSE and poll opens are refused too; /healthz is not. The
            # bucket refills a token every 50 ms, so each check first empties it again (an
            # upgrade refused) and retries if a token came back meanwhile.
            refusals = len(refused)

            def empty_then(fn):
                nonlocal refusals
                for _ in range(10):
                    while True:
                        st_ws, _, _ = raw_upgrade(s.host, s.port)
                        if st_ws == 503:
                            refusals += 1
                            break
                    result = fn()
                    if result[0] == 503:
                        refusals += 1
                        return result
                return result
            st, headers, body = await loop.run_in_executor(None, lambda: empty_then(
                lambda: stream_status(s.host, s.port, "/sse?channel=chat:a")))
            check(st == 503 and "retry-after" in headers,
                  f"GET /sse with the bucket empty → {st} {body[:200]!r}")
            st, out = await loop.run_in_executor(None, lambda: empty_then(
                lambda: http_call(s, "GET", "/poll?channel=chat:a", key=None)))
            check(st == 503 and isinstance(out, dict) and out.get("error") == "overloaded",
                  f"GET /poll with the bucket empty → {st} {short(out)}")
            st, out = await loop.run_in_executor(
                None, lambda: http_call(s, "GET", "/healthz", key=None))
            check(st == 200, f"/healthz during the refusals → {st} {short(out)}")
            m = await metrics_async(s)
            check(m.get(ADMISSION_METRIC) == refusals,
                  f"{ADMISSION_METRIC} = {m.get(ADMISSION_METRIC)}, expected {refusals} (every "
                  "503 this test saw)")
            await asyncio.sleep(1.2)  # refills 20 tokens
            c = await Client.open(s, "later")
            try:
                r = await c.connect()
                check(r.get("type") == "connected", f"after a second: connect → {short(r)}")
            finally:
                await c.stop()
        finally:
            s.close()

    async def case_spread_zero(self):
        s = Server(self.binary, CONFIG, name="spread0", threads=1,
                   flags=("--reconnect-spread", "0"))
        clients = []
        try:
            clients = await asyncio.gather(*[Client.open(s, f"z{i}") for i in range(5)])
            await asyncio.gather(*[c.connect() for c in clients])
            s.proc.signal(signal.SIGTERM)
            for c in clients:
                code, _ = await c.wait_closed(10)
                ev = [m for m in c.all if m.get("type") == "disconnect"]
                check(code == 1001 and ev and ev[-1].get("reconnect_after_ms") == 0,
                      f"{c.name}: close {code}, disconnect {short(ev)}: want 1001 after a "
                      "disconnect with reconnect_after_ms 0")
        finally:
            await stop_all(clients)
            s.close()

    async def _storm(self, kill9: bool):
        with socket.socket() as probe:  # a free port for the server the bench starts
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
        out.close()
        try:
            argv = [self.binary, "bench", "storm", "--url", f"ws://127.0.0.1:{port}/ws",
                    "--server-cmd", f"{self.binary} serve --host 127.0.0.1 --port {port} "
                    "--threads 1 --log-level error --reconnect-spread 1s",
                    "-c", "200", "--storm-at", "1s", "-d", "6s", "-q", "--json", out.name]
            if kill9:
                argv.append("--kill9")
            loop = asyncio.get_running_loop()
            p = await loop.run_in_executor(None, lambda: subprocess.run(
                argv, capture_output=True, text=True, timeout=90))
            check(os.path.getsize(out.name) > 0,
                  f"bench storm wrote no JSON (exit {p.returncode}): {p.stdout[-800:]} "
                  f"{p.stderr[-400:]}")
            with open(out.name) as f:
                js = json.load(f)
            st, run = js["storm"], js["run"]
            drops = run["counters"]["drops"]
            check(drops >= 201 and st["back"] >= drops,
                  f"{'SIGKILL' if kill9 else 'SIGTERM'}: {st['back']} back of {drops} dropped "
                  f"(201 clients): {p.stdout[-600:]}")
            check(st["signal"] == ("SIGKILL" if kill9 else "SIGTERM") and st["listen_ms"] > 0,
                  f"storm facts {st}")
            check(p.returncode == 0 or run["counters"]["lost"] > 0,
                  f"bench storm exit {p.returncode}: {p.stdout[-600:]}")
            print(f"NOTE       storm {st['signal']}: all {st['back']} back {st['all_back_ms']:.0f} "
                  f"ms after the signal; away p50 {st['away_p50_ms']:.0f} ms", flush=True)
        finally:
            os.unlink(out.name)

    async def case_handover(self):
        d = tempfile.mkdtemp(prefix="sb-handover-")
        path = os.path.join(d, "handover.sock")
        cfg = os.path.join(d, "sb.toml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        argv = [self.binary, "serve", "--config", cfg, "--host", "127.0.0.1", "--port", str(port),
                "--threads", "2", "--log-level", "info", "--handover-socket", path]
        procs = []

        def start(threads: str = "2"):
            a = list(argv)
            a[a.index("--threads") + 1] = threads
            p = subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            procs.append(p)
            seen = ""
            for _ in range(20):  # warnings may come first
                line = p.stdout.readline()
                seen += line
                if "listening on" in line or not line:
                    break
            check("listening on" in seen, f"server did not start: {seen!r}")
            return p

        at = types.SimpleNamespace(host="127.0.0.1", port=port,
                                   ws_url=f"ws://127.0.0.1:{port}/ws")
        clients = []
        try:
            # A stale socket file (no server behind it) is replaced.
            with socket.socket(socket.AF_UNIX) as stale:
                stale.bind(path)
            first = start("2")
            check(oct(os.stat(path).st_mode & 0o777) == "0o600",
                  f"handover socket mode {oct(os.stat(path).st_mode & 0o777)}, want 0o600")
            clients = await asyncio.gather(*[Client.open(at, f"h{i}") for i in range(4)])
            await asyncio.gather(*[c.connect() for c in clients])
            second = start("1")
            loop = asyncio.get_running_loop()
            rc = await loop.run_in_executor(None, lambda: first.wait(15))
            out = first.stdout.read()
            check(rc == 0 and "took over the listening sockets" in out,
                  f"the first server: exit {rc}, log {out[-600:]!r}")
            for c in clients:
                code, _ = await c.wait_closed(5)
                check(code == 1001, f"{c.name}: close {code} at the hand-over, want 1001")
            again = await Client.open(at, "again")
            clients.append(again)
            r = await again.connect()
            check(r.get("type") == "connected" and r.get("client", "").startswith("c_0_"),
                  f"a new connection on the same port after the hand-over → {short(r)}")
            check(os.path.exists(path), "the socket file is gone while the second server runs")
            second.send_signal(signal.SIGTERM)
            rc = await loop.run_in_executor(None, lambda: second.wait(15))
            check(rc == 0 and not os.path.exists(path),
                  f"the second server: exit {rc}; socket file left: {os.path.exists(path)}")
            # A regular file where the socket should go: a startup error naming the path.
            with open(path, "w") as f:
                f.write("not a socket")
            p = subprocess.run(argv, capture_output=True, text=True, timeout=15)
            check(p.returncode != 0 and path in p.stderr and "not a socket" in p.stderr,
                  f"a regular file at the path: exit {p.returncode}, stderr {p.stderr[-300:]!r}")
            os.unlink(path)
        finally:
            await stop_all(clients)
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        # Under load: every client reconnects at the moment of the hand-over.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        out = os.path.join(d, "storm.json")
        sargv = [self.binary, "bench", "storm", "--url", f"ws://127.0.0.1:{port}/ws",
                 "--server-cmd", f"{self.binary} serve --host 127.0.0.1 --port {port} "
                 f"--threads 1 --log-level error --reconnect-spread 0 --handover-socket {path}",
                 "-c", "500", "--storm-at", "1s", "-d", "5s", "-q", "--handover", "--json", out]
        loop = asyncio.get_running_loop()
        p = await loop.run_in_executor(None, lambda: subprocess.run(
            sargv, capture_output=True, text=True, timeout=90))
        check(os.path.exists(out), f"bench storm --handover wrote no JSON: {p.stdout[-600:]} "
              f"{p.stderr[-300:]}")
        with open(out) as f:
            js = json.load(f)
        errors = js["run"]["errors"]
        drops = js["run"]["counters"]["drops"]
        bad = {k: v for k, v in errors.items()
               if k not in ("close_1001", "handshake_status_503")}
        check(not bad and js["storm"]["back"] >= drops >= 501,
              f"hand-over under load: {js['storm']['back']} back of {drops} dropped; errors "
              f"{errors} (only close_1001 and 503 allowed)")
        print(f"NOTE       hand-over under load: {drops} dropped with 1001, all back "
              f"{js['storm']['all_back_ms']:.0f} ms later; errors {errors}", flush=True)

    async def case_metrics(self):
        s = Server(self.binary, CONFIG, name="metrics", threads=2)
        try:
            loop = asyncio.get_running_loop()
            bad = [
                ("missing_connection_upgrade",
                 b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"),
                ("bad_key", b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
                 b"Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                ("method_not_allowed", b"POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nContent-Length: 0\r\n\r\n"),
            ]

            def send(raw: bytes):
                with socket.create_connection((s.host, s.port), timeout=5) as c:
                    c.sendall(raw)
                    c.recv(4096)
            for _, raw in bad:
                await loop.run_in_executor(None, send, raw)
            a = await Client.open(s, "a")
            r = await a.connect()
            session = r.get("session")
            await a.ws.close(code=1000)
            b = await Client.open(s, "b")
            rb = await b.connect(session=session)
            c = await Client.open(s, "c")
            rc = await c.connect(session="s_" + "0" * 32)
            check(rb.get("resumed") is True and rc.get("resumed") is False,
                  f"resume → {short(rb)}; unknown session → {short(rc)}")
            # Per namespace: b subscribes to chat:m and publishes twice; it gets both.
            await b.subscribe("chat:m")
            for i in range(2):
                await b.request({"type": "publish", "channel": "chat:m", "data": i}, 5)
            await b.wait_until(lambda: len(b.messages("chat:m")) >= 2, 5, "both on b")
            nm = await metrics_async(s)
            for key, want in (('switchboard_namespace_publications_total{namespace="chat"}', 2),
                              ('switchboard_namespace_deliveries_total{namespace="chat"}', 2),
                              ('switchboard_namespace_subscriptions{namespace="chat"}', 1)):
                check(nm.get(key) == want, f"{key} = {nm.get(key)}, want {want}")
            await stop_all([b, c])
            m = await metrics_async(s)
            for reason, _ in bad:
                key = f'switchboard_handshake_failures_total{{reason="{reason}"}}'
                check(m.get(key) == 1, f"{key} = {m.get(key)}, want 1")
            for key, want in (('switchboard_session_resumes_total{result="resumed"}', 1),
                              ('switchboard_session_resumes_total{result="not_found"}', 1)):
                check(m.get(key) == want, f"{key} = {m.get(key)}, want {want}")
            key = 'switchboard_disconnects_total{code="1000"}'
            check(m.get(key, 0) >= 1, f"{key} = {m.get(key)}, want at least 1 (a's close)")
            key = 'switchboard_namespace_subscriptions{namespace="chat"}'
            await wait_metric(s, key, lambda v: v == 0, 5, "b's subscription gone after it closed")
            lags = [k for k in m if k.startswith("switchboard_loop_lag_seconds{")]
            check(len(lags) == 2 and all(0 <= m[k] < 5 for k in lags),
                  f"loop lag series {[(k, m[k]) for k in lags]}: want one per loop (2)")
        finally:
            s.close()

    async def case_bench_storm(self):
        await self._storm(False)
        await self._storm(True)


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_storm")
    suite = Suite(args.server)
    for name in ("admission", "spread_zero", "metrics", "bench_storm", "handover"):
        await run_case(rep, name, getattr(suite, "case_" + name), timeout=120)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
