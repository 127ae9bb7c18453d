// Summarizes the runs of bench/run_fanout_bench.sh: medians, min–max and ratios (each server's
// median ÷ Switchboard's) per test, the CPU and the loss/duplicate/order checks; writes the
// result JSON and prints the markdown tables, one per group (main, threads, deflate).
// Usage: node summarize_fanout.mjs RUNS.jsonl OUT.json META.json
import fs from 'node:fs';
import { loadRuns, median } from './summary_lib.mjs';

const { runs, outPath, meta } = loadRuns('summarize_fanout.mjs');
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
for (const r of runs) {
  if (!tests.find((t) => t.test === r.test)) tests.push({ test: r.test, label: r.label, group: r.group ?? 'main' });
}
const summary = [];
for (const t of tests) {
  const row = { test: t.test, label: t.label, group: t.group, metrics: {} };
  const present = servers.filter((s) => runs.some((r) => r.test === t.test && r.server === s));
  for (const [key, , higher, get] of metricsFor(t.test)) {
    const m = { higher_is_better: higher, servers: {} };
    for (const s of present) {
      const rs = runs.filter((r) => r.test === t.test && r.server === s);
      const ok = rs.filter((r) => r.ok && Number.isFinite(get(r.result ?? {})) && get(r.result) >= 0);
      const cell = { runs: rs.length, ok_runs: ok.length, noisy_runs: ok.filter((r) => r.noisy).length };
      if (ok.length) {
        const vals = ok.map((r) => get(r.result));
        Object.assign(cell, { median: median(vals), min: Math.min(...vals), max: Math.max(...vals), values: vals });
      }
      m.servers[s] = cell;
    }
    for (const s of present) {
      const c = m.servers[s];
      if (c.median !== undefined && m.servers[ref]?.median) c.ratio_vs_ref = c.median / m.servers[ref].median;
    }
    row.metrics[key] = m;
  }
  // Per server: CPU, losses and failures over all of the test's runs.
  row.checks = {};
  for (const s of present) {
    const rs = runs.filter((r) => r.test === t.test && r.server === s);
    const med = (k) => {
      const xs = rs.map((r) => r.result?.[k]).filter((x) => Number.isFinite(x) && x >= 0);
      return xs.length ? median(xs) : undefined;
    };
    const sum = (k) => rs.reduce((a, r) => a + (r.result?.[k] ?? 0), 0);
    const hwm = rs.map((r) => r.server_hwm_kb).filter(Number.isFinite);
    const c = {
      runs: rs.length, failed_runs: rs.filter((r) => !r.ok).length, noisy_runs: rs.filter((r) => r.noisy).length,
      server_cpu: med('server_cpu'), gen_cpu: med('gen_cpu'), machine_cpu: med('machine_cpu'), gen_wait: med('gen_wait'),
      procs: rs[0]?.procs ?? 1, threads: rs[0]?.threads ?? 1, pinned: rs[0]?.pinned !== false,
      lost: sum('lost'), duplicates: sum('duplicates'), out_of_order: sum('out_of_order'),
      offset_errors: sum('offset_errors'), closed_by_server: sum('closed_by_server'),
      error_replies: sum('error_replies'), handshake_failures: sum('handshake_failures'),
      deliveries_checked: sum('deliveries_total'), publications: sum('publications_total'),
      server_hwm_kb: hwm.length ? median(hwm) : undefined,
      pace_lag_max_ms: med('pace_lag_max_ms'),
    };
    // Generator-bound (pinned rows): the generator's core was full, the server's was not.
    c.generator_bound = c.pinned && c.gen_cpu !== undefined && c.server_cpu !== undefined &&
      c.gen_cpu / c.procs >= 0.95 && c.server_cpu < 0.9;
    const d = row.metrics.deliveries_per_sec?.servers[s];
    if (d) d.generator_bound = c.generator_bound;
    row.checks[s] = c;
  }
  summary.push(row);
}
// Threads group: each server's rate with N threads over its rate with 1 thread.
for (const row of summary.filter((r) => r.group === 'threads')) {
  const base = summary.find((r) => r.test === row.test.replace(/_t\d+$/, '_t1'));
  if (!base || base === row) continue;
  for (const [s, c] of Object.entries(row.metrics.deliveries_per_sec?.servers ?? {})) {
    const b = base.metrics.deliveries_per_sec?.servers[s];
    if (c.median !== undefined && b?.median) c.ratio_vs_one_thread = c.median / b.median;
  }
}
fs.writeFileSync(outPath, JSON.stringify({ ...meta, reference: ref, summary, runs }, null, 1) + '\n');

