#!/usr/bin/env bash
# Reconnect storms: N native subscribers (and a publisher at 10/s) on one Switchboard node
# that is stopped once all are connected and started again at once, with and without the
# storm protection (server.reconnect_spread, server.admission_rate), measured by
# `switchboard bench storm` (it starts and restarts the server itself). Prints one line per
# variant (medians of ROUNDS): time until every client was back, time away p50/p99, 503
# refusals, the restarted server's peak CPU and RSS. Loopback only, bounded runs.
#
# Variants (each a fresh server on its own port):
#   term-nospread   SIGTERM, reconnect_spread 0: every client told to come back at once
#   term-spread     SIGTERM, reconnect_spread 5s (the default)
#   kill            SIGKILL (a crash: no notice), no admission limit
#   kill-admission  SIGKILL, admission_rate ADMISSION (503 + Retry-After over it)
#   handover        a second server takes the listening sockets over (--handover-socket), the
#                   first drains (reconnect_spread 5s): a zero-downtime restart
#
# Environment: VARIANTS (default all, in that order), SB_BIN (default build/release/switchboard), CONNS=10000, ROUNDS=3,
# ADMISSION=2000, RATE=1800 (initial connections/s, every variant: under ADMISSION, whose
# refusals of a first attempt the bench reports rather than retries), DURATION=20 (s of
# traffic; the stop comes 3 s in), PORT=9310, OUT (JSON).
# The memory engine loses history on a restart, so recovery says recovered:false (clients
# reload); with a shared engine (docs/cluster.md) they recover.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SB_BIN=${SB_BIN:-$REPO/build/release/switchboard}
CONNS=${CONNS:-10000}
ROUNDS=${ROUNDS:-3}
ADMISSION=${ADMISSION:-2000}
DURATION=${DURATION:-20}
RATE=${RATE:-1800}
PORT=${PORT:-9310}
OUT=${OUT:-$REPO/bench/results/storm-$(date +%Y-%m-%d).json}
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

variants=${VARIANTS:-"term-nospread term-spread kill kill-admission handover"}
echo "[" > "$OUT"
first=1
for v in $variants; do
  flags="--reconnect-spread 5s"
  bench_flags=""
  case $v in
    term-nospread) flags="--reconnect-spread 0" ;;
    term-spread) ;;
    kill) bench_flags="--kill9" ;;
    kill-admission) bench_flags="--kill9"; flags="$flags --admission-rate $ADMISSION" ;;
    handover) bench_flags="--handover"; flags="$flags --handover-socket $work/handover.sock" ;;
  esac
  for r in $(seq 1 "$ROUNDS"); do
    port=$((PORT + r))
    json="$work/$v-$r.json"
    # shellcheck disable=SC2086  # flags are words
    timeout $((DURATION + CONNS / RATE + 60)) "$SB_BIN" bench storm --url "ws://127.0.0.1:$port/ws" \
      --server-cmd "$SB_BIN serve --port $port --threads 1 --log-level warn --no-echo $flags" \
      -c "$CONNS" --rate "$RATE" -d "${DURATION}s" --storm-at 3s --json "$json" -q $bench_flags \
      > "$work/$v-$r.txt" 2>&1 || true
    if [ -s "$json" ]; then
      [ $first = 1 ] || echo "," >> "$OUT"
      first=0
      printf '{"variant":"%s","round":%s,"result":' "$v" "$r" >> "$OUT"
      cat "$json" >> "$OUT"
      echo "}" >> "$OUT"
    else
      echo "$v round $r: no result; output:" >&2
      tail -5 "$work/$v-$r.txt" >&2
    fi
  done
done
echo "]" >> "$OUT"
node - "$OUT" "$CONNS" <<'JS'
const [file, conns] = process.argv.slice(2);
const runs = JSON.parse(require('fs').readFileSync(file, 'utf8'));
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const by = {};
for (const r of runs) (by[r.variant] ??= []).push(r.result);
console.log(`| storm (${conns} subscribers, 1 node) | all back (ms) | away p50 / p99 (ms) | back | 503s | new server peak CPU | peak RSS |`);
console.log('|---|---|---|---|---|---|---|');
for (const [v, rs] of Object.entries(by)) {
  const s = rs.map((r) => r.storm);
  const refused = rs.map((r) => (r.run.errors?.handshake_status_503) ?? 0);
  console.log(`| ${v} | ${med(s.map((x) => x.all_back_ms)).toFixed(0)} | ${med(s.map((x) => x.away_p50_ms)).toFixed(0)} / ${med(s.map((x) => x.away_p99_ms)).toFixed(0)} | ${med(s.map((x) => x.back))} | ${med(refused)} | ${(med(s.map((x) => x.peak_cpu)) * 100).toFixed(0)} % | ${(med(s.map((x) => x.peak_rss_bytes)) / 1048576).toFixed(1)} MiB |`);
}
JS
echo "wrote $OUT"
