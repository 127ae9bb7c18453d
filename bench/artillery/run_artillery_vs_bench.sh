#!/usr/bin/env bash
# Artillery vs `switchboard bench echo` against the same Switchboard, in one run: VUS
# connections (default 100), 64-byte text messages, 1 in flight per connection, DURATION
# seconds (default 20) each, ROUNDS interleaved rounds (default 3; the tool order alternates).
# A fresh server per run pinned to SERVER_CORE (0), the generator pinned to GEN_CORE (1).
# Each tool's CPU (user+system of its whole process, all threads) and the server's are read
# from /proc/PID/stat at the start and the end of the traffic window.
# Artillery is not a repo dependency: install it outside the repo, e.g.
#   PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix /tmp/artillery --ignore-scripts artillery@2.0.21
# (2.0.21 is the newest release whose engines allow node 20) and set ARTILLERY=/tmp/artillery/node_modules/.bin/artillery.
# Writes bench/results/artillery-<date>.json and prints a table. Loopback only; kills only the PIDs it starts.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ARTILLERY=${ARTILLERY:-/tmp/artillery/node_modules/.bin/artillery}
if [[ -z ${SB_BIN:-} ]]; then
    SB_BIN=$REPO/build/release/switchboard
    [[ -x $SB_BIN ]] || SB_BIN=$REPO/build/rel/switchboard