const fmt = (v, key) => {
  if (key.endsWith('_us')) return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} ms` : `${Math.round(v)} µs`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k`;
  return v.toFixed(0);
};
const names = { switchboard: 'Switchboard', ws: 'node `ws`', uws: 'uWebSockets' };
for (const group of ['main', 'threads', 'deflate']) {
  const rows = summary.filter((r) => r.group === group);
  if (rows.length === 0) continue;
  const cols = servers.filter((s) => rows.some((r) => r.checks[s]));
  const lines = [`| test | ${cols.map((s) => names[s] ?? s).join(' | ')} |`, `|---|${cols.map(() => '---|').join('')}`];
  for (const row of rows) {
    for (const [key, m] of Object.entries(row.metrics)) {
      const label = key === 'deliveries_per_sec' ? row.label : `${row.label}: ${key.replace('_us', '').replace('p999', 'p99.9')} latency`;
      const cells = cols.map((s) => {
        const c = m.servers[s];
        if (!c) return '—';
        if (c.median === undefined) return c.runs ? 'failed' : '—';
        let txt = `${fmt(c.median, key)} (${fmt(c.min, key)}–${fmt(c.max, key)})`;
        if (s !== ref && c.ratio_vs_ref !== undefined) txt += ` ${c.ratio_vs_ref.toFixed(c.ratio_vs_ref < 0.1 ? 3 : 2)}×`;
        if (c.ratio_vs_one_thread !== undefined) txt += ` [${c.ratio_vs_one_thread.toFixed(2)}× 1 thread]`;
        if (c.generator_bound) txt += ' †';
        if (c.ok_runs < c.runs) txt += ` [${c.runs - c.ok_runs} failed]`;
        return txt;
      });
      lines.push(`| ${label} | ${cells.join(' | ')} |`);
    }
  }
  const checks = [`| test | ${cols.map((s) => `${names[s] ?? s}: server / generator CPU; lost, dup, reordered, offset errors, closed`).join(' | ')} |`, `|---|${cols.map(() => '---|').join('')}`];
  for (const row of rows) {
    checks.push(`| ${row.label} | ${cols.map((s) => {
      const c = row.checks[s];
      if (!c) return '—';
      const f = (x) => (x === undefined ? '—' : x.toFixed(2));
      return `${f(c.server_cpu)} / ${f(c.gen_cpu)}${group === 'threads' ? ` (machine ${f(c.machine_cpu)})` : ''}; ` +
        `${c.lost}, ${c.duplicates}, ${c.out_of_order}, ${c.offset_errors}, ${c.closed_by_server}` +
        (c.pace_lag_max_ms !== undefined ? `; publisher behind schedule ≤ ${c.pace_lag_max_ms.toFixed(1)} ms` : '') +
        (c.failed_runs ? ` [${c.failed_runs} failed]` : '') + (c.noisy_runs ? ` ~${c.noisy_runs}` : '');
    }).join(' | ')} |`);
  }
  console.log(`## ${group}`);
  console.log('');
  console.log(`Medians of ${meta.rounds} rounds (min–max); × = the server's median ÷ ${names[ref] ?? ref}'s median; † = generator-bound.`);
  console.log('');
  console.log(lines.join('\n'));
  console.log('');
  console.log('CPU (cores, medians) and checks (sums over all runs):');
  console.log('');
  console.log(checks.join('\n'));
  console.log('');
}
const failed = runs.filter((r) => !r.ok);
if (failed.length) {
  console.log(`${failed.length} run(s) failed:`);
  for (const f of failed) {
    const r = f.result ?? {};
    console.log(`  ${f.server} ${f.test} round ${f.round}: exit ${f.exit}, server alive ${f.server_alive_at_end} exit ${f.server_exit}; ` +
      `lost ${r.lost}, dup ${r.duplicates}, ooo ${r.out_of_order}, offsets ${r.offset_errors}, closed ${r.closed_by_server}, ` +
      `errors ${r.error_replies}; ${r.first_error ?? ''} ${f.server_log ?? ''}`);
  }
  console.log('');
}
console.log(`wrote ${outPath}`);
