#!/usr/bin/env bash
# Transport benchmark: the same Switchboard build, the same publishers, and subscribers over
# WebSocket (/ws), Server-Sent Events (GET /sse), long-polling (GET /poll) and, with
# TRANSPORTS=stomp, STOMP on /ws (v12.stomp) in one run, with our own load tester
# (`switchboard bench fanout|connect --transport ws|sse|poll|stomp`). A fresh
# server for every run, server pinned to one core and the generator to the other; loopback
# only. Prints the tables (medians of ROUNDS) and writes bench/results/transports-<date>.json
# and the markdown next to it (.md).
#
# Tests:
#   fanout  1 room × N subscribers over each transport, one publisher on /ws keeping WINDOW
#           publications unacknowledged, MSGS_TOTAL / N publications (64 B): deliveries/s
#           (unique deliveries over the time from the first publish to the last delivery),
#           p50/p99 delivery latency (from the publish to the receipt), loss, duplicates,
#           reordering; the server's CPU over the whole generator run (connecting, traffic,
#           drain and close) per delivery, and the generator's busiest process during traffic
#           (a generator near 100 % measures itself), the server's peak RSS (VmHWM).
#           Rows FANOUT="1000 10000".
#   idle    IDLE_CONNS connections that connect a native session (no channel) and stay idle:
#           the server's VmRSS (/proc/PID/status) once /metrics counts them all open, minus
#           its VmRSS before the first one, per connection. An idle poll session is one
#           parked GET (a keep-alive connection) and the session behind it.
#
# Environment (all optional):
#   SB_BIN        default build/release/switchboard; server and generator are the same binary
#                 (started with no SWITCHBOARD_* variables, --config from this script)
#   TRANSPORTS="ws sse poll" (or any of ws sse poll stomp)  ROUNDS=3  FANOUT="1000 10000" ("" skips)  WINDOW=16  SIZE=64
#   MSGS_TOTAL=2000000 (deliveries per fan-out run)  DRAIN=20 (s after the last publish)
#   IDLE_CONNS=10000 (0 skips)  IDLE_SETTLE=1 (s between "all open" and the RSS sample)
#   SERVER_CORE=0 GEN_CORE=1  RUN_TIMEOUT=120 (s; a generator still running is stopped)
#   THREADS=1 (the server's --threads)  GEN_PROCS=1 (the generator's --procs)  PIN=1 (0: pin
#   nothing, for multi-core runs: compare THREADS=1 and THREADS=2 both with PIN=0 GEN_PROCS=2)
#   SCHED=boost (default as root; see run_fanout_bench.sh) | fifo | none (then wait, up to
#   QUIET_TIMEOUT=60 s, for the machine to fall under QUIET_MAX=0.15 busy cores)
#   OUT (result path)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
TRANSPORTS=${TRANSPORTS:-"ws sse poll"}
ROUNDS=${ROUNDS:-3}
FANOUT=${FANOUT-"1000 10000"}
WINDOW=${WINDOW:-16}
SIZE=${SIZE:-64}
MSGS_TOTAL=${MSGS_TOTAL:-2000000}
DRAIN=${DRAIN:-20}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-1}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
THREADS=${THREADS:-1}
GEN_PROCS=${GEN_PROCS:-1}
PIN=${PIN:-1}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$REPO/bench/results/transports-$STAMP.json}
QUIET_MAX=${QUIET_MAX:-0.15}
NOISE_MAX=${NOISE_MAX:-1}  # lib.sh's; unused here
if [[ $(id -u) == 0 ]]; then SCHED=${SCHED:-boost}; else SCHED=${SCHED:-none}; fi
BOOST='echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"'
case $SCHED in
    boost) PRIO=(setsid bash -c "$BOOST" boost); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    fifo) PRIO=(chrt -f 10); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    none) PRIO=(); QUIET_TIMEOUT=${QUIET_TIMEOUT:-60} ;;
    *) echo "SCHED must be boost, fifo or none" >&2; exit 2 ;;
esac
# Every prefix execs the next program, so $! is the server's (or generator's) own PID.
if ((PIN)); then
    PIN_SERVER=("${PRIO[@]}" taskset -c "$SERVER_CORE")
    PIN_GEN=("${PRIO[@]}" taskset -c "$GEN_CORE")
