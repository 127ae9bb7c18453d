#!/usr/bin/python3
"""Integration (regression): who holds a session, and what a resume replays.

A session has one holder:
1. takeover: on `jobs` (at_least_once, history 100, session_ttl 2 s) A connects, subscribes
   `jobs:q` and receives offsets 1..5 without acking. B sends `connect` with A's session: it
   gets `resumed:true` and 1..5 again, in order. A gets the event {"type":"disconnect",
   "code":4004,"reason":"session resumed by another connection","reconnect":false} as its
   last message, then close 4004. 5 more publications: B gets 6..10, A nothing.
2. ttl_race: A receives 1..3 un-acked; B resumes A's session (A is closed by the server, or,
   where it is not, from the client side); B stays connected for HOLD_S (3 s) > session_ttl
   (2 s); B closes; C resumes at once: `resumed:true` and 1..3 (nothing lost). The old holder's
   close must not start the TTL under the new holder.

Resume on an at-most-once namespace (history 100):
3. amo_resume: A subscribes `room:x`, receives 1..3, closes cleanly; 4 and 5 are published;
   B resumes A's session: `connected` has `resumed:true` and "channels":[{"channel":"room:x",
   "epoch":E,"offset":5,"recovered":true}]; B receives exactly 4 then 5 (nothing else within
   0.5 s, then a 6th publication is the next message); `subscribe` room:x again →
   `already_subscribed`.
4. amo_resume_no_history: the same on `nohist` (history_size 0) with one publication missed
   while away: `channels` holds the channel with "recovered":false, nothing is replayed, and
   new publications reach B.

  /usr/bin/python3 tests/integration/test_sessions.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, api_ok_async, check,  # noqa: E402
                       metrics_async, require_websockets, short, stop_all, suite_arguments)
from regression import Cases, check_alive  # noqa: E402

require_websockets()

SESSION_TTL_S = 2
HOLD_S = 3.0  # how long the new holder keeps the session: longer than session_ttl

CONFIG = f"""
[api]
key = "{API_KEY}"

[namespaces.jobs]
delivery = "at_least_once"
history_size = 100
session_ttl = "{SESSION_TTL_S}s"

[namespaces.room]
history_size = 100

