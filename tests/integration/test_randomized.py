#!/usr/bin/python3
"""Integration, randomized: recovery under churn (docs/protocol.md, subscribe `since`).

30 clients over 3 channels of an at-most-once namespace with a history big enough to hold
every publication. 2 publishers publish numbered messages while each client repeatedly
drops its connection (clean close, FIN without a close frame, or RST), stays away a
moment, reconnects and re-subscribes with `since` = the last {epoch, offset} it saw. At the
end every client must hold every publication of its channels from its first subscribe on,
exactly once and in offset order, with the data the publisher sent: protocol.md promises
that a recovered:true subscribe is followed by "every publication after since.offset,
exactly once, in order, before any newer one". A recovered:false would be honest, but with
this history size there must be none.

Seeded: the seed is printed; `--seed N` replays the same choices (the timing still varies).

  /usr/bin/python3 tests/integration/test_randomized.py --server build/dev/switchboard [--seed N]
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (Client, Server, check, require_websockets, run_case,  # noqa: E402
                       short, stop_all, suite_arguments)

require_websockets()

N_CLIENTS = 30
N_CHANNELS = 3
N_PUBLISHERS = 2
PUBLICATIONS_PER_PUBLISHER = 400
PUBLISH_BUDGET_S = 20  # publishers stop early on a starved machine; the checks still hold

CONFIG = """
[messaging]
rate_limit = 100000
outbound_limit = "4MiB"

