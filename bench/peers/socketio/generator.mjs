// Fan-out load generator for the Socket.IO peer (server.mjs): the load of
// `switchboard bench fanout` with several --url, reproduced with socket.io-client, so
// bench/run_cluster_bench.sh can put the two side by side.
//
//   node generator.mjs --url http://127.0.0.1:P1,http://127.0.0.1:P2 -c 30000 --rooms 300 \
//       --publishers 300 --interval 1s -d 30s --json out.json
//
// Load: -c subscribers, each joining room (i % rooms) on URL (i % rooms + i / rooms) % URLs
// (the spread of `switchboard bench`: round-robin, every room on every node); --publishers P
// connections to --publish-url (default: the first URL; several: publisher p on URL p % M),
// publisher p publishing into room p % rooms either on a fixed schedule (--interval T: open loop, latency measured from when a
// publication was due, a schedule more than 1 s behind skips the missed sends and counts them)
// or as fast as acknowledgements allow (--interval 0, --window W in flight, -n messages each).
// Each payload carries "PUBLISHER SEQ T" (T: the send time on the monotonic clock, shared by
// every process of this machine), padded to --size bytes; a subscriber's delivery latency is
// its receipt time minus T.
//
// Past the open-file limit of a process (20,000 here; each connection is one descriptor) the
// run forks --procs workers (default: one per 19,000 connections) that meet at the same
// barriers as the bench's: all connected -> go; all published -> expected totals per room ->
// drain until every subscriber has them (or --drain passes) -> close. Results merge exactly
// (histograms are bucket counts).
//
// Prints a short table; --json writes the fields run_cluster_bench.sh reads, named as in
// `switchboard bench --json` (counters, latency_ms, throughput). Exit 0 when nothing was
// lost and every connection opened, 1 otherwise, 2 on bad flags.
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { io } from 'socket.io-client';

const SELF = fileURLToPath(import.meta.url);
const FDS_PER_PROC = 19_000; // under the 20,000 hard limit, with room for node's own files
const CONNS_PER_SRC_ADDR = 20_000; // ephemeral ports per (source, destination) are ~28k
const MAX_CATCH_UP_NS = 1e9;
const PERCENTILES = [50, 90, 95, 99, 99.9];

const nowNs = () => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, exact below 2^53 ns

// ---- flags ------------------------------------------------------------------------------

function seconds(v) {
  const m = /^([0-9.]+)(ms|s|m)?$/.exec(v);
  if (!m || !Number.isFinite(Number(m[1]))) throw new Error(`not a duration: ${v}`);
  const scale = m[2] === 'ms' ? 1e-3 : m[2] === 'm' ? 60 : 1;
  return Number(m[1]) * scale;
}

function count(v) {
  const m = /^([0-9]+)([kK]?)$/.exec(v);
  if (!m) throw new Error(`not a count: ${v}`);
  return Number(m[1]) * (m[2] ? 1000 : 1);
}

function parseArgs(argv) {
  const o = {
    urls: [], publishUrls: [], conns: 100, rooms: 1, publishers: 1, intervalMs: 0, window: 1,
    messages: 0, durationS: 0, size: 64, drainS: 5, procs: 0, connectWindow: 200,
    connectTimeoutMs: 20_000, json: '', srcAddrs: 0,
  };
  for (let i = 0; i < argv.length; ++i) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--url': o.urls.push(...value().split(',')); break;
      case '--publish-url': o.publishUrls.push(...value().split(',')); break;
      case '-c': case '--conns': o.conns = count(value()); break;
      case '--rooms': o.rooms = count(value()); break;
      case '--publishers': o.publishers = count(value()); break;
      case '-i': case '--interval': {
        const v = value();
        o.intervalMs = /[a-z]$/.test(v) ? seconds(v) * 1e3 : Number(v);
        break;
      }
      case '-w': case '--window': o.window = count(value()); break;
      case '-n': case '--messages': o.messages = count(value()); break;
      case '-d': case '--duration': o.durationS = seconds(value()); break;
      case '-s': case '--size': o.size = count(value()); break;
      case '--drain': o.drainS = seconds(value()); break;
      case '--procs': o.procs = count(value()); break;
      case '--connect-window': o.connectWindow = count(value()); break;
      case '--connect-timeout': o.connectTimeoutMs = seconds(value()) * 1e3; break;
      case '--src-addrs': o.srcAddrs = count(value()); break;
      case '--json': o.json = value(); break;
      default: throw new Error(`unknown flag ${argv[i]}`);
    }
  }
  if (o.urls.length === 0 || o.urls.some((u) => !u)) throw new Error('give --url');
  if (o.publishUrls.some((u) => !u)) throw new Error('an empty --publish-url');
  if (o.rooms < 1 || o.publishers < 1 || o.window < 1) throw new Error('rooms, publishers, window >= 1');
  if (!Number.isFinite(o.intervalMs) || o.intervalMs < 0) throw new Error('bad --interval');
  if (o.messages === 0 && o.durationS === 0) o.messages = 100;
  const total = o.conns + o.publishers;
  if (o.procs === 0) o.procs = Math.max(1, Math.ceil(total / FDS_PER_PROC));
  if (o.srcAddrs === 0) o.srcAddrs = Math.min(250, Math.max(1, Math.ceil(total / CONNS_PER_SRC_ADDR)));
  return o;
}

