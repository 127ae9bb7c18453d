#!/usr/bin/python3
"""Integration: every message type, error code and close path of docs/protocol.md, over real
sockets against `switchboard serve` (two event loops), plus the HTTP API and /metrics.

Each case sends requests and waits for the replies/events with deadlines. Where a case must
show that something did NOT arrive, it publishes a fence after it and relies on the
per-channel order the protocol promises: once the fence arrives, anything that was going to
arrive before it has.

  /usr/bin/python3 tests/integration/test_messaging.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import OP_PING, ConnectionClosed, Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, RawClient, Server,  # noqa: E402
                       api_async, api_ok_async, check, metrics_async, open_clients,
                       require_websockets, run_case, short, stop_all, suite_arguments)

require_websockets()

CONFIG = f"""
[api]
key = "{API_KEY}"

[messaging]
outbound_limit = "256KiB"
rate_limit = 200

[websocket]
ping_interval = "25s"

[namespaces.chat]
presence = true
join_leave = true
history_size = 10
history_ttl = "5m"
client_publish = true
delivery = "at_most_once"
slow_consumer = "disconnect"
max_data_bytes = "1KiB"

[namespaces.readonly]
client_publish = false
history_size = 10

[namespaces.quiet]
presence = false
join_leave = false
history_size = 0

[namespaces.ephemeral]
history_size = 10
history_ttl = "1s"
"""

NO_KEY_CONFIG = """
[namespaces.chat]
presence = true
"""

HEARTBEAT_CONFIG = """
[websocket]
ping_interval = "1s"
idle_timeout = "2s"

[namespaces.chat]
presence = true
join_leave = true
"""

# A child that joins a channel over a raw socket and then blocks on stdin until it is killed.
CHILD_CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from messaging import RawClient
class S: pass
s = S(); s.host = sys.argv[2]; s.port = int(sys.argv[3])
c = RawClient(s)
r = c.connect(user="doomed")
sub = c.request({"type": "subscribe", "channel": sys.argv[4]})
assert sub.get("type") == "subscribed", sub
print("ready", r["client"], flush=True)
sys.stdin.read()
"""

SUPPORT = str(Path(__file__).resolve().parent.parent / "support")


