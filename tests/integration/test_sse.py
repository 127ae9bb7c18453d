#!/usr/bin/python3
"""Integration: the Server-Sent Events transport (src/server/sse.h): GET /sse streams a
session's events as text/event-stream (the native JSON of docs/protocol.md, one event per
`data:` block), POST /sse?session=S runs the session's requests, and each publication's
`id:` ("<session>|<channel>!<epoch>!<offset>|…") lets a client that reconnects with
Last-Event-ID resume its session and recover every channel exactly.

The stream is read over a plain socket and parsed here, per the HTML standard's
event-stream interpretation (lines end in CRLF, LF or CR; `data` lines joined by LF, the
last LF removed; `id` sets the last event id, which events without one keep; `retry`
digits only; `:` comments ignored; an empty line dispatches).

 1. stream: `retry:` first, then `connected`, a `subscribed` per ?channel=, then
    publications made by /api/publish and by POST /sse, each with an `id:` that names the
    session and the position of every channel delivered so far (channels sorted).
 2. join/leave on a join_leave namespace, none on a namespace without it.
 3. heartbeat: a quiet stream gets {"type":"ping"} events (--ping-interval 1s).
 4. POST /sse (?session= and X-Switchboard-Session): subscribe (then deliveries on the
    stream), unsubscribe (then none), publish, presence, history, ack, ping; `connect`
    refused; unknown session 404; no session 400.
 5. exact recovery: a stream stops after N publications (its socket closed, or reset, with
    the rest unread), K more are published, a GET with Last-Event-ID = the last id it
    parsed receives exactly the missed ones, in order, then live ones; `connected` says
    resumed:true and every channel recovered:true; every publication of three channels
    arrives exactly once across the cut. Also with the old stream still open (takeover).
 6. history no longer has them (history_size 3) → recovered:false, and what is still kept
    follows in order.
 7. bad Last-Event-ID / since → 400; a bare GET /sse opens a session that subscribes by POST; ?since=<channel>!<epoch>!<offset> and ?lastEventId= on
    a first request recover like Last-Event-ID.
 8. at-least-once: acks over POST; a session resume after a cut redelivers the un-acked
    (not the acked); a Last-Event-ID resume delivers everything after the id and, per
    docs/protocol.md ("at-least-once channels get what was not acked"), the un-acked
    publications at or before it as well.
 9. auth (HS256): GET without a token → 401 token_required (WWW-Authenticate: Bearer), a
    bad token → 401 invalid_token; POST without a token → 401, another user's → 403, the
    owner's → 200. With an anonymous namespace, an anonymous stream's POSTs work.
10. slow consumer: 8 streams that never read (4 KiB SO_RCVBUF) and a healthy one on the
    same channel; 2,500 × 4 KiB publications: the healthy stream receives every one in
    order, the stalled ones are cut (metric), each holding a contiguous prefix then
    `disconnect` 4000, then EOF; server RSS stays under baseline + outbound_limit × streams
    + 24 MiB (see RSS_MARGIN_MIB).
11. rate limit: a session flooding POSTs gets 429 rate_limited, and after 20 refusals in a
    row its stream ends with `disconnect` 1008 (as /ws); another session's POSTs and stream
    are unaffected.
12. SIGTERM: every open stream gets `disconnect` 1001 "server shutting down; reconnect"
    and ends; the process exits 0.

  /usr/bin/python3 tests/integration/test_sse.py --server build/release/switchboard
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, Server, api_ok_async,  # noqa: E402
                       check, compress, http_call, metrics_async, require_websockets,
                       run_case, short, suite_arguments, wait_metric)
from sse import ID_RE, SseParser, SseStream, close_all, parse_id, qs  # noqa: E402,F401

require_websockets()

# Under AddressSanitizer freed blocks wait in a quarantine before reuse: keep it small so RSS
# measures the server (no effect on an uninstrumented binary).
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                              ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256").lstrip(":")

CONFIG = f"""
[api]
key = "{API_KEY}"
rate_limit = 0

[messaging]
rate_limit = 100000

[namespaces.chat]
presence = true
join_leave = true
history_size = 1000

[namespaces.feed]
history_size = 1000

[namespaces.small]
history_size = 3

