// Unit tests of the client, no server: a fake transport, a manual clock and a chosen random.
//   node --test clients/js/test/
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Switchboard, SwitchboardError, backoffCap, backoffDelay, closePolicy, endpoints, TransportSelector,
} from '../dist/index.js';
import { FakeClock, FakeNet, MemoryStorage, seqRandom, settle } from './helpers.mjs';

const URL_ = 'ws://example.test:8080/ws';

function make(opts = {}) {
  const clock = new FakeClock();
  const net = new FakeNet();
  const events = [];
  const client = new Switchboard(opts.url ?? URL_, {
    clock, random: opts.random ?? (() => 0.5), storage: null,
    transportFactories: net.factories(opts.names), transports: opts.transports ?? ['websocket'],
    ...opts.options,
  });
  for (const ev of ['connecting', 'connected', 'disconnected', 'error', 'state']) {
    client.on(ev, (e) => events.push([ev, e]));
  }
  return { clock, net, client, events, names: () => events.map(([n]) => n).filter((n) => n !== 'state') };
}

/** Runs the reconnect timer the last `disconnected` event announced. */
async function reconnectNow(ctx) {
  const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
  assert.equal(d.reconnect, true);
  await ctx.clock.advance(d.delayMs);
}

async function connected(ctx, extra) {
  const p = ctx.client.connect();
  ctx.net.last.handshake(extra);
  await settle();
  return p;
}

describe('backoff', () => {
  test('the cap grows ×2 per attempt from minMs and stops at maxMs', () => {
    const o = { minMs: 100, maxMs: 5000 };
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 60, 2000].map((a) => backoffCap(a, o)),
      [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
  });
  test('full jitter stays within [0, cap]', () => {
    const o = { minMs: 250, maxMs: 30000 };
    for (let a = 0; a < 40; a++) {
      const cap = backoffCap(a, o);
      assert.equal(backoffDelay(a, o, () => 0), 0);
      assert.ok(backoffDelay(a, o, () => 0.999999999) <= cap);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(a, o, Math.random);
        assert.ok(d >= 0 && d <= cap, `attempt ${a}: ${d} outside [0, ${cap}]`);
      }
    }
  });
  test('jitter is spread over the whole range, not clustered at the cap', () => {
    const o = { minMs: 1000, maxMs: 1000 };
    const ds = Array.from({ length: 2000 }, () => backoffDelay(5, o));
    assert.ok(Math.min(...ds) < 100 && Math.max(...ds) > 900);
  });
  test('the client waits backoffDelay(attempt) between failed attempts, growing to maxMs', async () => {
    const ctx = make({ random: () => 0.999, options: { backoff: { minMs: 100, maxMs: 1000 } } });
    ctx.client.connect();
    const delays = [];
    for (let i = 0; i < 6; i++) {
      ctx.net.last.drop(1006);
      await settle();
      const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1].delayMs;
      delays.push(d);
      await ctx.clock.advance(d);
    }
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
  });
});

describe('close code policy', () => {
  const retried = (code, notice, canRefresh = false) => closePolicy(code, notice, canRefresh).reconnect;
  test('retried and resumed: network, shutdown, slow consumer, idle timeout, unknown codes', () => {
    for (const c of [1000, 1001, 1005, 1006, 1011, 1012, 1013, 4000, 4001, 4999]) {
      const p = closePolicy(c, undefined, false);
      assert.ok(p.reconnect && p.resume, `code ${c}`);
    }
  });
  test('not retried: protocol errors, too big, rate limit, takeover', () => {
    for (const c of [1002, 1003, 1007, 1009, 1008, 4004]) assert.equal(retried(c), false, `code ${c}`);
    assert.equal(retried(1008, { code: 1008, reason: 'rate limit exceeded', reconnect: false }), false);
  });
  test('4004 (session taken over) forgets the session', () => {
    assert.equal(closePolicy(4004, { code: 4004, reason: 'x', reconnect: false }, true).resume, false);
  });
  test('4003 follows the disconnect event; reconnect:false also ends the session', () => {
    assert.equal(retried(4003, { code: 4003, reason: '', reconnect: true }), true);
    assert.equal(retried(4003, undefined), true);
    const p = closePolicy(4003, { code: 4003, reason: '', reconnect: false }, true);
    assert.equal(p.reconnect, false);
    assert.equal(p.resume, false);
  });
  test('4005 (token expired) is retried with a new token only when getToken exists', () => {
    assert.deepEqual([retried(4005, undefined, false), retried(4005, undefined, true)], [false, true]);
    assert.equal(closePolicy(4005, undefined, true).newToken, true);
  });
  test('any code with a disconnect event saying reconnect:false is not retried', () => {
    assert.equal(retried(4000, { code: 4000, reason: 'x', reconnect: false }), false);
  });
});

