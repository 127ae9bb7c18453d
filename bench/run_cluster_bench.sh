#!/usr/bin/env bash
# Multi-node benchmark: Switchboard nodes sharing channels through the Redis broker engine
# ([broker] engine = "redis"), the same through the NATS engine ([broker] engine = "nats", on
# NATS JetStream), and Socket.IO 4 nodes on @socket.io/redis-adapter; one Redis and one
# nats-server this script starts, same node count, same load, one after the other in the same
# run. Loopback only (127.0.0.0/8); every process it starts is stopped by its PID.
#
# Tests:
#   load     CONNS subscribers spread over NODES nodes (`switchboard bench fanout --url A,B,…`;
#            bench/peers/socketio/generator.mjs for Socket.IO, the same spread), in rooms of
#            ROOM_SIZE subscribers, one publisher per room on the first node paced at 1 msg/s:
#            every connection receives one message a second. Measured: delivery latency p50/p99
#            (from the time a publication was due), deliveries/s and loss, the broker's CPU
#            (redis-server's or nats-server's, whichever the row's nodes use) and the nodes'
#            CPU over the traffic phase (utime+stime deltas of /proc/PID/stat, % of one core),
#            the nodes' RSS growth per connection (sum of VmRSS at the busiest sample of the
#            traffic phase minus before connecting, over the connections opened).
#   fanout   1 room × FAN_SUBS subscribers spread over FAN_NODES nodes on the broker, against
#            the same on one node without one (Switchboard: memory engine; Socket.IO: its default
#            in-memory adapter): FAN_MSGS publications with FAN_WINDOW unacknowledged; the
#            deliveries/s are counted until the last one arrives, so the cost of the broker
#            shows as the ratio of the two.
#
# Environment (all optional):
#   SCALE=full       full: the defaults below; ci: CONNS=2000 NODES=3 DURATION=5 FAN_SUBS=1000
#                    FAN_NODES=3 FAN_MSGS=50 (what tests/cluster/test_cluster_bench.py runs);
#                    any variable set explicitly wins over either
#   CONNS=100000 NODES=6 ROOM_SIZE=100 (rooms = CONNS / ROOM_SIZE) INTERVAL=1s DURATION=30
#   SIZE=64 (payload bytes)  DRAIN=15 (s to wait for deliveries after the last publication)
#   PUBLISH=first    load test: every publisher on the first node (most deliveries cross
#                    the broker); "spread": publisher p on node p % NODES (the publishing spread too)
#   FAN_SUBS=10000 FAN_NODES=3 FAN_MSGS=200 FAN_WINDOW=16 FAN_PROCS=2
#   GEN_PROCS        generator processes of the load test (default: one per 19,000
#                    connections; each process may hold 20,000 open files)
#   SERVERS="switchboard switchboard-nats socketio"   subset and order (switchboard: the Redis
#                    engine; switchboard-nats: the NATS engine; socketio: redis-adapter). Left
#                    at its default, switchboard-nats is dropped with a warning when SB_BIN has no
#                    NATS engine or no nats-server can be had; named explicitly, that is an error
#   TESTS="load fanout"              subset
#   SB_BIN=build/release/switchboard  SB_ENGINE=auto (redis when SB_BIN has --broker-engine,
#                    else memory: each node alone, cross-node deliveries then count as lost)
#   REDIS_BIN=/usr/bin/redis-server (installed with apt-get when missing and run as root)
#   NATS_BIN=/usr/sbin/nats-server (the same; started with -js, its store in the run's temporary
#                    directory)  NATS_STORAGE=file (the nodes' --nats-storage: file or memory)
#   RUN_TIMEOUT      seconds a generator may run (default: 120 + DURATION + CONNS / 200: Socket.IO
#                    opens ~300 connections/s here, its client and server each ~1.7 ms of CPU per
#                    connection)
#   MIN_AVAIL_MB=2048  a run whose machine falls under this much available memory is stopped
#   OUT=bench/results/cluster-<date>.json (the markdown table goes next to it as .md)
#   KEEP_WORK=1      keep the run's temporary directory (every node's log, nats-server's log
#                    and store, the generators' logs and results) instead of removing it
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
SCALE=${SCALE:-full}
case $SCALE in
    full) ;;
    ci)
        CONNS=${CONNS:-2000} NODES=${NODES:-3} DURATION=${DURATION:-5}
        FAN_SUBS=${FAN_SUBS:-1000} FAN_NODES=${FAN_NODES:-3} FAN_MSGS=${FAN_MSGS:-50}
        DRAIN=${DRAIN:-10} ;;
    *) echo "SCALE must be full or ci" >&2; exit 2 ;;
