#!/usr/bin/env bash
# Fan-out benchmark: Switchboard (native protocol, history and presence on) against a node `ws`
# room-broadcast server (bench/peers/ws_broadcast.mjs) and, when SB_BASE_BIN is set, against a
# Switchboard built from an earlier commit ("base"). Interleaved rounds, a fresh server for
# every run, server pinned to one core and the generator (bench/loadgen/fanout_loadgen.cpp) to
# the other; loopback only. Prints a table of medians and writes
# bench/results/fanout-<date>.json.
#
# Tests:
#   broadcast  N subscribers in one room, one publisher keeping W publications ahead of the
#              slowest subscriber; deliveries/s (messages received by all subscribers), every
#              subscriber checked for loss, duplicates and order. Default rows 1,000 × W=1,
#              1,000 × W=256 and 10,000 × W=64 (BCAST).
#   latency    10,000 subscribers, each in a room of its own, one publisher connection
#              publishing 1 msg/s to every room (10,000/s spread evenly); p50/p90/p99/max of
#              send -> receipt, loss.
#
# Environment (all optional):
#   SB_BIN        default build/release/switchboard (skipped when missing). Started with no
#                 SWITCHBOARD_* variables (they are its settings), --config from this script.
#   SB_COMMIT     the commit SB_BIN was built from, when it is not the work tree's HEAD
#   SB_BASE_BIN   the "base" server: a Switchboard built from an earlier commit, outside the repo
#                 (e.g. a git worktree), for before/after runs (skipped when unset). Started
#                 exactly like switchboard (same flags, same --config, no SWITCHBOARD_*), so the
#                 config must only hold keys both builds accept (check with
#                 "$SB_BASE_BIN check-config --config FILE"); ratios are against switchboard.
#   SB_BASE_COMMIT  the commit SB_BASE_BIN was built from (default: HEAD of the git work tree
#                 holding SB_BASE_BIN, if any)
#   SERVERS       subset and order, default "switchboard ws base" (add uws explicitly: see below)
#   FEATURES=on   history and presence of the Switchboard servers: "on" (the config below),
#                 "off" (the same config with history_size = 0 and presence = false), or
#                 "on off" (both, interleaved within each round). Rows run with them off get
#                 tests named *_off and labels saying so; ws and uws have neither feature and
#                 run once per row, with the first entry.
#   UWS_BROADCAST_BIN  a uWebSockets room-broadcast server built outside the repo (skipped when
#                 unset); run as "$UWS_BROADCAST_BIN 0", it must listen on 127.0.0.1, print a
#                 line with "127.0.0.1:PORT", put each client in the room named by its URL path
#                 and send every message to the other clients of that room with its opcode
#                 (uWS pub/sub), like bench/peers/ws_broadcast.mjs; no compression
#                 Not in the default SERVERS: the one built for this repo's runs delivered only
#                 ~0.13-0.24M deliveries/s here (1,000 subscribers), far below the 7.95M that
#                 uWS reached in an earlier reference run, so it is not yet a faithful peer.
#   ROUNDS=3  SIZE=64 (payload bytes)
#   BCAST="1000:1 1000:256 10000:64"  (subscribers:window pairs; "" skips)
#   BCAST_DURATION=4 BCAST_WARMUP=1 (seconds)
#   LAT_SUBS=10000 (0 skips) LAT_RATE=1 (msg/s per room) LAT_PUBLISHERS=1
#   LAT_DURATION=15 LAT_WARMUP=2
#   DRAIN=30 DRAIN_IDLE=2: after the measurement the generator waits for the publications still
#   on their way while deliveries keep coming (at most DRAIN s); what has not arrived after
#   DRAIN_IDLE s without any delivery counts as lost.
#   SLOW_LOG_DIR: when set, every latency run writes its samples over SLOW_US=1000 µs and its
#   pacing stalls there (latency-<server>-<round>.txt: "lat SEND_S LAT_US ROOM" / "lag T_S US").
#   SERVER_CORE=0 GEN_CORE=1  LOADGEN (a prebuilt fanout_loadgen)  OUT (result path)
#   WS_NODE_MODULES  a directory whose node_modules holds `ws`, when the repo has none
#   SCHED=boost (default as root): server and generator each in a session of their own with
#   autogroup and nice -20 (see bench/README.md); "fifo" = chrt -f; "none" = as they are, and
#   then wait (QUIET_TIMEOUT=60 s) before each run until the machine is under QUIET_MAX=0.15
#   busy cores. NOISE_MAX=0.1: a run in which the generator waited for a CPU more than this
#   fraction of the time is repeated (up to NOISE_RETRIES=2 times), then kept but flagged.
#   RUN_TIMEOUT=90: a generator still running after this many seconds is stopped.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-64}
BCAST=${BCAST-"1000:1 1000:256 10000:64"}
BCAST_DURATION=${BCAST_DURATION:-4}
BCAST_WARMUP=${BCAST_WARMUP:-1}
DRAIN=${DRAIN:-30}
DRAIN_IDLE=${DRAIN_IDLE:-2}
SLOW_LOG_DIR=${SLOW_LOG_DIR:-}
SLOW_US=${SLOW_US:-1000}
LAT_SUBS=${LAT_SUBS:-10000}
LAT_RATE=${LAT_RATE:-1}
LAT_PUBLISHERS=${LAT_PUBLISHERS:-1}
LAT_DURATION=${LAT_DURATION:-15}
LAT_WARMUP=${LAT_WARMUP:-2}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-90}
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done
SB_BASE_BIN=${SB_BASE_BIN:-}
SB_BASE_COMMIT=${SB_BASE_COMMIT:-}
SERVERS_WANTED=${SERVERS:-"switchboard ws base"}
FEATURES=${FEATURES:-on}
for f in $FEATURES; do
    [[ $f == on || $f == off ]] || { echo "FEATURES must be on, off or \"on off\"" >&2; exit 2; }
