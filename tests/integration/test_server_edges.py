#!/usr/bin/python3
"""Integration (regression): startup, limits, the HTTP API's edges, signals and channel names.
One server per case (most start their own, with the config the case needs).

1. busy_port: a second `switchboard serve --host 127.0.0.1 --port P --no-echo` on a port the
   first one listens on exits non-zero within 10 s, and its stderr mentions `already in use`
   and P (the first keeps serving); the same against a foreign listener (a Python socket with
   SO_REUSEADDR + SO_REUSEPORT); with `--reuse-port` given to both, both start and print their
   `switchboard listening on` line. (Without this the kernel silently splits the traffic.)
2. ws_size_configured: `[namespaces.big] max_data_bytes = "1MiB"`: a 512 KiB string published
   over /ws gets `published`, and a subscriber receives it intact.
3. ws_size_default: default namespace only (max_data_bytes 64 KiB; the /ws message limit is
   then 64 KiB + 4 KiB): a 66,000-character data string gets `error` `data_too_large` and the
   connection stays usable (`ping` → `pong`); a 200 KiB publish is closed with 1009.
4. ws_size_explicit: `[messaging] max_message_size = "2MiB"` with `big` at 1 MiB: a 1.5 MiB
   publish to `big:` gets `data_too_large` (the message is within the limit; the data is not).
5. broadcast_atomic: POST /api/broadcast {"channels":["a:1","nope:2","a:3"]} with `nope` not
   configured → 404 `unknown_namespace` and nothing published (history of a:1 and a:3 empty,
   and a:1's subscriber's first message is a later fence with offset 1); data larger than one
   target namespace's max_data_bytes → 413 `data_too_large` and nothing published anywhere;
   a valid broadcast still publishes to every channel (the control).
6. sigterm_idle_keepalive: an HTTP/1.1 keep-alive connection that got one `GET /healthz`
   answer stays open and idle; SIGTERM with --shutdown-timeout 30s: the process exits 0 within
   5 s and the idle socket sees EOF (a behavioural bound: an idle HTTP connection has nothing
   to drain; 5 s against 30 s).
7. sighup_api_key: `[api] key = "k1"`; publishing with k1 works; the file is rewritten with
   "k2" and SIGHUP sent: within 10 s k2 is accepted, then k1 gets 401.
8. sighup_burst (found while writing 7): 40 rounds of 20 SIGHUPs back to back, each round
   until one more reload is logged, must not kill the server (a signal arriving while the
   main thread is between two sigtimedwait calls goes to any thread that leaves it unblocked;
   the housekeeping thread did, and died of it); afterwards it still serves.
9. head_healthz: `HEAD /healthz` answers the GET's Content-Length (3, for `ok\\n`) and no body.
10. method_not_allowed: `POST /healthz` → 405 with `Allow: GET, HEAD`; `GET /api/publish` →
   405 with `Allow: POST`.
11. disconnect_unknown_client: POST /api/disconnect {"client":"c_0_999999"} → 404
   `unknown_client`.
12. ws_gauge_counts_echo: with 3 /echo and 2 /ws connections open,
   switchboard_connections{transport="websocket"} reads 5, and 0 once they are closed.
13. default_namespace_alias: `room` and `default:room` are one channel: subscribers of each
   receive publications made to either name, and `message` names the channel `room`.

  /usr/bin/python3 tests/integration/test_server_edges.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import (ConnectionClosed, Deadline, DeadlineExceeded, HarnessError,  # noqa: E402
                     Reporter, ServerProcess, WSClient, parse_http_head)
from messaging import (API_KEY, CheckFailed, Client, api_async, api_ok_async,  # noqa: E402
                       check, require_websockets, short, stop_all, suite_arguments)
from regression import (WS_GAUGE, Cases, check_alive, death_note, poll_metric,  # noqa: E402
                        raw_ws, server_log)

require_websockets()

BASE = f"""
[api]
key = "{API_KEY}"
"""

CONFIG_BIG = BASE + """
[messaging]
rate_limit = 100000

[namespaces.big]
max_data_bytes = "1MiB"
"""

CONFIG_EXPLICIT = BASE + """
[messaging]
rate_limit = 100000
max_message_size = "2MiB"

[namespaces.big]
max_data_bytes = "1MiB"
"""

CONFIG_BROADCAST = BASE + """
[namespaces.a]
history_size = 10

