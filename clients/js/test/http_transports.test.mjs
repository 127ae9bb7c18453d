// Unit tests of the HTTP transports (sse, polling) and of the upgrade back to WebSocket, no
// server: a fake EventSource, a fake fetch whose answers the test gives by hand, a manual clock.
//   node --test clients/js/test/
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventId, pollingTransport, sseTransport, Switchboard } from '../dist/index.js';
import { FakeClock, FakeNet, MemoryStorage, settle } from './helpers.mjs';

class FakeEventSource {
  static all = [];
  constructor(url) { this.url = url; this.readyState = 0; this.closed = false; this.onmessage = this.onerror = this.onopen = null; FakeEventSource.all.push(this); }
  close() { this.closed = true; this.readyState = 2; }
  // test side
  emit(obj) { this.onmessage?.({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) }); }
  fail(ev = {}) { this.onerror?.(ev); }
  static get last() { return FakeEventSource.all[FakeEventSource.all.length - 1]; }
}

/** fetch whose requests wait until the test answers them. */
class FakeFetch {
  constructor() { this.calls = []; this.fn = (url, init = {}) => this.call(url, init); }
  call(url, init) {
    return new Promise((resolve, reject) => {
      const c = { url: new URL(url), init, resolve, reject, done: false };
      init.signal?.addEventListener('abort', () => { if (!c.done) { c.done = true; reject(new Error('aborted')); } });
      this.calls.push(c);
    });
  }
  answer(c, status, body) {
    c.done = true;
    c.resolve({ status, ok: status >= 200 && status < 300, text: async () => (typeof body === 'string' ? body : JSON.stringify(body)) });
  }
  open() { return this.calls.filter((c) => !c.done); }
  last(method = 'GET') { return this.calls.filter((c) => (c.init.method ?? 'GET') === method).pop(); }
}

function harness(factory, extra = {}) {
  const clock = new FakeClock();
  const fetch = new FakeFetch();
  const log = [];
  const ctx = {
    baseUrl: 'http://sb.test/base', wsUrl: 'ws://sb.test/base/ws', token: extra.token,
    EventSource: FakeEventSource, fetch: fetch.fn, timers: clock, pingTimeoutMs: 1000,
    connect: extra.connect ?? { user: 'alice', info: { a: 1 } }, positions: extra.positions ?? [],
    handlers: {
      onOpen: () => { log.push(['open']); if (extra.autoConnect !== false) t.send({ type: 'connect', id: 7 }); },
      onMessage: (m) => log.push(['msg', m]),
      onClose: (code, reason, opened) => log.push(['close', code, reason, opened]),
      onError: (e) => log.push(['error', e.message]),
    },
  };
  const t = factory(ctx);
  const msgs = () => log.filter(([k]) => k === 'msg').map(([, m]) => m);
  const closes = () => log.filter(([k]) => k === 'close');
  return { t, clock, fetch, log, msgs, closes };
}

const CONNECTED = { type: 'connected', client: 'c_0_1', session: 's_1', resumed: false, ping_interval: 2 };

