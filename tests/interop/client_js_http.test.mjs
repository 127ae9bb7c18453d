// Interop: the JS client's HTTP transports (clients/js: `sse` — GET /sse + POST, `polling` —
// GET /poll + POST) against a real `switchboard serve`, and the negotiation between them and
// WebSocket. Connections go through an HTTP-aware TCP proxy the test controls: it can refuse
// WebSocket upgrades and/or GET /sse (as a proxy that blocks them would), and cut every TCP
// connection at once (a network failure).
//   SB_SERVER=build/release/switchboard node --test tests/interop/client_js_http.test.mjs
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
const load = (name) => { try { return require(name); } catch { return require(path.join(REPO_ROOT, 'node_modules', name)); } };
const WebSocket = load('ws');
const { EventSource } = load('eventsource');

const API_KEY = 'client-js-http-key';
const CONFIG = `
[api]
key = "${API_KEY}"
rate_limit = 0

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

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-client-js-http-'));
  fs.writeFileSync(path.join(tmp, 'sb.toml'), CONFIG);
  server = await startServer({ kind: 'switchboard', flags: ['--config', path.join(tmp, 'sb.toml'), '--ping-interval', '1s'] });
});

after(async () => {
  for (const c of clients) c.disconnect();
  for (const p of proxies) await p.close();
  const alive = server?.alive();
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

async function api(call, body) {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/${call}`, {
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
    return deadline(p, ms, typeof what === 'function' ? what() : what);
  }
}

class MemoryStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
}

