#!/usr/bin/env bash
# Fan-out benchmark: Switchboard (native protocol, history and presence on and off) against a
# node `ws` room-broadcast server (bench/peers/ws_broadcast.mjs), a uWebSockets pub/sub server
# when UWS_BROADCAST_BIN is set and, when SB_BASE_BIN is set, a Switchboard built from an
# earlier commit ("base"). Interleaved rounds, a fresh server for every run, server pinned to
# one core and the generator (`switchboard bench fanout`, docs/bench.md) to the other;
# loopback only. Prints a table of medians and writes bench/results/fanout-<date>.json.
#
# Tests:
#   broadcast  N subscribers in one room, one publisher keeping W publications ahead of the
#              slowest subscriber (`--flow delivery`: a publication is done when every
#              subscriber has it); deliveries/s (messages received by all subscribers), every
#              subscriber checked for loss, duplicates and order, and on Switchboard that the
#              channel offset grows by exactly 1. Default rows 1,000 × W=32 (the headline),
#              1,000 × W=1, 1,000 × W=256 (the deep window) and 10,000 × W=32 (BCAST).
#   latency    10,000 subscribers, each in a room of its own, one publisher connection
#              publishing 1 msg/s to every room (10,000/s, each send leaving when due;
#              `--multi-room`); p50/p90/p99/p99.9/max from the intended send time to receipt.
#   threads    the broadcast rows of FAN_THREADS_SPECS with the server on --threads N for each N
#              in FAN_THREADS (Switchboard; uWebSockets with one App per thread, which hands
#              each message to the other threads' loops: its topics do not cross threads), the
#              generator in THREADS_PROCS processes, nothing pinned (2 cores: server and
#              generator share them; every process's CPU is reported).
#   deflate    the broadcast rows of FAN_DEFLATE with permessage-deflate negotiated by every
#              connection (generator --deflate; Switchboard without --no-compression, the
#              peers with --deflate), pinned.
#
# Environment (all optional):
#   SB_BIN        default build/release/switchboard (skipped when missing). Started with no
#                 SWITCHBOARD_* variables (they are its settings), --config from this script.
#   GEN_BIN       the generator, a switchboard binary with `bench` (default: SB_BIN)
#   SB_COMMIT     the commit SB_BIN was built from, when it is not the work tree's HEAD
#   SB_BASE_BIN   the "base" server: a Switchboard built from an earlier commit, outside the repo
#                 (e.g. a git worktree), for before/after runs (skipped when unset). Started
#                 exactly like switchboard (same flags, same --config, no SWITCHBOARD_*), so the
#                 config must only hold keys both builds accept (check with
#                 "$SB_BASE_BIN check-config --config FILE"); ratios are against switchboard.
#   SB_BASE_COMMIT  the commit SB_BASE_BIN was built from (default: HEAD of the git work tree
#                 holding SB_BASE_BIN, if any)
#   SERVERS       subset and order, default "switchboard ws uws base"
#   FEATURES="on off"  history and presence of the Switchboard servers: "on" (the config
#                 below), "off" (the same config with history_size = 0 and presence = false),
#                 or both, interleaved within each round. Rows run with them off get tests
#                 named *_off and labels saying so; ws and uws have neither feature and run once
#                 per row, with the first entry. The threads and deflate groups run "on" only.
#   UWS_BROADCAST_BIN  a uWebSockets pub/sub server built outside the repo (skipped when
#                 unset); run as "$UWS_BROADCAST_BIN 0 [--threads N] [--deflate]", it must listen
#                 on 127.0.0.1, print a line with "127.0.0.1:PORT", put each client in the room
#                 named by its URL path and publish every message to the other clients of that
#                 room with its opcode (uWS pub/sub, like bench/peers/ws_broadcast.mjs, "/pub"
#                 included); no compression unless --deflate. UWS_VERSION records its version.
#   ROUNDS=3  SIZE=64 (payload bytes)
#   BCAST="1000:32 1000:1 1000:256 10000:32"  (subscribers:window pairs; "" skips)
#   BCAST_DURATION=4 BCAST_WARMUP=1 (seconds)
#   LAT_SUBS=10000 (0 skips) LAT_RATE=1 (msg/s per room) LAT_PUBLISHERS=1
#   LAT_DURATION=15 LAT_WARMUP=2
#   FAN_THREADS="1 2" ("" skips the group) FAN_THREADS_SPECS="1000:32 10000:32"
#   THREADS_PROCS=2 (generator processes) THREADS_SERVERS="switchboard uws"
#   FAN_DEFLATE="1000:32" ("" skips the group)
#   DRAIN=30: after the measurement the generator waits (at most DRAIN s) for the
#   publications still on their way; what has not arrived then counts as lost.
#   SERVER_CORE=0 GEN_CORE=1  OUT (result path)
#   WS_NODE_MODULES  a directory whose node_modules holds `ws`, when the repo has none
#   SCHED=boost (default as root): server and generator each in a session of their own with
#   autogroup and nice -20 (see bench/README.md); "fifo" = chrt -f; "none" = as they are, and
#   then wait (QUIET_TIMEOUT=60 s) before each run until the machine is under QUIET_MAX=0.15
#   busy cores. NOISE_MAX=0.1: a pinned run in which the generator waited for a CPU more than
#   this fraction of the time is repeated (up to NOISE_RETRIES=2 times), then kept but flagged.
#   RUN_TIMEOUT=120: a generator still running after this many seconds is stopped.
#   BUSY_POLL=1: the generator runs with --busy-poll (never sleeps; see docs/bench.md), so a
#   server's sends do not pay for waking it on loopback (recorded as "busy_poll" in the JSON).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-64}
BCAST=${BCAST-"1000:32 1000:1 1000:256 10000:32"}
BCAST_DURATION=${BCAST_DURATION:-4}
BCAST_WARMUP=${BCAST_WARMUP:-1}
DRAIN=${DRAIN:-30}
BUSY_POLL=${BUSY_POLL:-0}
LAT_SUBS=${LAT_SUBS:-10000}
LAT_RATE=${LAT_RATE:-1}
LAT_PUBLISHERS=${LAT_PUBLISHERS:-1}
LAT_DURATION=${LAT_DURATION:-15}
LAT_WARMUP=${LAT_WARMUP:-2}
FAN_THREADS=${FAN_THREADS-"1 2"}
FAN_THREADS_SPECS=${FAN_THREADS_SPECS:-"1000:32 10000:32"}
THREADS_PROCS=${THREADS_PROCS:-2}
THREADS_SERVERS=${THREADS_SERVERS:-"switchboard uws"}
FAN_DEFLATE=${FAN_DEFLATE-"1000:32"}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
GEN_BIN=${GEN_BIN:-$SB_BIN}
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done
SB_BASE_BIN=${SB_BASE_BIN:-}
SB_BASE_COMMIT=${SB_BASE_COMMIT:-}
SERVERS_WANTED=${SERVERS:-"switchboard ws uws base"}
FEATURES=${FEATURES:-"on off"}
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
PIN_SERVER_ONE=("${PRIO[@]}" taskset -c "$SERVER_CORE")
PIN_GEN_ONE=("${PRIO[@]}" taskset -c "$GEN_CORE")
PIN_NONE=("${PRIO[@]}")
NOISE_MAX=${NOISE_MAX:-0.1}
NOISE_RETRIES=${NOISE_RETRIES:-2}

