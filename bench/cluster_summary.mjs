// Turns the runs of bench/run_cluster_bench.sh into its result JSON and markdown table.
//   node bench/cluster_summary.mjs --runs RUNS.jsonl --out OUT.json --md OUT.md
// Each line of RUNS is one generator run: the generator's --json result, the time it started
// (wall clock) and a samples file of "wall redis_ticks nodes_ticks nodes_rss_kb avail_mb
// nats_ticks redis_rss_kb nats_rss_kb" lines taken every 0.5 s (the last three absent in runs
// from before the NATS engine). From the samples:
//   - the traffic phase is [start + connect_s, + traffic_s] of the generator's result; CPU is
//     the utime+stime delta over it without its first and last second (ramp-up and drain),
//     as % of one core (Redis, nats-server, and the nodes summed); the row's broker CPU is
//     that of the broker its nodes use (redis for the Redis engine and Socket.IO, nats for
//     the NATS engine, none on the memory engine);
//   - RSS per connection is the nodes' summed VmRSS at its highest during the traffic phase
//     minus the last sample before the generator started, over the connections opened.
// The run's parameters come from CB_* environment variables (see the script).
import fs from 'node:fs';

import { clusterMarkdown } from './cluster_table.mjs';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`missing ${name}`);
  return args[i + 1];
};
const env = (k, num = false) => (num ? Number(process.env[`CB_${k}`]) : process.env[`CB_${k}`] ?? '');
const CLK_TCK = env('CLK_TCK', true) || 100;

function samplesOf(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => {
    const [wall, redis, nodes, rss, avail, nats, redisRss, natsRss] = l.trim().split(/\s+/).map(Number);
    return { wall, redis, nodes, rss, avail, nats, redisRss, natsRss };
  }).filter((s) => Number.isFinite(s.wall));
}

// CPU % of one core of `key` over the samples inside [t0, t1].
function cpuPct(samples, key, t0, t1) {
  const inside = samples.filter((s) => s.wall >= t0 && s.wall <= t1);
  if (inside.length < 2) return null;
  const a = inside[0];
  const b = inside[inside.length - 1];
  if (b.wall <= a.wall) return null;
  return ((b[key] - a[key]) / CLK_TCK / (b.wall - a.wall)) * 100;
}

function brokerOf(run) {
  if (run.engine === 'memory') return 'none';
  return run.engine === 'nats' ? 'nats' : 'redis';
}

function row(run) {
  const r = run.result;
  const samples = samplesOf(run.samples);
  const k = r?.counters ?? {};
  const out = {
    name: run.name, server: run.server, test: run.test, nodes: run.nodes, engine: run.engine,
    exit: run.exit, nodes_alive: run.nodes_alive, stopped: run.stopped,
    ok: r != null && !r.interrupted && run.nodes_alive === run.nodes,
    // Open at once at the peak: connects_ok also counts reconnects.
    connections: k.open_peak ?? k.connects_ok ?? 0, connects_ok: k.connects_ok ?? 0,
    connects_failed: k.connects_failed ?? 0, drops: k.drops ?? 0, reconnects: k.reconnects ?? 0,
    publications: k.publishes_acked ?? 0, expected: k.expected ?? 0, deliveries: k.deliveries ?? 0,
    lost: k.lost ?? 0, duplicates: k.duplicates ?? 0, out_of_order: k.out_of_order ?? 0,
    sends_skipped: k.sends_skipped ?? 0,
    latency_ms: r?.latency_ms ?? null,
    deliveries_per_s: r?.throughput?.deliveries_per_s ?? 0,
    connect_s: r?.connect_s ?? null, traffic_s: r?.traffic_s ?? null,
    // The generator's own share: its busiest process's CPU over the traffic phase (near 1:
    // the generator set the pace) and how late its paced sends left (its event-loop lag).
    generator_busiest_cpu: r?.cpu?.busiest_process ?? r?.busiest_cpu ?? null,
    send_lag_p99_ms: r?.send_lag_ms?.p99 ?? null,
    // The broker the row's nodes share: redis, nats or none (memory engine, each node alone).
    broker: brokerOf(run),
    broker_cpu_pct: null, broker_rss_mb: null,
    redis_cpu_pct: null, nats_cpu_pct: null, nodes_cpu_pct: null, rss_per_conn_kib: null, nodes_rss_mb: null,
    min_avail_mb: samples.length ? Math.min(...samples.map((s) => s.avail)) : null,
    log: run.ok === false || run.exit !== 0 ? run.log : undefined,
  };
  if (r && samples.length) {
    let t0 = run.start + (r.connect_s ?? 0);
    let t1 = t0 + (r.traffic_s ?? 0);
    if (t1 - t0 > 4) { t0 += 1; t1 -= 1; }
    out.redis_cpu_pct = cpuPct(samples, 'redis', t0, t1);
    if (samples.every((s) => Number.isFinite(s.nats))) out.nats_cpu_pct = cpuPct(samples, 'nats', t0, t1);
    out.nodes_cpu_pct = cpuPct(samples, 'nodes', t0, t1);
    if (out.broker !== 'none') {
      out.broker_cpu_pct = out.broker === 'nats' ? out.nats_cpu_pct : out.redis_cpu_pct;
      // The broker's VmRSS at its highest during the traffic phase.
      const key = out.broker === 'nats' ? 'natsRss' : 'redisRss';
      const seen = samples.filter((s) => s.wall >= t0 && s.wall <= t1 && Number.isFinite(s[key]) && s[key] > 0);
      if (seen.length) out.broker_rss_mb = Math.max(...seen.map((s) => s[key])) / 1024;
    }
    const before = samples.filter((s) => s.wall < run.start);
    const during = samples.filter((s) => s.wall >= t0 && s.wall <= t1);
    if (before.length && during.length && out.connections > 0) {
      const base = before[before.length - 1].rss;
      const peak = Math.max(...during.map((s) => s.rss));
      out.rss_per_conn_kib = (peak - base) / out.connections;
      out.nodes_rss_mb = peak / 1024;
    }
  }
  return out;
}

