#!/usr/bin/python3
"""Integration: the long-polling transport (src/server/poll.h, docs/protocol.md "Server-Sent
Events and long-polling"). GET /poll opens (or resumes) a session and answers at once with
batch 1; GET /poll?session=S&ack=N[&wait=W] returns the next batch as soon as there is an
event, or an empty batch (seq 0) after W seconds; asking again with the previous ack gets the
same batch again; POST /poll?session=S runs one native request, answered in the body. A batch
is {"seq":N,"id":"<session>|<channel>!<epoch>!<offset>|…","events":[…]}; `id` given back as
lastEventId reopens the session and recovers each channel exactly.

Every HTTP exchange is a fresh TCP connection written and parsed here (asyncio streams), so a
response can be "lost" on purpose (the socket closed before the answer is read).

 1. open: batch 1 at once: connected (+user) and a subscribed per ?channel= (an error event
    for a bad channel); info shown in presence; a bare open (no channel, no session) connects
    and subscribes by POST; bad parameters (bad lastEventId / Last-Event-ID / since, info not
    an object or over 1 KiB) → 400.
 2. polling: a waiting poll returns with a publication made by /api/publish and by POST /poll
    of another session; events queued while nobody polls come in one batch; wait=1 with
    nothing → seq 0, no events, the same id; the previous ack again → the same batch (same
    bytes); a newer poll replaces a waiting one (which gets an empty batch). Alongside (own
    server, ~30 s): wait=30 (the most) and wait=300 (capped) end in an empty batch.
 3. POST /poll (?session= and X-Switchboard-Session): subscribe (its deliveries in the next
    batch), unsubscribe, publish, presence, history, ack, ping, refresh; connect refused; no
    session 400, unknown session 404; a session a /ws connection holds → 404 (no stream or
    poller holds it).
 4. exact delivery: 500 publications on 3 channels published continuously while a poller
    polls, drops read responses (then must get byte-identical batches again) and aborts
    polls on the wire: every publication exactly once, in order, and the last id names each
    channel's last offset.
 5. reopen: GET /poll?session=S&lastEventId=<id> (no ack) resumes (resumed:true,
    recovered:true) and brings exactly the publications after the id, also from an older id;
    history_size 3 and more missed → recovered:false and what is kept, in order; polls on a
    session not polled here → 410 (unknown, held by /ws, ended). A reopen while the old
    poller's poll waits (one loop) answers that poll at once (empty or disconnect 4004).
 6. /ws and /poll share a session: /poll?session=S takes over a /ws session (close 4004 with
    the disconnect event), a /ws connect takes over a polled session (the waiting poll gets
    the disconnect 4004 batch, the next poll 410).
 7. at-least-once: un-acked publications (protocol ack over POST) come back on reopen; acked
    ones do not.
 8. auth (HS256, no anonymous namespace): GET without a token → 401 token_required
    (WWW-Authenticate: Bearer), bad token → 401 invalid_token; POST: no token 401, another
    user's 403, the owner's 200.
 9. bounded memory: 16 pollers that never poll again and a healthy one on one channel
    (outbound_limit 64 KiB); 3,000 × 2 KiB publications: the healthy poller gets every one
    in order; each stalled one's next poll is a contiguous prefix then disconnect 4000
    (then 410), or 410 at once; a reopen resumes it; RSS stays under baseline + limit ×
    pollers + a margin.
10. rate limit: a session flooding POSTs gets 429 rate_limited; another session's POSTs and
    polls are unaffected.
11. SIGTERM while polls wait: each is answered (a 200 batch, or the connection closes without
    a partial response) and the process exits 0 within its shutdown timeout.
12. expiry (runs alongside the rest, ~50 s): a session nobody polls is closed (its client
    leaves: switchboard_clients drops); then GET → 410, POST → 404 or 410, and a reopen with
    the last id resumes it and recovers what was published meanwhile.
13. no sanitizer report in the log of any server started (for sanitizer builds).

  /usr/bin/python3 tests/integration/test_poll.py --server build/release/switchboard
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, Server, api_ok_async,  # noqa: E402
                       check, compress, metrics_async, require_websockets, run_case, short,
                       suite_arguments, wait_metric)
from sse import parse_id  # noqa: E402

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

SESSION_RE = re.compile(r"^s_[0-9a-f]{32}$")
SLOW_METRIC = "switchboard_slow_consumer_disconnects_total"


SERVERS: list[Server] = []
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:")


def start_server(*args, **kw) -> Server:
    s = Server(*args, **kw)
    SERVERS.append(s)
    return s


def sanitizer_reports() -> list[str]:
    """Sanitizer findings in the logs of every server this suite started (all stopped)."""
    out = []
    for s in SERVERS:
        try:
            with open(s.proc.log.name, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        m = SANITIZER_RE.search(text)
        if m:
            out.append(f"{s.proc.name} ({s.proc.log.name}): {text[m.start():m.start() + 600]}")
    return out


def uniq(prefix: str) -> str:
    return f"{prefix}-{random.randrange(1 << 30):x}"


# --------------------------------------------------------------------------------------------
# HTTP over asyncio streams (one connection per exchange)


class Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body.strip() else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"{self.status} {self.body[:300]!r}"


class NoResponse(Exception):
    """The server closed the connection before a whole response (partial: bytes it sent)."""

    def __init__(self, partial: bytes):
        super().__init__(f"connection closed after {len(partial)} bytes: {partial[:120]!r}")
        self.partial = partial


async def http(server: Server, method: str, path: str, body: bytes | str | None = None,
               headers: dict | None = None, timeout: float = 10.0) -> Resp:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port), timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}:{server.port}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await writer.drain()
        return await asyncio.wait_for(read_response(reader), timeout)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> Resp:
    got = b""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise NoResponse(e.partial) from None
    except ConnectionResetError:
        raise NoResponse(got) from None
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise NoResponse(head)
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    try:
        body = await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        raise NoResponse(head + e.partial) from None
    return Resp(int(m.group(1)), hdrs, body)


def qs(*channels: str, **params) -> str:
    parts = [("channel", c) for c in channels]
    for k, v in params.items():
        for x in (v if isinstance(v, list) else [v]):
            parts.append((k, str(x)))
    return "/poll?" + urllib.parse.urlencode(parts, quote_via=urllib.parse.quote, safe="")


def err_code(r: Resp) -> str | None:
    j = r.json
    if isinstance(j, dict):
        return j.get("code") or j.get("error")
    return None


async def publish(server: Server, channel: str, data) -> dict:
    return await api_ok_async(server, "publish", {"channel": channel, "data": data})


# --------------------------------------------------------------------------------------------
# A long-polling client


class Poller:
    """One long-polling session. `events` holds every event of every batch taken, in order;
    `ack` is the seq of the last batch taken (acknowledged by the next poll)."""

    def __init__(self, server: Server, name: str, token: str | None = None):
        self.s = server
        self.name = name
        self.token = token
        self.session: str | None = None
        self.ack = 0
        self.last_id: str | None = None
        self.events: list[dict] = []
        self.batches: list[dict] = []
        self.first: dict | None = None

    def _headers(self, extra: dict | None = None) -> dict:
        h = dict(extra or {})
        if self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        return h

    def take(self, batch: dict):
        check(isinstance(batch, dict) and isinstance(batch.get("seq"), int) and
              isinstance(batch.get("events"), list) and isinstance(batch.get("id"), str),
              f"{self.name}: not a batch: {short(batch)}")
        sid, _ = parse_id(batch["id"])
        if self.session is not None:
            check(sid == self.session, f"{self.name}: batch id {batch['id']} names another "
                  f"session than {self.session}")
        self.batches.append(batch)
        if batch["seq"] != 0:
            check(batch["seq"] == self.ack + 1 or self.ack == 0,
                  f"{self.name}: batch seq {batch['seq']} after {self.ack}")
            self.ack = batch["seq"]
            self.events.extend(batch["events"])
        else:
            check(batch["events"] == [], f"{self.name}: seq 0 with events {short(batch)}")
        self.last_id = batch["id"]

    async def open_raw(self, *channels: str, headers: dict | None = None, **params) -> Resp:
        if self.token and "token" not in params:
            headers = self._headers(headers)
        return await http(self.s, "GET", qs(*channels, **params), headers=headers)

    async def open(self, *channels: str, expect_subscribed: int | None = None,
                   **params) -> dict:
        """Opens (or reopens) and takes batch 1; returns the `connected` event."""
        r = await self.open_raw(*channels, **params)
        check(r.status == 200 and isinstance(r.json, dict),
              f"{self.name}: GET {qs(*channels, **params)} → {r}")
        check(r.headers.get("content-type", "").startswith("application/json"),
              f"{self.name}: open content-type {r.headers.get('content-type')}")
        b = r.json
        check(b.get("seq") == 1, f"{self.name}: first batch seq {b.get('seq')}: {short(b)}")
        evs = b.get("events") or []
        check(evs and evs[0].get("type") == "connected",
              f"{self.name}: first batch does not start with connected: {short(b)}")
        con = evs[0]
        check(SESSION_RE.match(con.get("session", "")), f"{self.name}: connected {short(con)}")
        self.session = con["session"]
        self.ack = 0
        self.first = b
        self.take(b)
        if expect_subscribed is not None:
            subs = [e for e in evs if e.get("type") == "subscribed"]
            check(len(subs) == expect_subscribed,
                  f"{self.name}: {len(subs)} subscribed in batch 1, want {expect_subscribed}: "
                  f"{short(b)}")
        return con

    async def poll_raw(self, wait: float = 5, ack: int | None = None, session: str | None = None,
                       timeout: float | None = None) -> Resp:
        a = self.ack if ack is None else ack
        path = f"/poll?session={session or self.session}&ack={a}&wait={wait}"
        return await http(self.s, "GET", path, headers=self._headers(),
                          timeout=timeout if timeout is not None else wait + 10)

    async def poll(self, wait: float = 5, **kw) -> dict:
        r = await self.poll_raw(wait, **kw)
        check(r.status == 200 and isinstance(r.json, dict),
              f"{self.name}: poll session={self.session} ack={self.ack} → {r}")
        self.take(r.json)
        return r.json

    async def poll_until(self, pred, timeout: float = 10.0, what: str = "events",
                         wait: float = 2) -> None:
        deadline = Deadline(timeout)
        while not pred(self.events):
            if deadline.expired():
                raise CheckFailed(f"{self.name}: no {what} within {timeout}s; got "
                                  f"{short(self.events[-8:], 600)}")
            await self.poll(wait=min(wait, max(1, int(deadline.remaining()))))

    def msgs(self, channel: str | None = None) -> list[dict]:
        return [e for e in self.events if e.get("type") == "message" and
                (channel is None or e.get("channel") == channel)]

    def offsets(self, channel: str) -> list[int]:
        return [e["offset"] for e in self.msgs(channel)]

    async def post(self, body, header: bool = False, token: str | None = None,
                   session: str | None = None) -> Resp:
        headers = {}
        sess = session or self.session
        path = "/poll"
        if header:
            headers["X-Switchboard-Session"] = sess
        else:
            path += f"?session={sess}"
        tok = token if token is not None else self.token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return await http(self.s, "POST", path, data, headers=headers)

    async def post_ok(self, body, **kw) -> dict:
        r = await self.post(body, **kw)
        check(r.status == 200 and isinstance(r.json, dict),
              f"{self.name}: POST /poll {short(body)} → {r}")
        return r.json


async def parked_hint(server: Server, n: int = 1, timeout: float = 5.0):
    """Waits until at least `n` polls are parked on the server (switchboard_poll_waiting), so
    what the test does next happens while they wait. Best effort where the case is correct
    either way: a timeout is not a failure here (use wait_parked for that)."""
    try:
        await wait_parked(server, n, timeout)
    except CheckFailed:
        pass


async def wait_parked(server: Server, n: int = 1, timeout: float = 5.0):
    """Waits until at least `n` polls are parked on the server; fails after `timeout`."""
    await wait_metric(server, "switchboard_poll_waiting", lambda v: v >= n, timeout,
                      f"{n} parked poll(s)")


# --------------------------------------------------------------------------------------------
# Cases on the shared server


class Suite:
    def __init__(self, binary: str):
        self.binary = binary
        self.s: Server | None = None
        self.notes: list[str] = []

    # ---- 1. open
    async def case_open_first_batch(self):
        s = self.s
        a, b = uniq("chat:open"), uniq("feed:open")
        await publish(s, b, "before")  # a channel with history: no replay without since
        p = Poller(s, "open")
        r = await p.open_raw(a, b, user="alice", info='{"avatar":"a.png"}')
        check(r.status == 200, f"open → {r}")
        check(r.headers.get("cache-control", "").lower() == "no-store",
              f"open: Cache-Control {r.headers.get('cache-control')!r}")
        batch = r.json
        check(batch.get("seq") == 1, f"open: seq {short(batch)}")
        evs = batch["events"]
        check([e.get("type") for e in evs[:3]] == ["connected", "subscribed", "subscribed"],
              f"open: batch 1 events {short(evs)}")
        con = evs[0]
        check(con.get("resumed") is False and con.get("user") == "alice" and
              SESSION_RE.match(con.get("session", "")) and "client" in con and
              isinstance(con.get("ping_interval"), int),
              f"open: connected {short(con)}")
        check(evs[1].get("channel") == a and evs[2].get("channel") == b and
              evs[2].get("offset") == 1 and "recovered" not in evs[2],
              f"open: subscribed events {short(evs[1:3])}")
        check(not [e for e in evs if e.get("type") == "message"],
              f"open: a replay without since: {short(evs)}")
        sid, chans = parse_id(batch["id"])
        check(sid == con["session"], f"open: id {batch['id']} vs session {con['session']}")
        p.session = sid
        p.take(batch)
        pres = await api_ok_async(s, "presence", {"channel": a})
        mine = [c for c in pres.get("clients", []) if c.get("client") == con["client"]]
        check(mine and mine[0].get("user") == "alice" and
              mine[0].get("info") == {"avatar": "a.png"},
              f"presence of {a}: {short(pres)}")
        # The client's own join (join_leave namespace) comes in a later batch, not twice.
        await p.poll_until(lambda evs: any(e.get("type") == "join" for e in evs), 5, "join")
        joins = [e for e in p.events if e.get("type") == "join"]
        check(len(joins) == 1 and joins[0].get("client") == con["client"],
              f"open: own join events {short(joins)}")
        # A bad channel and an unknown namespace: an error event each, the session still opens.
        q = Poller(s, "open-bad-channel")
        await q.open("chat:bad name", "nons:x", b)
        types = [(e.get("type"), e.get("code")) for e in q.first["events"]]
        check(types == [("connected", None), ("error", "bad_channel"),
                        ("error", "unknown_namespace"), ("subscribed", None)],
              f"open with a bad channel: {short(q.first['events'])}")
        # A session alone (no channel) opens too: an unknown one as a new session.
        z = Poller(s, "open-session-only")
        await z.open(session="s_" + "0" * 32)
        check(z.first["events"][0].get("resumed") is False and z.session != "s_" + "0" * 32,
              f"open with an unknown session: {short(z.first)}")
        # A bare open (neither channel nor session) connects a session that subscribes by POST.
        bare = Poller(s, "open-bare")
        await bare.open(user="bare")
        check([e.get("type") for e in bare.first["events"]] == ["connected"],
              f"bare open: batch 1 {short(bare.first)}")
        out = await bare.post_ok({"type": "subscribe", "id": 1, "channel": b})
        check(out.get("type") == "subscribed", f"bare open, then subscribe → {out}")
        pb = await publish(s, b, "to bare")
        await bare.poll_until(lambda _: pb["offset"] in bare.offsets(b), 5, "a publication")

    async def case_open_bad_parameters_400(self):
        s = self.s
        ch = uniq("feed:bad")
        cases = [
            ("lastEventId not an id", qs(ch, lastEventId="s_x!"), {}),
            ("lastEventId with a bad offset", qs(ch, lastEventId=f"s_{'a' * 32}|{ch}!e!x"), {}),
            ("Last-Event-ID header not an id", qs(ch), {"Last-Event-ID": "s_x|nochannelpos"}),
            ("since not channel!epoch!offset", qs(ch, since=f"{ch}!x"), {}),
            ("since with a bad offset", qs(ch, since=f"{ch}!e_1!-3"), {}),
        ]
        bad = []
        for what, path, headers in cases:
            r = await http(s, "GET", path, headers=headers)
            if r.status != 400 or err_code(r) != "bad_request":
                bad.append(f"{what}: GET {path} → {r}")
        check(not bad, "; ".join(bad))

    async def case_open_info_validated(self):
        """docs/protocol.md Field rules: info is a JSON object of at most 1 KiB; /ws refuses
        anything else with bad_request. Over /poll a refusal is a 400 (bad parameters), and in
        no case may the raw text reach presence or join events."""
        s = self.s
        ch = uniq("chat:info")
        watcher = await Client.open(s, "info-watcher")
        try:
            await watcher.connect()
            await watcher.subscribe(ch)
            problems = []
            for info in ("notjson", "[1]", '"str"', '{"a":1},"user":"forged"',
                         json.dumps({"pad": "x" * 1100})):
                r = await http(s, "GET", qs(ch, info=info, user="u"))
                if r.status == 400 and err_code(r) == "bad_request":
                    continue
                problems.append(f"GET /poll?channel={ch}&info={info[:40]!r} → {r.status} "
                                "(want 400 bad_request)")
            st_raw = await http(s, "POST", "/api/presence", json.dumps({"channel": ch}),
                                headers={"Authorization": f"apikey {API_KEY}"})
            if st_raw.json is None:
                problems.append(f"/api/presence of {ch} is no longer valid JSON: "
                                f"{st_raw.body[:400]!r}")
            broken = [m for m in watcher.all if m.get("type") == "<not json>"]
            if broken:
                problems.append(f"a /ws subscriber of {ch} received invalid JSON: "
                                f"{short(broken[0].get('raw', ''), 200)}")
            check(not problems, "; ".join(problems))
        finally:
            await watcher.stop()

    # ---- 2. polling
    async def case_poll_wakes_on_api_publish(self):
        s = self.s
        ch = uniq("feed:wake")
        p = Poller(s, "wake")
        await p.open(ch, expect_subscribed=1)
        t = asyncio.ensure_future(p.poll_raw(wait=25))
        await parked_hint(s)
        pub = await publish(s, ch, {"n": 1})
        r = await asyncio.wait_for(t, 10)  # well before the 25 s wait: woken by the event
        check(r.status == 200, f"poll → {r}")
        p.take(r.json)
        check(r.json["seq"] == 2 and [e.get("offset") for e in r.json["events"]
                                      if e.get("type") == "message"] == [pub["offset"]],
              f"woken poll: {short(r.json)}")
        m = p.msgs(ch)[0]
        check(m.get("data") == {"n": 1} and m.get("epoch") == pub["epoch"],
              f"message {short(m)} vs published {short(pub)}")
        _, chans = parse_id(r.json["id"])
        check(chans.get(ch) == (pub["epoch"], pub["offset"]),
              f"batch id {r.json['id']} does not name {ch} at {pub['offset']}")

    async def case_poll_wakes_on_post_publish(self):
        s = self.s
        ch = uniq("feed:wakepost")
        p, q = Poller(s, "wake-sub"), Poller(s, "wake-pub")
        await p.open(ch, expect_subscribed=1)
        await q.open(uniq("feed:other"))
        t = asyncio.ensure_future(p.poll_raw(wait=25))
        await parked_hint(s)
        rep = await q.post_ok({"type": "publish", "id": "p1", "channel": ch, "data": "via post"})
        check(rep.get("type") == "published" and rep.get("id") == "p1", f"publish → {rep}")
        r = await asyncio.wait_for(t, 10)
        check(r.status == 200, f"poll → {r}")
        p.take(r.json)
        check([(m["offset"], m["data"]) for m in p.msgs(ch)] == [(rep["offset"], "via post")],
              f"woken poll: {short(r.json)}")
        check(not q.msgs(), "the publisher is not subscribed")

    async def case_poll_burst_in_one_batch(self):
        s = self.s
        ch = uniq("feed:burst")
        p = Poller(s, "burst")
        await p.open(ch)
        # Published by the session itself (its loop): queued when each reply comes back, and
        # nobody polls meanwhile, so the next poll takes all of them as one batch.
        offs = []
        for i in range(7):
            offs.append((await p.post_ok({"type": "publish", "channel": ch, "data": i}))["offset"])
        b = await p.poll(wait=5)
        check(b["seq"] == 2 and [e.get("offset") for e in b["events"]] == offs,
              f"7 events queued while nobody polled → {short(b, 600)}")
        # A burst of the HTTP API while a poll waits: every one arrives, in order (the first
        # wakes the poll; the rest come with it or in the next batches).
        t = asyncio.ensure_future(p.poll_raw(wait=25))
        await parked_hint(s)
        pubs = await asyncio.gather(*[publish(s, ch, f"b{i}") for i in range(20)])
        r = await asyncio.wait_for(t, 10)
        check(r.status == 200 and r.json["seq"] == 3 and r.json["events"],
              f"poll during a burst → {r}")
        p.take(r.json)
        n_first = len(r.json["events"])
        want = sorted(x["offset"] for x in pubs)
        await p.poll_until(lambda _: len(p.offsets(ch)) >= 7 + 20, 10, "the whole burst")
        check(p.offsets(ch) == offs + want, f"burst offsets {compress(p.offsets(ch))}")
        self.notes.append(f"burst of 20 /api/publish calls while a poll waited: {n_first} in "
                          f"the waking batch, {len(p.batches) - 3} more batch(es)")

    async def case_poll_empty_after_wait(self):
        s = self.s
        p = Poller(s, "empty")
        await p.open(uniq("feed:empty"))
        id1 = p.last_id
        t0 = time.monotonic()
        r = await p.poll_raw(wait=1, timeout=15)
        took = time.monotonic() - t0
        check(r.status == 200 and r.json == {"seq": 0, "id": id1, "events": []},
              f"wait=1 with nothing → {r} (want seq 0, id {id1}, no events)")
        # Still acked at 1: a second empty poll, then an event goes in a batch with seq 2.
        r = await p.poll_raw(wait=1, timeout=15)
        check(r.status == 200 and r.json.get("seq") == 0, f"second empty poll → {r}")
        self.notes.append(f"empty poll with wait=1 answered after {took:.2f}s")

    async def case_poll_resend_and_ack(self):
        s = self.s
        ch = uniq("feed:ack")
        p = Poller(s, "ack")
        await p.open(ch)
        for i in range(3):
            await p.post_ok({"type": "publish", "channel": ch, "data": i})
        r1 = await p.poll_raw(wait=5)   # batch 2, "lost": not taken
        check(r1.status == 200 and r1.json["seq"] == 2 and len(r1.json["events"]) == 3,
              f"batch 2: {r1}")
        await p.post_ok({"type": "publish", "channel": ch, "data": "later"})
        r2 = await p.poll_raw(wait=5)   # ack=1 again: batch 2 again, byte for byte
        check(r2.status == 200 and r2.body == r1.body,
              f"asking again with ack=1: {r2.body[:300]!r} vs first {r1.body[:300]!r}")
        r3 = await p.poll_raw(wait=5, ack=0)  # an even older ack: still batch 2
        check(r3.status == 200 and r3.body == r1.body, f"ack=0 after batch 2 → {r3}")
        p.take(r2.json)
        r4 = await p.poll_raw(wait=5)   # ack=2: the next batch holds what came since
        check(r4.status == 200 and r4.json["seq"] == 3 and
              [e.get("data") for e in r4.json["events"]] == ["later"],
              f"after ack=2 → {r4}")
        p.take(r4.json)
        check(p.offsets(ch) == [1, 2, 3, 4], f"offsets {p.offsets(ch)}")
        r5 = await p.poll_raw(wait=1)   # ack=3, nothing: empty, id of batch 3
        check(r5.status == 200 and r5.json == {"seq": 0, "id": r4.json["id"], "events": []},
              f"after ack=3 with nothing → {r5}")

    async def case_newer_poll_replaces_waiting(self):
        s = self.s
        ch = uniq("feed:replace")
        p = Poller(s, "replace")
        await p.open(ch)
        a = asyncio.ensure_future(p.poll_raw(wait=25))
        await parked_hint(s)
        b = asyncio.ensure_future(p.poll_raw(wait=25))
        done, pending = await asyncio.wait({a, b}, timeout=10,
                                           return_when=asyncio.FIRST_COMPLETED)
        check(len(done) == 1, f"two waiting polls of one session: {len(done)} answered "
              "(want exactly one, the replaced one)")
        first = done.pop()
        other = pending.pop()
        r = first.result()
        check(r.status == 200 and r.json.get("seq") == 0 and r.json.get("events") == [],
              f"the replaced poll → {r} (want an empty batch)")
        which = "the first" if first is a else "the second (arrived first at the server)"
        pub = await publish(s, ch, "x")
        r2 = await asyncio.wait_for(other, 10)
        check(r2.status == 200 and r2.json.get("seq") == 2 and
              [e.get("offset") for e in r2.json["events"]] == [pub["offset"]],
              f"the waiting poll after a publish → {r2}")
        self.notes.append(f"newer poll replaced a waiting one ({which} got the empty batch)")

    # ---- 3. POST requests
    async def case_post_requests(self):
        s = self.s
        c1, c2 = uniq("chat:post"), uniq("feed:post")
        p = Poller(s, "post")
        await p.open(c1, user="poster")
        out = await p.post_ok({"type": "ping", "id": 1})
        check(out == {"type": "pong", "id": 1}, f"ping → {out}")
        out = await p.post_ok({"type": "ping", "id": "hdr"}, header=True)
        check(out == {"type": "pong", "id": "hdr"}, f"ping via X-Switchboard-Session → {out}")
        out = await p.post_ok({"type": "subscribe", "id": 2, "channel": c2})
        check(out.get("type") == "subscribed" and out.get("channel") == c2 and out.get("id") == 2,
              f"subscribe → {out}")
        pub = await p.post_ok({"type": "publish", "id": 3, "channel": c2, "data": {"k": "v"}},
                              header=True)
        check(pub.get("type") == "published" and pub.get("offset") == 1, f"publish → {pub}")
        await p.poll_until(lambda _: p.offsets(c2) == [1], 5, f"the publication on {c2}")
        out = await p.post_ok({"type": "presence", "id": 4, "channel": c1})
        check(out.get("type") == "presence" and out.get("count") == 1 and
              out["clients"][0].get("user") == "poster", f"presence → {out}")
        out = await p.post_ok({"type": "history", "id": 5, "channel": c2})
        check(out.get("type") == "history" and
              [x.get("data") for x in out.get("publications", [])] == [{"k": "v"}],
              f"history → {out}")
        out = await p.post_ok({"type": "ack", "id": 6, "channel": c2, "offset": 1})
        check(out == {"type": "acked", "id": 6}, f"ack with id → {out}")
        r = await p.post({"type": "ack", "channel": c2, "offset": 1})
        check(r.status == 200 and r.body.strip() == b"", f"ack without id → {r} (no reply)")
        out = await p.post_ok({"type": "refresh", "id": 7, "token": "x.y.z"})
        check(out.get("type") == "error" and out.get("id") == 7, f"anonymous refresh → {out}")
        out = await p.post_ok({"type": "connect", "id": 8})
        check(out.get("type") == "error" and out.get("id") == 8 and out.get("code"),
              f"connect over POST → {out} (must be refused with an error reply)")
        out = await p.post_ok({"type": "unsubscribe", "id": 9, "channel": c2})
        check(out == {"type": "unsubscribed", "id": 9, "channel": c2}, f"unsubscribe → {out}")
        await publish(s, c2, "after unsubscribe")
        await publish(s, c1, "on c1")
        await p.poll_until(lambda _: any(m.get("data") == "on c1" for m in p.msgs(c1)), 5,
                           f"a publication on {c1}")
        check(p.offsets(c2) == [1], f"{c2} after unsubscribe: {p.offsets(c2)}")
        out = await p.post_ok({"type": "unsubscribe", "id": 10, "channel": c2})
        check(out.get("type") == "error" and out.get("code") == "not_subscribed",
              f"second unsubscribe → {out}")
        out = await p.post_ok("{nope")
        check(out.get("type") == "error" and out.get("code") == "bad_json", f"bad JSON → {out}")
        r = await http(s, "POST", "/poll", json.dumps({"type": "ping", "id": 1}))
        check(r.status == 400 and err_code(r) == "bad_request", f"POST without a session → {r}")
        r = await p.post({"type": "ping", "id": 1}, session="s_" + "0" * 32)
        check(r.status == 404, f"POST for an unknown session → {r}")

    # ---- 4. exact delivery across lost responses
    async def case_exact_delivery_lost_responses(self):
        s = self.s
        chans = [uniq("feed:ex") for _ in range(3)]
        p = Poller(s, "exact")
        await p.open(*chans, expect_subscribed=3)
        TOTAL = 500
        published: dict[str, list] = {c: [] for c in chans}
        pub = await Client.open(s, "exact-pub")
        rng = random.Random()
        stats = {"polls": 0, "resent_checked": 0, "aborted": 0, "empty": 0}

        async def publisher():
            await pub.connect()
            for i in range(TOTAL):
                c = rng.choice(chans)
                r = await pub.publish(c, {"i": i})
                published[c].append((r["offset"], i))
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the poller interleave

        task = asyncio.ensure_future(publisher())
        try:
            deadline = Deadline(60)
            while True:
                got = len(p.msgs())
                if task.done() and got >= TOTAL:
                    break
                if task.done() and task.exception():
                    raise task.exception()
                check(not deadline.expired(), f"exact: {got} of {TOTAL} after 60s")
                stats["polls"] += 1
                roll = rng.random()
                if roll < 0.1:
                    # Lost on the wire: the request goes out, the socket closes unread.
                    _, w = await asyncio.open_connection(s.host, s.port)
                    w.write(f"GET /poll?session={p.session}&ack={p.ack}&wait=2 HTTP/1.1\r\n"
                            f"Host: x\r\n\r\n".encode())
                    await w.drain()
                    if rng.random() < 0.5:
                        await asyncio.sleep(0.005 * rng.random())
                    w.close()
                    stats["aborted"] += 1
                    continue
                r = await p.poll_raw(wait=2)
                check(r.status == 200, f"exact: poll → {r}")
                if roll < 0.25 and r.json["seq"] != 0:
                    # Read but "lost" (never taken): the same ack must give the same batch.
                    again = await p.poll_raw(wait=2)
                    check(again.status == 200 and again.body == r.body,
                          f"exact: batch {r.json['seq']} asked again with ack={p.ack}: "
                          f"{again.body[:200]!r} vs {r.body[:200]!r}")
                    stats["resent_checked"] += 1
                    r = again
                if r.json["seq"] == 0:
                    stats["empty"] += 1
                p.take(r.json)
            await task
        finally:
            if not task.done():
                task.cancel()
            await pub.stop()
        problems = []
        for c in chans:
            got = p.offsets(c)
            want = [o for o, _ in published[c]]
            if got != want:
                problems.append(f"{c}: got {compress(got)} want {compress(want)}")
            data = {m["offset"]: m["data"]["i"] for m in p.msgs(c)}
            wrong = [(o, i) for o, i in published[c] if data.get(o) != i]
            if wrong:
                problems.append(f"{c}: data differs at {wrong[:5]}")
        check(not problems, "; ".join(problems))
        _, pos = parse_id(p.last_id)
        for c in chans:
            check(pos.get(c, ("", 0))[1] == published[c][-1][0],
                  f"last id {p.last_id}: {c} should be at {published[c][-1][0]}")
        self.notes.append(f"exact delivery: {TOTAL} publications on 3 channels in "
                          f"{len([b for b in p.batches if b['seq']])} batches; "
                          f"{stats['polls']} polls, {stats['aborted']} aborted on the wire, "
                          f"{stats['resent_checked']} re-asked batches compared, "
                          f"{stats['empty']} empty")

    # ---- 5. reopen
    async def case_reopen_exact(self):
        s = self.s
        c1, c2 = uniq("feed:ro"), uniq("feed:ro")
        p = Poller(s, "reopen")
        await p.open(c1, c2, expect_subscribed=2)
        for i in range(5):
            await publish(s, c1, f"a{i}")
            await publish(s, c2, f"b{i}")
        await p.poll_until(lambda _: len(p.msgs()) >= 10, 10, "10 publications")
        older_id = p.last_id
        for i in range(5, 8):
            await publish(s, c1, f"a{i}")
        await p.poll_until(lambda _: len(p.offsets(c1)) >= 8, 10, "3 more")
        last_id = p.last_id
        check(parse_id(last_id)[1][c1][1] == 8 and parse_id(last_id)[1][c2][1] == 5,
              f"last id {last_id}")
        # Missed: published while nobody polls (queued in the old poller, never fetched).
        for i in range(8, 12):
            await publish(s, c1, f"a{i}")
        for i in range(5, 9):
            await publish(s, c2, f"b{i}")
        session = p.session
        q = Poller(s, "reopened")
        con = await q.open(session=session, lastEventId=last_id)
        check(con.get("resumed") is True and con.get("session") == session,
              f"reopen → {short(con)}")
        restored = {c["channel"]: c for c in con.get("channels", [])}
        check(set(restored) == {c1, c2} and
              all(c.get("recovered") is True for c in restored.values()),
              f"reopen channels {short(con.get('channels'))}")
        await q.poll_until(lambda _: len(q.offsets(c1)) >= 4 and len(q.offsets(c2)) >= 4, 10,
                           "the missed publications")
        check(q.offsets(c1) == [9, 10, 11, 12] and q.offsets(c2) == [6, 7, 8, 9],
              f"recovered {c1}: {q.offsets(c1)} (want 9-12), {c2}: {q.offsets(c2)} (want 6-9)")
        check([m["data"] for m in q.msgs(c1)] == [f"a{i}" for i in range(8, 12)],
              f"recovered data {short(q.msgs(c1))}")
        # Live publications continue on the reopened session, once.
        await publish(s, c2, "live")
        await q.poll_until(lambda _: 10 in q.offsets(c2), 5, "a live one")
        check(q.offsets(c2) == [6, 7, 8, 9, 10], f"{c2} after live: {q.offsets(c2)}")
        # Reopen again from the older id: everything after it comes again, in order.
        w = Poller(s, "reopened-older")
        con = await w.open(session=session, lastEventId=older_id)
        check(con.get("resumed") is True, f"reopen from an older id → {short(con)}")
        await w.poll_until(lambda _: len(w.offsets(c1)) >= 7 and len(w.offsets(c2)) >= 5, 10,
                           "everything after the older id")
        check(w.offsets(c1) == list(range(6, 13)) and w.offsets(c2) == list(range(6, 11)),
              f"from the older id: {c1} {w.offsets(c1)} (want 6-12), {c2} {w.offsets(c2)} "
              "(want 6-10)")

    async def case_reopen_history_gone(self):
        s = self.s
        ch = uniq("small:gone")
        p = Poller(s, "gone")
        await p.open(ch)
        await publish(s, ch, 1)
        await p.poll_until(lambda _: p.offsets(ch) == [1], 5, "offset 1")
        last = p.last_id
        for i in range(2, 12):
            await publish(s, ch, i)
        q = Poller(s, "gone-reopened")
        con = await q.open(session=p.session, lastEventId=last)
        check(con.get("resumed") is True, f"reopen → {short(con)}")
        chans = con.get("channels") or []
        check(len(chans) == 1 and chans[0].get("channel") == ch and
              chans[0].get("recovered") is False and chans[0].get("offset") == 11,
              f"10 missed, history 3: channels {short(chans)} (want recovered:false)")
        await q.poll_until(lambda _: 11 in q.offsets(ch), 5, "what history still has")
        check(q.offsets(ch) == [9, 10, 11], f"kept publications {q.offsets(ch)} (want 9-11)")

    async def case_poll_not_here_410(self):
        s = self.s
        p = Poller(s, "gone410")
        r = await p.poll_raw(wait=1, ack=1, session="s_" + "1" * 32)
        check(r.status == 410, f"poll on an unknown session → {r}")
        # A session held by a /ws connection.
        ws = await Client.open(s, "ws-holder")
        try:
            con = await ws.connect()
            r = await p.poll_raw(wait=1, ack=1, session=con["session"])
            check(r.status == 410, f"poll on a session a /ws connection holds → {r}")
            await ws.ping_ok()  # the /ws connection is untouched
        finally:
            await ws.stop()
        # A session whose /ws connection went away (it lives, nobody holds it).
        r = await p.poll_raw(wait=1, ack=1, session=con["session"])
        check(r.status == 410, f"poll on a session without a holder → {r}")

    async def case_post_to_ws_session_404(self):
        """docs/protocol.md: "404: no stream or poller of this server holds the session". A
        session a /ws connection holds has neither: its GET /poll is 410; its POST must not
        run requests on the /ws connection's behalf."""
        s = self.s
        ch = uniq("feed:wspost")
        ws = await Client.open(s, "ws-post")
        try:
            con = await ws.connect()
            r = await http(s, "POST", f"/poll?session={con['session']}",
                           json.dumps({"type": "subscribe", "id": 1, "channel": ch}))
            p = await publish(s, ch, "x")
            leaked = [m for m in ws.all if m.get("type") == "message"]
            if not leaked:
                try:
                    leaked = [await ws.expect_type("message", 1, offset=p["offset"])]
                except CheckFailed:
                    pass
            check(r.status in (404, 410),
                  f"POST /poll?session=<a /ws connection's session> {{subscribe {ch}}} → {r}"
                  f" (want 404); the /ws connection then received {short(leaked)}")
        finally:
            await ws.stop()

    # ---- 6. /ws and /poll share a session
    async def case_poll_takes_over_ws(self):
        s = self.s
        ch = uniq("feed:tw")
        ws = await Client.open(s, "ws-then-poll")
        try:
            con = await ws.connect()
            await ws.subscribe(ch)
            p1 = await publish(s, ch, "to ws")
            await ws.expect_type("message", 5, offset=p1["offset"])
            p = Poller(s, "takeover")
            pc = await p.open(session=con["session"])
            check(pc.get("resumed") is True and pc.get("session") == con["session"] and
                  [c.get("channel") for c in pc.get("channels", [])] == [ch],
                  f"poll open of a /ws session → {short(pc)}")
            d = await ws.expect_type("disconnect", 5)
            check(d == {"type": "disconnect", "code": 4004,
                        "reason": "session resumed by another connection", "reconnect": False},
                  f"/ws disconnect {short(d)}")
            code, _ = await ws.wait_closed(5)
            check(code == 4004, f"/ws close code {code}")
            p2 = await publish(s, ch, "to poll")
            await p.poll_until(lambda _: p2["offset"] in p.offsets(ch), 5, "the next publication")
            check(not [m for m in ws.all if m.get("type") == "message" and
                       m.get("offset") == p2["offset"]], "the old /ws connection got it too")
        finally:
            await ws.stop()

    async def case_ws_takes_over_poll(self):
        s = self.s
        ch = uniq("feed:tp")
        p = Poller(s, "poll-then-ws")
        await p.open(ch)
        p1 = await publish(s, ch, 1)
        await p.poll_until(lambda _: p.offsets(ch) == [p1["offset"]], 5, "offset 1")
        t = asyncio.ensure_future(p.poll_raw(wait=25))
        await parked_hint(s)
        ws = await Client.open(s, "ws-takeover")
        try:
            con = await ws.connect(session=p.session)
            check(con.get("resumed") is True and [c.get("channel") for c in con["channels"]]
                  == [ch], f"/ws connect with the polled session → {short(con)}")
            r = await asyncio.wait_for(t, 10)
            check(r.status == 200 and isinstance(r.json, dict), f"the waiting poll → {r}")
            p.take(r.json)
            check(r.json["seq"] != 0 and r.json["events"][-1:] == [
                {"type": "disconnect", "code": 4004,
                 "reason": "session resumed by another connection", "reconnect": False}],
                f"the waiting poll after a /ws takeover: {short(r.json)} (want its last "
                "event disconnect 4004)")
            r = await p.poll_raw(wait=1)
            check(r.status == 410, f"the next poll after the takeover → {r}")
            r = await p.post({"type": "ping", "id": 1})
            check(r.status == 200 and r.json == {"type": "pong", "id": 1} or r.status in (404, 410),
                  f"POST after the takeover → {r}")
            p2 = await publish(s, ch, 2)
            await ws.expect_type("message", 5, offset=p2["offset"])
        finally:
            await ws.stop()

    # ---- 7. at-least-once
    async def case_at_least_once_reopen(self):
        s = self.s
        ch = uniq("alo:job")
        p = Poller(s, "alo")
        await p.open(ch)
        for i in range(1, 6):
            await publish(s, ch, i)
        await p.poll_until(lambda _: len(p.offsets(ch)) >= 5, 10, "5 publications")
        check(p.offsets(ch) == [1, 2, 3, 4, 5], f"offsets {p.offsets(ch)}")
        out = await p.post_ok({"type": "ack", "id": "a", "channel": ch, "offset": 2})
        check(out == {"type": "acked", "id": "a"}, f"ack → {out}")
        await p.poll(wait=1)  # the batch ack too: it must not stand for the protocol ack
        q = Poller(s, "alo-reopened")
        con = await q.open(session=p.session)
        check(con.get("resumed") is True, f"reopen → {short(con)}")
        await q.poll_until(lambda _: 5 in q.offsets(ch), 5, "the un-acked publications")
        firsts = []
        for o in q.offsets(ch):
            if o not in firsts:
                firsts.append(o)
        check(firsts == [3, 4, 5], f"redelivered after ack 2: {q.offsets(ch)} (want 3,4,5; "
              "1 and 2 were acked)")
        await q.post_ok({"type": "ack", "channel": ch, "offset": 5, "id": "b"})
        await publish(s, ch, 6)
        await q.poll_until(lambda _: 6 in q.offsets(ch), 5, "offset 6")
        z = Poller(s, "alo-reopened-2")
        con = await z.open(session=p.session)
        check(con.get("resumed") is True, f"second reopen → {short(con)}")
        await z.poll_until(lambda _: 6 in z.offsets(ch), 5, "offset 6 (not acked)")
        check(z.offsets(ch) == [6], f"after ack 5: redelivered {z.offsets(ch)} (want only 6)")