[namespaces.nohist]
history_size = 0
"""

TAKEOVER = {"type": "disconnect", "code": 4004, "reason": "session resumed by another connection",
            "reconnect": False}


def offsets(c: Client, ch: str) -> list[int]:
    return [m.get("offset") for m in c.messages(ch)]


class Suite(Cases):
    async def publish(self, s, ch: str, n: int, tag: str) -> list[dict]:
        return [await api_ok_async(s, "publish", {"channel": ch, "data": {"tag": tag, "i": i}})
                for i in range(n)]

    async def resume(self, s, session: str, name: str) -> tuple[Client, dict]:
        c = await Client.open(s, name)
        r = await c.request({"type": "connect", "user": "worker", "session": session})
        check(r.get("type") == "connected", f"{name}: connect with session → {short(r)}")
        c.client_id, c.session = r.get("client"), r.get("session")
        return c, r

    # ------------------------------------------------------------------ one holder
    async def case_takeover(self):
        s = self.start(CONFIG, "takeover")
        ch = "jobs:q"
        a = await Client.open(s, "A")
        b = None
        try:
            await a.connect(user="worker")
            await a.subscribe(ch)
            await self.publish(s, ch, 5, "first")
            await a.wait_until(lambda: len(a.messages(ch)) >= 5, 5, "offsets 1..5 on A")
            check(offsets(a, ch) == [1, 2, 3, 4, 5], f"A received {offsets(a, ch)}")
            b, r = await self.resume(s, a.session, "B")
            check(r.get("resumed") is True and r.get("session") == a.session,
                  f"B: connect with A's live session → {short(r)}, expected resumed:true")
            await b.wait_until(lambda: len(b.messages(ch)) >= 5, 5,
                               "offsets 1..5 again on B (A acked none)")
            check(offsets(b, ch) == [1, 2, 3, 4, 5],
                  f"B after taking over the session received {offsets(b, ch)}, expected "
                  "1..5 (un-acked), in order")
            problems = []
            try:
                code, reason = await a.wait_closed(5)
            except CheckFailed:
                problems.append("A, whose session B resumed, is still open 5 s later (expected "
                                f"a disconnect event {TAKEOVER} and close 4004)")
            else:
                events = [m for m in a.all if m.get("type") == "disconnect"]
                last = a.all[-1] if a.all else None
                if not events or events[-1] != TAKEOVER:
                    problems.append(f"A's disconnect event: {short(events)}, expected {TAKEOVER}")
                elif last != TAKEOVER:
                    problems.append(f"the disconnect event must be A's last message; last is "
                                    f"{short(last)}")
                if code != 4004:
                    problems.append(f"A was closed with {code} {reason!r}, expected 4004")
            before_a = len(a.messages(ch))
            await self.publish(s, ch, 5, "second")
            await b.wait_until(lambda: 10 in offsets(b, ch), 5, "offset 10 on B")
            if offsets(b, ch) != list(range(1, 11)):
                problems.append(f"B received {offsets(b, ch)}, expected 1..10")
            late_a = offsets(a, ch)[before_a:]
            if late_a:
                problems.append(f"A, no longer the session's holder, received {late_a} after B "
                                "took over")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([a, b])

    async def case_ttl_race(self):
        s = self.start(CONFIG, "ttlrace")
        ch = "jobs:race"
        a = await Client.open(s, "A")
        b = c = None
        try:
            await a.connect(user="worker")
            sid = a.session
            await a.subscribe(ch)
            await self.publish(s, ch, 3, "x")
            await a.wait_until(lambda: len(a.messages(ch)) >= 3, 5, "offsets 1..3 on A")
            b, r = await self.resume(s, sid, "B")
            check(r.get("resumed") is True, f"B: connect with A's live session → {short(r)}")
            await b.wait_until(lambda: 3 in offsets(b, ch), 5, "offsets 1..3 on B")
            try:
                code, _ = await a.wait_closed(5)
                print(f"NOTE       A was closed by the server ({code}) when B took over",
                      flush=True)
            except CheckFailed:
                print("NOTE       A was not closed when B took over: closing it from the client",
                      flush=True)
                await a.close()
                await a.wait_closed(5)
            # The condition under test is time itself: B holds the session for longer than
            # session_ttl. Meanwhile watch that B stays connected and what the session count
            # does (the old code expires the session under B here).
            hold = Deadline(HOLD_S)
            sessions = []
            while not hold.expired():
                check(not b.closed.is_set(), f"B was closed ({b.close_code}) while holding the "
                      "session")
                sessions.append((await metrics_async(s)).get("switchboard_sessions"))
                await asyncio.sleep(min(0.2, hold.remaining()))  # sampling period
            t0 = time.monotonic()
            await b.close()
            await b.wait_closed(5)
            c, r = await self.resume(s, sid, "C")
            print(f"NOTE       C resumed {time.monotonic() - t0:.2f}s after B's close; "
                  f"switchboard_sessions while B held it: {sessions[0]} → {sessions[-1]}",
                  flush=True)
            check(r.get("resumed") is True and r.get("session") == sid,
                  f"C: connect with the session B held for {HOLD_S:.0f}s (session_ttl "
                  f"{SESSION_TTL_S}s) and closed just now → {short(r)}, expected "
                  "resumed:true: the old holder's close started the TTL under the new holder")
            await c.wait_until(lambda: {1, 2, 3} <= set(offsets(c, ch)), 5,
                               "the un-acked offsets 1..3 on C")
            firsts = list(dict.fromkeys(offsets(c, ch)))
            check(firsts == [1, 2, 3], f"C received {offsets(c, ch)}, expected 1..3 in order")
        finally:
            await stop_all([a, b, c])

    # ------------------------------------------------------------------ at-most-once resume
    async def amo_resume(self, ns: str, history: bool):
        s = self.start(CONFIG, "amo-" + ns)
        ch = f"{ns}:x"
        a = await Client.open(s, "A")
        b = None
        try:
            await a.connect(user="u")
            sid = a.session
            sub = await a.subscribe(ch)
            epoch = sub.get("epoch")
            seen = 3 if history else 1
            await self.publish(s, ch, seen, "seen")
            await a.wait_until(lambda: len(a.messages(ch)) >= seen, 5, f"1..{seen} on A")
            await a.close()
            await a.wait_closed(5)
            missed = await self.publish(s, ch, 2 if history else 1, "missed")
            top = missed[-1]["offset"]
            epoch = missed[-1]["epoch"] or epoch
            b, r = await self.resume(s, sid, "B")
            check(r.get("resumed") is True, f"B: connect with A's session → {short(r)}")
            # Several expectations: report every one that fails, not just the first.
            problems = []
            want = [{"channel": ch, "epoch": epoch, "offset": top, "recovered": history}]
            if r.get("channels") != want:
                problems.append(f"B's connected reply {short(r)}: expected \"channels\": "
                                f"{want} (each restored channel with its top position and "
                                "whether every missed publication follows)")
            if history:
                # Exactly the two missed ones, in order, then nothing more (0.5 s of quiet),
                # then the next live publication is the next message.
                await b.wait_until(lambda: len(b.messages(ch)) >= 2, 5, "two messages")
                try:
                    extra = await b.expect(lambda m: m.get("type") == "message" and
                                           m.get("offset") not in (4, 5) or
                                           m.get("type") != "message", 0.5, "anything more")
                except CheckFailed:
                    extra = None
                if offsets(b, ch) != [4, 5] or extra is not None:
                    problems.append(f"B after the resume received offsets {offsets(b, ch)}"
                                    f"{' and ' + short(extra) if extra else ''}, expected "
                                    "exactly 4, 5 (A had received 1..3)")
            live = await api_ok_async(s, "publish", {"channel": ch, "data": "live"})
            await b.wait_until(lambda: live["offset"] in offsets(b, ch), 5,
                               f"the live publication {live['offset']} on B")
            expected = [4, 5, live["offset"]] if history else [live["offset"]]
            if offsets(b, ch) != expected:
                problems.append(f"B received {offsets(b, ch)} in all, expected {expected}")
            r = await b.request({"type": "subscribe", "channel": ch})
            if r.get("type") != "error" or r.get("code") != "already_subscribed":
                problems.append(f"B: subscribe {ch} after the resume → {short(r)}, expected "
                                "error already_subscribed (the resume restored it)")
            check(not problems, "; ".join(problems))
            check_alive(s, "after the resume")
        finally:
            await stop_all([a, b])

    async def case_amo_resume(self):
        await self.amo_resume("room", history=True)

    async def case_amo_resume_no_history(self):
        await self.amo_resume("nohist", history=False)


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_sessions")
    suite = Suite(args.server, rep)
    for name in ("takeover", "ttl_race", "amo_resume", "amo_resume_no_history"):
        await suite.run(name, timeout=40)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
