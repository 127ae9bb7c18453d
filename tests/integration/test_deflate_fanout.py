#!/usr/bin/python3
"""Integration: fan-out to permessage-deflate subscribers on /ws (docs/configuration.md,
websocket.compression_takeover). By default the server answers every offer with
server_no_context_takeover and client_no_context_takeover, keeps no zlib state per
connection, and compresses a publication once per loop for all its subscribers.

1. mixed: 30 python3-websockets subscribers offering permessage-deflate the browser way, 10
   asking server_max_window_bits=10 (compressed for them alone), 10 without compression and
   one raw-socket client that checks RSV1 on every frame; 40 publications of 80 B to 20 KiB
   (repetitive and random text). Every subscriber gets every publication, in order, byte for
   byte; the responses carry server_no_context_takeover and client_no_context_takeover.
2. memory_shared / memory_takeover: 300 compressing subscribers connect and subscribe, then
   get 8 publications of 4 KiB, one at a time. With the shared zlib streams (the default:
   no context takeover either way) a connection costs under CONNECTION_BOUND_B and the
   fan-out grows RSS by less than MEMORY_BOUND_KIB; the same run against a server with
   --compression-takeover (zlib contexts per connection, the control) must exceed both, and
   still deliver everything, or these checks could not tell the two apart.
3. never_reads_and_flood: a compressing subscriber that never reads (4 KiB receive buffer) is
   cut off with a `disconnect` event and close 4000 once its queue passes outbound_limit; a
   compressing client that floods compressed publishes without reading is stopped (1008 by the
   rate limit, or 4000); 10 healthy compressing subscribers get every accepted publication,
   in order, and the server stays up.

  /usr/bin/python3 tests/integration/test_deflate_fanout.py --server build/release/switchboard
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from cluster import is_sanitized  # noqa: E402
from harness import OP_TEXT, Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, RawClient, Server,  # noqa: E402
                       api_ok_async, check, drain_raw, require_websockets, run_case, short,
                       stop_all, suite_arguments)

require_websockets()
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory)

OUTBOUND_LIMIT_KIB = 64
CONFIG = f"""
[api]
key = "{API_KEY}"

[messaging]
outbound_limit = "{OUTBOUND_LIMIT_KIB}KiB"

[namespaces.feed]
history_size = 100
presence = false

[namespaces.open]
history_size = 100
presence = false
client_publish = true
"""

# Case 2's bounds for 300 subscribers, measured on the release build:
# - RSS per connection once connected and subscribed (compressed requests in, compressed
#   replies out): ~1.5 KB with the shared zlib streams (the native session itself), ~96 KB
#   with contexts per connection (a zlib deflate state is 256 KiB, its 64 KiB of hash heads
#   zeroed at once; an inflate state ~7 KiB plus the window pages touched). A per-connection
#   inflater alone would add ~9 KB. 4 KiB sits between.
# - RSS growth during the fan-out: +0.2-0.3 MiB shared, +31-32 MiB with contexts (each
#   subscriber's compressor touching more of its window). 8 MiB sits between.
MEMORY_SUBSCRIBERS = 300
CONNECTION_BOUND_B = 4096
MEMORY_BOUND_KIB = 8 * 1024

# Under AddressSanitizer freed blocks wait in a quarantine before reuse: keep it small so RSS
# measures the server (no effect on an uninstrumented binary).
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                              ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256").lstrip(":")

BROWSER_OFFER = "permessage-deflate; client_max_window_bits"


def deflate(**kw):
    return [ClientPerMessageDeflateFactory(client_max_window_bits=True, **kw)]


# Case 3's API publications: random text, about 12 KiB each once compressed.
SIZE = 16384


def stream_length() -> int:
    """Publications of SIZE a stalled subscriber must be offered so that its queue surely
    passes outbound_limit: the kernel first takes up to tcp_wmem's maximum into the server's
    send buffer (4 MiB on Debian), so offer 1.5 × (that + the limit) in compressed bytes."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    return int(1.5 * (wmem_max + OUTBOUND_LIMIT_KIB * 1024) / (SIZE * 3 // 4)) + 1


