// Writes docs/benchmarks.md from bench/benchmarks.md.in and the newest result files of each
// kind in bench/results/ (echo-*.json, fanout-*.json, artillery-*.json, tls-*.json), so the page always
// shows one run's numbers with that run's machine, commit and method. The template holds the
// prose; every number on the page comes from the result files. Run by bench/run_all.sh.
//   node bench/report.mjs [--results DIR] [--template FILE] [--out FILE]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { clusterMarkdown } from './cluster_table.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const RESULTS = arg('--results', path.join(BENCH, 'results'));
const TEMPLATE = arg('--template', path.join(BENCH, 'benchmarks.md.in'));
const OUT = arg('--out', path.join(BENCH, '..', 'docs', 'benchmarks.md'));

// Newest file of a kind: names carry a UTC stamp (kind-YYYY-MM-DDTHHMMSSZ.json).
function newest(kind) {
  const re = new RegExp(`^${kind}-\\d{4}-\\d{2}-\\d{2}T\\d{6}Z\\.json$`);
  const files = fs.readdirSync(RESULTS).filter((f) => re.test(f)).sort();
  if (files.length === 0) return null;
  const file = files[files.length - 1];
  return { file: `bench/results/${file}`, data: JSON.parse(fs.readFileSync(path.join(RESULTS, file), 'utf8')) };
}

const NAMES = { switchboard: 'Switchboard', ws: 'node `ws`', uws: 'uWebSockets', base: 'base' };
const nameOf = (s, versions) => {
  const v = versions?.[s];
  const base = NAMES[s] ?? s;
  if (s === 'ws' && v) return `${base} ${v}`;
  if (s === 'uws' && v) return `${base} ${v.replace(/^v/, '')}`;
  return base;
};

