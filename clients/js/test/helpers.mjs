// Test doubles for the client's unit tests: a manual clock, a seeded random, and a fake
// network whose transports the test opens, feeds and closes by hand.
export class FakeClock {
  constructor() { this.t = 1_000_000; this.timers = new Map(); this.seq = 0; }
  now() { return this.t; }
  setTimeout(fn, ms) { const id = ++this.seq; this.timers.set(id, { at: this.t + Math.max(0, ms), fn, id }); return id; }
  clearTimeout(id) { this.timers.delete(id); }
  /** Runs every timer due within `ms`, in time order, moving the clock along. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next;
      for (const tm of this.timers.values()) if (tm.at <= end && (!next || tm.at < next.at || (tm.at === next.at && tm.id < next.id))) next = tm;
      if (!next) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
  /** Delays of the pending timers. */
  pendingDelays() { return [...this.timers.values()].map((tm) => tm.at - this.t); }
}

/** Lets promise callbacks run. */
export async function settle() {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
}

export function seqRandom(values) {
  let i = 0;
  return () => values[i++ % values.length];
}

export class FakeNet {
  constructor() { this.transports = []; }
  factory(name) {
    return (ctx) => {
      const t = new FakeTransport(name, ctx);
      this.transports.push(t);
      return t;
    };
  }
  factories(names = ['websocket', 'sse', 'polling']) {
    return Object.fromEntries(names.map((n) => [n, this.factory(n)]));
  }
  get last() { return this.transports[this.transports.length - 1]; }
}

export class FakeTransport {
  constructor(name, ctx) {
    this.name = name; this.ctx = ctx; this.sent = []; this.buffered = 0;
    this.openCalled = false; this.isOpen = false; this.closedBy = undefined;
  }
  open() { this.openCalled = true; }
  send(msg) { if (this.closedBy) throw new Error('closed'); this.sent.push(structuredClone(msg)); }
  bufferedAmount() { return this.buffered; }
  close(code, reason) { this.closedBy = { code, reason }; }
  // test side
  accept() { this.isOpen = true; this.ctx.handlers.onOpen(); }
  receive(msg) { this.ctx.handlers.onMessage(msg); }
  drop(code = 1006, reason = '') { this.ctx.handlers.onClose(code, reason, this.isOpen); }
  sentOfType(type) { return this.sent.filter((m) => m.type === type); }
  lastOfType(type) { const l = this.sentOfType(type); return l[l.length - 1]; }
  /** Opens and answers the connect. */
  handshake(extra = {}) {
    this.accept();
    const c = this.lastOfType('connect');
    this.receive({ type: 'connected', id: c.id, client: 'c_0_1', session: extra.session ?? 's_1', resumed: false, ping_interval: 25, ...extra });
    return c;
  }
  /** Answers the last subscribe to a channel. */
  subscribed(channel, epoch, offset, extra = {}) {
    const s = this.sent.filter((m) => m.type === 'subscribe' && m.channel === channel).pop();
    if (!s) throw new Error(`no subscribe for ${channel} in ${JSON.stringify(this.sent)}`);
    this.receive({ type: 'subscribed', id: s.id, channel, epoch, offset, ...extra });
    return s;
  }
  publication(channel, epoch, offset, data = offset, extra = {}) {
    this.receive({ type: 'message', channel, epoch, offset, data, ...extra });
  }
}

export class MemoryStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
}