describe('sse transport', () => {
  test('opens GET /sse with the connect fields; the connect is answered with the stream\'s connected', async () => {
    const h = harness(sseTransport, { token: 'tok' });
    h.t.open();
    const es = FakeEventSource.last;
    const u = new URL(es.url);
    assert.equal(u.pathname, '/base/sse');
    assert.equal(u.searchParams.get('session'), 'new');
    assert.equal(u.searchParams.get('user'), 'alice');
    assert.deepEqual(JSON.parse(u.searchParams.get('info')), { a: 1 });
    assert.equal(u.searchParams.get('token'), 'tok');
    assert.equal(u.searchParams.get('lastEventId'), null);
    es.emit(CONNECTED);
    es.emit({ type: 'join', channel: 'chat:a', client: 'c_0_1' });
    await settle();
    assert.deepEqual(h.log.map(([k]) => k), ['open', 'msg', 'msg']);
    assert.deepEqual(h.msgs()[0], { ...CONNECTED, id: 7 });
    assert.equal(h.msgs()[1].type, 'join');
    assert.equal(h.fetch.calls.length, 0, 'connect is not POSTed');
  });

  test('resuming: lastEventId = the session and each channel\'s last delivered position', () => {
    assert.equal(eventId('s_1', [{ channel: 'jobs:b', epoch: 'e2', offset: 9 }, { channel: 'chat:a', epoch: 'e1', offset: 4 }]), 's_1|chat:a!e1!4|jobs:b!e2!9');
    const h = harness(sseTransport, { connect: { session: 's_1' }, positions: [{ channel: 'chat:a', epoch: 'e1', offset: 4 }] });
    h.t.open();
    const u = new URL(FakeEventSource.last.url);
    assert.equal(u.searchParams.get('lastEventId'), 's_1|chat:a!e1!4');
    assert.equal(u.searchParams.get('session'), null);
  });

  test('requests are POSTed one at a time, in order; replies come back as messages', async () => {
    const h = harness(sseTransport, { token: 'tok' });
    h.t.open();
    FakeEventSource.last.emit(CONNECTED);
    await settle();
    h.t.send({ type: 'publish', id: 8, channel: 'chat:a', data: 1 });
    h.t.send({ type: 'presence', id: 9, channel: 'chat:a' });
    assert.equal(h.fetch.calls.length, 1);
    assert.ok(h.t.bufferedAmount() > 0, 'the second waits');
    const p = h.fetch.calls[0];
    assert.equal(p.init.method, 'POST');
    assert.equal(p.url.pathname, '/base/sse');
    assert.equal(p.url.searchParams.get('session'), 's_1');
    assert.equal(p.init.headers.Authorization, 'Bearer tok');
    assert.deepEqual(JSON.parse(p.init.body), { type: 'publish', id: 8, channel: 'chat:a', data: 1 });
    h.fetch.answer(p, 200, '{"type":"published","id":8,"channel":"chat:a","epoch":"e","offset":1}\n');
    await settle();
    assert.equal(h.fetch.calls.length, 2);
    assert.equal(h.t.bufferedAmount(), 0);
    h.fetch.answer(h.fetch.calls[1], 429, { type: 'error', code: 'rate_limited', message: 'slow down' });
    await settle();
    assert.deepEqual(h.msgs().slice(1).map((m) => [m.type, m.id, m.code]), [['published', 8, undefined], ['error', 9, 'rate_limited']]);
  });

  test('while a subscribe is in flight, stream events wait: the replay follows the subscribed reply', async () => {
    const h = harness(sseTransport);
    h.t.open();
    const es = FakeEventSource.last;
    es.emit(CONNECTED);
    await settle();
    h.t.send({ type: 'subscribe', id: 8, channel: 'chat:a', since: { epoch: 'e', offset: 3 } });
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 4, data: 4 });
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 5, data: 5 });
    await settle();
    assert.equal(h.msgs().length, 1, 'held');
    h.fetch.answer(h.fetch.calls[0], 200, { type: 'subscribed', id: 8, channel: 'chat:a', epoch: 'e', offset: 5, recovered: true });
    await settle();
    assert.deepEqual(h.msgs().slice(1).map((m) => m.type + (m.offset ?? '')), ['subscribed5', 'message4', 'message5']);
  });

  test('a disconnect event ends it with its code, after delivering it; then nothing more', async () => {
    const h = harness(sseTransport);
    h.t.open();
    const es = FakeEventSource.last;
    es.emit(CONNECTED);
    es.emit({ type: 'disconnect', code: 4003, reason: 'disconnected by the server', reconnect: true });
    es.emit({ type: 'message', channel: 'x', epoch: 'e', offset: 1 });
    await settle();
    assert.deepEqual(h.log.slice(-2).map((l) => l.slice(0, 3)), [['msg', h.msgs()[1]], ['close', 4003, 'disconnected by the server']]);
    assert.equal(h.msgs()[1].type, 'disconnect');
    assert.equal(h.closes()[0][3], true);
    assert.ok(es.closed, 'the EventSource is closed (no reconnect of its own)');
  });

  test('failures: before open → opened false; 401 → the handshake status; stream error → 1006; silence → heartbeat; POST 410 → 1006', async () => {
    let h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.fail({});
    await settle();
    assert.deepEqual(h.closes().map((c) => [c[1], c[3]]), [[1006, false]]);
    assert.ok(FakeEventSource.last.closed);

    h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.fail({ code: 401, message: 'Non-200 status code (401)' });
    await settle();
    assert.equal(h.closes()[0][2], 'Unexpected server response: 401');

    h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.emit(CONNECTED);
    await settle();
    FakeEventSource.last.fail({ message: 'socket hang up' });
    await settle();
    assert.deepEqual(h.closes().map((c) => [c[1], c[3]]), [[1006, true]]);

    h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.emit(CONNECTED);   // ping_interval 2 s + pingTimeoutMs 1 s
    await h.clock.advance(2900);
    FakeEventSource.last.emit({ type: 'ping' });
    await h.clock.advance(2900);
    assert.equal(h.closes().length, 0, 'each event moves the deadline');
    await h.clock.advance(200);
    assert.match(h.closes()[0][2], /no data on the event stream for 3000 ms/);

    h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.emit(CONNECTED);
    await settle();
    h.t.send({ type: 'ping', id: 9 });
    h.fetch.answer(h.fetch.calls[0], 410, { type: 'error', code: 'not_found', message: 'gone' });
    await settle();
    assert.equal(h.closes()[0][1], 1006);
    assert.throws(() => h.t.send({ type: 'ping' }));
  });

  test('close() stops everything: no handler is called afterwards, the POST is aborted', async () => {
    const h = harness(sseTransport);
    h.t.open();
    FakeEventSource.last.emit(CONNECTED);
    await settle();
    h.t.send({ type: 'ping', id: 9 });
    const n = h.log.length;
    h.t.close(1000, 'bye');
    FakeEventSource.last.emit({ type: 'ping' });
    await settle();
    assert.equal(h.log.length, n);
    assert.ok(FakeEventSource.last.closed);
    assert.equal(h.fetch.open().length, 0, 'aborted');
  });
});