fi
VUS=${VUS:-100}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$REPO/bench/results/artillery-$STAMP.json}
[[ -x $ARTILLERY ]] || { echo "no Artillery at $ARTILLERY (see the header of this script)" >&2; exit 3; }
[[ -x $SB_BIN ]] || { echo "no Switchboard at $SB_BIN" >&2; exit 3; }
WORK=$(mktemp -d /tmp/sb-artillery.XXXXXX)
SPID="" GPID=""
cleanup() {
    [[ -n $GPID ]] && kill "$GPID" 2>/dev/null || true
    [[ -n $SPID ]] && kill "$SPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }

start_server() {
    env -u SWITCHBOARD_CONFIG taskset -c "$SERVER_CORE" "$SB_BIN" serve --host 127.0.0.1 --port 0 --threads 1 \
        --no-compression --log-level warn > "$WORK/server.log" 2>&1 &
    SPID=$!
    SPORT=""
    for _ in $(seq 200); do
        SPORT=$(grep -aoE '127\.0\.0\.1:[0-9]+' "$WORK/server.log" | head -1 | cut -d: -f2 || true)
        [[ -n $SPORT ]] && return 0
        sleep 0.05
    done
    echo "server did not start" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""; }

# Samples "ms gen_ticks server_ticks" every 100 ms while the generator runs.
sample() {
    while kill -0 "$GPID" 2>/dev/null; do
        echo "$(now_ms) $(cpu_ticks "$GPID") $(cpu_ticks "$SPID")"
        sleep 0.1
    done
}
# window_cpu FILE T0_MS T1_MS: cores used by the generator and the server between T0 and T1
# (the samples nearest inside the window).
window_cpu() {
    awk -v a="$2" -v b="$3" -v hz="$HZ" '$1 >= a && $1 <= b { if (!s) { t0 = $1; g0 = $2; s0 = $3; s = 1 } t1 = $1; g1 = $2; s1 = $3 }
        END { d = (t1 - t0) / 1000; if (d <= 0) { print "0 0 0"; exit } printf "%.3f %.3f %.3f\n", (g1 - g0) / hz, (s1 - s0) / hz, d }' "$1"
}

RUNS=$WORK/runs.jsonl
: > "$RUNS"
run_artillery() {
    local round=$1
    start_server
    (cd "$HERE" && ARTILLERY_DISABLE_TELEMETRY=true PORT=$SPORT VUS=$VUS DURATION=$DURATION \
        exec taskset -c "$GEN_CORE" "$ARTILLERY" run --quiet --output "$WORK/art.json" echo.yml) > "$WORK/art.log" 2>&1 &
    GPID=$!
    sample > "$WORK/samples" &
    local smp=$!
    local rc=0
    wait "$GPID" || rc=$?
    wait "$smp" || true
    local gpid=$GPID
    GPID=""
    stop_server
    node -e '
      const [f, samples, round, rc, pid] = process.argv.slice(1);
      const r = JSON.parse(require("fs").readFileSync(f, "utf8")).aggregate;
      console.log(JSON.stringify({ tool: "artillery", round: +round, exit: +rc,
        t0: r.firstMetricAt, t1: r.lastMetricAt, counters: r.counters }));' \
        "$WORK/art.json" "$WORK/samples" "$round" "$rc" "$gpid" > "$WORK/one.json"
    local t0 t1 cpu
    t0=$(grep -oE '"t0":[0-9]+' "$WORK/one.json" | cut -d: -f2)
    t1=$(grep -oE '"t1":[0-9]+' "$WORK/one.json" | cut -d: -f2)
    read -r gcpu scpu win < <(window_cpu "$WORK/samples" "$t0" "$t1")
    local total
    total=$(awk 'END { print ($2 + 0) / '"$HZ"' }' "$WORK/samples")
    sed -e "s/}\$/,\"gen_cpu_s\":$gcpu,\"server_cpu_s\":$scpu,\"window_s\":$win,\"gen_cpu_total_s\":$total}/" "$WORK/one.json" >> "$RUNS"
    echo "  round $round artillery: $(tail -1 "$RUNS" | grep -oE '"websocket.messages_received":[0-9]+'), window ${win}s, gen CPU ${gcpu}s, server CPU ${scpu}s" >&2
}

run_bench() {
    local round=$1
    start_server
    env -u SWITCHBOARD_CONFIG taskset -c "$GEN_CORE" "$SB_BIN" bench echo --url "ws://127.0.0.1:$SPORT/echo" \
        -c "$VUS" -w 1 -s 64 -d "${DURATION}s" --json "$WORK/bench.json" > "$WORK/bench.log" 2>&1 &
    GPID=$!
    local t0
    t0=$(now_ms)
    sample > "$WORK/samples" &
    local smp=$!
    local rc=0
    wait "$GPID" || rc=$?
    wait "$smp" || true
    GPID=""
    stop_server
    local t1
    t1=$(now_ms)
    read -r gcpu scpu win < <(window_cpu "$WORK/samples" "$t0" "$t1")
    local total
    total=$(awk 'END { print ($2 + 0) / '"$HZ"' }' "$WORK/samples")
    node -e '
      const [f, round, rc, g, s, w, tot] = process.argv.slice(1);
      const r = JSON.parse(require("fs").readFileSync(f, "utf8"));
      console.log(JSON.stringify({ tool: "switchboard-bench", round: +round, exit: +rc, traffic_s: r.traffic_s,
        counters: { msgs_sent: r.counters.msgs_sent, msgs_received: r.counters.msgs_received, unanswered: r.counters.unanswered, bad: r.counters.bad_replies },
        generator: r.generator, gen_cpu_s: +g, server_cpu_s: +s, window_s: +w, gen_cpu_total_s: +tot }));' \
        "$WORK/bench.json" "$round" "$rc" "$gcpu" "$scpu" "$win" "$total" >> "$RUNS"
    echo "  round $round switchboard bench: $(grep -oE '"msgs_received":[0-9]+' <<<"$(tail -1 "$RUNS")"), gen CPU ${gcpu}s, server CPU ${scpu}s over ${win}s" >&2
}

echo "Artillery $("$ARTILLERY" --version 2>/dev/null | grep -oE 'Artillery: [0-9.]+' | cut -d' ' -f2) vs switchboard bench echo: $VUS conns, 64 B, 1 in flight, ${DURATION}s, $ROUNDS rounds" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then run_artillery "$round"; run_bench "$round"; else run_bench "$round"; run_artillery "$round"; fi
done
mkdir -p "$(dirname "$OUT")"
ART_VERSION=$("$ARTILLERY" --version 2>/dev/null | grep -oE 'Artillery: [0-9.]+' | cut -d' ' -f2 || true)
node "$HERE/summarize_artillery.mjs" "$RUNS" "$OUT" "$VUS" "$DURATION" "$ART_VERSION" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
