#!/usr/bin/env bash
# Echo benchmark: Switchboard against node `ws` and, when UWS_ECHO_BIN is set, uWebSockets;
# when SB_BASE_BIN is set, also against a Switchboard built from an earlier commit ("base").
# Interleaved rounds, a fresh server for every run, server pinned to one core and the load
# generator (`switchboard bench echo` / `connect`, docs/bench.md) to the other; loopback only.
# Prints a table of medians and writes bench/results/echo-<date>.json. See bench/README.md.
#
# Three groups of rows:
#   main     SIZES × CONNS × INFLIGHT, one server thread, pinned as above; then handshakes/s
#            and the server's bytes per idle connection at IDLE_CONNS connections
#   threads  the server with --threads N for each N in THREADS (Switchboard, and uWebSockets
#            with one App per thread), the generator spread over THREADS_PROCS processes
#            (--procs), nothing pinned: on a 2-core machine server and generator share both
#            cores, so the rows report every process's CPU next to the rate
#   deflate  permessage-deflate negotiated on both sides (the generator offers it with
#            --deflate; Switchboard without --no-compression, `ws` and uWebSockets with
#            --deflate), pinned as in main
#
# Environment (all optional):
#   SB_BIN           default build/release/switchboard (skipped when missing). The server gets
#                    no SWITCHBOARD_* variables from this environment (they are its settings).
#   GEN_BIN          the generator, a switchboard binary with `bench` (default: SB_BIN)
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
#                    run as "$UWS_ECHO_BIN 0 [--threads N] [--deflate]", it must listen on
#                    127.0.0.1, print a line with "127.0.0.1:PORT" (or "port PORT"), echo with
#                    the same opcode, no compression unless --deflate; --threads N: N threads
#                    each with its own App on the same port. UWS_VERSION records its version.
#   WS_PACKAGE_DIR   a directory whose node_modules holds `ws`, when the repo has none
#   SERVERS          subset and order, default "switchboard ws uws base"
#   ROUNDS=3 DURATION=4 WARMUP=1 (seconds)  SIZES="64 16384" CONNS="100 1000" INFLIGHT="1 8"
#   IDLE_CONNS=10000 (handshakes/s and bytes per idle connection; 0 skips)  IDLE_SETTLE=1
#   IDLE_WARM=1000: connections opened (and held) before the baseline, so bytes per idle
#                   connection is the slope of RSS over the next IDLE_CONNS, without the
#                   one-time costs the first connections bring in (code pages of the
#                   handshake path, allocator arenas); 0 measures from the empty server
#   THREADS="1 2" ("" skips the group)  THREADS_CONNS="1000" THREADS_INFLIGHT="8"
#   THREADS_SIZE=64  THREADS_PROCS=2 (generator processes)  THREADS_SERVERS="switchboard uws"
#   DEFLATE="100:8" (conns:in-flight pairs; "" skips the group)  DEFLATE_SIZE=64
#   DRAIN=30: after the measured window the generator waits (at most DRAIN s) for the echoes
#   still on their way; one still missing then is an error (a slow peer with 80,000 messages
#   of 16 KiB in flight needs seconds to answer them all)
#   SERVER_CORE=0 GEN_CORE=1  OUT (result path)
#   SCHED=boost (default as root): server and generator each run in a session of their own
#   whose autogroup and nice are -20, so other work on a shared machine gets about 1% of their
#   cores; "fifo" runs them SCHED_FIFO (bad for multi-threaded node); "none" as they are.
#   QUIET_MAX=0.15 cores: before each run, wait (up to QUIET_TIMEOUT s: 0 with boost or fifo,
#   else 60) until the machine is this idle. NOISE_MAX=0.1: a pinned run in which the generator
#   spent more than this fraction of the time runnable but waiting for a CPU (other work on its
#   core) is repeated (up to NOISE_RETRIES=2 times), then kept but flagged. Unpinned runs
#   (threads) wait for the server's threads by design: recorded, not judged.
#   RUN_TIMEOUT=120: a generator still running after this many seconds is stopped.
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
DRAIN=${DRAIN:-30}
THREADS=${THREADS-"1 2"}
THREADS_CONNS=${THREADS_CONNS:-1000}
THREADS_INFLIGHT=${THREADS_INFLIGHT:-8}
THREADS_SIZE=${THREADS_SIZE:-64}
THREADS_PROCS=${THREADS_PROCS:-2}
THREADS_SERVERS=${THREADS_SERVERS:-"switchboard uws"}
DEFLATE=${DEFLATE-"100:8"}
DEFLATE_SIZE=${DEFLATE_SIZE:-64}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
GEN_BIN=${GEN_BIN:-$SB_BIN}
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
# server's own PID (for VmRSS and kill). The threads group runs unpinned (PIN=all).
PIN_SERVER_ONE=("${PRIO[@]}" taskset -c "$SERVER_CORE")
PIN_GEN_ONE=("${PRIO[@]}" taskset -c "$GEN_CORE")
PIN_NONE=("${PRIO[@]}")
NOISE_MAX=${NOISE_MAX:-0.1}
NOISE_RETRIES=${NOISE_RETRIES:-2}

