#!/usr/bin/env bash
# The whole comparison in one command: Switchboard vs node `ws` (and uWebSockets when
# UWS_ECHO_BIN / UWS_BROADCAST_BIN are set), then the plot, then (if Artillery is installed
# outside the repo) Artillery vs `switchboard bench echo`, then docs/benchmarks.md.
#   1. bench/run_echo_bench.sh    echo 64 B / 1 KiB / 16 KiB × 100 / 1,000 / 10,000 connections
#                                 × 1 and 8 in flight; handshakes/s and server bytes per idle
#                                 connection at 10,000 connections; --threads 1 vs 2 (1,000
#                                 conns, generator --procs 2, unpinned); permessage-deflate
#   2. bench/run_fanout_bench.sh  broadcast deliveries/s (1 room × 1,000 subscribers at 32, 1
#                                 and 256 in flight, × 10,000 at 32; history and presence on
#                                 and off), latency over 10,000 rooms, --threads 1 vs 2,
#                                 permessage-deflate
#   3. bench/artillery/run_artillery_vs_bench.sh   the generator check (skipped without Artillery)
#   4. bench/plot.mjs             docs/benchmarks.svg from the newest results
#   5. bench/report.mjs           docs/benchmarks.md from bench/benchmarks.md.in and the newest
#                                 result of each kind (every number on the page comes from them)
# The generator is `switchboard bench` (docs/bench.md), the binary under test itself. Every
# step keeps the servers on SERVER_CORE (0) and the generator on GEN_CORE (1) (the threads rows
# run unpinned), runs ROUNDS (3) interleaved rounds and prints medians, min–max and ratios.
# Knobs pass through to the scripts (see bench/README.md). Defaults here: SIZES="64 1024 16384"
# CONNS="100 1000 10000". SKIP="echo fanout artillery plot report" leaves steps out. About 12
# minutes a round with all three servers (ROUNDS=1 for a quick full page).
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
if [[ -z ${SB_BIN:-} ]]; then
    SB_BIN=$REPO/build/release/switchboard
    [[ -x $SB_BIN ]] || SB_BIN=$REPO/build/rel/switchboard
fi
export SB_BIN
export SIZES=${SIZES:-"64 1024 16384"}
export CONNS=${CONNS:-"100 1000 10000"}
export ROUNDS=${ROUNDS:-3}
SKIP=${SKIP:-}
skip() { [[ " $SKIP " == *" $1 "* ]]; }
ARTILLERY=${ARTILLERY:-/tmp/artillery/node_modules/.bin/artillery}
START=$SECONDS
status=0
if ! skip echo; then
    echo "== echo: $SIZES B × $CONNS connections" >&2
    "$BENCH/run_echo_bench.sh" || { status=$?; echo "run_echo_bench.sh failed ($status)" >&2; }
fi
if ! skip fanout; then
    echo "== fan-out" >&2
    "$BENCH/run_fanout_bench.sh" || { status=$?; echo "run_fanout_bench.sh failed ($status)" >&2; }
fi
if ! skip artillery; then
    if [[ -x $ARTILLERY ]]; then
        echo "== the generator: Artillery vs switchboard bench echo" >&2
        ARTILLERY=$ARTILLERY ROUNDS=$ROUNDS "$BENCH/artillery/run_artillery_vs_bench.sh" ||
            { status=$?; echo "run_artillery_vs_bench.sh failed ($status)" >&2; }
    else
        echo "== skip Artillery: none at $ARTILLERY (see bench/artillery/run_artillery_vs_bench.sh)" >&2
    fi
fi
if ! skip plot; then
    node "$BENCH/plot.mjs"
fi
if ! skip report; then
    node "$BENCH/report.mjs" || { status=$?; echo "report.mjs failed ($status)" >&2; }
fi
echo "== done in $((SECONDS - START)) s; results in bench/results/, docs/benchmarks.md and .svg" >&2
exit "$status"