describe('polling transport', () => {
  const first = (events = [CONNECTED]) => ({ seq: 1, id: 's_1', events });

  async function opened(extra) {
    const h = harness(pollingTransport, extra);
    h.t.open();
    const g = h.fetch.last();
    h.fetch.answer(g, 200, first([CONNECTED, { type: 'join', channel: 'chat:a', client: 'c_0_1' }]));
    await settle();
    return h;
  }

  test('the first GET connects; then polls ack each batch, wait as configured; empty batches change nothing', async () => {
    const h = harness(pollingTransport);
    h.t.open();
    const g = h.fetch.last();
    assert.equal(g.url.pathname, '/base/poll');
    assert.equal(g.url.searchParams.get('session'), 'new');
    assert.equal(g.url.searchParams.get('user'), 'alice');
    h.fetch.answer(g, 200, first([CONNECTED, { type: 'join', channel: 'chat:a', client: 'c_0_1' }]));
    await settle();
    assert.deepEqual(h.msgs().map((m) => m.type), ['connected', 'join']);
    assert.equal(h.msgs()[0].id, 7);
    let p = h.fetch.last();
    assert.deepEqual([p.url.searchParams.get('session'), p.url.searchParams.get('ack'), p.url.searchParams.get('wait')], ['s_1', '1', '25']);
    h.fetch.answer(p, 200, { seq: 0, id: 's_1', events: [] });
    await settle();
    p = h.fetch.last();
    assert.equal(p.url.searchParams.get('ack'), '1');
    h.fetch.answer(p, 200, { seq: 2, id: 's_1|chat:a!e!1', events: [{ type: 'message', channel: 'chat:a', epoch: 'e', offset: 1 }] });
    await settle();
    assert.equal(h.fetch.last().url.searchParams.get('ack'), '2');
    assert.equal(h.t.lastEventId, 's_1|chat:a!e!1');
    assert.deepEqual(h.msgs().map((m) => m.type), ['connected', 'join', 'message']);
  });

  test('a failed poll is asked again with the same ack (the batch comes once); two in a row end it with 1006', async () => {
    const h = await opened();
    let p = h.fetch.last();
    p.done = true;
    p.reject(new Error('ECONNRESET'));
    await settle();
    p = h.fetch.last();
    assert.equal(p.url.searchParams.get('ack'), '1', 'same ack');
    h.fetch.answer(p, 200, { seq: 2, id: 'x', events: [{ type: 'message', channel: 'c', epoch: 'e', offset: 1 }] });
    await settle();
    // The same batch again (a resend) is not delivered twice.
    p = h.fetch.last();
    h.fetch.answer(p, 200, { seq: 2, id: 'x', events: [{ type: 'message', channel: 'c', epoch: 'e', offset: 1 }] });
    await settle();
    assert.equal(h.msgs().filter((m) => m.type === 'message').length, 1);
    for (let i = 0; i < 2; i++) {
      p = h.fetch.last();
      p.done = true;
      p.reject(new Error('ECONNREFUSED'));
      await settle();
    }
    assert.deepEqual(h.closes().map((c) => [c[1], c[3]]), [[1006, true]]);
    assert.match(h.closes()[0][2], /poll failed/);
  });

  test('a poll with no answer within wait + pingTimeoutMs is abandoned and asked again', async () => {
    const h = await opened();
    const p = h.fetch.last();
    await h.clock.advance(25_000 + 1000);
    assert.ok(p.done, 'aborted');
    assert.notEqual(h.fetch.last(), p);
    assert.equal(h.fetch.last().url.searchParams.get('ack'), '1');
  });

  test('410 ends it (the client reopens); a disconnect in a batch ends it with its code', async () => {
    let h = await opened();
    h.fetch.answer(h.fetch.last(), 410, { type: 'error', code: 'not_found', message: 'gone' });
    await settle();
    assert.deepEqual(h.closes().map((c) => c[1]), [1006]);

    h = await opened();
    h.fetch.answer(h.fetch.last(), 200, { seq: 2, id: 'x', events: [{ type: 'disconnect', code: 4004, reason: 'session resumed by another connection', reconnect: false }] });
    await settle();
    assert.deepEqual(h.closes().map((c) => [c[1], c[2]]), [[4004, 'session resumed by another connection']]);
    assert.equal(h.msgs().pop().type, 'disconnect');
  });

  test('opening refused: 401 → the handshake status; 403 with an error → the connect is answered with it', async () => {
    let h = harness(pollingTransport);
    h.t.open();
    h.fetch.answer(h.fetch.last(), 401, { type: 'error', code: 'token_required', message: 'no' });
    await settle();
    assert.deepEqual(h.closes().map((c) => [c[1], c[2], c[3]]), [[1006, 'Unexpected server response: 401', false]]);

    h = harness(pollingTransport);
    h.t.open();
    h.fetch.answer(h.fetch.last(), 403, { type: 'error', code: 'invalid_token', message: 'expired' });
    await settle();
    assert.deepEqual(h.msgs(), [{ type: 'error', code: 'invalid_token', message: 'expired', id: 7 }]);
  });

  test('subscribe in flight holds batch events until its reply', async () => {
    const h = await opened();
    h.t.send({ type: 'subscribe', id: 8, channel: 'chat:b' });
    h.fetch.answer(h.fetch.calls.find((c) => c.init.method === 'GET' && !c.done), 200, { seq: 2, id: 'x', events: [{ type: 'message', channel: 'chat:b', epoch: 'e', offset: 1 }] });
    await settle();
    assert.deepEqual(h.msgs().map((m) => m.type), ['connected', 'join']);
    h.fetch.answer(h.fetch.last('POST'), 200, { type: 'subscribed', id: 8, channel: 'chat:b', epoch: 'e', offset: 1 });
    await settle();
    assert.deepEqual(h.msgs().map((m) => m.type), ['connected', 'join', 'subscribed', 'message']);
  });
});

