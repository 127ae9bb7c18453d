#!/usr/bin/python3
"""Cluster: bench/run_cluster_bench.sh end to end, scaled down (SCALE=ci: 2,000 subscribers over
3 nodes for 5 s, fan-out 1 room x 1,000 over 3 nodes vs 1), once.

What it proves is the plumbing, never a speed: Redis and nats-server, the Switchboard nodes on
the Redis engine and on the NATS engine, and the Socket.IO nodes on @socket.io/redis-adapter
start and stop; the generators spread their connections over the nodes and deliver; the result
JSON has a row per server and test, with the broker's CPU and the RSS per connection filled in;
every publication reaches every Switchboard subscriber, in order, whichever node it is on and
whichever engine carries it. Socket.IO's loss is reported, not judged (it is the peer, not the
product).

A binary without the Redis engine (no --broker-engine in `serve --help`) runs the script all
the same, with memory-engine nodes, and the cross-node checks of Switchboard are noted as
skipped: each node is then alone, and what crosses nodes is lost by design. A binary without
the NATS engine (no --nats-url), or a machine without nats-server that cannot install it, runs
without the NATS rows (the script drops them from its default list), and their checks are noted
as skipped. CLUSTER_BENCH_NATS=0 leaves the NATS rows out on purpose (they add about 20 s).

  /usr/bin/python3 tests/cluster/test_cluster_bench.py --server build/release/switchboard
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from bench_support import run_case  # noqa: E402
from harness import Reporter  # noqa: E402

# The script bounds each generator run itself (RUN_TIMEOUT); this bounds the whole.
SCRIPT_TIMEOUT_S = 480


def serve_help(server: str) -> str:
    return subprocess.run([server, "serve", "--help"], capture_output=True, text=True,
                          timeout=30).stdout


NATS_BIN = "/usr/sbin/nats-server"  # the script's default NATS_BIN


def nats_available(help_text: str) -> tuple[bool, str]:
    """Whether the script will run the NATS rows, and if not, why."""
    if os.environ.get("CLUSTER_BENCH_NATS", "1") == "0":
        return False, "CLUSTER_BENCH_NATS=0"
    if "--nats-url" not in help_text:
        return False, "the binary has no NATS engine (no --nats-url)"
    # As root the script installs nats-server with apt-get when it is missing.
    if not os.access(NATS_BIN, os.X_OK) and os.geteuid() != 0:
        return False, f"no {NATS_BIN} and not root to install it"
    return True, ""


def run_script(server: str, out: Path, servers: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SCALE="ci", SB_BIN=server, OUT=str(out), RUN_TIMEOUT="90", SERVERS=servers)
    proc = subprocess.Popen(["bash", str(ROOT / "bench" / "run_cluster_bench.sh")], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        stdout, _ = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM: the script's trap stops what it started, by PID.
        proc.terminate()
        stdout, _ = proc.communicate(timeout=30)
        raise AssertionError(f"run_cluster_bench.sh took over {SCRIPT_TIMEOUT_S}s:\n{stdout[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the switchboard binary")
    args = ap.parse_args()
    server = str(Path(args.server).resolve())
    rep = Reporter("cluster_bench")
    if shutil.which("node") is None:
        rep.record("node on PATH", False, "the Socket.IO peer needs node (scripts/deps.sh test)")
        return rep.finish()
    help_text = serve_help(server)
    redis_engine = "--broker-engine" in help_text
    if not redis_engine:
        rep.note(f"{server} has no Redis engine: its nodes run the memory engine; the "
                 "Switchboard cross-node checks are skipped")
    nats, why_not = nats_available(help_text)
    servers = ["switchboard", "switchboard-nats", "socketio"] if nats else ["switchboard", "socketio"]
    if not nats:
        rep.note(f"SKIP the NATS rows: {why_not}")

    with tempfile.TemporaryDirectory(prefix="sb-cluster-test-") as tmp:
        out = Path(tmp) / "cluster.json"
        state: dict = {}

        def script_runs():
            p = run_script(server, out, " ".join(servers))
            state["stdout"] = p.stdout
            assert p.returncode == 0, f"exit {p.returncode}:\n{p.stdout[-3000:]}"
            assert out.exists(), f"no {out}:\n{p.stdout[-3000:]}"
            assert out.with_suffix(".md").exists(), "no markdown table next to the JSON"
            state["result"] = json.loads(out.read_text())
            assert "| Switchboard" in p.stdout and "| Socket.IO" in p.stdout, \
                f"the table lacks a row:\n{p.stdout[-2000:]}"
            if nats:
                assert "| NATS JetStream" in p.stdout, f"the table lacks the NATS row:\n{p.stdout[-2000:]}"

        run_case(rep, "script runs, JSON and table written", script_runs)
        result = state.get("result")
        if result is None:
            return rep.finish()

        def rows(test: str, server_name: str) -> list[dict]:
            return [r for r in result["rows"] if r["test"] == test and r["server"] == server_name]

        def one(test: str, server_name: str, nodes: int) -> dict:
            found = [r for r in rows(test, server_name) if r["nodes"] == nodes]
            assert len(found) == 1, f"{len(found)} {server_name} {test} rows with {nodes} nodes"
            return found[0]

        def describe(r: dict) -> str:
            keys = ("engine", "broker", "connections", "connects_failed", "drops", "publications",
                    "expected", "deliveries", "lost", "duplicates", "out_of_order", "exit",
                    "nodes_alive", "stopped", "log")
            return json.dumps({k: r.get(k) for k in keys})

        def load_rows():
            for name in servers:
                r = one("load", name, result["params"]["nodes"])
                assert r["ok"], f"{name}: {describe(r)}"
                assert r["deliveries"] > 0, f"{name} delivered nothing: {describe(r)}"
                assert r["connections"] == result["params"]["conns"] + result["params"]["rooms"], \
                    f"{name}: not every subscriber and publisher connected: {describe(r)}"
                # Measured, whatever the values: the fields the page shows are filled in (the
                # broker's CPU where the nodes share a broker).
                keys = ["nodes_cpu_pct", "rss_per_conn_kib"]
                if r["broker"] != "none":
                    keys.append("broker_cpu_pct")
                for key in keys:
                    assert r[key] is not None, f"{name}: no {key}: {describe(r)}"
                assert r["latency_ms"] and r["latency_ms"]["count"] > 0, f"{name}: no latency"
            if nats:
                r = one("load", "switchboard-nats", result["params"]["nodes"])
                assert r["broker"] == "nats", f"switchboard-nats on {r['broker']}: {describe(r)}"

        run_case(rep, "load: a row per server, deliveries, CPU and RSS measured", load_rows)

        def loses_nothing(name: str, engine: str):
            def check():
                r = one("load", name, result["params"]["nodes"])
                assert r["engine"] == engine, f"engine {r['engine']}"
                assert r["expected"] > 0 and r["lost"] == 0 and r["duplicates"] == 0, describe(r)
                assert r["out_of_order"] == 0, describe(r)
                assert r["drops"] == 0 and r["connects_failed"] == 0, describe(r)
            return check

        if redis_engine:
            run_case(rep, "load: Switchboard on Redis delivers every publication on every node",
                     loses_nothing("switchboard", "redis"))
        else:
            rep.note("SKIP load: Switchboard on Redis delivers every publication on every node")
        if nats:
            run_case(rep, "load: Switchboard on NATS delivers every publication on every node",
                     loses_nothing("switchboard-nats", "nats"))
        else:
            rep.note("SKIP load: Switchboard on NATS delivers every publication on every node")

        def fanout_rows():
            for name in servers:
                for nodes in (1, result["params"]["fan_nodes"]):
                    r = one("fanout", name, nodes)
                    assert r["ok"] and r["deliveries"] > 0, f"{name} x{nodes}: {describe(r)}"
            for name in servers:
                if name.startswith("switchboard"):
                    single = one("fanout", name, 1)
                    assert single["lost"] == 0 and single["expected"] > 0, describe(single)
            assert sorted(x["server"] for x in result["fanout"]) == sorted(servers), result["fanout"]
            assert all(x["ratio"] is not None for x in result["fanout"]), result["fanout"]

        run_case(rep, "fan-out: 1 node and the cluster for every server, ratio reported", fanout_rows)

        def fanout_cluster_exact(name: str, engine: str):
            def check():
                r = one("fanout", name, result["params"]["fan_nodes"])
                assert r["engine"] == engine and r["lost"] == 0 and r["expected"] > 0, describe(r)
                assert r["duplicates"] == 0 and r["out_of_order"] == 0, describe(r)
            return check

        if redis_engine:
            run_case(rep, "fan-out: Switchboard over Redis loses nothing",
                     fanout_cluster_exact("switchboard", "redis"))
        else:
            rep.note("SKIP fan-out: Switchboard over Redis loses nothing")
        if nats:
            run_case(rep, "fan-out: Switchboard over NATS loses nothing",
                     fanout_cluster_exact("switchboard-nats", "nats"))
        else:
            rep.note("SKIP fan-out: Switchboard over NATS loses nothing")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