# --------------------------------------------------------------------------------------------
# Rate limit (own server: 10 requests/s)


async def case_rate_limit(binary: str, notes: list):
    conf = CONFIG.replace("rate_limit = 100000", "rate_limit = 10")
    s = start_server(binary, conf, name="poll-rate")
    try:
        ch = uniq("feed:rl")
        a, b = Poller(s, "flooder"), Poller(s, "bystander")
        await a.open(ch)
        await b.open(ch)
        results = await asyncio.gather(*[a.post({"type": "ping", "id": i}) for i in range(80)])
        statuses = [r.status for r in results]
        limited = [r for r in results if r.status == 429]
        check(limited and all(err_code(r) == "rate_limited" for r in limited),
              f"80 concurrent POSTs at 10/s: statuses {sorted(set(statuses))}, "
              f"{len(limited)} × 429; sample {limited[:1] or results[:1]}")
        # Past the limit for long (as on /ws) the session is ended with 1008: POSTs after that
        # find no session any more (410).
        check(all(r.status in (200, 429, 410) for r in results),
              f"statuses {sorted(set(statuses))}")
        out = await b.post_ok({"type": "ping", "id": "b"})
        check(out == {"type": "pong", "id": "b"}, f"bystander ping → {out}")
        pub = await b.post_ok({"type": "publish", "id": "p", "channel": ch, "data": "hi"})
        check(pub.get("type") == "published", f"bystander publish → {pub}")
        await b.poll_until(lambda _: pub["offset"] in b.offsets(ch), 5, "its publication")
        r = await a.poll_raw(wait=1)
        tail = r.json.get("events") if isinstance(r.json, dict) else None
        ended = r.status == 410 or any(
            e.get("type") == "disconnect" and e.get("code") == 1008 for e in (tail or []))
        check(ended, f"the flooder's session ends with 1008: next poll → {r.status} {short(tail, 200)}")
        notes.append(f"rate limit: 80 POSTs → {statuses.count(200)} × 200, {len(limited)} × "
                     f"429; the flooder's next poll → {r.status} events {short(tail, 200)}")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# Auth (own server)