/** A client with its events recorded. */
function client(url, opts = {}) {
  const c = new Switchboard(url, {
    WebSocket, EventSource, storage: null, backoff: { minMs: 50, maxMs: 500 }, upgradeAfterMs: 0, ...opts,
  });
  const log = { events: [], errors: [], signal: new Signal() };
  for (const ev of ['connecting', 'connected', 'disconnected', 'error']) {
    c.on(ev, (e) => { log.events.push([ev, e]); if (ev === 'error') log.errors.push(e); log.signal.poke(); });
  }
  c.log = log;
  c.count = (ev) => log.events.filter(([n]) => n === ev).length;
  c.last = (ev) => log.events.filter(([n]) => n === ev).pop()?.[1];
  c.summary = () => JSON.stringify(log.events.map(([n, e]) => [n, e.transport ?? e.code ?? e.message, e.reason ?? e.resumed]));
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

/**
 * A TCP proxy in front of the server that reads the head of every request going up (keep-alive
 * connections carry several): `block.ws` refuses WebSocket upgrades, `block.sse` refuses
 * GET /sse — with a 403 on a fresh connection, by cutting a reused one — as a proxy that lets
 * only plain requests through would. `onRefuse` is told of each refusal; kill() cuts every
 * connection.
 */
async function proxy() {
  const pairs = new Set();
  const block = { ws: false, sse: false };
  const refused = { ws: 0, sse: 0 };
  const p = { block, refused, onRefuse: () => {} };
  const srv = net.createServer((down) => {
    let buf = Buffer.alloc(0);
    let body = 0;       // bytes of the current request's body still to pass
    let raw = false;    // upgraded: bytes pass as they are
    let requests = 0;
    let up;
    const pair = { down, up: undefined };
    pairs.add(pair);
    const end = () => { pairs.delete(pair); up?.destroy(); down.destroy(); };
    down.on('error', end);
    down.on('close', end);
    down.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length > 0) {
        if (raw || body > 0) {
          const n = raw ? buf.length : Math.min(body, buf.length);
          up.write(buf.subarray(0, n));
          buf = buf.subarray(n);
          if (!raw) body -= n;
          continue;
        }
        const at = buf.indexOf('\r\n\r\n');
        if (at < 0) return;
        const head = buf.subarray(0, at + 4);
        const text = head.toString('latin1');
        const upgrade = /\r\nupgrade:\s*websocket/i.test(text);
        const sse = /^GET \/sse[?/ ]/.test(text);
        requests++;
        if ((upgrade && block.ws) || (sse && !upgrade && block.sse)) {
          refused[upgrade ? 'ws' : 'sse']++;
          if (requests === 1) down.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          else end();
          buf = Buffer.alloc(0);
          p.onRefuse();
          return;
        }
        if (!up) {
          up = net.connect(server.port, '127.0.0.1');
          pair.up = up;
          up.on('error', end);
          up.on('close', end);
          up.pipe(down);
        }
        up.write(head);
        buf = buf.subarray(at + 4);
        body = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0);
        raw = upgrade;
      }
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  Object.assign(p, {
    http: () => `http://127.0.0.1:${srv.address().port}`,
    kill() { for (const { up, down } of [...pairs]) { up?.destroy(); down.destroy(); } pairs.clear(); },
    close() { p.kill(); return new Promise((resolve) => srv.close(resolve)); },
  });
  proxies.push(p);
  return p;
}

for (const transport of ['sse', 'polling']) {
  describe(`transport ${transport}`, () => {
    test('connect, subscribe, publish and receive, presence with join/leave, history, typed errors', async () => {
      const alice = client(`http://127.0.0.1:${server.port}`, { transports: [transport], user: 'alice', info: { color: 'red' } });
      const bob = client(`ws://127.0.0.1:${server.port}/ws`, { transports: [transport], user: 'bob' });
      const a = await deadline(alice.connect(), 10000, 'alice connected');
      assert.equal(a.transport, transport);
      assert.equal(a.resumed, false);
      assert.match(a.session, /^s_[0-9a-f]{32}$/);
      assert.equal(a.user, 'alice');
      await deadline(bob.connect(), 10000, 'bob connected');
      assert.equal(bob.transportName, transport);

      const room = `chat:room-${transport}`;
      const ra = recorder(alice, room);
      const sa = await deadline(ra.sub.ready, 5000, 'alice subscribed');
      assert.equal(sa.channel, room);
      await ra.signal.until(() => ra.joins.some((j) => j.user === 'alice'), 5000, "alice's own join");
      assert.deepEqual(ra.joins[0].info, { color: 'red' });
      const rb = recorder(bob, room);
      await rb.sub.ready;
      await ra.signal.until(() => ra.joins.some((j) => j.user === 'bob'), 5000, "bob's join at alice");

      const pres = await ra.sub.presence();
      assert.equal(pres.count, 2);
      assert.deepEqual(pres.clients.map((c) => c.user).sort(), ['alice', 'bob']);

      const pub = await rb.sub.publish({ text: 'hello' });
      assert.equal(pub.duplicate, false);
      await ra.signal.until(() => ra.messages.length === 1, 5000, 'alice receives the publication');
      assert.deepEqual(ra.messages[0], { channel: room, epoch: pub.epoch, offset: pub.offset, data: { text: 'hello' } });
      await rb.signal.until(() => rb.messages.length === 1, 5000, 'bob receives his own publication');

      const again = await bob.publish(room, { text: 'hello' }, { idempotencyKey: 'k1' });
      const dup = await bob.publish(room, { text: 'other' }, { idempotencyKey: 'k1' });
      assert.equal(dup.duplicate, true);
      assert.equal(dup.offset, again.offset);

      const h = await ra.sub.history({ limit: 10 });
      assert.deepEqual(h.publications.map((p) => p.data), [{ text: 'hello' }, { text: 'hello' }]);
      const hs = await alice.history(room, { since: { epoch: pub.epoch, offset: pub.offset } });
      assert.equal(hs.recovered, true);
      assert.deepEqual(hs.publications.map((p) => p.offset), [again.offset]);
      assert.ok(await alice.ping() >= 0);

      // Errors are the server's, typed, and the connection stays.
      const bad = alice.subscribe('nosuchns:x', { onError: () => {} });
      await assert.rejects(bad.ready, (e) => e instanceof SwitchboardError && e.code === 'unknown_namespace');
      await assert.rejects(alice.publish('chat:bad name', 1), (e) => e instanceof SwitchboardError && e.code === 'bad_channel');

      await rb.sub.unsubscribe();
      await ra.signal.until(() => ra.leaves.some((l) => l.user === 'bob'), 5000, "bob's leave at alice");
      // Publications go on flowing in order, a burst of them.
      const burst = [];
      for (let i = 0; i < 50; i++) burst.push(api('publish', { channel: room, data: { n: i } }));
      await Promise.all(burst);
      await ra.signal.until(() => ra.messages.length === 52, 5000, () => `the burst (got ${ra.messages.length})`);
      const offsets = ra.messages.map((m) => m.offset);
      assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y));
      assert.equal(new Set(offsets).size, offsets.length);
      assert.equal(alice.count('disconnected'), 0, alice.summary());
      assert.equal(alice.log.errors.length, 0, alice.summary());
    });

    test('subscribe with since: the replay comes whole, then live publications', async () => {
      // The replay travels on the stream, the subscribed reply in the POST's response: the
      // replay often came first, was held until the reply, then dropped by the client (not
      // subscribed yet). Several rounds: which one comes first is a race.
      const c = client(`http://127.0.0.1:${server.port}`, { transports: [transport] });
      await deadline(c.connect(), 10000, 'connected');
      for (let round = 0; round < 5; round++) {
        const channel = `chat:since-${transport}-${round}`;
        let first;
        for (let i = 1; i <= 5; i++) {
          const p = await api('publish', { channel, data: { n: i } });
          first ??= p;
        }
        const r = recorder(c, channel, { since: { epoch: first.epoch, offset: first.offset } });
        const info = await deadline(r.sub.ready, 5000, 'subscribed');
        assert.equal(info.recovered, true);
        await api('publish', { channel, data: { n: 6 } });
        await r.signal.until(() => r.messages.length >= 5, 5000, () => `round ${round}: the replay and a live one (got ${JSON.stringify(r.messages.map((m) => m.data.n))})`);
        assert.deepEqual(r.messages.map((m) => m.data.n), [2, 3, 4, 5, 6], `round ${round}`);
        assert.deepEqual(r.recoveries.map((x) => [x.recovered, x.cause]), [[true, 'subscribe']]);
        await r.sub.unsubscribe();
      }
      assert.equal(c.count('disconnected'), 0, c.summary());
      assert.equal(c.log.errors.length, 0, c.summary());
    });

    test('at-least-once: /api/disconnect and TCP cuts mid-stream lose nothing and double nothing', async () => {
      const px = await proxy();
      const c = client(px.http(), { transports: [transport] });
      await deadline(c.connect(), 10000, 'connected');
      const channel = `jobs:${transport}`;
      const r = recorder(c, channel);
      await r.sub.ready;
      const N = 240;
      const kills = new Map([[40, 'api'], [90, 'tcp'], [140, 'api'], [190, 'tcp']]);
      for (let i = 1; i <= N; i++) {
        await api('publish', { channel, data: { n: i } });
        const how = kills.get(i);
        if (!how) continue;
        const n = c.count('disconnected');
        if (how === 'tcp') {
          px.kill();
          // A long-poll cut between polls may simply be asked again; SSE loses its stream.
          if (transport === 'sse') await c.log.signal.until(() => c.count('disconnected') > n, 10000, `disconnected after the TCP cut at ${i}`);
        } else {
          await c.log.signal.until(() => c.state === 'connected', 10000, 'connected before /api/disconnect');
          await api('disconnect', { client: c.clientId, reconnect: true });
          await c.log.signal.until(() => c.count('disconnected') > n, 10000, `disconnected after /api/disconnect at ${i}`);
        }
      }
      await r.signal.until(() => r.messages.length >= N, 30000, () => `all ${N} publications (got ${r.messages.length}; ${c.summary()})`);
      const ns = r.messages.map((m) => m.data.n);
      assert.deepEqual(ns, Array.from({ length: N }, (_, i) => i + 1), 'each publication exactly once, in order');
      const resumed = c.log.events.filter(([n, e]) => n === 'connected' && e.resumed).length;
      assert.ok(resumed >= 2, `resumed sessions: ${resumed} (${c.summary()})`);
      // Server issue: a poller that is not waiting in a GET when /api/disconnect comes is never
      // sent the `disconnect` (its next poll gets 410); the client then reconnects all the same.
      const apiClose = transport === 'sse' ? [4003] : [4003, 1006];
      assert.ok(c.log.events.some(([n, e]) => n === 'disconnected' && apiClose.includes(e.code)), `the /api/disconnect close was seen (${c.summary()})`);
      assert.ok(c.log.events.filter(([n]) => n === 'connected').every(([, e]) => e.transport === transport));
      assert.ok(r.recoveries.every((x) => x.recovered), JSON.stringify(r.recoveries));

      // Acks went out: after a resume nothing more arrives (the session owes nothing).
      await r.signal.until(() => r.sub.position.offset === r.messages[N - 1].offset, 5000, 'position at the last offset');
      const before = r.messages.length;
      await c.log.signal.until(() => c.state === 'connected', 10000, 'connected');
      const n = c.count('connected');
      await api('disconnect', { client: c.clientId, reconnect: true });
      await c.log.signal.until(() => c.count('connected') > n, 10000, 'resumed once more');
      assert.equal(c.last('connected').resumed, true);
      await c.ping();
      const p = await c.publish(channel, { n: 'last' });
      await r.signal.until(() => r.messages.some((m) => m.offset === p.offset), 5000, 'a publication after the last resume');
      assert.equal(r.messages.length, before + 1, 'nothing redelivered after everything was acked');
    });

    test('a session taken over (4004) stops the client; reconnect:false stops it too', async () => {
      const a = client(`http://127.0.0.1:${server.port}`, { transports: [transport] });
      await a.connect();
      const ra = recorder(a, 'chat:takeover-' + transport);
      await ra.sub.ready;
      const stopped = a.log.signal.until(() => a.log.events.some(([n, e]) => n === 'disconnected' && !e.reconnect), 10000, () => `final disconnected (${a.summary()})`);
      const thief = client(`http://127.0.0.1:${server.port}`, { transports: ['websocket'], session: a.session });
      recorder(thief, 'chat:takeover-' + transport);
      const t = await thief.connect();
      assert.equal(t.resumed, true);
      await stopped;
      assert.equal(a.last('disconnected').code, 4004);
      assert.equal(a.state, 'disconnected');
      assert.equal(a.reconnectScheduled, false);
      assert.equal(a.session, undefined);

      const b = client(`http://127.0.0.1:${server.port}`, { transports: [transport] });
      await b.connect();
      const done = b.log.signal.until(() => b.log.events.some(([n, e]) => n === 'disconnected' && !e.reconnect), 10000, 'final disconnected');
      await api('disconnect', { client: b.clientId, reconnect: false });
      await done;
      assert.equal(b.last('disconnected').code, 4003);
      assert.equal(b.count('connecting'), 1);
      assert.equal(b.log.errors.pop().code, 'closed');
    });
  });
}

