// Summarizes the runs of bench/run_echo_bench.sh: medians, min–max and ratios against the
// reference server (Switchboard when it ran). Reads the runs file (one JSON object a line),
// writes the combined result JSON and prints the tables (markdown) on stdout, one per group
// (main, threads, deflate).
// Usage: node summarize_echo.mjs RUNS.jsonl OUT.json META.json
import fs from 'node:fs';
import { loadRuns, median } from './summary_lib.mjs';

const { runs, outPath, meta } = loadRuns('summarize_echo.mjs');

// The figure of merit of one run, and whether higher is better.
function metric(run) {
  const r = run.result ?? {};
  if (run.kind === 'echo') return r.msgs_per_sec;
  if (run.kind === 'handshake') return r.handshakes_per_sec;
  if (run.kind === 'idle') return run.bytes_per_conn;
  return undefined;
}
const higherIsBetter = (kind) => kind !== 'idle';

// Tests in the order they were run; servers in the configured order.
const tests = [];
for (const r of runs) {
  if (!tests.find((t) => t.test === r.test)) {
    tests.push({ test: r.test, kind: r.kind, label: r.label, group: r.group ?? 'main' });
  }
}
const servers = meta.servers;
const ref = servers.includes('switchboard') ? 'switchboard' : servers[0];

const summary = [];
for (const t of tests) {
  const row = {
    test: t.test, kind: t.kind, label: t.label, group: t.group, higher_is_better: higherIsBetter(t.kind), servers: {},
  };
  for (const s of servers) {
    const rs = runs.filter((r) => r.test === t.test && r.server === s);
    if (rs.length === 0) continue;  // not part of this group
    const ok = rs.filter((r) => r.ok && Number.isFinite(metric(r)));
    if (ok.length === 0) {
      row.servers[s] = { runs: rs.length, ok_runs: 0 };
      continue;
    }
    const vals = ok.map(metric);
    const cell = {
      runs: rs.length,
      ok_runs: ok.length,
      noisy_runs: ok.filter((r) => r.noisy).length,
      median: median(vals),
      min: Math.min(...vals),
      max: Math.max(...vals),
      values: vals,
    };
    const med = (key) => {
      const xs = ok.map((r) => r.result?.[key]).filter((x) => Number.isFinite(x) && x >= 0);
      return xs.length ? median(xs) : undefined;
    };
    if (t.kind === 'echo') {
      cell.gen_cpu = med('gen_cpu');
      cell.server_cpu = med('server_cpu');
      cell.machine_cpu = med('machine_cpu');
      cell.gen_wait = med('gen_wait');
    } else if (t.kind === 'handshake') {
      cell.gen_cpu = med('handshake_gen_cpu');
      cell.server_cpu = med('handshake_server_cpu');
    }
    cell.procs = ok[0].procs ?? 1;
    cell.threads = ok[0].threads ?? 1;
    // Generator-bound: the generator's core(s) were full while the server's were not, so the
    // server's figure is a lower bound. Only meaningful pinned (one core each).
    const pinned = ok[0].pinned !== false;
    cell.generator_bound = pinned && cell.gen_cpu !== undefined && cell.server_cpu !== undefined &&
      cell.gen_cpu / cell.procs >= 0.95 && cell.server_cpu < 0.9;
    row.servers[s] = cell;
  }
  const refCell = row.servers[ref];
  for (const s of servers) {
    const c = row.servers[s];
    if (c?.median !== undefined && refCell?.median) c.ratio_vs_ref = c.median / refCell.median;
  }
  summary.push(row);
}
// Threads group: each server's rate with N threads over its rate with 1, per N.
for (const row of summary.filter((r) => r.group === 'threads')) {
  const base = summary.find((r) => r.group === 'threads' && r.test === row.test.replace(/_t\d+$/, '_t1'));
  if (!base || base === row) continue;
  for (const [s, c] of Object.entries(row.servers)) {
    const b = base.servers[s];
    if (c.median !== undefined && b?.median) {
      c.ratio_vs_one_thread = c.median / b.median;
    }
  }
}

const out = { ...meta, reference: ref, summary, runs };
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');

const fmt = (v, kind) => {
  if (kind === 'idle') return `${Math.round(v)} B`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k`;
  return v.toFixed(0);
};
for (const group of ['main', 'threads', 'deflate']) {
  const rows = summary.filter((r) => r.group === group);
  if (rows.length === 0) continue;
  const cols = servers.filter((s) => rows.some((r) => r.servers[s]));
  const head = `| test | ${cols.join(' | ')} |`;
  const lines = [head, `|---|${cols.map(() => '---|').join('')}`];
  const cpuLines = [head, lines[1]];
  for (const row of rows) {
    const cells = cols.map((s) => {
      const c = row.servers[s];
      if (!c) return '—';
      if (c.median === undefined) return c.runs ? 'failed' : '—';
      let txt = `${fmt(c.median, row.kind)} (${fmt(c.min, row.kind)}–${fmt(c.max, row.kind)})`;
      if (s !== ref && c.ratio_vs_ref !== undefined) txt += ` ${c.ratio_vs_ref.toFixed(2)}×`;
      if (c.ratio_vs_one_thread !== undefined) txt += ` [${c.ratio_vs_one_thread.toFixed(2)}× 1 thread]`;
      if (c.generator_bound) txt += ' †';
      if (c.noisy_runs) txt += ` ~${c.noisy_runs}`;
      if (c.ok_runs < c.runs) txt += ` [${c.runs - c.ok_runs} failed]`;
      return txt;
    });
    lines.push(`| ${row.label} | ${cells.join(' | ')} |`);
    if (row.kind !== 'idle') {
      const cpuCells = cols.map((s) => {
        const c = row.servers[s];
        if (!c || c.server_cpu === undefined) return '—';
        return `${c.server_cpu.toFixed(2)} / ${c.gen_cpu?.toFixed(2) ?? '—'}` +
          (group === 'threads' && c.machine_cpu !== undefined ? ` (machine ${c.machine_cpu.toFixed(2)})` : '');
      });
      cpuLines.push(`| ${row.label} | ${cpuCells.join(' | ')} |`);
    }
  }
  console.log(`## ${group}`);
  console.log('');
  console.log(`Medians of ${meta.rounds} rounds (min–max); × = server's median ÷ ${ref}'s median`);
  console.log(`(for bytes per idle connection lower is better; † = generator-bound, the server's figure is a lower bound;`);
  console.log(`~N = N runs in which the generator waited for a CPU more than 10% of the time).`);
  console.log('');
  console.log(lines.join('\n'));
  console.log('');
  console.log('CPU use during the measurement, server / generator (cores, medians):');
  console.log('');
  console.log(cpuLines.join('\n'));
  console.log('');
}
const failed = runs.filter((r) => !r.ok);
if (failed.length) {
  console.log(`${failed.length} run(s) had errors (see "error"/"result" in ${outPath}):`);
  for (const f of failed) console.log(`  ${f.server} ${f.test} round ${f.round}: ${f.error ?? f.result?.first_error ?? 'see result'}`);
  console.log('');
}
console.log(`wrote ${outPath}`);