async def case_auth(binary: str):
    from tokens import hmac_secret, mint
    secret = hmac_secret()
    conf = f"""
[api]
key = "{API_KEY}"
[auth]
hmac_secrets = ["{secret}"]
[namespaces.priv]
history_size = 10
"""
    s = start_server(binary, conf, name="poll-auth")
    try:
        ch = uniq("priv:x")
        anon = Poller(s, "no-token")
        r = await anon.open_raw(ch)
        check(r.status == 401 and err_code(r) == "token_required" and
              "bearer" in r.headers.get("www-authenticate", "").lower(),
              f"GET without a token → {r} {r.headers}")
        r = await anon.open_raw(ch, token="not.a.token")
        check(r.status == 401 and err_code(r) == "invalid_token", f"bad token → {r}")
        other_key = mint(hmac_secret(), sub="alice")
        r = await anon.open_raw(ch, headers={"Authorization": f"Bearer {other_key}"})
        check(r.status == 401 and err_code(r) == "invalid_token",
              f"token signed with another key → {r}")
        alice, bob = mint(secret, sub="alice"), mint(secret, sub="bob")
        p = Poller(s, "alice", token=alice)
        con = await p.open(ch, expect_subscribed=1, user="mallory")
        check(con.get("user") == "alice", f"connected {short(con)} (the token's sub wins)")
        r = await p.post({"type": "ping", "id": 1}, token="")
        check(r.status == 401 and err_code(r) == "token_required", f"POST without a token → {r}")
        r = await p.post({"type": "ping", "id": 1}, token=bob)
        check(r.status == 403 and err_code(r) == "permission_denied",
              f"POST with bob's token to alice's session → {r}")
        r = await p.post({"type": "ping", "id": 1}, token=other_key)
        check(r.status == 401 and err_code(r) == "invalid_token",
              f"POST with a token of another key → {r}")
        out = await p.post_ok({"type": "publish", "id": 2, "channel": ch, "data": "mine"})
        check(out.get("type") == "published", f"alice's POST → {out}")
        await p.poll_until(lambda _: out["offset"] in p.offsets(ch), 5, "alice's publication")
        q = Poller(s, "bob-query")
        con = await q.open(ch, token=bob)
        check(con.get("user") == "bob", f"?token= open → {short(con)}")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# Bounded memory (own server)