const runs = fs.readFileSync(arg('--runs'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const rows = runs.map(row);

// Fan-out: each server's N-node-on-Redis figure over its single-node one.
const fanout = [];
for (const server of [...new Set(rows.filter((x) => x.test === 'fanout').map((x) => x.server))]) {
  const mine = rows.filter((x) => x.test === 'fanout' && x.server === server);
  const single = mine.find((x) => x.nodes === 1);
  const multi = mine.find((x) => x.nodes > 1) ?? null;
  fanout.push({
    server, single_node_deliveries_per_s: single?.deliveries_per_s ?? null,
    cluster_nodes: multi?.nodes ?? null, cluster_engine: multi?.engine ?? null,
    cluster_deliveries_per_s: multi?.deliveries_per_s ?? null,
    ratio: single && multi && single.deliveries_per_s > 0 ? multi.deliveries_per_s / single.deliveries_per_s : null,
  });
}

const meta = {
  benchmark: 'cluster', date: env('DATE'), commit: env('COMMIT'), dirty: env('DIRTY') === 'true',
  switchboard_version: env('SB_VERSION'), switchboard_engine: env('SB_ENGINE'),
  redis_version: env('REDIS_VERSION'), nats_version: env('NATS_VERSION'), nats_storage: env('NATS_STORAGE'),
  socketio_versions: versions(['socket.io', 'socket.io-client', '@socket.io/redis-adapter', 'redis']),
  node_version: process.version,
  machine: { nproc: (await import('node:os')).cpus().length, mem_kb: Math.round((await import('node:os')).totalmem() / 1024) },
  params: {
    scale: env('SCALE'), conns: env('CONNS', true), nodes: env('NODES', true), rooms: env('ROOMS', true),
    interval: env('INTERVAL'), duration_s: env('DURATION', true), size: env('SIZE', true),
    gen_procs: env('GEN_PROCS', true), fan_subs: env('FAN_SUBS', true), fan_nodes: env('FAN_NODES', true),
    fan_msgs: env('FAN_MSGS', true), fan_window: env('FAN_WINDOW', true), fan_procs: env('FAN_PROCS', true),
    publish: env('PUBLISH') || 'first',
  },
};

function versions(names) {
  const v = {};
  for (const n of names) {
    try {
      v[n] = JSON.parse(fs.readFileSync(new URL(`../node_modules/${n}/package.json`, import.meta.url), 'utf8')).version;
    } catch { v[n] = null; }
  }
  return v;
}

fs.writeFileSync(arg('--out'), `${JSON.stringify({ ...meta, rows, fanout, runs: runs.map((x) => x.result) }, null, 1)}\n`);

fs.writeFileSync(arg('--md'), clusterMarkdown({ ...meta, rows, fanout }));