else
    PIN_SERVER=("${PRIO[@]}")
    PIN_GEN=("${PRIO[@]}")
fi
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done
for t in $TRANSPORTS; do
    [[ $t == ws || $t == sse || $t == poll || $t == stomp ]] ||
        { log "TRANSPORTS: ws, sse, poll, stomp"; exit 2; }
done
[[ -x $SB_BIN ]] || { log "no $SB_BIN (set SB_BIN)"; exit 1; }
[[ $("$SB_BIN" bench --help) == *--transport* ]] || { log "$SB_BIN bench has no --transport"; exit 1; }
read -r -a TLIST <<<"$TRANSPORTS"

WORK=$(mktemp -d /tmp/sb-transport-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
MD=${OUT%.json}.md
cd "$WORK"
RUNS=$WORK/runs.jsonl
: > "$RUNS"
# History on for the bench:N channels (namespace "bench", as a real room would have), presence
# off; rate limit and outbound limit out of the way of one publisher and a fast fan-out.
cat > "$WORK/switchboard.toml" <<'EOF'
[api]
key = "bench"
[messaging]
outbound_limit = "16MiB"
rate_limit = 100000
[namespaces.bench]
history_size = 100
EOF
SB_CMD=(serve --config "$WORK/switchboard.toml" --host 127.0.0.1 --port 0 --threads "$THREADS"
        --no-compression --log-level warn)
SPID=""
GPID=""
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n $GPID ]]; then kill "$GPID" 2>/dev/null || true; fi
    if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

start_server() {  # sets SPID and SPORT
    local logf=$WORK/server.log
    : > "$logf"
    "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$SB_BIN" "${SB_CMD[@]}" > "$logf" 2>&1 &
    SPID=$!
    SPORT=""
    local deadline=$((SECONDS + 10))
    while [[ -z $SPORT ]]; do
        SPORT=$(grep -aoE '127\.0\.0\.1:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
        [[ -n $SPORT ]] && break
        if ! kill -0 "$SPID" 2>/dev/null || ((SECONDS > deadline)); then
            log "server did not start:"; cat "$logf" >&2; stop_server; return 1
        fi
        sleep 0.02
    done
    local comm
    comm=$(cat "/proc/$SPID/comm" 2>/dev/null || true)
    if [[ $comm =~ ^(env|nice|taskset|chrt|setsid|bash)$ ]]; then
        log "server PID $SPID is still $comm, not the server"; stop_server; return 1
    fi
}

stop_server() {  # sets SERVER_ALIVE (false: it died during the run)
    SERVER_ALIVE=false
    [[ -z $SPID ]] && return 0
    if kill -0 "$SPID" 2>/dev/null; then SERVER_ALIVE=true; fi
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 200); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SPID" 2>/dev/null; then kill -KILL "$SPID" 2>/dev/null || true; fi
    wait "$SPID" 2>/dev/null || true
    SPID=""
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ | }"; }
# Open connections of one transport by the server's own count (/metrics).
gauge() {
    local name=$1
    [[ $name == ws || $name == stomp ]] && name=websocket  # STOMP is a WebSocket on /ws
    curl -s --max-time 2 "http://127.0.0.1:$SPORT/metrics" |
        awk -v t="$name" '$1 == "switchboard_connections{transport=\"" t "\"}" { print $2 }' || true
}

# wait_gen: waits (RUN_TIMEOUT) for the generator; sets GEN_RC.
wait_gen() {
    local deadline=$((SECONDS + RUN_TIMEOUT))
    while kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$GPID" 2>/dev/null; then
        log "  generator still running after ${RUN_TIMEOUT}s; stopping it"
        kill -TERM "$GPID" 2>/dev/null || true
    fi
    GEN_RC=0
    wait "$GPID" || GEN_RC=$?
    GPID=""
}

record() {  # TEST TRANSPORT ROUND OK EXTRA-JSON RESULT-JSON
    local server_log
    server_log=$(grep -av 'listening on\|no keys in \[auth\]' "$WORK/server.log" | head -20 || true)
    printf '{"test":"%s","transport":"%s","round":%s,"ok":%s,"server_log":%s%s,"result":%s}\n' \
        "$1" "$2" "$3" "$4" "$(json_str "$server_log")" "$5" "${6:-null}" >> "$RUNS"
}

