// Interop: the JS client (clients/js, the committed dist/) against a real `switchboard serve`,
// with node's `ws` as the WebSocket implementation. Connections that must die mid-stream go
// through a TCP proxy the test controls (kill = 1006, freeze = a dead link for the heartbeat,
// retarget = the server restarted elsewhere).
//   SB_SERVER=build/release/switchboard node --test tests/interop/client_js.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, deadline, startServer } from '../support/server.mjs';
import { Switchboard, SwitchboardError } from '../../clients/js/dist/index.js';

const require = createRequire(import.meta.url);
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }

const API_KEY = 'client-js-test-key';
const CONFIG = `
[api]
key = "${API_KEY}"

[namespaces.chat]
presence = true
join_leave = true
history_size = 100

[namespaces.jobs]
delivery = "at_least_once"
history_size = 1000
`;

let tmp;
let server;
const clients = [];
const proxies = [];

function configFile() {
  tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'sb-client-js-'));
  const f = path.join(tmp, 'switchboard.toml');
  fs.writeFileSync(f, CONFIG);
  return f;
}

// One server ping a second: the heartbeat test then takes ~2 s (ping interval + the client's margin).
function start() { return startServer({ flags: ['--config', configFile(), '--ping-interval', '1s'] }); }

before(async () => { server = await start(); });
after(async () => {
  for (const c of clients) c.disconnect();
  for (const p of proxies) await p.close();
  const alive = server?.alive();
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.ok(alive, `server died during the suite: ${server?.stderr()}`);
});

