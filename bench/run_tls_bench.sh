#!/usr/bin/env bash
# TLS benchmark: what wss:// costs Switchboard, against a TLS-terminating proxy, in one run.
# Configurations, each a single-threaded Switchboard (--threads 1, no compression):
#   ws       ws:// straight to Switchboard (plain, the reference)
#   wss      wss:// straight to Switchboard (TLS in the server: --tls-cert/--tls-key)
#   haproxy  wss:// to haproxy (nbthread 1, `ssl crt`, HAPROXY_MODE http or tcp) in front of a
#            plain Switchboard; haproxy and Switchboard share the server core, so every
#            configuration gets the same one core for the whole server side
#   wss-resumed, haproxy-resumed   the same servers as wss and haproxy, the generator with
#            --tls-resume (handshake test only): it keeps the newest session ticket and offers
#            it on new connections, so all but the first ones (opened before a ticket arrived:
#            about one connect window) resume instead of doing a full handshake
# Tests (switchboard bench as the generator, 64-byte text messages):
#   echo       ws wss haproxy: 100 connections × 1 and 8 messages in flight: msg/s after a warm-up
#   handshakes open HS_CONNS connections as fast as the generator can (--connect-window 256),
#              hold them 1 s, close them: connections/s of the opening phase (TCP + TLS +
#              WebSocket upgrade), connect-time percentiles, server CPU per connection
# Full vs resumed handshakes are counted by the server side after every TLS run: Switchboard's
# switchboard_tls_handshakes_total{result="full"|"resumed"|"failed"} (its /metrics scrape adds
# one full handshake, subtracted), and for haproxy its frontend's ssl_sess / ssl_reused_sess /
# ssl_failed_handshake (`show stat` on a stats socket). The result JSON has them per run and per
# configuration, with the server CPU per resumed connection derived from the resumed run's CPU
# per connection, its resumed fraction and the same round's full-handshake run.
# Interleaved rounds (the configuration order rotates), a fresh server (and haproxy) for every
# run, server side pinned to SERVER_CORE and the generator to GEN_CORE; loopback only. A
# throwaway CA and certificate are made with the openssl CLI in a temp dir (removed at exit).
# Prints a table of medians and writes bench/results/tls-<date>.json (read by
# bench/report.mjs). See bench/README.md.
#
# Environment (all optional):
#   SB_BIN          default build/release/switchboard: a build with TLS (serve --tls-cert); its
#                   `bench` subcommand is the generator. Started with no SWITCHBOARD_* variables.
#   SB_COMMIT       the commit SB_BIN was built from, when it is not the work tree's HEAD
#   CONFIGS         subset and order, default "ws wss haproxy wss-resumed haproxy-resumed" (the
#                   -resumed ones run only in the handshake test)
#   HAPROXY         haproxy binary (default: haproxy on PATH; as root the Debian package is
#                   installed with apt-get when missing; without it the haproxy rows are skipped)
#   HAPROXY_MODE    http (default: the usual WebSocket reverse proxy, upgrade then tunnel) or tcp
#   HAPROXY_CORE    default SERVER_CORE (the machine has two cores: the generator needs the other)
#   KEY_TYPE        ec (default: ECDSA P-256, Let's Encrypt's default key) or rsa (RSA 2048)
#   VERIFY          ca (default: the generator verifies the chain with --ca) or insecure
#   ROUNDS=3 DURATION=4 WARMUP=1 (seconds: msg/s is counted over the DURATION whole seconds of
#   the generator's timeline after WARMUP s of traffic)  SIZE=64  ECHO_CONNS=100  INFLIGHT="1 8"
#   HS_CONNS=4000 (0 skips the handshake test)  HS_HOLD=1 (s)
#   SERVER_CORE=0 GEN_CORE=1  OUT (result path)  RUN_TIMEOUT=60 (s per generator run)
#   SCHED=boost (default as root): server side and generator each in a session of their own with
#   autogroup and nice -20 (see bench/README.md); "fifo" = chrt -f; "none" = as they are, and
#   then wait (QUIET_TIMEOUT=60 s) before each run until the machine is under QUIET_MAX=0.15
#   busy cores. NOISE_MAX=0.1: a run in which the generator waited for a CPU (its
#   /proc/PID/schedstat) more than this fraction of the measured window is repeated (up to
#   NOISE_RETRIES=2 times), then kept but flagged.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
SIZE=${SIZE:-64}
ECHO_CONNS=${ECHO_CONNS:-100}
INFLIGHT=${INFLIGHT:-"1 8"}
HS_CONNS=${HS_CONNS:-4000}
HS_HOLD=${HS_HOLD:-1}
SERVER_CORE=${SERVER_CORE:-0}
GEN_CORE=${GEN_CORE:-1}
HAPROXY_CORE=${HAPROXY_CORE:-$SERVER_CORE}
HAPROXY_MODE=${HAPROXY_MODE:-http}
KEY_TYPE=${KEY_TYPE:-ec}
VERIFY=${VERIFY:-ca}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
SB_ENV=(env)
for v in $(compgen -e); do [[ $v == SWITCHBOARD_* ]] && SB_ENV+=(-u "$v"); done
CONFIGS_WANTED=${CONFIGS:-"ws wss haproxy wss-resumed haproxy-resumed"}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${OUT:-$REPO/bench/results/tls-$STAMP.json}
QUIET_MAX=${QUIET_MAX:-0.15}
if [[ $(id -u) == 0 ]]; then SCHED=${SCHED:-boost}; else SCHED=${SCHED:-none}; fi
BOOST='echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"'
case $SCHED in
    boost) PRIO=(setsid bash -c "$BOOST" boost); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    fifo) PRIO=(chrt -f 10); QUIET_TIMEOUT=${QUIET_TIMEOUT:-0} ;;
    none) PRIO=(); QUIET_TIMEOUT=${QUIET_TIMEOUT:-60} ;;
    *) echo "SCHED must be boost, fifo or none" >&2; exit 2 ;;