[namespaces.alo]
delivery = "at_least_once"
history_size = 1000
"""

SSE_METRIC = 'switchboard_connections{transport="sse"}'
SLOW_METRIC = "switchboard_slow_consumer_disconnects_total"


def uniq(prefix: str) -> str:
    return f"{prefix}-{random.randrange(1 << 30):x}"


async def post(server: Server, body, session: str | None = None, header: bool = False,
               token: str | None = None, raw: bool = False):
    """POST /sse for a session; returns (status, parsed JSON or text)."""
    headers = {}
    path = "/sse"
    if session is not None:
        if header:
            headers["X-Switchboard-Session"] = session
        else:
            path += f"?session={session}"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if raw else json.dumps(body)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: http_call(
        server, "POST", path, data, key=None, headers=headers))


async def post_ok(server, body, session, **kw) -> dict:
    st, out = await post(server, body, session, **kw)
    check(st == 200 and isinstance(out, dict),
          f"POST /sse {short(body)} → {st} {short(out)}")
    return out


async def publish(server, channel, data) -> dict:
    return await api_ok_async(server, "publish", {"channel": channel, "data": data})


async def wait_session_released(server, session: str, what: str, timeout: float = 10.0):
    """Waits until no stream holds `session`: POST /sse answers 404 (or 410) instead of a pong.
    Specific to that session, unlike the open-streams gauge."""
    deadline = Deadline(timeout)
    while True:
        st, out = await post(server, {"type": "ping", "id": "held?"}, session)
        if st in (404, 410):
            return
        check(st == 200, f"POST ping to {session} → {st} {short(out)}")
        if deadline.expired():
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}: the session "
                              "is still held")
        await asyncio.sleep(0.02)


def err_code(out) -> str | None:
    if isinstance(out, dict):
        return out.get("code") or out.get("error")
    return None


# --------------------------------------------------------------------------------------------
# Cases on the main server


class Suite:
    def __init__(self, binary: str):
        self.binary = binary
        self.s: Server | None = None

    # 1
    async def case_stream_order_and_ids(self):
        a, b = f"feed:{uniq('a')}", f"chat:{uniq('b')}"
        st = await SseStream.open(self.s, qs(a, b, user="u1"), name="A")
        try:
            check(st.status == 200, f"GET → {st.status} {st.body!r}")
            ctype = st.headers.get("content-type", "")
            check(ctype.split(";")[0].strip() == "text/event-stream",
                  f"Content-Type {ctype!r}")
            check("no-cache" in st.headers.get("cache-control", ""),
                  f"Cache-Control {st.headers.get('cache-control')!r}")
            con = await st.opened(0)
            s1 = (await st.expect_type("subscribed"))["json"]
            s2 = (await st.expect_type("subscribed"))["json"]
            check([s1.get("channel"), s2.get("channel")] == [a, b],
                  f"subscribed order {s1.get('channel')}, {s2.get('channel')}; asked {a}, {b}")
            kinds = [k if k != "event" else v["json"].get("type") for k, v in st.parser.items]
            check(kinds[:2] == ["retry", "connected"],
                  f"stream starts {kinds[:4]}; expected retry, then connected")
            check(500 <= (st.parser.retry or 0) <= 2500,
                  f"retry: {st.parser.retry} (sse.cpp: 500-2500 ms)")
            check(con.get("resumed") is False and re.fullmatch(r"s_[0-9a-f]{32}",
                  con.get("session", "")) and con.get("client"),
                  f"connected {short(con)}")
            check(con.get("ping_interval") == 1, f"connected.ping_interval "
                  f"{con.get('ping_interval')} (server runs --ping-interval 1s)")
            # Events without an id keep no id of their own: nothing was published yet.
            check(all(e["id"] == "" for e in st.events), "an event before any publication "
                  f"carried an id: {[e['id'] for e in st.events]}")
            sess = con["session"]
            p1 = await publish(self.s, a, {"n": 1})
            m1 = await st.expect_type("message", channel=a)
            check(m1["json"].get("data") == {"n": 1} and m1["json"].get("offset") ==
                  p1["offset"] and m1["json"].get("epoch") == p1["epoch"],
                  f"message {short(m1['json'])} for /api/publish {short(p1)}")
            check(m1["id"] == f"{sess}|{a}!{p1['epoch']}!{p1['offset']}",
                  f"id {m1['id']!r}; expected {sess}|{a}!{p1['epoch']}!{p1['offset']}")
            r = await post_ok(self.s, {"type": "publish", "id": 7, "channel": b,
                                        "data": "via post"}, sess)
            check(r.get("type") == "published" and r.get("id") == 7 and r.get("channel") == b,
                  f"POST publish → {short(r)}")
            m2 = await st.expect_type("message", channel=b)
            check(m2["json"].get("data") == "via post" and m2["json"]["offset"] == r["offset"],
                  f"message {short(m2['json'])} for POST publish {short(r)}")
            sid, chans = parse_id(m2["id"])
            want = {a: (p1["epoch"], p1["offset"]), b: (r["epoch"], r["offset"])}
            check(sid == sess and chans == want,
                  f"id {m2['id']!r}: expected session {sess} and positions {want}")
            await publish(self.s, a, "two")
            m3 = await st.expect_type("message", channel=a, data="two")
            _, chans = parse_id(m3["id"])
            check(chans[b] == want[b] and chans[a][1] == p1["offset"] + 1,
                  f"id after a second publication {m3['id']!r}")
        finally:
            await st.close()

    # 2
    async def case_join_leave(self):
        ch, quiet = f"chat:{uniq('j')}", f"feed:{uniq('j')}"
        a = await SseStream.open(self.s, qs(ch, quiet, user="ua"), name="A")
        b = None
        try:
            ca = await a.opened(2)
            j = (await a.expect_type("join", channel=ch))["json"]
            check(j.get("client") == ca["client"] and j.get("user") == "ua",
                  f"own join {short(j)}; client {ca['client']}")
            b = await SseStream.open(self.s, qs(ch, quiet, user="ub"), name="B")
            cb = await b.opened(2)
            jb = (await a.expect_type("join", channel=ch, client=cb["client"]))["json"]
            check(jb.get("user") == "ub", f"join of B {short(jb)}")
            # B's presence is visible; then B's socket closes: A sees B leave.
            r = await post_ok(self.s, {"type": "presence", "id": "p", "channel": ch},
                              ca["session"])
            ids = sorted(c.get("client") for c in r.get("clients", []))
            check(r.get("count") == 2 and ids == sorted([ca["client"], cb["client"]]),
                  f"presence {short(r)}")
            await b.close()
            lv = (await a.expect_type("leave", channel=ch, client=cb["client"]))["json"]
            check(lv.get("user") == "ub", f"leave {short(lv)}")
            # The feed namespace announces nothing: after a marker, no join/leave for it.
            await publish(self.s, quiet, "marker")
            await a.expect_type("message", channel=quiet, data="marker")
            bad = [e["json"] for e in a.events if e["json"].get("type") in ("join", "leave")
                   and e["json"].get("channel") == quiet]
            check(not bad, f"join/leave on a namespace without join_leave: {short(bad)}")
        finally:
            await close_all([a, b])

    # 3
    async def case_heartbeat(self):
        st = await SseStream.open(self.s, qs(f"feed:{uniq('hb')}"), name="HB")
        try:
            await st.opened(1)
            p1 = await st.expect_type("ping", 5)
            p2 = await st.expect_type("ping", 5)
            check(p1["json"] == {"type": "ping"} and p2["json"] == {"type": "ping"},
                  f"heartbeats {p1['data']!r} {p2['data']!r}")
        finally:
            await st.close()

    # 4
    async def case_post_requests(self):
        home, extra = f"feed:{uniq('home')}", f"feed:{uniq('extra')}"
        alo = f"alo:{uniq('ack')}"
        st = await SseStream.open(self.s, qs(home, user="poster"), name="P")
        try:
            con = await st.opened(1)
            S = con["session"]
            # ping, both ways of naming the session
            for header in (False, True):
                r = await post_ok(self.s, {"type": "ping", "id": f"p{header}"}, S,
                                  header=header)
                check(r == {"type": "pong", "id": f"p{header}"},
                      f"ping (session in {'header' if header else 'query'}) → {short(r)}")
            r = await post_ok(self.s, {"type": "subscribe", "id": 1, "channel": extra}, S,
                              header=True)
            check(r.get("type") == "subscribed" and r.get("channel") == extra and r.get("id") == 1,
                  f"subscribe → {short(r)}")
            p = await publish(self.s, extra, "x1")
            m = await st.expect_type("message", channel=extra)
            check(m["json"]["offset"] == p["offset"], f"after POST subscribe: {short(m['json'])}")
            r = await post_ok(self.s, {"type": "subscribe", "id": 2, "channel": extra}, S)
            check(r.get("type") == "error" and r.get("code") == "already_subscribed",
                  f"second subscribe → {short(r)}")
            r = await post_ok(self.s, {"type": "unsubscribe", "id": 3, "channel": extra}, S)
            check(r == {"type": "unsubscribed", "id": 3, "channel": extra},
                  f"unsubscribe → {short(r)}")
            await publish(self.s, extra, "not for us")
            r = await post_ok(self.s, {"type": "publish", "id": 4, "channel": home,
                                        "data": {"k": [1, 2]}}, S)
            check(r.get("type") == "published" and r.get("channel") == home and
                  isinstance(r.get("offset"), int) and r.get("epoch"), f"publish → {short(r)}")
            await st.expect_type("message", channel=home, offset=r["offset"])
            leaked = st.msgs(extra)
            check(len(leaked) == 1, f"after unsubscribe the stream still got {short(leaked)}")
            r = await post_ok(self.s, {"type": "history", "id": 5, "channel": home}, S)
            pubs = r.get("publications") or []
            check(r.get("type") == "history" and [x.get("data") for x in pubs] == [{"k": [1, 2]}],
                  f"history → {short(r)}")
            r = await post_ok(self.s, {"type": "presence", "id": 6, "channel": home}, S)
            check(r.get("type") == "error" and r.get("code") == "presence_disabled",
                  f"presence on feed (presence off) → {short(r)}")
            r = await post_ok(self.s, {"type": "presence", "id": 6, "channel":
                                        f"chat:{uniq('pr')}"}, S)
            check(r.get("type") == "presence" and r.get("count") == 0,
                  f"presence → {short(r)}")
            r = await post_ok(self.s, {"type": "subscribe", "id": 7, "channel": alo}, S)
            check(r.get("type") == "subscribed", f"subscribe {alo} → {short(r)}")
            pa = await publish(self.s, alo, "job")
            await st.expect_type("message", channel=alo, offset=pa["offset"])
            r = await post_ok(self.s, {"type": "ack", "id": 8, "channel": alo,
                                        "offset": pa["offset"]}, S)
            check(r == {"type": "acked", "id": 8}, f"ack → {short(r)}")
            r = await post_ok(self.s, {"type": "connect", "id": 9}, S)
            check(r.get("type") == "error" and r.get("id") == 9 and
                  r.get("code") == "bad_request", f"connect over POST → {short(r)}")
            r = await post_ok(self.s, "{not json", S, raw=True)
            check(r.get("type") == "error" and r.get("code") == "bad_json",
                  f"bad JSON → {short(r)}")
            st_, out = await post(self.s, {"type": "ping", "id": 1}, "s_" + "0" * 32)
            check(st_ == 404 and err_code(out) == "not_found",
                  f"POST for an unknown session → {st_} {short(out)}")
            st_, out = await post(self.s, {"type": "ping", "id": 1}, None)
            check(st_ == 400 and err_code(out) == "bad_request",
                  f"POST without a session → {st_} {short(out)}")
            # The stream is still healthy after all of it.
            await st.expect_type("ping", 5)
            check(not st.eof.is_set(), "stream ended")
        finally:
            await st.close()

    # 5
    async def _exact_recovery(self, how: str):
        chans = [f"feed:{uniq('r' + str(i))}" for i in range(3)]
        path = qs(*chans, user="rec")
        N, FIRST, K, LIVE = 12, 30, 15, 6
        a = await SseStream.open(self.s, path, name="A", stop_after=None if how == "takeover"
                                 else N)
        a.cut_rst = how == "rst"
        b = None
        published: list[tuple[str, int]] = []
        try:
            ca = await a.opened(3)
            for i in range(FIRST):
                ch = chans[i % 3]
                p = await publish(self.s, ch, {"i": i})
                published.append((ch, p["offset"]))
            if how == "takeover":
                await a.wait_until(lambda: a.messages_seen >= N, 10, f"{N} messages")
            else:
                await a.wait_eof(10)  # the reader cut itself after N
                if how in ("close", "rst"):
                    await wait_session_released(self.s, ca["session"],
                                                "the server to see the cut stream gone")
            got_a = [(m["channel"], m["offset"]) for m in a.msgs()]
            last_id = a.last_event_id
            if how != "takeover":
                check(len(got_a) == N, f"A parsed {len(got_a)} messages, stop_after {N}")
            _, pos = parse_id(last_id)
            for i in range(K):
                ch = chans[i % 3]
                p = await publish(self.s, ch, {"k": i})
                published.append((ch, p["offset"]))
            b = await SseStream.open(self.s, path, headers={"Last-Event-ID": last_id},
                                     name="B")
            cb = await b.opened(0)
            check(cb.get("resumed") is True and cb.get("session") == ca["session"],
                  f"connected after the cut {short(cb)}; session was {ca['session']}")
            restored = {c.get("channel"): c for c in cb.get("channels", [])}
            check(sorted(restored) == sorted(chans) and
                  all(c.get("recovered") is True for c in restored.values()),
                  f"connected.channels {short(cb.get('channels'))}")
            replay_n = len(published) - len(got_a)
            if how == "takeover":
                dis = await a.expect_type("disconnect", 10)
                check(dis["json"].get("code") == 4004, f"old stream got {short(dis['json'])}")
                await a.wait_eof(10)
                got_a = [(m["channel"], m["offset"]) for m in a.msgs()]
                # What A parsed after the id B resumed from is delivered to both (B starts
                # from its Last-Event-ID): count A only up to that id.
                got_a = [x for x in got_a if x[1] <= pos.get(x[0], ("", 0))[1]]
                replay_n = len(published) - len(got_a)
            try:
                await b.wait_until(lambda: len(b.msgs()) >= replay_n, 10,
                                   f"{replay_n} recovered publications")
            except CheckFailed as e:
                have = {ch: [m["offset"] for m in b.msgs(ch)] for ch in chans}
                raise CheckFailed(f"{e}; A parsed up to {pos} ({len(got_a)} messages); B got "
                                  f"{have}; connected {short(cb)}") from None
            n_before_live = len(b.msgs())
            for i in range(LIVE):
                ch = chans[i % 3]
                p = await publish(self.s, ch, {"live": i})
                published.append((ch, p["offset"]))
            await b.wait_until(lambda: len(b.msgs()) >= len(published) - len(got_a), 10,
                               "the live publications")
            got_b = [(m["channel"], m["offset"]) for m in b.msgs()]
            missed = [x for x in published if x not in set(got_a)]
            check(n_before_live == replay_n, f"B had {n_before_live} messages before the live "
                  f"ones were published; {replay_n} were missed")
            for ch in chans:
                want = [o for c, o in missed if c == ch]
                have = [o for c, o in got_b if c == ch]
                check(have == want, f"{ch}: after the cut expected offsets {compress(want)}, "
                      f"got {compress(have)} (A had up to {pos.get(ch)})")
            every = got_a + got_b
            dups = sorted({x for x in every if every.count(x) > 1})
            check(not dups and sorted(every) == sorted(published),
                  f"across the cut: duplicates {dups[:10]}, missing "
                  f"{sorted(set(published) - set(every))[:10]}")
            # The replay came before the live ones, and every id matches its message.
            first_live = set(published[FIRST + K:])
            idx_live = [i for i, x in enumerate(got_b) if x in first_live]
            check(min(idx_live) == replay_n, f"live ones interleaved with the replay: "
                  f"{got_b}")
            for e in b.events:
                j = e["json"]
                if j.get("type") == "message":
                    sid, cp = parse_id(e["id"])
                    check(sid == ca["session"] and cp.get(j["channel"]) ==
                          (j["epoch"], j["offset"]),
                          f"id {e['id']!r} for message {short(j)}")
        finally:
            await close_all([a, b])

    async def case_recovery_after_close(self):
        await self._exact_recovery("close")

    async def case_recovery_after_reset(self):
        await self._exact_recovery("rst")

    async def case_recovery_immediate_reconnect(self):
        # Reconnect without waiting for the server to notice the old socket is gone.
        await self._exact_recovery("immediate")

    async def case_recovery_takeover_of_open_stream(self):
        await self._exact_recovery("takeover")

    # 6
    async def case_recovery_history_gone(self):
        ch = f"small:{uniq('g')}"
        a = await SseStream.open(self.s, qs(ch), name="A", stop_after=1)
        b = None
        try:
            await a.opened(1)
            p0 = await publish(self.s, ch, 0)
            await a.wait_eof(10)
            last = a.last_event_id
            offs = [p0["offset"]]
            for i in range(1, 10):
                offs.append((await publish(self.s, ch, i))["offset"])
            b = await SseStream.open(self.s, qs(ch), headers={"Last-Event-ID": last}, name="B")
            cb = await b.opened(0)
            chans = {c["channel"]: c for c in cb.get("channels", [])}
            check(cb.get("resumed") is True and chans.get(ch, {}).get("recovered") is False,
                  f"connected {short(cb)}: history_size 3 cannot hold 9 missed")
            live = (await publish(self.s, ch, "live"))["offset"]
            await b.expect_type("message", 5, offset=live)
            got = [m["offset"] for m in b.msgs(ch)]
            check(got == sorted(set(got)) and set(got) <= set(offs[-3:] + [live]) and
                  got[-1] == live, f"after recovered:false got {got}; kept {offs[-3:]}")
        finally:
            await close_all([a, b])

    # 7
    async def case_bad_positions_400(self):
        ch = f"feed:{uniq('bad')}"
        cases = [
            ({"Last-Event-ID": "s_abc|" + ch + "!e!notanumber"}, qs(ch)),
            ({"Last-Event-ID": "s_abc|" + ch}, qs(ch)),
            ({"Last-Event-ID": "s!x"}, qs(ch)),
            ({"Last-Event-ID": "s_abc|"}, qs(ch)),
            ({}, qs(ch, lastEventId="s_abc|nochannelpos")),
            ({}, qs(ch, since="nobang")),
            ({}, qs(ch, since=f"{ch}!e!-1")),
        ]
        for hdrs, path in cases:
            st = await SseStream.open(self.s, path, headers=hdrs, name="bad")
            check(st.status == 400 and err_code(st.error_body()) == "bad_request",
                  f"GET {path} {hdrs} → {st.status} {st.body[:200]!r}")

    async def case_bare_open_then_subscribe_by_post(self):
        # docs/protocol.md: "a bare open connects a new session that subscribes by POST".
        ch = f"feed:{uniq('bare')}"
        st = await SseStream.open(self.s, "/sse", name="bare")
        try:
            con = await st.opened(0)
            check(con.get("resumed") is False, f"connected {short(con)}")
            r = await post_ok(self.s, {"type": "subscribe", "id": 1, "channel": ch},
                              con["session"])
            check(r.get("type") == "subscribed", f"subscribe → {short(r)}")
            p = await publish(self.s, ch, "hello")
            ev = await st.expect_type("message", 5, channel=ch, offset=p["offset"])
            check(ev["id"] == f"{con['session']}|{ch}!{p['epoch']}!{p['offset']}",
                  f"id {ev['id']!r}")
            early = [e["json"] for e in st.events if e["json"].get("type") == "subscribed"]
            check(not early, f"bare open sent {short(early)}")
        finally:
            await st.close()

    async def case_since_and_lastEventId_on_first_request(self):
        ch, ch2 = f"feed:{uniq('s')}", f"feed:{uniq('s2')}"
        p = [await publish(self.s, ch, i) for i in range(8)]
        for i in range(4):  # ch2 has history the stream must not replay (no since)
            await publish(self.s, ch2, i)
        since = f"{ch}!{p[2]['epoch']}!{p[2]['offset']}"
        a = await SseStream.open(self.s, qs(ch, ch2, since=since), name="since")
        b = c = None
        try:
            await a.opened(0)
            s1 = (await a.expect_type("subscribed", channel=ch))["json"]
            check(s1.get("recovered") is True and s1.get("offset") == p[-1]["offset"],
                  f"subscribed with since {short(s1)}")
            await a.wait_until(lambda: len(a.msgs(ch)) >= 5, 5, "5 recovered")
            got = [m["offset"] for m in a.msgs(ch)]
            check(got == [x["offset"] for x in p[3:]], f"since {since}: got {got}")
            s2 = (await a.expect_type("subscribed", channel=ch2))["json"]
            check("recovered" not in s2, f"channel without since: {short(s2)}")
            # The last id of this stream, used on a first request as ?lastEventId= by a
            # client that stored it (new socket, no header).
            live = await publish(self.s, ch2, "live")
            ev = await a.expect_type("message", channel=ch2, offset=live["offset"])
            lid = ev["id"]
            check(not a.msgs(ch2)[:-1], f"{ch2} without since replayed {a.msgs(ch2)[:-1]}")
            await a.close()
            more = [await publish(self.s, ch, f"m{i}") for i in range(3)]
            more2 = [await publish(self.s, ch2, f"m{i}") for i in range(2)]
            from urllib.parse import quote
            b = await SseStream.open(self.s, qs(ch, ch2, lastEventId=quote(lid, safe="")),
                                     name="lastEventId")
            cb = await b.opened(0)
            check(cb.get("resumed") is True and all(x.get("recovered") is True
                                                    for x in cb.get("channels", [])),
                  f"?lastEventId= → {short(cb)}")
            await b.wait_until(lambda: len(b.msgs()) >= 5, 5, "5 missed")
            check([m["offset"] for m in b.msgs(ch)] == [x["offset"] for x in more] and
                  [m["offset"] for m in b.msgs(ch2)] == [x["offset"] for x in more2],
                  f"?lastEventId= recovered {[(m['channel'], m['offset']) for m in b.msgs()]}")
        finally:
            await close_all([a, b, c])

    # 8
    async def case_at_least_once(self):
        ch = f"alo:{uniq('w')}"
        path = qs(ch, user="worker")
        a = await SseStream.open(self.s, path, name="A")
        b = c = None
        try:
            ca = await a.opened(1)
            S = ca["session"]
            offs = [(await publish(self.s, ch, i))["offset"] for i in range(10)]
            await a.wait_until(lambda: len(a.msgs(ch)) >= 10, 5, "10 messages")
            r = await post_ok(self.s, {"type": "ack", "id": "a1", "channel": ch,
                                        "offset": offs[3]}, S)
            check(r == {"type": "acked", "id": "a1"}, f"ack → {short(r)}")
            a.abort()
            await wait_session_released(self.s, S, "stream A gone")
            offs += [(await publish(self.s, ch, i))["offset"] for i in range(10, 13)]
            # A session resume (no Last-Event-ID): the un-acked ones come again.
            b = await SseStream.open(self.s, qs(ch, session=S), name="B")
            cb = await b.opened(0)
            check(cb.get("resumed") is True and cb.get("session") == S, f"resume {short(cb)}")
            await b.wait_until(lambda: len(b.msgs(ch)) >= 9, 5, "6 un-acked + 3 new")
            got = [m["offset"] for m in b.msgs(ch)]
            check(got == offs[4:], f"session resume after ack of {offs[3]}: expected "
                  f"{compress(offs[4:])} (un-acked, then missed), got {compress(got)}")
            # Ack over POST on the new stream, cut after the 2nd of the next batch, resume by
            # Last-Event-ID: everything after the id arrives; nothing acked comes back.
            r = await post_ok(self.s, {"type": "ack", "id": "a2", "channel": ch,
                                        "offset": offs[-1]}, S)
            check(r == {"type": "acked", "id": "a2"}, f"ack → {short(r)}")
            b.stop_after = len(b.msgs()) + 2
            new = [(await publish(self.s, ch, f"n{i}"))["offset"] for i in range(5)]
            await b.wait_eof(10)
            lid = b.last_event_id
            _, pos = parse_id(lid)
            check(pos[ch][1] == new[1], f"B stopped at {pos}, expected offset {new[1]}")
            c = await SseStream.open(self.s, path, headers={"Last-Event-ID": lid}, name="C")
            cc = await c.opened(0)
            check(cc.get("resumed") is True, f"resume {short(cc)}")
            await c.wait_until(lambda: len(c.msgs(ch)) >= 3, 5, "3 after the id")
            await publish(self.s, ch, "marker")
            await c.expect_type("message", 5, data="marker")
            got = [m["offset"] for m in c.msgs(ch)]
            check(set(new[2:]) <= set(got) and not set(offs) & set(got),
                  f"resume by Last-Event-ID at {new[1]}: got {got}; expected {new[2:]} "
                  f"(then the marker), none of the acked {compress(offs)}")
            firsts = []
            for o in got:
                if o not in firsts:
                    firsts.append(o)
            check(firsts == sorted(firsts), f"out of order {got}")
            # docs/protocol.md (event ids): "the session is resumed (at-least-once channels
            # get what was not acked)": the two received but not acked come again too.
            check(set(new[:2]) <= set(got),
                  f"resume by Last-Event-ID at {new[1]}: the un-acked {new[:2]} (received, "
                  f"never acked) were not redelivered; got {got}")
        finally:
            await close_all([a, b, c])

    # 11 (own server: a low rate limit)
    async def case_post_rate_limit(self):
        s = Server(self.binary, CONFIG.replace("rate_limit = 100000", "rate_limit = 10"),
                   name="sse-rl")
        a = b = None
        try:
            ch = "feed:rl"
            a = await SseStream.open(s, qs(ch, user="flood"), name="A")
            b = await SseStream.open(s, qs(ch, user="calm"), name="B")
            sa = (await a.opened(1))["session"]
            sb = (await b.opened(1))["session"]

            def flood(n):
                conn = http.client.HTTPConnection(s.host, s.port, timeout=5)
                out = []
                try:
                    for i in range(n):
                        conn.request("POST", f"/sse?session={sa}",
                                     body=json.dumps({"type": "ping", "id": i}),
                                     headers={"Content-Type": "application/json"})
                        r = conn.getresponse()
                        out.append((r.status, r.read().decode(errors="replace")))
                finally:
                    conn.close()
                return out

            loop = asyncio.get_running_loop()
            res = await loop.run_in_executor(None, flood, 80)
            codes = [c for c, _ in res]
            limited = [(c, body) for c, body in res if c == 429]
            check(codes[0] == 200 and limited, f"80 POSTs at once (limit 10/s, burst 20): "
                  f"statuses {compress(codes)}")
            check(all(err_code(json.loads(bd)) == "rate_limited" for _, bd in limited),
                  f"429 bodies {limited[:2]}")
            ok = sum(1 for c in codes if c == 200)
            check(ok <= 30, f"{ok} of 80 POSTs accepted with a burst of 20")
            # The other session is untouched.
            r = await post_ok(s, {"type": "ping", "id": "calm"}, sb)
            check(r == {"type": "pong", "id": "calm"}, f"other session's ping → {short(r)}")
            p = await publish(s, ch, "after flood")
            await b.expect_type("message", 5, offset=p["offset"])
            # The flooder kept going past 20 refusals in a row: as on /ws (docs/protocol.md,
            # Limits), its session ends with `disconnect` 1008, reconnect:false.
            run, longest = 0, 0
            for c in codes:
                run = run + 1 if c == 429 else 0
                longest = max(longest, run)
            check(longest >= 20, f"only {longest} refusals in a row: {compress(codes)}")
            d = (await a.expect_type("disconnect", 5))["json"]
            check(d == {"type": "disconnect", "code": 1008, "reason": "rate limit exceeded",
                        "reconnect": False}, f"flooder's stream got {short(d)}")
            await a.wait_eof(10)
            self.notes.append(f"rate limit: 80 POSTs → {ok} × 200, {len(limited)} × 429")
        finally:
            await close_all([a, b])
            s.close()


# --------------------------------------------------------------------------------------------
# Auth (own servers)


async def case_auth(binary: str):
    from tokens import mint, hmac_secret
    secret = hmac_secret()
    conf = f"""