describe('negotiation', () => {
  test('WebSocket refused by a proxy → sse, remembered for the origin; SSE refused too → polling', async () => {
    const px = await proxy();
    px.block.ws = true;
    const storage = new MemoryStorage();
    const a = client(px.http(), { storage });
    const info = await deadline(a.connect(), 10000, 'connected through the fallback');
    assert.equal(info.transport, 'sse', a.summary());
    assert.deepEqual(a.log.events.filter(([n]) => n === 'connecting').map(([, e]) => e.transport), ['websocket', 'sse']);
    assert.ok(px.refused.ws >= 1);
    assert.equal(storage.getItem(`switchboard.transport:${px.http()}`), 'sse');
    const ra = recorder(a, 'chat:nego');
    await ra.sub.ready;
    const p = await a.publish('chat:nego', 'via sse');
    await ra.signal.until(() => ra.messages.some((m) => m.offset === p.offset), 5000, 'own publication over sse');

    // The next client of this origin starts with what worked.
    const b = client(px.http(), { storage });
    await b.connect();
    assert.deepEqual(b.log.events.filter(([n]) => n === 'connecting').map(([, e]) => e.transport), ['sse']);

    // SSE blocked as well: polling.
    px.block.sse = true;
    const c = client(px.http(), { storage: null });
    const ci = await deadline(c.connect(), 10000, 'connected by long-polling');
    assert.equal(ci.transport, 'polling', c.summary());
    assert.deepEqual(c.log.events.filter(([n]) => n === 'connecting').map(([, e]) => e.transport), ['websocket', 'sse', 'polling']);
    assert.ok(px.refused.sse >= 1);
    const rc = recorder(c, 'chat:nego');
    await rc.sub.ready;
    const q = await a.publish('chat:nego', 'to the poller');
    await rc.signal.until(() => rc.messages.some((m) => m.offset === q.offset), 5000, 'publication reaches the poller');
    assert.equal(c.log.errors.length, 0, c.summary());
  });

  for (const fallback of ['sse', 'polling']) {
    test(`upgrade back: on ${fallback} while WebSocket is refused, the client moves to WebSocket once it works, losing and doubling nothing`, async () => {
      const px = await proxy();
      px.block.ws = true;
      if (fallback === 'polling') px.block.sse = true;
      const storage = new MemoryStorage();
      const c = client(px.http(), { storage, upgradeAfterMs: 100, upgradeMaxMs: 400 });
      px.onRefuse = () => c.log.signal.poke();
      await deadline(c.connect(), 10000, 'connected');
      assert.equal(c.transportName, fallback);
      const channel = `jobs:upgrade-${fallback}`;
      const r = recorder(c, channel);
      await r.sub.ready;
      // Probes fail while WebSocket is refused (and back off), the session stays on the fallback.
      await c.log.signal.until(() => px.refused.ws >= 3, 10000, () => `three refused probes (${px.refused.ws})`);
      assert.equal(c.count('connected'), 1);
      assert.equal(c.transportName, fallback);

      // Publications flow while WebSocket becomes possible and the client moves over.
      const N = 150;
      let i = 0;
      const published = (async () => {
        while (i < N) {
          i++;
          await api('publish', { channel, data: { n: i } });
          if (i === 30) px.block.ws = false;
        }
      })();
      await c.log.signal.until(() => c.transportName === 'websocket', 15000, () => `moved to WebSocket (${c.summary()})`);
      await published;
      await r.signal.until(() => r.messages.length >= N, 15000, () => `all ${N} publications (got ${r.messages.length})`);
      assert.deepEqual(r.messages.map((m) => m.data.n), Array.from({ length: N }, (_, k) => k + 1), 'each publication exactly once, in order');
      const conns = c.log.events.filter(([n]) => n === 'connected').map(([, e]) => [e.transport, e.resumed]);
      assert.deepEqual(conns, [[fallback, false], ['websocket', true]]);
      const firstConnected = c.log.events.findIndex(([n]) => n === 'connected');
      assert.equal(c.log.events.slice(firstConnected).filter(([n]) => n === 'disconnected').length, 0, `the move is not a disconnect: ${c.summary()}`);
      assert.equal(storage.getItem(`switchboard.transport:${px.http()}`), 'websocket');
      // Requests work on the new transport.
      const p = await r.sub.publish({ n: 'ws' });
      await r.signal.until(() => r.messages.some((m) => m.offset === p.offset), 5000, 'publication over WebSocket');
      assert.equal((await r.sub.presence().catch((e) => e)).code, 'presence_disabled');
      assert.equal(c.log.errors.length, 0, c.summary());
    });
  }
});

