#!/usr/bin/python3
"""Integration: at-least-once delivery and session resume (docs/protocol.md, Delivery).

A client subscribes on a `delivery = "at_least_once"` namespace, receives, acks some, loses
its connection (abruptly or cleanly), publications continue through /api/publish, and the
client comes back with {"type":"connect","session":SID}. It must get `resumed:true` and then
every un-acked and every missed publication of each channel (duplicates allowed, nothing
lost), in offset order per channel, then live ones. An unknown session gets resumed:false.

  /usr/bin/python3 tests/integration/test_at_least_once.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, Server, api_ok_async,  # noqa: E402
                       check, require_websockets, run_case, short, stop_all, stream_report,
                       suite_arguments)

require_websockets()

CONFIG = f"""
[api]
key = "{API_KEY}"

[messaging]
rate_limit = 1000

[namespaces.jobs]
delivery = "at_least_once"
presence = true
history_size = 1000
history_ttl = "5m"
client_publish = false

[namespaces.chat]
presence = true
history_size = 100
"""


class Suite:
    def __init__(self, binary: str):
        self.binary = binary
        self.s: Server | None = None
        self.seq = 0

    def chan(self, ns: str = "jobs") -> str:
        self.seq += 1
        return f"{ns}:q{self.seq}-{os.getpid()}"

    async def publish(self, ch: str, n: int, tag: str) -> list[dict]:
        out = []
        for i in range(n):
            out.append(await api_ok_async(self.s, "publish", {"channel": ch,
                                                              "data": {"tag": tag, "i": i}}))
        return out

    async def wait_gone(self, ch: str, client_id: str, seconds: float = 5.0):
        """Waits until the server has noticed a dropped connection (it left presence)."""
        deadline = Deadline(seconds)
        while True:
            out = await api_ok_async(self.s, "presence", {"channel": ch})
            if client_id not in [e.get("client") for e in out.get("clients", [])]:
                return
            if deadline.expired():
                raise CheckFailed(f"{client_id} still in presence of {ch} {seconds}s after its "
                                  f"connection was dropped: {short(out)}")
            await asyncio.sleep(0.05)

    async def resume(self, session: str, name: str) -> Client:
        c = await Client.open(self.s, name)
        r = await c.request({"type": "connect", "user": "worker", "session": session})
        check(r.get("type") == "connected", f"resume connect → {short(r)}")
        check(r.get("resumed") is True and r.get("session") == session,
              f"connect with live session {session} → {short(r)}, expected resumed:true and "
              f"the same session")
        c.session = r["session"]
        c.client_id = r.get("client")
        return c

    @staticmethod
    def offsets(c: Client, ch: str) -> list[int]:
        return [m["offset"] for m in c.messages(ch)]

    async def drop(self, c: Client, how: str):
        if how == "abort":
            c.abort(rst=True)
        else:
            await c.close()
        await c.stop()

    # ----------------------------------------------------------------------------------------
    async def resume_case(self, how: str):
        a, b = self.chan(), self.chan()
        c1 = await Client.open(self.s, f"alo-{how}")
        c2 = None
        try:
            await c1.connect(user="worker")
            sid = c1.session
            await c1.subscribe(a)
            await c1.subscribe(b)
            first_a = await self.publish(a, 10, "a1")
            first_b = await self.publish(b, 10, "b1")
            check([p["offset"] for p in first_a] == list(range(1, 11)), f"offsets {first_a}")
            await c1.wait_until(lambda: len(c1.messages(a)) >= 10 and len(c1.messages(b)) >= 10,
                                10, "the first 10 publications of each channel")
            r = await c1.request({"type": "ack", "id": "ack-a", "channel": a, "offset": 4})
            check(r == {"type": "acked", "id": "ack-a"}, f"ack → {short(r)}")
            r = await c1.request({"type": "ack", "id": "ack-b", "channel": b, "offset": 7})
            check(r == {"type": "acked", "id": "ack-b"}, f"ack → {short(r)}")
            cid = c1.client_id
            await self.drop(c1, how)
            await self.wait_gone(a, cid)
            await self.publish(a, 10, "a2")   # offsets 11..20, missed while away
            await self.publish(b, 10, "b2")
            c2 = await self.resume(sid, f"alo-{how}-back")
            await self.publish(a, 3, "a3")    # 21..23, live after the resume
            await self.publish(b, 3, "b3")
            await c2.wait_until(lambda: 23 in self.offsets(c2, a) and 23 in self.offsets(c2, b),
                                10, "offset 23 on both channels after the resume")
            ga, gb = self.offsets(c2, a), self.offsets(c2, b)
            err = stream_report(ga, range(5, 24))
            check(err is None, f"{a} after acking 4 and resuming: {err}")
            err = stream_report(gb, range(8, 24))
            check(err is None, f"{b} after acking 7 and resuming: {err}")
            tags = {"a": ["a1"] * 10 + ["a2"] * 10 + ["a3"] * 3,
                    "b": ["b1"] * 10 + ["b2"] * 10 + ["b3"] * 3}
            for ch, key in ((a, "a"), (b, "b")):
                for m in c2.messages(ch):
                    want = {"tag": tags[key][m["offset"] - 1], "i": (m["offset"] - 1) % 10}
                    check(m.get("data") == want, f"{ch} offset {m['offset']}: data "
                          f"{short(m.get('data'))}, expected {want}")
            dup_a = len(ga) - len(set(ga))
            redelivered_acked = [o for o in ga if o <= 4] + [o for o in gb if o <= 7]
            if dup_a or redelivered_acked:
                print(f"NOTE       {how}: {dup_a} duplicate(s); acked offsets delivered again: "
                      f"{redelivered_acked}", flush=True)
            del first_b
        finally:
            await stop_all([c1, c2])

    async def case_resume_after_abrupt_drop(self):
        await self.resume_case("abort")

    async def case_resume_after_clean_close(self):
        await self.resume_case("close")

    async def case_resume_nothing_acked(self):
        # No ack at all: everything is delivered again, in order, then the missed ones.
        ch = self.chan()
        c1 = await Client.open(self.s, "noack")
        c2 = None
        try:
            await c1.connect(user="worker")
            await c1.subscribe(ch)
            await self.publish(ch, 5, "x")
            await c1.wait_until(lambda: len(c1.messages(ch)) >= 5, 5, "5 messages")
            cid, sid = c1.client_id, c1.session
            await self.drop(c1, "abort")
            await self.wait_gone(ch, cid)
            await self.publish(ch, 5, "y")
            c2 = await self.resume(sid, "noack-back")
            fence = await self.publish(ch, 1, "fence")
            top = fence[0]["offset"]
            await c2.wait_until(lambda: top in self.offsets(c2, ch), 10, f"offset {top}")
            err = stream_report(self.offsets(c2, ch), range(1, top + 1))
            check(err is None, f"resume with nothing acked: {err}")
        finally:
            await stop_all([c1, c2])

    async def case_resume_all_acked_then_missed(self):
        # Everything delivered was acked; then publications happen while the client is away.
        # protocol.md: a resumed at-least-once session receives "every un-acked publication";
        # the ones published while it was away were never acked, so they must come.
        ch = self.chan()
        c1 = await Client.open(self.s, "allacked")
        c2 = None
        try:
            await c1.connect(user="worker")
            await c1.subscribe(ch)
            await self.publish(ch, 5, "x")
            await c1.wait_until(lambda: len(c1.messages(ch)) >= 5, 5, "5 messages")
            r = await c1.request({"type": "ack", "id": 1, "channel": ch, "offset": 5})
            check(r.get("type") == "acked", f"ack → {short(r)}")
            cid, sid = c1.client_id, c1.session
            await self.drop(c1, "abort")
            await self.wait_gone(ch, cid)
            await self.publish(ch, 5, "missed")  # 6..10
            c2 = await self.resume(sid, "allacked-back")
            fence = await self.publish(ch, 1, "fence")
            top = fence[0]["offset"]
            await c2.wait_until(lambda: top in self.offsets(c2, ch), 10,
                                f"the live publication {top} after the resume")
            got = self.offsets(c2, ch)
            err = stream_report(got, range(6, top + 1))
            check(err is None, f"acked 1..5, dropped, 6..10 published via /api/publish, resumed "
                  f"session: {err}")
        finally:
            await stop_all([c1, c2])

    async def case_resume_before_any_publication(self):
        # Subscribed, nothing published yet, connection lost; publications while away.
        ch = self.chan()
        c1 = await Client.open(self.s, "early")
        c2 = None
        try:
            await c1.connect(user="worker")
            await c1.subscribe(ch)
            cid, sid = c1.client_id, c1.session
            await self.drop(c1, "abort")
            await self.wait_gone(ch, cid)
            await self.publish(ch, 4, "missed")  # 1..4
            c2 = await self.resume(sid, "early-back")
            fence = await self.publish(ch, 1, "fence")
            top = fence[0]["offset"]
            await c2.wait_until(lambda: top in self.offsets(c2, ch), 10,
                                f"the live publication {top} after the resume")
            err = stream_report(self.offsets(c2, ch), range(1, top + 1))
            check(err is None, f"subscribed, dropped before any publication, 1..4 published "
                  f"while away, resumed: {err}")
        finally:
            await stop_all([c1, c2])

    async def case_resume_twice(self):
        # Resume, ack everything received, drop again, resume again: still nothing lost.
        ch = self.chan()
        c1 = await Client.open(self.s, "twice")
        c2 = c3 = None
        try:
            await c1.connect(user="worker")
            await c1.subscribe(ch)
            await self.publish(ch, 3, "p")
            await c1.wait_until(lambda: len(c1.messages(ch)) >= 3, 5, "3 messages")
            cid, sid = c1.client_id, c1.session
            await self.drop(c1, "abort")
            await self.wait_gone(ch, cid)
            await self.publish(ch, 3, "q")  # 4..6
            c2 = await self.resume(sid, "twice-2")
            await c2.wait_until(lambda: 6 in self.offsets(c2, ch), 10, "offset 6")
            r = await c2.request({"type": "ack", "id": 1, "channel": ch, "offset": 3})
            check(r.get("type") == "acked", f"ack → {short(r)}")
            await self.drop(c2, "close")
            await self.wait_gone(ch, c2.client_id)
            await self.publish(ch, 3, "r")  # 7..9
            c3 = await self.resume(sid, "twice-3")
            await c3.wait_until(lambda: 9 in self.offsets(c3, ch), 10, "offset 9")
            err = stream_report(self.offsets(c3, ch), range(4, 10))
            check(err is None, f"second resume (acked 3): {err}")
        finally:
            await stop_all([c1, c2, c3])

    async def case_unknown_session(self):
        c = await Client.open(self.s, "stranger")
        try:
            bogus = "s_" + "0" * 32
            r = await c.request({"type": "connect", "user": "x", "session": bogus})
            check(r.get("type") == "connected" and r.get("resumed") is False,
                  f"connect with unknown session → {short(r)}, expected resumed:false")
            check(isinstance(r.get("session"), str) and r["session"] and r["session"] != bogus,
                  f"an unknown session must not be adopted: {short(r)}")
            await c.ping_ok()
        finally:
            await c.stop()

    async def case_resume_restores_at_most_once_subscriptions(self):
        # protocol.md, connect: resumed:true → "its subscriptions are restored".
        ch = self.chan("chat")
        c1 = await Client.open(self.s, "amo")
        c2 = None
        try:
            await c1.connect(user="u")
            await c1.subscribe(ch)
            cid, sid = c1.client_id, c1.session
            await self.drop(c1, "close")
            await self.wait_gone(ch, cid)
            c2 = await self.resume(sid, "amo-back")
            out = await api_ok_async(self.s, "publish", {"channel": ch, "data": "after"})
            m = await c2.expect_type("message", 5, channel=ch)
            check(m.get("offset") == out["offset"] and m.get("data") == "after",
                  f"restored subscription delivered {short(m)}")
            r = await c2.request({"type": "subscribe", "channel": ch})
            check(r.get("type") == "error" and r.get("code") == "already_subscribed",
                  f"subscribe after resume → {short(r)}: the subscription should be restored")
        finally:
            await stop_all([c1, c2])


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_at_least_once")
    suite = Suite(args.server)
    suite.s = Server(args.server, CONFIG, name="alo")
    try:
        for name in ("resume_after_abrupt_drop", "resume_after_clean_close",
                     "resume_nothing_acked", "resume_all_acked_then_missed",
                     "resume_before_any_publication", "resume_twice", "unknown_session",
                     "resume_restores_at_most_once_subscriptions"):
            await run_case(rep, name, getattr(suite, "case_" + name), timeout=40)
            if not suite.s.proc.alive():
                rep.record("server alive", False, f"server exited after {name}: "
                           f"{suite.s.proc.log_tail()}")
                break
    finally:
        suite.s.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
