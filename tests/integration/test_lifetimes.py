#!/usr/bin/python3
"""Integration (regression): connections that stop reading or flood control frames must not
crash the server nor grow it without bound. One server per case.

Stalled reader during a history replay (a raw client with a 4 KiB receive buffer, set before
connect, that never reads again; 300 publications of a 60,000-character string, 17 MiB of
replay, in history first):
1. replay_since: `subscribe` with `since` offset 0 on `big:ch` (history 1,000,
   outbound_limit 1 MiB). The replay counts against outbound_limit like any other output:
   expect switchboard_slow_consumer_disconnects_total ≥ 1 within 15 s, the process running,
   /healthz 200, a healthy client served, RSS growth under 10 MiB (16 MiB under ASan): the
   client may cost its 1 MiB queue and some slack, while buffering the whole replay costs
   17 MiB (REPLAY_RSS_BOUND_MIB explains it).
2. replay_since_transport_guard: the same with `[websocket] max_backlog = "4MiB"`. The old
   code had two limits on /ws and freed the connection under its replay loop when the
   transport's was reached (SIGSEGV in release, an ASan memory error). Now /ws has one limit,
   messaging.outbound_limit, and websocket.max_backlog applies to /echo only: the case checks
   that setting it changes nothing for /ws.
3. resume_replay: the resume path. `alo` is at_least_once (history 1,000, session_ttl 60 s);
   a client subscribes `alo:ch`, notes its session and closes; 300 × 60 KB are published; a
   stalled client sends `connect` with that session and never reads. Same expectations.
4. resume_replay_transport_guard: case 3 with the 4 MiB transport cut-off.
5. api_disconnect_stalled: a subscriber of `big:live` reads its `connected` and `subscribed`
   replies, then stalls; 60 KB publications are published one by one until the backlog the
   server holds for it passes 256 KiB (switchboard_outbound_backlog_bytes; the kernel's send
   buffer takes the first few MiB), far below outbound_limit; POST /api/disconnect for it: the
   server keeps running and serving others, and the stalled connection ends (the
   switchboard_connections{transport="websocket"} gauge drops back) within 15 s (the close
   handshake it will never answer is bounded by the server's close timeout, 5 s).

Ping flood (masked 125-byte pings, as fast as the socket takes them, never reading, 4 KiB
receive buffer, for at most FLOOD_SECONDS or until a send fails):
6. ping_flood_ws, 7. ping_flood_echo: on /ws and /echo. The server must close the
   connection before FLOOD_SECONDS pass (the fix closes 1008 when a peer sends more than 1,000
   pings in a second, then its close timeout bounds the close handshake); the close frame is
   checked for 1008 when it can be read after the flood; RSS growth under 32 MiB (up to 1,000
   pongs are legitimate; answering a 10 s flood costs GiBs); a healthy client is served
   afterwards; the server log has a line with "too many pings". The flood stops early once
   the server grew by 128 MiB (the case has failed by then; this keeps the machine safe).
8. polite_pings: 5 pings 300 ms apart on /ws and on /echo each get their pong (no false
   positive of the flood limit).

  /usr/bin/python3 tests/integration/test_lifetimes.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ConnectionClosed,  # noqa: E402
                     Deadline, DeadlineExceeded, Reporter, encode_frame)
from messaging import (API_KEY, CheckFailed, Client, RawClient, api_async,  # noqa: E402
                       api_ok_async, check, http_call, metrics, require_websockets, short,
                       suite_arguments)
from regression import (BACKLOG, DISCONNECTS, WS_GAUGE, Cases, RssWatch,  # noqa: E402
                        check_alive, healthy_roundtrip, poll_metric, publish_many, raw_ws,
                        rst_close, sanitized, server_log, small_asan_quarantine)

require_websockets()
small_asan_quarantine()

N_PUBS = 300
DATA = "r" * 60_000              # one publication: a 60,000-character JSON string
REPLAY_MIB = N_PUBS * (len(DATA) + 100) / 2**20   # ≈ 17 MiB of `message` events

# RSS growth allowed while a stalled client is being replayed 17 MiB, over the baseline taken
# after publishing (the history itself is in the baseline). What the server may hold: the
# client's queue up to outbound_limit (1 MiB) plus the message that crossed it, a string that
# doubled while growing to that (2 MiB more, transiently the old and the new buffer), one
# message being encoded, and allocator slack of two loop threads: well under 10 MiB.
# Buffering the whole replay costs ≈ 17 MiB (measured: +17 MiB on the old code), so the
# release bound tells the two apart. Under AddressSanitizer (redzones, a 4 MiB quarantine,
# shadow pages) everything costs more: a server that cuts the client off at outbound_limit
# grew by ~6 MiB there in a trial, buffering the whole replay by ~20 MiB (measured on the
# old code), so 16 MiB still tells them apart with room on both sides.
REPLAY_RSS_BOUND_MIB = 10
REPLAY_RSS_BOUND_ASAN_MIB = 16

# Ping flood: the server may answer at most ~1,000 pings with pongs (127 KB) before closing;
# 32 MiB is far above that plus allocator and sanitizer noise, and far below what answering
# every ping of a 10 s flood costs (hundreds of MiB on the old code).
FLOOD_RSS_BOUND_MIB = 32
FLOOD_SECONDS = 10.0
# The flood stops early once the server has grown this much (4 × the bound): the case has
# failed by then, and an unbounded server would otherwise grow by GiBs (seen: +1.9 GiB).
FLOOD_ABORT_MIB = 4 * FLOOD_RSS_BOUND_MIB
PING_PAYLOAD = b"p" * 125

# A stalled subscriber's kernel send buffer absorbs up to tcp_wmem's maximum (4 MiB on
# Debian) before the server queues anything itself: 60 KB publications that may be needed
# before its backlog shows.
MAX_LIVE_PUBS = 120

REPLAY_WAIT_S = 15.0  # for the slow-consumer cut-off after the replay started (ASan-safe)

CONFIG_BIG = f"""
[api]
key = "{API_KEY}"