done
read -r -a FEATURE_LIST <<<"$FEATURES"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$REPO/bench/results/fanout-$STAMP.json}
QUIET_MAX=${QUIET_MAX:-0.15}
if [[ $(id -u) == 0 ]]; then SCHED=${SCHED:-boost}; else SCHED=${SCHED:-none}; fi
BOOST='echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"'
case $SCHED in
    boost) PRIO=(setsid bash -c "$BOOST" boost); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    fifo) PRIO=(chrt -f 10); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    none) PRIO=(); QUIET_TIMEOUT=${QUIET_TIMEOUT:-60} ;;
    *) echo "SCHED must be boost, fifo or none" >&2; exit 2 ;;
esac
# Every prefix execs the next program, so $! is the server's (or generator's) own PID.
PIN_SERVER=("${PRIO[@]}" taskset -c "$SERVER_CORE")
PIN_GEN=("${PRIO[@]}" taskset -c "$GEN_CORE")
NOISE_MAX=${NOISE_MAX:-0.1}
NOISE_RETRIES=${NOISE_RETRIES:-2}


build_loadgen() {
    local src=$REPO/bench/loadgen/fanout_loadgen.cpp
    local bin=$REPO/build/loadgen/fanout_loadgen
    if [[ ! -x $bin || $src -nt $bin ]]; then
        log "building $bin"
        mkdir -p "$(dirname "$bin")"
        g++ -O2 -std=c++23 -Wall -Wextra "$src" -o "$bin" -lcrypto
    fi
    LOADGEN=$bin
}
if [[ -z ${LOADGEN:-} ]]; then build_loadgen; fi

SERVERS=()
for s in $SERVERS_WANTED; do
    case $s in
        switchboard)
            if [[ -x $SB_BIN ]]; then SERVERS+=(switchboard); else log "skip switchboard: no $SB_BIN"; fi ;;
        ws)
            if (cd "$REPO/bench/peers" && node -e "require.resolve('ws')" 2>/dev/null) ||
               [[ -n ${WS_NODE_MODULES:-} && -d ${WS_NODE_MODULES}/node_modules/ws ]]; then
                SERVERS+=(ws)
            else
                log "skip ws: run npm ci at the repo root, or set WS_NODE_MODULES"
            fi ;;
        uws)
            if [[ -n ${UWS_BROADCAST_BIN:-} && -x $UWS_BROADCAST_BIN ]]; then
                SERVERS+=(uws)
            else
                log "skip uws: set UWS_BROADCAST_BIN"
            fi ;;
        base)
            if [[ -n $SB_BASE_BIN && -x $SB_BASE_BIN ]]; then
                SERVERS+=(base)
            elif [[ -n $SB_BASE_BIN ]]; then
                log "skip base: no $SB_BASE_BIN"
            else
                log "skip base: SB_BASE_BIN unset"
            fi ;;
        *) log "unknown server $s"; exit 2 ;;
    esac
