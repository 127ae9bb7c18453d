#!/usr/bin/python3
"""Integration: bench/run_echo_bench.sh and bench/run_fanout_bench.sh end to end, scaled down
(tens of connections, one round, sub-second windows), then bench/report.mjs on their results.

What it proves is the plumbing, never a speed: the scripts drive the servers with `switchboard
bench` (the binary under test is also the generator), every group of rows (main, threads,
deflate) is written with the fields docs/benchmarks.md shows, every publication reaches every
Switchboard subscriber once and in order with each channel offset the last + 1, the deflate
rows negotiated permessage-deflate, and the report renders every placeholder from the files.
node `ws` runs as the peer when the repo's node_modules has it; uWebSockets is never here.

  /usr/bin/python3 tests/integration/test_bench_scripts.py --server build/release/switchboard
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from bench_support import run_case  # noqa: E402
from harness import Reporter  # noqa: E402

# Each script bounds each generator run itself (RUN_TIMEOUT); this bounds the whole.
SCRIPT_TIMEOUT_S = 300


def run_script(name: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    # No priority games and no waiting for a quiet machine: this checks plumbing, not speed.
    env.update(SCHED="none", QUIET_TIMEOUT="0", NOISE_RETRIES="0", RUN_TIMEOUT="60", ROUNDS="1")
    env.update(env_extra)
    proc = subprocess.Popen(["bash", str(ROOT / "bench" / name)], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        stdout, _ = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the script's trap stops what it started, by PID
        stdout, _ = proc.communicate(timeout=30)
        raise AssertionError(f"{name} took over {SCRIPT_TIMEOUT_S}s:\n{stdout[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "")


def has_ws() -> bool:
    return (ROOT / "node_modules" / "ws" / "package.json").exists()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the switchboard binary")
    args = ap.parse_args()
    server = str(Path(args.server).resolve())
    rep = Reporter("bench_scripts")
    if shutil.which("node") is None:
        rep.record("node on PATH", False, "the summaries and the report need node (scripts/deps.sh test)")
        return rep.finish()
    servers = "switchboard ws" if has_ws() else "switchboard"
    if not has_ws():
        rep.note("no node_modules/ws (npm ci): Switchboard only")

    with tempfile.TemporaryDirectory(prefix="sb-bench-scripts-") as tmp:
        results = Path(tmp) / "results"
        results.mkdir()
        echo_out = results / "echo-2099-01-01T000000Z.json"
        fanout_out = results / "fanout-2099-01-01T000000Z.json"
        state: dict = {}

        def echo_runs():
            p = run_script("run_echo_bench.sh", {
                "SB_BIN": server, "OUT": str(echo_out), "SERVERS": servers,
                "DURATION": "0.5", "WARMUP": "0.2", "SIZES": "64", "CONNS": "20", "INFLIGHT": "2",
                "IDLE_CONNS": "200", "IDLE_WARM": "20", "IDLE_SETTLE": "0.2",
                "THREADS": "1 2", "THREADS_CONNS": "20", "THREADS_INFLIGHT": "2", "DEFLATE": "20:2",
            })
            state["echo_stdout"] = p.stdout
            assert p.returncode == 0, f"exit {p.returncode}:\n{p.stdout[-3000:]}"
            state["echo"] = json.loads(echo_out.read_text())

        run_case(rep, "run_echo_bench.sh runs and writes its JSON", echo_runs)
        echo = state.get("echo")
        if echo is not None:
            def echo_rows():
                groups = {row["group"] for row in echo["summary"]}
                assert groups == {"main", "threads", "deflate"}, groups
                assert echo["generator"] == "switchboard bench", echo.get("generator")
                for r in echo["runs"]:
                    assert r["ok"], f"{r['server']} {r['test']}: {json.dumps(r)[:800]}"
                for row in echo["summary"]:
                    if row["kind"] != "echo":
                        continue
                    for name, cell in row["servers"].items():
                        assert cell["median"] > 0, f"{name} {row['test']}: {cell}"
                        assert cell.get("server_cpu") is not None, f"{name} {row['test']}: no server CPU"
                idle = [row for row in echo["summary"] if row["kind"] == "idle"]
                assert idle and all(c.get("median") is not None for c in idle[0]["servers"].values()), idle

            run_case(rep, "echo: main, threads and deflate rows, every run clean, CPU measured", echo_rows)

            def echo_deflate():
                runs = [r for r in echo["runs"] if r["group"] == "deflate"]
                assert runs, "no deflate runs"
                for r in runs:
                    res = r["result"]
                    assert res["compressed"] == res["conns_ok"] > 0, f"{r['server']}: {res}"

            run_case(rep, "echo: every deflate connection negotiated permessage-deflate", echo_deflate)

        def fanout_runs():
            p = run_script("run_fanout_bench.sh", {
                "SB_BIN": server, "OUT": str(fanout_out), "SERVERS": servers,
                "BCAST": "50:4", "BCAST_DURATION": "0.5", "BCAST_WARMUP": "0.2",
                "LAT_SUBS": "50", "LAT_RATE": "20", "LAT_DURATION": "0.5", "LAT_WARMUP": "0.2",
                "FAN_THREADS": "1 2", "FAN_THREADS_SPECS": "50:4", "FAN_DEFLATE": "50:4", "DRAIN": "10",
            })
            state["fanout_stdout"] = p.stdout
            assert p.returncode == 0, f"exit {p.returncode}:\n{p.stdout[-3000:]}"
            state["fanout"] = json.loads(fanout_out.read_text())

        run_case(rep, "run_fanout_bench.sh runs and writes its JSON", fanout_runs)
        fanout = state.get("fanout")
        if fanout is not None:
            def fanout_exact():
                groups = {row["group"] for row in fanout["summary"]}
                assert groups == {"main", "threads", "deflate"}, groups
                tests = {row["test"] for row in fanout["summary"]}
                for t in ("broadcast_50s_w4", "broadcast_50s_w4_off", "latency_50r", "latency_50r_off",
                          "broadcast_50s_w4_t1", "broadcast_50s_w4_t2", "broadcast_50s_w4_deflate"):
                    assert t in tests, f"no {t} row: {sorted(tests)}"
                for r in fanout["runs"]:
                    res = r["result"]
                    assert r["ok"], f"{r['server']} {r['test']}: {json.dumps(r)[:800]}"
                    assert res["expected"] > 0 and res["deliveries_total"] == res["expected"], res
                    assert res["lost"] == res["duplicates"] == res["out_of_order"] == 0, res
                    assert res["offset_errors"] == 0, res
                    if r["test"].startswith("broadcast"):
                        assert res["deliveries_per_sec"] > 0, res
                    else:
                        assert res["lat_us"]["p50"] > 0, res

            run_case(rep, "fan-out: every row, every delivery once and in order, offsets +1", fanout_exact)

        def report_renders():
            assert echo is not None and fanout is not None, "the scripts did not both run"
            page = Path(tmp) / "benchmarks.md"
            p = subprocess.run(["node", str(ROOT / "bench" / "report.mjs"), "--results", str(results),
                                "--out", str(page)], capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr[-2000:]
            text = page.read_text()
            left = re.findall(r"@[A-Z_]+@", text)
            assert not left, f"placeholders left: {left}"
            for needle in ("fan-out, 1 room × 50 subscribers, 4 in flight", "server 2 threads",
                           "permessage-deflate (deliveries/s)", "permessage-deflate (msg/s)"):
                assert needle in text, f"the page lacks {needle!r}"

        run_case(rep, "report.mjs renders the page from the two results", report_renders)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