[api]
key = "{API_KEY}"
[auth]
hmac_secrets = ["{secret}"]
[namespaces.priv]
history_size = 10
"""
    s = Server(binary, conf, name="sse-auth")
    st = None
    try:
        path = qs("priv:x")
        r = await SseStream.open(s, path, name="no-token")
        check(r.status == 401 and err_code(r.error_body()) == "token_required" and
              "bearer" in r.headers.get("www-authenticate", "").lower(),
              f"GET without a token → {r.status} {r.headers} {r.body!r}")
        r = await SseStream.open(s, qs("priv:x", token="not.a.token"), name="bad-token")
        check(r.status == 401 and err_code(r.error_body()) == "invalid_token",
              f"GET with a bad token → {r.status} {r.body!r}")
        other = mint(hmac_secret(), sub="alice")
        r = await SseStream.open(s, path, headers={"Authorization": f"Bearer {other}"},
                                 name="wrong-key")
        check(r.status == 401 and err_code(r.error_body()) == "invalid_token",
              f"GET with a token of another key → {r.status} {r.body!r}")
        alice, bob = mint(secret, sub="alice"), mint(secret, sub="bob")
        st = await SseStream.open(s, path, headers={"Authorization": f"Bearer {alice}"},
                                  name="alice")
        con = await st.opened(1)
        check(con.get("user") == "alice", f"connected {short(con)}")
        S = con["session"]
        stt, out = await post(s, {"type": "ping", "id": 1}, S)
        check(stt == 401 and err_code(out) == "token_required",
              f"POST without a token → {stt} {short(out)}")
        stt, out = await post(s, {"type": "ping", "id": 1}, S, token=bob)
        check(stt == 403 and err_code(out) == "permission_denied",
              f"POST with bob's token for alice's session → {stt} {short(out)}")
        stt, out = await post(s, {"type": "ping", "id": 1}, S, token=other)
        check(stt == 401 and err_code(out) == "invalid_token",
              f"POST with a token of another key → {stt} {short(out)}")
        out = await post_ok(s, {"type": "publish", "id": 2, "channel": "priv:x", "data": 1},
                            S, token=alice)
        check(out.get("type") == "published", f"alice's POST → {short(out)}")
        await st.expect_type("message", 5, offset=out["offset"])
        # ?token= works for the GET too.
        st2 = await SseStream.open(s, qs("priv:y", token=bob), name="bob")
        try:
            cb = await st2.opened(1)
            check(cb.get("user") == "bob", f"connected {short(cb)}")
        finally:
            await st2.close()
    finally:
        if st is not None:
            await st.close()
        s.close()


async def case_auth_anonymous_namespace(binary: str):
    from tokens import hmac_secret
    conf = f"""