done
if [[ ${#SERVERS[@]} -eq 0 ]]; then log "no server to benchmark"; exit 1; fi

WORK=$(mktemp -d /tmp/sb-fanout-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
SB_BASE_BIN=$(abspath "$SB_BASE_BIN")
LOADGEN=$(abspath "$LOADGEN")
if [[ -n ${WS_NODE_MODULES:-} ]]; then WS_NODE_MODULES=$(abspath "$WS_NODE_MODULES"); fi
if [[ -n $SLOW_LOG_DIR ]]; then SLOW_LOG_DIR=$(abspath "$SLOW_LOG_DIR"); mkdir -p "$SLOW_LOG_DIR"; fi
cd "$WORK"
RUNS=$WORK/runs.jsonl
: > "$RUNS"
# The Switchboard configuration of every run: messaging with history and presence on.
cat > "$WORK/switchboard.toml" <<'EOF'
[api]
key = "bench"
[messaging]
outbound_limit = "16MiB"
rate_limit = 100000
[namespaces.room]
history_size = 100
presence = true
EOF
# FEATURES=off: the same, with history and presence off (keys the older builds accept too).
sed -e 's/^history_size = .*/history_size = 0/' -e 's/^presence = .*/presence = false/' \
    "$WORK/switchboard.toml" > "$WORK/switchboard-off.toml"
SB_CMD=(serve --config "$WORK/switchboard.toml" --host 127.0.0.1 --port 0 --threads 1
        --no-compression --log-level warn)
SB_CMD_OFF=(serve --config "$WORK/switchboard-off.toml" --host 127.0.0.1 --port 0 --threads 1
            --no-compression --log-level warn)
FEAT=on  # the FEATURES entry of the run in progress
SPID=""
GPID=""
NOISY=0
ATTEMPT=0
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n $GPID ]]; then kill "$GPID" 2>/dev/null || true; fi
    if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

start_server() {  # NAME: sets SPID and SPORT
    local name=$1 logf=$WORK/server.log
    : > "$logf"
    case $name in
        switchboard | base)  # base: the same command line and config, another build
            local bin=$SB_BIN
            [[ $name == base ]] && bin=$SB_BASE_BIN
            if [[ $FEAT == off ]]; then
                "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$bin" "${SB_CMD_OFF[@]}" > "$logf" 2>&1 &
            else
                "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$bin" "${SB_CMD[@]}" > "$logf" 2>&1 &
            fi ;;
        ws)
            WS_NODE_MODULES=${WS_NODE_MODULES:-} "${PIN_SERVER[@]}" \
                node "$REPO/bench/peers/ws_broadcast.mjs" 0 > "$logf" 2>&1 & ;;
        uws)
            "${PIN_SERVER[@]}" "$UWS_BROADCAST_BIN" 0 > "$logf" 2>&1 & ;;
    esac
    SPID=$!
    SPORT=""
    local deadline=$((SECONDS + 10))
    while [[ -z $SPORT ]]; do
        SPORT=$(grep -aoE '127\.0\.0\.1:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
        if [[ -n $SPORT ]]; then break; fi
        if ! kill -0 "$SPID" 2>/dev/null || ((SECONDS > deadline)); then
            log "server $name did not start:"; cat "$logf" >&2; stop_server; return 1
        fi
        sleep 0.02
    done
    local comm
    comm=$(cat "/proc/$SPID/comm" 2>/dev/null || true)
    if [[ $comm =~ ^(env|nice|taskset|chrt|setsid|bash)$ ]]; then
        log "server PID $SPID is still $comm, not the server"; stop_server; return 1
    fi
}