// ---- histogram: log buckets of 0.5 %, mergeable by adding counts ----------------------

const BUCKETS_PER_E = 200;
class Histogram {
  constructor() { this.counts = new Map(); this.n = 0; this.sum = 0; this.max = 0; }
  record(ns) {
    const us = Math.max(0, ns / 1e3);
    const k = Math.round(Math.log1p(us) * BUCKETS_PER_E);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    this.n += 1;
    this.sum += us;
    if (us > this.max) this.max = us;
  }
  merge(wire) {
    for (const [k, c] of wire.counts) this.counts.set(k, (this.counts.get(k) ?? 0) + c);
    this.n += wire.n;
    this.sum += wire.sum;
    this.max = Math.max(this.max, wire.max);
  }
  wire() { return { counts: [...this.counts], n: this.n, sum: this.sum, max: this.max }; }
  percentileMs(p) {
    if (this.n === 0) return 0;
    const want = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (const k of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(k);
      if (seen >= want) return Math.min(Math.expm1(k / BUCKETS_PER_E), this.max) / 1e3;
    }
    return this.max / 1e3;
  }
  json() {
    const j = { count: this.n, mean: this.n ? this.sum / this.n / 1e3 : 0 };
    for (const p of PERCENTILES) j[`p${String(p).replace('.', '_')}`] = this.percentileMs(p);
    j.max = this.max / 1e3;
    return j;
  }
}

// ---- the spread and the slices (as src/bench/options.cpp) ------------------------------

const targetFor = (o, conn) => ((conn % o.rooms) + Math.floor(conn / o.rooms)) % o.urls.length;
const part = (total, i, n) => Math.floor((total * i) / n);

// ---- worker -----------------------------------------------------------------------------

const COUNTERS = [
  'connects_attempted', 'connects_ok', 'connects_failed', 'drops', 'open_peak', 'msgs_sent',
  'publishes_acked', 'msgs_received', 'expected', 'deliveries', 'lost', 'duplicates',
  'out_of_order', 'foreign', 'sends_skipped',
];