[api]
key = "{API_KEY}"
[auth]
hmac_secrets = ["{hmac_secret()}"]
[namespaces.pub]
anonymous = true
history_size = 10
"""
    s = Server(binary, conf, name="sse-anon")
    st = None
    try:
        st = await SseStream.open(s, qs("pub:x"), name="anon")
        con = await st.opened(1)
        S = con["session"]
        p = await publish(s, "pub:x", "hello")
        await st.expect_type("message", 5, offset=p["offset"])
        stt, out = await post(s, {"type": "ping", "id": 1}, S)
        check(stt == 200 and out == {"type": "pong", "id": 1},
              f"an anonymous stream (anonymous namespace, auth on) POSTs a ping with no token "
              f"(it has none) → {stt} {short(out)}; docs/protocol.md: anonymous clients may "
              "use anonymous namespaces")
    finally:
        if st is not None:
            await st.close()
        s.close()


# --------------------------------------------------------------------------------------------
# Slow consumer (own server)

OUTBOUND_LIMIT_KIB = 256
SEND_BUFFER_KIB = 64
STALLED = 8
FLOOD = 2500
SIZE = 4096
# RSS bound over a baseline taken with every stream open: per stream at most outbound_limit
# (plus the event that crossed it and the farewell) → 9 × ~0.26 MiB; history 100 × 4 KiB;
# per-loop scratch and allocator slack: a few MiB. A server without the limit would hold
# (FLOOD × 4 KiB − what the kernel took) ≈ 9.7 MiB per stalled stream, ≈ 78 MiB for 8 (the
# send buffer is capped at 64 KiB, so the kernel absorbs little).
RSS_MARGIN_MIB = 24


async def case_slow_consumer(binary: str, notes: list):
    conf = f"""