OUTBOUND_LIMIT_KIB = 64
STALLED = 16
FLOOD = 3000
SIZE = 2048
WINDOW = 8          # publications ahead of the healthy poller: 8 × 2 KiB ≪ 64 KiB
# Per stalled poller at most outbound_limit (plus the event that crossed it and the farewell);
# history 100 × 2 KiB; allocator slack. Without the bound each stalled poller would hold the
# whole flood, 3000 × ~2.1 KiB ≈ 6 MiB, ≈ 100 MiB for 16.
RSS_MARGIN_MIB = 24


async def case_bounded_memory(binary: str, notes: list):
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
    s = start_server(binary, conf, name="poll-slow")
    pub = None
    try:
        ch = uniq("slow:flood")
        stalled = [Poller(s, f"stalled{i}") for i in range(STALLED)]
        for st in stalled:
            await st.open(ch, user=st.name)
        healthy = Poller(s, "healthy")
        await healthy.open(ch)
        m0 = await metrics_async(s)
        slow0 = m0.get(SLOW_METRIC, 0)
        base = s.rss_kib()
        peak = base
        pub = await Client.open(s, "flood-pub")
        await pub.connect()
        body = "x" * (SIZE - 16)
        sent = 0
        while sent < FLOOD:
            while sent - len(healthy.msgs()) < WINDOW and sent < FLOOD:
                await pub.send({"type": "publish", "channel": ch,
                                "data": f"{sent + 1:08d}" + body})
                sent += 1
                if sent % 100 == 0:
                    peak = max(peak, s.rss_kib())
            await healthy.poll(wait=5)
        await healthy.poll_until(lambda _: len(healthy.msgs()) >= FLOOD, 30,
                                 f"all {FLOOD} publications")
        got = healthy.offsets(ch)
        check(got == list(range(1, FLOOD + 1)),
              f"healthy poller: {compress(got)} (want 1-{FLOOD})")
        check(not [e for e in healthy.events if e.get("type") == "disconnect"],
              "the healthy poller was disconnected")
        await wait_metric(s, SLOW_METRIC, lambda v: v - slow0 >= STALLED, 10,
                          f"{STALLED} slow-consumer disconnects")
        peak = max(peak, s.rss_kib())
        bound = base + (OUTBOUND_LIMIT_KIB + 8) * (STALLED + 1) + RSS_MARGIN_MIB * 1024
        notes.append(f"bounded memory: RSS base {base // 1024} MiB, peak {peak // 1024} MiB, "
                     f"bound {bound // 1024} MiB; {STALLED} stalled pollers cut")
        check(peak <= bound, f"RSS peak {peak} KiB > bound {bound} KiB (base {base} KiB)")
        # Each stalled session ended as a slow consumer: its next poll gets the batch that
        # ends in disconnect 4000 (then 410), or 410 at once; a reopen resumes it.
        lens, direct_410 = [], 0
        for st in stalled:
            r = await st.poll_raw(wait=1)
            if r.status == 410:
                direct_410 += 1
            else:
                check(r.status == 200 and isinstance(r.json, dict),
                      f"{st.name}: first poll after the flood → {r}")
                b = r.json
                st.take(b)
                msgs = st.offsets(ch)
                lens.append(len(msgs))
                check(msgs == list(range(1, len(msgs) + 1)) and len(msgs) < FLOOD,
                      f"{st.name}: offsets {compress(msgs)}: not a cut prefix of the flood")
                check(b["events"][-1:] == [{"type": "disconnect", "code": 4000,
                                            "reason": "slow consumer", "reconnect": True}],
                      f"{st.name}: last batch ends {short(b['events'][-2:])}")
                held = sum(len(json.dumps(e, separators=(',', ':'))) for e in b["events"])
                check(held <= (OUTBOUND_LIMIT_KIB + 4) * 1024,
                      f"{st.name}: its batch holds {held} bytes > outbound_limit")
                r = await st.poll_raw(wait=1)
                check(r.status == 410, f"{st.name}: poll after the disconnect batch → {r}")
        again = Poller(s, "stalled0-reopened")
        con = await again.open(session=stalled[0].session, lastEventId=stalled[0].last_id)
        check(con.get("resumed") is True, f"reopen of a slow poller's session → {short(con)}")
        notes.append(f"bounded memory: next poll of a stalled session: {direct_410} × 410 at "
                     f"once, {len(lens)} × a batch ending in disconnect 4000"
                     + (f" ({min(lens)}-{max(lens)} publications)" if lens else ""))
        p = await publish(s, ch, "after")
        await healthy.poll_until(lambda _: p["offset"] in healthy.offsets(ch), 5, "one more")
    finally:
        if pub is not None:
            await pub.stop()
        s.close()