async function api(srv, call, body) {
  const res = await fetch(`http://127.0.0.1:${srv.port}/api/${call}`, {
    method: 'POST', headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`/api/${call}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Resolves when `pred()` holds, re-checked on every `poke()`; rejects after `ms`. */
class Signal {
  constructor() { this.waiters = new Set(); }
  poke() { for (const w of [...this.waiters]) if (w.pred()) { this.waiters.delete(w); w.resolve(); } }
  until(pred, ms, what) {
    if (pred()) return Promise.resolve();
    const p = new Promise((resolve) => this.waiters.add({ pred, resolve }));
    return deadline(p, ms, what);
  }
}

/** A client with its events recorded. */
function client(url, opts = {}) {
  const c = new Switchboard(url, { WebSocket, storage: null, backoff: { minMs: 50, maxMs: 500 }, ...opts });
  const log = { events: [], errors: [], signal: new Signal() };
  for (const ev of ['connecting', 'connected', 'disconnected', 'error']) {
    c.on(ev, (e) => { log.events.push([ev, e]); if (ev === 'error') log.errors.push(e); log.signal.poke(); });
  }
  c.log = log;
  c.count = (ev) => log.events.filter(([n]) => n === ev).length;
  c.last = (ev) => log.events.filter(([n]) => n === ev).pop()?.[1];
  clients.push(c);
  return c;
}

/** A subscription that records everything it is told. */
function recorder(c, channel, opts = {}) {
  const r = { messages: [], joins: [], leaves: [], recoveries: [], signal: c.log.signal };
  const poke = () => r.signal.poke();
  r.sub = c.subscribe(channel, {
    onMessage: (m) => { r.messages.push(m); poke(); },
    onJoin: (e) => { r.joins.push(e); poke(); },
    onLeave: (e) => { r.leaves.push(e); poke(); },
    onRecovered: (i) => { r.recoveries.push(i); poke(); },
    ...opts,
  });
  return r;
}

/** A TCP proxy in front of a server; kill() drops every connection without a close frame. */
async function proxy(targetPort) {
  const pairs = new Set();
  let target = targetPort;
  const srv = net.createServer((down) => {
    const up = net.connect(target, '127.0.0.1');
    const pair = { up, down, frozen: false };
    pairs.add(pair);
    const end = () => { pairs.delete(pair); up.destroy(); down.destroy(); };
    up.on('error', end); down.on('error', end); up.on('close', end); down.on('close', end);
    up.on('data', (d) => { if (!pair.frozen) down.write(d); });
    down.on('data', (d) => { if (!pair.frozen) up.write(d); });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const p = {
    port: srv.address().port,
    url: () => `ws://127.0.0.1:${srv.address().port}/ws`,
    connections: () => pairs.size,
    kill() { for (const { up, down } of [...pairs]) { up.destroy(); down.destroy(); } pairs.clear(); },
    /** Open connections stop passing bytes (both ways) but stay open: a dead link. */
    freeze() { for (const pair of pairs) pair.frozen = true; },
    retarget(port) { target = port; },
    close() { p.kill(); return new Promise((resolve) => srv.close(resolve)); },
  };
  proxies.push(p);
  return p;
}

describe('JS client against switchboard', () => {
  test('connect, subscribe, publish and receive, presence with join/leave, history', async () => {
    const alice = client(server.url('/ws'), { user: 'alice', info: { color: 'red' } });
    const bob = client(server.url('/ws'), { user: 'bob' });
    const a = await deadline(alice.connect(), 10000, 'alice connected');
    assert.equal(a.resumed, false);
    assert.match(a.session, /^s_[0-9a-f]{32}$/);
    assert.equal(alice.state, 'connected');
    await bob.connect();

    const ra = recorder(alice, 'chat:room1');
    const sa = await deadline(ra.sub.ready, 5000, 'alice subscribed');
    assert.equal(sa.channel, 'chat:room1');
    await ra.signal.until(() => ra.joins.some((j) => j.user === 'alice'), 5000, "alice's own join");
    assert.deepEqual(ra.joins[0].info, { color: 'red' });

    const rb = recorder(bob, 'chat:room1');
    await rb.sub.ready;
    await ra.signal.until(() => ra.joins.some((j) => j.user === 'bob'), 5000, "bob's join at alice");

    const pres = await ra.sub.presence();
    assert.equal(pres.count, 2);
    assert.deepEqual(pres.clients.map((c) => c.user).sort(), ['alice', 'bob']);

    const pub = await rb.sub.publish({ text: 'hello' });
    assert.equal(pub.duplicate, false);
    assert.ok(pub.offset >= 1);
    await ra.signal.until(() => ra.messages.length === 1, 5000, 'alice receives the publication');
    assert.deepEqual(ra.messages[0], { channel: 'chat:room1', epoch: pub.epoch, offset: pub.offset, data: { text: 'hello' } });
    await rb.signal.until(() => rb.messages.length === 1, 5000, 'bob receives his own publication');

    const again = await bob.publish('chat:room1', { text: 'hello' }, { idempotencyKey: 'k1' });
    const dup = await bob.publish('chat:room1', { text: 'other' }, { idempotencyKey: 'k1' });
    assert.equal(dup.duplicate, true);
    assert.equal(dup.offset, again.offset);

    const h = await ra.sub.history({ limit: 10 });
    assert.deepEqual(h.publications.map((p) => p.data), [{ text: 'hello' }, { text: 'hello' }]);
    const hs = await alice.history('chat:room1', { since: { epoch: pub.epoch, offset: pub.offset } });
    assert.equal(hs.recovered, true);
    assert.deepEqual(hs.publications.map((p) => p.offset), [again.offset]);

    await rb.sub.unsubscribe();
    await ra.signal.until(() => ra.leaves.some((l) => l.user === 'bob'), 5000, "bob's leave at alice");
    assert.equal(bob.getSubscription('chat:room1'), undefined);
    await assert.rejects(rb.sub.publish(1), (e) => e instanceof SwitchboardError && e.code === 'unsubscribed');
  });

  test('server errors are typed: SwitchboardError with the server code', async () => {
    const c = client(server.url('/ws'));
    await c.connect();
    const bad = c.subscribe('nosuchns:x', { onError: () => {} });
    await assert.rejects(bad.ready, (e) => e instanceof SwitchboardError && e.code === 'unknown_namespace' && /nosuchns/.test(e.message));
    await assert.rejects(c.publish('chat:bad name', 1), (e) => e.code === 'bad_channel');
    await assert.rejects(c.history('nohistory:x'), (e) => e.code === 'unknown_namespace');
    assert.equal(c.state, 'connected');
  });

  test('at-least-once: connections killed mid-stream (TCP and /api/disconnect) lose nothing and double nothing', async () => {
    const px = await proxy(server.port);
    const c = client(px.url());
    await c.connect();
    const r = recorder(c, 'jobs:q1');
    await r.sub.ready;
    const N = 300;
    const kills = new Map([[60, 'tcp'], [120, 'api'], [180, 'tcp'], [240, 'tcp']]);
    for (let i = 1; i <= N; i++) {
      await api(server, 'publish', { channel: 'jobs:q1', data: { n: i } });
      const how = kills.get(i);
      if (!how) continue;
      // Publishing goes on while the client is away; the kill itself waits on the client's events.
      const n = c.count('disconnected');
      if (how === 'tcp') {
        px.kill();
      } else {
        await c.log.signal.until(() => c.state === 'connected', 10000, 'connected before /api/disconnect');
        await api(server, 'disconnect', { client: c.clientId, reconnect: true });
      }
      await c.log.signal.until(() => c.count('disconnected') > n, 10000, `disconnected after the ${how} kill at ${i}`);
    }
    await r.signal.until(() => r.messages.length >= N, 30000, `all ${N} publications (got ${r.messages.length})`);
    const ns = r.messages.map((m) => m.data.n);
    assert.deepEqual(ns, Array.from({ length: N }, (_, i) => i + 1), 'each publication exactly once, in order');
    const offsets = r.messages.map((m) => m.offset);
    assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y));
    assert.equal(new Set(offsets).size, N);
    const resumed = c.log.events.filter(([n, e]) => n === 'connected' && e.resumed).length;
    assert.ok(resumed >= 3, `resumed sessions: ${resumed} (events ${JSON.stringify(c.log.events.map(([n, e]) => [n, e.code ?? e.resumed]))})`);
    assert.ok(c.log.events.some(([n, e]) => n === 'disconnected' && e.code === 4003), 'the /api/disconnect close was seen');
    assert.ok(r.recoveries.every((x) => x.recovered), JSON.stringify(r.recoveries));

    // Acks went out: a resume after everything was acked owes nothing, so nothing more arrives
    // (and the session's channel reports recovered).
    await r.signal.until(() => r.sub.position.offset === offsets[N - 1], 5000, 'position at the last offset');
    const before = r.messages.length;
    const ping = await c.ping();
    assert.ok(ping >= 0);
    assert.equal(r.messages.length, before);
  });

  test('a dead link (no bytes, no close) is found by the heartbeat and the session resumes', async () => {
    const px = await proxy(server.port);
    const c = client(px.url(), { pingTimeoutMs: 1000 });
    await c.connect();
    const r = recorder(c, 'chat:hb');
    await r.sub.ready;
    const t0 = Date.now();
    px.freeze();
    await c.log.signal.until(() => c.count('disconnected') >= 1, 10000, 'disconnected by the heartbeat');
    const took = Date.now() - t0;
    const d = c.last('disconnected');
    assert.equal(d.code, 1006);
    assert.match(d.reason, /heartbeat/);
    assert.equal(d.reconnect, true);
    assert.ok(took < 5000, `dead link found after ${took} ms (ping interval 1 s + margin 1 s)`);
    await c.log.signal.until(() => c.count('connected') >= 2, 10000, 'reconnected');
    assert.equal(c.last('connected').resumed, true);
    const p = await c.publish('chat:hb', 'after');
    await r.signal.until(() => r.messages.some((m) => m.offset === p.offset), 5000, 'publication after the resume');
  });

  test('server restart (memory engine): resumed:false, and the app is told recovered:false', async () => {
    const s1 = await start();
    const px = await proxy(s1.port);
    let s2;
    try {
      const c = client(px.url());
      await c.connect();
      const session1 = c.session;
      const r = recorder(c, 'chat:restart');
      await r.sub.ready;
      for (let i = 1; i <= 3; i++) await api(s1, 'publish', { channel: 'chat:restart', data: i });
      await r.signal.until(() => r.messages.length === 3, 5000, 'three publications');
      const epoch1 = r.messages[0].epoch;

      await s1.stop(); // SIGTERM: close 1001, then refused connections while it is down
      await c.log.signal.until(() => c.log.events.some(([n, e]) => n === 'disconnected' && e.code === 1001), 10000, 'close 1001');
      s2 = await start();
      px.retarget(s2.port);
      await c.log.signal.until(() => c.count('connected') >= 2, 20000, 'connected to the new server');
      assert.equal(c.last('connected').resumed, false);
      assert.notEqual(c.session, session1);
      await r.signal.until(() => r.recoveries.length >= 1, 5000, 'recovery reported');
      assert.deepEqual(r.recoveries.map((x) => [x.cause, x.recovered]), [['resubscribe', false]]);
      assert.notEqual(r.recoveries[0].epoch, epoch1);
      await api(s2, 'publish', { channel: 'chat:restart', data: 'new' });
      await r.signal.until(() => r.messages.length === 4, 5000, 'publication on the new server');
      assert.equal(r.messages[3].data, 'new');
      assert.equal(r.messages[3].offset, 1);
      c.disconnect();
    } finally {
      await s1.stop();
      await s2?.stop();
    }
  });

  test('a peer that never answers the handshake: connect times out and is retried; disconnect() mid-handshake is clean', async () => {
    // Reads the upgrade request and answers nothing.
    const socks = new Set();
    const silent = net.createServer((sock) => {
      socks.add(sock);
      sock.on('close', () => socks.delete(sock));
      sock.on('error', () => {});
      sock.resume();
    });
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const c = client(`ws://127.0.0.1:${silent.address().port}/ws`, { connectTimeoutMs: 300 });
      const first = c.connect();
      await c.log.signal.until(() => c.count('connecting') >= 2, 10000, 'a second attempt after the connect timeout');
      const d = c.last('disconnected');
      assert.equal(d.reconnect, true);
      assert.match(d.reason, /no connected reply/);
      assert.equal(c.state, 'connecting');
      c.disconnect(); // closes a WebSocket still in its handshake: `ws` then emits 'error'
      await assert.rejects(first, (e) => e.code === 'client_closed');
      assert.equal(c.state, 'disconnected');
      assert.equal(c.reconnectScheduled, false);
      // Let `ws` report the aborted handshake (process.nextTick) before the test ends.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      for (const sock of socks) sock.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('closes that must not be retried are not: /api/disconnect reconnect:false, session takeover (4004)', async () => {
    // 4003 with reconnect:false
    const a = client(server.url('/ws'));
    await a.connect();
    const stopped = a.log.signal.until(() => a.log.events.some(([n, e]) => n === 'disconnected' && !e.reconnect), 5000, 'final disconnected');
    await api(server, 'disconnect', { client: a.clientId, reconnect: false });
    await stopped;
    assert.equal(a.last('disconnected').code, 4003);
    assert.equal(a.state, 'disconnected');
    assert.equal(a.reconnectScheduled, false, 'no reconnect scheduled');
    assert.equal(a.count('connecting'), 1);
    assert.equal(a.log.errors.pop().code, 'closed');

    // 4004: a second client takes the session over
    const b = client(server.url('/ws'));
    await b.connect();
    const rb = recorder(b, 'chat:takeover');
    await rb.sub.ready;
    const takenOver = b.log.signal.until(() => b.count('disconnected') >= 1, 5000, 'takeover close');
    // Subscriptions made before connect() are matched with the channels the resume restores.
    const thief = client(server.url('/ws'), { session: b.session });
    const rt = recorder(thief, 'chat:takeover');
    const t = await thief.connect();
    assert.equal(t.resumed, true);
    await rt.sub.ready;
    await takenOver;
    const d = b.last('disconnected');
    assert.equal(d.code, 4004);
    assert.equal(d.reconnect, false);
    assert.equal(b.state, 'disconnected');
    assert.equal(b.reconnectScheduled, false);
    assert.equal(b.session, undefined, 'the taken session is forgotten');
    assert.equal(b.count('connecting'), 1);
    const p = await api(server, 'publish', { channel: 'chat:takeover', data: 'x' });
    await rt.signal.until(() => rt.messages.some((m) => m.offset === p.offset), 5000, 'publication on the taken-over session');
    assert.equal(rb.messages.length, 0);
  });
});