run_fanout() {  # SUBS TRANSPORT ROUND
    local subs=$1 t=$2 round=$3 n=$((MSGS_TOTAL / $1)) out=$WORK/gen.json
    ((n > 0)) || n=1
    if ! start_server; then record "fanout_$subs" "$t" "$round" false ',"error":"server did not start"'; return; fi
    : > "$out"
    local cpu0
    cpu0=$(cpu_ticks "$SPID")
    "${PIN_GEN[@]}" "$SB_BIN" bench fanout --url "ws://127.0.0.1:$SPORT/ws" --transport "$t" \
        -c "$subs" --publishers 1 -n "$n" --window "$WINDOW" --size "$SIZE" --drain "$DRAIN" \
        --channel-prefix bench: --procs "$GEN_PROCS" --no-reconnect -q --json "$out" \
        > "$WORK/gen.txt" 2>&1 &
    GPID=$!
    wait_gen
    local cpu1 hwm
    cpu1=$(cpu_ticks "$SPID")
    hwm=$(hwm_kb "$SPID")
    stop_server
    local res ok=false
    res=$(cat "$out" 2>/dev/null || true)
    [[ -z $res ]] && res=null
    [[ $GEN_RC == 0 && $SERVER_ALIVE == true ]] && ok=true
    local cpu_s
    cpu_s=$(awk -v d=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz }')
    record "fanout_$subs" "$t" "$round" "$ok" ",\"subs\":$subs,\"messages\":$n,\"exit\":$GEN_RC,\"server_cpu_s\":$cpu_s,\"server_hwm_kb\":${hwm:-0}" "$(tr -d '\n' <<<"$res")"
    local line
    line=$(grep -E 'deliveries   ' "$WORK/gen.txt" | head -1 | sed -E 's/^ +//' || true)
    log "  fanout $subs $t: ${line:-no result} (exit $GEN_RC, server cpu ${cpu_s}s)"
    [[ $ok == true ]] || log "$(tail -5 "$WORK/gen.txt")"
}