function si(v) {
  if (v == null || Number.isNaN(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  return `${Math.round(v)}`;
}
const bytes = (v) => (v == null ? '—' : `${Math.round(v).toLocaleString('en-US')} B`);
function us(v) {
  if (v == null) return '—';
  return v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${Math.round(v)} µs`;
}
const ratio = (r) => (r == null || !Number.isFinite(r) ? '' : ` ${r.toFixed(r < 0.1 ? 3 : 2)}×`);

function cell(s, fmt, isRef) {
  if (!s) return '—';
  if (!s.ok_runs) return 'failed';
  const flag = s.generator_bound ? ' †' : '';
  const one = s.ratio_vs_one_thread != null ? `; ${s.ratio_vs_one_thread.toFixed(2)}× its 1-thread rate` : '';
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})${isRef ? '' : ratio(s.ratio_vs_ref)}${one}${flag}`;
}

// The rows of one group (main, threads, deflate; files from before the groups are all main)
// and the servers that ran in them.
const rowsOf = (d, group) => d.summary.filter((row) => (row.group ?? 'main') === group);

function machine(runs) {
  const first = runs.find(Boolean).data;
  const m = first.machine ?? {};
  const rows = [
    ['CPU', `${m.nproc} vCPUs, "${m.cpu}"`],
    ['memory', m.mem_kb ? `${(m.mem_kb / 1048576).toFixed(1)} GiB` : '—'],
    ['kernel', `Linux ${m.kernel}`],
    ['toolchain', `g++ 12.2.0 (Debian 12), node ${first.versions?.node ?? '?'}`],
  ];
  for (const r of runs) {
    if (!r) continue;
    const d = r.data;
    const commit = d.switchboard_commit ?? d.commit;
    rows.push([`${d.benchmark} run`, `${d.date}, ${d.elapsed_s ?? '?'} s; Switchboard at ${commit}` +
      `${d.dirty ? ' (the work tree had uncommitted changes)' : ''}; raw runs: \`${r.file}\``]);
  }
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

// The servers of a result file (those in `rows` when given), its reference server and a table
// header naming them.
function tableOf(d, rows) {
  const has = (row, s) => (row.servers ?? row.checks ?? {})[s] !== undefined;
  const servers = rows ? d.servers.filter((s) => rows.some((row) => has(row, s))) : d.servers;
  const head = `| test | ${servers.map((s) => nameOf(s, d.versions)).join(' | ')} |`;
  return { servers, ref: d.reference ?? 'switchboard', head, sep: `|---|${servers.map(() => '---').join('|')}|` };
}

function echoTables(r, group = 'main') {
  if (!r) return '_No echo result in bench/results/._';
  const d = r.data;
  const rows = rowsOf(d, group);
  if (rows.length === 0) return `_No ${group} rows in \`${r.file}\`._`;
  const { servers, ref, head, sep } = tableOf(d, rows);
  const lines = [head, sep];
  const cpu = [head, sep];
  const behind = [];
  for (const row of rows) {
    const fmt = row.kind === 'idle' ? bytes : si;
    lines.push(`| ${row.label} | ${servers.map((s) => cell(row.servers[s], fmt, s === ref)).join(' | ')} |`);
    if (row.kind !== 'idle') {
      cpu.push(`| ${row.label} | ${servers.map((s) => {
        const c = row.servers[s];
        if (!c || c.server_cpu == null) return '—';
        return `${c.server_cpu.toFixed(2)} / ${c.gen_cpu?.toFixed(2) ?? '—'}` +
          (group === 'threads' && c.machine_cpu != null ? ` (machine ${c.machine_cpu.toFixed(2)})` : '');
      }).join(' | ')} |`);
    }
    const u = row.servers.uws;
    const me = row.servers[ref];
    if (u && me && u.ok_runs && me.ok_runs) {
      const better = row.higher_is_better ? u.median > me.median : u.median < me.median;
      // Overlapping min–max ranges: the rounds do not separate the two servers.
      const overlap = u.min <= me.max && me.min <= u.max;
      if (better) {
        behind.push(`${row.label}: ${fmt(me.median)} against ${fmt(u.median)}` +
          (overlap ? ' (min–max ranges overlap)' : ''));
      }
    }
  }
  const rounds = d.rounds === 1 ? 'One round (min–max are that run)' : `Medians of ${d.rounds} rounds (min–max)`;
  let out = `${rounds}; × = the peer's median ÷ Switchboard's ` +
    `(for bytes per idle connection lower is better). † = the generator's core was full and the ` +
    `server's was not: the figure is a lower bound.\n\n${lines.join('\n')}\n\n` +
    `CPU during the measurement, server / generator (cores, medians${group === 'threads' ? '; machine: ' +
      'every process on the box' : ''}):\n\n${cpu.join('\n')}\n`;
  if (servers.includes('uws') && group === 'main') {
    out += behind.length === 0
      ? '\nIn this run Switchboard\'s median was at or above uWebSockets\' on every row.\n'
      : `\nRows where uWebSockets' median was ahead of Switchboard's in this run:\n\n${behind.map((b) => `- ${b}`).join('\n')}\n`;
  }
  return out;
}

function fanoutTables(r, group = 'main') {
  if (!r) return '_No fan-out result in bench/results/._';
  const d = r.data;
  const rows = rowsOf(d, group);
  if (rows.length === 0) return `_No ${group} rows in \`${r.file}\`._`;
  const { servers, ref, head, sep } = tableOf(d, rows);
  const lines = [head, sep];
  const checks = [head, sep];
  const METRIC = { deliveries_per_sec: '', p50_us: 'p50', p90_us: 'p90', p99_us: 'p99', p999_us: 'p99.9', max_us: 'max' };
  for (const row of rows) {
    for (const [metric, m] of Object.entries(row.metrics)) {
      const fmt = metric.endsWith('_us') ? us : si;
      const label = metric === 'deliveries_per_sec' ? row.label : `${row.label}: ${METRIC[metric] ?? metric}`;
      lines.push(`| ${label} | ${servers.map((s) => cell(m.servers[s], fmt, s === ref)).join(' | ')} |`);
    }
    checks.push(`| ${row.label} | ${servers.map((s) => {
      const c = row.checks?.[s];
      if (!c) return '—';
      const mem = c.server_hwm_kb ? `; ${Math.round(c.server_hwm_kb / 1024)} MB peak` : '';
      const machine = group === 'threads' && c.machine_cpu != null ? ` (machine ${c.machine_cpu.toFixed(2)})` : '';
      const offsets = s === 'switchboard' || s === 'base' ? `, offset errors ${c.offset_errors ?? '—'}` : '';
      return `${c.server_cpu?.toFixed(2) ?? '—'} / ${c.gen_cpu?.toFixed(2) ?? '—'}${machine}; lost ${c.lost}, dup ${c.duplicates}, ` +
        `reordered ${c.out_of_order}${offsets}; ${si(c.deliveries_checked)} checked${mem}`;
    }).join(' | ')} |`);
  }
  const rounds = d.rounds === 1 ? 'One round (min–max are that run)' : `Medians of ${d.rounds} rounds (min–max)`;
  return `${rounds}; × = the peer's median ÷ Switchboard's (for latency lower is better). † = the ` +
    `generator's core was full and the server's was not: the figure is a lower bound.\n\n${lines.join('\n')}\n\n` +
    `CPU (server / generator, cores, medians${group === 'threads' ? '; machine: every process on the box' : ''}), ` +
    `the checks summed over every run, and the server's peak memory (VmHWM, median):\n\n${checks.join('\n')}\n`;
}

function generatorTable(r) {
  if (!r) return '_Not run: Artillery was not installed (see above)._';
  const d = r.data;
  const s = d.summary;
  const fmtRange = (x, f) => (x ? `${f(x.median)} (${f(x.min)}–${f(x.max)})` : '—');
  const two = (v) => v.toFixed(2);
  const one = (v) => `${v.toFixed(1)} µs`;
  const rows = [
    ['Artillery ' + (d.versions?.artillery ?? '') + ` (node ${d.versions?.node ?? '?'})`, s.artillery],
    ['`switchboard bench echo`', s['switchboard-bench']],
  ];
  const speedup = s.artillery?.msgs_per_sec && s['switchboard-bench']?.msgs_per_sec
    ? s['switchboard-bench'].msgs_per_sec.median / s.artillery.msgs_per_sec.median : null;
  return `Run ${d.date}, ${d.runs?.length ?? '?'} runs in ${s.artillery?.runs ?? '?'} rounds, medians (min–max); ` +
    `raw runs in \`${r.file}\`:\n\n` +
    `| generator (${d.vus} conns, ${d.size} B, ${d.inflight} in flight, ${d.duration_s} s) | echoed msg/s | ` +
    'generator CPU (cores) | generator CPU per echoed message | server CPU (cores) | errors |\n|---|---|---|---|---|---|\n' +
    rows.map(([n, x]) => x ? `| ${n} | ${fmtRange(x.msgs_per_sec, si)} | ${fmtRange(x.gen_cores, two)} | ` +
      `${fmtRange(x.gen_us_per_msg, one)} | ${fmtRange(x.server_cores, two)} | ${x.errors ?? '—'} |` : `| ${n} | — | — | — | — | — |`).join('\n') +
    (speedup ? `\n\n\`switchboard bench\` drove ${speedup.toFixed(1)}× Artillery's message rate in this run.\n` : '\n');
}

// The TLS section: ws:// vs wss:// straight to Switchboard vs wss:// through haproxy
// (bench/run_tls_bench.sh, results/tls-*.json). Not in MACHINE/GENERATED: the section names its
// own run, so the rest of the page is unchanged by it.
function tlsTables(r) {
  if (!r) return '_No TLS result in bench/results/ (run `bench/run_tls_bench.sh`)._';
  const d = r.data;
  // The -resumed configurations (handshakes with --tls-resume) get a table of their own.
  const configs = d.configs.filter((c) => !c.endsWith('-resumed'));
  const resumedConfigs = d.configs.filter((c) => c.endsWith('-resumed'));
  const hap = `haproxy ${(d.versions?.haproxy ?? '').replace(/-.*/, '')}`.trim();
  const NAME = { ws: 'ws:// Switchboard', wss: 'wss:// Switchboard (TLS in the server)', haproxy: `wss:// ${hap} → ws:// Switchboard` };
  const RATIO = { wss_vs_ws: 'wss ÷ ws (direct)', wss_vs_haproxy: 'direct ÷ haproxy (wss)' };
  const ratioNames = Object.keys(RATIO).filter((k) => d.summary.some((row) => row.ratios?.[k]));
  const head = `| test | ${configs.map((c) => NAME[c] ?? c).join(' | ')} | ${ratioNames.map((k) => RATIO[k]).join(' | ')} |`;
  const sep = `|---|${configs.map(() => '---').join('|')}|${ratioNames.map(() => '---').join('|')}|`;
  const one = (v) => (v >= 100 ? `${Math.round(v)}` : v.toFixed(v >= 10 ? 1 : 2));
  const usf = (v) => `${one(v)} µs`;
  const ms = (v) => `${one(v)} ms`;
  const range = (c, fmt, flag = '') => (c?.ok_runs ? `${fmt(c.median)} (${fmt(c.min)}–${fmt(c.max)})${flag}` +
    `${c.noisy_runs ? ` ~${c.noisy_runs}` : ''}${c.ok_runs < c.runs ? ` [${c.runs - c.ok_runs} of ${c.runs} failed]` : ''}` : 'failed');
  const rat = (row, key) => ratioNames.map((k) => {
    const x = row.ratios?.[k]?.[key];
    return x ? `${x.median_ratio.toFixed(2)}× (${x.per_round.map((v) => v.toFixed(2)).join(', ')})` : '—';
  });
  const lines = [head, sep];
  const cpu = [`| test | ${configs.map((c) => NAME[c] ?? c).join(' | ')} |`, `|---|${configs.map(() => '---').join('|')}|`];
  for (const row of d.summary) {
    const m = row.metrics;
    const echo = row.kind === 'echo';
    const merit = echo ? 'msgs_per_sec' : 'connects_per_sec';
    const cost = echo ? 'server_us_per_msg' : 'server_us_per_conn_open';
    lines.push(`| ${row.label} | ${configs.map((c) => range(m[merit].configs[c], si, row.generator_bound?.[c] ? ' †' : '')).join(' | ')} | ${rat(row, merit).join(' | ')} |`);
    lines.push(`| server-side CPU per ${echo ? 'message' : 'connection opened'} | ${configs.map((c) => range(m[cost].configs[c], usf)).join(' | ')} | ${rat(row, cost).join(' | ')} |`);
    if (!echo) {
      // What one core of the server side could open if the generator kept up.
      const ceil = (c) => (c?.ok_runs ? `${si(1e6 / c.median)} (${si(1e6 / c.max)}–${si(1e6 / c.min)})` : '—');
      const cr = (k) => {
        const [a, b] = k === 'wss_vs_ws' ? ['wss', 'ws'] : ['wss', 'haproxy'];
        const A = m[cost].configs[a], B = m[cost].configs[b];
        return A?.ok_runs && B?.ok_runs ? `${(B.median / A.median).toFixed(2)}×` : '—';
      };
      lines.push(`| one core's worth: 10⁶ µs ÷ CPU per connection (connections/s) | ${configs.map((c) => ceil(m[cost].configs[c])).join(' | ')} | ${ratioNames.map(cr).join(' | ')} |`);
      lines.push(`| connect time p50 / p99 | ${configs.map((c) => {
        const a = m.connect_p50_ms.configs[c], b = m.connect_p99_ms.configs[c];
        return a?.ok_runs && b?.ok_runs ? `${ms(a.median)} / ${ms(b.median)}` : '—';
      }).join(' | ')} | ${ratioNames.map(() => '').join(' | ')} |`);
    }
    const side = echo ? 'server_side_cores' : 'server_side_cores_opening';
    const genUnit = echo ? 'gen_us_per_msg' : 'gen_us_per_conn';
    cpu.push(`| ${row.label} | ${configs.map((c) => {
      const sc = m[side].configs[c], g = m.gen_busiest.configs[c], gu = m[genUnit].configs[c];
      if (!sc?.ok_runs || !g?.ok_runs) return '—';
      return `${sc.median.toFixed(2)} / ${g.median.toFixed(2)}; ${usf(gu.median)} per ${echo ? 'message' : 'connection'}`;
    }).join(' | ')} |`);
  }
  const resumedTable = tlsResumedTable(d, resumedConfigs, hap, { range, usf, ms, one });
  const n = d.noise ?? {};
  const pct = (v) => (v == null ? '?' : `${(v * 100).toFixed(1)} %`);
  const fullRuns = d.runs.filter((x) => x.tls_handshakes && !x.config.endsWith('-resumed'));
  const full = fullRuns.reduce((a, x) => a + x.tls_handshakes.full - (x.tls_handshakes.extra_full ?? 0), 0);
  const counted = d.tls?.resumption_measured
    ? `In the runs without \`--tls-resume\` the server side counted ${full.toLocaleString('en-US')} full and ` +
      `${n.resumed_handshakes ?? 0} resumed TLS handshakes (Switchboard's \`switchboard_tls_handshakes_total\` less ` +
      'its own scrape, and haproxy\'s frontend `ssl_sess` / `ssl_reused_sess`).'
    : `The server counted ${d.runs.filter((x) => x.tls_handshakes).reduce((a, x) => a + x.tls_handshakes.full, 0).toLocaleString('en-US')} ` +
      `full and ${n.resumed_handshakes ?? 0} resumed TLS handshakes over the direct runs (\`switchboard_tls_handshakes_total\`, ` +
      'one scrape per run included).';
  const neg = (s) => (s ?? '').replace(/ verify=0$/, '');
  const cfg = (d.haproxy_cfg ?? '').split(' | ').join('\n');
  const dirty = d.dirty && d.switchboard_commit_from !== 'SB_COMMIT' ? ' (the work tree had uncommitted changes)' : '';
  return `Run ${d.date}, ${d.elapsed_s} s; Switchboard at ${d.switchboard_commit ?? d.commit}${dirty}, ` +
    `${d.versions?.openssl?.replace(/ \(Library.*$/, '') ?? 'OpenSSL ?'}, ` +
    `${hap} (\`mode ${d.haproxy_mode}\`); raw runs: \`${r.file}\`. ${d.tls?.key_type} certificate from a throwaway CA, ` +
    `${d.tls?.verify === 'ca' ? 'verified by the generator (`--ca`)' : 'not verified (`--insecure`)'}; negotiated ` +
    `directly: ${neg(d.tls?.negotiated_direct)}; through haproxy: ${neg(d.tls?.negotiated_haproxy)}.\n\n` +
    `Medians of ${d.rounds} rounds (min–max). Ratios are of the medians, and in parentheses the same ratio ` +
    `in each round (the configurations ran back to back within a round). † = the generator's core was full ` +
    `and the server side's was not: the rate is a lower bound for the server side. Server-side CPU is ` +
    `Switchboard's (plus haproxy's) CPU time per unit; for it, lower is better.\n\n${lines.join('\n')}\n\n` +
    `CPU while measuring, server side / generator (cores, medians; handshakes: the opening phase), and the ` +
    `generator's own CPU per unit:\n\n${cpu.join('\n')}\n\n${resumedTable}` +
    `Noise: the generator waited for a CPU ${pct(n.gen_wait_median)} of the measured time (median; at most ` +
    `${pct(n.gen_wait_max)}, threshold 10 %), ${n.noisy_runs ?? 0} run(s) flagged \`~\`, ${n.failed_runs ?? 0} failed; ` +
    `other sessions' work took ${n.other_cores_median?.toFixed(2) ?? '?'} cores (median; at most ` +
    `${n.other_cores_max?.toFixed(2) ?? '?'}: it fills whatever our processes leave idle, e.g. the generator's core ` +
    `in the haproxy runs), steal ${n.steal_cores_max?.toFixed(2) ?? '?'} cores at most. ${counted}\n\n` +
    `The haproxy configuration (ports filled in per run):\n\n\`\`\`\n${cfg}\n\`\`\`\n`;
}

// Full vs resumed handshakes: each server's full-handshake run next to its --tls-resume run,
// the handshakes its server side counted, and the CPU per resumed connection derived from them.
function tlsResumedTable(d, resumedConfigs, hap, { range, usf, ms, one }) {
  const row = d.summary.find((x) => x.kind === 'handshake');
  if (!resumedConfigs.length || !row) return '';
  const NAME = { wss: 'wss:// Switchboard', haproxy: `wss:// ${hap} → ws://` };
  const cols = resumedConfigs.flatMap((c) => {
    const base = c.replace(/-resumed$/, '');
    return d.configs.includes(base) ? [base, c] : [c];
  });
  const head = (c) => `${NAME[c.replace(/-resumed$/, '')] ?? c}, ${c.endsWith('-resumed') ? '`--tls-resume`' : 'full handshakes'}`;
  const RATIO = { 'wss-resumed': ['wss_resumed_vs_full', 'resumed ÷ full (direct)'], 'haproxy-resumed': ['haproxy_resumed_vs_full', 'resumed ÷ full (haproxy)'] };
  const ratioCols = resumedConfigs.filter((c) => RATIO[c] && d.configs.includes(c.replace(/-resumed$/, '')));
  const m = row.metrics;
  const rat = (key) => ratioCols.map((c) => {
    const x = row.ratios?.[RATIO[c][0]]?.[key];
    return x ? `${x.median_ratio.toFixed(2)}× (${x.per_round.map((v) => v.toFixed(2)).join(', ')})` : '—';
  });
  const int = (v) => v.toLocaleString('en-US');
  const counts = (c) => {
    const h = row.handshakes?.[c];
    if (!h?.per_run?.length) return '—';
    const totals = h.per_run.map((x) => x.full + x.resumed);
    const same = totals.every((t) => t === totals[0]);
    const runs = same ? `${h.per_run.map((x) => int(x.resumed)).join(', ')} of ${int(totals[0])}`
      : h.per_run.map((x) => `${int(x.resumed)} of ${int(x.full + x.resumed)}`).join(', ');
    const pct = (v) => `${(v * 100).toFixed(1)} %`;
    const fr = h.resumed_fraction_min === h.resumed_fraction_max ? pct(h.resumed_fraction_median)
      : `${pct(h.resumed_fraction_median)}; ${pct(h.resumed_fraction_min)}–${pct(h.resumed_fraction_max)}`;
    return `${runs} (${fr})${h.failed ? `; ${int(h.failed)} failed` : ''}`;
  };
  const perResumed = (c) => {
    const x = row.server_us_per_resumed_conn?.[c];
    return x ? `${usf(x.median)} (${usf(x.min)}–${usf(x.max)})` : '—';
  };
  const lines = [
    `| ${int(d.hs_conns)} connections, as fast as possible | ${cols.map(head).join(' | ')} | ${ratioCols.map((c) => RATIO[c][1]).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|${ratioCols.map(() => '---').join('|')}|`,
    `| connections opened/s | ${cols.map((c) => range(m.connects_per_sec.configs[c], si, row.generator_bound?.[c] ? ' †' : '')).join(' | ')} | ${rat('connects_per_sec').join(' | ')} |`,
    `| handshakes resumed, per run (server side's count) | ${cols.map(counts).join(' | ')} | ${ratioCols.map(() => '').join(' | ')} |`,
    `| server-side CPU per connection opened | ${cols.map((c) => range(m.server_us_per_conn_open.configs[c], usf)).join(' | ')} | ${rat('server_us_per_conn_open').join(' | ')} |`,
    `| server-side CPU per resumed connection (derived) | ${cols.map((c) => (c.endsWith('-resumed') ? perResumed(c) : '—')).join(' | ')} | ` +
      `${ratioCols.map((c) => {
        const x = row.server_us_per_resumed_conn?.[c];
        return x ? `${x.vs_full_median.toFixed(2)}× (${x.vs_full_per_round.map((v) => v.toFixed(2)).join(', ')})` : '—';
      }).join(' | ')} |`,
    `| one core's worth: 10⁶ µs ÷ CPU per full / per resumed connection (connections/s) | ${cols.map((c) => {
      const v = c.endsWith('-resumed') ? row.server_us_per_resumed_conn?.[c]?.median : m.server_us_per_conn_open.configs[c]?.median;
      return v ? si(1e6 / v) : '—';
    }).join(' | ')} | ${ratioCols.map((c) => {
      const x = row.server_us_per_resumed_conn?.[c];
      return x ? `${(1 / x.vs_full_median).toFixed(2)}×` : '—';
    }).join(' | ')} |`,
    `| connect time p50 / p99 | ${cols.map((c) => {
      const a = m.connect_p50_ms.configs[c], b = m.connect_p99_ms.configs[c];
      return a?.ok_runs && b?.ok_runs ? `${ms(a.median)} / ${ms(b.median)}` : '—';
    }).join(' | ')} | ${ratioCols.map(() => '').join(' | ')} |`,
    `| CPU while opening, server side / generator (cores); generator CPU per connection | ${cols.map((c) => {
      const sc = m.server_side_cores_opening.configs[c], g = m.gen_busiest.configs[c], gu = m.gen_us_per_conn.configs[c];
      return sc?.ok_runs && g?.ok_runs ? `${sc.median.toFixed(2)} / ${g.median.toFixed(2)}; ${usf(gu.median)}` : '—';
    }).join(' | ')} | ${ratioCols.map((c) => {
      const a = m.gen_us_per_conn.configs[c], b = m.gen_us_per_conn.configs[c.replace(/-resumed$/, '')];
      return a?.ok_runs && b?.ok_runs ? `${(a.median / b.median).toFixed(2)}× (generator CPU)` : '—';
    }).join(' | ')} |`,
  ];
  return `**Full and resumed handshakes**: the same servers, the generator with and without \`--tls-resume\` ` +
    `(\`bench connect -c ${d.hs_conns} --hold ${d.hs_hold_s}s --connect-window 256\`). The handshake counts are ` +
    `the server side's (${[...new Set(Object.values(row.handshakes ?? {}).map((h) => `\`${h.source}\``))].join(', ')}), ` +
    `per run, with the fraction resumed (median; min–max). A resumed run mixes the full handshakes of its first ` +
    `connections with resumed ones, so the CPU per resumed connection is derived per round: (CPU per connection − ` +
    `(1 − f) × the same round's full-handshake CPU per connection) ÷ f, with f the fraction resumed. Both are whole ` +
    `connections: TCP, TLS and the WebSocket upgrade. The generator's CPU per connection is in the last row.\n\n` +
    `${lines.join('\n')}\n\n`;
}