if [[ ! -x $GEN_BIN ]] || ! "$GEN_BIN" bench --help 2>/dev/null | grep -q -- '--flow'; then
    log "the generator $GEN_BIN is missing or has no 'bench --flow' (build it: cmake --build --preset release --target switchboard)"
    exit 1
fi

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
T_SERVERS=()
for s in "${SERVERS[@]}"; do
    [[ " $THREADS_SERVERS " == *" $s "* ]] && T_SERVERS+=("$s")
done

WORK=$(mktemp -d /tmp/sb-fanout-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
GEN_BIN=$(abspath "$GEN_BIN")
SB_BASE_BIN=$(abspath "$SB_BASE_BIN")
UWS_BROADCAST_BIN=$(abspath "${UWS_BROADCAST_BIN:-}")
if [[ -n ${WS_NODE_MODULES:-} ]]; then WS_NODE_MODULES=$(abspath "$WS_NODE_MODULES"); fi
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
SB_CMD=(serve --config "$WORK/switchboard.toml" --host 127.0.0.1 --port 0 --log-level warn)
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

start_server() {  # NAME THREADS DEFLATE(0|1) PINNED(0|1): sets SPID and SPORT
    local name=$1 threads=$2 deflate=$3 pinned=$4 logf=$WORK/server.log
    local pin=("${PIN_SERVER_ONE[@]}")
    ((pinned)) || pin=("${PIN_NONE[@]}")
    local comp=(--no-compression) peer=()
    if ((deflate)); then comp=(); peer=(--deflate); fi
    local uws_threads=()
    ((threads > 1)) && uws_threads=(--threads "$threads")
    : > "$logf"
    case $name in
        switchboard | base)  # base: the same command line and config, another build
            local bin=$SB_BIN config=$WORK/switchboard.toml
            [[ $name == base ]] && bin=$SB_BASE_BIN
            [[ $FEAT == off ]] && config=$WORK/switchboard-off.toml
            "${SB_ENV[@]}" "${pin[@]}" "$bin" serve --config "$config" --host 127.0.0.1 --port 0 \
                --threads "$threads" "${comp[@]}" --log-level warn > "$logf" 2>&1 & ;;
        ws)
            WS_NODE_MODULES=${WS_NODE_MODULES:-} "${pin[@]}" \
                node "$REPO/bench/peers/ws_broadcast.mjs" 0 "${peer[@]}" > "$logf" 2>&1 & ;;
        uws)
            "${pin[@]}" "$UWS_BROADCAST_BIN" 0 "${uws_threads[@]}" "${peer[@]}" > "$logf" 2>&1 & ;;
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
    if [[ $comm =~ ^(env|nice|taskset|chrt|setsid|bash|sh)$ ]]; then
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

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ | }"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
fmt_int() { sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta' <<<"$1"; }

# run_one SERVER ROUND GROUP TEST LABEL THREADS DEFLATE PINNED PROCS KIND: KIND is "broadcast
# SUBS WINDOW" or "latency". Starts the server, runs `switchboard bench fanout`, records.
run_one() {
    local server=$1 round=$2 group=$3 test=$4 label=$5 threads=$6 deflate=$7 pinned=$8 procs=$9
    shift 9
    NOISY=0
    if ! start_server "$server" "$threads" "$deflate" "$pinned"; then
        printf '{"server":"%s","group":"%s","test":"%s","label":%s,"round":%s,"ok":false,"error":"server did not start","result":null}\n' \
            "$server" "$group" "$test" "$(json_str "$label")" "$round" >> "$RUNS"
        return
    fi
    local args=()
    if [[ $server == ws || $server == uws ]]; then
        args=(--mode plain --url "ws://127.0.0.1:$SPORT/room/{room}")
    else
        args=(--mode native --url "ws://127.0.0.1:$SPORT/ws" --channel-prefix "room:")
    fi
    if [[ $1 == broadcast ]]; then
        args+=(-c "$2" -w "$3" --flow delivery -d "$BCAST_DURATION" --warmup "$BCAST_WARMUP")
    else
        # Rooms of one subscriber, LAT_PUBLISHERS publishers each serving its share of them in
        # turn: LAT_RATE per room and second in all.
        local interval_ms
        interval_ms=$(awk -v p="$LAT_PUBLISHERS" -v n="$LAT_SUBS" -v r="$LAT_RATE" 'BEGIN { printf "%.6f", 1000 * p / (n * r) }')
        args+=(-c "$LAT_SUBS" --rooms "$LAT_SUBS" --publishers "$LAT_PUBLISHERS" --multi-room
               -i "${interval_ms}ms" -d "$LAT_DURATION" --warmup "$LAT_WARMUP")
        [[ $server == ws || $server == uws ]] && args+=(--publish-url "ws://127.0.0.1:$SPORT/pub")
    fi
    ((deflate)) && args+=(--deflate)
    ((BUSY_POLL)) && args+=(--busy-poll)
    local gpin=("${PIN_GEN_ONE[@]}")
    ((pinned)) || gpin=("${PIN_NONE[@]}")
    local rc=0 json=$WORK/gen.json
    rm -f "$json"
    "${gpin[@]}" "$GEN_BIN" bench fanout "${args[@]}" -s "$SIZE" --drain "$DRAIN" --procs "$procs" \
        --server-pid "$SPID" -q --json "$json" > "$WORK/gen.txt" 2>&1 &
    GPID=$!
    wait_generator "$server $test: " || rc=$?
    local hwm
    hwm=$(hwm_kb "$SPID")
    stop_server
    local res server_log
    res=$(node "$REPO/bench/gen_result.mjs" "$json" "$rc")
    # Whatever the server printed besides its listening line (warnings, errors, crashes).
    # (Not the start-up notice that the bench config has no auth keys: every run prints it.)
    server_log=$(grep -av -e 'listening on' -e 'auth: no keys in \[auth\]' "$WORK/server.log" | head -20 || true)
    local wait_frac
    wait_frac=$(field "$res" gen_wait)
    if ((pinned)) && is_noisy "$wait_frac" && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $server $test: the generator waited for a CPU $wait_frac of the time; again"
        NOISY=1
        return
    fi
    local noisy=false
    ((pinned)) && is_noisy "$wait_frac" && noisy=true
    # A server that died before we stopped it failed; one that needed SIGKILL is only noted.
    local ok=false
    [[ $rc == 0 && $SERVER_ALIVE == true ]] && ok=true
    if ((deflate)) && [[ $(field "$res" compressed) != "$(field "$res" conns_ok)" ]]; then
        ok=false
        log "  $server $test: permessage-deflate was not negotiated on every connection"
    fi
    printf '{"server":"%s","group":"%s","test":"%s","label":%s,"round":%s,"features":"%s","threads":%s,"procs":%s,"pinned":%s,"ok":%s,"exit":%s,"cpu_wait":%s,"noisy":%s,"server_alive_at_end":%s,"server_exit":%s,"server_killed":%s,"server_hwm_kb":%s,"server_log":%s,"result":%s}\n' \
        "$server" "$group" "$test" "$(json_str "$label")" "$round" "$FEAT" "$threads" "$procs" \
        "$([[ $pinned == 1 ]] && echo true || echo false)" "$ok" "$rc" "$wait_frac" "$noisy" \
        "$SERVER_ALIVE" "${SERVER_EXIT:-null}" "$SERVER_KILLED" "${hwm:-null}" "$(json_str "$server_log")" "$res" >> "$RUNS"
    local summary
    if [[ $test == latency* ]]; then
        summary="p50 $(field "$res" p50) p99 $(field "$res" p99) max $(field "$res" max) us"
    else
        summary="$(field "$res" deliveries_per_sec) deliveries/s"
    fi
    summary+=", lost $(field "$res" lost), offsets $(field "$res" offset_errors), server cpu $(field "$res" server_cpu), gen cpu $(field "$res" gen_cpu)"
    [[ $ok == true ]] || summary+=" FAILED (generator exit $rc, server alive $SERVER_ALIVE exit ${SERVER_EXIT:-?}; $(grep -oE '"first_error":"[^"]*"' <<<"$res" || true))"
    [[ $SERVER_KILLED == true ]] && summary+=" (server needed SIGKILL)"
    [[ -n $server_log ]] && summary+=" [server log: $(head -c 200 <<<"$server_log" | tr '\n' ' ')]"
    log "  $server $test: $summary"
}

rotated() {
    local r=$1 n i
    shift
    local list=("$@")
    n=${#list[@]}
    for ((i = 0; i < n; i++)); do printf '%s ' "${list[$(((i + r) % n))]}"; done
}

# servers_for ROUND SERVERS...: the rotated servers that take part with FEAT (ws and uws have
# no history or presence: they run with the first FEATURES entry only).
servers_for() {
    local r=$1 s
    shift
    for s in $(rotated "$r" "$@"); do
        if [[ $s == switchboard || $s == base || $FEAT == "${FEATURE_LIST[0]}" ]]; then printf '%s ' "$s"; fi
    done
}
# Test-name and label suffixes of FEAT ("on" keeps the names the page has always had).
feat_test() { [[ $FEAT == off ]] && printf '_off'; return 0; }
feat_label() { [[ $FEAT == off ]] && printf ', history and presence off'; return 0; }

repeat_run() {  # ARGS of run_one
    for ((ATTEMPT = 0; ; ATTEMPT++)); do
        wait_quiet
        run_one "$@"
        ((NOISY)) || break
    done
}

log "servers: ${SERVERS[*]}; rounds $ROUNDS; broadcast ${BCAST:-none}; latency ${LAT_SUBS} rooms; history and presence: ${FEATURES}; threads ${FAN_THREADS:-none}; deflate ${FAN_DEFLATE:-none}; generator $GEN_BIN"
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for spec in $BCAST; do
        subs=${spec%%:*}
        win=${spec##*:}
        for FEAT in "${FEATURE_LIST[@]}"; do
            for server in $(servers_for "$round" "${SERVERS[@]}"); do
                repeat_run "$server" "$round" main "broadcast_${subs}s_w${win}$(feat_test)" \
                    "fan-out, 1 room × $(fmt_int "$subs") subscribers, ${win} in flight$(feat_label) (deliveries/s)" \
                    1 0 1 1 broadcast "$subs" "$win"
            done
        done
    done
    if ((LAT_SUBS > 0)); then
        for FEAT in "${FEATURE_LIST[@]}"; do
            for server in $(servers_for "$round" "${SERVERS[@]}"); do
                repeat_run "$server" "$round" main "latency_${LAT_SUBS}r$(feat_test)" \
                    "latency, $(fmt_int "$LAT_SUBS") rooms × 1 subscriber, ${LAT_RATE} msg/s per room$(feat_label)" \
                    1 0 1 1 latency
            done
        done
    fi
    FEAT=on
    if [[ -n $FAN_THREADS && ${#T_SERVERS[@]} -gt 0 ]]; then
        for spec in $FAN_THREADS_SPECS; do
            subs=${spec%%:*}
            win=${spec##*:}
            for t in $FAN_THREADS; do
                for server in $(rotated "$round" "${T_SERVERS[@]}"); do
                    repeat_run "$server" "$round" threads "broadcast_${subs}s_w${win}_t${t}" \
                        "fan-out, 1 room × $(fmt_int "$subs") subscribers, ${win} in flight, server ${t} thread$( ((t > 1)) && echo s || true), generator ${THREADS_PROCS} processes, unpinned (deliveries/s)" \
                        "$t" 0 0 "$THREADS_PROCS" broadcast "$subs" "$win"
                done
            done
        done
    fi
    for spec in $FAN_DEFLATE; do
        subs=${spec%%:*}
        win=${spec##*:}
        for server in $(rotated "$round" "${SERVERS[@]}"); do
            repeat_run "$server" "$round" deflate "broadcast_${subs}s_w${win}_deflate" \
                "fan-out, 1 room × $(fmt_int "$subs") subscribers, ${win} in flight, permessage-deflate (deliveries/s)" \
                1 1 1 1 broadcast "$subs" "$win"
        done
    done
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
 "generator":"switchboard bench","generator_bin":$(json_str "$GEN_BIN"),
 "broadcast":{"specs":$(json_str "$BCAST"),"duration_s":$BCAST_DURATION,"warmup_s":$BCAST_WARMUP,"flow":"delivery"},
 "latency":{"rooms":$LAT_SUBS,"rate_per_room":$LAT_RATE,"publishers":$LAT_PUBLISHERS,"duration_s":$LAT_DURATION,"warmup_s":$LAT_WARMUP},
 "threads":{"counts":$(json_str "$FAN_THREADS"),"specs":$(json_str "$FAN_THREADS_SPECS"),"gen_procs":$THREADS_PROCS},
 "deflate":{"specs":$(json_str "$FAN_DEFLATE")},
 "drain_s":$DRAIN,
 "busy_poll":$((BUSY_POLL ? 1 : 0)),
 "server_core":$SERVER_CORE,"gen_core":$GEN_CORE,"sched":"$SCHED",
 "versions":{"node":$(json_str "$(node --version 2>/dev/null || true)"),"ws":$(json_str "$ws_version"),"uws":$(json_str "${UWS_VERSION:-}"),"base":$(json_str "$base_version")},
 "switchboard_commit":$(json_str "${SB_COMMIT:-$commit}"),
 "base_commit":$(json_str "$base_commit"),
 "features":$(json_str "$FEATURES"),
 "switchboard_cmd":$(json_str "${SB_CMD[*]} --threads 1 --no-compression"),
 "switchboard_config":$(json_str "$(cat "$WORK/switchboard.toml")"),
 "switchboard_config_off":$(json_str "$(cat "$WORK/switchboard-off.toml")"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
node "$REPO/bench/summarize_fanout.mjs" "$RUNS" "$OUT" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
