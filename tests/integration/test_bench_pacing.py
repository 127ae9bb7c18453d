#!/usr/bin/python3
"""Integration: what `switchboard bench` measures when things go wrong mid-run.

- Paced echo (--interval) is open-loop on a fixed schedule: when the generator itself is
  stopped (SIGSTOP for 1.5 s), the sends it owed are measured from when they were due, so the
  stall shows in the latency instead of vanishing (coordinated omission), and what lies more
  than 1 s behind is skipped and counted.
- Native fanout subscribers that the server disconnects (POST /api/disconnect) reconnect and
  resubscribe with `since`: nothing is lost. With --no-recover the same run loses messages,
  which proves the first check can fail.

Bounds, not speeds: the assertions follow from the length of the stall and from counts.

  /usr/bin/python3 tests/integration/test_bench_pacing.py --server build/dev/switchboard
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from bench_support import run_case, wait_for_phase  # noqa: E402
from harness import Reporter  # noqa: E402
from messaging import API_KEY, Server, api, check  # noqa: E402

RUN_TIMEOUT_S = 120
STALL_S = 1.5

CONFIG = f"""
[api]
key = "{API_KEY}"

[namespaces.default]
presence = true
history_size = 10000
history_ttl = "10m"
"""


def start_bench(binary: str, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([binary, "bench", *args, "--progress"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> str:
    try:
        stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stdout.decode(errors="replace")


class Suite:
    def __init__(self, binary: str, server: Server, rep: Reporter, tmp: Path):
        self.binary = binary
        self.server = server
        self.rep = rep
        self.tmp = tmp

    def case(self, name: str, fn):
        run_case(self.rep, name, fn)

    def url(self, path: str) -> str:
        return f"ws://{self.server.host}:{self.server.port}{path}"

    def stalled_generator(self):
        out = self.tmp / "stall.json"
        proc = start_bench(self.binary, ["echo", "--url", self.url("/echo"), "-c", "4",
                                         "-i", "10ms", "-d", "4", "--json", str(out)])
        try:
            wait_for_phase(proc)
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(STALL_S)  # the stall under test, not a synchronization
            os.kill(proc.pid, signal.SIGCONT)
        except BaseException:
            os.kill(proc.pid, signal.SIGCONT)
            raise
        stdout = finish(proc)
        j = json.loads(out.read_text(encoding="utf-8"))
        k = j["counters"]
        check(k["msgs_received"] == k["msgs_sent"] and k["msgs_sent"] > 0,
              f"sent {k['msgs_sent']} received {k['msgs_received']}")
        # Each connection owed ~150 sends when it woke: those due more than 1 s ago were
        # skipped, the last second of them went out at once, each timed from its due time.
        check(k["sends_skipped"] > 0, f"nothing skipped after a {STALL_S} s stall: {k}")
        lag_max = j["send_lag_ms"]["max"]
        lat_max = j["latency_ms"]["max"]
        check(lag_max >= 900, f"send lag max {lag_max} ms after a {STALL_S} s stall")
        check(lat_max >= 900, f"latency max {lat_max} ms: the stall was hidden")
        check("fell behind the --interval schedule" in stdout, "no warning in the table")

    def fanout(self, recover: bool) -> dict:
        name = "recover" if recover else "norecover"
        channel_prefix = f"pace-{name}."
        out = self.tmp / f"{name}.json"
        args = ["fanout", "--url", self.url("/ws"), "-c", "6", "--publishers", "1",
                "-i", "5ms", "-n", "400", "--channel-prefix", channel_prefix,
                "--json", str(out)]
        if not recover:
            args.append("--no-recover")
        proc = start_bench(self.binary, args)
        try:
            wait_for_phase(proc)
            status, body = api(self.server, "presence", {"channel": channel_prefix + "0"})
            check(status == 200, f"presence → {status} {body}")
            clients = [p["client"] for p in body["clients"]]
            check(len(clients) == 6, f"presence lists {len(clients)} clients (want the 6 subscribers)")
            # Presence lists subscribers only (publishers do not subscribe): kick three.
            for cid in clients[:3]:
                status, body = api(self.server, "disconnect", {"client": cid})
                check(status == 200, f"disconnect → {status} {body}")
        finally:
            finish(proc)
        return json.loads(out.read_text(encoding="utf-8"))

    def fanout_recovers(self):
        j = self.fanout(True)
        k = j["counters"]
        check(k["reconnects"] >= 3, f"reconnects {k['reconnects']}")
        check(k["recoveries"] >= 3 and k["recoveries_failed"] == 0,
              f"recoveries {k['recoveries']} failed {k['recoveries_failed']}")
        check(k["expected"] > 0 and k["lost"] == 0 and k["deliveries"] == k["expected"],
              f"expected {k['expected']} delivered {k['deliveries']} lost {k['lost']}")
        check(k["duplicates"] == 0 and k["out_of_order"] == 0,
              f"duplicates {k['duplicates']} out of order {k['out_of_order']}")

    def fanout_without_recovery_loses(self):
        j = self.fanout(False)
        k = j["counters"]
        check(k["recoveries"] == 0, f"recovered without since? {k['recoveries']}")
        check(k["lost"] > 0, f"nothing lost without recovery: the recovery check proves nothing")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="path to the switchboard binary")
    args = ap.parse_args()
    rep = Reporter("bench_pacing")
    with tempfile.TemporaryDirectory(prefix="sb-pace-") as tmp, Server(
            args.server, CONFIG, name="bench-pacing", threads=2,
            flags=("--rate-limit", "100000")) as server:
        s = Suite(args.server, server, rep, Path(tmp))
        s.case("paced echo: a stalled generator shows in latency", s.stalled_generator)
        s.case("native fanout: reconnects recover with since, nothing lost", s.fanout_recovers)
        s.case("native fanout: --no-recover loses what was missed", s.fanout_without_recovery_loses)
        if not server.proc.alive():
            rep.record("server survived", False, server.proc.log_tail())
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