// The headline sentence: fan-out 1 room × 1,000 subscribers at 32 in flight, Switchboard with
// history and presence on and off against uWebSockets, from the newest fan-out file.
function headline(r) {
  const d = r?.data;
  const get = (test, s) => d?.summary.find((x) => x.test === test)?.metrics.deliveries_per_sec?.servers[s];
  const on = get('broadcast_1000s_w32', 'switchboard');
  const off = get('broadcast_1000s_w32_off', 'switchboard');
  const u = get('broadcast_1000s_w32', 'uws');
  if (!on?.ok_runs) return '_No 1,000 × 32 fan-out row in the newest fan-out result._';
  const part = (c) => `${si(c.median)} (${si(c.min)}–${si(c.max)})${c.generator_bound ? ' †' : ''}`;
  let t = `**Fan-out, 1 room × 1,000 subscribers, 32 publications in flight, 64 B** (${d.date}, ` +
    `${d.rounds === 1 ? 'one round' : `medians of ${d.rounds} rounds`}): Switchboard ${part(on)} deliveries/s with ` +
    'history and presence on';
  if (off?.ok_runs) t += `, ${part(off)} with them off`;
  if (u?.ok_runs) {
    t += `; uWebSockets ${part(u)}, ${(u.median / on.median).toFixed(2)}× Switchboard's (on)` +
      (off?.ok_runs ? ` and ${(u.median / off.median).toFixed(2)}× (off)` : '');
  }
  return `${t}.`;
}