describe('one channel, subscribers on every transport', () => {
  // The server runs one event loop here, so a publication reaches all of them in one fan-out.
  // /sse used to keep its encoded event in the fan-out's scratch that /ws fills with its frame:
  // whichever came second in the channel's subscriber list got the other's bytes (a stream a
  // WebSocket frame, which EventSource ignores; a WebSocket a "data:" block, invalid JSON) and
  // lost every publication — the chat demo's "first message after a restart lost" when one
  // page came back over SSE and the other over WebSocket.
  for (const order of [['websocket', 'sse', 'polling'], ['sse', 'websocket', 'polling'], ['polling', 'sse', 'websocket']]) {
    test(`subscribed in the order ${order.join(', ')}: each gets every publication once, nothing unreadable`, async () => {
      const channel = `chat:mixed-${order.join('-')}`;
      const subs = [];
      for (const t of order) {
        const c = client(`http://127.0.0.1:${server.port}`, { transports: [t], user: `user-${t}` });
        await deadline(c.connect(), 10000, `${t} connected`);
        assert.equal(c.transportName, t);
        const r = recorder(c, channel);
        await deadline(r.sub.ready, 10000, `${t} subscribed`);
        subs.push({ t, c, r });
      }
      // From the HTTP API, and from a subscriber of each transport.
      await api('publish', { channel, data: { n: 1 } });
      for (const [k, { r }] of subs.entries()) await r.sub.publish({ n: k + 2 });
      const want = [1, 2, 3, 4];
      for (const { t, c, r } of subs) {
        await r.signal.until(() => r.messages.length >= want.length, 10000,
          () => `${t} (subscribed ${order.indexOf(t) + 1}. of 3) got ${JSON.stringify(r.messages.map((m) => m.data.n))}; errors: ${c.log.errors.map((e) => e.message).join(' | ')}`);
        assert.deepEqual(r.messages.map((m) => m.data.n), want, `${t}: every publication once, in order`);
        assert.deepEqual(r.messages.map((m) => m.offset), want, t);
        assert.deepEqual(c.log.errors.map((e) => e.message), [], `${t}: errors`);
        assert.equal(c.count('connected'), 1, `${t}: ${c.summary()}`);
      }
      for (const { c } of subs) c.disconnect();
    });
  }
});
