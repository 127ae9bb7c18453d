// One `switchboard bench --json` result → the compact record the run_*_bench.sh scripts keep
// per run (one JSON line on stdout). Rates and CPU are the measured window's (--warmup, then
// -d): CPU in cores (CPU seconds per second), gen_wait the fraction of the window the
// generator's processes waited for a CPU.
//   node gen_result.mjs RESULT.json [EXIT_STATUS]
import fs from 'node:fs';

const [file, exitArg] = process.argv.slice(2);
let r;
try {
  r = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: `no result: ${err.message}`, ok: false })}\n`);
  process.exit(0);
}
const k = r.counters ?? {};
const w = r.window ?? {};
const num = (v) => (Number.isFinite(v) && v >= 0 ? v : -1);
const round = (v, d = 3) => (v >= 0 ? Number(v.toFixed(d)) : v);
const errorReplies = Object.entries(r.errors ?? {})
  .filter(([kind]) => kind.startsWith('error_'))
  .reduce((a, [, n]) => a + n, 0);
const firstError = Object.entries(r.error_samples ?? {})[0];
const out = {
  scenario: r.scenario,
  procs: r.procs,
  conns_ok: k.connects_ok,
  handshake_failures: k.connects_failed,
  compressed: k.compressed,
  window_s: round(num(w.s)),
  gen_cpu: round(num(w.gen_cores)),
  server_cpu: round(num(w.server_cores)),
  machine_cpu: round(num(w.machine_cores)),
  gen_wait: round(num(w.gen_wait)),
  gen_us_per_msg: round(num(w.gen_us_per_message)),
  errors: r.error_total ?? 0,
  error_kinds: r.errors ?? {},
};
if (firstError) out.first_error = `${firstError[0]}: ${firstError[1]}`.slice(0, 300);
const ms2us = (v) => (Number.isFinite(v) ? Math.round(v * 1000 * 10) / 10 : -1);
if (r.scenario === 'echo') {
  Object.assign(out, {
    msgs_per_sec: round(num(w.received_per_s), 1),
    unanswered: k.unanswered,
    bad_replies: k.bad_replies,
    lat_us: { p50: ms2us(r.latency_ms?.p50), p99: ms2us(r.latency_ms?.p99), max: ms2us(r.latency_ms?.max) },
  });
} else if (r.scenario === 'connect') {
  Object.assign(out, {
    open: k.connects_ok,
    handshakes_per_sec: round(num(r.throughput?.connects_per_s), 1),
    handshake_gen_cpu: round(num(r.cpu?.busiest_process_connecting)),
    handshake_server_cpu: round(num(w.connect_server_cores)),
    handshake_gen_wait: round(num(w.connect_gen_wait)),
  });
} else if (r.scenario === 'fanout') {
  const l = r.latency_ms ?? {};
  Object.assign(out, {
    deliveries_per_sec: round(num(w.received_per_s), 1),
    publications_per_sec: round(num(w.sent_per_s), 1),
    lat_us: { p50: ms2us(l.p50), p90: ms2us(l.p90), p99: ms2us(l.p99), p999: ms2us(l.p99_9), max: ms2us(l.max), mean: ms2us(l.mean) },
    lat_samples: l.count ?? 0,
    pace_lag_max_ms: r.options?.interval_ms > 0 ? r.send_lag_ms?.max ?? -1 : undefined,
    pace_lag_p99_ms: r.options?.interval_ms > 0 ? r.send_lag_ms?.p99 ?? -1 : undefined,
    deliveries_total: k.deliveries,
    publications_total: k.msgs_sent,
    expected: k.expected,
    lost: k.lost,
    duplicates: k.duplicates,
    out_of_order: k.out_of_order,
    offset_errors: k.offset_errors,
    gaps: k.gaps,
    foreign: k.foreign,
    closed_by_server: k.drops,
    error_replies: errorReplies,
  });
}
out.exit = exitArg === undefined ? null : Number(exitArg);
out.ok = out.exit === 0;
process.stdout.write(`${JSON.stringify(out)}\n`);