[messaging]
outbound_limit = "1MiB"
rate_limit = 1000000

[namespaces.big]
history_size = 1000
"""

CONFIG_ALO = f"""
[api]
key = "{API_KEY}"

[messaging]
outbound_limit = "1MiB"
rate_limit = 1000000

[namespaces.big]
history_size = 1000

[namespaces.alo]
delivery = "at_least_once"
history_size = 1000
session_ttl = "60s"
"""

# The transport's last-resort backlog cut-off, reachable during a 17 MiB replay.
TRANSPORT_GUARD = """
[websocket]
max_backlog = "4MiB"
"""


def healthz(server) -> int:
    status, _ = http_call(server, "GET", "/healthz", key=None)
    return status


class Suite(Cases):
    def __init__(self, binary: str, rep: Reporter):
        super().__init__(binary, rep)
        self.asan = sanitized(binary)
        self.replay_bound = REPLAY_RSS_BOUND_ASAN_MIB if self.asan else REPLAY_RSS_BOUND_MIB

    # ------------------------------------------------------------------ stalled replay
    async def after_stall(self, s, watch: RssWatch, base_disc: float, what: str):
        """The expectations shared by the replay cases, once a stalled client was replayed."""
        await poll_metric(s, DISCONNECTS, lambda v: v >= base_disc + 1, REPLAY_WAIT_S,
                          f"slow-consumer disconnect of the stalled client ({what}; "
                          f"{REPLAY_MIB:.0f} MiB of replay, outbound_limit 1 MiB)",
                          extra=(BACKLOG, WS_GAUGE))
        check_alive(s, f"after the cut-off ({what})")
        status = await asyncio.to_thread(healthz, s)
        check(status == 200, f"GET /healthz → {status} after {what}")
        await healthy_roundtrip(s, "big:healthy")
        check_alive(s, f"after the healthy client ({what})")
        grew = watch.stop()
        print(f"NOTE       {what}: RSS baseline {watch.baseline_kib / 1024:.1f} MiB, peak "
              f"+{grew:.1f} MiB (bound {self.replay_bound} MiB)", flush=True)
        check(grew < self.replay_bound,
              f"server RSS grew by {grew:.1f} MiB (bound {self.replay_bound} MiB) while a "
              f"stalled client was replayed {REPLAY_MIB:.0f} MiB ({what})")

    async def replay_since(self, guard: bool):
        s = self.start(CONFIG_BIG + (TRANSPORT_GUARD if guard else ""), "replay")
        raw = None
        watch = None
        try:
            pubs = await asyncio.to_thread(publish_many, s, "big:ch", N_PUBS, DATA)
            epoch = pubs[0]["epoch"]
            h = await api_ok_async(s, "history", {"channel": "big:ch", "limit": 1})
            check(h.get("epoch") == epoch and h.get("offset") == N_PUBS,
                  f"history of big:ch after {N_PUBS} publications: {short(h)}")
            base_disc = (await asyncio.to_thread(metrics, s)).get(DISCONNECTS, 0.0)
            watch = RssWatch(s)
            raw = RawClient(s, rcvbuf=4096)
            raw.connect(user="stalled")
            # From here on the client never reads.
            raw.send({"type": "subscribe", "id": "since0", "channel": "big:ch",
                      "since": {"epoch": epoch, "offset": 0}})
            await self.after_stall(s, watch, base_disc, "subscribe since offset 0" +
                                   (" with a 4 MiB transport max_backlog" if guard else ""))
        finally:
            if watch:
                watch.stop()
            if raw:
                rst_close(raw.ws.sock)

    async def case_replay_since(self):
        await self.replay_since(guard=False)

    async def case_replay_since_transport_guard(self):
        await self.replay_since(guard=True)

    async def resume_replay(self, guard: bool):
        s = self.start(CONFIG_ALO + (TRANSPORT_GUARD if guard else ""), "resume")
        raw = None
        watch = None
        a = await Client.open(s, "first-holder")
        try:
            await a.connect(user="worker")
            sid = a.session
            await a.subscribe("alo:ch")
            await a.close()
            await a.wait_closed(5)
            await asyncio.to_thread(publish_many, s, "alo:ch", N_PUBS, DATA)
            base_disc = (await asyncio.to_thread(metrics, s)).get(DISCONNECTS, 0.0)
            watch = RssWatch(s)
            raw = RawClient(s, rcvbuf=4096)
            # Never reads, not even the `connected` reply.
            raw.send({"type": "connect", "id": "resume", "user": "worker", "session": sid})
            await self.after_stall(s, watch, base_disc, "resume of an at-least-once session "
                                   "with 300 un-received publications" +
                                   (" with a 4 MiB transport max_backlog" if guard else ""))
        finally:
            await a.stop()
            if watch:
                watch.stop()
            if raw:
                rst_close(raw.ws.sock)

    async def case_resume_replay(self):
        await self.resume_replay(guard=False)

    async def case_resume_replay_transport_guard(self):
        await self.resume_replay(guard=True)

    async def case_api_disconnect_stalled(self):
        s = self.start(CONFIG_BIG, "apidisc")
        raw = None
        healthy = None
        try:
            g0 = (await asyncio.to_thread(metrics, s)).get(WS_GAUGE, 0.0)
            raw = RawClient(s, rcvbuf=4096)
            cid = raw.connect(user="stalled")["client"]
            r = raw.request({"type": "subscribe", "channel": "big:live"})
            check(r.get("type") == "subscribed", f"stalled subscribe → {short(r)}")
            # From here on the stalled client never reads.
            g1 = await poll_metric(s, WS_GAUGE, lambda v: v >= g0 + 1, 5,
                                   "the stalled connection in the gauge")
            # The kernel first takes a few MiB into the server's send buffer (autotuned), so
            # publish until the backlog the server itself holds for the client is clearly
            # non-empty, and stop far below outbound_limit (1 MiB), before the policy acts.
            base_disc = (await asyncio.to_thread(metrics, s)).get(DISCONNECTS, 0.0)
            backlog = 0.0
            sent = 0
            while backlog < 256 * 1024:
                check(sent < MAX_LIVE_PUBS, f"{sent} × 60 KB publications and the stalled "
                      f"subscriber's backlog is only {backlog / 1024:.0f} KiB: it is not "
                      "stalled, the case would prove nothing")
                await asyncio.to_thread(publish_many, s, "big:live", 1, DATA)
                sent += 1
                m = await asyncio.to_thread(metrics, s)
                backlog = m.get(BACKLOG, 0.0)
                check(m.get(DISCONNECTS, 0.0) == base_disc, f"the stalled subscriber was cut "
                      f"off as a slow consumer after {sent} publications, before the API call")
            print(f"NOTE       {sent} × 60 KB to the stalled subscriber: backlog "
                  f"{backlog / 1024:.0f} KiB", flush=True)
            check_alive(s, "before /api/disconnect")
            status, out = await api_async(s, "disconnect", {"client": cid})
            check(status == 200, f"POST /api/disconnect {{client: {cid}}} → {status} "
                  f"{short(out)}")
            check_alive(s, "right after /api/disconnect of a stalled client")
            await healthy_roundtrip(s, "big:other")
            status = await asyncio.to_thread(healthz, s)
            check(status == 200, f"GET /healthz → {status} after /api/disconnect")
            await poll_metric(s, WS_GAUGE, lambda v: v <= g1 - 1, 15,
                              f"the end of the stalled connection after /api/disconnect "
                              f"(gauge back to {g1 - 1:.0f})")
            check_alive(s, "after the stalled connection ended")
            # Others are still served after it is gone.
            healthy = await Client.open(s, "after")
            await healthy.connect(user="after")
            await healthy.ping_ok()
        finally:
            if healthy:
                await healthy.stop()
            if raw:
                rst_close(raw.ws.sock)

    # ------------------------------------------------------------------ ping flood
    def flood(self, s, path: str, watch: RssWatch) -> dict:
        """Floods pings on a fresh connection (blocking; run in a thread). Never abandons a
        partial frame, so a close can only come from the server's policy, not from a frame
        we broke."""
        protocols = ["switchboard.v1.json"] if path == "/ws" else None
        w = raw_ws(s, path, rcvbuf=4096, protocols=protocols)
        sock = w.sock
        sock.setblocking(False)
        frame = encode_frame(OP_PING, PING_PAYLOAD)
        chunk = frame * 64
        out = {"sent_pings": 0, "ended": None, "at": None, "sock": sock, "ws": w}
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_WRITE)
        t0 = time.monotonic()
        deadline = Deadline(FLOOD_SECONDS)
        try:
            while out["ended"] is None:
                view = memoryview(chunk)
                while view:
                    if deadline.expired():
                        out["ended"] = "deadline"
                        break
                    if watch.grown_mib() > FLOOD_ABORT_MIB:
                        out["ended"] = "rss"
                        break
                    if not sel.select(min(0.2, deadline.remaining())):
                        continue  # the server is not reading right now; keep trying
                    try:
                        n = sock.send(view)
                    except BlockingIOError:
                        continue
                    except (BrokenPipeError, ConnectionResetError) as e:
                        out["ended"] = e.__class__.__name__
                        break
                    view = view[n:]
                else:
                    out["sent_pings"] += 64
        finally:
            sel.close()
        out["at"] = time.monotonic() - t0
        return out

    @staticmethod
    def close_code_after(w, seconds: float = 3.0):
        """After the flood: reads what the server left (pongs, close) until EOF, RST or the
        deadline. Returns the close code seen, or a description."""
        w.sock.setblocking(True)
        deadline = Deadline(seconds)
        try:
            while True:
                f = w.recv_frame(deadline=deadline)
                if f.opcode == OP_CLOSE:
                    return f.close_code()
        except ConnectionClosed as e:
            return f"no close frame readable (TCP {e.how})"
        except DeadlineExceeded:
            return "no close frame readable"
        except OSError as e:
            return f"no close frame readable ({e})"

    async def ping_flood(self, path: str):
        s = self.start(CONFIG_BIG, "flood" + path.replace("/", "-"), log_level="info")
        watch = RssWatch(s)
        res = None
        try:
            res = await asyncio.to_thread(self.flood, s, path, watch)
            grew = watch.stop()
            mib = res["sent_pings"] * len(encode_frame(OP_PING, PING_PAYLOAD)) / 2**20
            print(f"NOTE       {path}: {res['sent_pings']} pings ({mib:.0f} MiB) in "
                  f"{res['at']:.2f}s, ended by {res['ended']}; RSS +{grew:.1f} MiB", flush=True)
            check_alive(s, f"after the ping flood on {path}")
            check(res["ended"] != "rss",
                  f"{path}: server RSS grew by more than {FLOOD_ABORT_MIB} MiB after "
                  f"{res['sent_pings']} pings ({mib:.0f} MiB) of 125 bytes in {res['at']:.2f}s "
                  f"without the connection being closed (flood stopped there)")
            check(res["ended"] != "deadline",
                  f"{path}: {res['sent_pings']} pings ({mib:.0f} MiB) of 125 bytes sent in "
                  f"{FLOOD_SECONDS:.0f}s without reading, and the server never closed the "
                  f"connection (expected a close after > 1,000 pings in a second)")
            code = await asyncio.to_thread(self.close_code_after, res["ws"])
            print(f"NOTE       {path}: after the flood: close {code}", flush=True)
            if isinstance(code, int):
                check(code == 1008, f"{path}: the flood was closed with {code}, expected 1008")
            check(grew < FLOOD_RSS_BOUND_MIB,
                  f"{path}: server RSS grew by {grew:.1f} MiB (bound {FLOOD_RSS_BOUND_MIB} MiB) "
                  f"during a flood of {mib:.0f} MiB of pings")
            await healthy_roundtrip(s, "big:after-flood")
            if path == "/echo":
                e = raw_ws(s, "/echo")
                try:
                    e.send_message(OP_TEXT, b"still echoing")
                    m = e.recv_message(timeout=5)
                    check(m.data == b"still echoing", f"/echo after the flood echoed {m.data!r}")
                finally:
                    e.close()
            deadline = Deadline(5)
            while "too many pings" not in server_log(s):
                check(not deadline.expired(), f"{path}: no log line with 'too many pings' "
                      f"after the flood; log tail: {short(server_log(s)[-400:], 400)}")
                await asyncio.sleep(0.05)  # polling the log file (the line is the event)
        finally:
            watch.stop()
            if res:
                rst_close(res["sock"])

    async def case_ping_flood_ws(self):
        await self.ping_flood("/ws")

    async def case_ping_flood_echo(self):
        await self.ping_flood("/echo")

    @staticmethod
    def polite(s, path: str) -> list[bytes]:
        protocols = ["switchboard.v1.json"] if path == "/ws" else None
        w = raw_ws(s, path, protocols=protocols)
        pongs = []
        try:
            for i in range(5):
                pace = Deadline(0.3)
                payload = f"polite-{i}".encode()
                w.send_frame(OP_PING, payload)
                deadline = Deadline(5)
                while True:
                    f = w.recv_frame(deadline=deadline)
                    if f.opcode == OP_PONG:
                        pongs.append(f.payload)
                        if f.payload == payload:
                            break
                    elif f.opcode == OP_CLOSE:
                        raise CheckFailed(f"{path}: polite ping #{i + 1} → close "
                                          f"{f.close_code()} {f.close_reason()!r}")
                if i < 4:
                    time.sleep(pace.remaining())  # pacing the client: 300 ms between pings
        except DeadlineExceeded:
            raise CheckFailed(f"{path}: no pong for polite ping #{len(pongs) + 1} within 5s; "
                              f"pongs so far {pongs}") from None
        finally:
            w.close()
        return pongs

    async def case_polite_pings(self):
        s = self.start(CONFIG_BIG, "polite", log_level="info")
        for path in ("/ws", "/echo"):
            pongs = await asyncio.to_thread(self.polite, s, path)
            want = [f"polite-{i}".encode() for i in range(5)]
            check(pongs == want, f"{path}: 5 pings 300 ms apart got pongs {pongs}, expected "
                  f"{want}")
        check("too many pings" not in server_log(s),
              "polite pings were logged as 'too many pings'")
        check_alive(s, "after polite pings")


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_lifetimes")
    suite = Suite(args.server, rep)
    if suite.asan:
        print(f"NOTE       sanitized server: replay RSS bound {suite.replay_bound} MiB")
    for name in ("replay_since", "replay_since_transport_guard", "resume_replay",
                 "resume_replay_transport_guard", "api_disconnect_stalled", "ping_flood_ws",
                 "ping_flood_echo", "polite_pings"):
        await suite.run(name, timeout=60)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
