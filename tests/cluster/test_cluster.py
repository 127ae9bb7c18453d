#!/usr/bin/python3
# ctest-variant: redis --engine redis
# ctest-variant: nats --engine nats
"""Cluster: Switchboard nodes sharing one broker: Redis ([broker] engine = "redis") or NATS
with JetStream (engine = "nats"). One suite, one set of cases, run once per engine
(--engine; ctest registers cluster.test_cluster.redis and cluster.test_cluster.nats).

The contract under test: any node serves any client; a publication on any node reaches every
subscriber of the channel on every node exactly once, in one per-channel order (the same
epoch and offsets everywhere); presence, history, join/leave and sessions are cluster-wide;
a node killed with -9 leaves presence within broker.node_ttl (+1 s sweep); a node that cannot
reach the broker answers /readyz 503 and `unavailable` to publishes, keeps its connections,
and recovers by itself (a broker that came back empty gives channels a new epoch:
recovered:false for an old position, gap:true for a live subscriber, never a silent hole; a
NATS that came back with its JetStream store keeps epochs and history: recovered:true).

Cases (each starts its own broker server, with its own prefix (redis_prefix / nats_prefix),
and its own nodes):
0. cluster_info: 3 nodes see each other in /api/info "engine" (name, available, node, nodes
   with names, connections, age_ms) and /metrics (switchboard_engine_available,
   switchboard_cluster_nodes); redis: every key and pub/sub channel carries the prefix;
   nats: every JetStream stream (KV buckets are streams KV_<bucket>) is named "<prefix>_…",
   and every stream subject and client subscription is "<prefix>.…" (or "$KV.<prefix>_…", or
   the client library's "_INBOX.…" replies).
1. three_nodes_order: 3 subscribers on each of 3 nodes (2 event loops each); 300 publications
   from 6 interleaved publishers (a /ws client and /api/publish on every node): every
   subscriber holds the identical sequence of (epoch, offset, data), offsets contiguous,
   each exactly once.
2. presence_history_agree: presence (/api/presence and the `presence` request) and history
   (/api/history and `history`) are the same on every node; client ids are unique across
   nodes; join/leave of a client on node 1 reach a subscriber on node 3.
3. resume_on_other_node: at_least_once: a client on node 1 receives, acks part, leaves; more
   is published; it resumes on node 2 with its session id: resumed:true, its subscription
   back, every un-acked and missed publication; then once more on node 3.
3b. resume_edges: an at-most-once session resumed on another node gets exactly what its
   connection was not sent; an at-least-once one whose missed publications passed the
   history (size 5) says recovered:false.
3c. takeover_across_nodes: resuming on node 2 a session that a connection on node 1 still
   holds takes it over (disconnect 4004 there, nothing more reaches it).
3d. idempotency_across_nodes: an idempotency key used on node 1 makes the same publish on
   nodes 2 and 3 (/api and /ws) a duplicate; subscribers get it once.
3e. channels_spread: 24 channels (spread over each node's subscriptions), a subscriber on
   every node, publications from every node: each channel's exact sequence everywhere.
3g. http_sessions_any_node: an SSE stream on node 1 whose POSTs (publish, presence,
   subscribe) go to nodes 2 and 3, and a long-polling session on node 2 polled and POSTed
   through nodes 1 and 3 (a poll parked there answered by a later publication; a 768 KiB
   batch, relayed in pieces, whole and in order): each is relayed to the node that holds the
   session; unknown sessions get 404/410 as on one node; once the holder is killed with -9, a
   relayed POST gets 504 after the relay's 10 s wait.
3f. resume_after_node_death: at_least_once: a client subscribed before the channel's first
   publication receives 1..3, acks nothing, and its node is killed with -9; its session
   resumed on another node says recovered:true and gets 1..3, then what follows.
4. kill9_under_load: 3 nodes behind HAProxy (deploy/haproxy.cfg, unchanged); 30 at_least_once
   clients through it; /api/publish at ~200/s to node 1; node 2 is killed with -9 midway. Its
   clients reconnect through HAProxy and resume; at the end every client holds every
   publication (after dedupe by offset) with nothing missing, in order; the dead node's
   clients leave presence (and leave events reach node 3) within node_ttl + 1 s + margin;
   HAProxy takes node 2 out of the pool; the survivors list 2 nodes.
5. broker_restart: the broker is stopped mid-run: /readyz 503, publishes `unavailable` (HTTP
   503), connections stay open; it comes back empty on the same port (nats: store wiped):
   /readyz 200 and publishing work again within 5 s; a new epoch: an old position gets
   recovered:false; the live subscriber's first message after the restart carries gap:true.
5a. broker_restart_keeps_store (nats only; this redis-server has no persistence): NATS is
   killed (-9) and comes back with its JetStream store: ready again within 5 s, the same epochs,
   offsets continue; the live subscriber gets every later publication with no hole; an old
   position and a resumed at-least-once session get recovered:true with exactly what they
   missed; history and presence agree on both nodes.
5b. broker_hang: the broker stops answering without closing anything (SIGSTOP): publishes
   fail with `unavailable` within about redis_timeout / nats_timeout, /readyz turns 503,
   connections stay; after SIGCONT the nodes recover and a live subscriber has no silent
   hole.
6. readyz_and_unavailable: a node whose broker is unreachable (flags --broker-engine E and
   --redis-address / --nats-url to a closed port) starts, answers /healthz 200, /readyz 503,
   accepts connect, refuses publish with `unavailable`; when a broker appears there it
   becomes ready.
7. haproxy_skips_unready: HAProxy in front of two ready nodes and one whose broker is
   unreachable: that one is DOWN within ~1 s (/readyz checks), and every client that comes
   through HAProxy can publish.

Requires haproxy, redis-server (--engine redis) or nats-server 2.9+ (--engine nats) (CI
installs them) and a binary whose `serve --help` mentions the engine (redis; nats: the
--nats-url flag): without it the run records a failing `prerequisites`. Deadlines are scaled
for sanitizer builds.

  /usr/bin/python3 tests/cluster/test_cluster.py --server build/release/switchboard
  ... --engine nats                       the same cases on NATS (default: redis)
  ... --case kill9_under_load             run some cases only
  ... --selftest-memory                   check the suite's own logic: the cases 1-3e against
                                          ONE memory-engine node standing in for all three
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, Reporter  # noqa: E402
from messaging import (API_KEY, CheckFailed, Client, check, compress, http_call,  # noqa: E402
                       parse_metrics, require_websockets, short, stream_report)
import cluster  # noqa: E402
from cluster import (ClusterError, HAProxy, Nats, Node, Publisher, Redis,  # noqa: E402
                     RunDir, broker_toml, free_port, http_api)
from sse import SseStream  # noqa: E402

require_websockets()

NODE_TTL_S = 2
SWEEP_S = 1.0
SLOW = 1.0            # set in main(): 3 for a sanitizer build
SELFTEST = False      # set in main(): --selftest-memory
ENGINE = "redis"      # set in main(): --engine
BROKER = "Redis"      # ENGINE as the messages name it
ENGINES = {"redis": ("Redis", Redis), "nats": ("NATS", Nats)}

BASE_CONFIG = f"""
[api]
key = "{API_KEY}"
rate_limit = 0

[messaging]
rate_limit = 100000

[namespaces.room]
presence = true
join_leave = true
history_size = 1000
history_ttl = "300s"

[namespaces.small]
delivery = "at_least_once"
presence = true
history_size = 5
session_ttl = "60s"