esac
# Every prefix execs the next program, so $! is the server's (haproxy's, generator's) own PID.
PIN_SERVER=("${PRIO[@]}" taskset -c "$SERVER_CORE")
PIN_HAPROXY=("${PRIO[@]}" taskset -c "$HAPROXY_CORE")
PIN_GEN=("${PRIO[@]}" taskset -c "$GEN_CORE")
NOISE_MAX=${NOISE_MAX:-0.1}
NOISE_RETRIES=${NOISE_RETRIES:-2}
[[ $HAPROXY_MODE == http || $HAPROXY_MODE == tcp ]] || { echo "HAPROXY_MODE must be http or tcp" >&2; exit 2; }
[[ $KEY_TYPE == ec || $KEY_TYPE == rsa ]] || { echo "KEY_TYPE must be ec or rsa" >&2; exit 2; }
[[ $VERIFY == ca || $VERIFY == insecure ]] || { echo "VERIFY must be ca or insecure" >&2; exit 2; }


if [[ ! -x $SB_BIN ]]; then log "no Switchboard at $SB_BIN (set SB_BIN)"; exit 3; fi
SB_HELP=$("$SB_BIN" serve --help 2>&1 || true)  # (grep -q on a pipe: SIGPIPE under pipefail)
if [[ $SB_HELP != *--tls-cert* ]]; then
    log "$SB_BIN has no TLS (serve --tls-cert): build a newer one"; exit 3
fi
command -v openssl > /dev/null || { log "the openssl CLI is needed for the throwaway CA"; exit 3; }
command -v node > /dev/null || { log "node is needed for the summary"; exit 3; }