# --------------------------------------------------------------------------------------------
# Reopen while the session's poll waits (own server, one loop: old and new poller share it)


async def case_reopen_while_poll_waits(binary: str, notes: list):
    s = start_server(binary, CONFIG, name="poll-reopen-wait", threads=1)
    try:
        ch = uniq("feed:rw")
        p = Poller(s, "old")
        await p.open(ch)
        await publish(s, ch, 1)
        await p.poll_until(lambda _: p.offsets(ch) == [1], 5, "offset 1")
        waiting = asyncio.ensure_future(p.poll_raw(wait=25, timeout=80))
        await parked_hint(s)
        await publish(s, ch, 2)
        r = await asyncio.wait_for(asyncio.shield(waiting), 10)
        p.take(r.json)
        waiting = asyncio.ensure_future(p.poll_raw(wait=25, timeout=80))
        # Parked for certain before the reopen: a GET read after it would poll the new session
        # (same id) and wait its full 25 s, past the 10 s bound below.
        await wait_parked(s)
        q = Poller(s, "new")
        con = await q.open(session=p.session, lastEventId=p.last_id)
        check(con.get("resumed") is True, f"reopen → {short(con)}")
        # The replaced poller's waiting poll must be answered now (an empty batch, or the
        # disconnect 4004 of a takeover), as a newer poll answers a waiting one; not left to
        # the route's 504 safety net.
        t0 = time.monotonic()
        try:
            r = await asyncio.wait_for(asyncio.shield(waiting), 10)
        except asyncio.TimeoutError:
            r = await waiting
            raise CheckFailed(f"a poll waiting when its session was reopened (same loop) was "
                              f"not answered within 10s; after "
                              f"{time.monotonic() - t0:.1f}s it got {r}") from None
        check(r.status == 200 and isinstance(r.json, dict) and
              (r.json.get("events") == [] or
               r.json["events"][-1].get("type") == "disconnect"),
              f"the replaced poller's waiting poll → {r}")
        await publish(s, ch, 3)
        await q.poll_until(lambda _: 3 in q.offsets(ch), 5, "offset 3 on the new poller")
        check(q.offsets(ch) == [3], f"new poller {q.offsets(ch)}")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# SIGTERM (own server)