if [[ ! -x $GEN_BIN ]] || ! "$GEN_BIN" bench --help 2>/dev/null | grep -q -- '--server-pid'; then
    log "the generator $GEN_BIN is missing or has no 'bench --server-pid' (build it: cmake --build --preset release --target switchboard)"
    exit 1
fi

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
                log "skip ws: run npm ci at the repo root, or set WS_PACKAGE_DIR"
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
# The threads group: the servers that run several event loops (node `ws` has one).
T_SERVERS=()
for s in "${SERVERS[@]}"; do
    [[ " $THREADS_SERVERS " == *" $s "* ]] && T_SERVERS+=("$s")
done

WORK=$(mktemp -d /tmp/sb-echo-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
GEN_BIN=$(abspath "$GEN_BIN")
UWS_ECHO_BIN=$(abspath "$UWS_ECHO_BIN")
SB_BASE_BIN=$(abspath "$SB_BASE_BIN")
if [[ -n ${WS_PACKAGE_DIR:-} ]]; then WS_PACKAGE_DIR=$(abspath "$WS_PACKAGE_DIR"); fi
cd "$WORK"  # nothing this script runs leaves files in the caller's directory
RUNS=$WORK/runs.jsonl
: > "$RUNS"
SPID=""
GPID=""
WARM_PID=""
NOISY=0
ATTEMPT=0
cleanup() {
    # Only the processes this script started, by PID.
    local p
    for p in "$GPID" "$WARM_PID" "$SPID"; do
        if [[ -n $p ]]; then kill "$p" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# start_server NAME THREADS DEFLATE(0|1) PINNED(0|1): sets SPID and SPORT.
start_server() {
    local name=$1 threads=$2 deflate=$3 pinned=$4 logf=$WORK/server.log
    local pin=("${PIN_SERVER_ONE[@]}")
    ((pinned)) || pin=("${PIN_NONE[@]}")
    local comp=(--no-compression) peer=()
    if ((deflate)); then comp=(); peer=(--deflate); fi
    local uws_threads=()
    ((threads > 1)) && uws_threads=(--threads "$threads")
    : > "$logf"
    case $name in
        switchboard)
            "${SB_ENV[@]}" "${pin[@]}" "$SB_BIN" serve --host 127.0.0.1 --port 0 --threads "$threads" \
                "${comp[@]}" "${SB_EXTRA[@]}" > "$logf" 2>&1 & ;;
        base)  # the same command line as switchboard, another build
            "${SB_ENV[@]}" "${pin[@]}" "$SB_BASE_BIN" serve --host 127.0.0.1 --port 0 --threads "$threads" \
                "${comp[@]}" "${SB_EXTRA[@]}" > "$logf" 2>&1 & ;;
        ws)
            WS_PACKAGE_DIR=${WS_PACKAGE_DIR:-} "${pin[@]}" \
                node "$REPO/bench/peers/ws_echo.mjs" 0 "${peer[@]}" > "$logf" 2>&1 & ;;
        uws)
            "${pin[@]}" "$UWS_ECHO_BIN" 0 "${uws_threads[@]}" "${peer[@]}" > "$logf" 2>&1 & ;;
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
    if [[ $comm =~ ^(env|nice|taskset|chrt|setsid|bash|sh)$ ]]; then
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