describe('endpoints', () => {
  test('ws and http forms give the /ws URL and the HTTP base', () => {
    assert.deepEqual(endpoints('ws://h:1/ws'), { baseUrl: 'http://h:1', wsUrl: 'ws://h:1/ws', origin: 'http://h:1' });
    assert.deepEqual(endpoints('https://h/app/'), { baseUrl: 'https://h/app', wsUrl: 'wss://h/app/ws', origin: 'https://h' });
    assert.equal(endpoints('wss://h/ws?x=1').wsUrl, 'wss://h/ws?x=1');
    assert.throws(() => endpoints('ftp://h/'), TypeError);
  });
});

describe('connection state machine', () => {
  test('connecting → connected → (lost) reconnecting → connecting → connected, resuming the session', async () => {
    const ctx = make();
    const p = ctx.client.connect();
    assert.equal(ctx.client.state, 'connecting');
    const t1 = ctx.net.last;
    assert.equal(t1.openCalled, true);
    t1.accept();
    const c1 = t1.lastOfType('connect');
    assert.equal(c1.session, undefined);
    t1.receive({ type: 'connected', id: c1.id, client: 'c_0_1', session: 's_A', resumed: false, ping_interval: 25 });
    const info = await p;
    assert.equal(info.session, 's_A');
    assert.equal(ctx.client.state, 'connected');
    t1.drop(1006, '');
    await settle();
    assert.equal(ctx.client.state, 'reconnecting');
    assert.equal(ctx.client.reconnectScheduled, true);
    const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
    assert.equal(d.reconnect, true);
    assert.equal(d.code, 1006);
    await ctx.clock.advance(d.delayMs);
    assert.equal(ctx.client.state, 'connecting');
    const t2 = ctx.net.last;
    assert.notEqual(t2, t1);
    t2.accept();
    const c2 = t2.lastOfType('connect');
    assert.equal(c2.session, 's_A');
    t2.receive({ type: 'connected', id: c2.id, client: 'c_0_2', session: 's_A', resumed: true, ping_interval: 25, channels: [] });
    await settle();
    assert.equal(ctx.client.state, 'connected');
    assert.deepEqual(ctx.names(), ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    assert.equal(ctx.events.filter(([n]) => n === 'connected').pop()[1].resumed, true);
  });

  test('a graceful shutdown\'s reconnect_after_ms delays the first attempt (the server spreads its clients)', async () => {
    const ctx = make({ random: () => 0.5, options: { backoff: { minMs: 100, maxMs: 8000 } } });
    await connected(ctx);
    ctx.net.last.receive({ type: 'disconnect', code: 1001, reason: 'server shutting down; reconnect', reconnect: true, reconnect_after_ms: 2750 });
    ctx.net.last.drop(1001, 'server shutting down; reconnect');
    await settle();
    const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
    assert.equal(d.reconnect, true);
    assert.equal(d.delayMs, 2750);
    const before = ctx.net.transports.length;
    await ctx.clock.advance(2749);
    assert.equal(ctx.net.transports.length, before, 'no attempt before the hint');
    await ctx.clock.advance(1);
    assert.equal(ctx.net.transports.length, before + 1, 'the attempt at the hint');
    // Without a hint (a crash: 1006) the usual backoff applies.
    ctx.net.last.handshake();
    await settle();
    ctx.net.last.drop(1006);
    await settle();
    assert.ok(ctx.events.filter(([n]) => n === 'disconnected').pop()[1].delayMs < 2750);
  });

  test('every connecting is followed by connected or disconnected; an attempt that never opens backs off', async () => {
    const ctx = make({ random: () => 0.5, options: { backoff: { minMs: 1000, maxMs: 8000 } } });
    ctx.client.connect();
    ctx.net.last.drop(1006, 'ECONNREFUSED');
    await settle();
    assert.deepEqual(ctx.names(), ['connecting', 'disconnected']);
    assert.equal(ctx.events.find(([n]) => n === 'disconnected')[1].delayMs, 500);
  });

  test('a close that must not be retried stops the client: no timer, state disconnected, error event', async () => {
    for (const [code, notice] of [[4004, { reason: 'session resumed by another connection', reconnect: false }],
      [1008, { reason: 'rate limit exceeded', reconnect: false }], [4003, { reason: 'bye', reconnect: false }], [1002, null], [1009, null]]) {
      const ctx = make();
      await connected(ctx);
      if (notice) ctx.net.last.receive({ type: 'disconnect', code, ...notice });
      ctx.net.last.drop(code, notice?.reason ?? '');
      await settle();
      assert.equal(ctx.client.state, 'disconnected', `code ${code}`);
      assert.equal(ctx.client.reconnectScheduled, false);
      assert.equal(ctx.clock.pendingDelays().length, 0, `code ${code}: timers left ${ctx.clock.pendingDelays()}`);
      const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
      assert.equal(d.reconnect, false);
      const err = ctx.events.filter(([n]) => n === 'error').pop()[1];
      assert.ok(err instanceof SwitchboardError);
      assert.equal(err.code, 'closed');
      assert.equal(err.details.code, code);
    }
  });

  test('after a takeover (4004) connect() starts a new session instead of resuming', async () => {
    const ctx = make();
    await connected(ctx, { session: 's_X' });
    ctx.net.last.receive({ type: 'disconnect', code: 4004, reason: 'session resumed by another connection', reconnect: false });
    ctx.net.last.drop(4004, 'session resumed by another connection');
    await settle();
    assert.equal(ctx.client.session, undefined);
    ctx.client.connect();
    ctx.net.last.accept();
    assert.equal(ctx.net.last.lastOfType('connect').session, undefined);
  });

  test('a 4003 with reconnect:true resumes', async () => {
    const ctx = make();
    await connected(ctx, { session: 's_Y' });
    ctx.net.last.receive({ type: 'disconnect', code: 4003, reason: 'disconnected by the server', reconnect: true });
    ctx.net.last.drop(4003, 'disconnected by the server');
    await settle();
    assert.equal(ctx.client.state, 'reconnecting');
    await reconnectNow(ctx);
    ctx.net.last.accept();
    assert.equal(ctx.net.last.lastOfType('connect').session, 's_Y');
  });

  test('disconnect() closes, stops retrying, rejects queued requests; connect() resumes', async () => {
    const ctx = make();
    await connected(ctx, { session: 's_Z' });
    ctx.net.last.drop(1006);
    await settle();
    const p = ctx.client.publish('chat:a', 1);
    ctx.client.disconnect();
    await assert.rejects(p, (e) => e.code === 'client_closed');
    assert.equal(ctx.client.state, 'disconnected');
    assert.equal(ctx.clock.pendingDelays().length, 0);
    ctx.client.connect();
    ctx.net.last.accept();
    assert.equal(ctx.net.last.lastOfType('connect').session, 's_Z');
  });

  test('connect refused with invalid_token and no getToken: stops; with getToken: a new token is fetched', async () => {
    const a = make();
    const pa = a.client.connect();
    a.net.last.accept();
    a.net.last.receive({ type: 'error', id: a.net.last.lastOfType('connect').id, code: 'invalid_token', message: 'token expired' });
    await assert.rejects(pa, (e) => e.code === 'invalid_token');
    assert.equal(a.client.state, 'disconnected');

    let n = 0;
    const b = make({ options: { getToken: () => `tok${++n}` } });
    b.client.connect();
    await settle();
    assert.equal(b.net.last.ctx.token, 'tok1');
    b.net.last.accept();
    b.net.last.receive({ type: 'error', id: b.net.last.lastOfType('connect').id, code: 'invalid_token', message: 'token expired' });
    await settle();
    assert.equal(b.client.state, 'reconnecting');
    await reconnectNow(b);
    assert.equal(b.net.last.ctx.token, 'tok2');
  });

  test('a connect that gets no reply in connectTimeoutMs is abandoned and retried', async () => {
    const ctx = make({ options: { connectTimeoutMs: 3000 } });
    ctx.client.connect();
    const t1 = ctx.net.last;
    t1.accept();
    await ctx.clock.advance(3000);
    assert.ok(t1.closedBy);
    assert.equal(ctx.client.state, 'reconnecting');
  });
});

describe('heartbeat', () => {
  test('a silent link gets a protocol ping after ping_interval, and is dropped after the margin', async () => {
    const ctx = make({ options: { pingTimeoutMs: 2000 } });
    await connected(ctx, { ping_interval: 5 });
    const t = ctx.net.last;
    await ctx.clock.advance(4999);
    assert.equal(t.sentOfType('ping').length, 0);
    await ctx.clock.advance(1);
    assert.equal(t.sentOfType('ping').length, 1);
    await ctx.clock.advance(1999);
    assert.equal(ctx.client.state, 'connected');
    await ctx.clock.advance(1);
    assert.equal(ctx.client.state, 'reconnecting');
    assert.ok(t.closedBy);
    const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
    assert.equal(d.code, 1006);
    assert.match(d.reason, /heartbeat/);
  });
  test('anything arriving keeps the link alive', async () => {
    const ctx = make({ options: { pingTimeoutMs: 2000 } });
    await connected(ctx, { ping_interval: 5 });
    const t = ctx.net.last;
    for (let i = 0; i < 10; i++) {
      await ctx.clock.advance(5000);
      assert.equal(t.sentOfType('ping').length, i + 1);
      await ctx.clock.advance(1500);
      t.receive({ type: 'pong' });
    }
    assert.equal(ctx.client.state, 'connected');
  });
  test('ping_interval 0: the client uses pingIntervalMs', async () => {
    const ctx = make({ options: { pingIntervalMs: 1000, pingTimeoutMs: 500 } });
    await connected(ctx, { ping_interval: 0 });
    await ctx.clock.advance(1000);
    assert.equal(ctx.net.last.sentOfType('ping').length, 1);
    await ctx.clock.advance(500);
    assert.equal(ctx.client.state, 'reconnecting');
  });
});

describe('subscriptions', () => {
  test('dedupe by (epoch, offset): redelivered publications reach the app once; acks cover them', async () => {
    const ctx = make();
    await connected(ctx);
    const got = [];
    const sub = ctx.client.subscribe('jobs:a', { onMessage: (m) => got.push(`${m.epoch}/${m.offset}`) });
    const t = ctx.net.last;
    t.subscribed('jobs:a', 'e1', 0);
    await settle();
    assert.deepEqual(await sub.ready, { channel: 'jobs:a', epoch: 'e1', offset: 0 });
    for (const o of [1, 2, 3, 2, 3, 1, 4]) t.publication('jobs:a', 'e1', o);
    await ctx.clock.advance(100);
    assert.deepEqual(got, ['e1/1', 'e1/2', 'e1/3', 'e1/4']);
    assert.deepEqual(t.sentOfType('ack').map((a) => a.offset), [4]);
    // a new epoch starts over, and says recovered:false
    const rec = [];
    sub.options.onRecovered = (r) => rec.push(r);
    t.publication('jobs:a', 'e2', 1);
    assert.deepEqual(got.slice(-1), ['e2/1']);
    assert.equal(rec[0].recovered, false);
  });

  test('after a lost connection and a new session, each channel is subscribed again from its last position', async () => {
    const ctx = make();
    await connected(ctx, { session: 's_1' });
    const rec = [];
    const got = [];
    ctx.client.subscribe('chat:a', { onMessage: (m) => got.push(m.offset), onRecovered: (r) => rec.push(r) });
    ctx.client.subscribe('chat:b', {});
    let t = ctx.net.last;
    t.subscribed('chat:a', 'e1', 10);
    t.subscribed('chat:b', 'eb', 3);
    await settle();
    t.publication('chat:a', 'e1', 11);
    t.publication('chat:a', 'e1', 12);
    t.drop(1006);
    await settle();
    await reconnectNow(ctx);
    t = ctx.net.last;
    t.handshake({ session: 's_2', resumed: false });
    await settle();
    assert.deepEqual(t.sentOfType('subscribe').map((s) => [s.channel, s.since]),
      [['chat:a', { epoch: 'e1', offset: 12 }], ['chat:b', { epoch: 'eb', offset: 3 }]]);
    t.subscribed('chat:a', 'e1', 14, { recovered: true });
    await settle();
    t.publication('chat:a', 'e1', 13);
    t.publication('chat:a', 'e1', 14);
    assert.deepEqual(got, [11, 12, 13, 14]);
    assert.deepEqual(rec, [{ recovered: true, cause: 'resubscribe', epoch: 'e1', offset: 14 }]);
  });

  test('a server restart (new epoch) is reported as recovered:false', async () => {
    const ctx = make();
    await connected(ctx);
    const rec = [];
    const got = [];
    const sub = ctx.client.subscribe('chat:a', { onRecovered: (r) => rec.push(r), onMessage: (m) => got.push(`${m.epoch}/${m.offset}`) });
    ctx.net.last.subscribed('chat:a', 'e1', 7);
    await settle();
    ctx.net.last.drop(1001, 'server shutting down; reconnect');
    await settle();
    await reconnectNow(ctx);
    ctx.net.last.handshake({ session: 's_new', resumed: false });
    await settle();
    ctx.net.last.subscribed('chat:a', 'e2', 0, { recovered: false });
    await settle();
    assert.deepEqual(rec, [{ recovered: false, cause: 'resubscribe', epoch: 'e2', offset: 0 }]);
    assert.deepEqual(sub.position, { epoch: 'e2', offset: 0 });
    ctx.net.last.publication('chat:a', 'e2', 1);
    assert.deepEqual(got, ['e2/1']);
  });

  test('a resumed session restores channels: no subscribe is sent, recovery is reported, unsubscribed ones are dropped', async () => {
    const ctx = make();
    await connected(ctx, { session: 's_1' });
    const rec = [];
    ctx.client.subscribe('chat:a', { onRecovered: (r) => rec.push(r) });
    const b = ctx.client.subscribe('chat:b', {});
    ctx.net.last.subscribed('chat:a', 'e1', 1);
    ctx.net.last.subscribed('chat:b', 'eb', 1);
    await settle();
    ctx.net.last.drop(1006);
    await settle();
    await b.unsubscribe(); // offline: nothing sent now
    await reconnectNow(ctx);
    const t = ctx.net.last;
    t.handshake({ session: 's_1', resumed: true, channels: [
      { channel: 'chat:a', epoch: 'e1', offset: 5, recovered: true },
      { channel: 'chat:b', epoch: 'eb', offset: 1, recovered: true }] });
    await settle();
    assert.deepEqual(t.sentOfType('subscribe'), []);
    assert.deepEqual(t.sentOfType('unsubscribe').map((u) => u.channel), ['chat:b']);
    assert.deepEqual(rec, [{ recovered: true, cause: 'resume', epoch: 'e1', offset: 5 }]);
  });

  test('gap:true: the client re-subscribes from the last delivered position and delivers the replay once', async () => {
    const ctx = make();
    await connected(ctx);
    const got = [];
    const rec = [];
    ctx.client.subscribe('chat:a', { onMessage: (m) => got.push(m.offset), onRecovered: (r) => rec.push(r) });
    const t = ctx.net.last;
    t.subscribed('chat:a', 'e1', 0);
    await settle();
    t.publication('chat:a', 'e1', 1);
    t.publication('chat:a', 'e1', 2);
    t.publication('chat:a', 'e1', 5, 5, { gap: true });
    t.publication('chat:a', 'e1', 6); // before the resubscribe: dropped, the replay has it
    await settle();
    const u = t.lastOfType('unsubscribe');
    assert.equal(u.channel, 'chat:a');
    t.receive({ type: 'unsubscribed', id: u.id, channel: 'chat:a' });
    await settle();
    const s = t.lastOfType('subscribe');
    assert.deepEqual(s.since, { epoch: 'e1', offset: 2 });
    t.subscribed('chat:a', 'e1', 6, { recovered: true });
    await settle();
    for (const o of [3, 4, 5, 6, 7]) t.publication('chat:a', 'e1', o);
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(rec.map((r) => [r.cause, r.recovered]), [['gap', true]]);
  });

  test('join and leave reach their subscription; a refused subscribe calls onError and rejects ready', async () => {
    const ctx = make();
    await connected(ctx);
    const seen = [];
    ctx.client.subscribe('chat:a', { onJoin: (e) => seen.push(['join', e.client]), onLeave: (e) => seen.push(['leave', e.client]) });
    ctx.net.last.subscribed('chat:a', 'e', 0);
    await settle();
    ctx.net.last.receive({ type: 'join', channel: 'chat:a', client: 'c_1', user: 'u' });
    ctx.net.last.receive({ type: 'leave', channel: 'chat:a', client: 'c_1', user: 'u' });
    assert.deepEqual(seen, [['join', 'c_1'], ['leave', 'c_1']]);
    const errs = [];
    const bad = ctx.client.subscribe('nope:x', { onError: (e) => errs.push(e.code) });
    const s = ctx.net.last.lastOfType('subscribe');
    ctx.net.last.receive({ type: 'error', id: s.id, code: 'unknown_namespace', message: 'no' });
    await assert.rejects(bad.ready, (e) => e instanceof SwitchboardError && e.code === 'unknown_namespace');
    assert.deepEqual(errs, ['unknown_namespace']);
    assert.equal(bad.status, 'closed');
    assert.equal(ctx.client.getSubscription('nope:x'), undefined);
  });

  test('default:room is the channel room', async () => {
    const ctx = make();
    await connected(ctx);
    const sub = ctx.client.subscribe('default:room');
    assert.equal(sub.channel, 'room');
    assert.equal(ctx.client.subscribe('default:a:b').channel, 'default:a:b');
  });
});

describe('requests and the send queue', () => {
  test('requests made offline wait in a bounded queue (queue_full past maxQueue) and go out in order', async () => {
    const ctx = make({ options: { maxQueue: 3 } });
    const ps = [1, 2, 3].map((n) => ctx.client.publish('chat:a', n));
    await assert.rejects(ctx.client.publish('chat:a', 4), (e) => e instanceof SwitchboardError && e.code === 'queue_full');
    assert.equal(ctx.client.queued, 3);
    await connected(ctx);
    const pubs = ctx.net.last.sentOfType('publish');
    assert.deepEqual(pubs.map((p) => p.data), [1, 2, 3]);
    pubs.forEach((p, i) => ctx.net.last.receive({ type: 'published', id: p.id, channel: 'chat:a', epoch: 'e', offset: i + 1 }));
    assert.deepEqual((await Promise.all(ps)).map((r) => r.offset), [1, 2, 3]);
  });

  test('while the transport buffers more than maxBufferedBytes, messages wait', async () => {
    const ctx = make({ options: { maxBufferedBytes: 1000, maxQueue: 2 } });
    await connected(ctx);
    const t = ctx.net.last;
    t.buffered = 5000;
    ctx.client.publish('chat:a', 1).catch(() => {});
    ctx.client.publish('chat:a', 2).catch(() => {});
    await assert.rejects(ctx.client.publish('chat:a', 3), (e) => e.code === 'queue_full');
    assert.equal(t.sentOfType('publish').length, 0);
    await ctx.clock.advance(100);
    assert.equal(t.sentOfType('publish').length, 0);
    t.buffered = 0;
    await ctx.clock.advance(20);
    assert.deepEqual(t.sentOfType('publish').map((p) => p.data), [1, 2]);
  });

  test('a lost connection: unkeyed publishes reject connection_lost, keyed ones and reads are sent again', async () => {
    const ctx = make();
    await connected(ctx);
    const a = ctx.client.publish('chat:a', 'a');
    const b = ctx.client.publish('chat:a', 'b', { idempotencyKey: 'k1' });
    const h = ctx.client.history('chat:a', { limit: 5 });
    ctx.net.last.drop(1006);
    await assert.rejects(a, (e) => e.code === 'connection_lost');
    await reconnectNow(ctx);
    const t = ctx.net.last;
    t.handshake();
    await settle();
    const sent = t.sent.filter((m) => m.type !== 'connect');
    assert.deepEqual(sent.map((m) => [m.type, m.idempotency_key ?? m.limit]), [['publish', 'k1'], ['history', 5]]);
    t.receive({ type: 'published', id: sent[0].id, channel: 'chat:a', epoch: 'e', offset: 9, duplicate: true });
    t.receive({ type: 'history', id: sent[1].id, channel: 'chat:a', epoch: 'e', offset: 9, publications: [] });
    assert.deepEqual(await b, { channel: 'chat:a', epoch: 'e', offset: 9, duplicate: true });
    assert.equal((await h).offset, 9);
  });

  test('no reply within requestTimeoutMs rejects with timeout; server errors carry their code', async () => {
    const ctx = make({ options: { requestTimeoutMs: 2000 } });
    await connected(ctx);
    const p = assert.rejects(ctx.client.presence('chat:a'), (e) => e.code === 'timeout');
    await ctx.clock.advance(2000);
    await p;
    const q = ctx.client.presence('chat:b');
    const m = ctx.net.last.lastOfType('presence');
    ctx.net.last.receive({ type: 'error', id: m.id, code: 'presence_disabled', message: 'off' });
    await assert.rejects(q, (e) => e instanceof SwitchboardError && e.code === 'presence_disabled' && e.message === 'off');
  });

  test('a request queued offline does not time out while the client reconnects: requestTimeoutMs starts when it is sent', async () => {
    // backoff up to 30 s (the default), requests 10 s: a publish typed offline must wait.
    const ctx = make({ random: () => 0.99, options: { requestTimeoutMs: 10000, backoff: { minMs: 30000, maxMs: 30000 } } });
    await connected(ctx);
    ctx.net.last.drop(1006);
    await settle();
    const p = ctx.client.publish('chat:a', 'offline', { idempotencyKey: 'k-off' });
    let outcome;
    p.then((r) => { outcome = r; }, (e) => { outcome = e; });
    const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1];
    assert.ok(d.delayMs > 20000, `backoff ${d.delayMs}`);
    await ctx.clock.advance(d.delayMs);            // 29.7 s offline: no timeout
    assert.equal(outcome, undefined, `settled while queued: ${outcome?.code}`);
    assert.equal(ctx.client.queued, 1);
    const t = ctx.net.last;
    t.handshake();
    await settle();
    const pub = t.lastOfType('publish');
    assert.equal(pub.idempotency_key, 'k-off');
    await ctx.clock.advance(9999);
    assert.equal(outcome, undefined);
    t.receive({ type: 'published', id: pub.id, channel: 'chat:a', epoch: 'e', offset: 3 });
    assert.equal((await p).offset, 3);
  });

  test('sent, then no reply: timeout after requestTimeoutMs from the send; a resend after a reconnect gets the full time again', async () => {
    const ctx = make({ random: () => 0.5, options: { requestTimeoutMs: 2000, backoff: { minMs: 10000, maxMs: 10000 } } });
    await connected(ctx);
    let outcome;
    const p = ctx.client.history('chat:a', { limit: 1 });
    p.then((r) => { outcome = r; }, (e) => { outcome = e; });
    await ctx.clock.advance(1500);
    ctx.net.last.drop(1006);                        // in flight: re-queued (a read is safe to resend)
    await settle();
    await ctx.clock.advance(5000);                  // reconnecting: no timeout
    assert.equal(outcome, undefined);
    const t = ctx.net.last;
    t.handshake();
    await settle();
    assert.equal(t.sentOfType('history').length, 1);
    await ctx.clock.advance(1999);
    assert.equal(outcome, undefined, 'timed out before requestTimeoutMs from the resend');
    await ctx.clock.advance(1);
    assert.equal(outcome?.code, 'timeout');
    assert.equal(ctx.client.queued, 0);
  });

  test('queued requests end with client_closed on disconnect() (they never wait forever once stopped)', async () => {
    const ctx = make();
    await connected(ctx);
    ctx.net.last.drop(1006);
    await settle();
    const p = ctx.client.publish('chat:a', 'x', { idempotencyKey: 'k' });
    ctx.client.disconnect();
    await assert.rejects(p, (e) => e.code === 'client_closed');
    assert.equal(ctx.client.queued, 0);
  });
});