SHUTDOWN_TIMEOUT_S = 5


async def case_sigterm(binary: str, notes: list):
    s = start_server(binary, CONFIG, name="poll-term",
               flags=("--shutdown-timeout", f"{SHUTDOWN_TIMEOUT_S}s"))
    try:
        pollers = []
        for i in range(3):
            p = Poller(s, f"T{i}")
            await p.open(uniq("feed:t"))
            pollers.append(p)
        tasks = [asyncio.ensure_future(p.poll_raw(wait=25, timeout=SHUTDOWN_TIMEOUT_S + 10))
                 for p in pollers]
        await parked_hint(s, 3)
        t0 = time.monotonic()
        s.proc.signal(signal.SIGTERM)
        outcomes = []
        for p, t in zip(pollers, tasks):
            try:
                r = await t
            except NoResponse as e:
                check(e.partial == b"", f"{p.name}: the waiting poll's connection closed "
                      f"mid-response: {e.partial[:200]!r}")
                outcomes.append("closed")
                continue
            except asyncio.TimeoutError:
                raise CheckFailed(f"{p.name}: the waiting poll was not answered within "
                                  f"{SHUTDOWN_TIMEOUT_S + 10}s of SIGTERM") from None
            check(r.status == 200 and isinstance(r.json, dict) and "seq" in r.json,
                  f"{p.name}: the waiting poll at SIGTERM → {r}")
            evs = r.json["events"]
            ok = evs == [] or evs[-1].get("type") == "disconnect"
            check(ok, f"{p.name}: batch at SIGTERM {short(r.json)}")
            if evs:
                d = evs[-1]
                check(d.get("code") == 1001 and d.get("reconnect") is True,
                      f"{p.name}: disconnect at SIGTERM {short(d)} (want 1001, reconnect)")
            outcomes.append(f"{r.status} seq {r.json['seq']} {[e.get('type') for e in evs]}")
        answered = time.monotonic() - t0
        loop = asyncio.get_running_loop()
        rc = await loop.run_in_executor(None, s.proc.wait_exit, SHUTDOWN_TIMEOUT_S + 5)
        took = time.monotonic() - t0
        check(rc == 0, f"exit code {rc} ({took:.1f}s after SIGTERM); log "
              f"{s.proc.log_tail(500)}")
        notes.append(f"SIGTERM: waiting polls → {outcomes} within {answered:.2f}s; exit 0 "
                     f"after {took:.2f}s (shutdown timeout {SHUTDOWN_TIMEOUT_S}s)")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# Expiry (own server, ~50 s; runs alongside the other cases)

