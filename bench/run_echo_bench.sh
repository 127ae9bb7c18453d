#!/usr/bin/env bash
# Echo benchmark: Switchboard against node `ws` and, when UWS_ECHO_BIN is set, uWebSockets;
# when SB_BASE_BIN is set, also against a Switchboard built from an earlier commit ("base").
# Interleaved rounds, a fresh server for every run, server pinned to one core and the load
# generator (bench/loadgen/ws_loadgen.cpp) to the other; loopback only. Prints a table of
# medians and writes bench/results/echo-<date>.json. See bench/README.md.
#
# Environment (all optional):
#   SB_BIN           default build/release/switchboard (skipped when missing). The server gets
#                    no SWITCHBOARD_* variables from this environment (they are its settings).
#   SB_COMMIT        the commit SB_BIN was built from, when it is not the work tree's HEAD
#   SB_BASE_BIN      the "base" server: a Switchboard built from an earlier commit, outside the
#                    repo (e.g. a git worktree), for before/after runs (skipped when unset).
#                    Started exactly like switchboard (same flags, SB_ARGS, no SWITCHBOARD_*);
#                    its ratios are against switchboard like any peer's.
#   SB_BASE_COMMIT   the commit SB_BASE_BIN was built from (default: HEAD of the git work tree
#                    holding SB_BASE_BIN, if any)
#   SB_ARGS          extra flags for "switchboard serve", default "--log-level warn" (the peers
#                    log nothing per connection either)
#   UWS_ECHO_BIN     a uWebSockets echo server built outside the repo (skipped when unset);
#                    run as "$UWS_ECHO_BIN 0", it must listen on 127.0.0.1, print a line with
#                    "127.0.0.1:PORT" (or "port PORT"), echo with the same opcode, no compression
#   WS_PACKAGE_DIR   a directory whose node_modules holds `ws`, when the repo has none
#   SERVERS          subset and order, default "switchboard ws uws base"
#   ROUNDS=3 DURATION=4 WARMUP=1 (seconds)  SIZES="64 16384" CONNS="100 1000" INFLIGHT="1 8"
#   IDLE_CONNS=10000 (handshakes/s and bytes per idle connection; 0 skips)  IDLE_SETTLE=1
#   IDLE_WARM=1000: connections opened (and held) before the baseline, so bytes per idle
#                   connection is the slope of RSS over the next IDLE_CONNS, without the
#                   one-time costs the first connections bring in (code pages of the
#                   handshake path, allocator arenas); 0 measures from the empty server
#   SERVER_CORE=0 GEN_CORE=1  LOADGEN (a prebuilt ws_loadgen)  OUT (result path)
#   SCHED=boost (default as root): server and generator each run in a session of their own
#   whose autogroup and nice are -20, so other work on a shared machine gets about 1% of their
#   cores; "fifo" runs them SCHED_FIFO (bad for multi-threaded node); "none" as they are.
#   QUIET_MAX=0.15 cores: before each run, wait (up to QUIET_TIMEOUT s: 0 with boost or fifo,
#   else 60) until the machine is this idle. NOISE_MAX=0.1: a run in which the generator spent
#   more than this fraction of the time runnable but waiting for a CPU (/proc/self/schedstat:
#   other work on its core) is repeated (up to NOISE_RETRIES=2 times), then kept but flagged.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
SIZES=${SIZES:-"64 16384"}
CONNS=${CONNS:-"100 1000"}
INFLIGHT=${INFLIGHT:-"1 8"}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-1}
IDLE_WARM=${IDLE_WARM:-1000}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
# Switchboard reads SWITCHBOARD_* as settings (and rejects unknown ones): start it without them.
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done
read -r -a SB_EXTRA <<<"${SB_ARGS---log-level warn}"
UWS_ECHO_BIN=${UWS_ECHO_BIN:-}
SB_BASE_BIN=${SB_BASE_BIN:-}
SB_BASE_COMMIT=${SB_BASE_COMMIT:-}
SERVERS_WANTED=${SERVERS:-"switchboard ws uws base"}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$REPO/bench/results/echo-$STAMP.json}
QUIET_MAX=${QUIET_MAX:-0.15}
if [[ $(id -u) == 0 ]]; then SCHED=${SCHED:-boost}; else SCHED=${SCHED:-none}; fi
# With autogroups (sched_autogroup_enabled) nice only ranks processes within one session, so
# "boost" gives each process its own session (setsid) and sets that autogroup's nice too.
BOOST='echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"'
case $SCHED in
    boost) PRIO=(setsid bash -c "$BOOST" boost); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    fifo) PRIO=(chrt -f 10); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    none) PRIO=(); QUIET_TIMEOUT=${QUIET_TIMEOUT:-60} ;;
    *) echo "SCHED must be boost, fifo or none" >&2; exit 2 ;;