describe('client over the HTTP transports', () => {
  test('built in: sse needs an EventSource (option or global), polling needs fetch', async () => {
    const fetch = new FakeFetch();
    const c = new Switchboard('http://sb.test', { transports: ['sse', 'polling'], storage: null, fetch: fetch.fn, upgradeAfterMs: 0 });
    c.connect();
    assert.equal(c.transportName, 'polling', 'no global EventSource in node: sse is skipped');
    const d = new Switchboard('http://sb.test', { transports: ['sse'], storage: null, fetch: fetch.fn, EventSource: FakeEventSource });
    d.connect();
    assert.equal(d.transportName, 'sse');
    c.disconnect();
    d.disconnect();
  });

  test('a reconnect over sse resumes from the delivered positions (lastEventId)', async () => {
    const clock = new FakeClock();
    const fetch = new FakeFetch();
    const c = new Switchboard('http://sb.test', { transports: ['sse'], storage: null, fetch: fetch.fn, EventSource: FakeEventSource, clock, random: () => 0, upgradeAfterMs: 0 });
    const got = [];
    c.subscribe('chat:a', { onMessage: (m) => got.push(m.offset) });
    c.connect();
    let es = FakeEventSource.last;
    es.emit(CONNECTED);
    await settle();
    const sub = fetch.last('POST');
    assert.equal(JSON.parse(sub.init.body).type, 'subscribe');
    fetch.answer(sub, 200, { type: 'subscribed', id: JSON.parse(sub.init.body).id, channel: 'chat:a', epoch: 'e', offset: 0 });
    await settle();
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 1, data: 1 });
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 2, data: 2 });
    await settle();
    es.fail({ message: 'cut' });
    await settle();
    await clock.advance(0);
    es = FakeEventSource.last;
    assert.equal(new URL(es.url).searchParams.get('lastEventId'), 's_1|chat:a!e!2');
    es.emit({ ...CONNECTED, client: 'c_0_2', resumed: true, channels: [{ channel: 'chat:a', epoch: 'e', offset: 3, recovered: true }] });
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 2, data: 2 });
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 3, data: 3 });
    await settle();
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(c.state, 'connected');
    c.disconnect();
  });
});