class Suite:
    def __init__(self, binary: str):
        self.binary = binary
        self.s: Server | None = None
        self.seq = 0

    def chan(self, prefix: str = "chat") -> str:
        """A fresh channel name per use, so cases never see each other's traffic."""
        self.seq += 1
        return f"{prefix}:t{self.seq}-{os.getpid()}"

    async def client(self, name: str, connect: bool = True, **fields) -> Client:
        c = await Client.open(self.s, name)
        if connect:
            await c.connect(user=name, **fields)
        return c

    async def expect_error(self, c: Client, req: dict, code: str, *, mentions: str | None = None,
                           echo_id=True):
        r = await c.request(req)
        check(r.get("type") == "error" and r.get("code") == code,
              f"sent {short(req)}: expected error {code}, got {short(r)}")
        check(isinstance(r.get("message"), str) and r["message"],
              f"error without a message: {short(r)}")
        if echo_id:
            check(r.get("id") == req.get("id", r.get("id")), f"id not echoed: {short(r)}")
        if mentions:
            check(mentions in r["message"],
                  f"sent {short(req)}: protocol.md says `message` names the field "
                  f"{mentions!r}; got {r['message']!r}")
        await c.ping_ok()  # the connection stays open and usable
        return r

    # ---------------------------------------------------------------- connect / ping / ids
    async def case_connect(self):
        c = await self.client("conn", connect=False)
        try:
            r = await c.request({"type": "connect", "id": 1, "name": "web", "user": "alice",
                                 "info": {"avatar": "a.png"}})
            check(r.get("type") == "connected" and r.get("id") == 1, f"connect → {short(r)}")
            check(isinstance(r.get("client"), str) and r["client"], f"no client id: {short(r)}")
            check(isinstance(r.get("session"), str) and r["session"], f"no session: {short(r)}")
            check(r.get("resumed") is False, f"fresh connect must say resumed:false: {short(r)}")
            check(r.get("ping_interval") == 25, f"ping_interval should be 25 (config 25s): "
                  f"{short(r)}")
            check(c.ws.subprotocol == "switchboard.v1.json",
                  f"offered switchboard.v1.json, server selected {c.ws.subprotocol!r}")
            c2 = await self.client("conn2", connect=False)
            r2 = await c2.request({"type": "connect", "id": "str-id", "user": "bob"})
            check(r2.get("type") == "connected" and r2.get("id") == "str-id",
                  f"string id not echoed: {short(r2)}")
            check(r2["client"] != r["client"] and r2["session"] != r["session"],
                  f"two connections share ids: {short(r)} / {short(r2)}")
            await c2.stop()
        finally:
            await c.stop()

    async def case_no_subprotocol(self):
        # "A client that offers no subprotocol is served this protocol too."
        c = await Client.open(self.s, "nosub", subprotocols=None)
        try:
            r = await c.request({"type": "connect", "user": "plain"})
            check(r.get("type") == "connected", f"connect without a subprotocol → {short(r)}")
            await c.ping_ok()
        finally:
            await c.stop()

    async def case_connect_info_limits(self):
        c = await self.client("info", connect=False)
        try:
            await self.expect_error(c, {"type": "connect", "id": 1, "user": "u",
                                        "info": {"x": "y" * 1100}}, "bad_request",
                                    mentions="info")
            await self.expect_error(c, {"type": "connect", "id": 2, "user": "u",
                                        "info": "not an object"}, "bad_request",
                                    mentions="info")
            r = await c.request({"type": "connect", "id": 3, "user": "u",
                                 "info": {"x": "y" * 900}})
            check(r.get("type") == "connected", f"info under 1 KiB → {short(r)}")
            for bad_id in ("x" * 65, {"a": 1}, [1], True):
                await c.send({"type": "ping", "id": bad_id})
                r = await c.expect_type("error")
                check(r.get("code") == "bad_request", f"ping with id {short(bad_id, 20)} → "
                      f"{short(r)}; protocol.md: an id is a number or a string ≤ 64 bytes")
                await c.ping_ok()
        finally:
            await c.stop()

    async def case_ping(self):
        c = await self.client("pinger")
        try:
            for rid in (7, "p-7", 0, -3, 1.5, "x" * 64):
                r = await c.request({"type": "ping", "id": rid})
                check(r == {"type": "pong", "id": rid}, f"ping id={rid!r} → {short(r)}")
            # WebSocket-level pings work as well.
            pong_waiter = await c.ws.ping(b"hi")
            await asyncio.wait_for(pong_waiter, 5)
        finally:
            await c.stop()

    async def case_not_connected(self):
        c = await self.client("early", connect=False)
        try:
            for req in ({"type": "subscribe", "id": 1, "channel": "chat:x"},
                        {"type": "publish", "id": 2, "channel": "chat:x", "data": 1},
                        {"type": "presence", "id": 3, "channel": "chat:x"},
                        {"type": "history", "id": 4, "channel": "chat:x"}):
                r = await c.request(req)
                check(r.get("type") == "error" and r.get("code") == "not_connected"
                      and r.get("id") == req["id"], f"before connect {short(req)} → {short(r)}")
            await c.connect(user="late")  # still usable
            await c.ping_ok()
        finally:
            await c.stop()

    async def case_ping_before_connect(self):
        # protocol.md: `connect` is the first message; "anything but ping before it → error
        # not_connected": a ping is answered (liveness checks need no session).
        c = await self.client("early-ping", connect=False)
        try:
            r = await c.request({"type": "ping", "id": 1})
            check(r.get("type") == "pong" and r.get("id") == 1,
                  f"sent {{\"type\":\"ping\",\"id\":1}} before connect: protocol.md says "
                  f"ping is allowed before connect → pong; got {short(r)}")
        finally:
            await c.stop()

    async def case_already_connected(self):
        c = await self.client("twice")
        try:
            await self.expect_error(c, {"type": "connect", "id": "again", "user": "x"},
                                    "already_connected")
        finally:
            await c.stop()

    # ---------------------------------------------------------------- malformed input
    async def case_bad_json(self):
        c = await self.client("badjson")
        try:
            for raw in ("{not json", "", "[1,2", '{"type":"ping","id":1', "\"just a string"):
                await c.send(raw)
                r = await c.expect_type("error")
                check(r.get("code") == "bad_json", f"sent {raw!r} → {short(r)}")
                await c.ping_ok()
            # A JSON value that is not an object has no type: an error, connection stays.
            await c.send("[1,2,3]")
            r = await c.expect_type("error")
            check(r.get("code") in ("bad_json", "bad_request"), f"sent [1,2,3] → {short(r)}")
            await c.ping_ok()
        finally:
            await c.stop()

    async def case_deep_nesting(self):
        c = await self.client("deep")
        ch = self.chan()
        try:
            deep = "[" * 40 + "]" * 40
            await c.send(f'{{"type":"publish","id":1,"channel":"{ch}","data":{deep}}}')
            r = await c.expect(lambda m: m.get("type") in ("error", "published"), 5,
                               "reply to a 41-level document")
            check(r.get("type") == "error" and r.get("code") == "bad_json",
                  f"41 levels of nesting: protocol.md says deeper than 32 is invalid JSON "
                  f"(bad_json); got {short(r)}")
            await c.ping_ok()
            shallow = "[" * 10 + "]" * 10
            await c.send(f'{{"type":"publish","id":2,"channel":"{ch}","data":{shallow}}}')
            r = await c.expect(lambda m: m.get("id") == 2, 5, "reply to 11 levels")
            check(r.get("type") == "published", f"11 levels of nesting refused: {short(r)}")
        finally:
            await c.stop()

    async def case_bad_request(self):
        c = await self.client("badreq")
        ch = self.chan()
        try:
            await self.expect_error(c, {"type": "subscribe", "id": 11}, "bad_request",
                                    mentions="channel")
            await self.expect_error(c, {"type": "publish", "id": 12, "channel": ch},
                                    "bad_request", mentions="data")
            await self.expect_error(c, {"type": "unsubscribe", "id": 13}, "bad_request",
                                    mentions="channel")
            await self.expect_error(c, {"type": "ack", "id": 14, "channel": ch}, "bad_request",
                                    mentions="offset")
            await self.expect_error(c, {"type": "subscribe", "id": 15, "channel": ch,
                                        "since": {"offset": 3}}, "bad_request",
                                    mentions="epoch")
            await self.expect_error(c, {"type": "subscribe", "id": 16, "channel": 5},
                                    "bad_request", mentions="channel")
            # No type at all: a missing field.
            await self.expect_error(c, {"id": 17, "channel": ch}, "bad_request",
                                    mentions="type")
        finally:
            await c.stop()

    async def case_unknown_type(self):
        c = await self.client("unknown")
        try:
            for rid in ("u-1", 99):
                r = await self.expect_error(c, {"type": "frobnicate", "id": rid}, "unknown_type")
                check(r.get("id") == rid, f"unknown_type must echo id {rid!r}: {short(r)}")
            # Server-to-client types are not requests either.
            await self.expect_error(c, {"type": "message", "id": "m", "channel": "chat:a"},
                                    "unknown_type")
        finally:
            await c.stop()

    async def case_unknown_namespace(self):
        c = await self.client("nons")
        try:
            for t, extra in (("subscribe", {}), ("publish", {"data": 1}), ("presence", {}),
                             ("history", {})):
                await self.expect_error(c, {"type": t, "id": t, "channel": "nosuchns:x", **extra},
                                        "unknown_namespace")
        finally:
            await c.stop()

    async def case_bad_channel(self):
        c = await self.client("badch")
        try:
            bad = ["chat:", "Chat:x", "chat:has space", "chat:" + "a" * 193, ":x",
                   "n" * 65 + ":x", "chat:é", "chat:a/b"]
            for i, ch in enumerate(bad):
                await self.expect_error(c, {"type": "subscribe", "id": i, "channel": ch},
                                        "bad_channel")
            await self.expect_error(c, {"type": "publish", "id": "p", "channel": "chat:",
                                        "data": 1}, "bad_channel")
            # The limits themselves are valid: 192-byte name, every allowed character.
            for ch in ("chat:" + "a" * 192, "chat:A-z_0.9:@=,x"):
                await c.subscribe(ch)
        finally:
            await c.stop()

    async def case_already_and_not_subscribed(self):
        c = await self.client("subs")
        ch = self.chan()
        try:
            await c.subscribe(ch)
            await self.expect_error(c, {"type": "subscribe", "id": "again", "channel": ch},
                                    "already_subscribed")
            r = await c.request({"type": "unsubscribe", "id": "u", "channel": ch})
            check(r == {"type": "unsubscribed", "id": "u", "channel": ch},
                  f"unsubscribe → {short(r)}")
            await self.expect_error(c, {"type": "unsubscribe", "id": "u2", "channel": ch},
                                    "not_subscribed")
            await c.subscribe(ch)  # subscribing again after unsubscribe works
        finally:
            await c.stop()

    async def case_publish_forbidden(self):
        c = await self.client("ro")
        ch = self.chan("readonly")
        try:
            await c.subscribe(ch)
            await self.expect_error(c, {"type": "publish", "id": "f", "channel": ch,
                                        "data": {"x": 1}}, "publish_forbidden")
            # The HTTP API may still publish there, and subscribers get it.
            out = await api_ok_async(self.s, "publish", {"channel": ch, "data": {"via": "api"}})
            m = await c.expect_type("message", channel=ch)
            check(m.get("data") == {"via": "api"} and m.get("offset") == out.get("offset"),
                  f"API publication on a client_publish=false namespace: {short(m)} vs "
                  f"{short(out)}")
        finally:
            await c.stop()

    async def case_presence_history_disabled(self):
        c = await self.client("quiet")
        ch = self.chan("quiet")
        try:
            await c.subscribe(ch)
            await self.expect_error(c, {"type": "presence", "id": 1, "channel": ch},
                                    "presence_disabled")
            await self.expect_error(c, {"type": "history", "id": 2, "channel": ch},
                                    "history_disabled")
        finally:
            await c.stop()

    async def case_data_too_large(self):
        c = await self.client("big")
        ch = self.chan()
        try:
            await c.subscribe(ch)
            await self.expect_error(c, {"type": "publish", "id": "big", "channel": ch,
                                        "data": "x" * 2000}, "data_too_large")
            ok = await c.publish(ch, "y" * 500)  # under max_data_bytes = 1 KiB
            m = await c.expect_type("message", channel=ch)
            check(m.get("offset") == ok["offset"] and m.get("data") == "y" * 500,
                  f"the refused publication must not exist: first message {short(m)}")
        finally:
            await c.stop()

    async def case_binary_frame(self):
        c = await self.client("bin")
        try:
            await c.send(b'{"type":"ping","id":1}')
            r = await c.expect_type("error")
            check(r.get("code") == "bad_frame", f"binary frame → {short(r)}")
            await c.ping_ok()
        finally:
            await c.stop()

    async def case_frame_too_big(self):
        # protocol.md: the maximum message size is messaging.max_message_size, by default the
        # largest max_data_bytes (64 KiB) + 4 KiB; larger → close 1009. This server runs with
        # the default.
        c = await self.client("huge")
        try:
            await c.send(json.dumps({"type": "ping", "id": 1, "pad": "z" * (80 * 1024)}))
            try:
                code, reason = await c.wait_closed(5)
            except CheckFailed:
                first = c.all[-1] if c.all else None
                raise CheckFailed(f"sent an 80 KiB text frame on /ws: protocol.md says larger "
                                  f"than the default max_message_size of 68 KiB → close 1009; "
                                  f"the connection stayed open, last reply {short(first)}")
            check(code == 1009, f"80 KiB frame → close {code} {reason!r}, expected 1009")
        finally:
            await c.stop()

    # ---------------------------------------------------------------- publish / subscribe
    async def case_pubsub_fanout(self):
        ch = self.chan()
        subs = await open_clients(self.s, 8, prefix="fan")
        pub = await self.client("fanpub")
        try:
            rs = await asyncio.gather(*[c.subscribe(ch) for c in subs])
            for r in rs:
                check(isinstance(r.get("epoch"), str) and r["epoch"] and r.get("offset") == 0,
                      f"subscribe to a new channel → {short(r)} (expected offset 0)")
                check("recovered" not in r, f"recovered present without since: {short(r)}")
            epoch = rs[0]["epoch"]
            check(all(r["epoch"] == epoch for r in rs), f"epochs differ: {[r['epoch'] for r in rs]}")
            loops = {c.client_id.split("_")[1] for c in subs if c.client_id.count("_") >= 2}
            print(f"NOTE       fan-out subscribers on loops {sorted(loops)}", flush=True)
            # Pipelined publishes: send 50 without waiting, then collect the replies.
            n = 50
            for i in range(n):
                await pub.send({"type": "publish", "id": f"p{i}", "channel": ch,
                                "data": {"i": i, "s": "é€😀"}})
            replies = [await pub.expect(lambda m, i=i: m.get("id") == f"p{i}", 5, f"p{i}")
                       for i in range(n)]
            for i, r in enumerate(replies):
                check(r.get("type") == "published" and r.get("channel") == ch and
                      r.get("epoch") == epoch and r.get("offset") == i + 1,
                      f"publish #{i} → {short(r)} (expected offset {i + 1}, epoch {epoch})")
                check("duplicate" not in r or r["duplicate"] is False,
                      f"publish without key says duplicate: {short(r)}")
            for c in subs:
                await c.wait_until(lambda c=c: len(c.messages(ch)) >= n, 10,
                                   f"{n} messages on {ch}")
            for c in subs:
                got = c.messages(ch)
                check(len(got) == n, f"{c.name}: {len(got)} messages, expected {n}")
                for i, m in enumerate(got):
                    check(m.get("offset") == i + 1 and m.get("epoch") == epoch and
                          m.get("data") == {"i": i, "s": "é€😀"} and "id" not in m,
                          f"{c.name}: message #{i} is {short(m)}")
            check(not pub.messages(ch), f"the publisher is not subscribed but got "
                  f"{short(pub.messages(ch))}")
        finally:
            await stop_all(subs + [pub])

    async def case_unsubscribe_stops_delivery(self):
        ch, other = self.chan(), self.chan()
        a = await self.client("unsubA")
        b = await self.client("unsubB")
        try:
            await a.subscribe(ch)
            await a.subscribe(other)
            await b.subscribe(ch)
            await a.publish(ch, "before")
            await a.expect_type("message", channel=ch)
            await a.request({"type": "unsubscribe", "channel": ch})
            await a.publish(ch, "after")
            await b.wait_until(lambda: any(m.get("data") == "after" for m in b.messages(ch)), 5,
                               "'after' at the other subscriber")
            await a.publish(other, "fence")
            await a.expect_type("message", channel=other)
            got = [m["data"] for m in a.messages(ch)]
            check(got == ["before"], f"after unsubscribe the client still got {got}")
        finally:
            await stop_all([a, b])

    # ---------------------------------------------------------------- presence / join / leave
    async def presence(self, c: Client, ch: str) -> dict:
        r = await c.request({"type": "presence", "channel": ch})
        check(r.get("type") == "presence" and r.get("channel") == ch, f"presence → {short(r)}")
        check(r.get("count") == len(r.get("clients", [])),
              f"presence count {r.get('count')} != {len(r.get('clients', []))} clients")
        return r

    async def wait_presence_count(self, c: Client, ch: str, count: int, seconds: float = 3.0):
        deadline = Deadline(seconds)
        while True:
            r = await self.presence(c, ch)
            if r["count"] == count:
                return r
            if deadline.expired():
                raise CheckFailed(f"presence of {ch} stayed {r['count']} ({short(r)}), "
                                  f"expected {count}")
            await asyncio.sleep(0.05)

    async def case_presence_and_join(self):
        ch = self.chan()
        obs = await self.client("observer")
        joiners = []
        try:
            await obs.subscribe(ch)
            for i in range(3):
                j = await self.client(f"joiner{i}", connect=False)
                joiners.append(j)
                await j.connect(user=f"user{i}", info={"n": i, "tag": "é"})
                await j.subscribe(ch)
                ev = await obs.expect(lambda m, j=j: m.get("type") == "join" and
                                      m.get("client") == j.client_id, 5, f"join of {j.name}")
                check(ev.get("channel") == ch and ev.get("user") == f"user{i}" and
                      ev.get("info") == {"n": i, "tag": "é"} and "id" not in ev,
                      f"join event {short(ev)}")
            r = await self.presence(obs, ch)
            check(r["count"] == 4, f"presence after 3 joins + observer: {short(r)}")
            by_client = {e["client"]: e for e in r["clients"]}
            for i, j in enumerate(joiners):
                e = by_client.get(j.client_id)
                check(e is not None and e.get("user") == f"user{i}" and
                      e.get("info") == {"n": i, "tag": "é"}, f"presence entry of {j.name}: {e}")
            check(obs.client_id in by_client and by_client[obs.client_id].get("user") ==
                  "observer", f"observer missing from presence: {short(r)}")
            # Leave by unsubscribe.
            await joiners[0].request({"type": "unsubscribe", "channel": ch})
            ev = await obs.expect(lambda m: m.get("type") == "leave" and
                                  m.get("client") == joiners[0].client_id, 5, "leave on unsubscribe")
            check(ev.get("channel") == ch and ev.get("user") == "user0", f"leave {short(ev)}")
            await self.wait_presence_count(obs, ch, 3)
            # Leave by a clean close.
            await joiners[1].close()
            ev = await obs.expect(lambda m: m.get("type") == "leave" and
                                  m.get("client") == joiners[1].client_id, 5,
                                  "leave on clean close")
            check(ev.get("user") == "user1" and ev.get("info") == {"n": 1, "tag": "é"},
                  f"leave {short(ev)}")
            await self.wait_presence_count(obs, ch, 2)
            # Leave by an abrupt TCP reset (no close frame).
            joiners[2].abort(rst=True)
            await obs.expect(lambda m: m.get("type") == "leave" and
                             m.get("client") == joiners[2].client_id, 5, "leave on TCP reset")
            r = await self.wait_presence_count(obs, ch, 1)
            check([e["client"] for e in r["clients"]] == [obs.client_id],
                  f"presence after all left: {short(r)}")
        finally:
            await stop_all([obs] + joiners)

    async def case_leave_on_raw_socket_drop(self):
        ch = self.chan()
        obs = await self.client("observer2")
        raw = None
        try:
            await obs.subscribe(ch)
            raw = RawClient(self.s)
            raw.connect(user="raw")
            r = raw.request({"type": "subscribe", "channel": ch})
            check(r.get("type") == "subscribed", f"raw subscribe → {r}")
            await obs.expect(lambda m: m.get("type") == "join" and
                             m.get("client") == raw.client_id, 5, "join of raw")
            await self.wait_presence_count(obs, ch, 2)
            raw.ws.sock.close()  # FIN with no close frame
            raw = None
            await obs.expect(lambda m: m.get("type") == "leave" and m.get("user") == "raw", 5,
                             "leave after the raw socket closed without a close frame")
            await self.wait_presence_count(obs, ch, 1)
        finally:
            if raw:
                raw.close()
            await obs.stop()

    async def case_leave_on_killed_process(self):
        ch = self.chan()
        obs = await self.client("observer3")
        child = None
        try:
            await obs.subscribe(ch)
            child = subprocess.Popen(
                ["/usr/bin/python3", "-c", CHILD_CLIENT, SUPPORT, self.s.host, str(self.s.port),
                 ch], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            loop = asyncio.get_running_loop()
            line = await asyncio.wait_for(loop.run_in_executor(None, child.stdout.readline), 10)
            check(line.startswith(b"ready "), f"child client did not start: {line!r}")
            cid = line.split()[1].decode()
            await obs.expect(lambda m: m.get("type") == "join" and m.get("client") == cid, 5,
                             "join of the child process")
            await self.wait_presence_count(obs, ch, 2)
            os.kill(child.pid, signal.SIGKILL)
            await loop.run_in_executor(None, child.wait)
            ev = await obs.expect(lambda m: m.get("type") == "leave" and m.get("client") == cid,
                                  5, "leave after the client process was killed")
            check(ev.get("user") == "doomed", f"leave {short(ev)}")
            await self.wait_presence_count(obs, ch, 1)
        finally:
            if child and child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
            await obs.stop()

    # ---------------------------------------------------------------- history / recovery
    async def publish_n(self, c: Client, ch: str, n: int, tag: str) -> list[dict]:
        for i in range(n):
            await c.send({"type": "publish", "id": f"{tag}{i}", "channel": ch,
                          "data": {"tag": tag, "i": i}})
        out = []
        for i in range(n):
            r = await c.expect(lambda m, i=i: m.get("id") == f"{tag}{i}", 5, f"{tag}{i}")
            check(r.get("type") == "published", f"publish {tag}{i} → {short(r)}")
            out.append(r)
        return out

    async def case_history(self):
        ch = self.chan()  # history_size = 10
        c = await self.client("hist")
        try:
            r0 = await c.request({"type": "history", "channel": ch})
            check(r0.get("type") == "history" and r0.get("publications") == [] and
                  r0.get("offset") == 0, f"history of an empty channel → {short(r0)}")
            pubs = await self.publish_n(c, ch, 15, "h")
            epoch = pubs[-1]["epoch"]
            r = await c.request({"type": "history", "channel": ch})
            check(r.get("channel") == ch and r.get("epoch") == epoch and r.get("offset") == 15,
                  f"history top → {short(r)}")
            check("recovered" not in r, f"recovered without since: {short(r)}")
            offs = [p.get("offset") for p in r.get("publications", [])]
            check(offs == list(range(6, 16)),
                  f"history_size=10 after 15 publications: expected offsets 6..15, got {offs}")
            check([p.get("data") for p in r["publications"]] ==
                  [{"tag": "h", "i": i} for i in range(5, 15)], "history data differs")
            r = await c.request({"type": "history", "channel": ch, "limit": 3})
            offs = [p.get("offset") for p in r.get("publications", [])]
            check(offs == [13, 14, 15], f"limit 3 without since → {offs}, expected newest 3")
            r = await c.request({"type": "history", "channel": ch, "limit": 500})
            offs = [p.get("offset") for p in r.get("publications", [])]
            check(offs == list(range(6, 16)), f"limit above history size → {offs}")
            r = await c.request({"type": "history", "channel": ch,
                                 "since": {"epoch": epoch, "offset": 12}})
            offs = [p.get("offset") for p in r.get("publications", [])]
            check(r.get("recovered") is True and offs == [13, 14, 15],
                  f"history since 12 → recovered={r.get('recovered')} {offs}")
            r = await c.request({"type": "history", "channel": ch,
                                 "since": {"epoch": epoch, "offset": 15}})
            check(r.get("recovered") is True and r.get("publications") == [],
                  f"history since the top → {short(r)}")
            r = await c.request({"type": "history", "channel": ch,
                                 "since": {"epoch": epoch, "offset": 3}})
            check(r.get("recovered") is False,
                  f"history since 3 with 4,5 trimmed (history_size 10) must say "
                  f"recovered:false → {short(r)}")
            r = await c.request({"type": "history", "channel": ch,
                                 "since": {"epoch": "e_not_this_one", "offset": 12}})
            check(r.get("recovered") is False, f"history with another epoch → {short(r)}")
        finally:
            await c.stop()

    async def case_history_ttl(self):
        ch = self.chan("ephemeral")  # history_ttl = 1s
        c = await self.client("ttl")
        try:
            pub = await c.publish(ch, "short-lived")
            r = await c.request({"type": "history", "channel": ch})
            check(len(r.get("publications", [])) == 1, f"history right after publish {short(r)}")
            deadline = Deadline(6)
            while r.get("publications"):
                check(not deadline.expired(), f"history_ttl=1s: publication still in history "
                      f"after 6s: {short(r)}")
                await asyncio.sleep(0.2)
                r = await c.request({"type": "history", "channel": ch})
            s = await c.subscribe(ch, since={"epoch": pub["epoch"], "offset": 0})
            check(s.get("recovered") is False,
                  f"since offset 0 after the TTL dropped offset 1 → {short(s)}")
        finally:
            await c.stop()

    async def case_recovery(self):
        ch = self.chan()
        pub = await self.client("recpub")
        a = await self.client("recA")
        b = None
        try:
            s = await a.subscribe(ch)
            first = await self.publish_n(pub, ch, 3, "r")
            await a.wait_until(lambda: len(a.messages(ch)) == 3, 5, "3 live messages")
            last = a.messages(ch)[-1]
            pos = {"epoch": last["epoch"], "offset": last["offset"]}
            check(pos["epoch"] == s["epoch"] and pos["offset"] == 3, f"live {short(last)}")
            await a.close()
            missed = await self.publish_n(pub, ch, 4, "m")
            b = await self.client("recB")
            r = await b.subscribe(ch, since=pos)
            check(r.get("recovered") is True and r.get("offset") == 7 and
                  r.get("epoch") == pos["epoch"], f"subscribe since {pos} → {short(r)}")
            fence = await pub.publish(ch, "fence")
            await b.expect(lambda m: m.get("type") == "message" and m.get("data") == "fence", 5,
                           "the fence after recovery")
            got = [(m["offset"], m["data"]) for m in b.messages(ch)]
            want = [(p["offset"], {"tag": "m", "i": i}) for i, p in enumerate(missed)]
            want.append((fence["offset"], "fence"))
            check(got == want, f"recovery since offset 3: expected exactly {want}, got {got}")
            # recovered and replayed messages come after the subscribed reply
            idx_sub = next(i for i, m in enumerate(b.all) if m.get("type") == "subscribed")
            idx_msg = next(i for i, m in enumerate(b.all) if m.get("type") == "message")
            check(idx_sub < idx_msg, "a recovered message arrived before `subscribed`")
            del first
        finally:
            await stop_all([pub, a, b])

    async def case_recovery_at_top(self):
        ch = self.chan()
        c = await self.client("rectop")
        try:
            p = await c.publish(ch, 1)
            r = await c.subscribe(ch, since={"epoch": p["epoch"], "offset": p["offset"]})
            check(r.get("recovered") is True and r.get("offset") == p["offset"],
                  f"since == top → {short(r)}")
            f = await c.publish(ch, "fence")
            await c.expect(lambda m: m.get("type") == "message" and m.get("data") == "fence", 5,
                           "fence")
            got = [m["offset"] for m in c.messages(ch)]
            check(got == [f["offset"]], f"since == top replayed something: {got}")
        finally:
            await c.stop()

    async def case_recovery_too_old(self):
        ch = self.chan()  # history_size 10
        c = await self.client("recold")
        try:
            pubs = await self.publish_n(c, ch, 15, "o")
            epoch = pubs[0]["epoch"]
            r = await c.subscribe(ch, since={"epoch": epoch, "offset": 2})
            check(r.get("recovered") is False,
                  f"since offset 2 with only 6..15 in history → {short(r)}, expected "
                  f"recovered:false")
            f = await c.publish(ch, "fence")
            await c.expect(lambda m: m.get("type") == "message" and m.get("data") == "fence", 5,
                           "fence")
            got = [m["offset"] for m in c.messages(ch)]
            # protocol.md does not say whether what is left of the history follows a
            # recovered:false; if anything does, it must be in order, once, and end at the top.
            replayed = got[:-1]
            check(got[-1] == f["offset"] and
                  (not replayed or replayed == list(range(replayed[0], 16))),
                  f"after recovered:false: expected nothing or a contiguous tail ..15, then the "
                  f"fence {f['offset']}; got {got}")
            if replayed:
                print(f"NOTE       recovered:false still replayed offsets {replayed[0]}.."
                      f"{replayed[-1]} (what history kept)", flush=True)
        finally:
            await c.stop()

    async def case_recovery_wrong_epoch(self):
        ch = self.chan()
        c = await self.client("recepoch")
        try:
            await self.publish_n(c, ch, 3, "w")
            r = await c.subscribe(ch, since={"epoch": "e_from_another_life", "offset": 1})
            check(r.get("recovered") is False, f"since with a wrong epoch → {short(r)}")
            f = await c.publish(ch, "fence")
            await c.expect(lambda m: m.get("type") == "message" and m.get("data") == "fence", 5,
                           "fence")
            got = [m["offset"] for m in c.messages(ch)]
            check(got == [f["offset"]], f"wrong epoch but messages were replayed: {got}")
        finally:
            await c.stop()

    # ---------------------------------------------------------------- idempotency / ack
    async def case_idempotency(self):
        ch = self.chan()
        pub = await self.client("idem")
        sub = await self.client("idemsub")
        try:
            await sub.subscribe(ch)
            r1 = await pub.publish(ch, {"order": 1}, idempotency_key="k-77")
            check(not r1.get("duplicate"), f"first publish with a key says duplicate: {short(r1)}")
            r2 = await pub.publish(ch, {"order": 1}, idempotency_key="k-77")
            check(r2.get("duplicate") is True and r2.get("offset") == r1["offset"] and
                  r2.get("epoch") == r1["epoch"],
                  f"second publish with key k-77 → {short(r2)}; expected duplicate:true at "
                  f"offset {r1['offset']}")
            # The key is per channel: the same key elsewhere is a new publication.
            other = self.chan()
            r3 = await pub.publish(other, {"order": 1}, idempotency_key="k-77")
            check(not r3.get("duplicate"), f"same key on another channel → {short(r3)}")
            # The HTTP API honours the same key space.
            s, out = await api_async(self.s, "publish", {"channel": ch, "data": {"order": 1},
                                                         "idempotency_key": "k-77"})
            check(s == 200 and out.get("duplicate") is True and out.get("offset") == r1["offset"],
                  f"API publish with the same key → {s} {short(out)}")
            r4 = await pub.publish(ch, {"order": 2}, idempotency_key="k-78")
            check(r4.get("offset") == r1["offset"] + 1 and not r4.get("duplicate"),
                  f"a new key → {short(r4)}")
            fence = await pub.publish(ch, "fence")
            await sub.expect(lambda m: m.get("type") == "message" and m.get("data") == "fence", 5,
                             "fence")
            got = [(m["offset"], m["data"]) for m in sub.messages(ch)]
            want = [(r1["offset"], {"order": 1}), (r4["offset"], {"order": 2}),
                    (fence["offset"], "fence")]
            check(got == want, f"subscriber saw {got}, expected each publication once: {want}")
        finally:
            await stop_all([pub, sub])

    async def case_ack_reply(self):
        ch = self.chan()
        c = await self.client("acker")
        try:
            await c.subscribe(ch)
            p = await c.publish(ch, 1)
            await c.expect_type("message", channel=ch)
            r = await c.request({"type": "ack", "id": "a1", "channel": ch, "offset": p["offset"]})
            check(r == {"type": "acked", "id": "a1"}, f"ack with id → {short(r)}")
            # Without an id: no reply. The pong right after must be the next message.
            n_before = len(c.all)
            await c.send({"type": "ack", "channel": ch, "offset": p["offset"]})
            await c.ping_ok()
            extra = [m for m in c.all[n_before:] if m.get("type") != "pong"]
            check(not extra, f"ack without id got a reply: {short(extra)}")
        finally:
            await c.stop()

    # ---------------------------------------------------------------- rate limit
    async def case_rate_limit(self):
        bystander = await self.client("bystander")
        c = await self.client("flooder")
        try:
            n = 1500
            n0 = len(c.all)
            t0 = time.monotonic()
            for i in range(n):
                try:
                    await c.send({"type": "ping", "id": i})
                except Exception:  # noqa: BLE001 - the server may close mid-flood
                    break
            code, reason = await c.wait_closed(10)
            took = time.monotonic() - t0
            flood = c.all[n0:]
            pongs = [m for m in flood if m.get("type") == "pong"]
            limited = [m for m in flood if m.get("type") == "error" and
                       m.get("code") == "rate_limited"]
            # Every server-initiated close is announced by a `disconnect` event first.
            farewell = [m for m in flood if m.get("type") == "disconnect"]
            check(len(farewell) == 1 and farewell[0].get("code") == 1008 and
                  farewell[0].get("reconnect") is False and flood[-1] is farewell[0],
                  f"flood: expected one final disconnect event with code 1008, got "
                  f"{short(farewell)}")
            others = [m for m in flood if m not in pongs and m not in limited and
                      m not in farewell]
            check(limited, f"flood of {n} pings: no rate_limited error; got {len(pongs)} pongs, "
                  f"close {code}")
            check(code == 1008, f"flood: close code {code} {reason!r}, expected 1008 after "
                  f"{len(limited)} rate_limited errors")
            # rate 200/s with burst 2x: at most 400 + 200/s of elapsed time answered.
            bound = 400 + 200 * took + 5
            check(len(pongs) <= bound, f"{len(pongs)} pongs in {took:.2f}s exceeds the token "
                  f"bucket (burst 400 + 200/s) = {bound:.0f}")
            check(len(pongs) >= 390, f"only {len(pongs)} pongs before limiting; burst is 400")
            check(not others, f"unexpected messages during the flood: {short(others)}")
            await bystander.ping_ok()  # other connections are unaffected
        finally:
            await stop_all([c, bystander])

    # ---------------------------------------------------------------- HTTP API
    async def case_api_auth(self):
        body = {"channel": self.chan(), "data": 1}
        for desc, kw in (("no key", {"key": None}), ("wrong key", {"key": "wrong"}),
                         ("wrong X-API-Key", {"key": None, "headers": {"X-API-Key": "nope"}}),
                         ("empty apikey", {"key": ""})):
            for name in ("publish", "info", "channels"):
                s, out = await api_async(self.s, name, body, **kw)
                check(s == 401, f"/api/{name} with {desc} → {s} {short(out)}, expected 401")
        s, out = await api_async(self.s, "info", {}, key=None,
                                 headers={"X-API-Key": API_KEY})
        check(s == 200 and "version" in out, f"X-API-Key → {s} {short(out)}")
        with Server(self.binary, NO_KEY_CONFIG, name="nokey") as nk:
            for name in ("publish", "info", "disconnect"):
                s, out = await api_async(nk, name, {"channel": "chat:x", "data": 1})
                check(s == 403, f"api.key unset: /api/{name} → {s} {short(out)}, expected 403")

    async def case_api_publish_broadcast(self):
        a_ch, b_ch = self.chan(), self.chan()
        a = await self.client("apiA")
        b = await self.client("apiB")
        try:
            await a.subscribe(a_ch)
            await b.subscribe(b_ch)
            out = await api_ok_async(self.s, "publish", {"channel": a_ch, "data": {"hello": 1}})
            check(out.get("channel") == a_ch and out.get("offset") == 1 and
                  isinstance(out.get("epoch"), str), f"/api/publish → {short(out)}")
            m = await a.expect_type("message", channel=a_ch)
            check(m.get("data") == {"hello": 1} and m.get("offset") == 1 and
                  m.get("epoch") == out["epoch"], f"API publication delivered as {short(m)}")
            out = await api_ok_async(self.s, "broadcast",
                                     {"channels": [a_ch, b_ch], "data": ["x", 2]})
            res = out.get("results")
            check(isinstance(res, list) and [r.get("channel") for r in res] == [a_ch, b_ch] and
                  [r.get("offset") for r in res] == [2, 1], f"/api/broadcast → {short(out)}")
            ma = await a.expect_type("message", channel=a_ch)
            mb = await b.expect_type("message", channel=b_ch)
            check(ma.get("data") == ["x", 2] and mb.get("data") == ["x", 2],
                  f"broadcast delivered {short(ma)} / {short(mb)}")
            for body, want in (({"channel": a_ch}, 400), ({"data": 1}, 400),
                               ({"channel": "nosuchns:x", "data": 1}, 404),
                               ({"channel": "bad channel", "data": 1}, 400)):
                s, o = await api_async(self.s, "publish", body)
                check(s == want, f"/api/publish {short(body)} → {s} {short(o)}, expected {want}")
            s, o = await api_async(self.s, "publish", "{not json")
            check(s == 400, f"/api/publish with a broken body → {s} {short(o)}")
        finally:
            await stop_all([a, b])

    async def case_api_presence_history_channels_info(self):
        ch = self.chan()
        cs = await open_clients(self.s, 3, prefix="apip")
        try:
            for c in cs:
                await c.subscribe(ch)
            out = await api_ok_async(self.s, "presence", {"channel": ch})
            check(out.get("count") == 3 and sorted(e["client"] for e in out["clients"]) ==
                  sorted(c.client_id for c in cs), f"/api/presence → {short(out)}")
            for i in range(3):
                await api_ok_async(self.s, "publish", {"channel": ch, "data": i})
            out = await api_ok_async(self.s, "history", {"channel": ch})
            check([p["offset"] for p in out.get("publications", [])] == [1, 2, 3] and
                  [p["data"] for p in out["publications"]] == [0, 1, 2] and out.get("offset") == 3,
                  f"/api/history → {short(out)}")
            out = await api_ok_async(self.s, "history", {"channel": ch, "limit": 1})
            check([p["offset"] for p in out.get("publications", [])] == [3],
                  f"/api/history limit 1 → {short(out)}")
            epoch = out["epoch"]
            out = await api_ok_async(self.s, "history",
                                     {"channel": ch, "since": {"epoch": epoch, "offset": 1}})
            check(out.get("recovered") is True and
                  [p["offset"] for p in out["publications"]] == [2, 3],
                  f"/api/history since 1 → {short(out)}")
            out = await api_ok_async(self.s, "channels", {})
            names = {c.get("channel"): c for c in out.get("channels", [])}
            check(ch in names and names[ch].get("offset") == 3,
                  f"/api/channels lacks {ch} at offset 3: {short(out, 600)}")
            out = await api_ok_async(self.s, "info", {})
            check(isinstance(out.get("version"), str) and out.get("connections", 0) >= 3,
                  f"/api/info → {short(out)}")
            s, o = await api_async(self.s, "presence", {"channel": self.chan("quiet")})
            check(s != 200, f"/api/presence on a presence=false namespace → {s} {short(o)}")
            s, o = await api_async(self.s, "history", {"channel": self.chan("quiet")})
            check(s != 200, f"/api/history on a history_size=0 namespace → {s} {short(o)}")
        finally:
            await stop_all(cs)

    async def case_api_disconnect(self):
        ch = self.chan()
        victim = await self.client("victim")
        obs = await self.client("apiobs")
        try:
            await victim.subscribe(ch)
            await obs.subscribe(ch)
            out = await api_ok_async(self.s, "disconnect", {"client": victim.client_id})
            del out
            ev = await victim.expect_type("disconnect", 5)
            check(ev.get("code") == 4003 and isinstance(ev.get("reason"), str) and
                  isinstance(ev.get("reconnect"), bool) and "id" not in ev,
                  f"disconnect event {short(ev)}")
            code, reason = await victim.wait_closed(5)
            check(code == 4003, f"/api/disconnect → close {code} {reason!r}, expected 4003")
            check(victim.all[-1].get("type") == "disconnect",
                  f"the disconnect event must come right before the close: {short(victim.all[-3:])}")
            await obs.expect(lambda m: m.get("type") == "leave" and
                             m.get("client") == victim.client_id, 5, "leave of the disconnected")
            await obs.ping_ok()  # others are untouched
            s, o = await api_async(self.s, "disconnect", {})
            check(s == 400, f"/api/disconnect without client → {s} {short(o)}")
        finally:
            await stop_all([victim, obs])

    # ---------------------------------------------------------------- metrics
    async def case_metrics(self):
        ch = self.chan()
        subs = await open_clients(self.s, 3, prefix="met")
        try:
            for c in subs:
                await c.subscribe(ch)
            before = await metrics_async(self.s)
            for name in ("switchboard_publications_total", "switchboard_deliveries_total",
                         "switchboard_messages_in_total", "switchboard_messages_out_total",
                         'switchboard_connections{transport="websocket"}',
                         "switchboard_slow_consumer_disconnects_total",
                         "switchboard_rate_limited_total", "switchboard_channels"):
                check(name in before, f"/metrics lacks {name}")
            gauge = before['switchboard_connections{transport="websocket"}']
            check(gauge >= 3, f"connections gauge {gauge} with at least 3 open")
            n = 7
            for i in range(n):
                await subs[0].publish(ch, i)
            for c in subs:
                await c.wait_until(lambda c=c: len(c.messages(ch)) == n, 5, f"{n} messages")
            after = await metrics_async(self.s)
            dp = after["switchboard_publications_total"] - before["switchboard_publications_total"]
            dd = after["switchboard_deliveries_total"] - before["switchboard_deliveries_total"]
            check(dp == n, f"switchboard_publications_total moved by {dp} for {n} publications")
            check(dd == n * 3, f"switchboard_deliveries_total moved by {dd} for {n} × 3 "
                  "deliveries")
            check(after["switchboard_messages_in_total"] >=
                  before["switchboard_messages_in_total"] + n, "messages_in did not move")
        finally:
            await stop_all(subs)

    # ---------------------------------------------------------------- heartbeat
    async def case_heartbeat(self):
        # A client that never answers pings: closed 4001 after idle_timeout, presence dropped.
        with Server(self.binary, HEARTBEAT_CONFIG, name="heartbeat") as hb:
            obs = await Client.open(hb, "hbobs")
            raw = None
            try:
                await obs.connect(user="obs")
                await obs.subscribe("chat:hb")
                raw = RawClient(hb)
                raw.connect(user="silent")
                raw.request({"type": "subscribe", "channel": "chat:hb"})
                loop = asyncio.get_running_loop()

                def read_until_close():
                    deadline = Deadline(8)
                    pings = 0
                    while True:
                        try:
                            f = raw.ws.recv_frame(deadline=deadline)
                        except ConnectionClosed as e:
                            return f"TCP closed ({e.how}) with no close frame", pings
                        if f.opcode == OP_PING:
                            pings += 1  # deliberately unanswered
                        elif f.opcode == 0x8:
                            return f.close_code(), pings
                t0 = time.monotonic()
                code, pings = await loop.run_in_executor(None, read_until_close)
                took = time.monotonic() - t0
                check(pings >= 1, "no server ping seen before the heartbeat close")
                check(took < 6, f"heartbeat close took {took:.1f}s with idle_timeout 2s")
                await obs.expect(lambda m: m.get("type") == "leave" and m.get("user") == "silent",
                                 5, "leave of the timed-out client")
                # The observer keeps answering pings (websockets does) and stays connected.
                await obs.ping_ok()
                self.rep.record("heartbeat_close_code", code == 4001,
                                "" if code == 4001 else
                                f"a client that answered no ping for idle_timeout=2s was cut off "
                                f"after {took:.1f}s: {code}; protocol.md: close 4001 (heartbeat "
                                f"timeout)")
            finally:
                if raw:
                    raw.close()
                await obs.stop()


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_messaging")
    suite = Suite(args.server)
    suite.rep = rep
    suite.s = Server(args.server, CONFIG, name="messaging")
    try:
        cases = [(n[len("case_"):], getattr(suite, n)) for n in dir(Suite) if n.startswith("case_")]
        order = ["connect", "no_subprotocol", "connect_info_limits", "ping", "not_connected", "ping_before_connect", "already_connected",
                 "bad_json", "deep_nesting", "bad_request", "unknown_type", "unknown_namespace",
                 "bad_channel", "already_and_not_subscribed", "publish_forbidden",
                 "presence_history_disabled", "data_too_large", "binary_frame", "frame_too_big",
                 "pubsub_fanout", "unsubscribe_stops_delivery", "presence_and_join",
                 "leave_on_raw_socket_drop", "leave_on_killed_process", "history",
                 "history_ttl", "recovery", "recovery_at_top", "recovery_too_old",
                 "recovery_wrong_epoch", "idempotency", "ack_reply", "metrics", "rate_limit",
                 "api_auth", "api_publish_broadcast", "api_presence_history_channels_info",
                 "api_disconnect", "heartbeat"]
        byname = dict(cases)
        assert set(order) == set(byname), set(order) ^ set(byname)
        for name in order:
            await run_case(rep, name, byname[name], timeout=30)
            if not suite.s.proc.alive():
                rep.record("server alive", False, f"server exited after case {name}: "
                           f"{suite.s.proc.log_tail()}")
                break
    finally:
        suite.s.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