// The cluster run's tables (bench/run_cluster_bench.sh), or a note when there is none yet.
function clusterTables(r) {
  if (!r) return '_No cluster run yet: `bench/run_cluster_bench.sh` writes `bench/results/cluster-*.json`._\n';
  return `From \`${r.file}\`.\n\n${clusterMarkdown(r.data)}`;
}

const echo = newest('echo');
const fanout = newest('fanout');
const artillery = newest('artillery');
const tls = newest('tls');
const cluster = newest('cluster');
// A fan-out run of the deflate group alone (run_fanout_bench.sh with only FAN_DEFLATE), newer
// than the full fan-out run: its rows replace that run's deflate rows.
const deflateFanout = newest('deflate-fanout');

function deflateFanoutTables() {
  const r = deflateFanout ?? fanout;
  if (!deflateFanout) return fanoutTables(r, 'deflate');
  const d = r.data;
  const base = d.servers.includes('base') ? ` "base" is ${d.base_commit}.` : '';
  return `From \`${r.file}\` (${d.date}, Switchboard at ${d.switchboard_commit}).${base}\n\n` +
    fanoutTables(r, 'deflate');
}
let page = fs.readFileSync(TEMPLATE, 'utf8');
const fill = {
  MACHINE: machine([echo, fanout]),
  ECHO_TABLES: echoTables(echo),
  FANOUT_TABLES: fanoutTables(fanout),
  THREADS_TABLES: `**Echo**\n\n${echoTables(echo, 'threads')}\n**Fan-out**\n\n${fanoutTables(fanout, 'threads')}`,
  DEFLATE_TABLES: `**Echo**\n\n${echoTables(echo, 'deflate')}\n**Fan-out**\n\n${deflateFanoutTables()}`,
  HEADLINE: headline(fanout),
  GENERATOR_TABLE: generatorTable(artillery),
  TLS_TABLES: tlsTables(tls),
  CLUSTER_TABLES: clusterTables(cluster),
  GENERATED: `Generated by \`node bench/report.mjs\` (run by \`bench/run_all.sh\`) from ` +
    [echo, fanout, deflateFanout, artillery, cluster].filter(Boolean).map((r) => `\`${r.file}\``).join(', ') +
    '; edit `bench/benchmarks.md.in`, not this page.',
};
for (const [k, v] of Object.entries(fill)) page = page.replaceAll(`@${k}@`, v);
const left = page.match(/@[A-Z_]+@/g);
if (left) {
  console.error(`report.mjs: unknown placeholders in the template: ${[...new Set(left)].join(' ')}`);
  process.exit(1);
}
fs.writeFileSync(OUT, page);
console.error(`wrote ${path.relative(process.cwd(), OUT)}`);