describe('sse: publications that came while a subscribe was in flight', () => {
  // The transport holds stream events while a subscribe's POST is in flight and hands them over
  // right after its reply, in the same turn; the client must take the reply (the channel is
  // subscribed) before them, or it drops them as publications of a channel it is not
  // subscribed to yet: a subscribe's replay was lost, and so was a publication made just as
  // a page subscribed again after a server restart.
  function start(sinceOpt) {
    const clock = new FakeClock();
    const fetch = new FakeFetch();
    const c = new Switchboard('http://sb.test', { transports: ['sse'], storage: null, fetch: fetch.fn, EventSource: FakeEventSource, clock, random: () => 0, upgradeAfterMs: 0 });
    const got = [];
    const recoveries = [];
    const sub = c.subscribe('chat:a', { since: sinceOpt, onMessage: (m) => got.push(m.offset), onRecovered: (r) => recoveries.push(r) });
    c.connect();
    return { c, fetch, got, recoveries, sub, es: FakeEventSource.last };
  }

  test('a live publication held during the subscribe is delivered after the subscribed reply', async () => {
    const { c, fetch, got, sub, es } = start();
    es.emit(CONNECTED);
    await settle();
    const post = fetch.last('POST');
    assert.equal(JSON.parse(post.init.body).type, 'subscribe');
    // The server subscribed the stream and fanned a publication out before the POST's response came.
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 1, data: 'first' });
    fetch.answer(post, 200, { type: 'subscribed', id: JSON.parse(post.init.body).id, channel: 'chat:a', epoch: 'e', offset: 0 });
    await settle();
    assert.equal(sub.status, 'subscribed');
    es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset: 2, data: 'second' });
    await settle();
    assert.deepEqual(got, [1, 2]);
    c.disconnect();
  });

  test('the replay of a subscribe with since, held while it was in flight, is delivered in full', async () => {
    const { c, fetch, got, recoveries, es } = start({ epoch: 'e', offset: 2 });
    es.emit(CONNECTED);
    await settle();
    const post = fetch.last('POST');
    assert.deepEqual(JSON.parse(post.init.body).since, { epoch: 'e', offset: 2 });
    for (const offset of [3, 4, 5]) es.emit({ type: 'message', channel: 'chat:a', epoch: 'e', offset, data: offset });
    fetch.answer(post, 200, { type: 'subscribed', id: JSON.parse(post.init.body).id, channel: 'chat:a', epoch: 'e', offset: 5, recovered: true });
    await settle();
    assert.deepEqual(got, [3, 4, 5]);
    assert.deepEqual(recoveries.map((r) => [r.recovered, r.cause]), [[true, 'subscribe']]);
    c.disconnect();
  });

  test('a refused subscribe still fails the subscription; the held events of other channels flow', async () => {
    const { c, fetch, sub, es } = start();
    const errors = [];
    c.on('error', (e) => errors.push(e.code));
    es.emit(CONNECTED);
    await settle();
    const post = fetch.last('POST');
    fetch.answer(post, 200, { type: 'error', id: JSON.parse(post.init.body).id, code: 'permission_denied', message: 'no' });
    await settle();
    await assert.rejects(sub.ready, (e) => e.code === 'permission_denied');
    assert.equal(sub.status, 'closed');
    assert.deepEqual(errors, ['permission_denied']);
    c.disconnect();
  });
});