[namespaces.jobs]
delivery = "at_least_once"
presence = true
join_leave = true
history_size = 20000
history_ttl = "300s"
session_ttl = "60s"
max_unacked = 5000
"""


def D(seconds: float) -> float:
    """A deadline scaled for slow (sanitizer) builds."""
    return seconds * SLOW


# --------------------------------------------------------------------------------------------
# Small async helpers


async def aapi(ep, name: str, body: dict | None = None):
    return await asyncio.to_thread(http_api, ep, name, body, D(5))


async def aapi_ok(ep, name: str, body: dict | None = None):
    status, out = await aapi(ep, name, body)
    check(status == 200 and isinstance(out, dict),
          f"{ep.name}: POST /api/{name} {short(body or {})} → {status} {short(out)}")
    return out


async def aget(node: Node, path: str):
    return await asyncio.to_thread(node.get, path, D(5))


async def ahttp(node: Node, method: str, path: str, body=None, headers: dict | None = None,
                timeout: float | None = None):
    """(status, parsed JSON or text) of a request to `node` without the API key."""
    return await asyncio.to_thread(http_call, node, method, path, body, None, headers,
                                   timeout if timeout is not None else D(5))


async def ametrics(node: Node) -> dict[str, float]:
    status, text = await aget(node, "/metrics")
    check(status == 200, f"{node.name}: GET /metrics → {status}")
    return parse_metrics(text)


async def poll(fn, seconds: float, what: str, period: float = 0.05):
    """Calls async fn() → (done, last) until done; raises CheckFailed naming the last state."""
    deadline = Deadline(seconds)
    while True:
        done, last = await fn()
        if done:
            return last
        if deadline.expired():
            raise CheckFailed(f"timed out after {seconds:.1f}s waiting for {what}; last: "
                              f"{short(last, 600)}")
        await asyncio.sleep(period)  # polling period


async def open_client(ep, name: str, **connect_fields) -> Client:
    c = await Client.open(ep, name, timeout=D(5))
    try:
        await c.connect(timeout=D(5), **connect_fields)
    except BaseException:
        await c.stop()
        raise
    return c


async def stop_clients(clients):
    await asyncio.gather(*[c.stop() for c in clients if c is not None], return_exceptions=True)


def offsets_of(c: Client, ch: str) -> list[int]:
    return [m.get("offset") for m in c.messages(ch)]


def presence_ids(out) -> set[str]:
    return {e.get("client") for e in (out or {}).get("clients", [])}


# --------------------------------------------------------------------------------------------
# The suite


class Suite:
    def __init__(self, binary: str, rep: Reporter, run: RunDir):
        self.binary = binary
        self.rep = rep
        self.run_dir = run
        self.case = ""
        self.nodes_started: list[Node] = []
        self.brokers: list[Redis | Nats] = []
        self.haproxies: list[HAProxy] = []
        self.any_failed = False

    # ---- processes
    def prefix(self) -> str:
        """redis_prefix, or nats_prefix (only [A-Za-z0-9_-]: the engine appends "." to
        subjects and "_" to stream and bucket names)."""
        if ENGINE == "nats":
            return f"sbt-{os.getpid()}-{self.case}"
        return f"sbt-{os.getpid()}-{self.case}:"

    def broker(self, port: int | None = None) -> Redis | Nats:
        """A new broker server for this case (on `port` if given)."""
        b = ENGINES[ENGINE][1](self.run_dir.sub(self.case), port=port, start_timeout=D(10))
        self.brokers.append(b)
        return b

    def unreachable(self, port: int) -> str:
        """A broker address where nothing listens (yet)."""
        return f"nats://127.0.0.1:{port}" if ENGINE == "nats" else f"127.0.0.1:{port}"

    def node(self, name: str, broker_address: str | None, threads: int = 1,
             flags: tuple[str, ...] = (), broker: bool = True) -> Node:
        cfg = BASE_CONFIG
        if broker:
            cfg += "\n" + broker_toml(ENGINE, broker_address, self.prefix(),
                                      node_ttl=f"{NODE_TTL_S}s", node_name=name)
        n = Node(self.binary, cfg, f"{self.case}-{name}", self.run_dir.sub(self.case),
                 threads=threads, flags=flags, start_timeout=D(20), log_level="info")
        n.short = name
        self.nodes_started.append(n)
        return n

    def cluster(self, count: int = 3,
                threads: int = 1) -> tuple[Redis | Nats | None, list[Node]]:
        """A broker server and `count` nodes on it (n1..nN). --selftest-memory: one
        memory-engine node stands in for every node, no broker."""
        if SELFTEST:
            n = self.node("n1", None, threads=threads, broker=False)
            return None, [n] * count
        r = self.broker()
        return r, [self.node(f"n{i}", r.address, threads=threads) for i in range(1, count + 1)]

    def haproxy(self, backends: list) -> HAProxy:
        h = HAProxy(backends, self.run_dir.sub(self.case), start_timeout=D(10))
        self.haproxies.append(h)
        return h

    async def wait_formed(self, nodes: list[Node], count: int | None = None):
        """Every node's /api/info lists `count` live nodes (all of `nodes` by default)."""
        if SELFTEST:
            return
        want = count if count is not None else len(set(id(n) for n in nodes))

        async def formed():
            seen = {}
            for n in set(nodes):
                info = await asyncio.to_thread(n.info)
                eng = info.get("engine") or {}
                seen[n.short] = [x.get("name") for x in eng.get("nodes", [])]
            return all(len(v) == want for v in seen.values()), seen
        await poll(formed, D(NODE_TTL_S + 5), f"every node's /api/info engine.nodes to list "
                   f"{want} nodes")

    def stop_all(self) -> list[str]:
        """Stops this case's processes by PID; returns the nodes that did not exit 0 on SIGTERM
        (test_sigterm's contract), with a sanitizer's verdict if any."""
        bad = []
        for h in self.haproxies:
            h.stop()
        nodes = list(dict.fromkeys(self.nodes_started))
        running = [n for n in nodes if n.alive()]   # the others died (deaths()) or were killed
        for n in running:
            n.terminate()   # all at once: they shut down in parallel
        for n in nodes:
            rc = n.stop(grace=D(10))
            if n not in running:
                continue
            if rc != 0:
                how = "did not exit within the grace period" if rc is None else f"exit {rc}"
                bad.append(f"{n.short} (pid {n.pid}): {how} after SIGTERM"
                           f"{': ' + n.sanitizer_verdict() if n.sanitizer_verdict() else ''}"
                           f"; log tail: {n.log_tail(300)!r}")
        for r in self.brokers:
            r.close()
        self.haproxies, self.nodes_started, self.brokers = [], [], []
        return bad

    def deaths(self) -> list[str]:
        return [d for d in (n.death() for n in self.nodes_started) if d]

    def diagnostics(self) -> str:
        parts = []
        for n in self.nodes_started:
            tail = n.log_tail(700).strip().replace("\n", "\n             ")
            parts.append(f"{n.short} (pid {n.pid}, {'alive' if n.alive() else 'exited'}) log "
                         f"tail:\n             {tail or '(empty)'}")
        for h in self.haproxies:
            tail = h.log_tail(500).strip().replace("\n", "\n             ")
            parts.append(f"haproxy log tail:\n             {tail}")
        for b in self.brokers:
            tail = b.log_tail(500).strip().replace("\n", "\n             ")
            parts.append(f"{ENGINE} server log tail:\n             {tail}")
        return "\n           ".join(parts)

    async def run(self, name: str, timeout: float, needs_broker: bool = True,
                  engines: tuple[str, ...] = ("redis", "nats")):
        if SELFTEST and needs_broker:
            print(f"SKIP       {name}  -- needs a shared broker (--selftest-memory)",
                  flush=True)
            return
        if not SELFTEST and ENGINE not in engines:
            print(f"SKIP       {name}  -- {ENGINE}: {SKIP_REASON[name]}", flush=True)
            return
        self.case = name
        fn = getattr(self, "case_" + name)
        t0 = time.monotonic()
        error = None
        try:
            await asyncio.wait_for(fn(), D(timeout))
        except CheckFailed as e:
            error = str(e)
        except asyncio.TimeoutError:
            error = f"case deadline of {D(timeout):.0f}s passed"
        except ClusterError as e:
            error = f"setup: {e}"
        except Exception as e:  # noqa: BLE001 - a crash of a case is its failure, with a trace
            error = (f"{e.__class__.__name__}: {e} "
                     f"[{traceback.format_exc(limit=4).splitlines()[-4:]}]")
        dead = self.deaths()
        if dead:
            error = "; ".join(f"SERVER DIED: {d}" for d in dead) + \
                (f"; the case then saw: {error}" if error else "")
        if error is not None:
            print(f"NOTE       {name} diagnostics:\n           {self.diagnostics()}", flush=True)
        t_stop = time.monotonic()
        unclean = await asyncio.to_thread(self.stop_all)
        if time.monotonic() - t_stop > 1.0 * SLOW:
            print(f"NOTE       {name}: stopping its processes (SIGTERM) took "
                  f"{time.monotonic() - t_stop:.2f}s", flush=True)
        if unclean:
            error = (f"{error}; " if error else "") + "; ".join(unclean)
        if error is not None:
            self.any_failed = True
        self.rep.record(name, error is None,
                        error if error else f"{time.monotonic() - t0:.2f}s")

    # ======================================================================== 0. cluster_info
    async def case_cluster_info(self):
        r, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        problems = []
        infos = [await asyncio.to_thread(n.info) for n in nodes]
        engines = [i.get("engine") for i in infos]
        check(all(isinstance(e, dict) for e in engines),
              f"/api/info has no \"engine\" object: {short(infos[0])}")
        ids = [e.get("node") for e in engines]
        check(all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 3,
              f"engine.node of the 3 nodes: {ids}, expected 3 distinct non-empty ids")
        for n, e in zip(nodes, engines):
            if e.get("name") != ENGINE or e.get("available") is not True:
                problems.append(f"{n.short}: engine {short(e)}: expected name {ENGINE}, "
                                "available true")
            listed = {x.get("id"): x for x in e.get("nodes", [])}
            if set(listed) != set(ids):
                problems.append(f"{n.short}: engine.nodes ids {sorted(listed)} != the nodes' "
                                f"own ids {sorted(ids)}")
                continue
            for want_name, nid in zip(("n1", "n2", "n3"), ids):
                x = listed[nid]
                if x.get("name") != want_name:
                    problems.append(f"{n.short}: node {nid} has name {x.get('name')!r}, "
                                    f"expected {want_name!r} (broker.node_name)")
                age = x.get("age_ms")
                if not isinstance(age, int) or age < 0 or age > (NODE_TTL_S + SWEEP_S) * 1000:
                    problems.append(f"{n.short}: node {nid} age_ms {age!r}, expected 0.."
                                    f"{int((NODE_TTL_S + SWEEP_S) * 1000)} (a live node)")
                if not isinstance(x.get("connections"), int):
                    problems.append(f"{n.short}: node {nid} connections "
                                    f"{x.get('connections')!r}")
        for n in nodes:
            m = await ametrics(n)
            if m.get("switchboard_engine_available") != 1:
                problems.append(f"{n.short}: switchboard_engine_available = "
                                f"{m.get('switchboard_engine_available')}, expected 1")
            if m.get("switchboard_cluster_nodes") != 3:
                problems.append(f"{n.short}: switchboard_cluster_nodes = "
                                f"{m.get('switchboard_cluster_nodes')}, expected 3")
        # Two WebSockets on n2: every node's view of n2 says 2 connections (heartbeat ~1/s).
        clients = []
        try:
            ch = "room:info"
            for k in range(2):
                c = await open_client(nodes[1], f"info{k}", user=f"info{k}")
                await c.subscribe(ch, timeout=D(5))
                clients.append(c)
            await aapi_ok(nodes[0], "publish", {"channel": ch, "data": "x"})
            n2_id = ids[1]

            async def n2_seen():
                views = {}
                for n in nodes:
                    e = (await asyncio.to_thread(n.info)).get("engine", {})
                    views[n.short] = {x.get("id"): x.get("connections")
                                      for x in e.get("nodes", [])}.get(n2_id)
                return all(v == 2 for v in views.values()), views
            try:
                await poll(n2_seen, D(NODE_TTL_S + 3),
                           "every node to list n2 with connections 2 (2 open WebSockets)")
            except CheckFailed as e:
                problems.append(str(e))
            problems += await asyncio.to_thread(self.names_carry_prefix, r)
        finally:
            await stop_clients(clients)
        check(not problems, "; ".join(problems))

    def names_carry_prefix(self, r) -> list[str]:
        """What of the broker's names does not carry this case's prefix (cluster_info)."""
        problems = []
        prefix = self.prefix()
        if ENGINE == "redis":
            # Keys and pub/sub channels of this run all carry redis_prefix.
            keys = r.keys()
            chans = r.pubsub_channels()
            stray = [k for k in keys if not k.startswith(prefix)]
            stray_ch = [c for c in chans if not c.startswith(prefix)]
            if not keys:
                problems.append("Redis holds no key at all after a publication with history "
                                "(is the node using this Redis?)")
            if stray or stray_ch:
                problems.append(f"Redis names without redis_prefix {prefix!r}: keys "
                                f"{stray[:10]}, pub/sub channels {stray_ch[:10]}")
            print(f"NOTE       cluster_info: {len(keys)} key(s), {len(chans)} pub/sub "
                  f"channel(s) under {prefix!r}", flush=True)
            return problems
        # NATS: streams (KV buckets are the streams KV_<bucket>) are "<prefix>_…"; the
        # subjects of streams and of the nodes' subscriptions are "<prefix>.…" (a KV bucket's
        # are "$KV.<bucket>.…"; "_INBOX.…" are the client library's reply subjects).
        streams = r.streams()
        subs = r.client_subscriptions()

        def name_ok(name: str) -> bool:
            return any(name.startswith(f"{k}{prefix}_") for k in ("", "KV_", "OBJ_"))

        def subject_ok(subject: str) -> bool:
            return subject.startswith(f"{prefix}.") or \
                subject.startswith(f"$KV.{prefix}_") or subject.startswith("_INBOX.")
        stray = [x["name"] for x in streams if not name_ok(x["name"] or "")]
        stray_subj = sorted({sj for x in streams for sj in x["subjects"] if not subject_ok(sj)} |
                            {sj for sj in subs if not subject_ok(sj)})
        if not streams:
            problems.append("NATS holds no JetStream stream at all after a publication with "
                            "history (is the node using this NATS?)")
        if not subs:
            problems.append("no subscription on NATS from the 3 nodes (is the node using this "
                            "NATS?)")
        if stray or stray_subj:
            problems.append(f"NATS names without nats_prefix {prefix!r}: streams / KV buckets "
                            f"{stray[:10]} (expected {prefix}_…, KV_{prefix}_…), subjects "
                            f"{stray_subj[:10]} (expected {prefix}.…)")
        inbox = sorted({sj for sj in subs if sj.startswith("_INBOX.")})
        print(f"NOTE       cluster_info: {len(streams)} stream(s) "
              f"{sorted(x['name'] for x in streams)[:12]}, {len(subs)} subscription(s) of "
              f"{r.connections()} connection(s) (subjects: "
              f"{sorted({sj for sj in subs if not sj.startswith('_INBOX.')})[:12]}; "
              f"{len(inbox)} _INBOX) under {prefix!r}", flush=True)
        return problems

    # =================================================================== 1. three_nodes_order
    async def case_three_nodes_order(self):
        _, nodes = self.cluster(3, threads=2)
        await self.wait_formed(nodes)
        ch = "room:order"
        per_stream = 50
        subs, pubs = [], []
        try:
            for ni, n in enumerate(nodes):
                for k in range(3):
                    c = await open_client(n, f"sub-n{ni + 1}-{k}", user=f"s{ni}{k}")
                    c.sub_reply = await c.subscribe(ch, timeout=D(5))
                    subs.append(c)
            for ni, n in enumerate(nodes):
                pubs.append(await open_client(n, f"pub-n{ni + 1}", user=f"p{ni}"))
            base = max(c.sub_reply.get("offset", 0) for c in subs)
            published: list[tuple] = []   # (epoch, offset, data, stream)

            async def ws_stream(c: Client, tag: str):
                for i in range(per_stream):
                    data = {"p": tag, "i": i}
                    r = await c.publish(ch, data, timeout=D(5))
                    published.append((r.get("epoch"), r.get("offset"), data, tag))

            async def api_stream(n: Node, tag: str):
                p = Publisher(n, timeout=D(5))
                try:
                    for i in range(per_stream):
                        data = {"p": tag, "i": i}
                        status, out = await asyncio.to_thread(p.publish, ch, data)
                        check(status == 200, f"{n.short}: /api/publish #{i} → {status} "
                              f"{short(out)}")
                        published.append((out.get("epoch"), out.get("offset"), data, tag))
                finally:
                    p.close()
            await asyncio.gather(
                *[ws_stream(c, f"ws{i + 1}") for i, c in enumerate(pubs)],
                *[api_stream(n, f"api{i + 1}") for i, n in enumerate(nodes)])
            total = per_stream * 6
            epochs = {p[0] for p in published}
            check(len(epochs) == 1, f"publish replies carry several epochs: {epochs}")
            offs = sorted(p[1] for p in published)
            check(offs == list(range(base + 1, base + total + 1)),
                  f"the {total} publish replies' offsets are not exactly {base + 1}.."
                  f"{base + total}: {compress(offs)} (duplicates: "
                  f"{len(offs) - len(set(offs))})")
            for tag in {p[3] for p in published}:
                mine = [p[1] for p in published if p[3] == tag]
                check(mine == sorted(mine), f"publisher {tag}'s sequential publications got "
                      f"offsets out of order: {compress(mine)}")
            fence = await aapi_ok(nodes[0], "publish", {"channel": ch, "data": "fence"})
            expected = sorted([(p[0], p[1], p[2]) for p in published]) + \
                [(fence["epoch"], fence["offset"], "fence")]

            for c in subs:
                await c.wait_until(lambda c=c: fence["offset"] in offsets_of(c, ch), D(30),
                                   f"the fence publication {fence['offset']}")
            problems = []
            for c in subs:
                got = [(m.get("epoch"), m.get("offset"), m.get("data")) for m in c.messages(ch)]
                if got == expected:
                    continue
                offs_got = [g[1] for g in got]
                want_offs = [e[1] for e in expected]
                missing = sorted(set(want_offs) - set(offs_got))
                dups = len(offs_got) - len(set(offs_got))
                wrong = [g for g in got if g not in expected][:3]
                problems.append(
                    f"{c.name}: {len(got)} messages, expected {len(expected)}; missing "
                    f"{compress(missing)}; {dups} duplicate(s); in order: "
                    f"{offs_got == sorted(offs_got)}; unexpected (epoch, offset, data): "
                    f"{short(wrong, 200)}")
            gaps = [(c.name, m.get("offset")) for c in subs for m in c.messages(ch)
                    if m.get("gap")]
            if gaps:
                problems.append(f"gap:true on messages nobody lost: {gaps[:5]}")
            check(not problems, f"{len(problems)} of {len(subs)} subscribers (3 per node) "
                  f"did not see the identical sequence: " + "; ".join(problems[:4]))
        finally:
            await stop_clients(subs + pubs)

    # ============================================================== 2. presence_history_agree
    async def case_presence_history_agree(self):
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        ch = "room:ph"
        members: list[Client] = []
        extra: list[Client] = []
        try:
            for ni, n in enumerate(nodes):
                for k in range(2):
                    info = {"node": ni + 1, "k": k}
                    c = await open_client(n, f"m-n{ni + 1}-{k}", user=f"u{ni + 1}{k}",
                                          info=info)
                    c.node = n
                    c.entry = (c.client_id, f"u{ni + 1}{k}", tuple(sorted(info.items())))
                    await c.subscribe(ch, timeout=D(5))
                    members.append(c)
            ids = [c.client_id for c in members]
            check(len(set(ids)) == len(ids), f"client ids are not unique across nodes: {ids}")
            expect_entries = sorted(c.entry for c in members)

            def entries(out):
                return sorted((e.get("client"), e.get("user"),
                               tuple(sorted((e.get("info") or {}).items())))
                              for e in (out or {}).get("clients", []))

            async def api_presence_agrees():
                views = {}
                for n in set(nodes):
                    status, out = await aapi(n, "presence", {"channel": ch})
                    views[n.short] = entries(out) if status == 200 else (status, out)
                ok = all(v == expect_entries for v in views.values())
                return ok, {"expected": expect_entries, "views": views}
            await poll(api_presence_agrees, D(5),
                       "/api/presence on every node to list the 6 members (client, user, info)")
            # The `presence` request on every node.
            for c in members[::2]:
                r = await c.request({"type": "presence", "channel": ch}, D(5))
                check(r.get("type") == "presence" and r.get("count") == 6 and
                      entries(r) == expect_entries,
                      f"{c.name}: presence request on {c.node.short} → {short(r)}, expected "
                      f"the 6 members {expect_entries}")

            # History: 12 publications from alternating nodes; every node answers the same.
            published = []
            for i in range(12):
                out = await aapi_ok(nodes[i % 3], "publish", {"channel": ch, "data": {"h": i}})
                published.append(out)
            top = published[-1]["offset"]
            epoch = published[-1]["epoch"]

            async def history_agrees():
                views = {}
                for n in set(nodes):
                    status, out = await aapi(n, "history", {"channel": ch})
                    views[n.short] = out if status == 200 else (status, out)
                vals = list(views.values())
                ok = all(isinstance(v, dict) and v.get("offset") == top for v in vals) and \
                    all(v == vals[0] for v in vals)
                return ok, views
            views = await poll(history_agrees, D(5), "/api/history identical on every node")
            h = next(iter(views.values()))
            got = [(p.get("offset"), p.get("data")) for p in h.get("publications", [])]
            check(got == [(p["offset"], {"h": i}) for i, p in enumerate(published)] and
                  h.get("epoch") == epoch,
                  f"/api/history → {short(h, 500)}, expected the 12 publications {epoch} "
                  f"1..{top}")
            for c in members[1::2]:
                r = await c.request({"type": "history", "channel": ch,
                                     "since": {"epoch": epoch, "offset": 4}, "limit": 5}, D(5))
                offs = [p.get("offset") for p in r.get("publications", [])]
                check(r.get("type") == "history" and r.get("recovered") is True and
                      offs == [5, 6, 7, 8, 9] and r.get("epoch") == epoch and
                      r.get("offset") == top,
                      f"{c.name} on {c.node.short}: history since 4 limit 5 → {short(r)}")

            # join/leave: a client on node 1 is seen by a subscriber on node 3.
            watcher = members[4]   # on n3
            j = await open_client(nodes[0], "joiner", user="joiner")
            extra.append(j)
            await j.subscribe(ch, timeout=D(5))
            ev = await watcher.expect(lambda m: m.get("type") == "join" and
                                      m.get("client") == j.client_id, D(5),
                                      f"join of {j.client_id} (n1) on the watcher (n3)")
            check(ev.get("channel") == ch and ev.get("user") == "joiner",
                  f"join event on n3: {short(ev)}")
            await j.expect(lambda m: m.get("type") == "join" and
                           m.get("client") == j.client_id, D(5), "its own join")
            r = await j.request({"type": "unsubscribe", "channel": ch}, D(5))
            check(r.get("type") == "unsubscribed", f"unsubscribe → {short(r)}")
            ev = await watcher.expect(lambda m: m.get("type") == "leave" and
                                      m.get("client") == j.client_id, D(5),
                                      f"leave of {j.client_id} (unsubscribed on n1) on n3")
            check(ev.get("channel") == ch and ev.get("user") == "joiner",
                  f"leave event on n3: {short(ev)}")
            # A client on node 2 whose connection just ends.
            k2 = await open_client(nodes[1], "dropper", user="dropper")
            extra.append(k2)
            await k2.subscribe(ch, timeout=D(5))
            await watcher.expect(lambda m: m.get("type") == "join" and
                                 m.get("client") == k2.client_id, D(5),
                                 f"join of {k2.client_id} (n2) on n3")
            k2.abort(rst=True)
            await watcher.expect(lambda m: m.get("type") == "leave" and
                                 m.get("client") == k2.client_id, D(5),
                                 f"leave of {k2.client_id} (connection reset on n2) on n3")

            async def back_to_six():
                views = {}
                for n in set(nodes):
                    status, out = await aapi(n, "presence", {"channel": ch})
                    views[n.short] = sorted(presence_ids(out)) if status == 200 else status
                return all(v == sorted(ids) for v in views.values()), views
            await poll(back_to_six, D(5), "presence back to the 6 members on every node")
        finally:
            await stop_clients(members + extra)

    # ================================================================ 3. resume_on_other_node
    async def case_resume_on_other_node(self):
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        n1, n2, n3 = nodes
        ch = "jobs:resume"
        a = b = c = None

        async def publish(n: Node, count: int, tag: str) -> list[dict]:
            out = []
            for i in range(count):
                out.append(await aapi_ok(n, "publish", {"channel": ch,
                                                        "data": {"tag": tag, "i": i}}))
            return out

        async def wait_gone(n: Node, client_id: str):
            async def gone():
                status, out = await aapi(n, "presence", {"channel": ch})
                return status == 200 and client_id not in presence_ids(out), out
            await poll(gone, D(5), f"{client_id} to leave presence on {n.short}")

        async def resume(n: Node, session: str, name: str) -> tuple[Client, dict]:
            cl = await Client.open(n, name, timeout=D(5))
            r = await cl.request({"type": "connect", "user": "worker", "session": session},
                                 D(5))
            check(r.get("type") == "connected", f"{name}: connect with session → {short(r)}")
            cl.client_id, cl.session = r.get("client"), r.get("session")
            return cl, r

        try:
            a = await open_client(n1, "A@n1", user="worker")
            sid = a.session
            await a.subscribe(ch, timeout=D(5))
            data = {}
            for p in await publish(n3, 10, "first"):
                data[p["offset"]] = p
            check(sorted(data) == list(range(1, 11)), f"offsets {sorted(data)}")
            epoch = data[1]["epoch"]
            await a.wait_until(lambda: len(a.messages(ch)) >= 10, D(10), "1..10 on A (n1)")
            check(offsets_of(a, ch) == list(range(1, 11)), f"A received {offsets_of(a, ch)}")
            r = await a.request({"type": "ack", "id": "ack4", "channel": ch, "offset": 4}, D(5))
            check(r == {"type": "acked", "id": "ack4"}, f"ack → {short(r)}")
            await a.close()
            await wait_gone(n2, a.client_id)
            missed = await publish(n2, 10, "missed")    # 11..20 while away
            check([p["offset"] for p in missed] == list(range(11, 21)), f"offsets {missed}")
            b, r = await resume(n2, sid, "B@n2")
            problems = []
            check(r.get("resumed") is True and r.get("session") == sid,
                  f"B: connect on n2 with the session from n1 → {short(r)}, expected "
                  "resumed:true and the same session")
            want_ch = [x for x in r.get("channels", []) if x.get("channel") == ch]
            if not want_ch or want_ch[0].get("recovered") is not True or \
                    want_ch[0].get("epoch") != epoch:
                problems.append(f"B's connected channels {short(r.get('channels'))}: expected "
                                f"{ch} with epoch {epoch} and recovered:true")
            live = await publish(n1, 3, "live")         # 21..23, after the resume
            check(live[-1]["offset"] == 23, f"offsets {live}")
            await b.wait_until(lambda: 23 in offsets_of(b, ch), D(10),
                               "offset 23 on B (n2) after the resume")
            gb = offsets_of(b, ch)
            err = stream_report(gb, range(5, 24))
            if err:
                problems.append(f"B on n2 (A acked 4 on n1): {err}")
            tags = ["first"] * 10 + ["missed"] * 10 + ["live"] * 3
            for m in b.messages(ch):
                o = m.get("offset")
                want = {"tag": tags[o - 1], "i": (o - 1) % 10} if 1 <= o <= 20 else \
                    {"tag": "live", "i": o - 21}
                if m.get("data") != want or m.get("epoch") != epoch:
                    problems.append(f"B: offset {o} carries {short(m)}, expected data {want} "
                                    f"epoch {epoch}")
                    break
            sub = await b.request({"type": "subscribe", "channel": ch}, D(5))
            if sub.get("code") != "already_subscribed":
                problems.append(f"B: subscribe after the resume → {short(sub)}, expected "
                                "already_subscribed (the resume restored it)")
            dup = len(gb) - len(set(gb))
            early = [o for o in gb if o <= 4]
            print(f"NOTE       resume n1→n2: B received {len(gb)} ({dup} duplicate(s); acked "
                  f"offsets again: {early})", flush=True)
            check(not problems, "; ".join(problems))

            # Second hop: B acks everything, leaves; 24..25 published; C resumes on n3.
            r = await b.request({"type": "ack", "id": "ack23", "channel": ch, "offset": 23},
                                D(5))
            check(r.get("type") == "acked", f"ack 23 → {short(r)}")
            await b.close()
            await wait_gone(n3, b.client_id)
            await publish(n1, 2, "hop2")
            c, r = await resume(n3, sid, "C@n3")
            check(r.get("resumed") is True, f"C: connect on n3 with the session → {short(r)}")
            await c.wait_until(lambda: 25 in offsets_of(c, ch), D(10), "offset 25 on C (n3)")
            gc = offsets_of(c, ch)
            err = stream_report(gc, range(24, 26))
            check(err is None, f"C on n3 (B acked 23 on n2): {err}")
            union = set(range(1, 5)) | set(gb) | set(gc)
            check(union >= set(range(1, 26)),
                  f"acked on n1 ∪ received on n2 ∪ received on n3 misses "
                  f"{sorted(set(range(1, 26)) - union)}")
            again = [o for o in gc if o <= 23]
            if again:
                print(f"NOTE       resume n2→n3: acked offsets delivered again: {again}",
                      flush=True)
        finally:
            await stop_clients([a, b, c])

    # ======================================================================= 3b. resume_edges
    async def case_resume_edges(self):
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        n1, n2, n3 = nodes
        opened: list[Client] = []

        async def wait_gone(n: Node, ch: str, client_id: str):
            async def gone():
                status, out = await aapi(n, "presence", {"channel": ch})
                return status == 200 and client_id not in presence_ids(out), out
            await poll(gone, D(5), f"{client_id} to leave presence of {ch} on {n.short}")

        async def resume(n: Node, session: str, name: str) -> tuple[Client, dict]:
            cl = await Client.open(n, name, timeout=D(5))
            opened.append(cl)
            r = await cl.request({"type": "connect", "user": "u", "session": session}, D(5))
            check(r.get("type") == "connected" and r.get("resumed") is True and
                  r.get("session") == session,
                  f"{name}: connect on {n.short} with a session from another node → {short(r)}"
                  ", expected resumed:true")
            return cl, r

        try:
            problems = []
            # At-most-once (room, history 1000): the subscription comes back on another node
            # with exactly what the connection was not sent.
            ch = "room:amo"
            a = await open_client(n1, "amoA@n1", user="u")
            opened.append(a)
            await a.subscribe(ch, timeout=D(5))
            for i in range(3):
                await aapi_ok(n3, "publish", {"channel": ch, "data": {"i": i}})
            await a.wait_until(lambda: len(a.messages(ch)) >= 3, D(5), "1..3 on A (n1)")
            await a.close()
            await wait_gone(n2, ch, a.client_id)
            missed = [await aapi_ok(n3, "publish", {"channel": ch, "data": {"i": i}})
                      for i in (3, 4)]
            b, r = await resume(n2, a.session, "amoB@n2")
            want = [{"channel": ch, "epoch": missed[-1]["epoch"], "offset": 5,
                     "recovered": True}]
            if r.get("channels") != want:
                problems.append(f"at-most-once resume n1→n2: channels {short(r.get('channels'))}"
                                f", expected {want}")
            fence = await aapi_ok(n1, "publish", {"channel": ch, "data": "fence"})
            await b.wait_until(lambda: fence["offset"] in offsets_of(b, ch), D(5),
                               "the fence publication on B (n2)")
            if offsets_of(b, ch) != [4, 5, fence["offset"]]:
                problems.append(f"at-most-once resume n1→n2: B received {offsets_of(b, ch)}, "
                                f"expected [4, 5, {fence['offset']}] (A had 1..3)")
            sub = await b.request({"type": "subscribe", "channel": ch}, D(5))
            if sub.get("code") != "already_subscribed":
                problems.append(f"at-most-once resume: subscribe again → {short(sub)}, expected "
                                "already_subscribed")

            # At-least-once beyond the history (history_size 5): honest recovered:false.
            ch = "small:q"
            c = await open_client(n1, "smallA@n1", user="u")
            opened.append(c)
            await c.subscribe(ch, timeout=D(5))
            for i in range(3):
                await aapi_ok(n2, "publish", {"channel": ch, "data": {"i": i}})
            await c.wait_until(lambda: len(c.messages(ch)) >= 3, D(5), "1..3 on C (n1)")
            await c.close()   # nothing acked
            await wait_gone(n3, ch, c.client_id)
            for i in range(3, 23):   # 4..23: the history keeps only 19..23
                await aapi_ok(n2, "publish", {"channel": ch, "data": {"i": i}})
            d, r = await resume(n3, c.session, "smallD@n3")
            entry = [x for x in r.get("channels", []) if x.get("channel") == ch]
            if not entry or entry[0].get("recovered") is not False:
                problems.append(f"at-least-once resume past the history (size 5, 20 missed): "
                                f"channels {short(r.get('channels'))}, expected {ch} with "
                                "recovered:false")
            fence = await aapi_ok(n1, "publish", {"channel": ch, "data": "fence"})
            await d.wait_until(lambda: fence["offset"] in offsets_of(d, ch), D(5),
                               "the live publication after the resume on D (n3)")
            got = offsets_of(d, ch)
            if got != sorted(set(got)):
                problems.append(f"past the history: D received {got}: not in order / repeated")
            print(f"NOTE       resume past the history: channels {short(r.get('channels'))}; "
                  f"D received {compress(got)}", flush=True)
            check(not problems, "; ".join(problems))
        finally:
            await stop_clients(opened)

    # ================================================================ 3c. takeover_across_nodes
    async def case_takeover_across_nodes(self):
        # protocol.md, Sessions, "One holder": a resume takes the session over from a
        # connection that still holds it, here on another node.
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        n1, n2, _ = nodes
        ch = "jobs:take"
        a = b = None
        try:
            a = await open_client(n1, "A@n1", user="worker")
            await a.subscribe(ch, timeout=D(5))
            for i in range(3):
                await aapi_ok(n1, "publish", {"channel": ch, "data": {"i": i}})
            await a.wait_until(lambda: len(a.messages(ch)) >= 3, D(5), "1..3 on A (n1)")
            b = await Client.open(n2, "B@n2", timeout=D(5))
            r = await b.request({"type": "connect", "user": "worker", "session": a.session},
                                D(5))
            check(r.get("type") == "connected" and r.get("resumed") is True,
                  f"B on n2: connect with the session A holds on n1 → {short(r)}, expected "
                  "resumed:true")
            problems = []
            try:
                await b.wait_until(lambda: {1, 2, 3} <= set(offsets_of(b, ch)), D(5),
                                   "the un-acked 1..3 on B (n2)")
            except CheckFailed as e:
                problems.append(f"{e} (B received {offsets_of(b, ch)}; its connected reply: "
                                f"{short(r)})")
            takeover = {"type": "disconnect", "code": 4004,
                        "reason": "session resumed by another connection", "reconnect": False}
            try:
                code, reason = await a.wait_closed(D(5))
                ev = [m for m in a.all if m.get("type") == "disconnect"]
                if not ev or ev[-1] != takeover or code != 4004:
                    problems.append(f"A on n1 after the takeover from n2: events {short(ev)}, "
                                    f"close {code} {reason!r}; expected {takeover} and close "
                                    "4004")
            except CheckFailed:
                problems.append("A on n1 is still open 5 s after B took its session over on "
                                "n2 (expected disconnect 4004 and close 4004: one holder)")
            before_a = len(a.messages(ch))
            more = [await aapi_ok(n1, "publish", {"channel": ch, "data": {"i": i}})
                    for i in (3, 4)]
            try:
                await b.wait_until(lambda: more[-1]["offset"] in offsets_of(b, ch), D(5),
                                   "4..5 on B")
            except CheckFailed as e:
                problems.append(str(e))
            late = offsets_of(a, ch)[before_a:]
            if late:
                problems.append(f"A (n1) still received {late} after B took the session over")
            check(not problems, "; ".join(problems))
        finally:
            await stop_clients([a, b])

    # ============================================================= 3d. idempotency_across_nodes
    async def case_http_sessions_any_node(self):
        # protocol.md, "Behind a load balancer": the POSTs of an SSE or long-polling session
        # and the polls of a long-polling one may reach any node; the node that holds the
        # session runs them (relayed over the engine), so no sticky sessions are needed.
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        n1, n2, n3 = nodes
        ch = "room:anynode"
        stream = None
        try:
            # SSE: the stream on n1, its requests through n2 and n3.
            stream = await SseStream.open(n1, f"/sse?channel={ch}&user=carol", name="sse@n1",
                                          timeout=D(5))
            connected = await stream.opened(1, timeout=D(5))
            sid = connected.get("session")
            check(isinstance(sid, str) and sid, f"sse@n1: connected without a session: "
                  f"{short(connected)}")
            st, out = await ahttp(n2, "POST", f"/sse?session={sid}",
                                  {"type": "publish", "id": 1, "channel": ch, "data": "via-n2"})
            check(st == 200 and isinstance(out, dict) and out.get("type") == "published" and
                  out.get("id") == 1,
                  f"POST /sse to n2 for a session held on n1 → {st} {short(out)}, expected "
                  "the publish's reply, relayed from n1")
            await stream.expect(lambda j: j.get("type") == "message" and
                                j.get("data") == "via-n2", D(5), "the publication POSTed to n2")
            st, out = await ahttp(n3, "POST", "/sse", {"type": "presence", "id": 2,
                                                       "channel": ch},
                                  headers={"X-Switchboard-Session": sid})
            users = {c.get("user") for c in (out or {}).get("clients", [])} \
                if isinstance(out, dict) else set()
            check(st == 200 and "carol" in users,
                  f"POST /sse presence to n3 for the n1 session → {st} {short(out)}, expected "
                  "a presence reply listing carol")
            # A subscribe relayed from n3 takes effect on n1's stream.
            ch2 = "room:anynode2"
            st, out = await ahttp(n3, "POST", f"/sse?session={sid}",
                                  {"type": "subscribe", "id": 3, "channel": ch2})
            check(st == 200 and isinstance(out, dict) and out.get("type") == "subscribed",
                  f"POST /sse subscribe to n3 → {st} {short(out)}")
            await aapi_ok(n2, "publish", {"channel": ch2, "data": "on-ch2"})
            await stream.expect(lambda j: j.get("type") == "message" and
                                j.get("channel") == ch2, D(5), f"a publication on {ch2}")

            # Long-polling: the session opens on n2, its polls and POSTs go to n1 and n3.
            st, first = await ahttp(n2, "GET", f"/poll?channel={ch}&user=dave")
            check(st == 200 and isinstance(first, dict) and first.get("seq") == 1,
                  f"GET /poll on n2 → {st} {short(first)}")
            psid = next((e.get("session") for e in first.get("events", [])
                         if e.get("type") == "connected"), None)
            check(psid, f"the first batch has no connected event: {short(first)}")
            await aapi_ok(n3, "publish", {"channel": ch, "data": "poll-1"})
            got = []
            seq = 1
            deadline = Deadline(D(10))
            while "poll-1" not in got and not deadline.expired():
                st, b = await ahttp(n3, "GET", f"/poll?session={psid}&ack={seq}&wait=2",
                                    timeout=D(10))
                check(st == 200 and isinstance(b, dict),
                      f"GET /poll on n3 for the session on n2 → {st} {short(b)}, expected a "
                      "batch relayed from n2")
                seq = b.get("seq") or seq
                got += [e.get("data") for e in b.get("events", []) if e.get("type") == "message"]
            check("poll-1" in got, f"polls through n3 got {got}, expected poll-1")
            # A poll that waits on n2 (asked through n1) is answered when a publication comes.
            waiting = asyncio.ensure_future(
                ahttp(n1, "GET", f"/poll?session={psid}&ack={seq}&wait=20", timeout=D(25)))
            await asyncio.sleep(0.3)  # let the poll park on n2 first
            check(not waiting.done(), f"a poll through n1 with nothing to get answered at once: "
                  f"{short(waiting.result() if waiting.done() else None)}")
            st, out = await ahttp(n1, "POST", f"/poll?session={psid}",
                                  {"type": "publish", "id": 7, "channel": ch, "data": "poll-2"})
            check(st == 200 and isinstance(out, dict) and out.get("type") == "published",
                  f"POST /poll to n1 for the session on n2 → {st} {short(out)}")
            st, b = await asyncio.wait_for(waiting, D(10))
            data = [e.get("data") for e in (b or {}).get("events", [])
                    if e.get("type") == "message"] if isinstance(b, dict) else []
            check(st == 200 and data == ["poll-2"],
                  f"the poll waiting through n1 → {st} {short(b)}, expected poll-2 only")
            seq = b.get("seq") or seq
            # A batch bigger than one engine message (relayed in pieces): 48 × 16 KiB.
            big = [f"{i:03d}" + "x" * 16_000 for i in range(48)]
            for d in big:
                await aapi_ok(n2, "publish", {"channel": ch, "data": d})
            got = []
            deadline = Deadline(D(10))
            while len(got) < len(big) and not deadline.expired():
                st, b = await ahttp(n3, "GET", f"/poll?session={psid}&ack={seq}&wait=2",
                                    timeout=D(10))
                check(st == 200 and isinstance(b, dict), f"GET /poll on n3 → {st} {short(b)}")
                seq = b.get("seq") or seq
                got += [e.get("data") for e in b.get("events", []) if e.get("type") == "message"]
            check(got == big, f"the big batch through n3: {len(got)} of {len(big)} in order "
                  f"({[g[:3] for g in got][:60]})")

            # Sessions no node holds: the same answers as on one node.
            st, out = await ahttp(n2, "POST", "/sse?session=s_" + "0" * 32,
                                  {"type": "ping", "id": 1})
            check(st == 404, f"POST /sse for an unknown session → {st} {short(out)}, want 404")
            st, out = await ahttp(n1, "GET", "/poll?session=s_" + "0" * 32 + "&ack=1&wait=1")
            check(st == 410, f"GET /poll for an unknown session → {st} {short(out)}, want 410")

            # The holder dies: a relayed request is answered 504 within the relay's wait.
            if not SELFTEST:
                n1.kill9()
                t0 = time.monotonic()
                st, out = await ahttp(n2, "POST", f"/sse?session={sid}",
                                      {"type": "ping", "id": 9}, timeout=D(20))
                took = time.monotonic() - t0
                check(st in (404, 410, 504),
                      f"POST /sse for the session of a node killed with -9 → {st} "
                      f"{short(out)} after {took:.1f}s, expected 504 (or 404/410 once the "
                      "session record names no holder)")
                self.rep.note(f"relay to a dead node: {st} after {took:.1f}s")
        finally:
            if stream is not None:
                await stream.close()

    async def case_idempotency_across_nodes(self):
        # protocol.md, publish: a second publish with the same idempotency_key to the same
        # channel within the window is not published again (the HTTP API shares the keys).
        # A retry through a balancer lands on any node.
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        ch = "room:idem"
        c = sub = None
        try:
            sub = await open_client(nodes[2], "sub@n3", user="s")
            await sub.subscribe(ch, timeout=D(5))
            first = await aapi_ok(nodes[0], "publish", {"channel": ch, "data": "once",
                                                        "idempotency_key": "k-1"})
            again = await aapi_ok(nodes[1], "publish", {"channel": ch, "data": "once",
                                                        "idempotency_key": "k-1"})
            c = await open_client(nodes[2], "pub@n3", user="p")
            ws = await c.request({"type": "publish", "channel": ch, "data": "once",
                                  "idempotency_key": "k-1"}, D(5))
            problems = []
            for where, rr in (("/api/publish on n2", again), ("client publish on n3", ws)):
                if rr.get("duplicate") is not True or rr.get("offset") != first["offset"] or \
                        rr.get("epoch") != first["epoch"]:
                    problems.append(f"{where} with the key n1 used → {short(rr)}, expected "
                                    f"duplicate:true at {first['epoch']}/{first['offset']}")
            fence = await aapi_ok(nodes[1], "publish", {"channel": ch, "data": "fence"})
            await sub.wait_until(lambda: fence["offset"] in offsets_of(sub, ch), D(5),
                                 "the fence on the subscriber (n3)")
            got = [(m.get("offset"), m.get("data")) for m in sub.messages(ch)]
            if got != [(first["offset"], "once"), (fence["offset"], "fence")]:
                problems.append(f"the subscriber received {got}: the keyed publication more "
                                "than once")
            check(not problems, "; ".join(problems))
        finally:
            await stop_clients([c, sub])

    # ==================================================================== 3e. channels_spread
    async def case_channels_spread(self):
        # 24 channels (spread over each node's subscriptions: redis_subscribers pub/sub
        # connections with redis): one subscriber per channel on every node, publications
        # from every node.
        _, nodes = self.cluster(3)
        await self.wait_formed(nodes)
        chans = [f"room:spread{i}" for i in range(24)]
        subs: list[Client] = []
        try:
            for ni, n in enumerate(nodes):
                c = await open_client(n, f"spread@n{ni + 1}", user=f"sp{ni}")
                for ch in chans:
                    await c.subscribe(ch, timeout=D(5))
                subs.append(c)
            published: dict[str, list] = {ch: [] for ch in chans}
            pubs = [Publisher(n, timeout=D(5)) for n in nodes]
            try:
                for k in range(4):
                    for i, ch in enumerate(chans):
                        status, out = await asyncio.to_thread(
                            pubs[(i + k) % 3].publish, ch, {"ch": i, "k": k})
                        check(status == 200, f"/api/publish {ch} → {status} {short(out)}")
                        published[ch].append((out["epoch"], out["offset"], {"ch": i, "k": k}))
            finally:
                for p in pubs:
                    p.close()
            total = sum(len(v) for v in published.values())
            for c in subs:
                await c.wait_until(lambda c=c: len(c.messages()) >= total, D(15),
                                   f"{total} publications over {len(chans)} channels")
            problems = []
            for c in subs:
                for ch in chans:
                    got = [(m.get("epoch"), m.get("offset"), m.get("data"))
                           for m in c.messages(ch)]
                    if got != published[ch]:
                        problems.append(f"{c.name} {ch}: {short(got, 200)}, expected "
                                        f"{short(published[ch], 200)}")
                extra = len(c.messages()) - total
                if extra:
                    problems.append(f"{c.name}: {extra} message(s) more than published")
            check(not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:6]))
        finally:
            await stop_clients(subs)

    # ============================================================= 3f. resume_after_node_death
    async def case_resume_after_node_death(self):
        # at_least_once: a client subscribes before the channel's first publication, receives
        # 1..3 and acks nothing; its node is killed with -9 (nothing is written on its behalf
        # any more). Its session resumed on another node gets 1..3 (recovered:true: the
        # history holds them), then what follows.
        _, nodes = self.cluster(2)
        await self.wait_formed(nodes)
        n1, n2 = nodes
        ch = "jobs:orphan"
        a = b = None
        try:
            a = await open_client(n1, "A@n1", user="worker")
            await a.subscribe(ch, timeout=D(5))
            pubs = [await aapi_ok(n2, "publish", {"channel": ch, "data": {"i": i}})
                    for i in range(3)]
            await a.wait_until(lambda: len(a.messages(ch)) >= 3, D(5), "1..3 on A (n1)")
            await asyncio.to_thread(n1.kill9)
            a.abort(rst=True)
            b = await Client.open(n2, "B@n2", timeout=D(5))
            r = await b.request({"type": "connect", "user": "worker", "session": a.session},
                                D(5))
            entry = [x for x in r.get("channels", []) if x.get("channel") == ch]
            check(r.get("type") == "connected" and r.get("resumed") is True and entry and
                  entry[0].get("recovered") is True and
                  entry[0].get("epoch") == pubs[0]["epoch"],
                  f"B: connect on n2 with the session of A (n1 killed, nothing acked) → "
                  f"{short(r)}, expected resumed:true and {ch} recovered:true at epoch "
                  f"{pubs[0]['epoch']} (the history holds 1..3)")
            more = await aapi_ok(n2, "publish", {"channel": ch, "data": {"i": 3}})
            await b.wait_until(lambda: more["offset"] in offsets_of(b, ch), D(5),
                               f"offset {more['offset']} on B (n2)")
            err = stream_report(offsets_of(b, ch), range(1, more["offset"] + 1))
            check(err is None, f"B on n2 after n1 died with A's un-acked 1..3: {err}")
        finally:
            await stop_clients([a, b])

    # ==================================================================== 4. kill9_under_load
    async def case_kill9_under_load(self):
        _, nodes = self.cluster(3)
        n1, n2, n3 = nodes
        await self.wait_formed(nodes)
        hp = self.haproxy(nodes)
        await asyncio.to_thread(hp.wait_states, {"n1": "UP", "n2": "UP", "n3": "UP"}, D(10))
        ch = "jobs:load"
        n_clients = 30
        rate = 200 if SLOW == 1 else 100
        total = rate * 4
        kill_at = int(total * 0.4)
        watcher = None
        loads: list[LoadClient] = []
        try:
            watcher = await open_client(n3, "watcher@n3", user="watcher")
            watcher.store_messages = False
            await watcher.subscribe(ch, timeout=D(5))
            for i in range(n_clients):
                lc = LoadClient(hp, f"L{i:02d}", ch)
                await lc.start()
                loads.append(lc)
            # Spread: leastconn over 3 nodes; the victim must hold some of them.
            spread = {}
            for n in nodes:
                spread[n.short] = (await asyncio.to_thread(n.info)).get("connections")
            print(f"NOTE       WebSockets per node before the kill (watcher on n3): {spread}",
                  flush=True)
            victim_conns = spread["n2"]
            check(isinstance(victim_conns, int) and victim_conns >= 3,
                  f"HAProxy spread {spread}: n2 should hold several of the {n_clients} clients")

            async def everyone_present():
                status, out = await aapi(n1, "presence", {"channel": ch})
                return status == 200 and len(presence_ids(out)) == n_clients + 1, out
            await poll(everyone_present, D(5), f"{n_clients + 1} entries in presence on n1")

            loop = asyncio.get_running_loop()
            kill_evt = asyncio.Event()
            results: dict[int, tuple] = {}

            def publish_loop():
                p = Publisher(n1, timeout=D(5))
                t0 = time.monotonic()
                try:
                    for i in range(total):
                        lag = t0 + i / rate - time.monotonic()
                        if lag > 0:
                            time.sleep(lag)  # pacing the publisher to `rate`, not a wait
                        try:
                            results[i] = p.publish(ch, {"i": i})
                        except OSError as e:
                            results[i] = (0, repr(e))
                        if i == kill_at:
                            loop.call_soon_threadsafe(kill_evt.set)
                finally:
                    p.close()
            pub_task = asyncio.ensure_future(asyncio.to_thread(publish_loop))
            await asyncio.wait_for(kill_evt.wait(), D(30))
            t_kill = time.monotonic()
            await asyncio.to_thread(n2.kill9)
            print(f"NOTE       killed n2 (pid {n2.pid}) with -9 after publication #{kill_at}",
                  flush=True)

            problems = []

            async def down_in_haproxy():
                st = await asyncio.to_thread(hp.states)
                return st.get("n2", "").startswith("DOWN"), st
            try:
                await poll(down_in_haproxy, D(4), "HAProxy to mark n2 DOWN")
                print(f"NOTE       HAProxy marked n2 DOWN {time.monotonic() - t_kill:.2f}s "
                      "after the kill", flush=True)
            except CheckFailed as e:
                problems.append(str(e))

            # Which clients were on n2: those whose connection dropped.
            async def drops_seen():
                dropped = [lc for lc in loads if lc.drops]
                return len(dropped) >= victim_conns, len(dropped)
            try:
                await poll(drops_seen, D(5), f"{victim_conns} clients (n2's) to see their "
                           "connection drop")
            except CheckFailed as e:
                problems.append(str(e))
            victims = [lc for lc in loads if lc.drops]
            victim_ids = {lc.ids[0] for lc in victims}
            print(f"NOTE       {len(victims)} client(s) dropped: "
                  f"{sorted(lc.name for lc in victims)}", flush=True)
            limit = NODE_TTL_S + SWEEP_S + 2.0 * SLOW

            async def victims_gone():
                left = {}
                for n in (n1, n3):
                    status, out = await aapi(n, "presence", {"channel": ch})
                    left[n.short] = sorted(victim_ids & presence_ids(out)) if status == 200 \
                        else status
                return all(v == [] for v in left.values()), left

            async def leaves_seen():
                got = {m.get("client") for m in watcher.all if m.get("type") == "leave"}
                return victim_ids <= got, sorted(victim_ids - got)

            async def cluster_shrinks():
                views = {}
                for n in (n1, n3):
                    e = (await asyncio.to_thread(n.info)).get("engine", {})
                    views[n.short] = sorted(x.get("name") for x in e.get("nodes", []))
                return all(v == ["n1", "n3"] for v in views.values()), views
            for what, fn in (("the dead node's clients to leave presence on n1 and n3",
                              victims_gone),
                             ("leave events for them on the watcher (n3)", leaves_seen),
                             ("n1 and n3 to list only [n1, n3] in engine.nodes",
                              cluster_shrinks)):
                remaining = max(0.1, limit - (time.monotonic() - t_kill))
                try:
                    await poll(fn, remaining, f"{what} by {limit:.1f}s after the kill "
                               f"(node_ttl {NODE_TTL_S}s + sweep {SWEEP_S:.0f}s + margin)",
                               period=0.1)
                    print(f"NOTE       {what}: {time.monotonic() - t_kill:.2f}s after the "
                          "kill", flush=True)
                except CheckFailed as e:
                    problems.append(str(e))
            m = await ametrics(n1)
            if m.get("switchboard_cluster_nodes") != 2:
                problems.append(f"n1: switchboard_cluster_nodes = "
                                f"{m.get('switchboard_cluster_nodes')} after n2 died, "
                                "expected 2")

            await asyncio.wait_for(pub_task, D(60))
            bad = {i: v for i, v in results.items() if v[0] != 200}
            check(not bad, f"/api/publish to n1 (alive) failed {len(bad)} time(s): "
                  f"{short(list(bad.items())[:3])}")
            pubs = {v[1]["offset"]: (v[1]["epoch"], {"i": i}) for i, v in results.items()}
            top = max(pubs)
            check(sorted(pubs) == list(range(1, total + 1)),
                  f"publish replies' offsets are not 1..{total}: {compress(sorted(pubs))}")
            epochs = {e for e, _ in pubs.values()}

            async def all_complete():
                behind = {lc.name: lc.contiguous for lc in loads if lc.contiguous < top}
                return not behind, behind
            try:
                await poll(all_complete, D(30), f"every client to hold 1..{top}", period=0.1)
            except CheckFailed as e:
                problems.append(str(e))
            for lc in loads:
                lc.stopping = True

            # ---- per-client verdicts
            raw = sum(lc.raw for lc in loads)
            dups = sum(lc.dups for lc in loads)
            print(f"NOTE       {total} publications × {n_clients} clients: {raw} messages "
                  f"received, {dups} raw duplicate(s) (dropped clients: "
                  f"{sum(lc.dups for lc in victims)}), reconnects "
                  f"{sum(lc.reconnects for lc in loads)}, resumed:false "
                  f"{sum(lc.resumed_false for lc in loads)}", flush=True)
            for lc in loads:
                missing = sorted(set(range(1, top + 1)) - set(lc.first))
                if missing:
                    problems.append(f"{lc.name} ({'dropped' if lc.drops else 'kept'}): "
                                    f"missing {len(missing)}: {compress(missing)}")
                if lc.order_errors:
                    problems.append(f"{lc.name}: out of order: {lc.order_errors[:3]}")
                wrong = [o for o, d in lc.first.items()
                         if o in pubs and (lc.first_epoch[o], d) != pubs[o]]
                if wrong:
                    problems.append(f"{lc.name}: offsets {compress(sorted(wrong))} carry "
                                    f"other data/epoch than published")
                if lc.mismatched_dups:
                    problems.append(f"{lc.name}: duplicates with different content: "
                                    f"{lc.mismatched_dups[:3]}")
                if lc.errors:
                    problems.append(f"{lc.name}: {lc.errors[:3]}")
                if lc.recovered_false:
                    problems.append(f"{lc.name}: recovered:false {lc.recovered_false} although "
                                    "the history (20000) covers every publication")
                if lc.resumed_false:
                    problems.append(f"{lc.name}: resumed:false {lc.resumed_false} time(s): "
                                    f"its session (kept in {BROKER}) was not found by "
                                    "another node")
                if lc.gaps:
                    problems.append(f"{lc.name}: gap:true at offsets {lc.gaps[:5]}")
            msg_epochs = {e for lc in loads for e in lc.first_epoch.values()}
            if len(epochs | msg_epochs) != 1:
                problems.append(f"several epochs: publishes {epochs}, messages {msg_epochs}")
            kept = [lc.name for lc in loads if lc.drops and lc not in victims]
            if len(victims) > victim_conns or kept:
                problems.append(f"{len(victims)} clients dropped; n2 held {victim_conns}: "
                                "clients on surviving nodes were disconnected")
            twice = [lc.name for lc in loads if lc.drops > 1]
            if twice:
                problems.append(f"clients dropped more than once: {twice}")

            # Final presence: the same on both survivors, every client's current connection.
            current = {lc.c.client_id for lc in loads if lc.c is not None} | \
                {watcher.client_id}

            async def final_presence():
                views = {}
                for n in (n1, n3):
                    status, out = await aapi(n, "presence", {"channel": ch})
                    views[n.short] = sorted(presence_ids(out)) if status == 200 else status
                return all(v == sorted(current) for v in views.values()), views
            try:
                await poll(final_presence, D(5), "presence on n1 and n3 = the clients' current "
                           "connections")
            except CheckFailed as e:
                problems.append(str(e))
            check(not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:12]))
        finally:
            for lc in loads:
                lc.stopping = True
            await asyncio.gather(*[lc.stop() for lc in loads], return_exceptions=True)
            await stop_clients([watcher])

    # ====================================================================== 5. broker_restart
    async def case_broker_restart(self):
        r, nodes = self.cluster(2)
        n1, n2 = nodes
        await self.wait_formed(nodes)
        # Several channels: a node spreads them over its subscriptions (redis_subscribers
        # pub/sub connections), and every one of those must subscribe again after the restart.
        chans = [f"room:rr{i}" for i in range(8)]
        live = w = fresh = None
        try:
            live = await open_client(n2, "live@n2", user="live")
            for ch in chans:
                await live.subscribe(ch, timeout=D(5))
            w = await open_client(n1, "wspub@n1", user="wspub")
            e1 = {}
            for ch in chans:
                for i in range(5 if ch == chans[0] else 1):
                    out = await aapi_ok(n1, "publish", {"channel": ch, "data": {"b": i}})
                    e1[ch] = out["epoch"]
            await live.wait_until(lambda: 5 in offsets_of(live, chans[0]) and
                                  all(offsets_of(live, ch) for ch in chans), D(5),
                                  "the publications before the restart on live (n2)")
            seen_before = {ch: len(live.messages(ch)) for ch in chans}

            t_stop = time.monotonic()
            await asyncio.to_thread(r.stop)
            problems = []

            async def not_ready():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                ok = all(s == 503 and b.startswith("not ready") for s, b in views.values())
                return ok, views
            await poll(not_ready, D(2 + 4), "/readyz 503 \"not ready…\" on both nodes after "
                       f"{BROKER} stopped")
            print(f"NOTE       /readyz 503 on both {time.monotonic() - t_stop:.2f}s after "
                  f"{BROKER} stopped", flush=True)
            for n in nodes:
                s_, b_ = await aget(n, "/healthz")
                if s_ != 200:
                    problems.append(f"{n.short}: /healthz while {BROKER} is down → {s_} {b_!r}, "
                                    "expected 200 (the process is alive)")
            ch = chans[0]
            t_pub = time.monotonic()
            status, out = await aapi(n1, "publish", {"channel": ch, "data": "during"})
            print(f"NOTE       /api/publish while {BROKER} is down → {status} after "
                  f"{time.monotonic() - t_pub:.2f}s", flush=True)
            if status != 503 or not isinstance(out, dict) or out.get("error") != "unavailable":
                problems.append(f"/api/publish while {BROKER} is down → {status} {short(out)}, "
                                "expected 503 {\"error\":\"unavailable\"}")
            rq = await w.request({"type": "publish", "channel": ch, "data": "during"}, D(10))
            if rq.get("type") != "error" or rq.get("code") != "unavailable":
                problems.append(f"client publish while {BROKER} is down → {short(rq)}, expected "
                                "error unavailable")
            for c in (w, live):
                try:
                    await c.ping_ok(D(5))
                except CheckFailed as e:
                    problems.append(f"connection not kept while {BROKER} is down: {e}")
            info = await asyncio.to_thread(n1.info)
            if (info.get("engine") or {}).get("available") is not False:
                problems.append(f"n1 /api/info engine while {BROKER} is down: "
                                f"{short(info.get('engine'))}, expected available:false")
            m = await ametrics(n1)
            if m.get("switchboard_engine_available") != 0:
                problems.append(f"n1: switchboard_engine_available = "
                                f"{m.get('switchboard_engine_available')} while {BROKER} is down")

            print(f"NOTE       {BROKER} down for {time.monotonic() - t_stop:.2f}s before the "
                  "restart", flush=True)
            t_start = time.monotonic()
            await asyncio.to_thread(r.start, True)   # same port, empty (nats: store wiped)

            async def ready_again():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                return all(s == 200 for s, _ in views.values()), views
            await poll(ready_again, D(15), f"/readyz 200 on both nodes after {BROKER} came back")
            took = time.monotonic() - t_start
            print(f"NOTE       ready again {took:.2f}s after {BROKER} restarted", flush=True)
            if took > 5.0 + (5.0 if SLOW > 1 else 0.0):
                problems.append(f"ready again only {took:.1f}s after {BROKER} came back "
                                "(contract: "
                                "well under 5 s)")
            after: dict[str, list] = {c: [] for c in chans}
            took_pub = time.monotonic()
            for i, c in enumerate(chans):
                for k in range(3 if c == ch else 1):
                    status, out = await aapi(nodes[i % 2], "publish",
                                             {"channel": c, "data": {"a": k}})
                    if status != 200:
                        problems.append(f"/api/publish {c} after /readyz turned 200 → {status} "
                                        f"{short(out)}")
                        break
                    after[c].append(out)
            rq = await w.request({"type": "publish", "channel": ch, "data": {"a": "ws"}}, D(5))
            if rq.get("type") != "published":
                problems.append(f"client publish after recovery → {short(rq)}")
            else:
                after[ch].append(rq)
            check(after[ch], "; ".join(problems) or "no publication succeeded after recovery")
            e2 = after[ch][0]["epoch"]
            same = [c for c in chans if after[c] and after[c][0]["epoch"] == e1[c]]
            if same:
                problems.append(f"{BROKER} came back empty but {same} kept their epochs")
            t_live = time.monotonic()
            try:
                await live.wait_until(
                    lambda: all(len(live.messages(c)) >= seen_before[c] + len(after[c])
                                for c in chans), D(10),
                    "every publication after the restart on live (n2)")
                print(f"NOTE       publishing after the restart took {t_live - took_pub:.2f}s; "
                      f"the live subscriber held them all {time.monotonic() - t_live:.2f}s "
                      "later", flush=True)
            except CheckFailed as e:
                problems.append(str(e))
            for c in chans:
                got = live.messages(c)[seen_before[c]:]
                want = [(a["epoch"], a["offset"]) for a in after[c]]
                if got and (got[0].get("gap") is not True or
                            got[0].get("epoch") != want[0][0]):
                    problems.append(f"{c}: live subscriber's first message after the restart: "
                                    f"{short(got[0])}, expected gap:true, epoch {want[0][0]}")
                if [(m.get("epoch"), m.get("offset")) for m in got] != want:
                    problems.append(f"{c}: live subscriber after the restart got "
                                    f"{[(m.get('epoch'), m.get('offset')) for m in got]}, "
                                    f"expected {want}")
            # An old position: never a silent hole.
            fresh = await open_client(n1, "old-position@n1", user="old")
            sub = await fresh.request({"type": "subscribe", "channel": ch,
                                       "since": {"epoch": e1[ch], "offset": 5}}, D(5))
            if sub.get("type") != "subscribed" or sub.get("recovered") is not False or \
                    sub.get("epoch") != e2:
                problems.append(f"subscribe with the old position {{{e1[ch]}, 5}} → "
                                f"{short(sub)}, expected recovered:false and epoch {e2}")
            info = await asyncio.to_thread(n2.info)
            if (info.get("engine") or {}).get("available") is not True:
                problems.append(f"n2 engine after recovery: {short(info.get('engine'))}")
            check(not problems, "; ".join(problems[:10]))
        finally:
            await stop_clients([live, w, fresh])

    # ======================================================== 5a. broker_restart_keeps_store
    async def case_broker_restart_keeps_store(self):
        # NATS dies (kill -9: a crash; broker_restart stops it with SIGTERM) and comes back on
        # the same port with its JetStream store: the
        # channels keep their epochs and history, sessions survive; nothing published before
        # the stop may be lost, nothing may arrive twice, and every client is either made
        # whole (recovered:true) or told (gap:true / recovered:false: a failure here, as the
        # store holds everything).
        r, nodes = self.cluster(2)
        n1, n2 = nodes
        await self.wait_formed(nodes)
        room, jobs = "room:keep", "jobs:keep"
        live = away = back = fresh = None
        try:
            live = await open_client(n2, "live@n2", user="live")
            for ch in (room, jobs):
                await live.subscribe(ch, timeout=D(5))
            away = await open_client(n1, "away@n1", user="away")
            await away.subscribe(jobs, timeout=D(5))
            before: dict[str, list] = {room: [], jobs: []}
            for i in range(5):
                for ch in (room, jobs):
                    before[ch].append(await aapi_ok(nodes[i % 2], "publish",
                                                    {"channel": ch, "data": {"b": i}}))
            e1 = {ch: before[ch][0]["epoch"] for ch in (room, jobs)}
            await live.wait_until(lambda: len(live.messages(room)) >= 5 and
                                  len(live.messages(jobs)) >= 5, D(5),
                                  "the 5 + 5 publications before the restart on live (n2)")
            await away.wait_until(lambda: len(away.messages(jobs)) >= 5, D(5),
                                  "1..5 on away (n1)")
            rq = await away.request({"type": "ack", "id": "a2", "channel": jobs, "offset": 2},
                                    D(5))
            check(rq.get("type") == "acked", f"away: ack 2 → {short(rq)}")
            sid = away.session
            await away.close()

            async def away_gone():
                status, out = await aapi(n2, "presence", {"channel": jobs})
                return status == 200 and away.client_id not in presence_ids(out), out
            await poll(away_gone, D(5), f"{away.client_id} to leave presence on n2")
            for i in range(5, 8):   # jobs 6..8 while away is away
                before[jobs].append(await aapi_ok(n1, "publish",
                                                  {"channel": jobs, "data": {"b": i}}))
            await live.wait_until(lambda: len(live.messages(jobs)) >= 8, D(5),
                                  "jobs 1..8 on live (n2)")
            seen_before = {ch: len(live.messages(ch)) for ch in (room, jobs)}
            problems = []

            t_stop = time.monotonic()
            await asyncio.to_thread(r.stop, signal.SIGKILL)

            async def not_ready():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                return all(s_ == 503 for s_, _ in views.values()), views
            await poll(not_ready, D(2 + 4), "/readyz 503 on both nodes after NATS was killed")
            print(f"NOTE       /readyz 503 on both {time.monotonic() - t_stop:.2f}s after NATS "
                  "was killed (-9)", flush=True)
            status, out = await aapi(n1, "publish", {"channel": room, "data": "during"})
            if status != 503 or not isinstance(out, dict) or out.get("error") != "unavailable":
                problems.append(f"/api/publish while NATS is down → {status} {short(out)}, "
                                "expected 503 unavailable")
            try:
                await live.ping_ok(D(5))
            except CheckFailed as e:
                problems.append(f"connection not kept while NATS is down: {e}")

            t_start = time.monotonic()
            await asyncio.to_thread(r.start, False)   # same port, same store

            async def ready_again():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                return all(s_ == 200 for s_, _ in views.values()), views
            await poll(ready_again, D(15), "/readyz 200 on both nodes after NATS came back")
            took = time.monotonic() - t_start
            print(f"NOTE       ready again {took:.2f}s after NATS restarted with its store",
                  flush=True)
            if took > 5.0 + (5.0 if SLOW > 1 else 0.0):
                problems.append(f"ready again only {took:.1f}s after NATS came back (contract: "
                                "well under 5 s)")
            after: dict[str, list] = {room: [], jobs: []}
            for i in range(2):
                for ch in (room, jobs):
                    status, out = await aapi(nodes[i % 2], "publish",
                                             {"channel": ch, "data": {"a": i}})
                    if status != 200:
                        problems.append(f"/api/publish {ch} after /readyz turned 200 → "
                                        f"{status} {short(out)}")
                        continue
                    after[ch].append(out)
            check(after[room] and after[jobs], "; ".join(problems) or
                  "no publication succeeded after the restart")
            for ch in (room, jobs):
                want = [(e1[ch], before[ch][-1]["offset"] + 1 + k) for k in range(len(after[ch]))]
                got = [(a["epoch"], a["offset"]) for a in after[ch]]
                if got != want:
                    problems.append(f"{ch}: publications after the restart with the store at "
                                    f"{got}, expected the same epoch and the next offsets "
                                    f"{want} (the store kept the channel)")
            # The live subscriber (n2): every later publication, no hole, nothing twice.
            try:
                await live.wait_until(
                    lambda: all(len(live.messages(ch)) >= seen_before[ch] + len(after[ch])
                                for ch in (room, jobs)), D(10),
                    "every publication after the restart on live (n2)")
            except CheckFailed as e:
                problems.append(str(e))
            gaps = []
            for ch in (room, jobs):
                full = [(m.get("epoch"), m.get("offset")) for m in live.messages(ch)]
                want = [(p["epoch"], p["offset"]) for p in before[ch] + after[ch]]
                if full != want:
                    problems.append(f"{ch}: live subscriber (n2) holds {full}, expected exactly "
                                    f"{want}")
                gaps += [(ch, m.get("offset")) for m in live.messages(ch)[seen_before[ch]:]
                         if m.get("gap")]
            if gaps:   # allowed (the node may not know), but nothing was lost: say so
                print(f"NOTE       live subscriber: gap:true after the restart although the "
                      f"store kept everything: {gaps}", flush=True)
            # An old position (after 2 of room) on n1: recovered, exactly 3..top.
            fresh = await open_client(n1, "old-position@n1", user="old")
            sub = await fresh.request({"type": "subscribe", "channel": room,
                                       "since": {"epoch": e1[room], "offset": 2}}, D(5))
            top = after[room][-1]["offset"]
            if sub.get("type") != "subscribed" or sub.get("recovered") is not True or \
                    sub.get("epoch") != e1[room] or sub.get("offset") != top:
                problems.append(f"subscribe {room} since {{{e1[room]}, 2}} after the restart → "
                                f"{short(sub)}, expected recovered:true at {e1[room]}/{top}")
            else:
                try:
                    await fresh.wait_until(lambda: top in offsets_of(fresh, room), D(5),
                                           f"the replay 3..{top} on old-position (n1)")
                except CheckFailed as e:
                    problems.append(str(e))
                if offsets_of(fresh, room) != list(range(3, top + 1)):
                    problems.append(f"old position since 2: received {offsets_of(fresh, room)}"
                                    f", expected {list(range(3, top + 1))}")
            # The session that left before the restart resumes on n2: its channel back,
            # recovered, every un-acked and missed publication (3..8, then 9..).
            back = await Client.open(n2, "away-back@n2", timeout=D(5))
            rc = await back.request({"type": "connect", "user": "away", "session": sid}, D(5))
            jtop = after[jobs][-1]["offset"]
            entry = [x for x in rc.get("channels", []) if x.get("channel") == jobs]
            if rc.get("type") != "connected" or rc.get("resumed") is not True:
                problems.append(f"resume of the session after the restart with the store → "
                                f"{short(rc)}, expected resumed:true (sessions are kept in "
                                "JetStream)")
            elif not entry or entry[0].get("recovered") is not True or \
                    entry[0].get("epoch") != e1[jobs]:
                problems.append(f"resumed session's channels {short(rc.get('channels'))}: "
                                f"expected {jobs} recovered:true epoch {e1[jobs]}")
            else:
                back.client_id = rc.get("client")
                try:
                    await back.wait_until(lambda: jtop in offsets_of(back, jobs), D(5),
                                          f"3..{jtop} on the resumed session (n2)")
                except CheckFailed as e:
                    problems.append(str(e))
                err = stream_report(offsets_of(back, jobs), range(3, jtop + 1))
                if err:
                    problems.append(f"resumed session (acked 2 before the restart): {err}")
            # History and presence agree on both nodes.
            views = {}
            for n in nodes:
                st, h = await aapi(n, "history", {"channel": room})
                views[n.short] = [(x.get("offset"), x.get("data"))
                                  for x in (h or {}).get("publications", [])] \
                    if st == 200 and isinstance(h, dict) else (st, h)
            want_h = [(i + 1, {"b": i}) for i in range(len(before[room]))] + \
                [(len(before[room]) + 1 + i, {"a": i}) for i in range(len(after[room]))]
            for k, v in views.items():
                if v != want_h:
                    problems.append(f"/api/history {room} on {k} after the restart: "
                                    f"{short(v, 300)}, expected {want_h}")
            want_p = sorted({live.client_id} | ({back.client_id} if back.client_id else set()))

            async def presence_agrees():
                pv = {}
                for n in nodes:
                    st, out = await aapi(n, "presence", {"channel": jobs})
                    pv[n.short] = sorted(presence_ids(out)) if st == 200 else st
                return all(v == want_p for v in pv.values()), pv
            try:
                await poll(presence_agrees, D(5), f"presence of {jobs} on both nodes = "
                           f"{want_p} (live, the resumed session)")
            except CheckFailed as e:
                problems.append(str(e))
            check(not problems, "; ".join(problems[:10]))
        finally:
            await stop_clients([live, away, back, fresh])

    # ======================================================================== 5b. broker_hang
    async def case_broker_hang(self):
        # The broker stops answering without closing anything (SIGSTOP: a hung server or a
        # network partition): only broker.redis_timeout / nats_timeout (2 s) can tell.
        # Publishes must fail with `unavailable` within about that, not hang; /readyz must
        # turn 503; after SIGCONT the node recovers, and a live subscriber never has a silent
        # hole.
        r, nodes = self.cluster(2)
        n1, n2 = nodes
        await self.wait_formed(nodes)
        ch = "room:hang"
        live = w = None
        timeout_s = 2.0
        try:
            live = await open_client(n2, "live@n2", user="live")
            await live.subscribe(ch, timeout=D(5))
            w = await open_client(n1, "wspub@n1", user="wspub")
            first = await aapi_ok(n1, "publish", {"channel": ch, "data": "before"})
            await live.wait_until(lambda: first["offset"] in offsets_of(live, ch), D(5),
                                  "the publication before the hang on live (n2)")
            problems = []
            t0 = time.monotonic()
            r.pause()

            # With no traffic at all, the node notices by itself (its heartbeat times out).
            async def not_ready():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                return all(s_ == 503 for s_, _ in views.values()), views
            try:
                await poll(not_ready, D(timeout_s + 1 + 3), "/readyz 503 on both nodes while "
                           f"{BROKER} hangs, with no request in flight (heartbeat 1 s + "
                           f"{ENGINE}_timeout 2 s + margin)", period=0.1)
                print(f"NOTE       /readyz 503 on both {time.monotonic() - t0:.2f}s into the "
                      "hang (no traffic)", flush=True)
            except CheckFailed as e:
                problems.append(str(e))
            t_pub = time.monotonic()
            status, out = await asyncio.to_thread(http_api, n1, "publish",
                                                  {"channel": ch, "data": "during"}, D(15))
            took = time.monotonic() - t_pub
            print(f"NOTE       /api/publish with {BROKER} hung → {status} {short(out)} after "
                  f"{took:.2f}s", flush=True)
            if status != 503 or not isinstance(out, dict) or out.get("error") != "unavailable":
                problems.append(f"/api/publish with {BROKER} hung → {status} {short(out)}, "
                                "expected 503 unavailable")
            if took > timeout_s + 1.5 * SLOW:
                problems.append(f"/api/publish with {BROKER} hung answered after {took:.1f}s "
                                f"({ENGINE}_timeout {timeout_s:.0f}s)")
            t_ws = time.monotonic()
            rq = await w.request({"type": "publish", "channel": ch, "data": "during"}, D(15))
            took = time.monotonic() - t_ws
            if rq.get("type") != "error" or rq.get("code") != "unavailable" or \
                    took > timeout_s + 1.5 * SLOW:
                problems.append(f"client publish with {BROKER} hung → {short(rq)} after "
                                f"{took:.1f}s, expected error unavailable within about "
                                f"{ENGINE}_timeout ({timeout_s:.0f}s)")
            for c in (w, live):
                try:
                    await c.ping_ok(D(5))
                except CheckFailed as e:
                    problems.append(f"connection not kept while {BROKER} hangs: {e}")
            t_cont = time.monotonic()
            r.resume()

            async def ready_again():
                views = {}
                for n in nodes:
                    views[n.short] = await aget(n, "/readyz")
                return all(s_ == 200 for s_, _ in views.values()), views
            await poll(ready_again, D(15), f"/readyz 200 on both nodes after {BROKER} resumed")
            took = time.monotonic() - t_cont
            print(f"NOTE       ready again {took:.2f}s after SIGCONT", flush=True)
            if took > 5.0 + (5.0 if SLOW > 1 else 0.0):
                problems.append(f"ready again only {took:.1f}s after {BROKER} resumed")
            after = []
            for i in range(3):
                status, out = await aapi(nodes[i % 2], "publish", {"channel": ch,
                                                                  "data": {"a": i}})
                if status != 200:
                    problems.append(f"/api/publish after /readyz turned 200 → {status} "
                                    f"{short(out)}")
                    break
                after.append(out)
            if after:
                await live.wait_until(lambda: after[-1]["offset"] in offsets_of(live, ch) or
                                      len(live.messages(ch)) > 1 + len(after) + 2, D(10),
                                      "the publications after the hang on live (n2)")
                got = live.messages(ch)
                prev = None
                for m in got:
                    pos = (m.get("epoch"), m.get("offset"))
                    if prev is not None and not m.get("gap") and \
                            (pos[0] != prev[0] or pos[1] != prev[1] + 1):
                        problems.append(f"live subscriber: silent hole/reorder {prev} → {pos} "
                                        f"without gap:true ({short(got)})")
                        break
                    prev = pos
                if [(a["epoch"], a["offset"]) for a in after] != \
                        [(m.get("epoch"), m.get("offset")) for m in got[-len(after):]]:
                    problems.append(f"live subscriber's last messages "
                                    f"{[(m.get('epoch'), m.get('offset')) for m in got]}, "
                                    f"expected to end with "
                                    f"{[(a['epoch'], a['offset']) for a in after]}")
            check(not problems, "; ".join(problems))
        finally:
            r.resume()
            await stop_clients([live, w])

    # ============================================================== 6. readyz_and_unavailable
    async def case_readyz_and_unavailable(self):
        port = free_port()   # nothing listens there (yet)
        n = self.node("solo", None, broker=False, flags=(
            "--broker-engine", ENGINE,
            "--redis-address" if ENGINE == "redis" else "--nats-url", self.unreachable(port),
            f"--{ENGINE}-prefix", self.prefix(), "--node-ttl", f"{NODE_TTL_S}s",
            "--node-name", "solo"))
        c = None
        try:
            problems = []
            s, b = await aget(n, "/healthz")
            if s != 200:
                problems.append(f"/healthz with {BROKER} unreachable → {s} {b!r}, expected 200")
            s, b = await aget(n, "/readyz")
            if s != 503 or not b.startswith("not ready"):
                problems.append(f"/readyz with {BROKER} unreachable → {s} {b!r}, expected 503 "
                                "\"not ready…\"")
            c = await open_client(n, "client", user="u")
            rq = await c.request({"type": "publish", "channel": "room:x", "data": 1}, D(10))
            if rq.get("type") != "error" or rq.get("code") != "unavailable":
                problems.append(f"client publish with {BROKER} unreachable → {short(rq)}, "
                                "expected error unavailable")
            status, out = await aapi(n, "publish", {"channel": "room:x", "data": 1})
            if status != 503 or not isinstance(out, dict) or out.get("error") != "unavailable":
                problems.append(f"/api/publish with {BROKER} unreachable → {status} "
                                f"{short(out)}, "
                                "expected 503 unavailable")
            await c.ping_ok(D(5))
            # Not in the contract: what else does while the engine is unavailable (a note).
            seen = []
            for req in ({"type": "subscribe", "channel": "room:x"},
                        {"type": "presence", "channel": "room:x"},
                        {"type": "history", "channel": "room:x"}):
                rr = await c.request(req, D(10))
                seen.append(f"{req['type']} → {rr.get('type')} {rr.get('code') or ''}".strip())
            print(f"NOTE       with {BROKER} unreachable: {'; '.join(seen)}", flush=True)
            info = await asyncio.to_thread(n.info)
            eng = info.get("engine") or {}
            if eng.get("name") != ENGINE or eng.get("available") is not False:
                problems.append(f"/api/info engine with {BROKER} unreachable: {short(eng)}")
            m = await ametrics(n)
            if m.get("switchboard_engine_available") != 0:
                problems.append(f"switchboard_engine_available = "
                                f"{m.get('switchboard_engine_available')}, expected 0")
            # A broker appears on that port: the node connects by itself.
            self.broker(port)
            t0 = time.monotonic()

            async def ready():
                s, b = await aget(n, "/readyz")
                return s == 200, (s, b)
            await poll(ready, D(15), f"/readyz 200 once a {BROKER} listens on the address")
            took = time.monotonic() - t0
            print(f"NOTE       ready {took:.2f}s after {BROKER} appeared", flush=True)
            if took > 5.0 + (5.0 if SLOW > 1 else 0.0):
                problems.append(f"ready only {took:.1f}s after {BROKER} appeared (expected well "
                                "under 5 s)")
            rq = await c.request({"type": "publish", "channel": "room:x", "data": 2}, D(5))
            if rq.get("type") != "published":
                problems.append(f"client publish on the same connection once ready → "
                                f"{short(rq)}")
            check(not problems, "; ".join(problems))
        finally:
            await stop_clients([c])

    # =============================================================== 7. haproxy_skips_unready
    async def case_haproxy_skips_unready(self):
        r = self.broker()
        n1 = self.node("n1", r.address)
        bad = self.node("n2", self.unreachable(free_port()))   # no broker there
        n3 = self.node("n3", r.address)
        await self.wait_formed([n1, n3])
        t0 = time.monotonic()
        hp = self.haproxy([n1, bad, n3])
        clients = []
        try:
            await asyncio.to_thread(hp.wait_states, {"n1": "UP", "n2": "DOWN", "n3": "UP"}, D(6))
            print(f"NOTE       HAProxy: n2 ({BROKER} unreachable) DOWN "
                  f"{time.monotonic() - t0:.2f}s "
                  f"after HAProxy started (check: {hp.server_rows()['n2'].get('check_status')} "
                  f"{hp.server_rows()['n2'].get('check_code')})", flush=True)
            ch = "room:hp"
            for i in range(12):
                c = await open_client(hp, f"via-hp{i}", user=f"h{i}")
                clients.append(c)
            for c in clients:
                rq = await c.request({"type": "publish", "channel": ch, "data": c.name}, D(5))
                check(rq.get("type") == "published",
                      f"{c.name} (through HAProxy) publish → {short(rq)}: HAProxy sent it to a "
                      "node that is not ready")
            bad_conns = (await asyncio.to_thread(bad.info)).get("connections")
            check(bad_conns == 0, f"n2 (not ready) holds {bad_conns} WebSocket(s) from HAProxy")
        finally:
            await stop_clients(clients)