esac
CONNS=${CONNS:-100000}
NODES=${NODES:-6}
ROOM_SIZE=${ROOM_SIZE:-100}
INTERVAL=${INTERVAL:-1s}
DURATION=${DURATION:-30}
SIZE=${SIZE:-64}
PUBLISH=${PUBLISH:-first}
DRAIN=${DRAIN:-15}
FAN_SUBS=${FAN_SUBS:-10000}
FAN_NODES=${FAN_NODES:-3}
FAN_MSGS=${FAN_MSGS:-200}
FAN_WINDOW=${FAN_WINDOW:-16}
FAN_PROCS=${FAN_PROCS:-2}
SERVERS_DEFAULT="switchboard switchboard-nats socketio"
SERVERS_GIVEN=${SERVERS+given}
SERVERS=${SERVERS:-$SERVERS_DEFAULT}
TESTS=${TESTS:-"load fanout"}
SB_BIN=$(abspath "${SB_BIN:-$REPO/build/release/switchboard}")
SB_ENGINE=${SB_ENGINE:-auto}
REDIS_BIN=${REDIS_BIN:-/usr/bin/redis-server}
NATS_BIN=${NATS_BIN:-/usr/sbin/nats-server}
NATS_STORAGE=${NATS_STORAGE:-file}
MIN_AVAIL_MB=${MIN_AVAIL_MB:-2048}
ROOMS=$(((CONNS + ROOM_SIZE - 1) / ROOM_SIZE))
GEN_PROCS=${GEN_PROCS:-$(((CONNS + ROOMS + 18999) / 19000))}
RUN_TIMEOUT=${RUN_TIMEOUT:-$((120 + ${DURATION%s} + CONNS / 200))}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=$(abspath "${OUT:-$REPO/bench/results/cluster-$STAMP.json}")
MD=${OUT%.json}.md
# lib.sh's wait_quiet: no waiting for a quiet machine by default (a long run on two cores
# cannot expect one); QUIET_TIMEOUT=60 turns it on.
QUIET_MAX=${QUIET_MAX:-0.15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-0}
NOISE_MAX=${NOISE_MAX:-0.1}
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done

[[ $PUBLISH == first || $PUBLISH == spread ]] || { log "PUBLISH: first or spread"; exit 2; }
for t in $TESTS; do [[ $t == load || $t == fanout ]] || { log "TESTS: load and/or fanout"; exit 2; }; done
for s in $SERVERS; do
    [[ $s == switchboard || $s == switchboard-nats || $s == socketio ]] ||
        { log "SERVERS: switchboard, switchboard-nats and/or socketio"; exit 2; }
done
[[ $NATS_STORAGE == file || $NATS_STORAGE == memory ]] || { log "NATS_STORAGE: file or memory"; exit 2; }
has_server() { [[ " $SERVERS " == *" $1 "* ]]; }
# drop_nats WHY: without the NATS rows when SERVERS was left at its default, else an error.
drop_nats() {
    if [[ -n $SERVERS_GIVEN ]]; then log "$1"; exit 1; fi
    log "warning: $1; running without switchboard-nats"
    SERVERS=$(for s in $SERVERS; do [[ $s == switchboard-nats ]] || printf '%s ' "$s"; done)
    SERVERS=${SERVERS% }
}
((NODES >= 1 && FAN_NODES >= 1 && CONNS >= 1)) || { log "NODES, FAN_NODES, CONNS >= 1"; exit 2; }

if { has_server switchboard || has_server socketio; } && [[ ! -x $REDIS_BIN ]]; then
    if [[ $(id -u) == 0 ]]; then
        log "installing redis-server"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    fi
    [[ -x $REDIS_BIN ]] || { log "no $REDIS_BIN (apt-get install redis-server)"; exit 1; }
fi
if { has_server switchboard || has_server switchboard-nats; } && [[ ! -x $SB_BIN ]]; then log "no $SB_BIN: build it first"; exit 1; fi
if has_server switchboard-nats; then
    # Read the whole help first: with pipefail, grep -q quitting early would fail the pipe.
    if [[ $("$SB_BIN" serve --help 2>/dev/null) != *--nats-url* ]]; then
        drop_nats "$SB_BIN has no NATS engine (no --nats-url)"
    elif [[ ! -x $NATS_BIN ]]; then
        if [[ $(id -u) == 0 ]]; then
            log "installing nats-server"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null || true
        fi
        [[ -x $NATS_BIN ]] || drop_nats "no $NATS_BIN (apt-get install nats-server)"
    fi