# stop_server: sets SERVER_ALIVE (still running when asked to stop: false means it died during
# the run), SERVER_EXIT (its exit status) and SERVER_KILLED (it ignored SIGTERM for 10 s).
stop_server() {
    SERVER_ALIVE=false
    SERVER_EXIT=""
    SERVER_KILLED=false
    [[ -z $SPID ]] && return 0
    if kill -0 "$SPID" 2>/dev/null; then SERVER_ALIVE=true; fi
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 200); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SPID" 2>/dev/null; then
        SERVER_KILLED=true
        kill -KILL "$SPID" 2>/dev/null || true
    fi
    SERVER_EXIT=0
    wait "$SPID" 2>/dev/null || SERVER_EXIT=$?
    SPID=""
}



field() { grep -oE "\"$2\":-?[0-9.]+" <<<"$1" | head -1 | grep -oE -- '-?[0-9.]+$' || echo -1; }
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ | }"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# run_one SERVER ROUND TEST LABEL GENERATOR-ARGS...
run_one() {
    local server=$1 round=$2 test=$3 label=$4
    shift 4
    NOISY=0
    local proto=native
    [[ $server == ws || $server == uws ]] && proto=plain
    if ! start_server "$server"; then
        printf '{"server":"%s","test":"%s","label":%s,"round":%s,"ok":false,"error":"server did not start","result":null}\n' \
            "$server" "$test" "$(json_str "$label")" "$round" >> "$RUNS"
        return
    fi
    local rc=0 out=$WORK/gen.json
    : > "$out"
    "${PIN_GEN[@]}" "$LOADGEN" --port "$SPORT" --proto "$proto" --server-pid "$SPID" "$@" > "$out" &
    GPID=$!
    local deadline=$((SECONDS + RUN_TIMEOUT))
    while kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$GPID" 2>/dev/null; then
        log "  $server $test: generator still running after ${RUN_TIMEOUT}s; stopping it"
        kill -TERM "$GPID" 2>/dev/null || true
    fi
    wait "$GPID" || rc=$?
    GPID=""
    local hwm
    hwm=$(hwm_kb "$SPID")
    stop_server
    local res server_log
    res=$(head -1 "$out")
    [[ -z $res ]] && res=null
    # Whatever the server printed besides its listening line (warnings, errors, crashes).
    server_log=$(grep -av 'listening on' "$WORK/server.log" | head -20 || true)
    local wait_frac
    wait_frac=$(field "$res" gen_wait)
    if is_noisy "$wait_frac" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server $test: the generator waited for a CPU $wait_frac of the time; again"
        NOISY=1
        return
    fi
    local noisy=false
    is_noisy "$wait_frac" && noisy=true
    # A server that died before we stopped it failed; one that needed SIGKILL is only noted.
    local server_ok=$SERVER_ALIVE
    local ok=false
    [[ $rc == 0 && $server_ok == true ]] && ok=true
    printf '{"server":"%s","test":"%s","label":%s,"round":%s,"features":"%s","ok":%s,"exit":%s,"cpu_wait":%s,"noisy":%s,"server_alive_at_end":%s,"server_exit":%s,"server_killed":%s,"server_hwm_kb":%s,"server_log":%s,"result":%s}\n' \
        "$server" "$test" "$(json_str "$label")" "$round" "$FEAT" "$ok" "$rc" "$wait_frac" "$noisy" \
        "$SERVER_ALIVE" "${SERVER_EXIT:-null}" "$SERVER_KILLED" "${hwm:-null}" "$(json_str "$server_log")" "$res" >> "$RUNS"
    local summary
    if [[ $test == latency* ]]; then
        summary="p50 $(field "$res" p50) p99 $(field "$res" p99) max $(field "$res" max) us"
    else
        summary="$(field "$res" deliveries_per_sec) deliveries/s"
    fi
    summary+=", lost $(field "$res" lost), server cpu $(field "$res" server_cpu), gen cpu $(field "$res" gen_cpu)"
    [[ $ok == true ]] || summary+=" FAILED (generator exit $rc, server alive $SERVER_ALIVE exit ${SERVER_EXIT:-?})"
    [[ $SERVER_KILLED == true ]] && summary+=" (server needed SIGKILL)"
    [[ -n $server_log ]] && summary+=" [server log: $(head -c 200 <<<"$server_log" | tr '\n' ' ')]"
    log "  $server $test: $summary"
}