esac
# Command prefixes: one core each, at the benchmark's priority. setsid (not being a group
# leader here), bash -c exec, chrt, nice and taskset all exec the next program, so $! is the
# server's own PID (for VmRSS and kill).
PIN_SERVER=("${PRIO[@]}" taskset -c "$SERVER_CORE")
PIN_GEN=("${PRIO[@]}" taskset -c "$GEN_CORE")
NOISE_MAX=${NOISE_MAX:-0.1}
NOISE_RETRIES=${NOISE_RETRIES:-2}


# --- the load generator: built here so the script needs nothing but g++ and libssl-dev ---
build_loadgen() {
    local src=$REPO/bench/loadgen/ws_loadgen.cpp
    local bin=$REPO/build/loadgen/ws_loadgen
    if [[ ! -x $bin || $src -nt $bin ]]; then
        log "building $bin"
        mkdir -p "$(dirname "$bin")"
        g++ -O2 -std=c++23 -Wall -Wextra "$src" -o "$bin" -lcrypto
    fi
    LOADGEN=$bin
}
if [[ -z ${LOADGEN:-} ]]; then build_loadgen; fi

# --- which servers can run ---
SERVERS=()
for s in $SERVERS_WANTED; do
    case $s in
        switchboard)
            if [[ -x $SB_BIN ]]; then SERVERS+=(switchboard); else log "skip switchboard: no $SB_BIN"; fi ;;
        ws)
            if (cd "$REPO/bench/peers" && node -e "require.resolve('ws')" 2>/dev/null) ||
               [[ -n ${WS_PACKAGE_DIR:-} && -d ${WS_PACKAGE_DIR}/node_modules/ws ]]; then
                SERVERS+=(ws)
            else
                log "skip ws: run npm install at the repo root, or set WS_PACKAGE_DIR"
            fi ;;
        uws)
            if [[ -n $UWS_ECHO_BIN && -x $UWS_ECHO_BIN ]]; then SERVERS+=(uws); else log "skip uws: UWS_ECHO_BIN unset"; fi ;;
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