fi
[[ -n $SERVERS ]] || { log "SERVERS: nothing left to run"; exit 2; }
if [[ " $SERVERS " == *" socketio "* ]] &&
   ! (cd "$REPO" && node -e "require.resolve('socket.io'); require.resolve('socket.io-client'); require.resolve('@socket.io/redis-adapter'); require.resolve('redis')" 2>/dev/null); then
    log "no socket.io packages: run npm ci at the repo root"; exit 1
fi
if [[ $SB_ENGINE == auto ]]; then
    SB_ENGINE=memory
    # Read the whole help first: with pipefail, grep -q quitting early would fail the pipe.
    if has_server switchboard && [[ $("$SB_BIN" serve --help 2>/dev/null) == *--broker-engine* ]]; then
        SB_ENGINE=redis
    fi
fi
if [[ $SB_ENGINE == memory ]] && has_server switchboard; then
    log "warning: $SB_BIN has no Redis engine (no --broker-engine): its nodes run alone on the memory engine, and what crosses nodes is lost"
fi

# Node and generator processes hold up to ~20,000 sockets each (and no more than that).
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 20000)); then hard=20000; fi
ulimit -n "$hard"

WORK=$(mktemp -d /tmp/sb-cluster-bench.XXXXXX)
RUNS=$WORK/runs.jsonl
: > "$RUNS"
REDIS_PID="" RPORT="" NATS_PID="" NPORT=""
NODE_PIDS=() NODE_URLS=() NODE_LOGS=()
GEN_PID="" SAMPLER_PID=""