function runWorker(o, index, count, send, onControl) {
  const k = Object.fromEntries(COUNTERS.map((c) => [c, 0]));
  const latency = new Histogram();
  const connectLat = new Histogram();
  // How late paced sends left against their schedule: this process's own event-loop lag,
  // which is in every latency it measures (as `send lag` in switchboard bench).
  const sendLag = new Histogram();
  const subs = [];
  const pubs = [];
  for (let i = part(o.conns, index, count); i < part(o.conns, index + 1, count); ++i) {
    subs.push({ id: i, room: i % o.rooms, url: o.urls[targetFor(o, i)], src: i, socket: null,
                lastSeq: -1, unique: 0, expected: 0, participant: false, complete: false });
  }
  for (let p = part(o.publishers, index, count); p < part(o.publishers, index + 1, count); ++p) {
    pubs.push({ id: p, room: p % o.rooms, url: o.publishUrls.length ? o.publishUrls[p % o.publishUrls.length] : o.urls[0], src: o.conns + p,
                socket: null, seq: 0, unacked: 0, ready: false, done: false });
  }
  const all = [...subs, ...pubs];
  const perRoom = new Array(o.rooms).fill(0);
  const pad = 'x'.repeat(Math.max(0, o.size));
  let open = 0;
  let next = 0;
  let pending = 0;
  let resolved = 0;
  let phase = 'connecting';
  let goNs = 0;
  let trafficEndNs = 0;
  let lastRxNs = 0;
  let incomplete = 0;
  let drainTimer = null;
  const startNs = nowNs();
  const cpu0 = process.cpuUsage();
  let cpuGo = null;

  const resolveOne = () => {
    resolved += 1;
    if (resolved === all.length && phase === 'connecting') {
      phase = 'ready';
      send({ type: 'ready', connect_s: (nowNs() - startNs) / 1e9 });
    }
  };

  const onMessage = (s, data) => {
    const t = nowNs();
    k.msgs_received += 1;
    lastRxNs = t;
    const [p, seq, sent] = String(data).split(' ', 3).map(Number);
    if (!(p < o.publishers) || p % o.rooms !== s.room) { k.foreign += 1; return; }
    // One publisher per room in these runs keeps the check to a high-water mark; with more,
    // an interleaving of two publishers would be taken for reordering.
    if (seq <= s.lastSeq) { k.duplicates += 1; return; }
    s.lastSeq = seq;
    s.unique += 1;
    latency.record(t - sent);
    if (s.participant && phase === 'draining' && !s.complete && s.unique >= s.expected) {
      s.complete = true;
      incomplete -= 1;
      if (incomplete === 0) finish();
    }
  };

  const connectOne = (c) => {
    pending += 1;
    k.connects_attempted += 1;
    const t0 = nowNs();
    const socket = io(c.url, {
      transports: ['websocket'], forceNew: true, reconnection: false,
      timeout: o.connectTimeoutMs,
      localAddress: `127.0.0.${1 + (c.src % o.srcAddrs)}`,
    });
    c.socket = socket;
    let settled = false;
    const settle = (ok, why) => {
      if (settled) return;
      settled = true;
      pending -= 1;
      if (ok) {
        k.connects_ok += 1;
        connectLat.record(nowNs() - t0);
      } else {
        k.connects_failed += 1;
        if (!k.first_error) k.first_error = String(why);
        socket.close();
      }
      resolveOne();
      pump();
    };
    socket.on('connect', () => {
      open += 1;
      k.open_peak = Math.max(k.open_peak, open);
      if (c.seq !== undefined) {
        c.ready = true;
        settle(true);
      } else {
        socket.emit('join', c.room, () => {
          c.participant = true;
          settle(true);
        });
        socket.on('message', (data) => onMessage(c, data));
      }
    });
    socket.on('connect_error', (err) => settle(false, err.message));
    socket.on('disconnect', (reason) => {
      open -= 1;
      if (reason !== 'io client disconnect') k.drops += 1;
      if (!settled) settle(false, reason);
    });
  };

  function pump() {
    while (phase === 'connecting' && next < all.length && pending < o.connectWindow) {
      connectOne(all[next++]);
    }
  }

  // -- traffic
  const intervalNs = o.intervalMs * 1e6;
  let deadlineNs = 0;
  let pubsLeft = pubs.length;
  const pubDone = (c) => {
    if (c.done) return;
    c.done = true;
    pubsLeft -= 1;
    checkPublished();
  };
  const publish = (c, intendedNs) => {
    c.seq += 1;
    k.msgs_sent += 1;
    c.unacked += 1;
    const data = `${c.id} ${c.seq} ${intendedNs} `;
    c.socket.emit('publish', { room: c.room, data: data + pad.slice(data.length) }, () => {
      c.unacked -= 1;
      k.publishes_acked += 1;
      perRoom[c.room] += 1;
      if (intervalNs === 0) windowed(c);
      else if (c.finished && c.unacked === 0) pubDone(c);
    });
  };
  const outOfTime = (c) => (o.messages > 0 && c.seq >= o.messages) ||
                           (deadlineNs > 0 && nowNs() >= deadlineNs) || phase !== 'running';
  const windowed = (c) => {
    while (!outOfTime(c) && c.unacked < o.window) publish(c, nowNs());
    if (outOfTime(c) && c.unacked === 0) pubDone(c);
  };
  const paced = (c, at) => {
    const t = nowNs();
    if (outOfTime(c) || (deadlineNs > 0 && at >= deadlineNs)) {
      c.finished = true;
      if (c.unacked === 0) pubDone(c);
      return;
    }
    sendLag.record(t - at);
    if (t - at > MAX_CATCH_UP_NS) {
      const skip = Math.ceil((t - at - MAX_CATCH_UP_NS) / intervalNs);
      k.sends_skipped += skip;
      at += skip * intervalNs;
    }
    publish(c, at);
    const due = at + intervalNs;
    setTimeout(() => paced(c, due), Math.max(0, (due - nowNs()) / 1e6));
  };
  function checkPublished() {
    if (phase === 'running' && pubsLeft === 0) {
      trafficEndNs = nowNs();
      phase = 'published';
      clearTimeout(drainTimer);
      send({ type: 'published', per_room: perRoom });
    }
  }
  function go() {
    if (phase !== 'ready') return;
    phase = 'running';
    goNs = nowNs();
    cpuGo = process.cpuUsage();
    if (o.durationS > 0) deadlineNs = goNs + o.durationS * 1e9;
    const live = pubs.filter((c) => c.ready);
    for (const c of pubs) if (!c.ready) pubDone(c);
    live.forEach((c, i) => {
      if (intervalNs > 0) {
        // First sends spread over one interval, so the publishers do not fire in lockstep.
        const first = goNs + Math.floor((intervalNs * i) / live.length);
        setTimeout(() => paced(c, first), (first - goNs) / 1e6);
      } else {
        windowed(c);
      }
    });
    // Publishers whose acks never come must not hold the run: after the traffic phase and
    // one drain period, report what was acknowledged.
    const limitMs = (o.durationS > 0 ? o.durationS : 3600) * 1e3 + o.drainS * 1e3;
    drainTimer = setTimeout(() => {
      for (const c of pubs) pubDone(c);
    }, limitMs);
    checkPublished();
  }
  function expected(totals) {
    if (phase !== 'published') return;
    phase = 'draining';
    for (const s of subs) {
      if (!s.participant) continue;
      s.expected = totals[s.room] ?? 0;
      s.complete = s.unique >= s.expected;
      if (!s.complete) incomplete += 1;
    }
    if (incomplete === 0) finish();
    else drainTimer = setTimeout(finish, o.drainS * 1e3);
  }
  function finish() {
    if (phase === 'done') return;
    phase = 'done';
    clearTimeout(drainTimer);
    for (const s of subs) {
      if (!s.participant) continue;
      k.deliveries += s.unique;
      k.expected += s.expected;
      k.lost += Math.max(0, s.expected - s.unique);
    }
    const cpu = process.cpuUsage(cpu0);
    // CPU from go to now (the traffic phase and the drain), over that time: near 1 means this
    // process, not the servers, set the pace.
    const traffic = cpuGo ? process.cpuUsage(cpuGo) : { user: 0, system: 0 };
    const trafficWallS = goNs ? (nowNs() - goNs) / 1e9 : 0;
    for (const c of all) c.socket?.disconnect();
    send({
      type: 'result', counters: k, latency: latency.wire(), connect: connectLat.wire(),
      send_lag: sendLag.wire(),
      busy: trafficWallS > 0 ? (traffic.user + traffic.system) / 1e6 / trafficWallS : 0,
      go_ns: goNs, traffic_end_ns: trafficEndNs, last_rx_ns: lastRxNs,
      cpu_s: (cpu.user + cpu.system) / 1e6, rss_kb: Math.round(process.memoryUsage().rss / 1024),
    });
  }
  onControl((msg) => {
    if (msg.type === 'go') go();
    else if (msg.type === 'expected') expected(msg.per_room);
    else if (msg.type === 'stop') finish();
  });
  if (all.length === 0) {
    phase = 'ready'; // an empty slice is ready at once
    send({ type: 'ready', connect_s: 0 });
  } else {
    pump();
  }
}

