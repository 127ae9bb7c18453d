// Interop: @stomp/stompjs (node, with the `ws` package as its WebSocket) against a real
// `switchboard serve` on /ws with the v12.stomp subprotocol: connect, each ack mode, receipts,
// NACK and redelivery, heart-beats both ways (a TCP proxy makes the link go silent), transactions,
// ERROR then close on a bad frame, and STOMP and native /ws clients on one channel.
//   SB_SERVER=build/release/switchboard node --test tests/interop/stomp_stompjs.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, deadline, startServer } from '../support/server.mjs';

const require = createRequire(import.meta.url);
function load(name) {
  try { return require(name); } catch { return require(path.join(REPO_ROOT, 'node_modules', name)); }
}
const WebSocket = load('ws');
const { Client } = load('@stomp/stompjs');

const CONFIG = `
[namespaces.chat]
history_size = 100

[namespaces.jobs]
delivery = "at_least_once"
history_size = 1000

[namespaces.readonly]
client_publish = false
`;

let tmp;
let server;
const clients = [];
const sockets = [];
const proxies = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-stomp-'));
  fs.writeFileSync(path.join(tmp, 'sb.toml'), CONFIG);
  server = await startServer({ flags: ['--config', path.join(tmp, 'sb.toml')] });
});

after(async () => {
  for (const c of clients) await c.deactivate({ force: true }).catch(() => {});
  for (const s of sockets) s.terminate();
  for (const p of proxies) await p.close();
  const alive = server?.alive();
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.ok(alive, `server died during the suite: ${server?.stderr()}`);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let unique = 0;
const name = (base) => `${base}-${process.pid}-${++unique}`;

/** Polls `pred` until it holds or `ms` pass. */
async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(10);
  }
}

/** A TCP proxy; freeze(dir) stops passing bytes one way ('up': client → server) or both. */
async function proxy(targetPort) {
  const pairs = new Set();
  const srv = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    const pair = { up, down, upFrozen: false, downFrozen: false };
    pairs.add(pair);
    const end = () => { pairs.delete(pair); up.destroy(); down.destroy(); };
    up.on('error', end); down.on('error', end); up.on('close', end); down.on('close', end);
    up.on('data', (d) => { if (!pair.downFrozen) down.write(d); });
    down.on('data', (d) => { if (!pair.upFrozen) up.write(d); });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const p = {
    url: () => `ws://127.0.0.1:${srv.address().port}/ws`,
    freeze(dir = 'both') {
      for (const pair of pairs) {
        if (dir !== 'down') pair.upFrozen = true;
        if (dir !== 'up') pair.downFrozen = true;
      }
    },
    close() {
      for (const { up, down } of [...pairs]) { up.destroy(); down.destroy(); }
      return new Promise((resolve) => srv.close(resolve));
    },
  };
  proxies.push(p);
  return p;
}

/**
 * A stompjs client that does not reconnect, with what happened recorded: `errors` (ERROR
 * frames), `closes` (close events), `lost` (heart-beats missed). connect() resolves with the
 * CONNECTED frame.
 */
function stomp({ url = server.url('/ws'), protocols = ['v12.stomp', 'v11.stomp', 'v10.stomp'], ...cfg } = {}) {
  const rec = { errors: [], closes: [], lost: 0, ws: null };
  const c = new Client({
    webSocketFactory: () => { rec.ws = new WebSocket(url, protocols); return rec.ws; },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    ...cfg,
  });
  c.onStompError = (f) => rec.errors.push(f);
  c.onWebSocketClose = (e) => rec.closes.push(e);
  c.onHeartbeatLost = () => { rec.lost++; };
  c.rec = rec;
  c.connectNow = () => deadline(new Promise((resolve, reject) => {
    c.onConnect = resolve;
    c.onWebSocketClose = (e) => { rec.closes.push(e); reject(new Error(`closed ${e.code} before CONNECTED: ${rec.errors.map((f) => f.headers.message)}`)); };
    c.activate();
  }).finally(() => { c.onWebSocketClose = (e) => rec.closes.push(e); }), 5000, 'CONNECTED');
  clients.push(c);
  return c;
}