# gen_run PINNED(0|1) OUT.json ARGS...: runs `switchboard bench ARGS --json OUT.json` (bounded by
# RUN_TIMEOUT) and sets GEN_RC.
gen_run() {
    local pinned=$1 json=$2
    shift 2
    local pin=("${PIN_GEN_ONE[@]}")
    ((pinned)) || pin=("${PIN_NONE[@]}")
    rm -f "$json"
    GEN_RC=0
    "${pin[@]}" "$GEN_BIN" bench "$@" -q --json "$json" > "$WORK/gen.txt" 2>&1 &
    GPID=$!
    wait_generator "" || GEN_RC=$?
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\n'/ }"; }

# record SERVER GROUP TEST KIND LABEL ROUND OK EXTRA RESULT
record() {
    printf '{"server":"%s","group":"%s","test":"%s","kind":"%s","label":%s,"round":%s,"ok":%s%s,"result":%s}\n' \
        "$1" "$2" "$3" "$4" "$(json_str "$5")" "$6" "$7" "$8" "${9:-null}" >> "$RUNS"
}

fmt_int() { sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta' <<<"$1"; }

# run_echo SERVER ROUND GROUP SIZE CONNS INFLIGHT THREADS
run_echo() {
    local server=$1 round=$2 group=$3 size=$4 conns=$5 k=$6 threads=$7
    NOISY=0
    local test="echo_${size}B_${conns}c_${k}f" pinned=1 deflate=0 procs=1
    local label
    label="echo ${size} B, $(fmt_int "$conns") conns, ${k} in flight"
    case $group in
        threads)
            pinned=0; procs=$THREADS_PROCS
            test+="_t${threads}"
            label+=", server ${threads} thread$( ((threads > 1)) && echo s || true), generator ${procs} processes, unpinned" ;;
        deflate)
            deflate=1; test+="_deflate"; label+=", permessage-deflate" ;;
    esac
    label+=" (msg/s)"
    local opcode=()
    ((size > 1024)) && opcode=(--binary)
    local defl=()
    ((deflate)) && defl=(--deflate)
    if ! start_server "$server" "$threads" "$deflate" "$pinned"; then
        record "$server" "$group" "$test" echo "$label" "$round" false ',"error":"server did not start"'; return
    fi
    gen_run "$pinned" "$WORK/echo.json" echo --url "ws://127.0.0.1:$SPORT/echo" -c "$conns" -w "$k" \
        -s "$size" "${opcode[@]}" "${defl[@]}" -d "$DURATION" --warmup "$WARMUP" --drain "$DRAIN" \
        --procs "$procs" --server-pid "$SPID"
    stop_server
    local res
    res=$(node "$REPO/bench/gen_result.mjs" "$WORK/echo.json" "$GEN_RC")
    local wait_frac
    wait_frac=$(field "$res" gen_wait)
    if ((pinned)) && is_noisy "$wait_frac" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server $test: the generator waited for a CPU $wait_frac of the time; again"
        NOISY=1
        return
    fi
    local noisy=false ok=true
    ((pinned)) && is_noisy "$wait_frac" && noisy=true
    [[ $GEN_RC == 0 ]] || ok=false
    if ((deflate)) && [[ $(field "$res" compressed) != "$(field "$res" conns_ok)" ]]; then
        ok=false
        log "  $server $test: permessage-deflate was not negotiated on every connection"
    fi
    record "$server" "$group" "$test" echo "$label" "$round" "$ok" \
        ",\"exit\":$GEN_RC,\"cpu_wait\":$wait_frac,\"noisy\":$noisy,\"threads\":$threads,\"procs\":$procs,\"pinned\":$([[ $pinned == 1 ]] && echo true || echo false)" "$res"
    log "  $server $test: $(field "$res" msgs_per_sec) msg/s, server $(field "$res" server_cpu) / generator $(field "$res" gen_cpu) cores$([[ $ok == true ]] || echo " FAILED (exit $GEN_RC)")"
}