[namespaces.room]
history_size = 100000
history_ttl = "10m"
presence = false
join_leave = false
"""


class ChannelLog:
    """What one client saw of one channel, across all its connections."""

    def __init__(self):
        self.epoch: str | None = None
        self.pos: int | None = None          # last offset seen (or subscribed at)
        self.segments: list[list] = []      # each: [start_offset, [(offset, epoch, data)...]]
        self.recovered_false = 0
        self.problems: list[str] = []


class ChurnClient:
    def __init__(self, suite: "Suite", idx: int, channels: list[str], rng: random.Random):
        self.suite = suite
        self.idx = idx
        self.name = f"r{idx}"
        self.channels = channels
        self.rng = rng
        self.logs = {ch: ChannelLog() for ch in channels}
        self.conn: Client | None = None
        self.recording = False
        self.lives = 0
        self.drops = Counter()
        self.server_closes = Counter()

    def on_message(self, m: dict):
        if not self.recording:
            return
        t = m.get("type")
        ch = m.get("channel")
        if ch not in self.logs:
            return
        log = self.logs[ch]
        if t == "subscribed":
            if log.pos is None:                      # first subscribe: the starting point
                log.epoch, log.pos = m.get("epoch"), m.get("offset")
                log.segments.append([log.pos, []])
            elif m.get("recovered") is not True:     # honest loss: start a new segment
                log.recovered_false += 1
                log.epoch, log.pos = m.get("epoch"), m.get("offset")
                log.segments.append([log.pos, []])
            elif m.get("epoch") != log.epoch:
                log.problems.append(f"recovered:true but epoch changed {log.epoch} → "
                                    f"{m.get('epoch')}")
        elif t == "message":
            if not log.segments:
                log.problems.append(f"message before subscribed: {short(m)}")
                return
            log.segments[-1][1].append((m.get("offset"), m.get("epoch"), m.get("data")))
            log.pos = m.get("offset")
            log.epoch = m.get("epoch")

    async def live_once(self, final: bool):
        c = await Client.open(self.suite.s, self.name)
        self.conn = c
        self.lives += 1
        c.on_message = self.on_message
        self.recording = True
        await c.connect(user=self.name)
        for ch in self.channels:
            log = self.logs[ch]
            since = None if log.pos is None else {"epoch": log.epoch, "offset": log.pos}
            await c.subscribe(ch, since=since, timeout=10)
        if final:
            return
        lifetime = self.rng.uniform(0.05, 0.7)
        try:
            await asyncio.wait_for(c.closed.wait(), lifetime)  # pacing, or an early close
        except asyncio.TimeoutError:
            pass
        if c.closed.is_set():
            self.recording = False
            self.server_closes[c.close_code] += 1
            await c.stop()
            return
        how = self.rng.choice(["close", "fin", "rst"])
        self.recording = False  # from here on nothing more counts as seen
        self.drops[how] += 1
        if how == "close":
            await c.close()
        else:
            c.abort(rst=(how == "rst"))
        await c.stop()

    async def run(self, stop: asyncio.Event):
        while not stop.is_set():
            await self.live_once(final=False)
            try:
                await asyncio.wait_for(stop.wait(), self.rng.uniform(0.0, 0.25))  # time away
            except asyncio.TimeoutError:
                pass
        await self.live_once(final=True)


class Suite:
    def __init__(self, binary: str, seed: int, rep: Reporter):
        self.binary = binary
        self.seed = seed
        self.rep = rep
        self.s: Server | None = None
        self.published: dict[str, dict[int, object]] = {}
        self.epochs: dict[str, str] = {}

    async def publisher(self, k: int, channels: list[str], rng: random.Random,
                        budget: Deadline):
        c = await Client.open(self.s, f"pub{k}")
        try:
            await c.connect(user=f"pub{k}")
            for n in range(PUBLICATIONS_PER_PUBLISHER):
                if budget.expired():
                    break
                ch = rng.choice(channels)
                data = {"p": k, "n": n}
                r = await c.publish(ch, data, timeout=10)
                off = r["offset"]
                check(off not in self.published[ch], f"{ch}: offset {off} given twice")
                self.published[ch][off] = data
                self.epochs.setdefault(ch, r["epoch"])
                check(self.epochs[ch] == r["epoch"], f"{ch}: epoch changed mid-run: {short(r)}")
                await asyncio.sleep(rng.uniform(0.0, 0.02))  # pacing, not synchronization
        finally:
            await c.stop()

    async def case_churn(self):
        self.clients: list[ChurnClient] = []
        try:
            await self.churn()
        finally:
            await stop_all([cl.conn for cl in self.clients if cl.conn is not None])

    async def churn(self):
        rng = random.Random(self.seed)
        tag = f"{os.getpid()}-{self.seed}"
        channels = [f"room:c{i}-{tag}" for i in range(N_CHANNELS)]
        self.published = {ch: {} for ch in channels}
        clients = []
        for i in range(N_CLIENTS):
            chs = sorted(rng.sample(channels, rng.randint(1, N_CHANNELS)))
            clients.append(ChurnClient(self, i, chs, random.Random(rng.getrandbits(64))))
        self.clients = clients
        pub_rngs = [random.Random(rng.getrandbits(64)) for _ in range(N_PUBLISHERS)]
        stop = asyncio.Event()
        t0 = time.monotonic()
        # Everyone subscribes once before publishing starts, so every client has a start.
        await asyncio.gather(*[cl.live_once(final=True) for cl in clients])
        runners = [asyncio.ensure_future(self._first_drop_then_run(cl, stop)) for cl in clients]
        try:
            budget = Deadline(PUBLISH_BUDGET_S)
            await asyncio.gather(*[self.publisher(k, channels, pub_rngs[k], budget)
                                   for k in range(N_PUBLISHERS)])
        finally:
            stop.set()
        results = await asyncio.gather(*runners, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        check(not errors, f"client task failed: {errors[:3]}")
        churn_s = time.monotonic() - t0
        tops = {ch: max(self.published[ch], default=0) for ch in channels}
        total = sum(len(v) for v in self.published.values())
        check(total >= 100, f"only {total} publications within {PUBLISH_BUDGET_S}s")
        # Settle: every client's final connection reaches the top of each of its channels.
        # A fence per channel, published after everything else: once a client has it, any
        # duplicate or straggler of that channel would have arrived before it (per-channel
        # order), so the recorded streams are complete.
        fencer = await Client.open(self.s, "fencer")
        try:
            await fencer.connect(user="fencer")
            for ch in channels:
                r = await fencer.publish(ch, {"fence": True})
                self.published[ch][r["offset"]] = {"fence": True}
                tops[ch] = r["offset"]
        finally:
            await fencer.stop()
        deadline = Deadline(20)
        for cl in clients:
            for ch in cl.channels:
                log = cl.logs[ch]
                await cl.conn.wait_until(
                    lambda log=log, ch=ch: log.pos is not None and log.pos >= tops[ch],
                    max(0.1, deadline.remaining()),
                    f"{ch} to reach the fence at offset {tops[ch]} (at {log.pos})")
        lives = sum(cl.lives for cl in clients)
        drops = sum((cl.drops for cl in clients), Counter())
        closes = sum((cl.server_closes for cl in clients), Counter())
        print(f"NOTE       {total} publications over {N_CHANNELS} channels in {churn_s:.1f}s; "
              f"{lives} connections; drops by client {dict(drops)}; closes by server "
              f"{dict(closes)}", flush=True)
        problems = []
        rec_false = 0
        verified = 0
        for cl in clients:
            for ch in cl.channels:
                log = cl.logs[ch]
                rec_false += log.recovered_false
                problems += [f"{cl.name} {ch}: {p}" for p in log.problems]
                for k, (start, items) in enumerate(log.segments):
                    offs = [o for o, _, _ in items]
                    if k == len(log.segments) - 1:
                        want = list(range(start + 1, tops[ch] + 1))
                    else:
                        # ended by a recovered:false: still contiguous from its start
                        want = list(range(start + 1, start + 1 + len(offs)))
                    if offs != want:
                        problems.append(f"{cl.name} {ch}: from offset {start}: "
                                        f"{describe_diff(offs, want)}")
                        continue
                    for o, ep, data in items:
                        if ep != self.epochs[ch] or data != self.published[ch].get(o):
                            problems.append(f"{cl.name} {ch} offset {o}: got {short(data)} "
                                            f"epoch {ep}, published {short(self.published[ch].get(o))}"
                                            f" epoch {self.epochs[ch]}")
                            break
                    verified += len(items)
        print(f"NOTE       verified {verified} deliveries; recovered:false {rec_false}",
              flush=True)
        self.rep.record("no_recovered_false_with_big_history", rec_false == 0,
                        "" if rec_false == 0 else f"{rec_false} subscribe(s) with since said "
                        f"recovered:false though history_size 100000 holds every publication")
        check(not problems, f"{len(problems)} stream(s) broken; first: "
              + " | ".join(problems[:4]))

    async def _first_drop_then_run(self, cl: ChurnClient, stop: asyncio.Event):
        # The first connection (opened before publishing) lives a random while, then churn.
        c = cl.conn
        try:
            await asyncio.wait_for(c.closed.wait(), cl.rng.uniform(0.05, 0.7))
        except asyncio.TimeoutError:
            pass
        cl.recording = False
        if c.closed.is_set():
            cl.server_closes[c.close_code] += 1
        else:
            cl.drops["rst"] += 1
            c.abort(rst=True)
        await c.stop()
        await cl.run(stop)


def describe_diff(got: list[int], want: list[int]) -> str:
    dup = sorted(o for o, n in Counter(got).items() if n > 1)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    order = next((i for i in range(1, len(got)) if got[i] <= got[i - 1]), None)
    parts = []
    if dup:
        parts.append(f"duplicates {dup[:10]}")
    if missing:
        parts.append(f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}")
    if extra:
        parts.append(f"unexpected {extra[:10]}")
    if order is not None:
        parts.append(f"order breaks at #{order}: ...{got[max(0, order - 3):order + 3]}")
    return ", ".join(parts) or "differs"


async def main() -> int:
    args = suite_arguments(__doc__, seed=True)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}  (reproduce: --seed {seed})", flush=True)
    rep = Reporter("integration.test_randomized")
    suite = Suite(args.server, seed, rep)
    suite.s = Server(args.server, CONFIG, name="randomized")
    try:
        await run_case(rep, f"churn_recovery_seed_{seed}", suite.case_churn, timeout=55)
        rep.record("server alive", suite.s.proc.alive(), "" if suite.s.proc.alive()
                   else suite.s.proc.log_tail())
    finally:
        suite.s.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