/** Publishes with a receipt; resolves when the RECEIPT comes. */
function sendWithReceipt(c, destination, body, headers = {}) {
  const receipt = `r-${++unique}`;
  const got = new Promise((resolve) => c.watchForReceipt(receipt, resolve));
  c.publish({ destination, body, headers: { ...headers, receipt } });
  return deadline(got, 5000, `RECEIPT ${receipt}`);
}

/** Subscribes with a receipt; resolves with the received-messages array once subscribed. */
async function subscribe(c, destination, headers = {}, onMessage = null) {
  const messages = [];
  const receipt = `s-${++unique}`;
  const got = new Promise((resolve) => c.watchForReceipt(receipt, resolve));
  const sub = c.subscribe(destination, (m) => { messages.push(m); onMessage?.(m); }, { ...headers, receipt });
  await deadline(got, 5000, `RECEIPT for SUBSCRIBE ${destination}`);
  messages.sub = sub;
  return messages;
}

/** A native /ws client: connect, subscribe, publish; `events` holds what came. */
async function native() {
  const ws = new WebSocket(server.url('/ws'), ['switchboard.v1.json']);
  sockets.push(ws);
  const events = [];
  let next = 1;
  const waiting = new Map();
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.id !== undefined && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); } else events.push(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  assert.equal(ws.protocol, 'switchboard.v1.json');
  const request = (msg) => {
    const id = next++;
    const p = new Promise((resolve) => waiting.set(id, resolve));
    ws.send(JSON.stringify({ ...msg, id }));
    return deadline(p, 5000, `reply to ${msg.type}`);
  };
  const r = await request({ type: 'connect' });
  assert.equal(r.type, 'connected');
  return { ws, events, request };
}

