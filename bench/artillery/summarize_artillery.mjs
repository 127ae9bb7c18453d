// Summarizes run_artillery_vs_bench.sh: per tool, median (min–max) of echoed msg/s, the
// generator's CPU (cores) and CPU per echoed message (one send + its echo received), and the
// server's CPU. Usage: node summarize_artillery.mjs RUNS.jsonl OUT.json VUS DURATION ARTILLERY_VERSION COMMIT
import fs from 'node:fs';

const [runsPath, outPath, vus, duration, artVersion, commit] = process.argv.slice(2);
const runs = fs.readFileSync(runsPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), values: xs });

for (const r of runs) {
  if (r.tool === 'artillery') {
    r.msgs = r.counters['websocket.messages_received'] ?? 0;
    r.secs = (r.t1 - r.t0) / 1000;
    r.errors = Object.entries(r.counters).filter(([k]) => k.startsWith('errors.')).reduce((a, [, v]) => a + v, 0);
  } else {
    r.msgs = r.counters.msgs_received;
    r.secs = r.traffic_s;
    r.errors = r.counters.unanswered + r.counters.bad;
  }
  r.msgs_per_sec = r.msgs / r.secs;
  r.gen_cores = r.gen_cpu_s / r.window_s;
  r.server_cores = r.server_cpu_s / r.window_s;
  r.gen_us_per_msg = (1e6 * r.gen_cpu_s) / (r.msgs_per_sec * r.window_s);
}
const tools = ['artillery', 'switchboard-bench'];
const summary = {};
for (const t of tools) {
  const rs = runs.filter((r) => r.tool === t && r.exit === 0 && r.msgs > 0);
  if (!rs.length) continue;
  summary[t] = {
    runs: rs.length,
    msgs_per_sec: stat(rs.map((r) => r.msgs_per_sec)),
    gen_cores: stat(rs.map((r) => r.gen_cores)),
    gen_us_per_msg: stat(rs.map((r) => r.gen_us_per_msg)),
    server_cores: stat(rs.map((r) => r.server_cores)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
}
const out = { benchmark: 'artillery-vs-switchboard-bench', date: new Date().toISOString(), commit, vus: +vus, duration_s: +duration,
  size: 64, inflight: 1, versions: { artillery: artVersion, node: process.version }, summary, runs };
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');
const f = (s, d = 0) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
console.log(`| generator (${vus} conns, 64 B, 1 in flight, ${duration} s) | echoed msg/s | generator CPU (cores) | generator CPU per echoed message (µs) | server CPU (cores) | errors |`);
console.log('|---|---|---|---|---|---|');
for (const [t, s] of Object.entries(summary)) {
  console.log(`| ${t === 'artillery' ? `Artillery ${artVersion}` : '`switchboard bench echo`'} | ${f(s.msgs_per_sec)} | ${f(s.gen_cores, 2)} | ${f(s.gen_us_per_msg, 1)} | ${f(s.server_cores, 2)} | ${s.errors} |`);
}
if (summary.artillery && summary['switchboard-bench']) {
  console.log(`\nswitchboard bench ÷ Artillery: ${(summary['switchboard-bench'].msgs_per_sec.median / summary.artillery.msgs_per_sec.median).toFixed(1)}× the msg/s`);
}
console.error(`wrote ${outPath}`);