[namespaces.small]
history_size = 10
max_data_bytes = "1KiB"
"""

SECOND_START_S = 10.0   # a refused start must end within this
SIGTERM_EXIT_S = 5.0    # exit after SIGTERM with only an idle HTTP connection open
RELOAD_S = 10.0         # SIGHUP takes effect within this
SIGHUP_BURST = 20       # SIGHUPs sent back to back, per round
SIGHUP_ROUNDS = 40


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_full(server, method: str, path: str, body=None, key: str | None = API_KEY,
              timeout: float = 5.0):
    """Returns (status, headers as a lower-cased dict, body text)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        headers = {}
        data = None
        if key is not None:
            headers["Authorization"] = f"apikey {key}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
    finally:
        conn.close()


def json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


class Suite(Cases):
    # ------------------------------------------------------------------ busy port
    def serve_argv(self, port: int, *extra: str) -> list[str]:
        return [self.binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-echo",
                "--threads", "2", *extra]

    def start_refused(self, argv: list[str], what: str, port: int) -> str:
        """Starts a switchboard that must refuse to start; returns its stderr."""
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
            try:
                rc = p.wait(timeout=SECOND_START_S)
            except subprocess.TimeoutExpired:
                rc = None
            finally:
                if p.poll() is None:  # our own child, by PID
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)
            err.seek(0)
            out.seek(0)
            stderr = err.read().decode(errors="replace")
            stdout = out.read().decode(errors="replace")
        if rc is None:
            raise CheckFailed(f"{what}: `{' '.join(argv[1:])}` was still running after "
                              f"{SECOND_START_S:.0f}s (stdout {short(stdout.strip(), 120)!r}): "
                              "it started on a port that is in use")
        check(rc != 0, f"{what}: exited with 0 (stdout {short(stdout.strip(), 120)!r})")
        check("already in use" in stderr and str(port) in stderr,
              f"{what}: exit {rc}, stderr {short(stderr.strip(), 300)!r} does not mention "
              f"'already in use' and port {port}")
        return stderr

    async def case_busy_port(self):
        problems = []
        # (a) a second switchboard on the port of the first
        port = free_port()
        first = ServerProcess(self.serve_argv(port), name="first")
        try:
            try:
                err = await asyncio.to_thread(self.start_refused, self.serve_argv(port),
                                              "second serve on the port of a running one",
                                              port)
                print(f"NOTE       second serve refused: {err.strip()[:160]}", flush=True)
            except CheckFailed as e:
                problems.append(str(e))
            check(first.alive(), f"the first server died: {first.log_tail(400)}")
            status, _, _ = await asyncio.to_thread(http_full, first, "GET", "/healthz")
            check(status == 200, f"the first server: GET /healthz → {status}")
        finally:
            first.close()
        # (b) a foreign listener that allows port sharing
        port = free_port()
        foreign = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            foreign.bind(("127.0.0.1", port))
            foreign.listen(16)
            try:
                await asyncio.to_thread(self.start_refused, self.serve_argv(port),
                                        "serve on a port a foreign SO_REUSEPORT socket listens "
                                        "on", port)
            except CheckFailed as e:
                problems.append(str(e))
        finally:
            foreign.close()
        # (c) both with --reuse-port: both start
        port = free_port()
        started = []
        try:
            for name in ("shared-1", "shared-2"):
                try:
                    started.append(await asyncio.to_thread(
                        ServerProcess, self.serve_argv(port, "--reuse-port"), name, 10.0))
                except HarnessError as e:
                    problems.append(f"--reuse-port ({name}): {short(str(e), 300)}")
                    break
            for p in started:
                check(p.port == port, f"{p.name} listens on {p.port}, expected {port}")
        finally:
            for p in started:
                p.close()
        check(not problems, " || ".join(problems))

    # ------------------------------------------------------------------ /ws sizes
    async def case_ws_size_configured(self):
        s = self.start(CONFIG_BIG, "size-big")
        pub = sub = None
        try:
            pub = await Client.open(s, "publisher")
            sub = await Client.open(s, "subscriber")
            await pub.connect(user="p")
            await sub.connect(user="s")
            await sub.subscribe("big:blob")
            data = "".join(chr(ord("a") + i % 26) for i in range(512 * 1024))
            await pub.send({"type": "publish", "id": "blob", "channel": "big:blob",
                            "data": data})
            try:
                r = await pub.expect(lambda m: m.get("id") == "blob", 10, "reply to the 512 KiB "
                                     "publish")
            except CheckFailed as e:
                raise CheckFailed(f"a 512 KiB publish over /ws to a namespace with "
                                  f"max_data_bytes 1 MiB: {e}") from None
            check(r.get("type") == "published", f"512 KiB publish → {short(r)}")
            m = await sub.expect_type("message", 10, channel="big:blob")
            check(m.get("data") == data and m.get("offset") == r.get("offset"),
                  f"the subscriber received offset {m.get('offset')} with "
                  f"{len(m.get('data') or '')} characters, expected the 512 KiB publication "
                  "intact")
        finally:
            await stop_all([pub, sub])

    async def case_ws_size_default(self):
        s = self.start(BASE, "size-default")
        c = d = None
        try:
            c = await Client.open(s, "c")
            await c.connect(user="c")
            await c.send({"type": "publish", "id": "66k", "channel": "room", "data": "x" * 66_000})
            try:
                r = await c.expect(lambda m: m.get("id") == "66k", 5,
                                   "reply to a 66,000-character publish")
            except CheckFailed as e:
                raise CheckFailed(f"default namespace (max_data_bytes 64 KiB, so the /ws limit "
                                  f"is 68 KiB): {e}; expected error data_too_large") from None
            check(r.get("type") == "error" and r.get("code") == "data_too_large",
                  f"66,000-character publish → {short(r)}, expected error data_too_large")
            await c.ping_ok()
            d = await Client.open(s, "d")
            await d.connect(user="d")
            await d.send({"type": "publish", "id": "200k", "channel": "room",
                          "data": "y" * (200 * 1024)})
            code, reason = await d.wait_closed(5)
            check(code == 1009, f"200 KiB publish on the default-only server → close {code} "
                  f"{reason!r}, expected 1009")
        finally:
            await stop_all([c, d])

    async def case_ws_size_explicit(self):
        try:
            s = self.start(CONFIG_EXPLICIT, "size-explicit")
        except HarnessError as e:
            raise CheckFailed(f"[messaging] max_message_size = \"2MiB\": the server did not "
                              f"start: {short(str(e), 400)}") from None
        c = None
        try:
            c = await Client.open(s, "c")
            await c.connect(user="c")
            await c.send({"type": "publish", "id": "1.5m", "channel": "big:x",
                          "data": "z" * (3 * 512 * 1024)})
            try:
                r = await c.expect(lambda m: m.get("id") == "1.5m", 10,
                                   "reply to a 1.5 MiB publish")
            except CheckFailed as e:
                raise CheckFailed(f"max_message_size 2 MiB, big max_data_bytes 1 MiB: {e}; "
                                  "expected error data_too_large") from None
            check(r.get("type") == "error" and r.get("code") == "data_too_large",
                  f"1.5 MiB publish → {short(r)}, expected error data_too_large")
            await c.ping_ok()
        finally:
            await stop_all([c])

    # ------------------------------------------------------------------ broadcast
    async def case_broadcast_atomic(self):
        s = self.start(CONFIG_BROADCAST, "broadcast")
        sub = await Client.open(s, "sub")
        try:
            await sub.connect(user="sub")
            for ch in ("a:1", "a:4"):
                await sub.subscribe(ch)
            problems = []

            async def nothing_published(channels: list[str], after: str):
                for ch in channels:
                    h = await api_ok_async(s, "history", {"channel": ch})
                    if h.get("offset") != 0 or h.get("publications"):
                        problems.append(f"after {after}, {ch} has offset {h.get('offset')} and "
                                        f"{len(h.get('publications') or [])} publication(s)")

            status, out = await api_async(s, "broadcast", {"channels": ["a:1", "nope:2", "a:3"],
                                                          "data": {"b": 1}})
            if status != 404 or not isinstance(out, dict) or \
                    out.get("error") != "unknown_namespace":
                problems.append(f"broadcast with an unknown namespace → {status} {short(out)}, "
                                "expected 404 unknown_namespace")
            await nothing_published(["a:1", "a:3"], "the refused broadcast")
            big = "d" * 2048  # over small's max_data_bytes (1 KiB), fine for a (64 KiB)
            status, out = await api_async(s, "broadcast", {"channels": ["a:4", "small:5", "a:6"],
                                                          "data": big})
            if status != 413 or not isinstance(out, dict) or out.get("error") != "data_too_large":
                problems.append(f"broadcast with data over one namespace's max_data_bytes → "
                                f"{status} {short(out)}, expected 413 data_too_large")
            await nothing_published(["a:4", "small:5", "a:6"], "the oversized broadcast")
            # The subscriber's first message on each channel is a fence published now: nothing
            # of the refused broadcasts reached it (per-channel order).
            for ch in ("a:1", "a:4"):
                fence = await api_ok_async(s, "publish", {"channel": ch, "data": "fence"})
                m = await sub.expect_type("message", 5, channel=ch)
                if m.get("data") != "fence":
                    problems.append(f"the subscriber of {ch} received {short(m)} from a refused "
                                    f"broadcast (fence at offset {fence.get('offset')})")
                    await sub.expect(lambda m, ch=ch: m.get("type") == "message" and
                                     m.get("channel") == ch and m.get("data") == "fence", 5,
                                     f"the fence on {ch}")
            # Control: a valid broadcast publishes everywhere.
            out = await api_ok_async(s, "broadcast", {"channels": ["a:7", "small:8"],
                                                      "data": "ok"})
            res = out.get("results") or []
            if [r.get("channel") for r in res] != ["a:7", "small:8"] or \
                    any(r.get("offset") != 1 for r in res):
                problems.append(f"a valid broadcast → {short(out)}")
            check(not problems, " || ".join(problems))
        finally:
            await sub.stop()

    # ------------------------------------------------------------------ signals
    async def case_sigterm_idle_keepalive(self):
        s = self.start(BASE, "sigterm-idle", flags=("--shutdown-timeout", "30s"))
        w = WSClient(s.host, s.port, timeout=5)
        try:
            w.send_raw(f"GET /healthz HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n\r\n".encode())
            resp = w.read_http_response(Deadline(5))
            check(resp.status == 200 and resp.body == b"ok\n",
                  f"GET /healthz → {resp.status} {resp.body!r}")
            check((resp.header("connection") or "").lower() != "close",
                  "the server closed the keep-alive connection after one request; the case "
                  "needs it open")
            t0 = time.monotonic()
            s.stopped_by_case = True
            s.proc.signal(signal.SIGTERM)
            deadline = Deadline(SIGTERM_EXIT_S)
            try:
                w.sock.settimeout(max(0.01, deadline.remaining()))
                extra = w.sock.recv(4096)
                eof = "EOF" if extra == b"" else f"data {extra[:80]!r}"
            except socket.timeout:
                eof = None
            except ConnectionResetError:
                eof = "reset"
            eof_at = time.monotonic() - t0
            rc = await asyncio.to_thread(s.proc.wait_exit, deadline.remaining() + 0.05)
            took = time.monotonic() - t0
            print(f"NOTE       idle socket: {eof} after {eof_at:.2f}s; exit {rc} after "
                  f"{took:.2f}s", flush=True)
            check(rc is not None, f"still running {SIGTERM_EXIT_S:.0f}s after SIGTERM with one "
                  f"idle HTTP keep-alive connection (--shutdown-timeout 30s); the idle socket "
                  f"saw {eof or 'nothing'}")
            check(rc == 0, f"exit status {rc} after SIGTERM; {death_note(s)}")
            check(eof in ("EOF", "reset"), f"the idle keep-alive socket saw {eof or 'nothing'} "
                  f"within {SIGTERM_EXIT_S:.0f}s of SIGTERM, expected EOF")
        finally:
            w.close()

    async def case_sighup_api_key(self):
        s = self.start('[api]\nkey = "k1"\n', "sighup-key")
        body = {"channel": "room", "data": "reload"}
        status, out = await api_async(s, "publish", body, key="k1")
        check(status == 200, f"publish with k1 → {status} {short(out)}")
        with open(s.config_file.name, "w") as f:
            f.write('[api]\nkey = "k2"\n')
        s.proc.signal(signal.SIGHUP)
        deadline = Deadline(RELOAD_S)
        while True:
            status, out = await api_async(s, "publish", body, key="k2")
            if status == 200:
                break
            check_alive(s, "after SIGHUP")
            check(not deadline.expired(), f"{RELOAD_S:.0f}s after SIGHUP with the key changed "
                  f"to k2 in the file, k2 still gets {status} {short(out)}")
            await asyncio.sleep(0.05)  # polling the server's state after a signal
        status, out = await api_async(s, "publish", body, key="k1")
        check(status == 401, f"after the reload, the old key k1 → {status} {short(out)}, "
              "expected 401")

    async def case_sighup_burst(self):
        # Found while writing sighup_api_key: a signal that arrives while the main thread is
        # not in sigtimedwait (e.g. busy with the previous reload) must still be taken by it,
        # not by a thread that leaves SIGHUP unblocked with its default action (terminate).
        # Rounds of back-to-back SIGHUPs, each round until the server logged one more reload:
        # the old code died in the first few rounds in every trial (40 rounds: 10 of 10).
        s = self.start('[api]\nkey = "k1"\n', "sighup-burst", log_level="info")
        for rnd in range(1, SIGHUP_ROUNDS + 1):
            before = server_log(s).count("received SIGHUP")
            for _ in range(SIGHUP_BURST):
                if not s.proc.alive():
                    break
                s.proc.signal(signal.SIGHUP)
            deadline = Deadline(RELOAD_S)
            while server_log(s).count("received SIGHUP") <= before:
                check_alive(s, f"round {rnd}/{SIGHUP_ROUNDS} of {SIGHUP_BURST} back-to-back SIGHUPs")
                check(not deadline.expired(), f"no new 'received SIGHUP' log line {RELOAD_S:.0f}s"
                      f" after round {rnd}/{SIGHUP_ROUNDS} of {SIGHUP_BURST} SIGHUPs")
                await asyncio.sleep(0.01)  # polling the log file (the line is the event)
            check_alive(s, f"round {rnd}/{SIGHUP_ROUNDS} of {SIGHUP_BURST} back-to-back SIGHUPs")
        status, out = await api_async(s, "publish", {"channel": "room", "data": 1}, key="k1")
        check_alive(s, f"after {SIGHUP_ROUNDS} rounds of SIGHUPs")
        check(status == 200, f"publish after the SIGHUPs → {status} {short(out)}")

    # ------------------------------------------------------------------ HTTP edges
    async def case_head_healthz(self):
        s = self.start(BASE, "head")
        status, headers, body = await asyncio.to_thread(http_full, s, "GET", "/healthz",
                                                        None, None)
        check(status == 200 and body == "ok\n", f"GET /healthz → {status} {body!r}")
        check(headers.get("content-length") == "3", f"GET /healthz Content-Length "
              f"{headers.get('content-length')}")

        def head() -> tuple[int, dict, bytes]:
            w = WSClient(s.host, s.port, timeout=5)
            try:
                w.send_raw(f"HEAD /healthz HTTP/1.1\r\nHost: {s.host}\r\nConnection: close"
                           "\r\n\r\n".encode())
                deadline = Deadline(5)
                raw = w.read_until(b"\r\n\r\n", deadline)
                st, _, hdrs = parse_http_head(raw[:-4])
                rest = bytes(w.buf)  # whatever followed the head, until the server's FIN
                w.buf.clear()
                try:
                    while True:
                        w._fill(deadline)
                        rest += bytes(w.buf)
                        w.buf.clear()
                except ConnectionClosed:
                    pass
                except DeadlineExceeded:
                    rest += b"<no EOF within 5s>"
                return st, hdrs, rest
            finally:
                w.close()

        st, hdrs, rest = await asyncio.to_thread(head)
        cl = (hdrs.get("content-length") or [None])[0]
        check(st == 200, f"HEAD /healthz → {st}")
        check(cl == "3", f"HEAD /healthz: Content-Length {cl}, expected 3 (the GET body "
              "'ok\\n' it describes)")
        check(rest == b"", f"HEAD /healthz sent a body: {rest[:40]!r}")

    async def case_method_not_allowed(self):
        s = self.start(BASE, "methods")
        problems = []
        for method, path, allow in (("POST", "/healthz", {"GET", "HEAD"}),
                                    ("GET", "/api/publish", {"POST"})):
            status, headers, body = await asyncio.to_thread(http_full, s, method, path)
            got = headers.get("allow")
            tokens = {t.strip() for t in got.split(",")} if got else None
            if status != 405 or tokens != allow:
                problems.append(f"{method} {path} → {status} Allow: {got!r}, expected 405 with "
                                f"Allow: {', '.join(sorted(allow))}")
        check(not problems, " || ".join(problems))

    async def case_disconnect_unknown_client(self):
        s = self.start(BASE, "disc-unknown")
        status, out = await api_async(s, "disconnect", {"client": "c_0_999999"})
        check(status == 404 and isinstance(out, dict) and out.get("error") == "unknown_client",
              f"POST /api/disconnect for an unknown client → {status} {short(out)}, expected "
              "404 unknown_client")

    async def case_ws_gauge_counts_echo(self):
        s = self.start(BASE, "gauge")
        socks = []
        try:
            for _ in range(3):
                socks.append(await asyncio.to_thread(raw_ws, s, "/echo"))
            for _ in range(2):
                socks.append(await asyncio.to_thread(raw_ws, s, "/ws", None,
                                                     ["switchboard.v1.json"]))
            await poll_metric(s, WS_GAUGE, lambda v: v == 5, 5,
                              "switchboard_connections = 5 with 3 /echo and 2 /ws open")
            for w in socks:
                w.send_close(1000)
                try:
                    w.expect_close(1000, timeout=5)
                except HarnessError:
                    pass
                w.close()
            await poll_metric(s, WS_GAUGE, lambda v: v == 0, 10,
                              "switchboard_connections = 0 once every WebSocket closed")
        finally:
            for w in socks:
                w.close()

    async def case_default_namespace_alias(self):
        s = self.start(BASE, "alias")
        short_sub = full_sub = pub = None
        try:
            short_sub = await Client.open(s, "sub-room")
            full_sub = await Client.open(s, "sub-default-room")
            pub = await Client.open(s, "pub")
            for c in (short_sub, full_sub, pub):
                await c.connect(user=c.name)
            await short_sub.subscribe("room")
            r = await full_sub.request({"type": "subscribe", "channel": "default:room"})
            check(r.get("type") == "subscribed", f"subscribe default:room → {short(r)}")
            problems = []
            out1 = await api_ok_async(s, "publish", {"channel": "default:room", "data": "p1"})
            r2 = await pub.request({"type": "publish", "channel": "room", "data": "p2"})
            check(r2.get("type") == "published", f"publish to room over /ws → {short(r2)}")
            if r2.get("offset") != out1.get("offset", 0) + 1 or \
                    r2.get("epoch") != out1.get("epoch"):
                problems.append(f"`room` and `default:room` are separate streams: publishing "
                                f"to default:room gave {out1.get('epoch')}/{out1.get('offset')}, "
                                f"then to room {r2.get('epoch')}/{r2.get('offset')}")
            # Fences on each name, so "did not arrive" is decided by an event.
            await api_ok_async(s, "publish", {"channel": "room", "data": "fence"})
            await api_ok_async(s, "publish", {"channel": "default:room", "data": "fence"})
            for c in (short_sub, full_sub):
                try:
                    await c.wait_until(lambda c=c: sum(m.get("data") == "fence"
                                                       for m in c.messages()) >= 1, 5,
                                       "a fence")
                    # Both fences, if one channel; give the second its own bounded wait.
                    await c.wait_until(lambda c=c: sum(m.get("data") == "fence"
                                                       for m in c.messages()) >= 2, 2,
                                       "the second fence")
                except CheckFailed:
                    pass
                got = [(m.get("channel"), m.get("data")) for m in c.messages()]
                want = [("room", "p1"), ("room", "p2"), ("room", "fence"), ("room", "fence")]
                if got != want:
                    problems.append(f"{c.name} received {got}, expected {want} (one channel, "
                                    "named by its short form)")
            check(not problems, " || ".join(problems))
        finally:
            await stop_all([short_sub, full_sub, pub])


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_server_edges")
    suite = Suite(args.server, rep)
    for name in ("busy_port", "ws_size_configured", "ws_size_default", "ws_size_explicit",
                 "broadcast_atomic", "sigterm_idle_keepalive", "sighup_api_key", "sighup_burst", "head_healthz",
                 "method_not_allowed", "disconnect_unknown_client", "ws_gauge_counts_echo",
                 "default_namespace_alias"):
        await suite.run(name, timeout=60)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