run_idle() {  # SERVER ROUND: handshakes/s and server bytes per idle connection, one fresh server
    local server=$1 round=$2 n=$IDLE_CONNS
    NOISY=0
    local label_hs label_idle
    label_hs="handshakes/s ($(fmt_int "$n") conns opened)"
    label_idle="server bytes per idle connection ($(fmt_int "$n") idle)"
    if ! start_server "$server" 1 0 1; then
        record "$server" main "handshakes_${n}" handshake "$label_hs" "$round" false ',"error":"server did not start"'
        return
    fi
    sleep 0.5  # let the runtime finish starting before the baseline
    local rss_empty rss0 rss1="" ready=$WORK/ready warm_ready=$WORK/warm-ready
    rss_empty=$(rss_kb "$SPID" || true)
    rm -f "$ready" "$warm_ready"
    if ((IDLE_WARM > 0)); then
        # Warm-up connections, held through the measurement; the baseline is taken after them.
        "${PIN_GEN_ONE[@]}" "$GEN_BIN" bench connect --url "ws://127.0.0.1:$SPORT/echo" -c "$IDLE_WARM" \
            --hold 150s --ready-file "$warm_ready" -q > /dev/null 2>&1 &
        WARM_PID=$!
        local warm_deadline=$((SECONDS + 60))
        while [[ ! -f $warm_ready ]] && kill -0 "$WARM_PID" 2>/dev/null && \
              ((SECONDS < warm_deadline)); do sleep 0.05; done
        sleep "$IDLE_SETTLE"
    fi
    rss0=$(rss_kb "$SPID" || true)
    # The measured connections: held IDLE_SETTLE + 2 s after the last one opened, then closed
    # cleanly by the generator itself.
    local hold
    hold=$(awk -v s="$IDLE_SETTLE" 'BEGIN { print s + 2 }')
    rm -f "$WORK/idle.json"
    "${PIN_GEN_ONE[@]}" "$GEN_BIN" bench connect --url "ws://127.0.0.1:$SPORT/echo" -c "$n" \
        --hold "${hold}s" --ready-file "$ready" --server-pid "$SPID" -q --json "$WORK/idle.json" \
        > /dev/null 2>&1 &
    GPID=$!
    local deadline=$((SECONDS + 90))
    while [[ ! -f $ready ]] && kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if [[ -f $ready ]]; then
        sleep "$IDLE_SETTLE"
        rss1=$(rss_kb "$SPID" || true)
    fi
    local rc=0
    deadline=$((SECONDS + RUN_TIMEOUT))
    while kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -TERM "$GPID" 2>/dev/null || true
    wait "$GPID" || rc=$?
    GPID=""
    if [[ -n $WARM_PID ]]; then
        kill -TERM "$WARM_PID" 2>/dev/null || true
        wait "$WARM_PID" 2>/dev/null || true
        WARM_PID=""
    fi
    stop_server
    local res
    res=$(node "$REPO/bench/gen_result.mjs" "$WORK/idle.json" "$rc")
    local ok=false
    [[ $rc == 0 && -n $rss1 ]] && ok=true
    local open other
    open=$(field "$res" open)
    other=$(field "$res" handshake_gen_wait)
    NOISY=0
    if is_noisy "$other" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server idle ${n}: the generator waited for a CPU $other of the time; again"
        NOISY=1
        return
    fi
    local noisy=false
    is_noisy "$other" && noisy=true
    record "$server" main "handshakes_${n}" handshake "$label_hs" "$round" "$ok" \
        ",\"exit\":$rc,\"cpu_wait\":$other,\"noisy\":$noisy" "$res"
    if [[ $ok == true && -n $rss0 && $open -gt 0 ]]; then
        local bpc=$(( (rss1 - rss0) * 1024 / open ))
        # The same run measured from the empty server (one-time costs included), for reference.
        local bpc_all=$(( (rss1 - rss_empty) * 1024 / (open + IDLE_WARM) ))
        record "$server" main "idle_bytes_${n}" idle "$label_idle" "$round" true \
            ",\"rss_empty_kb\":$rss_empty,\"warm_conns\":$IDLE_WARM,\"rss_before_kb\":$rss0,\"rss_after_kb\":$rss1,\"conns_open\":$open,\"bytes_per_conn\":$bpc,\"bytes_per_conn_from_empty\":$bpc_all" "$res"
        log "  $server idle ${n}: $(field "$res" handshakes_per_sec) handshakes/s, $bpc B/conn ($bpc_all B/conn from the empty server)"
    else
        record "$server" main "idle_bytes_${n}" idle "$label_idle" "$round" false ",\"exit\":$rc" "$res"
        log "  $server idle ${n}: failed (exit $rc)"
    fi
}