# --------------------------------------------------------------------------------------------
# A client of kill9_under_load: connects through HAProxy, reconnects and resumes when its
# connection drops, records every message.


class LoadClient:
    def __init__(self, ep, name: str, ch: str):
        self.ep, self.name, self.ch = ep, name, ch
        self.c: Client | None = None
        self.session: str | None = None
        self.ids: list[str] = []            # client id of each connection
        self.first: dict[int, object] = {}  # offset → data of its first arrival
        self.first_epoch: dict[int, str] = {}
        self.contiguous = 0                 # 1..contiguous all received
        self.max_first = 0
        self.epoch: str | None = None
        self.raw = self.dups = self.drops = self.reconnects = self.resumed_false = 0
        self.order_errors: list = []
        self.mismatched_dups: list = []
        self.recovered_false: list = []
        self.gaps: list = []
        self.errors: list[str] = []
        self.acked = 0
        self.stopping = False
        self.task: asyncio.Task | None = None

    def on_message(self, m: dict):
        if m.get("type") != "message" or m.get("channel") != self.ch:
            return
        self.raw += 1
        o, data = m.get("offset"), m.get("data")
        self.epoch = m.get("epoch") or self.epoch
        if m.get("gap"):
            self.gaps.append(o)
        if o in self.first:
            self.dups += 1
            if self.first[o] != data or self.first_epoch[o] != m.get("epoch"):
                self.mismatched_dups.append((o, self.first[o], data))
            return
        if o < self.max_first:
            self.order_errors.append(f"offset {o} first arrived after {self.max_first}")
        self.first[o] = data
        self.first_epoch[o] = m.get("epoch")
        self.max_first = max(self.max_first, o)
        while self.contiguous + 1 in self.first:
            self.contiguous += 1
        if self.contiguous - self.acked >= 25 and self.c is not None:
            self.acked = self.contiguous
            c, upto = self.c, self.contiguous
            asyncio.get_running_loop().create_task(self._ack(c, upto))

    async def _ack(self, c: Client, upto: int):
        try:
            await c.send({"type": "ack", "channel": self.ch, "offset": upto})
        except Exception:  # noqa: BLE001 - a dropped connection; the resume replays from the
            pass           # last ack that arrived

    async def _open(self) -> Client:
        c = await Client.open(self.ep, self.name, timeout=D(5))
        c.store_messages = False
        c.on_message = self.on_message
        return c

    async def start(self):
        self.c = await self._open()
        await self.c.connect(user=self.name, timeout=D(5))
        self.session = self.c.session
        self.ids.append(self.c.client_id)
        await self.c.subscribe(self.ch, timeout=D(5))
        self.task = asyncio.ensure_future(self._watch())

    async def _watch(self):
        while not self.stopping:
            await self.c.closed.wait()
            if self.stopping:
                return
            self.drops += 1
            try:
                await self._reconnect()
            except Exception as e:  # noqa: BLE001 - recorded, the case reports it
                self.errors.append(f"reconnect failed: {e.__class__.__name__}: {e}")
                return

    async def _reconnect(self):
        deadline = Deadline(D(20))
        backoff = 0.05
        last = None
        while not self.stopping:
            if deadline.expired():
                raise CheckFailed(f"no reconnect through HAProxy within {D(20):.0f}s: {last}")
            try:
                c = await self._open()
            except Exception as e:  # noqa: BLE001 - HAProxy 503 / refused while it re-routes
                last = repr(e)
                await asyncio.sleep(backoff)  # reconnect backoff
                backoff = min(0.5, backoff * 2)
                continue
            self.reconnects += 1
            self.c = c
            try:
                r = await c.request({"type": "connect", "user": self.name,
                                     "session": self.session}, D(5))
            except CheckFailed as e:
                if not c.closed.is_set():
                    raise
                # Routed to a node that went away in between: once more.
                last = str(e)
                await c.stop()
                await asyncio.sleep(backoff)  # reconnect backoff
                backoff = min(0.5, backoff * 2)
                continue
            if r.get("type") != "connected":
                raise CheckFailed(f"connect with session → {short(r)}")
            self.ids.append(r.get("client"))
            c.client_id = r.get("client")
            if r.get("resumed") is True:
                for x in r.get("channels", []):
                    if x.get("channel") == self.ch and x.get("recovered") is False:
                        self.recovered_false.append(("resume", short(x)))
                if not any(x.get("channel") == self.ch for x in r.get("channels", [])):
                    self.errors.append(f"resumed without its channel: {short(r)}")
                return
            self.resumed_false += 1
            self.session = r.get("session")
            req = {"type": "subscribe", "channel": self.ch}
            if self.epoch:
                req["since"] = {"epoch": self.epoch, "offset": self.contiguous}
            sub = await c.request(req, D(5))
            if sub.get("type") != "subscribed":
                raise CheckFailed(f"subscribe after resumed:false → {short(sub)}")
            if self.epoch and sub.get("recovered") is not True:
                self.recovered_false.append(("subscribe since", short(sub)))
            return

    async def stop(self):
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
        if self.c is not None:
            await self.c.stop()