[api]
key = "{API_KEY}"
rate_limit = 0
[messaging]
outbound_limit = "{OUTBOUND_LIMIT_KIB}KiB"
rate_limit = 1000000
[namespaces.slow]
slow_consumer = "disconnect"
history_size = 100
"""
    s = Server(binary, conf, name="sse-slow", flags=("--send-buffer", f"{SEND_BUFFER_KIB}KiB"))
    healthy = pub = None
    stalled: list[socket.socket] = []
    drained: dict[int, bytes] = {}
    threads = []
    try:
        ch = "slow:flood"
        progress = {"n": 0, "bad": []}

        def on_msg(ev):
            j = ev["json"]
            progress["n"] += 1
            if j.get("offset") != progress["n"] and len(progress["bad"]) < 5:
                progress["bad"].append((progress["n"], j.get("offset")))

        healthy = await SseStream.open(s, qs(ch, user="healthy"), name="healthy", keep=False,
                                       on_message=on_msg)
        await healthy.opened(1)
        for i in range(STALLED):
            sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sk.settimeout(5)
            sk.connect((s.host, s.port))
            sk.sendall(f"GET /sse?channel={ch}&user=stalled{i} HTTP/1.1\r\nHost: x\r\n"
                       "Accept: text/event-stream\r\n\r\n".encode())
            stalled.append(sk)
        await wait_metric(s, SSE_METRIC, lambda v: v >= STALLED + 1, 10,
                          f"{STALLED + 1} open streams")
        m0 = await metrics_async(s)
        slow0 = m0.get(SLOW_METRIC, 0)
        base = s.rss_kib()
        peak = base
        pub = await Client.open(s, "pub")
        await pub.connect()
        body = "x" * (SIZE - 16)

        def drain(i, sk):
            sk.settimeout(10)
            buf = b""
            try:
                while True:
                    chunk = sk.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except OSError as e:
                buf += f"\n<<{e!r}>>".encode()
            drained[i] = buf

        WINDOW = 32
        sent = 0
        started_drain = False
        while sent < FLOOD:
            # Keep at most WINDOW publications ahead of the healthy reader.
            if sent - progress["n"] >= WINDOW:
                await healthy.wait_until(lambda: sent - progress["n"] < WINDOW, 15,
                                         f"healthy reader to reach {sent - WINDOW}")
            await pub.send({"type": "publish", "channel": ch, "data": f"{sent + 1:08d}" + body})
            sent += 1
            if sent % 100 == 0:
                peak = max(peak, s.rss_kib())
                if not started_drain:
                    m = await metrics_async(s)
                    if m.get(SLOW_METRIC, 0) - slow0 >= STALLED:
                        started_drain = True
                        for i, sk in enumerate(stalled):
                            t = threading.Thread(target=drain, args=(i, sk), daemon=True)
                            t.start()
                            threads.append(t)
        await healthy.wait_until(lambda: progress["n"] >= FLOOD, 30, f"all {FLOOD} publications")
        check(not progress["bad"], f"healthy stream out of order (n, offset): {progress['bad']}")
        check(progress["n"] == FLOOD and not healthy.eof.is_set(),
              f"healthy stream got {progress['n']} of {FLOOD}")
        await wait_metric(s, SLOW_METRIC, lambda v: v - slow0 >= STALLED, 10,
                          f"{STALLED} slow-consumer disconnects")
        peak = max(peak, s.rss_kib())
        if not started_drain:
            for i, sk in enumerate(stalled):
                t = threading.Thread(target=drain, args=(i, sk), daemon=True)
                t.start()
                threads.append(t)
        loop = asyncio.get_running_loop()
        for t in threads:
            await loop.run_in_executor(None, t.join, 15)
        for i in range(STALLED):
            raw = drained.get(i, b"")
            head, _, rest = raw.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200"), f"stalled {i}: head {head[:80]!r}")
            p = SseParser()
            evs = [e["json"] for e in p.feed(rest, eof=True)]
            msgs = [e.get("offset") for e in evs if e.get("type") == "message"]
            check(msgs == list(range(1, len(msgs) + 1)) and msgs,
                  f"stalled {i}: offsets {compress(msgs)} not a prefix of the stream")
            check(len(msgs) < FLOOD, f"stalled {i}: got all {len(msgs)}: never cut")
            tail = [e for e in evs if e.get("type") not in ("message", "ping")]
            check(tail and tail[-1] == {"type": "disconnect", "code": 4000,
                                        "reason": "slow consumer", "reconnect": True},
                  f"stalled {i}: after {len(msgs)} messages: {short(tail[-3:])}; stream "
                  f"ends {raw[-120:]!r}")
            check(b"<<" not in raw[-200:], f"stalled {i}: read ended in an error {raw[-120:]!r}")
        bound = base + (OUTBOUND_LIMIT_KIB + 8) * (STALLED + 1) + RSS_MARGIN_MIB * 1024
        notes.append(f"slow consumer: RSS base {base // 1024} MiB, peak {peak // 1024} MiB, "
                     f"bound {bound // 1024} MiB; {STALLED} stalled cut")
        check(peak <= bound, f"RSS peak {peak} KiB > bound {bound} KiB (base {base} KiB)")
        # The server still serves the healthy stream.
        p = await publish(s, ch, "after")
        await healthy.wait_until(lambda: progress["n"] >= FLOOD + 1, 5, "one more")
    finally:
        for sk in stalled:
            try:
                sk.close()
            except OSError:
                pass
        if pub is not None:
            await pub.stop()
        if healthy is not None:
            await healthy.close()
        s.close()


# --------------------------------------------------------------------------------------------
# SIGTERM (own server)


async def case_sigterm(binary: str):
    s = Server(binary, CONFIG, name="sse-term", flags=("--shutdown-timeout", "5s"))
    streams = []
    try:
        for i in range(3):
            st = await SseStream.open(s, qs(f"feed:t{i}", "chat:t"), name=f"T{i}")
            await st.opened(2)
            streams.append(st)
        p = await publish(s, "chat:t", "before")
        for st in streams:
            await st.expect_type("message", 5, offset=p["offset"])
        s.proc.signal(signal.SIGTERM)
        for st in streams:
            d = dict((await st.expect_type("disconnect", 10))["json"])
            after_ms = d.pop("reconnect_after_ms", None)
            check(d == {"type": "disconnect", "code": 1001,
                        "reason": "server shutting down; reconnect", "reconnect": True} and
                  isinstance(after_ms, int) and 0 <= after_ms < 5000,
                  f"{st.name}: {short(d)} reconnect_after_ms {after_ms!r} (want 0..4999: the "
                  "default server.reconnect_spread is 5 s)")
            await st.wait_eof(10)
            after = [e["json"] for e in st.events[st.events.index(
                next(e for e in st.events if e["json"].get("type") == "disconnect")) + 1:]]
            check(not after, f"{st.name}: events after disconnect {short(after)}")
        loop = asyncio.get_running_loop()
        rc = await loop.run_in_executor(None, s.proc.wait_exit, 10)
        check(rc == 0, f"exit code {rc}; log {s.proc.log_tail(500)}")
    finally:
        await close_all(streams)
        s.close()


# --------------------------------------------------------------------------------------------


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_sse")
    suite = Suite(args.server)
    suite.notes = []
    suite.s = Server(args.server, CONFIG, name="sse", flags=("--ping-interval", "1s"))
    try:
        for name in ("stream_order_and_ids", "join_leave", "heartbeat", "post_requests",
                     "recovery_after_close", "recovery_after_reset",
                     "recovery_immediate_reconnect", "recovery_takeover_of_open_stream",
                     "recovery_history_gone", "bad_positions_400",
                     "bare_open_then_subscribe_by_post",
                     "since_and_lastEventId_on_first_request", "at_least_once",
                     "post_rate_limit"):
            await run_case(rep, name, getattr(suite, "case_" + name), timeout=60)
            if not suite.s.proc.alive():
                rep.record("server alive", False, f"server exited after {name}: "
                           f"{suite.s.proc.log_tail()}")
                break
    finally:
        suite.s.close()
    await run_case(rep, "auth", lambda: case_auth(args.server), timeout=60)
    await run_case(rep, "auth_anonymous_namespace_post",
                   lambda: case_auth_anonymous_namespace(args.server), timeout=60)
    await run_case(rep, "slow_consumer", lambda: case_slow_consumer(args.server, suite.notes),
                   timeout=120)
    await run_case(rep, "sigterm", lambda: case_sigterm(args.server), timeout=60)
    for n in suite.notes:
        rep.note(n)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