run_idle() {  # TRANSPORT ROUND
    local t=$1 round=$2 n=$IDLE_CONNS out=$WORK/idle.json
    if ! start_server; then record "idle_$n" "$t" "$round" false ',"error":"server did not start"'; return; fi
    sleep 0.5
    local rss0 rss1="" open=0
    rss0=$(rss_kb "$SPID")
    : > "$out"
    # Held long enough for the sample; closed cleanly at the end.
    "${PIN_GEN[@]}" "$SB_BIN" bench connect --url "ws://127.0.0.1:$SPORT/ws" --mode native \
        --transport "$t" -c "$n" --hold 15s --no-reconnect -q --json "$out" > "$WORK/gen.txt" 2>&1 &
    GPID=$!
    local deadline=$((SECONDS + 60))
    while kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do
        open=$(gauge "$t")
        if [[ -n $open ]] && ((open >= n)); then
            sleep "$IDLE_SETTLE"
            open=$(gauge "$t")
            rss1=$(rss_kb "$SPID")
            break
        fi
        sleep 0.2
    done
    wait_gen
    stop_server
    local res ok=false
    res=$(cat "$out" 2>/dev/null || true)
    [[ -z $res ]] && res=null
    if [[ -n $rss1 && $GEN_RC == 0 && $SERVER_ALIVE == true ]]; then ok=true; fi
    local bpc=null
    [[ -n $rss1 ]] && bpc=$(awk -v a="$rss0" -v b="$rss1" -v n="${open:-$n}" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    record "idle_$n" "$t" "$round" "$ok" ",\"conns\":$n,\"open_at_sample\":${open:-0},\"rss_before_kb\":$rss0,\"rss_after_kb\":${rss1:-null},\"bytes_per_conn\":$bpc,\"exit\":$GEN_RC" "$(tr -d '\n' <<<"$res")"
    log "  idle $n $t: ${bpc} B/conn (RSS ${rss0} -> ${rss1:-?} kB, ${open:-0} open; exit $GEN_RC)"
}

rotated() {
    local r=$1 n=${#TLIST[@]} i
    for ((i = 0; i < n; i++)); do printf '%s ' "${TLIST[$(((i + r) % n))]}"; done
}

log "transports: ${TRANSPORTS}; rounds $ROUNDS; fan-out ${FANOUT:-none}; idle ${IDLE_CONNS}; sched $SCHED"
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for subs in $FANOUT; do
        for t in $(rotated "$round"); do
            wait_quiet
            run_fanout "$subs" "$t" "$round"
        done
    done
    if ((IDLE_CONNS > 0)); then
        for t in $(rotated "$round"); do
            wait_quiet
            run_idle "$t" "$round"
        done
    fi
done

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat > "$WORK/meta.json" <<EOF
{"benchmark":"transports","date":"$STAMP","commit":"$commit","dirty":$dirty,
 "machine":{"nproc":$(nproc),"cpu":$(json_str "$cpu"),"kernel":$(json_str "$(uname -r)"),"mem_kb":$(awk '/^MemTotal:/ {print $2}' /proc/meminfo),"loadavg":$(json_str "$(cut -d' ' -f1-3 /proc/loadavg)")},
 "transports":$(json_str "$TRANSPORTS"),"rounds":$ROUNDS,"fanout":$(json_str "$FANOUT"),
 "window":$WINDOW,"size":$SIZE,"msgs_total":$MSGS_TOTAL,"drain_s":$DRAIN,"idle_conns":$IDLE_CONNS,
 "server_core":$SERVER_CORE,"gen_core":$GEN_CORE,"sched":"$SCHED",
 "threads":$THREADS,"gen_procs":$GEN_PROCS,"pinned":$((PIN ? 1 : 0)),
 "switchboard_cmd":$(json_str "${SB_CMD[*]}"),
 "switchboard_config":$(json_str "$(cat "$WORK/switchboard.toml")"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
cat > "$WORK/summarize.mjs" <<'EOF'
// Medians (min–max) per test and transport, ratios against WebSocket; writes the result JSON
// and the markdown table.
import fs from 'node:fs';
const [runsPath, outPath, mdPath, metaPath] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
const runs = fs.readFileSync(runsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const transports = meta.transports.split(/\s+/).filter(Boolean);
const NAME = { ws: 'WebSocket', sse: 'SSE', poll: 'long-polling', stomp: 'STOMP' };
const stat = (rs, get) => {
  const v = rs.filter((r) => r.ok).map(get).filter(Number.isFinite);
  return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length } : null;
};
const sum = (rs, get) => rs.reduce((a, r) => a + (get(r) ?? 0), 0);
const summary = { fanout: {}, idle: {} };
for (const subs of meta.fanout.split(/\s+/).filter(Boolean)) {
  const row = (summary.fanout[subs] = {});
  for (const t of transports) {
    const rs = runs.filter((r) => r.test === `fanout_${subs}` && r.transport === t);
    row[t] = {
      runs: rs.length, failed: rs.filter((r) => !r.ok).length,
      deliveries_per_s: stat(rs, (r) => r.result?.throughput?.deliveries_per_s),
      p50_ms: stat(rs, (r) => r.result?.latency_ms?.p50),
      p99_ms: stat(rs, (r) => r.result?.latency_ms?.p99),
      server_cpu_s: stat(rs, (r) => r.server_cpu_s),
      server_us_per_delivery: stat(rs, (r) => (r.result?.counters?.deliveries ? r.server_cpu_s * 1e6 / r.result.counters.deliveries : NaN)),
      gen_busiest: stat(rs, (r) => r.result?.cpu?.busiest_process),
      server_hwm_kb: stat(rs, (r) => r.server_hwm_kb),
      expected: sum(rs, (r) => r.result?.counters?.expected),
      delivered: sum(rs, (r) => r.result?.counters?.deliveries),
      lost: sum(rs, (r) => r.result?.counters?.lost),
      duplicates: sum(rs, (r) => r.result?.counters?.duplicates),
      out_of_order: sum(rs, (r) => r.result?.counters?.out_of_order),
      drops: sum(rs, (r) => r.result?.counters?.drops),
      errors: sum(rs, (r) => r.result?.error_total),
    };
  }
}
if (meta.idle_conns > 0) {
  for (const t of transports) {
    const rs = runs.filter((r) => r.test === `idle_${meta.idle_conns}` && r.transport === t);
    summary.idle[t] = {
      runs: rs.length, failed: rs.filter((r) => !r.ok).length,
      bytes_per_conn: stat(rs, (r) => r.bytes_per_conn),
      connects_per_s: stat(rs, (r) => r.result?.throughput?.connects_per_s),
      connect_p50_ms: stat(rs, (r) => r.result?.connect_ms?.p50),
    };
  }
}
fs.writeFileSync(outPath, JSON.stringify({ ...meta, summary, runs }, null, 1) + '\n');

const int = (v) => Math.round(v).toLocaleString('en-US');
const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const cell = (s, f) => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : 'failed');
const ratio = (s, ref) => (s && ref ? `${(s.median / ref.median).toFixed(2)}×` : '—');
const lines = [];
lines.push(`Server \`--threads ${meta.threads ?? 1}\`, generator ${meta.gen_procs ?? 1} process(es), ` +
  `${meta.pinned === 0 ? 'nothing pinned' : 'server and generator pinned to a core each'}. ` +
  `Medians of ${meta.rounds} rounds (min–max); × = the transport's median ÷ WebSocket's. ` +
  `One publisher on \`/ws\`, ${meta.window} publications unacknowledged, ${meta.size} B payloads, ` +
  `${int(meta.msgs_total)} deliveries per run; lost / duplicated / reordered are sums over the rounds.`);
lines.push('');
lines.push('| fan-out, 1 room | transport | deliveries/s | × ws | p50 ms | p99 ms | server CPU µs / delivery (whole run) | server peak RSS | generator busiest | lost / dup / reordered | delivered / expected |');
lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
for (const [subs, row] of Object.entries(summary.fanout)) {
  for (const t of transports) {
    const c = row[t];
    lines.push(`| ${int(+subs)} subscribers | ${NAME[t]} | ${cell(c.deliveries_per_s, int)} | ${t === 'ws' ? '1' : ratio(c.deliveries_per_s, row.ws?.deliveries_per_s)} | ` +
      `${cell(c.p50_ms, ms)} | ${cell(c.p99_ms, ms)} | ${c.server_us_per_delivery ? c.server_us_per_delivery.median.toFixed(2) : '—'} | ` +
      `${c.server_hwm_kb ? `${(c.server_hwm_kb.median / 1024).toFixed(0)} MiB` : '—'} | ` +
      `${c.gen_busiest ? `${Math.round(c.gen_busiest.median * 100)} %` : '—'} | ` +
      `${c.lost} / ${c.duplicates} / ${c.out_of_order} | ${int(c.delivered)} / ${int(c.expected)}` +
      `${c.failed ? ` [${c.failed} of ${c.runs} failed]` : ''} |`);
  }
}
if (meta.idle_conns > 0) {
  lines.push('');
  lines.push(`| ${int(meta.idle_conns)} idle connections (a native session each, no channel) | server RSS per connection | × ws | opened/s | connect p50 ms |`);
  lines.push('|---|--:|--:|--:|--:|');
  for (const t of transports) {
    const c = summary.idle[t];
    const kib = (v) => `${(v / 1024).toFixed(1)} KiB`;
    lines.push(`| ${NAME[t]} | ${cell(c.bytes_per_conn, kib)} | ${t === 'ws' ? '1' : ratio(c.bytes_per_conn, summary.idle.ws?.bytes_per_conn)} | ` +
      `${cell(c.connects_per_s, int)} | ${cell(c.connect_p50_ms, ms)}${c.failed ? ` [${c.failed} of ${c.runs} failed]` : ''} |`);
  }
}
const md = lines.join('\n') + '\n';
fs.writeFileSync(mdPath, md);
console.log(md);
const failed = runs.filter((r) => !r.ok);
if (failed.length) {
  console.log(`${failed.length} run(s) failed:`);
  for (const f of failed) console.log(`  ${f.test} ${f.transport} round ${f.round}: exit ${f.exit}; errors ${JSON.stringify(f.result?.errors ?? {})} ${f.server_log ?? ''}`);
}
console.log(`wrote ${outPath} and ${mdPath}`);
EOF
node "$WORK/summarize.mjs" "$RUNS" "$OUT" "$MD" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