cleanup() {
    # Only what this script started, by PID.
    local p
    for p in $GEN_PID $SAMPLER_PID "${NODE_PIDS[@]}" $REDIS_PID $NATS_PID; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $GEN_PID $SAMPLER_PID "${NODE_PIDS[@]}" $REDIS_PID $NATS_PID; do kill -KILL "$p" 2>/dev/null || true; done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK (node, nats-server and generator logs)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# wait_listening PID LOGFILE NAME: prints the port of a "listening on 127.0.0.1:PORT" line.
wait_listening() {
    local pid=$1 logf=$2 name=$3 port="" deadline=$((SECONDS + 20))
    while [[ -z $port ]]; do
        port=$(grep -aoE 'listening on 127\.0\.0\.1:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
        [[ -n $port ]] && break
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            log "$name did not start:"; head -20 "$logf" >&2; return 1
        fi
        sleep 0.05
    done
    printf '%s' "$port"
}

start_redis() {
    # Port 0 is not an option for redis-server: pick a free one above the ephemeral range.
    local port
    for port in $(shuf -i 61100-65000 -n 20); do
        "$REDIS_BIN" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --loglevel warning --logfile "" > "$WORK/redis.log" 2>&1 &
        REDIS_PID=$!
        local i
        for i in $(seq 50); do
            if grep -q 'Address already in use' "$WORK/redis.log" 2>/dev/null || ! kill -0 "$REDIS_PID" 2>/dev/null; then break; fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then RPORT=$port; return 0; fi
            sleep 0.1
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    done
    log "redis-server did not start:"; cat "$WORK/redis.log" >&2; return 1
}

stop_pid() {  # PID: SIGTERM, then SIGKILL after 15 s
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

stop_redis() { [[ -n $REDIS_PID ]] && stop_pid "$REDIS_PID"; REDIS_PID=""; RPORT=""; }

start_nats() {
    # -p -1: a free port, which nats-server then logs.
    mkdir -p "$WORK/nats-store"
    "$NATS_BIN" -a 127.0.0.1 -p -1 -js -sd "$WORK/nats-store" > "$WORK/nats.log" 2>&1 &
    NATS_PID=$!
    local deadline=$((SECONDS + 20))
    while :; do
        NPORT=$(grep -aoE 'Listening for client connections on 127\.0\.0\.1:[0-9]+' "$WORK/nats.log" | head -1 | grep -oE '[0-9]+$' || true)
        if [[ -n $NPORT ]] && grep -q 'Server is ready' "$WORK/nats.log"; then return 0; fi
        if ! kill -0 "$NATS_PID" 2>/dev/null || ((SECONDS > deadline)); then
            log "nats-server did not start:"; tail -20 "$WORK/nats.log" >&2; return 1
        fi
        sleep 0.1
    done
}

stop_nats() { [[ -n $NATS_PID ]] && stop_pid "$NATS_PID"; NATS_PID=""; NPORT=""; }

cat > "$WORK/switchboard.toml" <<'EOF'
# The bench's nodes: no history and no presence (Socket.IO has neither), no limit on how fast
# the bench's publishers may publish, room for a subscriber's backlog in the fan-out test.
[messaging]
outbound_limit = "16MiB"
rate_limit = 100000
EOF

# start_nodes SERVER COUNT BROKER(redis|nats|none) PREFIX: sets NODE_PIDS and NODE_URLS.
start_nodes() {
    local server=$1 count=$2 broker=$3 prefix=$4 i port logf
    NODE_PIDS=() NODE_URLS=() NODE_LOGS=()
    for ((i = 0; i < count; i++)); do
        logf=$WORK/${prefix%-"$STAMP"}-x$count-node-$i.log
        NODE_LOGS+=("$logf")
        : > "$logf"
        if [[ $server == switchboard* ]]; then
            local broker_flags=()
            if [[ $broker == redis && $SB_ENGINE == redis ]]; then
                broker_flags=(--broker-engine redis --redis-address "127.0.0.1:$RPORT" --redis-prefix "$prefix")
            elif [[ $broker == nats ]]; then
                broker_flags=(--broker-engine nats --nats-url "nats://127.0.0.1:$NPORT" --nats-prefix "$prefix"
                              --nats-storage "$NATS_STORAGE")
            fi
            "${SB_ENV[@]}" "$SB_BIN" serve --config "$WORK/switchboard.toml" --host 127.0.0.1 --port 0 \
                --threads 1 --no-compression --no-echo --log-level warn --shutdown-timeout 2s \
                "${broker_flags[@]}" > "$logf" 2>&1 &
        else
            local redis=()
            [[ $broker == redis ]] && redis=(--redis "127.0.0.1:$RPORT" --prefix "$prefix")
            node --max-old-space-size=4096 "$REPO/bench/peers/socketio/server.mjs" --port 0 \
                "${redis[@]}" > "$logf" 2>&1 &
        fi
        NODE_PIDS+=($!)
        port=$(wait_listening "$!" "$logf" "$server node $i") || return 1
        if [[ $server == switchboard* ]]; then
            NODE_URLS+=("ws://127.0.0.1:$port/ws")
        else
            NODE_URLS+=("http://127.0.0.1:$port")
        fi
    done
}

# node_log_problems: what the nodes of the run that just ended logged (they run at --log-level
# warn: the first lines of each node, and how many), so an engine's trouble shows by its row.
# Not counted: the listening line and the start-up warning that auth is off (it is, here).
NODE_LOG_USUAL='^\s*$|listening on|auth: no keys in \[auth\]'
node_log_problems() {
    local i f n
    for ((i = 0; i < ${#NODE_LOGS[@]}; i++)); do
        f=${NODE_LOGS[$i]}
        n=$(grep -acvE "$NODE_LOG_USUAL" "$f" 2>/dev/null || true)
        ((${n:-0} > 0)) || continue
        log "  node $i logged $n line(s), the first:"
        grep -avE "$NODE_LOG_USUAL" "$f" | head -3 | cut -c1-300 | sed 's/^/    /' >&2 || true
    done
}

stop_nodes() {
    local p
    for p in "${NODE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
    NODE_PIDS=() NODE_URLS=()
}

ticks() {  # utime+stime of PID in clock ticks (the fields after the ")" of the command name)
    local s f
    s=$(< "/proc/$1/stat") || { echo 0; return; }
    read -r -a f <<< "${s##*) }"
    echo $((f[11] + f[12]))
}
PAGE_KB=$(($(getconf PAGESIZE) / 1024))
rss_kb() { local _ r; read -r _ r _ < "/proc/$1/statm" 2>/dev/null || { echo 0; return; }; echo $((r * PAGE_KB)); }
avail_mb() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }

# sampler FILE: every 0.5 s "wall redis_ticks nodes_ticks nodes_rss_kb avail_mb nats_ticks
# redis_rss_kb nats_rss_kb" until killed.
sampler() {
    local file=$1 t r n m p a rr nr
    while :; do
        t=$(date +%s.%N)
        r=0 rr=0; [[ -n $REDIS_PID ]] && { r=$(ticks "$REDIS_PID"); rr=$(rss_kb "$REDIS_PID"); }
        a=0 nr=0; [[ -n $NATS_PID ]] && { a=$(ticks "$NATS_PID"); nr=$(rss_kb "$NATS_PID"); }
        n=0 m=0
        for p in "${NODE_PIDS[@]}"; do n=$((n + $(ticks "$p"))); m=$((m + $(rss_kb "$p"))); done
        echo "$t $r $n $m $(avail_mb) $a $rr $nr" >> "$file"
        sleep 0.5
    done
}

# run_gen NAME SERVER TEST NODES ENGINE ARGS...: runs the generator against NODE_URLS, samples
# the processes meanwhile, appends one line to RUNS.
run_gen() {
    local name=$1 server=$2 test=$3 nodes=$4 engine=$5
    shift 5
    local out=$WORK/$name.json samples=$WORK/$name.samples logf=$WORK/$name.log
    local urls
    urls=$(IFS=,; echo "${NODE_URLS[*]}")
    local pub=()
    [[ $test == load && $PUBLISH == spread ]] && pub=(--publish-url "$urls")
    wait_quiet
    : > "$samples"
    sampler "$samples" &
    SAMPLER_PID=$!
    sleep 1.2  # the baseline: two samples before the first connection
    local start rc=0
    start=$(date +%s.%N)
    if [[ $server == switchboard* ]]; then
        "$SB_BIN" bench fanout --url "$urls" "${pub[@]}" -s "$SIZE" --drain "$DRAIN" \
            --connect-timeout 30s --json "$out" "$@" > "$logf" 2>&1 &
    else
        node "$REPO/bench/peers/socketio/generator.mjs" --url "$urls" "${pub[@]}" -s "$SIZE" \
            --drain "$DRAIN" --connect-timeout 30s --json "$out" "$@" > "$logf" 2>&1 &
    fi
    GEN_PID=$!
    local deadline=$((SECONDS + RUN_TIMEOUT)) why=""
    while kill -0 "$GEN_PID" 2>/dev/null; do
        if ((SECONDS >= deadline)); then why="still running after ${RUN_TIMEOUT}s"; fi
        if (($(avail_mb) < MIN_AVAIL_MB)); then why="available memory under ${MIN_AVAIL_MB} MB"; fi
        if [[ -n $why ]]; then
            log "  $name: $why; stopping the generator (it still reports)"
            kill -INT "$GEN_PID" 2>/dev/null || true
            local i
            for i in $(seq 100); do kill -0 "$GEN_PID" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$GEN_PID" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$GEN_PID" || rc=$?
    GEN_PID=""
    sleep 0.6
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    local alive=0 p
    for p in "${NODE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    # One JSON line: the run, the generator's result file and where the samples are.
    node -e '
      const fs = require("fs");
      const [name, server, test, nodes, engine, start, rc, alive, why, out, samples, logf] = process.argv.slice(1);
      let result = null;
      try { result = JSON.parse(fs.readFileSync(out, "utf8")); } catch {}
      const log = fs.readFileSync(logf, "utf8").split("\n").filter((l) => l.trim()).slice(-8).join("\n");
      console.log(JSON.stringify({ name, server, test, nodes: +nodes, engine, start: +start, exit: +rc,
                                   nodes_alive: +alive, stopped: why || null, log, samples, result }));' \
        "$name" "$server" "$test" "$nodes" "$engine" "$start" "$rc" "$alive" "$why" "$out" "$samples" \
        "$logf" >> "$RUNS"
    log "  $name: exit $rc$( [[ -s $out ]] || echo ', no result')"
}

log "cluster bench: $CONNS connections over $NODES nodes in $ROOMS rooms at 1 msg / $INTERVAL each, ${DURATION}s, publishers $PUBLISH; fan-out 1 room × $FAN_SUBS over $FAN_NODES nodes vs 1; servers: $SERVERS$(has_server switchboard && echo "; switchboard engine: $SB_ENGINE")$(has_server switchboard-nats && echo "; switchboard-nats storage: $NATS_STORAGE")"
if has_server switchboard || has_server socketio; then
    start_redis
    log "redis on 127.0.0.1:$RPORT (pid $REDIS_PID)"
fi
if has_server switchboard-nats; then
    start_nats
    log "nats-server on 127.0.0.1:$NPORT (pid $NATS_PID, JetStream store $WORK/nats-store, nodes' storage $NATS_STORAGE)"
fi
# check_nats_log: nats-server's warnings and errors since the last call (slow consumers, …).
NATS_LOG_SEEN=0
check_nats_log() {
    [[ -n $NATS_PID && -f $WORK/nats.log ]] || return 0
    local lines
    lines=$(wc -l < "$WORK/nats.log")
    tail -n +"$((NATS_LOG_SEEN + 1))" "$WORK/nats.log" | grep -aE '\[(WRN|ERR|FTL)\]' | head -5 | sed 's/^/  nats-server: /' >&2 || true
    NATS_LOG_SEEN=$lines
}
for t in $TESTS; do
    for server in $SERVERS; do
        engine=redis cluster_broker=redis
        [[ $server == switchboard ]] && engine=$SB_ENGINE
        [[ $server == switchboard-nats ]] && engine=nats cluster_broker=nats
        if [[ $t == load ]]; then
            log "$server: load, $NODES nodes"
            start_nodes "$server" "$NODES" "$cluster_broker" "sbbench-$server-load-$STAMP"
            if [[ $server == switchboard* ]]; then
                run_gen "$server-load" "$server" load "$NODES" "$engine" -c "$CONNS" --rooms "$ROOMS" \
                    --publishers "$ROOMS" -i "$INTERVAL" -d "$DURATION" --procs "$GEN_PROCS" -q
            else
                run_gen "$server-load" "$server" load "$NODES" "$engine" -c "$CONNS" --rooms "$ROOMS" \
                    --publishers "$ROOMS" -i "$INTERVAL" -d "$DURATION" --procs "$GEN_PROCS"
            fi
            node_log_problems
            stop_nodes
            check_nats_log
        else
            for n in "$FAN_NODES" 1; do
                broker=$cluster_broker
                e=$engine
                if ((n == 1)); then broker=none; e=memory; fi
                log "$server: fan-out, 1 room × $FAN_SUBS over $n node(s), broker $([[ $broker != none ]] && echo "$e" || echo none)"
                start_nodes "$server" "$n" "$broker" "sbbench-$server-fanout-$STAMP"
                q=()
                [[ $server == switchboard* ]] && q=(-q)
                run_gen "$server-fanout-$n" "$server" fanout "$n" "$e" -c "$FAN_SUBS" --rooms 1 \
                    --publishers 1 -w "$FAN_WINDOW" -n "$FAN_MSGS" --procs "$FAN_PROCS" "${q[@]}"
                node_log_problems
                stop_nodes
                check_nats_log
            done
        fi
    done
done
stop_redis
stop_nats

# --- metadata, summary, table ---
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
sb_version=$("$SB_BIN" version 2>/dev/null | head -1 || true)
redis_version=""
[[ -x $REDIS_BIN ]] && redis_version=$("$REDIS_BIN" --version | grep -oE 'v=[0-9.]+' | cut -c3-)
nats_version=""
if has_server switchboard-nats; then
    nats_version=$("$NATS_BIN" --version 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)
fi
mkdir -p "$(dirname "$OUT")"
# The summary reads the run's parameters from CB_* variables.
CB_DATE=$STAMP CB_COMMIT=$commit CB_DIRTY=$dirty CB_SB_VERSION=$sb_version CB_SB_ENGINE=$SB_ENGINE \
CB_REDIS_VERSION=$redis_version CB_NATS_VERSION=$nats_version CB_NATS_STORAGE=$NATS_STORAGE CB_CLK_TCK=$(getconf CLK_TCK) CB_SCALE=$SCALE CB_CONNS=$CONNS \
CB_NODES=$NODES CB_ROOMS=$ROOMS CB_INTERVAL=$INTERVAL CB_DURATION=${DURATION%s} CB_SIZE=$SIZE \
CB_GEN_PROCS=$GEN_PROCS CB_FAN_SUBS=$FAN_SUBS CB_FAN_NODES=$FAN_NODES CB_FAN_MSGS=$FAN_MSGS \
CB_FAN_WINDOW=$FAN_WINDOW CB_FAN_PROCS=$FAN_PROCS CB_PUBLISH=$PUBLISH \
    node "$REPO/bench/cluster_summary.mjs" --runs "$RUNS" --out "$OUT" --md "$MD"
cat "$MD"
log "wrote $OUT and $MD"