EXPIRY_S = 45  # docs/protocol.md: a session nobody polls for 45 s is closed


async def case_expiry(binary: str, notes: list):
    s = start_server(binary, CONFIG, name="poll-expiry")
    try:
        ch = uniq("feed:exp")
        p = Poller(s, "expiring")
        await p.open(ch)
        await publish(s, ch, 1)
        await p.poll_until(lambda _: p.offsets(ch) == [1], 5, "offset 1")
        await p.poll(wait=1)  # acks the batch; then nobody polls
        t0 = time.monotonic()
        m = await metrics_async(s)
        check(m.get("switchboard_clients") == 1, f"clients {m.get('switchboard_clients')}")
        await publish(s, ch, 2)
        await wait_metric(s, "switchboard_clients", lambda v: v == 0, EXPIRY_S + 30,
                          "the unpolled session's client to be closed", poll=0.5)
        took = time.monotonic() - t0
        r = await p.poll_raw(wait=1)
        check(r.status == 410, f"poll after expiry → {r}")
        r = await p.post({"type": "ping", "id": 1})
        check(r.status in (404, 410), f"POST after expiry → {r} (docs: 404 none holds it, "
              "410 it ended)")
        post_status = r.status
        await publish(s, ch, 3)
        q = Poller(s, "expired-reopened")
        con = await q.open(session=p.session, lastEventId=p.last_id)
        check(con.get("resumed") is True and con.get("session") == p.session,
              f"reopen after expiry (within session_ttl) → {short(con)}")
        await q.poll_until(lambda _: 3 in q.offsets(ch), 5, "offsets 2-3")
        check(q.offsets(ch) == [2, 3], f"recovered after expiry {q.offsets(ch)} (want 2,3)")
        notes.append(f"expiry: the unpolled session was closed {took:.1f}s after its last poll; "
                     f"then GET → 410, POST → {post_status}")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# The longest wait (own server, ~30 s; runs alongside the other cases)