# --------------------------------------------------------------------------------------------


CASES = [  # (name, timeout in s before the sanitizer factor, needs a shared broker[, engines])
    ("cluster_info", 40, True),
    ("three_nodes_order", 60, False),
    ("presence_history_agree", 40, False),
    ("resume_on_other_node", 40, False),
    ("resume_edges", 40, False),
    ("takeover_across_nodes", 40, False),
    ("idempotency_across_nodes", 40, False),
    ("channels_spread", 40, False),
    ("http_sessions_any_node", 60, False),
    ("resume_after_node_death", 40, True),
    ("kill9_under_load", 90, True),
    ("broker_restart", 60, True),
    ("broker_restart_keeps_store", 60, True, ("nats",)),
    ("broker_hang", 60, True),
    ("readyz_and_unavailable", 40, True),
    ("haproxy_skips_unready", 40, True),
]
ALIASES = {"redis_restart": "broker_restart", "redis_hang": "broker_hang"}   # earlier names
SKIP_REASON = {
    "broker_restart_keeps_store": "this redis-server runs without persistence (--save \"\" "
                                  "--appendonly no): a restart always comes back empty "
                                  "(broker_restart covers it)",
}


async def main() -> int:
    global SLOW, SELFTEST, ENGINE, BROKER
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="path to the switchboard binary")
    p.add_argument("--engine", choices=sorted(ENGINES), default="redis",
                   help="the shared broker the nodes run on (default redis)")
    p.add_argument("--case", action="append", choices=[c[0] for c in CASES] + list(ALIASES),
                   help="run only this case (repeatable)")
    p.add_argument("--selftest-memory", action="store_true",
                   help="check the suite itself: cases 1-3 against one memory-engine node")
    args = p.parse_args()
    SELFTEST = args.selftest_memory
    ENGINE = args.engine
    BROKER = ENGINES[ENGINE][0]
    wanted = {ALIASES.get(c, c) for c in args.case or []}
    rep = Reporter(f"cluster.test_cluster.{'memory' if SELFTEST else ENGINE}")

    missing = cluster.missing_tools(ENGINE if not SELFTEST else "memory")
    if missing:
        rep.record("prerequisites", False, "not installed: " + ", ".join(missing))
        return rep.finish()
    try:
        cluster.wait_for_binary(args.server)
        if not SELFTEST and not cluster.has_engine(args.server, ENGINE):
            what = "redis" if ENGINE == "redis" else "the --nats-url flag"
            rep.record("prerequisites", False,
                       f"{args.server} has no {BROKER} engine: `serve --help` does not mention "
                       f"{what} ([broker] engine = \"{ENGINE}\" is needed for --engine "
                       f"{ENGINE})")
            return rep.finish()
        if cluster.is_sanitized(args.server):
            SLOW = 3.0
            os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                          ":quarantine_size_mb=16").lstrip(":")
            print("NOTE       sanitizer build: deadlines ×3, kill9 load halved", flush=True)
    except ClusterError as e:
        rep.record("prerequisites", False, str(e))
        return rep.finish()

    run = RunDir()
    tempfile.tempdir = str(run.path)   # the node logs (harness.ServerProcess) go there too
    suite = Suite(args.server, rep, run)
    try:
        for name, timeout, needs_broker, *engines in CASES:
            if wanted and name not in wanted:
                continue
            await suite.run(name, timeout, needs_broker, *engines)
    finally:
        await asyncio.to_thread(suite.stop_all)
        cluster._stop_everything()
        run.finish(keep=suite.any_failed)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