WORK=$(mktemp -d /tmp/sb-echo-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
UWS_ECHO_BIN=$(abspath "$UWS_ECHO_BIN")
SB_BASE_BIN=$(abspath "$SB_BASE_BIN")
LOADGEN=$(abspath "$LOADGEN")
if [[ -n ${WS_PACKAGE_DIR:-} ]]; then WS_PACKAGE_DIR=$(abspath "$WS_PACKAGE_DIR"); fi
cd "$WORK"  # nothing this script runs leaves files in the caller's directory
RUNS=$WORK/runs.jsonl
: > "$RUNS"
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

# start_server NAME: sets SPID and SPORT.
start_server() {
    local name=$1 logf=$WORK/server.log
    : > "$logf"
    case $name in
        switchboard)
            "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$SB_BIN" serve --host 127.0.0.1 --port 0 --threads 1 \
                --no-compression "${SB_EXTRA[@]}" > "$logf" 2>&1 & ;;
        base)  # the same command line as switchboard, another build
            "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$SB_BASE_BIN" serve --host 127.0.0.1 --port 0 --threads 1 \
                --no-compression "${SB_EXTRA[@]}" > "$logf" 2>&1 & ;;
        ws)
            WS_PACKAGE_DIR=${WS_PACKAGE_DIR:-} "${PIN_SERVER[@]}" \
                node "$REPO/bench/peers/ws_echo.mjs" 0 > "$logf" 2>&1 & ;;
        uws)
            "${PIN_SERVER[@]}" "$UWS_ECHO_BIN" 0 > "$logf" 2>&1 & ;;
    esac
    SPID=$!
    SPORT=""
    local deadline=$((SECONDS + 10))
    while [[ -z $SPORT ]]; do
        SPORT=$(grep -aoE '127\.0\.0\.1:[0-9]+|[Pp]ort [0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
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

stop_server() {
    [[ -z $SPID ]] && return 0
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
}

# Busy cores of the whole machine over 0.3 s, from /proc/stat (user nice system irq softirq steal).

# Benchmarks on a shared machine: wait until nothing else is running.

# run_wait RESULT KEY: the fraction of the run during which the generator was runnable but
# waiting for a CPU (-1 if unknown). The generator is single-threaded and alone on its core, so
# any wait is other work on the machine. (The server's own wait is in the result too, but a
# multi-threaded server such as node also waits for its own GC threads on its one core.)
run_wait() {
    grep -oE "\"$2\":-?[0-9.]+" <<<"$1" | grep -oE -- '-?[0-9.]+$' || echo -1
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\n'/ }"; }

# record SERVER TEST KIND LABEL ROUND OK EXTRA RESULT
record() {
    printf '{"server":"%s","test":"%s","kind":"%s","label":%s,"round":%s,"ok":%s%s,"result":%s}\n' \
        "$1" "$2" "$3" "$(json_str "$4")" "$5" "$6" "$7" "${8:-null}" >> "$RUNS"
}

run_echo() {  # SERVER ROUND SIZE CONNS INFLIGHT
    local server=$1 round=$2 size=$3 conns=$4 k=$5
    NOISY=0
    local test="echo_${size}B_${conns}c_${k}f"
    local label="echo ${size} B, ${conns} conns, ${k} in flight (msg/s)"
    local opcode=--text
    ((size > 1024)) && opcode=--binary
    if ! start_server "$server"; then
        record "$server" "$test" echo "$label" "$round" false ',"error":"server did not start"'; return
    fi
    local res rc=0
    "${PIN_GEN[@]}" "$LOADGEN" --port "$SPORT" --path /echo --conns "$conns" \
        --inflight "$k" --size "$size" $opcode --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$SPID" > "$WORK/echo.json" &
    GPID=$!
    wait "$GPID" || rc=$?
    GPID=""
    res=$(cat "$WORK/echo.json")
    stop_server
    [[ -z $res ]] && res=null
    local other
    other=$(run_wait "$res" gen_wait)
    NOISY=0
    if is_noisy "$other" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server $test: the generator waited for a CPU $other of the time; again"
        NOISY=1
        return
    fi
    local noisy=false
    is_noisy "$other" && noisy=true
    record "$server" "$test" echo "$label" "$round" "$([[ $rc == 0 ]] && echo true || echo false)" \
        ",\"exit\":$rc,\"cpu_wait\":$other,\"noisy\":$noisy" "$res"
    log "  $server $test: $(grep -oE '"msgs_per_sec":[0-9.]+' <<<"$res" || echo "failed (exit $rc)")"
}

run_idle() {  # SERVER ROUND: handshakes/s and server bytes per idle connection, one fresh server
    local server=$1 round=$2 n=$IDLE_CONNS
    NOISY=0
    local label_hs="handshakes/s (${n} conns opened)" label_idle="server bytes per idle connection (${n} idle)"
    if ! start_server "$server"; then
        record "$server" "handshakes_${n}" handshake "$label_hs" "$round" false ',"error":"server did not start"'
        return
    fi
    sleep 0.5  # let the runtime finish starting before the baseline
    local rss_empty rss0 rss1="" ready=$WORK/ready.json out=$WORK/idle.json rc=0 warm_pid=""
    rss_empty=$(rss_kb "$SPID" || true)
    if ((IDLE_WARM > 0)); then
        # Warm-up connections, held through the measurement; the baseline is taken after them.
        local warm_ready=$WORK/warm-ready.json
        rm -f "$warm_ready"
        "${PIN_GEN[@]}" "$LOADGEN" --port "$SPORT" --path /echo --conns "$IDLE_WARM" --idle \
            --hold 150 --ready-file "$warm_ready" > /dev/null &
        warm_pid=$!
        local warm_deadline=$((SECONDS + 60))
        while [[ ! -f $warm_ready ]] && kill -0 "$warm_pid" 2>/dev/null && \
              ((SECONDS < warm_deadline)); do sleep 0.05; done
        sleep "$IDLE_SETTLE"
    fi
    rss0=$(rss_kb "$SPID" || true)
    rm -f "$ready" "$out"
    "${PIN_GEN[@]}" "$LOADGEN" --port "$SPORT" --path /echo --conns "$n" --idle --hold 120 \
        --ready-file "$ready" --server-pid "$SPID" > "$out" &
    GPID=$!
    local deadline=$((SECONDS + 90))
    while [[ ! -f $ready ]] && kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if [[ -f $ready ]]; then
        sleep "$IDLE_SETTLE"
        rss1=$(rss_kb "$SPID" || true)
    fi
    kill -TERM "$GPID" 2>/dev/null || true
    wait "$GPID" || rc=$?
    GPID=""
    if [[ -n $warm_pid ]]; then
        kill -TERM "$warm_pid" 2>/dev/null || true
        wait "$warm_pid" 2>/dev/null || true
    fi
    stop_server
    local res
    res=$(cat "$out" 2>/dev/null || true)
    [[ -z $res ]] && res=null
    local ok=false
    [[ $rc == 0 && -n $rss1 ]] && ok=true
    local open other
    open=$(grep -oE '"open":[0-9]+' <<<"$res" | grep -oE '[0-9]+' || echo 0)
    other=$(run_wait "$res" handshake_gen_wait)
    NOISY=0
    if is_noisy "$other" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server idle ${n}: the generator waited for a CPU $other of the time; again"
        NOISY=1
        return
    fi
    local noisy=false
    is_noisy "$other" && noisy=true
    record "$server" "handshakes_${n}" handshake "$label_hs" "$round" "$ok" \
        ",\"exit\":$rc,\"cpu_wait\":$other,\"noisy\":$noisy" "$res"
    if [[ $ok == true && -n $rss0 && $open -gt 0 ]]; then
        local bpc=$(( (rss1 - rss0) * 1024 / open ))
        # The same run measured from the empty server (one-time costs included), for reference.
        local bpc_all=$(( (rss1 - rss_empty) * 1024 / (open + IDLE_WARM) ))
        record "$server" "idle_bytes_${n}" idle "$label_idle" "$round" true \
            ",\"rss_empty_kb\":$rss_empty,\"warm_conns\":$IDLE_WARM,\"rss_before_kb\":$rss0,\"rss_after_kb\":$rss1,\"conns_open\":$open,\"bytes_per_conn\":$bpc,\"bytes_per_conn_from_empty\":$bpc_all" "$res"
        log "  $server idle ${n}: $(grep -oE '"handshakes_per_sec":[0-9.]+' <<<"$res"), $bpc B/conn ($bpc_all B/conn from the empty server)"
    else
        record "$server" "idle_bytes_${n}" idle "$label_idle" "$round" false ",\"exit\":$rc" "$res"
        log "  $server idle ${n}: failed (exit $rc)"
    fi
}

# Rotate the server order each round so no server always runs first or last.
rotated() {
    local r=$1 n=${#SERVERS[@]} i
    for ((i = 0; i < n; i++)); do printf '%s ' "${SERVERS[$(((i + r) % n))]}"; done
}

log "servers: ${SERVERS[*]}; rounds $ROUNDS; ${WARMUP}s warm-up + ${DURATION}s per echo run"
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for size in $SIZES; do
        for conns in $CONNS; do
            for k in $INFLIGHT; do
                for server in $(rotated "$round"); do
                    for ((ATTEMPT = 0; ; ATTEMPT++)); do
                        wait_quiet
                        run_echo "$server" "$round" "$size" "$conns" "$k"
                        ((NOISY)) || break
                    done
                done
            done
        done
    done
    if ((IDLE_CONNS > 0)); then
        for server in $(rotated "$round"); do
            for ((ATTEMPT = 0; ; ATTEMPT++)); do
                wait_quiet
                run_idle "$server" "$round"
                ((NOISY)) || break
            done
        done
    fi
done

# --- metadata and summary ---
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ws_version=$(cd "$REPO/bench/peers" || exit; node -e "
  const path = require('path'); let p;
  try { p = require.resolve('ws/package.json'); }
  catch { p = path.join(process.env.WS_PACKAGE_DIR || '.', 'node_modules/ws/package.json'); }
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
{"benchmark":"echo","date":"$STAMP","commit":"$commit","dirty":$dirty,
 "machine":{"nproc":$(nproc),"cpu":$(json_str "$cpu"),"kernel":$(json_str "$(uname -r)"),"mem_kb":$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)},
 "servers":[${servers_json%,}],"rounds":$ROUNDS,"duration_s":$DURATION,"warmup_s":$WARMUP,
 "server_core":$SERVER_CORE,"gen_core":$GEN_CORE,"sched":"$SCHED","idle_conns":$IDLE_CONNS,
 "versions":{"node":$(json_str "$(node --version 2>/dev/null || true)"),"ws":$(json_str "$ws_version"),"uws":$(json_str "${UWS_VERSION:-}"),"base":$(json_str "$base_version")},
 "switchboard_commit":$(json_str "${SB_COMMIT:-$commit}"),
 "switchboard_cmd":$(json_str "serve --host 127.0.0.1 --port 0 --threads 1 --no-compression ${SB_EXTRA[*]}"),
 "base_commit":$(json_str "$base_commit"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
node "$REPO/bench/loadgen/summarize.mjs" "$RUNS" "$OUT" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