describe('negotiation and the upgrade back to WebSocket', () => {
  function make(opts = {}, remembered) {
    const clock = new FakeClock();
    const net = new FakeNet();
    const storage = new MemoryStorage();
    if (remembered) storage.setItem('switchboard.transport:https://chat.test', remembered);
    const events = [];
    const client = new Switchboard('https://chat.test', {
      clock, random: () => 0.5, storage, transportFactories: net.factories(), backoff: { minMs: 1000, maxMs: 1000 },
      upgradeAfterMs: 1000, upgradeMaxMs: 4000, ...opts,
    });
    for (const ev of ['connecting', 'connected', 'disconnected', 'error']) client.on(ev, (e) => events.push([ev, e]));
    return { clock, net, storage, client, events };
  }

  test('a WebSocket handshake refused (403) by a proxy passes to the next transport; with no other one it stops', async () => {
    const ctx = make();
    ctx.client.connect();
    ctx.net.last.drop(1006, 'Unexpected server response: 403');
    await settle();
    await ctx.clock.advance(0);
    assert.equal(ctx.net.last.name, 'sse');
    assert.equal(ctx.client.state, 'connecting');

    const only = make({ transports: ['websocket'] });
    only.client.connect();
    only.net.last.drop(1006, 'Unexpected server response: 403');
    await settle();
    assert.equal(only.client.state, 'disconnected');
  });

  test('on a fallback, WebSocket is probed (backing off while it fails); when it works the session moves over', async () => {
    const ctx = make();
    ctx.client.connect();
    ctx.net.last.drop(1006);           // websocket blocked
    await settle();
    await ctx.clock.advance(0);
    const sse = ctx.net.last;
    assert.equal(sse.name, 'sse');
    sse.handshake({ session: 's_9' });
    await settle();
    const got = [];
    const sub = ctx.client.subscribe('chat:a', { onMessage: (m) => got.push(m.offset) });
    sse.subscribed('chat:a', 'e', 0);
    await settle();
    sse.publication('chat:a', 'e', 1);

    // Probe 1 after 1 s fails; probe 2 after 2 s more.
    await ctx.clock.advance(1000);
    let probe = ctx.net.last;
    assert.equal(probe.name, 'websocket');
    assert.ok(probe.openCalled);
    probe.drop(1006);
    await settle();
    await ctx.clock.advance(1999);
    assert.equal(ctx.net.last, probe);
    await ctx.clock.advance(1);
    probe = ctx.net.last;
    assert.notEqual(probe, ctx.net.transports[2]);
    assert.equal(probe.name, 'websocket');

    // A request is in flight on sse: the probe waits for it before moving the session.
    const pub = ctx.client.publish('chat:a', 'x');
    const sent = sse.lastOfType('publish');
    probe.accept();
    await settle();
    assert.equal(probe.sentOfType('connect').length, 0, 'draining first');
    const queued = ctx.client.presence('chat:a');
    await settle();
    assert.equal(sse.sentOfType('presence').length, 0, 'new requests wait for the move');
    sse.receive({ type: 'published', id: sent.id, channel: 'chat:a', epoch: 'e', offset: 2 });
    await pub;
    const connect = probe.lastOfType('connect');
    assert.equal(connect.session, 's_9');
    // The takeover ends the sse session with 4004: expected, not a reason to stop.
    sse.receive({ type: 'disconnect', code: 4004, reason: 'session resumed by another connection', reconnect: false });
    sse.drop(4004, 'session resumed by another connection');
    probe.receive({ type: 'connected', id: connect.id, client: 'c_0_9', session: 's_9', resumed: true, ping_interval: 25, channels: [{ channel: 'chat:a', epoch: 'e', offset: 2, recovered: true }] });
    await settle();
    assert.ok(sse.closedBy, 'the sse transport is closed');
    assert.equal(ctx.client.transportName, 'websocket');
    assert.equal(ctx.client.state, 'connected');
    assert.equal(ctx.storage.getItem('switchboard.transport:https://chat.test'), 'websocket');
    assert.deepEqual(ctx.events.filter(([n]) => n === 'connected').map(([, e]) => [e.transport, e.resumed]), [['sse', false], ['websocket', true]]);
    assert.equal(ctx.events.filter(([n]) => n === 'disconnected').length, 1, 'only the blocked websocket attempt');
    // Queued requests go out on the WebSocket; replays there are deduplicated.
    const pres = probe.lastOfType('presence');
    assert.ok(pres);
    probe.receive({ type: 'presence', id: pres.id, channel: 'chat:a', count: 1, clients: [] });
    await queued;
    probe.publication('chat:a', 'e', 1);
    probe.publication('chat:a', 'e', 2);
    probe.publication('chat:a', 'e', 3);
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(sub.state, 'subscribed');
    // No more probes once on WebSocket.
    const n = ctx.net.transports.length;
    await ctx.clock.advance(20_000);          // under the heartbeat's 25 s
    assert.equal(ctx.net.transports.length, n);
  });

  test('a probe whose connect is refused or times out leaves the session where it is', async () => {
    const ctx = make({ transports: ['websocket', 'polling'], connectTimeoutMs: 500 }, 'polling');
    ctx.client.connect();
    const poll = ctx.net.last;
    assert.equal(poll.name, 'polling', 'remembered transport first');
    poll.handshake();
    await settle();
    await ctx.clock.advance(1000);
    const probe = ctx.net.last;
    probe.accept();
    await settle();
    probe.receive({ type: 'error', id: probe.lastOfType('connect').id, code: 'unavailable', message: 'x' });
    await settle();
    assert.ok(probe.closedBy);
    assert.equal(ctx.client.transportName, 'polling');
    await ctx.clock.advance(2000);
    const probe2 = ctx.net.last;
    assert.notEqual(probe2, probe);
    await ctx.clock.advance(500);             // never opens: the connect timeout ends it
    assert.ok(probe2.closedBy);
    assert.equal(ctx.client.state, 'connected');
    assert.equal(ctx.client.transportName, 'polling');
    assert.equal(ctx.storage.getItem('switchboard.transport:https://chat.test'), 'polling');
    ctx.client.disconnect();
  });
});
