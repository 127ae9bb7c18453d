// Interop: the npm `eventsource` package (a WHATWG EventSource for node) against /sse of a real
// `switchboard serve` (src/server/sse.h). The package, not the test, reconnects: after the
// stream ends (/api/disconnect with reconnect:true) or its TCP connection is cut (a proxy the
// test controls), it waits the server's `retry:` and sends Last-Event-ID; the server resumes
// the session and recovers each channel, so every publication arrives exactly once, in
// order, across the cut. And a 401 (auth on, no token) makes the package give up.
//   SB_SERVER=build/release/switchboard node --test tests/interop/sse_eventsource.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, deadline, startServer } from '../support/server.mjs';

const require = createRequire(import.meta.url);
let EventSource;
try { ({ EventSource } = require('eventsource')); } catch {
  ({ EventSource } = require(path.join(REPO_ROOT, 'node_modules', 'eventsource')));
}

const API_KEY = 'sse-eventsource-key';
const CONFIG = `
[api]
key = "${API_KEY}"
rate_limit = 0

[namespaces.feed]
history_size = 1000
`;

let tmp;
let server;
const sources = [];
const proxies = [];

async function api(port, name, body) {
  const r = await fetch(`http://127.0.0.1:${port}/api/${name}`, {
    method: 'POST', headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = await r.json();
  assert.equal(r.status, 200, `/api/${name} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(out)}`);
  return out;
}

// An EventSource whose events are collected; waitFor(pred) resolves on the first collected
// event (or a later one) that matches, or rejects at the deadline.
function watch(url) {
  const es = new EventSource(url);
  sources.push(es);
  const w = { es, events: [], opens: 0, errors: [], waiters: [] };
  const wake = () => {
    w.waiters = w.waiters.filter(({ pred, resolve }) => {
      const hit = pred(w);
      if (hit) resolve(hit);
      return !hit;
    });
  };
  es.addEventListener('open', () => { w.opens++; wake(); });
  es.addEventListener('error', (e) => { w.errors.push({ readyState: es.readyState, message: e.message, code: e.code }); wake(); });
  es.addEventListener('message', (e) => {
    let json;
    try { json = JSON.parse(e.data); } catch { json = { type: '<not json>', raw: e.data }; }
    w.events.push({ json, lastEventId: e.lastEventId });
    wake();
  });
  w.waitFor = (pred, ms, what) => {
    const hit = pred(w);
    if (hit) return Promise.resolve(hit);
    return deadline(new Promise((resolve) => w.waiters.push({ pred, resolve })), ms,
      `${what}; events so far: ${JSON.stringify(w.events.map((e) => e.json).filter((j) => j.type !== 'ping')).slice(-600)}; errors ${JSON.stringify(w.errors)}`);
  };
  w.of = (type) => w.events.filter((e) => e.json.type === type);
  return w;
}

// A TCP proxy in front of the server; cut() destroys every connection through it (both
// sides, no goodbye), as a network failure would.
function proxyTo(port) {
  const conns = new Set();
  let accepted = 0;
  const srv = net.createServer((c) => {
    accepted++;
    const up = net.connect(port, '127.0.0.1');
    conns.add(c); conns.add(up);
    c.pipe(up); up.pipe(c);
    const drop = () => { c.destroy(); up.destroy(); conns.delete(c); conns.delete(up); };
    c.on('error', drop); up.on('error', drop); c.on('close', drop); up.on('close', drop);
  });
  const p = {
    srv,
    get accepted() { return accepted; },
    listen: () => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port))),
    cut() { for (const s of conns) { s.resetAndDestroy?.() ?? s.destroy(); } conns.clear(); },
    close() { p.cut(); srv.close(); },
  };
  proxies.push(p);
  return p;
}

// Publishes `n` to the channels in turn; returns [[channel, offset], ...].
async function publishSome(channels, n, tag) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const ch = channels[i % channels.length];
    const r = await api(server.port, 'publish', { channel: ch, data: { tag, i } });
    out.push([ch, r.offset]);
  }
  return out;
}