async def case_max_wait(binary: str, notes: list):
    """docs/protocol.md: `wait` seconds, default 25, at most 30, then an empty batch. wait=30
    and a larger wait (capped at 30) must end in a batch with seq 0, not an HTTP error."""
    s = start_server(binary, CONFIG, name="poll-maxwait")
    try:
        ps = []
        for w in (30, 300):
            p = Poller(s, f"wait{w}")
            await p.open(uniq("feed:mw"))
            ps.append((w, p))
        t0 = time.monotonic()
        rs = await asyncio.gather(*[p.poll_raw(wait=w, timeout=75) for w, p in ps])
        took = time.monotonic() - t0
        bad = [f"wait={w} → {r}" for (w, _), r in zip(ps, rs)
               if not (r.status == 200 and isinstance(r.json, dict) and r.json.get("seq") == 0)]
        check(not bad, "; ".join(bad) + " (want an empty batch, seq 0)")
        notes.append(f"max wait: wait=30 and wait=300 answered empty after {took:.1f}s")
    finally:
        s.close()


# --------------------------------------------------------------------------------------------


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_poll")
    suite = Suite(args.server)
    expiry = asyncio.ensure_future(run_case(rep, "expiry_45s_then_reopen",
                                            lambda: case_expiry(args.server, suite.notes),
                                            timeout=EXPIRY_S + 60))
    max_wait = asyncio.ensure_future(run_case(rep, "max_wait_30s_empty_batch",
                                              lambda: case_max_wait(args.server, suite.notes),
                                              timeout=90))
    suite.s = start_server(args.server, CONFIG, name="poll", threads=2)
    try:
        for name in ("open_first_batch", "open_bad_parameters_400", "open_info_validated",
                     "poll_wakes_on_api_publish", "poll_wakes_on_post_publish",
                     "poll_burst_in_one_batch", "poll_empty_after_wait", "poll_resend_and_ack",
                     "newer_poll_replaces_waiting", "post_requests",
                     "exact_delivery_lost_responses", "reopen_exact", "reopen_history_gone",
                     "poll_not_here_410", "post_to_ws_session_404", "poll_takes_over_ws",
                     "ws_takes_over_poll", "at_least_once_reopen"):
            await run_case(rep, name, getattr(suite, "case_" + name), timeout=90)
            if not suite.s.proc.alive():
                rep.record("server alive", False, f"server exited after {name}: "
                           f"{suite.s.proc.log_tail()}")
                break
    finally:
        suite.s.close()
    await run_case(rep, "auth", lambda: case_auth(args.server), timeout=60)
    await run_case(rep, "reopen_while_poll_waits",
                   lambda: case_reopen_while_poll_waits(args.server, suite.notes), timeout=90)
    await run_case(rep, "bounded_memory_slow_pollers",
                   lambda: case_bounded_memory(args.server, suite.notes), timeout=180)
    await run_case(rep, "post_rate_limit", lambda: case_rate_limit(args.server, suite.notes),
                   timeout=60)
    await run_case(rep, "sigterm_while_polls_wait",
                   lambda: case_sigterm(args.server, suite.notes), timeout=60)
    await max_wait
    await expiry
    found = sanitizer_reports()
    rep.record("no_sanitizer_reports", not found, "; ".join(found)[:3000] if found else
               f"{len(SERVERS)} server logs")
    for n in suite.notes:
        rep.note(n)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