describe('transport negotiation', () => {
  test('order websocket → sse → polling: a transport that fails before opening passes to the next at once; all failed → backoff', async () => {
    const ctx = make({ transports: ['websocket', 'sse', 'polling'], random: () => 0.5, options: { backoff: { minMs: 1000, maxMs: 1000 } } });
    ctx.client.connect();
    const tried = [];
    for (let i = 0; i < 3; i++) {
      tried.push(ctx.net.last.name);
      ctx.net.last.drop(1006);
      await settle();
      const d = ctx.events.filter(([n]) => n === 'disconnected').pop()[1].delayMs;
      if (i < 2) assert.equal(d, 0);
      else assert.equal(d, 500);
      await ctx.clock.advance(d);
    }
    tried.push(ctx.net.last.name);
    assert.deepEqual(tried, ['websocket', 'sse', 'polling', 'websocket']);
  });

  test('the transport that worked is remembered per origin and tried first next time', async () => {
    const storage = new MemoryStorage();
    const net = new FakeNet();
    const clock = new FakeClock();
    const opts = { clock, storage, transports: ['websocket', 'sse', 'polling'], transportFactories: net.factories(), random: () => 0 };
    const a = new Switchboard('https://chat.test/', opts);
    a.connect();
    net.last.drop(1006);
    await settle();
    await clock.advance(0);
    assert.equal(net.last.name, 'sse');
    net.last.handshake();
    await settle();
    assert.equal(storage.getItem('switchboard.transport:https://chat.test'), 'sse');
    const b = new Switchboard('wss://chat.test/ws', opts);
    b.connect();
    assert.equal(net.last.name, 'sse');
    const c = new Switchboard('wss://other.test/ws', opts);
    c.connect();
    assert.equal(net.last.name, 'websocket');
  });

  test('transports without an implementation are skipped', () => {
    const sel = new TransportSelector(['websocket', 'sse', 'polling'], (n) => n === 'websocket', 'http://x', undefined);
    assert.deepEqual(sel.order, ['websocket']);
    const none = new TransportSelector(['sse'], () => false, 'http://x', undefined);
    assert.equal(none.current(), undefined);
  });

  test('no usable transport: connect() rejects with no_transport', async () => {
    const client = new Switchboard('ws://x/ws', { transports: ['sse'], storage: null });
    await assert.rejects(client.connect(), (e) => e.code === 'no_transport');
  });
});