// ---- the parent: forks, barriers, merge ----------------------------------------------

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`generator: ${err.message}`);
    process.exit(2);
  }
  const workers = [];
  const state = { ready: 0, published: 0, results: [], connectS: 0 };
  const totals = new Array(o.rooms).fill(0);
  const broadcast = (msg) => workers.forEach((w) => w.connected && w.send(msg));
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    broadcast({ type: 'stop' });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = nowNs();
  for (let i = 0; i < o.procs; ++i) {
    // A worker holds up to ~19,000 sockets: give V8 room above its default heap limit.
    const w = fork(SELF, ['--worker', String(i), JSON.stringify(o)],
                   { execArgv: ['--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    w.on('message', (msg) => {
      if (msg.type === 'ready') {
        state.ready += 1;
        state.connectS = Math.max(state.connectS, msg.connect_s);
        if (state.ready === o.procs) broadcast({ type: 'go' });
      } else if (msg.type === 'published') {
        msg.per_room.forEach((n, r) => { totals[r] += n; });
        state.published += 1;
        if (state.published === o.procs) broadcast({ type: 'expected', per_room: totals });
      } else if (msg.type === 'result') {
        state.results.push(msg);
        w.disconnect();
      }
    });
    w.on('exit', (code) => {
      w.exitCode_ = code;
      if (workers.every((x) => x.exitCode_ !== undefined)) report(o, state, t0, interrupted, workers);
    });
    workers.push(w);
  }
}