/** A raw WebSocket speaking STOMP by hand; `frames` collects what the server sent. */
async function raw(protocol = 'v12.stomp') {
  const ws = new WebSocket(server.url('/ws'), [protocol]);
  sockets.push(ws);
  const rec = { ws, data: '', closed: null };
  ws.on('message', (d) => { rec.data += d.toString(); });
  ws.on('close', (code, reason) => { rec.closed = { code, reason: reason.toString() }; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return rec;
}

describe('stompjs against switchboard', () => {
  test('connect: v12.stomp negotiated on /ws, CONNECTED with version, session, server, heart-beat', async () => {
    const c = stomp();
    const f = await c.connectNow();
    assert.equal(c.rec.ws.protocol, 'v12.stomp');
    assert.equal(f.headers.version, '1.2');
    assert.match(f.headers.session, /^s_[0-9a-f]{32}$/);
    assert.match(f.headers.server, /^switchboard\//);
    assert.equal(f.headers['heart-beat'], '500,500');
    // v11.stomp caps the version at 1.1 (stompjs offers 1.2 in accept-version).
    const c11 = stomp({ protocols: ['v11.stomp'] });
    const f11 = await c11.connectNow();
    assert.equal(c11.rec.ws.protocol, 'v11.stomp');
    assert.equal(f11.headers.version, '1.1');
    // A client offering both protocols gets the native one (the server's preference).
    const both = new WebSocket(server.url('/ws'), ['v12.stomp', 'switchboard.v1.json']);
    sockets.push(both);
    await new Promise((resolve) => both.once('open', resolve));
    assert.equal(both.protocol, 'switchboard.v1.json');
  });

  for (const ack of ['auto', 'client', 'client-individual']) {
    test(`subscribe with ack:${ack}, send with receipts: every message once, in order`, async () => {
      const dest = `/topic/chat.${name(ack)}`;
      const sub = stomp();
      await sub.connectNow();
      const got = await subscribe(sub, dest, { ack }, (m) => { if (ack !== 'auto') m.ack(); });
      const pub = stomp();
      await pub.connectNow();
      for (let i = 0; i < 20; i++) await sendWithReceipt(pub, dest, `m${i}`);
      await sendWithReceipt(pub, dest, JSON.stringify({ n: 20, s: 'é:\n' }), { 'content-type': 'application/json' });
      await until(() => got.length === 21, 5000, `21 messages, got ${got.length}`);
      assert.deepEqual(got.slice(0, 20).map((m) => m.body), Array.from({ length: 20 }, (_, i) => `m${i}`));
      assert.deepEqual(JSON.parse(got[20].body), { n: 20, s: 'é:\n' });
      assert.equal(got[20].headers['content-type'], 'application/json');
      assert.match(got[0].headers['content-type'], /^text\/plain/);
      for (const m of got) {
        assert.equal(m.headers.destination, dest);
        assert.equal(m.headers.subscription, got.sub.id);
        assert.equal(m.headers.ack !== undefined, ack !== 'auto');
      }
      const offsets = got.map((m) => Number(m.headers.offset));
      assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'consecutive offsets');
      // Nothing is redelivered once acked.
      await sleep(200);
      assert.equal(got.length, 21);
    });
  }

  for (const [ack, ns] of [['client-individual', 'chat'], ['client', 'chat'], ['client', 'jobs']]) {
    test(`NACK redelivers (ack:${ack}, ${ns === 'jobs' ? 'at-least-once' : 'at-most-once'} namespace)`, async () => {
      const dest = `/topic/${ns}:${name('nack')}`;
      const c = stomp();
      await c.connectNow();
      const got = await subscribe(c, dest, { ack });
      for (let i = 1; i <= 3; i++) await sendWithReceipt(c, dest, `m${i}`);
      await until(() => got.length === 3, 5000, '3 messages');
      const receipt = `nack-${++unique}`;
      const done = new Promise((resolve) => c.watchForReceipt(receipt, resolve));
      got[1].nack({ receipt });  // m2
      await deadline(done, 5000, 'RECEIPT for NACK');
      // client-individual: m2 again; client (cumulative): m1 and m2 again, in order.
      const again = ack === 'client' ? ['m1', 'm2'] : ['m2'];
      await until(() => got.length === 3 + again.length, 5000, `redelivery, got ${got.length}`);
      assert.deepEqual(got.slice(3).map((m) => m.body), again);
      for (const m of got.slice(3)) {
        assert.equal(m.headers.redelivered, 'true');
        assert.notEqual(m.headers.ack, got[1].headers.ack, 'a redelivery has a new ack id');
      }
      assert.equal(got[3].headers.offset, ack === 'client' ? got[0].headers.offset : got[1].headers.offset);
      // Acking the redelivered ones (and m3) ends it: nothing more comes.
      got[got.length - 1].ack();
      got[2].ack();
      await sleep(300);
      assert.equal(got.length, 3 + again.length);
    });
  }

  test('heart-beats: the server sends them, and the client notices when they stop', async () => {
    const p = await proxy(server.port);
    const c = stomp({ url: p.url(), heartbeatIncoming: 500, heartbeatOutgoing: 0 });
    await c.connectNow();
    // stompjs closes after 2 × 500 ms without a byte: 2.5 s of silence on our side survives.
    await sleep(2500);
    assert.equal(c.rec.lost, 0, 'the server kept the link alive');
    assert.ok(c.connected);
    p.freeze('down');
    await until(() => c.rec.lost > 0, 4000, 'stompjs to notice the missing heart-beats');
  });

  test('heart-beats: the server closes a client that stops sending them (ERROR, close 4001)', async () => {
    const p = await proxy(server.port);
    const c = stomp({ url: p.url(), heartbeatIncoming: 0, heartbeatOutgoing: 500 });
    await c.connectNow();
    await sleep(2000);  // the client's heart-beats keep it open
    assert.equal(c.rec.errors.length, 0);
    assert.ok(c.connected);
    const frozen = Date.now();
    p.freeze('up');
    await until(() => c.rec.closes.length > 0, 5000, 'the server to close the silent client');
    const took = Date.now() - frozen;
    assert.equal(c.rec.errors[0]?.headers.message, 'heart-beat timeout');
    assert.equal(c.rec.closes[0].code, 4001);
    // 500 ms + a grace of max(500 ms, 1 s), on 250 ms timer ticks.
    assert.ok(took >= 1000 && took < 3500, `closed after ${took} ms`);
  });

  test('transactions: SENDs published on COMMIT, in order; discarded on ABORT', async () => {
    const dest = `/topic/chat.${name('tx')}`;
    const sub = stomp();
    await sub.connectNow();
    const got = await subscribe(sub, dest);
    const c = stomp();
    await c.connectNow();
    const tx = c.begin();
    for (let i = 0; i < 5; i++) await sendWithReceipt(c, dest, `t${i}`, { transaction: tx.id });
    await sleep(300);
    assert.equal(got.length, 0, 'nothing before COMMIT');
    tx.commit();
    await sendWithReceipt(c, dest, 'after-commit');  // frames of one connection run in order
    await until(() => got.length === 6, 5000, `6 messages, got ${got.length}`);
    assert.deepEqual(got.map((m) => m.body), ['t0', 't1', 't2', 't3', 't4', 'after-commit']);
    const tx2 = c.begin();
    await sendWithReceipt(c, dest, 'aborted-1', { transaction: tx2.id });
    await sendWithReceipt(c, dest, 'aborted-2', { transaction: tx2.id });
    tx2.abort();
    await sendWithReceipt(c, dest, 'after-abort');
    await until(() => got.length === 7, 5000, `7 messages, got ${got.length}`);
    await sleep(200);
    assert.deepEqual(got.slice(6).map((m) => m.body), ['after-abort']);
    // COMMIT of an aborted transaction is an error: ERROR, then the connection closes.
    c.commit(tx2.id);
    await until(() => c.rec.closes.length > 0, 5000, 'close after ERROR');
    assert.equal(c.rec.errors[0]?.headers.message, 'unknown transaction');
  });

  test('a bad frame gets an ERROR, then the connection is closed', async () => {
    const r = await raw();
    r.ws.send('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
    await until(() => r.data.includes('CONNECTED'), 5000, 'CONNECTED');
    r.ws.send('BOGUS\n\n\0');
    await until(() => r.closed !== null, 5000, 'close');
    assert.match(r.data, /ERROR\nmessage:malformed frame\\c unknown command\n/);
    assert.equal(r.closed.code, 1008);

    // Through stompjs: a destination that maps to no channel.
    const c = stomp();
    await c.connectNow();
    c.subscribe('/queue/nope', () => {});
    await until(() => c.rec.closes.length > 0, 5000, 'close after ERROR');
    assert.equal(c.rec.errors[0]?.headers.message, 'bad destination');
    assert.equal(c.rec.closes[0].code, 1008);

    // A refusal of the core (client_publish = false) is an ERROR naming its code.
    const d = stomp();
    await d.connectNow();
    d.publish({ destination: '/topic/readonly.x', body: 'hi', headers: { receipt: 'r-ro' } });
    await until(() => d.rec.closes.length > 0, 5000, 'close after ERROR');
    assert.match(d.rec.errors[0]?.headers.message ?? '', /^publish_forbidden: /);
    assert.equal(d.rec.errors[0]?.headers['receipt-id'], 'r-ro');

    // Frames before CONNECT.
    const e = await raw();
    e.ws.send('SEND\ndestination:/topic/chat.x\n\nhi\0');
    await until(() => e.closed !== null, 5000, 'close');
    assert.match(e.data, /^ERROR\nmessage:not connected\n/);
  });

  test('a socket that sends no CONNECT is closed after 10 s', async () => {
    const r = await raw();
    const t0 = Date.now();
    await until(() => r.closed !== null, 15000, 'close');
    const took = Date.now() - t0;
    assert.ok(took >= 9500 && took < 12000, `closed after ${took} ms`);
    assert.match(r.data, /^ERROR\nmessage:no CONNECT\n/);
    assert.equal(r.closed.code, 1008);
  });

  test('STOMP 1.0 (v10.stomp): no escaping, message-id acks, no heart-beats', async () => {
    const r = await raw('v10.stomp');
    assert.equal(r.ws.protocol, 'v10.stomp');
    r.ws.send('CONNECT\naccept-version:1.0,1.1,1.2\nheart-beat:1000,1000\nlogin:ten\n\n\0');
    await until(() => r.data.includes('\0'), 5000, 'CONNECTED');
    assert.match(r.data, /^CONNECTED\nversion:1.0\n/);
    const channel = `chat:${name('v10')}`;
    r.data = '';
    // 1.0: the destination is the subscription id; a colon in a value is plain.
    r.ws.send(`SUBSCRIBE\ndestination:/topic/${channel}\nack:client\nreceipt:s\n\n\0`);
    await until(() => r.data.includes('receipt-id:s'), 5000, 'RECEIPT');
    r.data = '';
    // Frames split across WebSocket messages, and two in one.
    r.ws.send(`SEND\ndestination:/topic/${channel}\ncontent-length:4\n\na\\:b`);
    r.ws.send(`\0\nSEND\ndestination:/topic/${channel}\n\nsecond\0`);
    await until(() => (r.data.match(/MESSAGE/g) ?? []).length === 2, 5000, 'two MESSAGEs');
    assert.match(r.data, new RegExp(`^MESSAGE\nsubscription:/topic/${channel}\n`));
    assert.match(r.data, /\n\na\\:b\0/);
    const id = /message-id:(\d+)/.exec(r.data)[1];
    r.data = '';
    r.ws.send(`NACK\nmessage-id:${id}\n\n\0`);
    await until(() => r.data.includes('redelivered:true'), 5000, 'redelivery after NACK by message-id');
    await sleep(1500);  // no heart-beats in 1.0, and no timeout for the silent client
    assert.equal(r.closed, null);
  });

  test('one publication to 1.0 and 1.2 subscribers on one loop: each MESSAGE escaped for its own version', async () => {
    // The server encodes a MESSAGE's publication headers once per event and loop, for the
    // first subscriber's version; a subscriber of another version must still get its own
    // escaping (1.2: ':' in a value is "\\c"; 1.0: plain).
    const channel = `chat:${name('mixed')}`;
    const conns = [];
    for (const protocol of ['v12.stomp', 'v10.stomp', 'v12.stomp']) {
      const r = await raw(protocol);
      const version = protocol === 'v10.stomp' ? '1.0' : '1.2';
      r.ws.send(`CONNECT\naccept-version:${version}\nhost:x\n\n\0`);
      await until(() => r.data.includes('\0'), 5000, 'CONNECTED');
      r.data = '';
      r.ws.send(`SUBSCRIBE\nid:s\ndestination:/topic/${channel}\nreceipt:r\n\n\0`);
      await until(() => r.data.includes('receipt-id:r'), 5000, 'RECEIPT');
      r.data = '';
      conns.push({ r, version });
    }
    conns[0].r.ws.send(`SEND\ndestination:/topic/${channel}\n\nhello\0`);
    for (const { r, version } of conns) {
      await until(() => r.data.includes('MESSAGE') && r.data.endsWith('\0'), 5000, `MESSAGE (${version})`);
      const escaped = version === '1.0' ? channel : channel.replace(':', '\\c');
      assert.ok(r.data.includes(`\nchannel:${escaped}\n`), `${version}: ${JSON.stringify(r.data)}`);
      assert.ok(r.data.includes('\ncontent-type:text/plain;charset=utf-8\n'), r.data);
      assert.ok(r.data.endsWith('\n\nhello\0'), `${version}: ${JSON.stringify(r.data)}`);
      r.ws.close();
    }
  });

  test('auth: a JWT in passcode or Authorization; none → ERROR token_required', async () => {
    const secret = 'k'.repeat(48);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-stomp-auth-'));
    fs.writeFileSync(path.join(dir, 'sb.toml'), `[auth]\nhmac_secrets = ["${secret}"]\n[namespaces.chat]\n`);
    const s = await startServer({ flags: ['--config', path.join(dir, 'sb.toml')] });
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const jwt = (sub) => {
      const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
      return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
    };
    try {
      const url = `ws://127.0.0.1:${s.port}/ws`;
      const a = stomp({ url, connectHeaders: { login: 'ignored', passcode: jwt('alice') } });
      const fa = await a.connectNow();
      assert.equal(fa.headers['user-name'], 'alice');
      const b = stomp({ url, connectHeaders: { Authorization: `Bearer ${jwt('bob')}` } });
      assert.equal((await b.connectNow()).headers['user-name'], 'bob');
      const got = await subscribe(b, '/topic/chat.auth');
      await sendWithReceipt(a, '/topic/chat.auth', 'hi bob');
      await until(() => got.length === 1, 5000, 'a message');
      // The upgrade is accepted without a token (CONNECT may bring it); CONNECT without one is not.
      const c = stomp({ url });
      await assert.rejects(c.connectNow(), /closed 1008/);
      assert.match(c.rec.errors[0]?.headers.message ?? '', /^token_required: /);
      const d = stomp({ url, connectHeaders: { token: 'not.a.jwt' } });
      await assert.rejects(d.connectNow(), /closed 1008/);
      assert.match(d.rec.errors[0]?.headers.message ?? '', /^invalid_token: /);
      for (const x of [a, b]) await x.deactivate();
    } finally {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('mixed: STOMP publishers → native subscribers and native publishers → STOMP subscribers, exactly once, in order', async () => {
    const N = 100;
    // STOMP → native (and a STOMP subscriber too: all see one order).
    const channel = `chat:${name('mixed')}`;
    const dest = `/topic/${channel}`;
    const natives = [await native(), await native()];
    for (const n of natives) assert.equal((await n.request({ type: 'subscribe', channel })).type, 'subscribed');
    const watcher = stomp();
    await watcher.connectNow();
    const seen = await subscribe(watcher, dest);
    const pubs = [stomp(), stomp()];
    for (const p of pubs) await p.connectNow();
    await Promise.all(pubs.map(async (p, k) => {
      for (let i = 0; i < N; i++) p.publish({ destination: `/topic/chat.${channel.slice(5)}`, body: JSON.stringify({ k, i }), headers: { 'content-type': 'application/json' } });
      await sendWithReceipt(p, dest, JSON.stringify({ k, i: N }), { 'content-type': 'application/json' });
    }));
    const total = 2 * (N + 1);
    const msgs = (n) => n.events.filter((e) => e.type === 'message');
    for (const n of natives) await until(() => msgs(n).length >= total, 10000, `native got ${msgs(n).length}/${total}`);
    await until(() => seen.length >= total, 10000, `stomp got ${seen.length}/${total}`);
    await sleep(200);
    const order = msgs(natives[0]).map((e) => `${e.data.k}:${e.data.i}`);
    assert.equal(order.length, total, 'exactly once');
    assert.equal(new Set(order).size, total, 'no duplicates');
    assert.deepEqual(msgs(natives[1]).map((e) => `${e.data.k}:${e.data.i}`), order, 'natives agree');
    assert.deepEqual(seen.map((m) => { const d = JSON.parse(m.body); return `${d.k}:${d.i}`; }), order, 'STOMP agrees');
    for (const k of [0, 1]) {
      const mine = msgs(natives[0]).filter((e) => e.data.k === k).map((e) => e.data.i);
      assert.deepEqual(mine, Array.from({ length: N + 1 }, (_, i) => i), `publisher ${k} in order`);
    }
    assert.deepEqual(msgs(natives[0]).map((e) => e.offset), seen.map((m) => Number(m.headers.offset)));

    // native → STOMP: text data arrives as the text, other JSON as JSON.
    const channel2 = `chat:${name('mixed')}`;
    const subs = [stomp(), stomp()];
    const got = [];
    for (const s of subs) { await s.connectNow(); got.push(await subscribe(s, `/topic/${channel2.replace(':', '.')}`, { ack: 'client-individual' }, (m) => m.ack())); }
    const np = [await native(), await native()];
    await Promise.all(np.map(async (n, k) => {
      for (let i = 0; i < N; i++) {
        const r = await n.request({ type: 'publish', channel: channel2, data: i % 2 ? `text ${k}:${i}` : { k, i } });
        assert.equal(r.type, 'published');
      }
    }));
    for (const g of got) await until(() => g.length >= 2 * N, 10000, `stomp got ${g.length}/${2 * N}`);
    await sleep(200);
    const key = (m) => (m.headers['content-type'] === 'application/json' ? (({ k, i }) => `${k}:${i}`)(JSON.parse(m.body)) : m.body.slice(5));
    const first = got[0].map(key);
    assert.equal(first.length, 2 * N);
    assert.equal(new Set(first).size, 2 * N, 'exactly once');
    assert.deepEqual(got[1].map(key), first, 'both STOMP subscribers in one order');
    for (const k of [0, 1]) {
      assert.deepEqual(first.filter((x) => x.startsWith(`${k}:`)), Array.from({ length: N }, (_, i) => `${k}:${i}`), `publisher ${k} in order`);
    }
  });
});