rotated() {
    local r=$1 n=${#SERVERS[@]} i
    for ((i = 0; i < n; i++)); do printf '%s ' "${SERVERS[$(((i + r) % n))]}"; done
}

fmt_int() { sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta' <<<"$1"; }

# servers_for ROUND: the rotated servers that take part with FEAT (ws and uws have no history
# or presence: they run with the first FEATURES entry only).
servers_for() {
    local s
    for s in $(rotated "$1"); do
        if [[ $s == switchboard || $s == base || $FEAT == "${FEATURE_LIST[0]}" ]]; then printf '%s ' "$s"; fi
    done
}
# Test-name and label suffixes of FEAT ("on" keeps the names the page has always had).
feat_test() { [[ $FEAT == off ]] && printf '_off'; return 0; }
feat_label() { [[ $FEAT == off ]] && printf ', history and presence off'; return 0; }

repeat_run() {  # SERVER ROUND TEST LABEL ARGS...
    for ((ATTEMPT = 0; ; ATTEMPT++)); do
        wait_quiet
        run_one "$@"
        ((NOISY)) || break
    done
}

log "servers: ${SERVERS[*]}; rounds $ROUNDS; broadcast ${BCAST:-none}; latency ${LAT_SUBS} rooms; history and presence: ${FEATURES}"
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for spec in $BCAST; do
        subs=${spec%%:*}
        win=${spec##*:}
        for FEAT in "${FEATURE_LIST[@]}"; do
            for server in $(servers_for "$round"); do
                repeat_run "$server" "$round" "broadcast_${subs}s_w${win}$(feat_test)" \
                    "fan-out, 1 room × $(fmt_int "$subs") subscribers, ${win} in flight$(feat_label) (deliveries/s)" \
                    --mode broadcast --subs "$subs" --window "$win" --size "$SIZE" \
                    --duration "$BCAST_DURATION" --warmup "$BCAST_WARMUP" --drain "$DRAIN" \
                    --drain-idle "$DRAIN_IDLE"
            done
        done
    done
    if ((LAT_SUBS > 0)); then
        for FEAT in "${FEATURE_LIST[@]}"; do
            for server in $(servers_for "$round"); do
                slow=()
                [[ -n $SLOW_LOG_DIR ]] && slow=(--slow-log "$SLOW_LOG_DIR/latency-$server-$round$(feat_test).txt" --slow-us "$SLOW_US")
                repeat_run "$server" "$round" "latency_${LAT_SUBS}r$(feat_test)" \
                    "latency, $(fmt_int "$LAT_SUBS") rooms × 1 subscriber, ${LAT_RATE} msg/s per room$(feat_label)" \
                    --mode latency --subs "$LAT_SUBS" --rate "$LAT_RATE" --publishers "$LAT_PUBLISHERS" \
                    --size "$SIZE" --duration "$LAT_DURATION" --warmup "$LAT_WARMUP" --drain "$DRAIN" \
                    --drain-idle "$DRAIN_IDLE" "${slow[@]}"
            done
        done
    fi
done
FEAT=${FEATURE_LIST[0]}

# --- metadata and summary ---
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ws_version=$(cd "$REPO/bench/peers" || exit; node -e "
  const path = require('path'); let p;
  try { p = require.resolve('ws/package.json'); }
  catch { p = path.join(process.env.WS_NODE_MODULES || '.', 'node_modules/ws/package.json'); }
  try { console.log(require(p).version) } catch { console.log('') }" 2>/dev/null || true)
servers_json=$(printf '"%s",' "${SERVERS[@]}")
base_commit="" base_version=""
if [[ " ${SERVERS[*]} " == *" base "* ]]; then
    base_commit=$SB_BASE_COMMIT
    if [[ -z $base_commit ]]; then
        base_commit=$(git -C "$(dirname "$SB_BASE_BIN")" rev-parse --short HEAD 2>/dev/null || echo unknown)
    fi
    base_version=$("$SB_BASE_BIN" version 2>/dev/null | head -1 || true)
fi
cat > "$WORK/meta.json" <<EOF
{"benchmark":"fanout","date":"$STAMP","commit":"$commit","dirty":$dirty,
 "machine":{"nproc":$(nproc),"cpu":$(json_str "$cpu"),"kernel":$(json_str "$(uname -r)"),"mem_kb":$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)},
 "servers":[${servers_json%,}],"rounds":$ROUNDS,"size":$SIZE,
 "broadcast":{"specs":$(json_str "$BCAST"),"duration_s":$BCAST_DURATION,"warmup_s":$BCAST_WARMUP},
 "latency":{"rooms":$LAT_SUBS,"rate_per_room":$LAT_RATE,"publishers":$LAT_PUBLISHERS,"duration_s":$LAT_DURATION,"warmup_s":$LAT_WARMUP},
 "drain_s":$DRAIN,"drain_idle_s":$DRAIN_IDLE,
 "server_core":$SERVER_CORE,"gen_core":$GEN_CORE,"sched":"$SCHED",
 "versions":{"node":$(json_str "$(node --version 2>/dev/null || true)"),"ws":$(json_str "$ws_version"),"base":$(json_str "$base_version")},
 "switchboard_commit":$(json_str "${SB_COMMIT:-$commit}"),
 "base_commit":$(json_str "$base_commit"),
 "features":$(json_str "$FEATURES"),
 "switchboard_cmd":$(json_str "${SB_CMD[*]}"),
 "switchboard_config":$(json_str "$(cat "$WORK/switchboard.toml")"),
 "switchboard_config_off":$(json_str "$(cat "$WORK/switchboard-off.toml")"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
cat > "$WORK/summarize.mjs" <<'EOF'
// Medians, min–max and ratios (ws ÷ Switchboard) of the runs; writes the result JSON and prints
// the markdown tables.
import fs from 'node:fs';
const [runsPath, outPath, metaPath] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
const runs = fs.readFileSync(runsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const servers = meta.servers;
const ref = servers.includes('switchboard') ? 'switchboard' : servers[0];
// Metrics per test kind: [key, label, higher is better, getter]
const metricsFor = (test) =>
  test.startsWith('latency')
    ? [
        ['p50_us', 'p50', false, (r) => r.lat_us?.p50],
        ['p90_us', 'p90', false, (r) => r.lat_us?.p90],
        ['p99_us', 'p99', false, (r) => r.lat_us?.p99],
        ['p999_us', 'p99.9', false, (r) => r.lat_us?.p999],
        ['max_us', 'max', false, (r) => r.lat_us?.max],
      ]
    : [['deliveries_per_sec', 'deliveries/s', true, (r) => r.deliveries_per_sec]];
const tests = [];
for (const r of runs) if (!tests.find((t) => t.test === r.test)) tests.push({ test: r.test, label: r.label });
const summary = [];
for (const t of tests) {
  const row = { test: t.test, label: t.label, metrics: {} };
  for (const [key, , higher, get] of metricsFor(t.test)) {
    const m = { higher_is_better: higher, servers: {} };
    for (const s of servers) {
      const rs = runs.filter((r) => r.test === t.test && r.server === s);
      const ok = rs.filter((r) => r.ok && Number.isFinite(get(r.result ?? {})));
      const cell = { runs: rs.length, ok_runs: ok.length };
      if (ok.length) {
        const vals = ok.map((r) => get(r.result));
        Object.assign(cell, { median: median(vals), min: Math.min(...vals), max: Math.max(...vals), values: vals });
      }
      m.servers[s] = cell;
    }
    for (const s of servers) {
      const c = m.servers[s];
      if (c.median !== undefined && m.servers[ref]?.median) c.ratio_vs_ref = c.median / m.servers[ref].median;
    }
    row.metrics[key] = m;
  }
  // Per server: CPU, losses and failures over all of the test's runs.
  row.checks = {};
  for (const s of servers) {
    const rs = runs.filter((r) => r.test === t.test && r.server === s);
    const med = (k) => {
      const xs = rs.map((r) => r.result?.[k]).filter((x) => Number.isFinite(x) && x >= 0);
      return xs.length ? median(xs) : undefined;
    };
    const sum = (k) => rs.reduce((a, r) => a + (r.result?.[k] ?? 0), 0);
    const hwm = rs.map((r) => r.server_hwm_kb).filter(Number.isFinite);
    row.checks[s] = {
      runs: rs.length, failed_runs: rs.filter((r) => !r.ok).length, noisy_runs: rs.filter((r) => r.noisy).length,
      server_cpu: med('server_cpu'), gen_cpu: med('gen_cpu'),
      lost: sum('lost'), duplicates: sum('duplicates'), out_of_order: sum('out_of_order'),
      offset_errors: sum('offset_errors'), closed_by_server: sum('closed_by_server'),
      error_replies: sum('error_replies'), handshake_failures: sum('handshake_failures'),
      deliveries_checked: sum('deliveries_total'), publications: sum('publications_total'),
      server_hwm_kb: hwm.length ? median(hwm) : undefined,
      pace_lag_max_ms: med('pace_lag_max_ms'),
    };
  }
  summary.push(row);
}
fs.writeFileSync(outPath, JSON.stringify({ ...meta, reference: ref, summary, runs }, null, 1) + '\n');

const fmt = (v, key) => {
  if (key.endsWith('_us')) return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} ms` : `${Math.round(v)} µs`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k`;
  return v.toFixed(0);
};
const names = { switchboard: 'Switchboard', ws: 'node `ws`' };
const lines = [`| test | ${servers.map((s) => names[s] ?? s).join(' | ')} |`, `|---|${servers.map(() => '---|').join('')}`];
for (const row of summary) {
  for (const [key, m] of Object.entries(row.metrics)) {
    const label = key === 'deliveries_per_sec' ? row.label : `${row.label}: ${key.replace('_us', '').replace('p999', 'p99.9')} latency`;
    const cells = servers.map((s) => {
      const c = m.servers[s];
      if (c.median === undefined) return c.runs ? 'failed' : '—';
      let txt = `${fmt(c.median, key)} (${fmt(c.min, key)}–${fmt(c.max, key)})`;
      if (s !== ref && c.ratio_vs_ref !== undefined) txt += ` ${c.ratio_vs_ref.toFixed(c.ratio_vs_ref < 0.1 ? 3 : 2)}×`;
      if (c.ok_runs < c.runs) txt += ` [${c.runs - c.ok_runs} failed]`;
      return txt;
    });
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
}
const checks = [`| test | ${servers.map((s) => `${names[s] ?? s}: server / generator CPU; lost, dup, reordered, closed`).join(' | ')} |`, `|---|${servers.map(() => '---|').join('')}`];
for (const row of summary) {
  checks.push(`| ${row.label} | ${servers.map((s) => {
    const c = row.checks[s];
    const f = (x) => (x === undefined ? '—' : x.toFixed(2));
    return `${f(c.server_cpu)} / ${f(c.gen_cpu)}; ${c.lost}, ${c.duplicates}, ${c.out_of_order}, ${c.closed_by_server}` +
      (c.pace_lag_max_ms !== undefined ? `; publisher behind schedule ≤ ${c.pace_lag_max_ms.toFixed(1)} ms` : '') +
      (c.failed_runs ? ` [${c.failed_runs} failed]` : '') + (c.noisy_runs ? ` ~${c.noisy_runs}` : '');
  }).join(' | ')} |`);
}
console.log(`Medians of ${meta.rounds} rounds (min–max); × = the server's median ÷ ${names[ref] ?? ref}'s median.`);
console.log('');
console.log(lines.join('\n'));
console.log('');
console.log('CPU (cores, medians) and checks (sums over all runs):');
console.log('');
console.log(checks.join('\n'));
const failed = runs.filter((r) => !r.ok);
if (failed.length) {
  console.log('');
  console.log(`${failed.length} run(s) failed:`);
  for (const f of failed) {
    const r = f.result ?? {};
    console.log(`  ${f.server} ${f.test} round ${f.round}: exit ${f.exit}, server alive ${f.server_alive_at_end} exit ${f.server_exit}; ` +
      `lost ${r.lost}, dup ${r.duplicates}, ooo ${r.out_of_order}, closed ${r.closed_by_server}, ` +
      `errors ${r.error_replies}; ${r.first_error ?? ''} ${r.first_error_reply ?? ''} ${r.first_close ?? ''} ${f.server_log ?? ''}`);
  }
}
console.log('');
console.log(`wrote ${outPath}`);
EOF
node "$WORK/summarize.mjs" "$RUNS" "$OUT" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