function report(o, state, t0, interrupted, workers) {
  const k = Object.fromEntries(COUNTERS.map((c) => [c, 0]));
  const latency = new Histogram();
  const connect = new Histogram();
  const sendLag = new Histogram();
  let busiest = 0;
  let go = Infinity;
  let end = 0;
  let cpu = 0;
  let rss = 0;
  let firstError = '';
  for (const r of state.results) {
    for (const c of COUNTERS) k[c] += r.counters[c] ?? 0;
    firstError ||= r.counters.first_error ?? '';
    latency.merge(r.latency);
    connect.merge(r.connect);
    sendLag.merge(r.send_lag);
    busiest = Math.max(busiest, r.busy);
    if (r.go_ns > 0) go = Math.min(go, r.go_ns);
    end = Math.max(end, r.traffic_end_ns, r.last_rx_ns);
    cpu += r.cpu_s;
    rss += r.rss_kb;
  }
  const trafficS = Number.isFinite(go) && end > go ? (end - go) / 1e9 : 0;
  const failedWorkers = workers.filter((w) => w.exitCode_ !== 0).length +
                        (o.procs - state.results.length);
  const per = (n, s) => (s > 0 ? n / s : 0);
  const result = {
    scenario: 'fanout', generator: 'socket.io-client', url: o.urls[0], urls: o.urls,
    publish_url: o.publishUrls[0] ?? o.urls[0], publish_urls: o.publishUrls.length ? o.publishUrls : [o.urls[0]],
    mode: 'socket.io',
    options: { conns: o.conns, messages: o.messages, duration_s: o.durationS,
               interval_ms: o.intervalMs, window: o.window, size: o.size,
               publishers: o.publishers, rooms: o.rooms, drain_s: o.drainS },
    procs: o.procs, interrupted, elapsed_s: (nowNs() - t0) / 1e9, connect_s: state.connectS,
    traffic_s: trafficS, counters: k, connect_ms: connect.json(), latency_ms: latency.json(),
    send_lag_ms: sendLag.json(), busiest_cpu: busiest,
    throughput: { sent_per_s: per(k.msgs_sent, trafficS), received_per_s: per(k.msgs_received, trafficS),
                  deliveries_per_s: per(k.deliveries, trafficS), connects_per_s: per(k.connects_ok, state.connectS) },
    errors: firstError ? { connect: k.connects_failed } : {},
    error_samples: firstError ? { connect: firstError } : {},
    workers_failed: failedWorkers, generator_cpu_s: cpu, generator_rss_kb: rss,
  };
  const l = result.latency_ms;
  console.log(`socket.io fanout  ${o.urls.length} node(s)  ${o.conns} subscribers  ${o.rooms} rooms  ` +
              `${o.publishers} publishers  (${o.procs} process${o.procs === 1 ? '' : 'es'})`);
  console.log(`  connections  ok ${k.connects_ok}  failed ${k.connects_failed}  dropped ${k.drops}` +
              (firstError ? `  (first error: ${firstError})` : ''));
  console.log(`  publications ${k.msgs_sent} sent, ${k.publishes_acked} acked, ${k.sends_skipped} skipped`);
  console.log(`  deliveries   ${k.deliveries} of ${k.expected} (lost ${k.lost}, duplicates ${k.duplicates}) ` +
              `${result.throughput.deliveries_per_s.toFixed(0)}/s over ${trafficS.toFixed(2)} s`);
  console.log(`  latency ms   p50 ${l.p50.toFixed(3)}  p90 ${l.p90.toFixed(3)}  p99 ${l.p99.toFixed(3)}  max ${l.max.toFixed(3)}`);
  const g = result.send_lag_ms;
  console.log(`  send lag ms  p50 ${g.p50.toFixed(3)}  p99 ${g.p99.toFixed(3)}  max ${g.max.toFixed(3)}` +
              `  (busiest generator process ${(busiest * 100).toFixed(0)}% of a core after go)`);
  if (busiest > 0.9) console.log('  warning      a generator process was CPU-bound: the numbers may measure the generator');
  if (o.json) writeFileSync(o.json, `${JSON.stringify(result)}\n`);
  const clean = !interrupted && failedWorkers === 0 && k.connects_failed === 0 && k.lost === 0;
  process.exit(clean ? 0 : 1);
}

if (process.argv[2] === '--worker') {
  const o = JSON.parse(process.argv[4]);
  const handlers = [];
  process.on('message', (msg) => handlers.forEach((h) => h(msg)));
  // The parent gone (killed): nothing left to report to.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => {}); // the parent's 'stop' ends the run and still reports
  runWorker(o, Number(process.argv[3]), o.procs, (msg) => {
    process.send(msg);
    if (msg.type === 'result') setTimeout(() => process.exit(0), 100);
  }, (h) => handlers.push(h));
} else {
  main();
}