def text_of(k: int, size: int) -> str:
    """Publication k's data: starts with k (so order and content can be checked), then
    either repetitive JSON-like text (compresses well) or random base64 (barely)."""
    head = f"{k:06d}:"
    if k % 2:
        body = ('{"user":"lee","text":"hello again"},' * (size // 36 + 1))
    else:
        body = base64.b64encode(random.Random(k).randbytes(size)).decode()
    return head + body[:max(0, size - len(head))]


class Sub:
    """Keeps the `data` of one channel's messages, in arrival order."""

    def __init__(self, client: Client, channel: str, progress: asyncio.Event):
        self.c = client
        self.channel = channel
        self.got: list[tuple[int, str]] = []
        self.progress = progress
        client.store_messages = False
        client.on_message = self.on_message

    def on_message(self, m):
        if m.get("type") == "message" and m.get("channel") == self.channel:
            self.got.append((m.get("offset"), m.get("data")))
            self.progress.set()


async def open_subs(s: Server, channel: str, n: int, progress: asyncio.Event, prefix: str,
                    extensions) -> list[Sub]:
    clients = await asyncio.gather(*[Client.open(s, f"{prefix}{i}", extensions=extensions,
                                                 timeout=10) for i in range(n)])
    subs = [Sub(c, channel, progress) for c in clients]
    await asyncio.gather(*[c.connect(user=c.name, timeout=10) for c in clients])
    await asyncio.gather(*[c.subscribe(channel, timeout=10) for c in clients])
    return subs


async def wait_all(subs: list[Sub], count: int, progress: asyncio.Event, seconds: float):
    deadline = Deadline(seconds)
    while min(len(s.got) for s in subs) < count:
        slow = min(subs, key=lambda s: len(s.got))
        check(not deadline.expired(), f"{slow.c.name} has {len(slow.got)}/{count} messages "
              f"after {seconds}s (closed: {slow.c.close_code})")
        progress.clear()
        try:
            await asyncio.wait_for(progress.wait(), min(0.5, deadline.remaining()))
        except asyncio.TimeoutError:
            pass


def negotiated(c: Client) -> str:
    return c.ws.response_headers.get("Sec-WebSocket-Extensions", "")


def read_all_raw(raw: RawClient, n: int, seconds: float) -> list:
    """The raw client's next n messages (RSV1 flag, JSON), pongs and pings handled."""
    out = []
    deadline = Deadline(seconds)
    while len(out) < n:
        m = raw.ws.recv_message(timeout=max(0.01, deadline.remaining()))
        if m.opcode == OP_TEXT:
            out.append((m.compressed, json.loads(m.data)))
    return out


class Suite:
    def __init__(self, binary: str):
        self.binary = binary
        self.servers: list[Server] = []

    def start(self, name: str, *flags: str) -> Server:
        s = Server(self.binary, CONFIG, name=name, flags=flags)
        self.servers.append(s)
        return s

    def close(self):
        for s in self.servers:
            s.close()

    async def case_mixed(self):
        s = self.start("deflate-mixed")
        ch = "feed:mixed"
        progress = asyncio.Event()
        subs: list[Sub] = []
        raw = None
        try:
            browser = await open_subs(s, ch, 30, progress, "browser", deflate())
            small = await open_subs(s, ch, 10, progress, "w10", deflate(server_max_window_bits=10))
            plain = await open_subs(s, ch, 10, progress, "plain", None)
            subs = browser + small + plain
            for sub in browser:
                check("server_no_context_takeover; client_no_context_takeover" in
                      negotiated(sub.c), f"{sub.c.name}: extensions {negotiated(sub.c)!r}, "
                      f"expected no context takeover either way (the shared zlib streams)")
            for sub in small:
                check("server_max_window_bits=10" in negotiated(sub.c),
                      f"{sub.c.name}: extensions {negotiated(sub.c)!r}")
            for sub in plain:
                check(negotiated(sub.c) == "", f"{sub.c.name}: {negotiated(sub.c)!r}")
            raw = RawClient(s, extensions=BROWSER_OFFER, timeout=10)
            check(raw.ws.deflate is not None and raw.ws.deflate.server_no_context_takeover and
                  raw.ws.deflate.client_no_context_takeover,
                  f"raw client: {raw.ws.response.header('sec-websocket-extensions')!r}")
            raw.connect(user="raw")
            r = raw.request({"type": "subscribe", "channel": ch})
            check(r.get("type") == "subscribed", f"raw subscribe → {short(r)}")

            sizes = [80, 600, 2048, 20000]
            want = []
            for k in range(1, 41):
                data = text_of(k, sizes[k % len(sizes)])
                r = await api_ok_async(s, "publish", {"channel": ch, "data": data})
                want.append((r["offset"], data))
            await wait_all(subs, len(want), progress, 20)
            for sub in subs:
                if sub.got != want:
                    bad = next(i for i, (a, b) in enumerate(zip(sub.got, want)) if a != b) \
                        if len(sub.got) == len(want) else len(sub.got)
                    raise CheckFailed(f"{sub.c.name}: message {bad} differs: "
                                      f"{short(sub.got[bad:bad + 1], 80)} vs "
                                      f"{short(want[bad:bad + 1], 80)} ({len(sub.got)} got)")
            got = await asyncio.get_running_loop().run_in_executor(
                None, read_all_raw, raw, len(want), 10)
            check([(m["offset"], m["data"]) for _, m in got] == want,
                  "the raw client's stream differs")
            plain_frames = [m["offset"] for comp, m in got if not comp]
            check(not plain_frames, f"publications sent uncompressed to a deflate client: "
                  f"offsets {plain_frames[:5]}")
            print(f"NOTE       {len(subs) + 1} subscribers × {len(want)} publications, "
                  f"every one identical", flush=True)
        finally:
            if raw:
                raw.close()
            await stop_all([sub.c for sub in subs])
            s.close()

    async def memory_growth(self, name: str, *flags: str) -> tuple[float, float]:
        """RSS growth (KiB) of a server while MEMORY_SUBSCRIBERS compressing subscribers
        connect and subscribe (each sends compressed requests), then while they get 8
        publications of 4 KiB, one at a time; checks every one arrived."""
        s = self.start(name, *flags)
        ch = "feed:memory"
        progress = asyncio.Event()
        subs: list[Sub] = []
        try:
            warm = await open_subs(s, ch, 20, progress, "warm", deflate())
            await api_ok_async(s, "publish", {"channel": ch, "data": text_of(0, 4096)})
            await wait_all(warm, 1, progress, 20)
            await stop_all([sub.c for sub in warm])
            start = s.rss_kib()
            for i in range(0, MEMORY_SUBSCRIBERS, 100):
                subs += await open_subs(s, ch, 100, progress, f"m{i // 100}-", deflate())
            baseline = s.rss_kib()
            peak = baseline
            for k in range(1, 9):
                await api_ok_async(s, "publish", {"channel": ch, "data": text_of(k, 4096)})
                await wait_all(subs, k, progress, 20)
                peak = max(peak, s.rss_kib())
            for sub in subs:
                check([d for _, d in sub.got] == [text_of(k, 4096) for k in range(1, 9)],
                      f"{sub.c.name}: wrong messages")
            return baseline - start, peak - baseline
        finally:
            await stop_all([sub.c for sub in subs])
            s.close()

    async def case_memory_shared(self):
        conn, grew = await self.memory_growth("deflate-shared")
        per = conn * 1024 / MEMORY_SUBSCRIBERS
        print(f"NOTE       shared zlib streams: {per:.0f} B per subscribed connection, RSS "
              f"+{grew / 1024:.1f} MiB during the fan-out ({MEMORY_SUBSCRIBERS} subscribers)",
              flush=True)
        check(per < CONNECTION_BOUND_B, f"{per:.0f} B per compressing connection after connect "
              f"and subscribe (bound {CONNECTION_BOUND_B} B): per-connection inflate state?")
        check(grew < MEMORY_BOUND_KIB, f"RSS grew by {grew / 1024:.1f} MiB (bound "
              f"{MEMORY_BOUND_KIB / 1024:.0f} MiB): per-subscriber compression state?")

    async def case_memory_takeover(self):
        conn, grew = await self.memory_growth("deflate-takeover", "--compression-takeover")
        per = conn * 1024 / MEMORY_SUBSCRIBERS
        print(f"NOTE       --compression-takeover: {per:.0f} B per subscribed connection, RSS "
              f"+{grew / 1024:.1f} MiB during the fan-out ({MEMORY_SUBSCRIBERS} subscribers)",
              flush=True)
        check(per > CONNECTION_BOUND_B and grew > MEMORY_BOUND_KIB,
              f"with zlib contexts per connection: {per:.0f} B per connection, +"
              f"{grew / 1024:.1f} MiB during the fan-out: case memory_shared's bounds "
              f"({CONNECTION_BOUND_B} B, {MEMORY_BOUND_KIB / 1024:.0f} MiB) cannot tell shared "
              f"streams from per-connection contexts")

    async def case_never_reads_and_flood(self):
        s = self.start("deflate-abuse")
        ch = "open:abuse"
        progress = asyncio.Event()
        loop = asyncio.get_running_loop()
        healthy: list[Sub] = []
        stalled = flooder = None
        try:
            healthy = await open_subs(s, ch, 10, progress, "healthy", deflate())
            stalled = RawClient(s, rcvbuf=4096, extensions=BROWSER_OFFER, timeout=10)
            stalled.connect(user="stalled")
            r = stalled.request({"type": "subscribe", "channel": ch})
            check(r.get("type") == "subscribed", f"stalled subscribe → {short(r)}")
            flooder = RawClient(s, rcvbuf=4096, extensions=BROWSER_OFFER, timeout=10)
            flooder.connect(user="flooder")
            r = flooder.request({"type": "subscribe", "channel": ch})
            check(r.get("type") == "subscribed", f"flooder subscribe → {short(r)}")

            # The flood: compressed publishes of random text as fast as the socket takes
            # them, never reading; the server must stop it rather than buffer for it.
            def flood():
                sent = 0
                t0 = time.monotonic()
                try:
                    while sent < 20000 and time.monotonic() - t0 < 10:
                        msg = json.dumps({"type": "publish", "id": sent, "channel": ch,
                                          "data": text_of(100000 + sent, 1024)})
                        flooder.ws.send_message(OP_TEXT, msg.encode(), compress=True)
                        sent += 1
                except OSError:
                    pass  # the server closed the connection: what should happen
                return sent

            sent = await loop.run_in_executor(None, flood)
            # Then publications through the API, paced by the healthy readers: enough to push
            # the stalled subscriber past its limit even after the kernel's buffers.
            last = 0
            for k in range(1, stream_length() + 1):
                r = await api_ok_async(s, "publish", {"channel": ch, "data": text_of(2 * k, SIZE)})
                last = r["offset"]
                if k % 16 == 0:
                    await wait_all(healthy, last, progress, 20)
            await wait_all(healthy, last, progress, 20)
            for sub in healthy:
                offs = [o for o, _ in sub.got]
                check(offs == list(range(1, last + 1)), f"{sub.c.name}: offsets "
                      f"{offs[:3]}...{offs[-3:]} ({len(offs)}), expected 1..{last}")
                check(not sub.c.closed.is_set(), f"{sub.c.name} was closed "
                      f"({sub.c.close_code})")
            msgs, code = await loop.run_in_executor(None, drain_raw, stalled, 10)
            offs = [m.get("offset") for m in msgs if m.get("type") == "message"]
            check(offs == list(range(1, len(offs) + 1)) and len(offs) < last,
                  f"the stalled client's stream: {offs[:3]}...{offs[-3:]} ({len(offs)} of "
                  f"{last})")
            check(msgs and msgs[-1].get("type") == "disconnect" and
                  msgs[-1].get("code") == 4000, f"stalled: last messages {short(msgs[-2:])}")
            check(code == 4000, f"the stalled client's connection ended with {code}, "
                  f"expected close 4000")
            fmsgs, fcode = await loop.run_in_executor(None, drain_raw, flooder, 10)
            check(fcode in (1008, 4000), f"the flooder ({sent} publishes sent) ended with "
                  f"{fcode}, expected 1008 (rate limit) or 4000 (slow consumer)")
            print(f"NOTE       flooder sent {sent} publishes, closed {fcode}; stalled read "
                  f"{len(offs)} of {last} before 4000; healthy got all {last}", flush=True)
            r = await api_ok_async(s, "info", {})
            check(s.proc.alive(), "server died")
        finally:
            for raw in (stalled, flooder):
                if raw:
                    raw.close()
            await stop_all([sub.c for sub in healthy])
            s.close()


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_deflate_fanout")
    suite = Suite(args.server)
    cases = [("mixed", 60), ("never_reads_and_flood", 90)]
    if is_sanitized(args.server):
        # ASan's shadow and redzones move RSS by more than the bound: the memory cases
        # measure the release build only.
        print("NOTE       sanitized server: memory cases skipped (RSS measures ASan)")
    else:
        cases[1:1] = [("memory_shared", 60), ("memory_takeover", 60)]
    try:
        for name, timeout in cases:
            await run_case(rep, name, getattr(suite, "case_" + name), timeout=timeout)
    finally:
        suite.close()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