# --- haproxy: the Debian package, installed like the other scripts install what they need ---
HAPROXY=${HAPROXY:-$(command -v haproxy || true)}
CONFIGS=()
for c in $CONFIGS_WANTED; do
    case $c in
        ws | wss | wss-resumed) CONFIGS+=("$c") ;;
        haproxy | haproxy-resumed)
            if [[ -z $HAPROXY && $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
                log "installing haproxy (Debian package)"
                if DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q haproxy > /dev/null 2>&1 ||
                   { timeout 120 apt-get update -q > /dev/null 2>&1 &&
                     DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q haproxy > /dev/null 2>&1; }; then
                    HAPROXY=$(command -v haproxy || true)
                fi
            fi
            if [[ -n $HAPROXY && -x $HAPROXY ]]; then CONFIGS+=("$c"); else log "skip $c: haproxy not installed"; fi ;;
        *) log "unknown configuration $c (ws, wss, haproxy, wss-resumed, haproxy-resumed)"; exit 2 ;;
    esac
done
if [[ ${#CONFIGS[@]} -eq 0 ]]; then log "nothing to benchmark"; exit 1; fi
# The echo test runs the configurations without -resumed (its 100 connections open once).
ECHO_CONFIGS=()
for c in "${CONFIGS[@]}"; do [[ $c == *-resumed ]] || ECHO_CONFIGS+=("$c"); done

WORK=$(mktemp -d /tmp/sb-tls-bench.XXXXXX)
OUT=$(abspath "$OUT")
SB_BIN=$(abspath "$SB_BIN")
cd "$WORK"
RUNS=$WORK/runs.jsonl
: > "$RUNS"
SPID="" HPID="" GPID=""
NOISY=0
ATTEMPT=0
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n $GPID ]]; then kill "$GPID" 2>/dev/null || true; fi
    if [[ -n $HPID ]]; then kill "$HPID" 2>/dev/null || true; fi
    if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- a throwaway CA and a server certificate for 127.0.0.1 / localhost (nothing is kept) ---
make_certs() {
    local kopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    [[ $KEY_TYPE == rsa ]] && kopt=(-newkey rsa:2048)
    openssl req -x509 "${kopt[@]}" -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=switchboard bench throwaway CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
    openssl req "${kopt[@]}" -nodes -keyout key.pem -out leaf.csr -subj "/CN=localhost" 2> /dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile leaf.ext -out leaf.pem 2> /dev/null
    cat leaf.pem ca.pem > chain.pem       # leaf first, as serve --tls-cert wants
    cat chain.pem key.pem > haproxy.pem   # haproxy's `crt`: chain and key in one file
    rm -f ca.key leaf.csr ca.srl
}
make_certs
GEN_TLS=(--ca "$WORK/ca.pem")
[[ $VERIFY == insecure ]] && GEN_TLS=(--insecure)
SB_CMD=(serve --host 127.0.0.1 --port 0 --threads 1 --no-compression --log-level warn)
SB_TLS=(--tls-cert "$WORK/chain.pem" --tls-key "$WORK/key.pem")

# A free loopback port for haproxy (it cannot listen on port 0 and print the port).
free_port() {
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
# haproxy holds two descriptors per client connection (client side, server side).
HAP_MAXCONN=$(( ($(ulimit -n) - 1000) / 2 ))
((HAP_MAXCONN > 20000)) && HAP_MAXCONN=20000
write_haproxy_cfg() {  # FRONT_PORT BACK_PORT
    cat > "$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HAP_MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
    stats socket $WORK/haproxy.sock mode 600 level user
defaults
    mode $HAPROXY_MODE
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend wss
    bind 127.0.0.1:$1 ssl crt $WORK/haproxy.pem alpn http/1.1
    default_backend switchboard
backend switchboard
    server sb1 127.0.0.1:$2
EOF
}

# start_server CONFIG: sets SPID, SPORT (Switchboard), HPID (haproxy or ""), URL.
start_server() {
    local config=${1%-resumed} logf=$WORK/server.log
    : > "$logf"
    if [[ $config == wss ]]; then
        "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$SB_BIN" "${SB_CMD[@]}" "${SB_TLS[@]}" > "$logf" 2>&1 &
    else
        "${SB_ENV[@]}" "${PIN_SERVER[@]}" "$SB_BIN" "${SB_CMD[@]}" > "$logf" 2>&1 &
    fi
    SPID=$!
    SPORT=""
    local deadline=$((SECONDS + 10))
    while [[ -z $SPORT ]]; do
        SPORT=$(grep -aoE 'listening on 127\.0\.0\.1:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
        if [[ -n $SPORT ]]; then break; fi
        if ! kill -0 "$SPID" 2>/dev/null || ((SECONDS > deadline)); then
            log "switchboard did not start:"; cat "$logf" >&2; stop_server; return 1
        fi
        sleep 0.02
    done
    local comm
    comm=$(cat "/proc/$SPID/comm" 2>/dev/null || true)
    if [[ $comm =~ ^(env|nice|taskset|chrt|setsid|bash)$ ]]; then
        log "server PID $SPID is still $comm, not the server"; stop_server; return 1
    fi
    URL=ws://127.0.0.1:$SPORT/echo
    [[ $config == wss ]] && URL=wss://127.0.0.1:$SPORT/echo
    HPID=""
    if [[ $config == haproxy ]]; then
        local hport
        hport=$(free_port)
        write_haproxy_cfg "$hport" "$SPORT"
        "${PIN_HAPROXY[@]}" "$HAPROXY" -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
        HPID=$!
        deadline=$((SECONDS + 10))
        # Listening (checked without connecting, so haproxy sees no extra connection).
        until [[ -n $(ss -Hltn "sport = :$hport" 2>/dev/null || true) ]]; do
            if ! kill -0 "$HPID" 2>/dev/null || ((SECONDS > deadline)); then
                log "haproxy did not start:"; cat "$WORK/haproxy.log" >&2; stop_server; return 1
            fi
            sleep 0.02
        done
        URL=wss://127.0.0.1:$hport/echo
    fi
}

stop_pid() {
    local pid=$1 i
    [[ -z $pid ]] && return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_server() {
    stop_pid "$HPID"; HPID=""
    stop_pid "$SPID"; SPID=""
}


# --- sampling while the generator runs (bash builtins only: no fork per sample) ---
# One line per sample: wall µs, Switchboard and haproxy CPU ns (summed over their threads'
# /proc/PID/task/*/schedstat), the generator's run ns and wait-for-a-CPU ns
# (/proc/PID/schedstat: it is single-threaded), and the machine's ticks (/proc/stat) of
# tasks (user nice system), interrupts (irq softirq: loopback TCP runs much of its receive
# side there) and steal (the hypervisor ran someone else).
proc_ns() {  # PID -> REPLY = CPU ns of all its threads, -1 when gone
    REPLY=-1
    [[ -z $1 ]] && return 0
    local f run sum=0 any=0
    for f in /proc/"$1"/task/*/schedstat; do
        if { read -r run _ < "$f"; } 2>/dev/null; then sum=$((sum + run)); any=1; fi
    done
    ((any)) && REPLY=$sum
    return 0
}
# The kernel's softirq threads: loopback TCP work deferred to them is neither ours nor other
# sessions' (it grows with the extra hop through haproxy), so it is sampled on its own.
KSOFTIRQD=()
for d in /proc/[0-9]*; do
    { read -r comm < "$d/comm"; } 2>/dev/null || continue
    [[ $comm == ksoftirqd/* ]] && KSOFTIRQD+=("${d#/proc/}")
done
sample() {
    local t=${EPOCHREALTIME/./} st ht gr=-1 gw=-1 a b c f g h k=0 p run
    proc_ns "$SPID"; st=$REPLY
    proc_ns "$HPID"; ht=$REPLY
    if [[ -n $GPID ]] && { read -r gr gw _ < "/proc/$GPID/schedstat"; } 2>/dev/null; then :; else gr=-1; gw=-1; fi
    for p in "${KSOFTIRQD[@]}"; do
        if { read -r run _ < "/proc/$p/schedstat"; } 2>/dev/null; then k=$((k + run)); fi
    done
    read -r _ a b c _ _ f g h _ < /proc/stat
    printf '%s %s %s %s %s %s %s %s %s\n' "$t" "$st" "$ht" "$gr" "$gw" $((a + b + c)) $((f + g)) "$h" "$k" >> "$SAMPLES"
}
# jnum KEY JSON: the number KEY has in JSON, or "?" (never fails: pipefail and set -e).
jnum() { local v; v=$(grep -oE "\"$1\":-?[0-9.]+" <<<"$2" | head -1 | cut -d: -f2 || true); printf '%s' "${v:-?}"; }

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ | }"; }

# Per-run figures from the generator's JSON and the samples: msg/s over the whole seconds after
# the warm-up, CPU of the server side and the generator's wait over that window (echo), or over
# the opening phase (handshakes), machine-wide busy cores.
cat > "$WORK/run_stats.mjs" <<'EOF'
import fs from 'node:fs';
const [benchPath, samplesPath, launchUs, kind, warmup, duration, hold, hz] = process.argv.slice(2);
const HZ = +hz;
let r = null;
try { r = JSON.parse(fs.readFileSync(benchPath, 'utf8')); } catch { console.log('{}'); process.exit(0); }
const S = fs.readFileSync(samplesPath, 'utf8').trim().split('\n').filter(Boolean)
  .map((l) => l.split(' ').map(Number))
  .map(([t, sb, hp, gr, gw, m, irq, st, ks]) => ({ t: (t - +launchUs) / 1e6, sb, hp, gr, gw, m, irq, st, ks }));
// The samples nearest inside [a, b] (seconds since launch).
function window(a, b, need) {
  const inside = S.filter((s) => s.t >= a - 0.05 && s.t <= b + 0.05 && need(s) && s.sb >= 0);
  if (inside.length < 2) return null;
  const x = inside[0], y = inside[inside.length - 1];
  const dt = y.t - x.t;
  if (dt <= 0) return null;
  const side = (y.sb - x.sb) + (y.hp >= 0 && x.hp >= 0 ? y.hp - x.hp : 0);
  const out = {
    window_s: +dt.toFixed(3),
    server_cores: +((y.sb - x.sb) / 1e9 / dt).toFixed(3),
    server_side_cores: +(side / 1e9 / dt).toFixed(3),
    machine_task_cores: +((y.m - x.m) / HZ / dt).toFixed(3),
    machine_irq_cores: +((y.irq - x.irq) / HZ / dt).toFixed(3),
    steal_cores: +((y.st - x.st) / HZ / dt).toFixed(3),
    ksoftirqd_cores: +((y.ks - x.ks) / 1e9 / dt).toFixed(3),
  };
  if (y.hp >= 0 && x.hp >= 0) out.haproxy_cores = +((y.hp - x.hp) / 1e9 / dt).toFixed(3);
  if (x.gr >= 0 && y.gr >= 0) {
    out.gen_cores = +((y.gr - x.gr) / 1e9 / dt).toFixed(3);
    out.gen_wait = +((y.gw - x.gw) / 1e9 / dt).toFixed(4);
    // Other sessions' work: the machine's busy time less ours. A task's schedstat includes the
    // softirq work that ran in its context while /proc/stat counts those ticks as softirq, so
    // the machine side is tasks + irq.
    out.other_cores = +Math.max(0, out.machine_task_cores + out.machine_irq_cores - out.server_side_cores - out.gen_cores -
      out.ksoftirqd_cores).toFixed(3);
  }
  return out;
}
const res = { bench_exit_counters: r.counters, errors: r.errors, error_total: r.error_total };
if (kind === 'echo') {
  // Timeline buckets (interval_ms, from the generator's start) wholly inside the traffic phase,
  // starting WARMUP s after it began, DURATION of them.
  const iv = r.timeline.interval_ms / 1000;
  const t0 = r.connect_s + +warmup, t1 = r.connect_s + r.traffic_s;
  const buckets = r.timeline.samples.filter((b) => b.t_s * 1 >= t0 - 1e-9 && (b.t_s + iv) <= t1 + 1e-9)
    .slice(0, Math.max(1, Math.round(+duration / iv)));
  const got = buckets.reduce((a, b) => a + b.received, 0);
  const span = buckets.length * iv;
  res.msgs_per_sec = span > 0 ? got / span : null;
  res.msgs_per_sec_whole = r.throughput.received_per_s;
  res.measured_s = span;
  res.rtt_ms = r.latency_ms;
  const w = buckets.length ? window(buckets[0].t_s, buckets[buckets.length - 1].t_s + iv, () => true) : null;
  Object.assign(res, w ?? {});
  // Server side CPU per echoed message (Switchboard + haproxy), the generator's own figure.
  if (w && res.msgs_per_sec) res.server_us_per_msg = +(w.server_side_cores / res.msgs_per_sec * 1e6).toFixed(3);
  res.gen_us_per_msg = r.cpu.us_per_message;
  res.gen_busiest = r.cpu.busiest_process;
} else {
  res.connects_per_sec = r.throughput.connects_per_s;
  res.connect_s = r.connect_s;
  res.connect_ms = r.connect_ms;
  const w = window(0, r.connect_s, (s) => s.gr >= 0);
  Object.assign(res, w ?? {});
  // Server side CPU: opening (launch .. middle of the hold, when it is idle) and in all
  // (opening, hold, closing: the last sample).
  const first = S[0];
  const mid = S.filter((s) => s.t <= r.connect_s + +hold / 2 && s.t >= r.connect_s).pop()
    ?? S.filter((s) => s.t <= r.connect_s + +hold / 2).pop();
  const last = S[S.length - 1];
  const sideNs = (a, b) => (b.sb - a.sb) + (b.hp >= 0 && a.hp >= 0 ? b.hp - a.hp : 0);
  const n = r.counters.connects_ok;
  if (mid && n) {
    res.server_us_per_conn_open = +(sideNs(first, mid) / 1e3 / n).toFixed(1);
    res.server_side_cores_opening = +(sideNs(first, mid) / 1e9 / r.connect_s).toFixed(3);
  }
  if (n) res.server_us_per_conn_total = +(sideNs(first, last) / 1e3 / n).toFixed(1);
  res.gen_us_per_conn = r.cpu.us_per_connection;
  res.gen_busiest = r.cpu.busiest_process_connecting;
}
console.log(JSON.stringify(res));
EOF

# run_one CONFIG ROUND TEST KIND LABEL GENERATOR-ARGS...
run_one() {
    local config=$1 round=$2 test=$3 kind=$4 label=$5
    shift 5
    NOISY=0
    if ! start_server "$config"; then
        printf '{"config":"%s","test":"%s","kind":"%s","label":%s,"round":%s,"ok":false,"error":"server did not start","result":null}\n' \
            "$config" "$test" "$kind" "$(json_str "$label")" "$round" >> "$RUNS"
        return
    fi
    local tls=()
    [[ $URL == wss://* ]] && tls=("${GEN_TLS[@]}")
    [[ $config == *-resumed ]] && tls+=(--tls-resume)
    SAMPLES=$WORK/samples.txt
    : > "$SAMPLES"
    rm -f "$WORK/gen.json"
    local launch=${EPOCHREALTIME/./}
    GPID=""
    sample
    "${SB_ENV[@]}" "${PIN_GEN[@]}" "$SB_BIN" bench "$@" --url "$URL" "${tls[@]}" -q \
        --json "$WORK/gen.json" > "$WORK/gen.log" 2>&1 &
    GPID=$!
    local deadline=$((SECONDS + RUN_TIMEOUT)) rc=0
    while kill -0 "$GPID" 2>/dev/null; do
        sample
        if ((SECONDS > deadline)); then
            log "  $config $test: generator still running after ${RUN_TIMEOUT}s; stopping it"
            kill -TERM "$GPID" 2>/dev/null || true
            deadline=$((SECONDS + 5))
        fi
        sleep 0.1
    done
    wait "$GPID" || rc=$?
    GPID=""
    sample  # the server side after the generator ended (its closes are done)
    # The server side's handshake counters, after every TLS run. Direct: Switchboard's
    # /metrics (the scrape is itself one full handshake: extra_full). haproxy: its frontend's
    # SSL counters from the stats socket (plain, no handshake).
    local hs=null
    if [[ ${config%-resumed} == wss ]]; then
        local m
        m=$(curl -s --max-time 5 --cacert "$WORK/ca.pem" "https://127.0.0.1:$SPORT/metrics" 2>/dev/null |
            grep -E '^switchboard_tls_handshakes_total' || true)
        if [[ -n $m ]]; then
            hs=$(awk -F'[" ]' '{ v[$2] = $NF } END { printf "{\"full\":%d,\"resumed\":%d,\"failed\":%d,\"extra_full\":1,\"source\":\"switchboard_tls_handshakes_total\"}", v["full"], v["resumed"], v["failed"] }' <<<"$m")
        fi
    elif [[ ${config%-resumed} == haproxy && -S $WORK/haproxy.sock ]]; then
        hs=$(timeout 5 node -e '
            const c = require("net").connect(process.argv[1], () => c.end("show stat\n"));
            let o = "";
            c.on("data", (d) => (o += d));
            c.on("error", () => console.log("null"));
            c.on("end", () => {
              const L = o.split("\n").filter(Boolean), h = L[0].replace(/^# /, "").split(",");
              const f = L.map((l) => l.split(",")).find((x) => x[0] === "wss" && x[1] === "FRONTEND");
              const v = (k) => (f && h.indexOf(k) >= 0 && f[h.indexOf(k)] !== "" ? +f[h.indexOf(k)] : null);
              console.log(f && v("ssl_sess") != null ? JSON.stringify({ full: v("ssl_sess"), resumed: v("ssl_reused_sess"),
                failed: v("ssl_failed_handshake"), extra_full: 0, source: "haproxy show stat" }) : "null");
            });' "$WORK/haproxy.sock" 2>/dev/null || true)
        [[ -z $hs ]] && hs=null
    fi
    local server_log
    server_log=$(grep -av -e 'listening on' -e 'allowed_origins is empty' "$WORK/server.log" | head -5 || true)
    [[ -n $HPID ]] && server_log+=$(grep -aiE 'alert|error' "$WORK/haproxy.log" | head -5 || true)
    stop_server
    local stats
    stats=$(node "$WORK/run_stats.mjs" "$WORK/gen.json" "$SAMPLES" "$launch" "$kind" "$WARMUP" "$DURATION" \
        "$HS_HOLD" "$(getconf CLK_TCK)" 2>/dev/null || echo '{}')
    [[ -z $stats ]] && stats='{}'
    local wait_frac
    wait_frac=$(jnum gen_wait "$stats")
    [[ $wait_frac == "?" ]] && wait_frac=-1
    if awk -v o="$wait_frac" -v n="$NOISE_MAX" 'BEGIN { exit !(o > n) }' && ((ATTEMPT < NOISE_RETRIES)); then
        log "  $config $test: the generator waited for a CPU $wait_frac of the time; again"
        NOISY=1
        return
    fi
    local noisy=false ok=false
    awk -v o="$wait_frac" -v n="$NOISE_MAX" 'BEGIN { exit !(o > n) }' && noisy=true
    [[ $rc == 0 && -s $WORK/gen.json ]] && ok=true
    printf '{"config":"%s","test":"%s","kind":"%s","label":%s,"round":%s,"ok":%s,"exit":%s,"cpu_wait":%s,"noisy":%s,"url":"%s","tls_handshakes":%s,"server_log":%s,"result":%s}\n' \
        "$config" "$test" "$kind" "$(json_str "$label")" "$round" "$ok" "$rc" "$wait_frac" "$noisy" \
        "${URL%%/echo}" "$hs" "$(json_str "$server_log")" "$stats" >> "$RUNS"
    local what
    if [[ $kind == echo ]]; then
        what="$(jnum msgs_per_sec "$stats") msg/s, server side $(jnum server_us_per_msg "$stats") us/msg"
    else
        what="$(jnum connects_per_sec "$stats") conn/s, server side $(jnum server_us_per_conn_open "$stats") us/conn opened"
    fi
    what+=", server side $(jnum server_side_cores "$stats") cores, gen $(jnum gen_cores "$stats") cores (wait $wait_frac), other work $(jnum other_cores "$stats") cores, ksoftirqd $(jnum ksoftirqd_cores "$stats"), steal $(jnum steal_cores "$stats")"
    if [[ $hs != null ]]; then what+=", handshakes $hs"; fi
    if [[ $ok != true ]]; then what+=" FAILED (generator exit $rc: $(head -c 300 "$WORK/gen.log" | tr '\n' ' '))"; fi
    log "  $config $test: $what"
}

repeat_run() {
    for ((ATTEMPT = 0; ; ATTEMPT++)); do
        wait_quiet
        run_one "$@"
        ((NOISY)) || break
    done
}

rotated() {  # ROUND CONFIG... -> the configurations, rotated by ROUND
    local r=$1 i
    shift
    local c=("$@") n=$#
    for ((i = 0; i < n; i++)); do printf '%s ' "${c[$(((i + r) % n))]}"; done
}
fmt_int() { sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta' <<<"$1"; }

# What the TLS configurations negotiate with a default OpenSSL client (recorded, not measured).
negotiated() {  # CONFIG -> "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"
    start_server "$1" || return 0
    local hp=${URL#wss://127.0.0.1:}
    hp=${hp%%/*}
    timeout 5 openssl s_client -connect "127.0.0.1:$hp" -servername localhost -CAfile "$WORK/ca.pem" \
        < /dev/null 2>/dev/null | awk '/^New, /{ p = $2; c = $NF } /Server Temp Key/ { k = $4 } /Verify return code/ { v = $4 }
            END { gsub(",", "", p); gsub(",", "", k); printf "%s %s %s verify=%s", p, c, k, v }' || true
    stop_server
}
NEG_WSS="" NEG_HAP=""
[[ " ${CONFIGS[*]} " =~ \ wss(-resumed)?\  ]] && NEG_WSS=$(negotiated wss)
[[ " ${CONFIGS[*]} " =~ \ haproxy(-resumed)?\  ]] && NEG_HAP=$(negotiated haproxy)
log "configs: ${CONFIGS[*]} (echo: ${ECHO_CONFIGS[*]:-none}); rounds $ROUNDS; echo ${SIZE} B × ${ECHO_CONNS} conns × {$INFLIGHT} in flight, ${WARMUP}s + ${DURATION}s; handshakes: ${HS_CONNS} conns"
log "TLS: $KEY_TYPE key; direct: $NEG_WSS; haproxy ($HAPROXY_MODE): $NEG_HAP"

START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for k in $INFLIGHT; do
        ((${#ECHO_CONFIGS[@]})) || break
        for config in $(rotated "$round" "${ECHO_CONFIGS[@]}"); do
            repeat_run "$config" "$round" "echo_${SIZE}B_${ECHO_CONNS}c_${k}f" echo \
                "echo ${SIZE} B, ${ECHO_CONNS} conns, ${k} in flight (msg/s)" \
                echo -c "$ECHO_CONNS" -w "$k" -s "$SIZE" -d "$((WARMUP + DURATION + 1))s" --drain 1s
        done
    done
    if ((HS_CONNS > 0)); then
        for config in $(rotated "$round" "${CONFIGS[@]}"); do
            repeat_run "$config" "$round" "handshakes_${HS_CONNS}" handshake \
                "connections opened/s ($(fmt_int "$HS_CONNS"), as fast as possible)" \
                connect -c "$HS_CONNS" --hold "${HS_HOLD}s" --connect-window 256 --no-reconnect
        done
    fi
done

# --- metadata and summary ---
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=false
[[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null || true) ]] && dirty=true
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
configs_json=$(printf '"%s",' "${CONFIGS[@]}")
hap_version=""
[[ -n $HAPROXY ]] && hap_version=$("$HAPROXY" -v 2>/dev/null | head -1 | awk '{ print $3 }' || true)
resumed_json="" resumption_measured=false
for c in "${CONFIGS[@]}"; do [[ $c == *-resumed ]] && resumed_json+="\"$c\","; done
[[ -n $resumed_json ]] && ((HS_CONNS > 0)) && resumption_measured=true
write_haproxy_cfg FRONT_PORT BACK_PORT
cat > "$WORK/meta.json" <<EOF
{"benchmark":"tls","date":"$STAMP","commit":"$commit","dirty":$dirty,
 "machine":{"nproc":$(nproc),"cpu":$(json_str "$cpu"),"kernel":$(json_str "$(uname -r)"),"mem_kb":$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)},
 "configs":[${configs_json%,}],"rounds":$ROUNDS,"duration_s":$DURATION,"warmup_s":$WARMUP,"size":$SIZE,
 "echo_conns":$ECHO_CONNS,"inflight":$(json_str "$INFLIGHT"),"hs_conns":$HS_CONNS,"hs_hold_s":$HS_HOLD,
 "server_core":$SERVER_CORE,"haproxy_core":$HAPROXY_CORE,"gen_core":$GEN_CORE,"sched":"$SCHED",
 "tls":{"key_type":$(json_str "$([[ $KEY_TYPE == ec ]] && echo 'ECDSA P-256' || echo 'RSA 2048')"),"verify":"$VERIFY",
        "negotiated_direct":$(json_str "$NEG_WSS"),"negotiated_haproxy":$(json_str "$NEG_HAP"),
        "resumption_measured":$resumption_measured,"resumed_configs":[${resumed_json%,}],
        "resumption_note":"the -resumed configurations run the handshake test with switchboard bench --tls-resume: it keeps the newest session ticket per server name and offers it on new connections, so the connections opened before the first ticket arrived do full handshakes and the rest resume; the other configurations do a full handshake on every wss:// connection. Counted by the server side after every TLS run (tls_handshakes per run: Switchboard's switchboard_tls_handshakes_total, whose scrape adds extra_full = 1; haproxy's frontend ssl_sess / ssl_reused_sess / ssl_failed_handshake)"},
 "versions":{"node":$(json_str "$(node --version 2>/dev/null || true)"),"openssl":$(json_str "$(openssl version 2>/dev/null)"),
             "haproxy":$(json_str "$hap_version"),"switchboard":$(json_str "$("$SB_BIN" version 2>/dev/null | head -1)")},
 "switchboard_commit":$(json_str "${SB_COMMIT:-$commit}"),"switchboard_commit_from":"$([[ -n ${SB_COMMIT:-} ]] && echo SB_COMMIT || echo 'work tree')",
 "switchboard_cmd":$(json_str "${SB_CMD[*]}"),
 "switchboard_tls_flags":"--tls-cert CHAIN.pem --tls-key KEY.pem",
 "haproxy_mode":"$HAPROXY_MODE","haproxy_cfg":$(json_str "$(sed "s|$WORK/|TMPDIR/|g" "$WORK/haproxy.cfg")"),
 "generator":$(json_str "switchboard bench (echo -c $ECHO_CONNS -w K -s $SIZE -d $((WARMUP + DURATION + 1))s; connect -c $HS_CONNS --hold ${HS_HOLD}s --connect-window 256 --no-reconnect), $([[ $VERIFY == ca ]] && echo '--ca CA.pem' || echo '--insecure'); -resumed configurations: --tls-resume"),
 "elapsed_s":$((SECONDS - START))}
EOF
mkdir -p "$(dirname "$OUT")"
cat > "$WORK/summarize.mjs" <<'EOF'
// Medians, min–max, per-round and median ratios of the runs; writes the result JSON and prints
// the markdown table.
import fs from 'node:fs';
const [runsPath, outPath, metaPath] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
const runs = fs.readFileSync(runsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const configs = meta.configs;
// metric key, what it is, higher is better
const METRICS = {
  echo: [['msgs_per_sec', true], ['server_us_per_msg', false], ['server_side_cores', null], ['gen_cores', null],
    ['gen_busiest', null], ['gen_us_per_msg', false]],
  handshake: [['connects_per_sec', true], ['server_us_per_conn_open', false], ['server_us_per_conn_total', false],
    ['server_side_cores_opening', null], ['gen_us_per_conn', false], ['gen_busiest', null], ['connect_p50_ms', false], ['connect_p99_ms', false]],
};
const get = (run, key) => {
  const r = run.result ?? {};
  if (key === 'connect_p50_ms') return r.connect_ms?.p50;
  if (key === 'connect_p99_ms') return r.connect_ms?.p99;
  return r[key];
};
const RATIOS = [['wss_vs_ws', 'wss', 'ws'], ['wss_vs_haproxy', 'wss', 'haproxy'], ['haproxy_vs_ws', 'haproxy', 'ws'],
  ['wss_resumed_vs_full', 'wss-resumed', 'wss'], ['haproxy_resumed_vs_full', 'haproxy-resumed', 'haproxy'],
  ['resumed_wss_vs_haproxy', 'wss-resumed', 'haproxy-resumed']];
const tests = [];
for (const r of runs) if (!tests.find((t) => t.test === r.test)) tests.push({ test: r.test, kind: r.kind, label: r.label });
const summary = [];
for (const t of tests) {
  const row = { test: t.test, kind: t.kind, label: t.label, metrics: {}, ratios: {} };
  for (const [key, hib] of METRICS[t.kind]) {
    const m = { higher_is_better: hib, configs: {} };
    for (const c of configs) {
      const rs = runs.filter((r) => r.test === t.test && r.config === c);
      const ok = rs.filter((r) => r.ok && Number.isFinite(get(r, key)));
      if (!ok.length) { m.configs[c] = { runs: rs.length, ok_runs: 0 }; continue; }
      const vals = ok.map((r) => get(r, key));
      m.configs[c] = { runs: rs.length, ok_runs: ok.length, noisy_runs: ok.filter((r) => r.noisy).length,
        median: median(vals), min: Math.min(...vals), max: Math.max(...vals), values: vals, rounds: ok.map((r) => r.round) };
    }
    row.metrics[key] = m;
  }
  // Generator-bound: the generator's core was full (its own figure) and the server side's was
  // not, so the rate is a lower bound for the server side.
  row.generator_bound = {};
  const sideKey = t.kind === 'echo' ? 'server_side_cores' : 'server_side_cores_opening';
  for (const c of configs) {
    const g = row.metrics.gen_busiest.configs[c], sc = row.metrics[sideKey].configs[c];
    row.generator_bound[c] = !!(g?.ok_runs && sc?.ok_runs && g.median >= 0.95 && sc.median < 0.9);
  }
  // Ratios of the figure of merit and of server CPU per unit: of the medians, and per round
  // (the configurations ran back to back in a round, which cancels some drift between rounds).
  const merit = t.kind === 'echo' ? 'msgs_per_sec' : 'connects_per_sec';
  const cost = t.kind === 'echo' ? 'server_us_per_msg' : 'server_us_per_conn_open';
  for (const [name, a, b] of RATIOS) {
    if (!configs.includes(a) || !configs.includes(b)) continue;
    const one = (key) => {
      const A = row.metrics[key].configs[a], B = row.metrics[key].configs[b];
      if (!A?.ok_runs || !B?.ok_runs) return null;
      const per_round = [];
      for (let i = 0; i < A.rounds.length; i++) {
        const j = B.rounds.indexOf(A.rounds[i]);
        if (j >= 0 && B.values[j]) per_round.push(+(A.values[i] / B.values[j]).toFixed(3));
      }
      return { median_ratio: +(A.median / B.median).toFixed(3), per_round };
    };
    const r = { [merit]: one(merit), [cost]: one(cost) };
    if (r[merit] || r[cost]) row.ratios[name] = r;
  }
  // Full and resumed TLS handshakes the server side counted (less its own scrape), per
  // configuration and run, and the server CPU per resumed connection: a resumed run's CPU per
  // connection is (1 − f) × full + f × resumed, with f its resumed fraction and "full" the CPU
  // per connection of the same round's full-handshake run of that server.
  if (t.kind === 'handshake') {
    row.handshakes = {};
    for (const c of configs) {
      const rs = runs.filter((r) => r.test === t.test && r.config === c && r.ok && r.tls_handshakes);
      if (!rs.length) continue;
      const per_run = rs.map((r) => {
        const h = r.tls_handshakes, full = h.full - (h.extra_full ?? 0), total = full + h.resumed;
        return { round: r.round, full, resumed: h.resumed, failed: h.failed, connects_ok: r.result?.bench_exit_counters?.connects_ok ?? null,
          resumed_fraction: total ? +(h.resumed / total).toFixed(4) : null };
      });
      const fr = per_run.map((x) => x.resumed_fraction).filter(Number.isFinite);
      row.handshakes[c] = { source: rs[0].tls_handshakes.source, per_run,
        full: per_run.reduce((a, x) => a + x.full, 0), resumed: per_run.reduce((a, x) => a + x.resumed, 0),
        failed: per_run.reduce((a, x) => a + x.failed, 0),
        resumed_fraction_median: fr.length ? median(fr) : null, resumed_fraction_min: fr.length ? Math.min(...fr) : null,
        resumed_fraction_max: fr.length ? Math.max(...fr) : null };
    }
    row.server_us_per_resumed_conn = {};
    for (const c of configs.filter((x) => x.endsWith('-resumed'))) {
      const base = c.replace(/-resumed$/, '');
      const R = row.metrics.server_us_per_conn_open.configs[c], F = row.metrics.server_us_per_conn_open.configs[base];
      const H = row.handshakes[c];
      if (!R?.ok_runs || !F?.ok_runs || !H) continue;
      const per_round = [];
      for (let i = 0; i < R.rounds.length; i++) {
        const j = F.rounds.indexOf(R.rounds[i]);
        const h = H.per_run.find((x) => x.round === R.rounds[i]);
        const f = h?.resumed_fraction;
        if (j < 0 || !f) continue;
        per_round.push({ round: R.rounds[i], resumed_fraction: f, us_per_conn: R.values[i], full_us_per_conn: F.values[j],
          us_per_resumed_conn: +((R.values[i] - (1 - f) * F.values[j]) / f).toFixed(1) });
      }
      if (!per_round.length) continue;
      const v = per_round.map((x) => x.us_per_resumed_conn);
      const ratio = per_round.map((x) => +(x.us_per_resumed_conn / x.full_us_per_conn).toFixed(3));
      row.server_us_per_resumed_conn[c] = { full_config: base, median: median(v), min: Math.min(...v), max: Math.max(...v),
        vs_full_median: median(ratio), vs_full_per_round: ratio, per_round };
    }
  }
  summary.push(row);
}
const noise = runs.filter((r) => r.ok).map((r) => r.result ?? {});
const waits = noise.map((r) => r.gen_wait).filter(Number.isFinite);
const others = noise.map((r) => r.other_cores).filter(Number.isFinite);
const steal = noise.map((r) => r.steal_cores).filter(Number.isFinite);
const ksirq = noise.map((r) => r.ksoftirqd_cores).filter(Number.isFinite);
const out = { ...meta, summary, noise: {
  gen_wait_median: waits.length ? median(waits) : null, gen_wait_max: waits.length ? Math.max(...waits) : null,
  other_cores_median: others.length ? median(others) : null, other_cores_max: others.length ? Math.max(...others) : null,
  steal_cores_median: steal.length ? median(steal) : null, steal_cores_max: steal.length ? Math.max(...steal) : null,
  ksoftirqd_cores_median: ksirq.length ? median(ksirq) : null, ksoftirqd_cores_max: ksirq.length ? Math.max(...ksirq) : null,
  noisy_runs: runs.filter((r) => r.noisy).length, failed_runs: runs.filter((r) => !r.ok).length,
  // Resumed handshakes in the runs that should have none (every configuration without -resumed).
  resumed_handshakes: runs.filter((r) => !r.config.endsWith('-resumed')).reduce((a, r) => a + (r.tls_handshakes?.resumed ?? 0), 0) }, runs };
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');

const si = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k` : v.toFixed(v < 10 ? 2 : 0));
const cell = (c, gb) => (!c?.runs ? '—' : c?.ok_runs ? `${si(c.median)} (${si(c.min)}–${si(c.max)})${gb ? ' †' : ''}${c.noisy_runs ? ` ~${c.noisy_runs}` : ''}${c.ok_runs < c.runs ? ` [${c.runs - c.ok_runs} failed]` : ''}` : 'failed');
const ratioNames = RATIOS.filter(([, a, b]) => configs.includes(a) && configs.includes(b)).map(([n]) => n);
const lines = [`| test | ${configs.join(' | ')} | ${ratioNames.join(' | ')} |`];
lines.push(`|---|${configs.map(() => '---|').join('')}${ratioNames.map(() => '---|').join('')}`);
for (const row of summary) {
  for (const [key] of METRICS[row.kind].slice(0, 2)) {
    const rs = ratioNames.map((n) => row.ratios[n]?.[key]).map((v) => v ? `${v.median_ratio.toFixed(2)}× (${v.per_round.map((x) => x.toFixed(2)).join(', ')})` : '—');
    const merit = key === 'msgs_per_sec' || key === 'connects_per_sec';
    lines.push(`| ${row.label}: ${key} | ${configs.map((c) => cell(row.metrics[key].configs[c], merit && row.generator_bound[c])).join(' | ')} | ${rs.join(' | ')} |`);
  }
}
console.log(`Medians of ${meta.rounds} rounds (min–max); ratios of the medians (per round); † = the generator's core was full and the server side's was not.`);
console.log('');
console.log(lines.join('\n'));
for (const row of summary.filter((r) => r.handshakes)) {
  for (const [c, h] of Object.entries(row.handshakes)) {
    const res = row.server_us_per_resumed_conn?.[c];
    console.log(`${c}: TLS handshakes per run (full/resumed/failed, ${h.source}): ${h.per_run.map((x) => `${x.full}/${x.resumed}/${x.failed}`).join(', ')}` +
      `; resumed ${h.resumed} of ${h.full + h.resumed}` + (res ? `; server CPU per resumed connection ${res.median} us (${res.min}–${res.max}), ` +
      `${res.vs_full_median}× the full handshake's (${res.vs_full_per_round.join(', ')})` : ''));
  }
}
console.log('');
console.log(`noise: generator waited for a CPU ${out.noise.gen_wait_median} of the time (median), at most ${out.noise.gen_wait_max}; ` +
  `other work ${out.noise.other_cores_median} cores (median), at most ${out.noise.other_cores_max}; steal ${out.noise.steal_cores_median} (median), at most ${out.noise.steal_cores_max}; ${out.noise.noisy_runs} noisy, ${out.noise.failed_runs} failed; resumed handshakes in the full-handshake runs ${out.noise.resumed_handshakes}`);
console.log(`wrote ${outPath}`);
EOF
node "$WORK/summarize.mjs" "$RUNS" "$OUT" "$WORK/meta.json"
log "machine: $(nproc) cores, $cpu; commit $commit; $((SECONDS - START)) s"