// Every publication exactly once; per channel in offset order.
function checkExactlyOnce(w, published, channels) {
  const got = w.of('message').map((e) => [e.json.channel, e.json.offset]);
  const key = ([c, o]) => `${c}#${o}`;
  const seen = new Map();
  for (const g of got) seen.set(key(g), (seen.get(key(g)) ?? 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  const missing = published.filter((p) => !seen.has(key(p))).map(key);
  assert.deepEqual({ dups, missing }, { dups: [], missing: [] }, `received ${JSON.stringify(got)}`);
  assert.equal(got.length, published.length, `extra messages: ${JSON.stringify(got)}`);
  for (const ch of channels) {
    const offs = got.filter(([c]) => c === ch).map(([, o]) => o);
    assert.deepEqual(offs, [...offs].sort((a, b) => a - b), `${ch} out of order: ${offs}`);
  }
  // Each publication's lastEventId names its own position (and the session).
  const session = w.of('connected')[0].json.session;
  for (const e of w.of('message')) {
    assert.ok(e.lastEventId.startsWith(`${session}|`), `id ${e.lastEventId} for session ${session}`);
    assert.ok(e.lastEventId.split('|').includes(`${e.json.channel}!${e.json.epoch}!${e.json.offset}`),
      `id ${e.lastEventId} for ${JSON.stringify(e.json)}`);
  }
}

async function cutAndRecover({ cut, via }) {
  const tag = Math.random().toString(16).slice(2, 8);
  const channels = [`feed:${tag}-a`, `feed:${tag}-b`];
  const port = via ? await via.listen() : server.port;
  const w = watch(`http://127.0.0.1:${port}/sse?${channels.map((c) => `channel=${c}`).join('&')}`);
  const first = await w.waitFor((x) => x.of('subscribed').length === 2 && x.of('connected')[0],
    10000, 'connected and two subscribed');
  assert.equal(first.json.resumed, false);
  const published = await publishSome(channels, 20, 'before');
  await w.waitFor((x) => x.of('message').length >= 20, 10000, '20 messages before the cut');
  const errorsBefore = w.errors.length;
  await cut(first.json.client);
  // The package sees the end and, while it waits its retry time, more are published.
  await w.waitFor((x) => x.errors.length > errorsBefore, 10000, 'the EventSource noticing the cut');
  assert.equal(w.errors.at(-1).readyState, EventSource.CONNECTING,
    `after the cut the EventSource should be reconnecting: ${JSON.stringify(w.errors)}`);
  published.push(...await publishSome(channels, 10, 'during'));
  const again = await w.waitFor((x) => x.of('connected')[1], 15000, 'a second connected');
  assert.equal(again.json.resumed, true, `reconnect did not resume: ${JSON.stringify(again.json)}`);
  assert.equal(again.json.session, first.json.session);
  assert.deepEqual(again.json.channels.map((c) => [c.channel, c.recovered]).sort(),
    channels.map((c) => [c, true]), `channels ${JSON.stringify(again.json.channels)}`);
  published.push(...await publishSome(channels, 10, 'after'));
  await w.waitFor((x) => x.of('message').length >= published.length, 15000, `${published.length} messages`);
  // Nothing more is owed: a marker published last is the next message.
  const marker = await api(server.port, 'publish', { channel: channels[0], data: 'marker' });
  published.push([channels[0], marker.offset]);
  await w.waitFor((x) => x.of('message').some((e) => e.json.data === 'marker'), 10000, 'the marker');
  checkExactlyOnce(w, published, channels);
  assert.equal(w.opens, 2, `open events: ${w.opens}`);
  w.es.close();
  return w;
}

describe('eventsource package against /sse', () => {
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-sse-es-'));
    fs.writeFileSync(path.join(tmp, 'sb.toml'), CONFIG);
    server = await startServer({ kind: 'switchboard', flags: ['--config', path.join(tmp, 'sb.toml')] });
  });

  after(async () => {
    for (const es of sources) es.close();
    for (const p of proxies) p.close();
    const alive = server?.alive();
    await server?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
  });

  test('eventsource: /api/disconnect (reconnect:true) → the package reconnects with Last-Event-ID; every publication exactly once', async () => {
    const w = await cutAndRecover({
      cut: async (client) => {
        const r = await api(server.port, 'disconnect', { client, reconnect: true });
        assert.equal(r.result, 'requested');
      },
    });
    const d = w.of('disconnect');
    assert.equal(d.length, 1, `disconnect events ${JSON.stringify(d)}`);
    assert.equal(d[0].json.code, 4003);
    assert.equal(d[0].json.reconnect, true);
  });

  test('eventsource: TCP connection cut by a proxy → reconnects with Last-Event-ID; every publication exactly once', async () => {
    const p = proxyTo(server.port);
    await cutAndRecover({ via: p, cut: async () => p.cut() });
    assert.equal(p.accepted, 2, `connections through the proxy: ${p.accepted}`);
  });

  test('eventsource: a 401 (auth on, no token, no anonymous namespace) makes the EventSource give up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-sse-auth-'));
    fs.writeFileSync(path.join(dir, 'sb.toml'), `[auth]\nhmac_secrets = ["${'k'.repeat(48)}"]\n[namespaces.feed]\n`);
    const s = await startServer({ kind: 'switchboard', flags: ['--config', path.join(dir, 'sb.toml')] });
    // Straight to the server: a proxy resetting the socket of a refused fetch whose body the
    // package never read leaves node's fetch (undici) spinning after the test.
    try {
      const w = watch(`http://127.0.0.1:${s.port}/sse?channel=feed:x`);
      await w.waitFor((x) => x.errors.length >= 1, 10000, 'an error');
      // "Fail the connection": readyState CLOSED when the error fires, and a CLOSED
      // EventSource never reconnects.
      assert.equal(w.errors[0].readyState, EventSource.CLOSED,
        `a 401 must fail the EventSource for good: ${JSON.stringify(w.errors)}`);
      assert.equal(w.errors[0].code, 401, `error ${JSON.stringify(w.errors)}`);
      assert.equal(w.es.readyState, EventSource.CLOSED);
      assert.equal(w.opens, 0);
      const r = await fetch(`http://127.0.0.1:${s.port}/sse?channel=feed:x`);
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await r.json()).error ?? '', 'token_required');
    } finally {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