# Rotate the server order each round so no server always runs first or last.
rotated() {
    local r=$1 n i
    shift
    local list=("$@")
    n=${#list[@]}
    for ((i = 0; i < n; i++)); do printf '%s ' "${list[$(((i + r) % n))]}"; done
}

repeat() {  # FN ARGS...: again while the run was noisy (at most NOISE_RETRIES times)
    for ((ATTEMPT = 0; ; ATTEMPT++)); do
        wait_quiet
        "$@"
        ((NOISY)) || break
    done
}

log "servers: ${SERVERS[*]}; rounds $ROUNDS; ${WARMUP}s warm-up + ${DURATION}s per echo run; generator $GEN_BIN"
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for size in $SIZES; do
        for conns in $CONNS; do
            for k in $INFLIGHT; do
                for server in $(rotated "$round" "${SERVERS[@]}"); do
                    repeat run_echo "$server" "$round" main "$size" "$conns" "$k" 1
                done
            done
        done
    done
    if ((IDLE_CONNS > 0)); then
        for server in $(rotated "$round" "${SERVERS[@]}"); do
            repeat run_idle "$server" "$round"
        done
    fi
    if [[ -n $THREADS && ${#T_SERVERS[@]} -gt 0 ]]; then
        for conns in $THREADS_CONNS; do
            for t in $THREADS; do
                for server in $(rotated "$round" "${T_SERVERS[@]}"); do
                    repeat run_echo "$server" "$round" threads "$THREADS_SIZE" "$conns" "$THREADS_INFLIGHT" "$t"
                done
            done
        done
    fi
    for spec in $DEFLATE; do
        for server in $(rotated "$round" "${SERVERS[@]}"); do
            repeat run_echo "$server" "$round" deflate "$DEFLATE_SIZE" "${spec%%:*}" "${spec##*:}" 1
        done
    done
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
 "generator":"switchboard bench","generator_bin":$(json_str "$GEN_BIN"),
 "threads":{"counts":$(json_str "$THREADS"),"conns":$(json_str "$THREADS_CONNS"),"inflight":$THREADS_INFLIGHT,"size":$THREADS_SIZE,"gen_procs":$THREADS_PROCS},
 "deflate":{"specs":$(json_str "$DEFLATE"),"size":$DEFLATE_SIZE},
 "versions":{"node":$(json_str "$(node --version 2>/dev/null || true)"),"ws":$(json_str "$ws_version"),"uws":$(json_str "${UWS_VERSION:-}"),"base":$(json_str "$base_version")},
 "switchboard_commit":$(json_str "${SB_COMMIT:-$commit}"),
 "switchboard_cmd":$(json_str "serve --host 127.0.0.1 --port 0 --threads 1 --no-compression ${SB_EXTRA[*]}"),
 "base_commit":$(json_str "$base_commit"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
node "$REPO/bench/summarize_echo.mjs" "$RUNS" "$OUT" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
