import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { closePolicy, isAuthError, type DisconnectNotice } from './policy.js';
import { Subscription, type SubscriptionHost, type SubscriptionOptions } from './subscription.js';
import { resolveEventSource, resolveFetch } from './http.js';
import { pollingTransport } from './polling.js';
import { sseTransport } from './sse.js';
import {
  defaultStorage, endpoints, registeredTransport, TransportSelector, type ChannelPosition, type EventSourceLike,
  type FetchLike, type StorageLike, type Transport, type TransportFactory, type TransportHandlers, type TransportName,
  type WebSocketLike, TRANSPORT_ORDER,
} from './transport.js';
import type {
  ConnectedInfo, DisconnectedInfo, HistoryOptions, HistoryResult, Position, PresenceEvent, PresenceResult,
  PublishOptions, PublishResult, RecoveryInfo,
} from './types.js';
import { webSocketTransport } from './websocket.js';

/** Timers and time; injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface SwitchboardOptions {
  /** A connection token (JWT from your backend); sent as `?token=` on the WebSocket URL. */
  token?: string;
  /** Fetches a connection token: before the first connect when `token` is not given, after
   *  the server said it expired (close 4005, `invalid_token`), and before it expires
   *  (`expires_in`; sent with `refresh`). */
  getToken?: () => string | Promise<string>;
  /** The user id, taken as given only when the server verifies no tokens. */
  user?: string;
  /** Presence info (a JSON object ≤ 1 KiB). */
  info?: Record<string, unknown>;
  /** A label for this client (`connect.name`). */
  name?: string;
  /** A session id to resume (e.g. kept in sessionStorage across a page reload). */
  session?: string;
  /** A WebSocket implementation where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  WebSocket?: WebSocketLike;
  /** An EventSource implementation where there is no global one (Node: npm `eventsource`). */
  EventSource?: EventSourceLike;
  /** A fetch implementation (default: the global one; sse and polling POST and poll with it). */
  fetch?: FetchLike;
  /** The transports to try, in order. Default ['websocket', 'sse', 'polling'] (those with no
   *  implementation are skipped: sse without an EventSource, polling without fetch). */
  transports?: TransportName[];
  /** Transport implementations by name, over those registered with registerTransport(). */
  transportFactories?: Partial<Record<TransportName, TransportFactory>>;
  /** Reconnect delay: full jitter in [0, min(maxMs, minMs·2^attempt)]. Default {500, 30000}. */
  backoff?: Partial<BackoffOptions>;
  /** A request's reply must come within this (ms), counted from when the request is actually
   *  sent: time in the send queue (offline, reconnecting) does not count, and a request sent
   *  again after a reconnect gets the full time again. Default 10000. */
  requestTimeoutMs?: number;
  /** The transport must open and `connected` come within this (ms). Default 10000. */
  connectTimeoutMs?: number;
  /** The link is dead when nothing arrived for the ping interval plus this (ms). Default 10000. */
  pingTimeoutMs?: number;
  /** The heartbeat interval when the server announces none (`ping_interval: 0`). Default 25000. */
  pingIntervalMs?: number;
  /** Messages held while disconnected or while the transport's buffer is full; past it,
   *  requests are rejected with `queue_full`. Default 1000. */
  maxQueue?: number;
  /** Above this many bytes buffered in the transport, messages wait in the queue. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Acknowledgements are batched for this long (ms). Default 100. */
  ackDelayMs?: number;
  /** On a fallback transport (sse, polling), WebSocket is tried again in the background after
   *  this long (ms), then after twice as long each time it fails, up to `upgradeMaxMs`; when it
   *  works the session moves over to it. Default 30000; 0: never. */
  upgradeAfterMs?: number;
  /** The longest wait between two WebSocket probes (ms). Default 600000. */
  upgradeMaxMs?: number;
  /** Long-polling: how long a poll may wait on the server (seconds, 1–30). Default 25. */
  pollWaitSeconds?: number;
  /** Where the transport that worked is remembered per origin; null: nowhere. Default localStorage if any. */
  storage?: StorageLike | null;
  /** For tests: time and timers. */
  clock?: Clock;
  /** For tests: a random number in [0, 1) (backoff jitter). */
  random?: () => number;
}

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting';

export interface SwitchboardEvents {
  /** A connection attempt starts. */
  connecting(ev: { attempt: number; transport: TransportName }): void;
  /** The server answered `connected`; `resumed`: the session came back. */
  connected(ev: ConnectedInfo): void;
  /** A connection (or an attempt) ended; `reconnect` says whether the client tries again. */
  disconnected(ev: DisconnectedInfo): void;
  /** Something went wrong that no promise reports (a refused subscribe, a close not retried, …). */
  error(err: SwitchboardError): void;
  /** Every state change. */
  state(state: ConnectionState): void;
}

interface Pending {
  id: number;
  msg: Record<string, unknown>;
  resolve(reply: Record<string, unknown>): void;
  reject(err: SwitchboardError): void;
  timer: unknown;
  /** Safe to send again after a lost connection (reads, keyed publishes). */
  retry: boolean;
  /** Belongs to one connection only (subscribe/unsubscribe/refresh made by the client itself). */
  control: boolean;
  sent: boolean;
  /** Called with the server's reply (and the error an `error` reply makes) as it arrives,
   *  before the promise settles and before any message that follows the reply is handled. */
  onReply?: (reply: Record<string, unknown>, err: SwitchboardError | undefined) => void;
}

const DEFAULTS = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  pingTimeoutMs: 10_000,
  pingIntervalMs: 25_000,
  maxQueue: 1000,
  maxBufferedBytes: 1 << 20,
  ackDelayMs: 100,
  upgradeAfterMs: 30_000,
  upgradeMaxMs: 600_000,
};

/** `default:room` and `room` are one channel, which the server calls `room`. */
export function canonicalChannel(channel: string): string {
  if (channel.startsWith('default:')) {
    const rest = channel.slice('default:'.length);
    if (rest.length > 0 && !rest.includes(':')) return rest;
  }
  return channel;
}

/**
 * A Switchboard client: one logical connection that survives reconnects, with its
 * subscriptions. See README.md.
 */
export class Switchboard extends Emitter<SwitchboardEvents> implements SubscriptionHost {
  private readonly opts: SwitchboardOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoffOpts: BackoffOptions;
  private readonly ep: { baseUrl: string; wsUrl: string; origin: string };
  private readonly selector: TransportSelector;
  private readonly subs = new Map<string, Subscription>();
  private readonly pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  private nextId = 1;
  private _state: ConnectionState = 'disconnected';
  private transport: Transport | undefined;
  private transportOpened = false;
  private attempt = 0;
  private token: string | undefined;
  private needToken = false;
  private _session: string | undefined;
  private _client: string | undefined;
  private _connected: ConnectedInfo | undefined;
  private notice: DisconnectNotice | undefined;
  private connectId = 0;
  private retryTimer: unknown;
  private connectTimer: unknown;
  private heartbeatTimer: unknown;
  private refreshTimer: unknown;
  private flushTimer: unknown;
  private ackTimer: unknown;
  private lastReceived = 0;
  private pingSent = false;
  private heartbeatMs = 0;
  private generation = 0;
  private waiters: Array<{ resolve(info: ConnectedInfo): void; reject(err: SwitchboardError): void }> = [];
  // The upgrade back to WebSocket: a probe connection opened beside a fallback transport.
  private probe: Transport | undefined;
  private probeState: 'idle' | 'opening' | 'draining' | 'connecting' = 'idle';
  private probeTimer: unknown;
  private probeDeadline: unknown;
  private probeDelay = 0;
  private probeConnectId = 0;
  /** The transport being left ended while the probe's connect was on its way. */
  private oldEnded: string | undefined;

  constructor(url: string, options: SwitchboardOptions = {}) {
    super();
    this.opts = { ...options };
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.backoffOpts = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
    this.ep = endpoints(url);
    this.token = options.token;
    this._session = options.session;
    const storage = options.storage === null ? undefined : options.storage ?? defaultStorage();
    this.selector = new TransportSelector(options.transports ?? TRANSPORT_ORDER, (n) => !!this.factoryFor(n), this.ep.origin, storage);
  }

  // ---- public API -------------------------------------------------------------------------

  get state(): ConnectionState { return this._state; }
  /** The session id (after `connected`); keep it to resume after a page reload. */
  get session(): string | undefined { return this._session; }
  /** This connection's client id, while connected. */
  get clientId(): string | undefined { return this._client; }
  /** The transport in use (or being tried). */
  get transportName(): TransportName | undefined { return this.transport?.name ?? this.selector.current(); }
  /** The current subscriptions by channel. */
  get subscriptions(): ReadonlyMap<string, Subscription> { return this.subs; }
  /** Messages waiting in the send queue. */
  get queued(): number { return this.queue.length; }
  /** Whether a reconnect is scheduled (state `reconnecting`). */
  get reconnectScheduled(): boolean { return this.retryTimer !== undefined; }

  /**
   * Starts connecting (and reconnecting until disconnect() or a close that must not be
   * retried). Resolves at the next `connected`; rejects when the client stops before that.
   */
  connect(): Promise<ConnectedInfo> {
    const p = new Promise<ConnectedInfo>((resolve, reject) => {
      if (this._state === 'connected' && this._connected) { resolve(this._connected); return; }
      this.waiters.push({ resolve, reject });
    });
    p.catch(() => { /* handled by the caller, or reported through 'error' */ });
    if (this._state === 'disconnected') {
      this.attempt = 0;
      this.startAttempt();
    }
    return p;
  }

  /** Closes the connection and stops reconnecting. Subscriptions and the session are kept:
   *  connect() resumes them. Queued and waiting requests are rejected with `client_closed`. */
  disconnect(): void {
    if (this._state === 'disconnected') return;
    const wasLive = this._state === 'connecting' || this._state === 'connected';
    this.teardown(1000, 'client disconnect');
    this.failAll(new SwitchboardError('client_closed', 'disconnect() was called'));
    this.setState('disconnected');
    if (wasLive) this.emit('disconnected', { code: 1000, reason: 'client disconnect', reconnect: false });
    this.rejectWaiters(new SwitchboardError('client_closed', 'disconnect() was called'));
  }

  /** Subscribes to a channel (`namespace:name`); works offline too (sent once connected). */
  subscribe(channel: string, options: SubscriptionOptions = {}): Subscription {
    const name = canonicalChannel(channel);
    const existing = this.subs.get(name);
    if (existing && existing.state !== 'closed') {
      throw new SwitchboardError('already_subscribed', `already subscribed to ${name}`);
    }
    const sub = new Subscription(this, name, options);
    this.subs.set(name, sub);
    if (this._state === 'connected') this.sendSubscribe(sub, sub.pos ? 'subscribe' : undefined);
    return sub;
  }

  /** The subscription of a channel, if any. */
  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(canonicalChannel(channel));
  }

  /** Publishes `data` (any JSON value) to a channel; no subscription needed. */
  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    const msg: Record<string, unknown> = { type: 'publish', channel: canonicalChannel(channel), data: data === undefined ? null : data };
    if (opts.idempotencyKey) msg.idempotency_key = opts.idempotencyKey;
    return this.request(msg, { retry: !!opts.idempotencyKey }).then((r) => ({
      channel: String(r.channel), epoch: String(r.epoch ?? ''), offset: Number(r.offset ?? 0), duplicate: r.duplicate === true,
    }));
  }

  /** Who is subscribed to a channel (namespaces with `presence = true`). */
  presence(channel: string): Promise<PresenceResult> {
    return this.request({ type: 'presence', channel: canonicalChannel(channel) }, { retry: true }).then((r) => ({
      channel: String(r.channel), count: Number(r.count ?? 0), clients: (r.clients as PresenceResult['clients']) ?? [],
    }));
  }

  /** A channel's kept publications. */
  history(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult> {
    const msg: Record<string, unknown> = { type: 'history', channel: canonicalChannel(channel) };
    if (opts.since) msg.since = { epoch: opts.since.epoch, offset: opts.since.offset };
    if (opts.limit !== undefined) msg.limit = opts.limit;
    return this.request(msg, { retry: true }).then((r) => {
      const out: HistoryResult = {
        channel: String(r.channel), epoch: String(r.epoch ?? ''), offset: Number(r.offset ?? 0),
        publications: (r.publications as HistoryResult['publications']) ?? [],
      };
      if (typeof r.recovered === 'boolean') out.recovered = r.recovered;
      return out;
    });
  }

  /** A protocol-level round trip (`ping` → `pong`); resolves with the time it took (ms). */
  ping(): Promise<number> {
    const t0 = this.clock.now();
    return this.request({ type: 'ping' }, { retry: true }).then(() => this.clock.now() - t0);
  }

  /** @internal */
  _unsubscribe(sub: Subscription): Promise<void> {
    if (sub.state === 'closed') return Promise.resolve();
    const wasOnServer = sub.state !== 'pending';
    sub.state = 'closed';
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
    sub.rejectReady(new SwitchboardError('unsubscribed', `${sub.channel}: unsubscribed`));
    // Offline: nothing to send now; a resume that restores the channel is answered with an
    // unsubscribe (see onConnected).
    if (this._state !== 'connected' || !wasOnServer) return Promise.resolve();
    return this.request({ type: 'unsubscribe', channel: sub.channel }, { control: true })
      .then(() => undefined, (err: SwitchboardError) => {
        if (err.code === 'not_subscribed' || err.code === 'connection_lost' || err.code === 'client_closed') return;
        throw err;
      });
  }

  // ---- requests and the send queue --------------------------------------------------------

  private request(
    msg: Record<string, unknown>,
    o: { retry?: boolean; control?: boolean; onReply?: Pending['onReply'] } = {},
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (!o.control && this.queue.length >= (this.opts.maxQueue ?? DEFAULTS.maxQueue)) {
        reject(new SwitchboardError('queue_full', `send queue full (${this.queue.length} messages waiting)`));
        return;
      }
      const id = this.nextId++;
      const p: Pending = {
        id, msg: { ...msg, id }, resolve, reject, retry: !!o.retry, control: !!o.control, sent: false, timer: undefined,
        onReply: o.onReply,
      };
      this.pending.set(id, p);
      if (o.control) {
        // The client's own requests for this connection: sent at once, never queued.
        if (!this.sendNow(p.msg)) { this.settle(p); reject(new SwitchboardError('connection_lost', 'not connected')); return; }
        this.markSent(p);
        return;
      }
      this.queue.push(p);
      this.flush();
    });
  }

  private settle(p: Pending): void {
    if (p.timer !== undefined) { this.clock.clearTimeout(p.timer); p.timer = undefined; }
    this.pending.delete(p.id);
  }

  /**
   * The request went out on the transport: its reply must come within requestTimeoutMs from
   * now. Time spent in the queue (offline, reconnecting, transport buffer full) does not count:
   * a queued request waits for the connection, until disconnect() or a close not retried.
   */
  private markSent(p: Pending): void {
    p.sent = true;
    if (p.timer !== undefined) this.clock.clearTimeout(p.timer);
    const ms = this.opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    p.timer = this.clock.setTimeout(() => {
      p.timer = undefined;
      if (this.pending.get(p.id) !== p) return;
      this.pending.delete(p.id);
      const i = this.queue.indexOf(p);
      if (i >= 0) this.queue.splice(i, 1);
      p.reject(new SwitchboardError('timeout', `no reply to ${String(p.msg.type)} within ${ms} ms`));
    }, ms);
  }

  /** Sends what the queue holds while connected and the transport's buffer has room. */
  private flush(): void {
    if (this.flushTimer !== undefined) { this.clock.clearTimeout(this.flushTimer); this.flushTimer = undefined; }
    if (this._state !== 'connected' || !this.transport) return;
    // Moving to another transport: requests wait for it (see probeOpened).
    if (this.probeState === 'draining' || this.probeState === 'connecting') return;
    const limit = this.opts.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes;
    while (this.queue.length > 0) {
      if (this.transport.bufferedAmount() > limit) {
        // No 'drain' event in the WebSocket API: look again shortly.
        this.flushTimer = this.clock.setTimeout(() => { this.flushTimer = undefined; this.flush(); }, 20);
        return;
      }
      const p = this.queue.shift()!;
      if (!this.sendNow(p.msg)) { this.queue.unshift(p); return; }
      this.markSent(p);
    }
  }

  private sendNow(msg: Record<string, unknown>): boolean {
    if (!this.transport || !this.transportOpened) return false;
    try {
      this.transport.send(msg);
      return true;
    } catch {
      return false;
    }
  }

  /** The connection ended: requests in flight are re-queued if safe, else rejected. */
  private requeueInFlight(): void {
    const again: Pending[] = [];
    for (const p of [...this.pending.values()].sort((a, b) => a.id - b.id)) {
      if (!p.sent) continue;
      if (p.retry && !p.control) {
        // Sent again on the next connection; its reply deadline starts over then.
        p.sent = false;
        if (p.timer !== undefined) { this.clock.clearTimeout(p.timer); p.timer = undefined; }
        again.push(p);
      } else {
        this.settle(p);
        p.reject(new SwitchboardError('connection_lost',
          `the connection was lost before the reply to ${String(p.msg.type)}${p.msg.type === 'publish' ? ' (it may or may not have been published; use an idempotencyKey to make retries safe)' : ''}`));
      }
    }
    this.queue = [...again, ...this.queue];
  }

  private failAll(err: SwitchboardError): void {
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(err);
    }
    this.queue = [];
  }

  // ---- connection lifecycle ---------------------------------------------------------------

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  private factoryFor(name: TransportName): TransportFactory | undefined {
    const given = this.opts.transportFactories?.[name];
    if (given) return given;
    const registered = registeredTransport(name);
    if (registered) return registered;
    if (name === 'websocket') return webSocketTransport;
    // The HTTP transports need fetch, and SSE an EventSource (Node: pass one).
    if (name === 'sse') return resolveEventSource(this.opts.EventSource) && resolveFetch(this.opts.fetch) ? sseTransport : undefined;
    if (name === 'polling') return resolveFetch(this.opts.fetch) ? pollingTransport : undefined;
    return undefined;
  }

  /** The context a transport is made with. */
  private transportContext(handlers: TransportHandlers) {
    const connect: Record<string, unknown> = {};
    if (this.opts.user) connect.user = this.opts.user;
    if (this.opts.info) connect.info = this.opts.info;
    if (this.opts.name) connect.name = this.opts.name;
    if (this._session) connect.session = this._session;
    const positions: ChannelPosition[] = [];
    for (const sub of this.subs.values()) {
      if (sub.state !== 'closed' && sub.pos) positions.push({ channel: sub.channel, epoch: sub.pos.epoch, offset: sub.pos.offset });
    }
    return {
      baseUrl: this.ep.baseUrl, wsUrl: this.ep.wsUrl, token: this.token, WebSocket: this.opts.WebSocket,
      EventSource: this.opts.EventSource, fetch: this.opts.fetch, connect, positions, timers: this.clock,
      pingTimeoutMs: this.opts.pingTimeoutMs ?? DEFAULTS.pingTimeoutMs, pollWaitSeconds: this.opts.pollWaitSeconds,
      handlers,
    };
  }

  /** The connect request (user, info, name, session) with a fresh id. */
  private connectMessage(): Record<string, unknown> {
    const msg: Record<string, unknown> = { type: 'connect', id: this.nextId++ };
    if (this.opts.user) msg.user = this.opts.user;
    if (this.opts.info) msg.info = this.opts.info;
    if (this.opts.name) msg.name = this.opts.name;
    if (this._session) msg.session = this._session;
    return msg;
  }

  private async startAttempt(): Promise<void> {
    this.retryTimer = undefined;
    const gen = ++this.generation;
    const name = this.selector.current();
    if (!name) {
      this.stop(0, 'no usable transport', new SwitchboardError('no_transport', 'no transport can be used (transports option, registered implementations)'));
      return;
    }
    this.setState('connecting');
    this.notice = undefined;
    this.emit('connecting', { attempt: this.attempt, transport: name });
    if (this.opts.getToken && (this.needToken || this.token === undefined)) {
      try {
        this.token = await this.opts.getToken();
        this.needToken = false;
      } catch (err) {
        if (gen !== this.generation) return;
        this.emit('error', new SwitchboardError('token_unavailable', `getToken failed: ${(err as Error)?.message ?? err}`));
        this.endAttempt(1006, 'getToken failed', true);
        return;
      }
      if (gen !== this.generation) return;
    }
    const factory = this.factoryFor(name)!;
    this.transportOpened = false;
    let t: Transport;
    const handlers = {
      onOpen: () => { if (this.transport === t) this.onTransportOpen(); },
      onMessage: (m: Record<string, unknown>) => {
        if (this.transport !== t) return;
        // The probe's connect takes the session over: the 4004 that ends this one is expected.
        if (this.probeState === 'connecting' && m.type === 'disconnect') return;
        this.onMessage(m);
      },
      onClose: (code: number, reason: string, opened: boolean) => {
        if (this.transport !== t) return;
        if (this.probeState === 'connecting') { this.oldEnded = reason || `closed ${code}`; return; }
        this.endAttempt(code, reason, opened);
      },
      onError: (err: Error) => { if (this.transport === t) this.emit('error', new SwitchboardError('bad_message', err.message)); },
    };
    t = factory(this.transportContext(handlers));
    this.transport = t;
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = undefined;
      if (this.transport !== t) return;
      this.endAttempt(1006, `no connected reply within ${this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs} ms`, this.transportOpened, true);
    }, this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    t.open();
  }

  private onTransportOpen(): void {
    this.transportOpened = true;
    this.selector.opened();
    this.lastReceived = this.clock.now();
    const msg = this.connectMessage();
    this.connectId = msg.id as number;
    this.sendNow(msg);
  }

  private onMessage(m: Record<string, unknown>): void {
    this.lastReceived = this.clock.now();
    this.pingSent = false;
    const type = m.type;
    const id = m.id;
    if (id !== undefined && id === this.connectId && this._state === 'connecting') {
      if (type === 'connected') this.onConnected(m);
      else if (type === 'error') this.onConnectRefused(m);
      return;
    }
    if (typeof id === 'number' && this.pending.has(id) && type !== 'message') {
      const p = this.pending.get(id)!;
      this.settle(p);
      const err = type === 'error' ? new SwitchboardError(String(m.code ?? 'internal'), String(m.message ?? ''), { request: p.msg.type }) : undefined;
      if (p.onReply) this.call(() => p.onReply!(m, err));
      if (err) p.reject(err);
      else p.resolve(m);
      if (this.probeState === 'draining') this.probeDrain();
      return;
    }
    switch (type) {
      case 'message': this.onPublication(m); return;
      case 'join':
      case 'leave': {
        const sub = this.subs.get(String(m.channel));
        if (!sub || sub.state === 'closed') return;
        const ev: PresenceEvent = { channel: String(m.channel), client: String(m.client) };
        if (typeof m.user === 'string') ev.user = m.user;
        if (m.info && typeof m.info === 'object') ev.info = m.info as Record<string, unknown>;
        this.call(() => (type === 'join' ? sub.options.onJoin?.(ev) : sub.options.onLeave?.(ev)));
        return;
      }
      case 'disconnect':
        this.notice = { code: Number(m.code), reason: String(m.reason ?? ''), reconnect: m.reconnect !== false };
        if (typeof m.reconnect_after_ms === 'number' && m.reconnect_after_ms > 0) {
          this.notice.afterMs = Math.min(m.reconnect_after_ms, 60_000); // a bound on a bad value
        }
        return;
      case 'error':
        // Errors without a request to match: rate_limited and bad_frame carry no id.
        this.emit('error', new SwitchboardError(String(m.code ?? 'internal'), String(m.message ?? '')));
        return;
      default:
        return; // pong, acked, replies to timed-out requests
    }
  }

  private onConnectRefused(m: Record<string, unknown>): void {
    const code = String(m.code ?? 'internal');
    const err = new SwitchboardError(code, String(m.message ?? ''), { request: 'connect' });
    this.emit('error', err);
    if (isAuthError(code)) {
      if (this.opts.getToken) {
        this.needToken = true;
        this.endAttempt(4005, `connect refused: ${code}`, true, true);
      } else {
        this.stop(4005, `connect refused: ${code}`, err);
      }
      return;
    }
    this.endAttempt(1006, `connect refused: ${code}`, true, true);
  }

  private onConnected(m: Record<string, unknown>): void {
    if (this.connectTimer !== undefined) { this.clock.clearTimeout(this.connectTimer); this.connectTimer = undefined; }
    this.attempt = 0;
    this._session = String(m.session);
    this._client = String(m.client);
    const info: ConnectedInfo = {
      client: this._client, session: this._session, resumed: m.resumed === true,
      pingInterval: Number(m.ping_interval ?? 0), transport: this.transport!.name,
    };
    if (typeof m.user === 'string') info.user = m.user;
    if (typeof m.expires_in === 'number') info.expiresIn = m.expires_in;
    this._connected = info;
    this.setState('connected');

    // Subscriptions: restored by the resume, or subscribed again from their last position.
    const restored = new Map<string, Record<string, unknown>>();
    if (info.resumed && Array.isArray(m.channels)) {
      for (const c of m.channels as Array<Record<string, unknown>>) restored.set(String(c.channel), c);
    }
    for (const [channel, c] of restored) {
      const sub = this.subs.get(channel);
      if (!sub || sub.state === 'closed') {
        // Unsubscribed while offline: the session still had it.
        this.request({ type: 'unsubscribe', channel }, { control: true }).catch(() => {});
        continue;
      }
      const pos: Position = { epoch: String(c.epoch ?? ''), offset: Number(c.offset ?? 0) };
      this.markSubscribed(sub, pos, typeof c.recovered === 'boolean' ? c.recovered : undefined, sub.everSubscribed ? 'resume' : undefined, false);
    }
    for (const sub of this.subs.values()) {
      if (sub.state === 'closed' || restored.has(sub.channel)) continue;
      sub.state = 'pending';
      this.sendSubscribe(sub, sub.everSubscribed ? 'resubscribe' : (sub.pos ? 'subscribe' : undefined));
    }
    for (const sub of this.subs.values()) sub.ackSent = 0;

    this.startHeartbeat(info.pingInterval);
    this.scheduleRefresh(info.expiresIn);
    this.scheduleProbe();
    this.flush();
    this.emit('connected', info);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(info);
  }

  /** Ends the current attempt or connection and decides what comes next. */
  private endAttempt(code: number, reason: string, opened: boolean, closeTransport = false): void {
    const wasConnected = this._state === 'connected';
    // `closeTransport`: the client ends it (heartbeat, timeout, refused connect); otherwise the
    // transport ended by itself and closing it again does nothing.
    void closeTransport;
    this.teardown(code === 1000 ? 1000 : 4000, reason);
    this.requeueInFlight();

    // Node's `ws` tells the HTTP status of a refused handshake; browsers do not.
    const status = /Unexpected server response: (\d{3})/.exec(reason)?.[1];
    // A refusal other than 401 may come from a proxy that blocks this transport only (an
    // Upgrade refused with 403, say): with other transports to try, it is a failure to connect.
    const others = this.selector.order.length > 1;
    if (!opened && status && (status === '401' || !others)) {
      if (status === '401') {
        if (this.opts.getToken) { this.needToken = true; }
        else { this.stop(code, reason, new SwitchboardError('invalid_token', `handshake refused: ${reason}`)); return; }
      } else if (status === '403' || status === '400' || status === '404' || status === '426') {
        this.stop(code, reason, new SwitchboardError('closed', `handshake refused: ${reason}`, { code, reason }));
        return;
      }
    }

    const policy = opened || wasConnected
      ? closePolicy(code, this.notice, !!this.opts.getToken)
      : { reconnect: true, resume: true, newToken: false, why: reason };
    if (!policy.resume) this._session = undefined;
    if (policy.newToken) this.needToken = true;
    if (!policy.reconnect) {
      this.stop(code, reason || policy.why,
        new SwitchboardError('closed', `closed ${code}${reason ? ` (${reason})` : ''}: ${policy.why}; not reconnecting`, { code, reason }));
      return;
    }
    // Before it opened: try the next transport at once, back off once all failed.
    let delay: number;
    if (!opened && !wasConnected && !this.selector.failedBeforeOpen()) delay = 0;
    else delay = backoffDelay(this.attempt++, this.backoffOpts, this.random);
    // The server's own spread comes first (reconnect storms, docs/operations.md).
    if ((opened || wasConnected) && this.notice?.afterMs !== undefined) delay = Math.max(delay, this.notice.afterMs);
    this.setState('reconnecting');
    this.retryTimer = this.clock.setTimeout(() => { void this.startAttempt(); }, delay);
    this.emit('disconnected', { code, reason: reason || policy.why, reconnect: true, delayMs: delay });
  }

  /** Stops for good (until connect()). */
  private stop(code: number, reason: string, err: SwitchboardError): void {
    const wasLive = this._state === 'connecting' || this._state === 'connected';
    this.teardown(1000, reason);
    for (const p of this.queue) { this.settle(p); p.reject(new SwitchboardError('client_closed', `client stopped: ${err.message}`)); }
    this.queue = [];
    this.setState('disconnected');
    if (wasLive) this.emit('disconnected', { code, reason, reconnect: false });
    this.emit('error', err);
    this.rejectWaiters(err);
  }

  private rejectWaiters(err: SwitchboardError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** Closes the transport and clears every per-connection timer. */
  private teardown(code: number, reason: string): void {
    this.generation++;
    this.cancelProbe();
    for (const sub of this.subs.values()) if (sub.state !== 'closed') sub.state = 'pending';
    for (const k of ['retryTimer', 'connectTimer', 'heartbeatTimer', 'refreshTimer', 'flushTimer', 'ackTimer'] as const) {
      if (this[k] !== undefined) { this.clock.clearTimeout(this[k]); this[k] = undefined; }
    }
    const t = this.transport;
    this.transport = undefined;
    this.transportOpened = false;
    this._client = undefined;
    this._connected = undefined;
    if (t) t.close(code, reason);
  }

  // ---- the upgrade back to WebSocket -------------------------------------------------------
  //
  // Connected over sse or polling, the client opens a WebSocket in the background now and then.
  // When one opens: requests stop going out and those in flight are answered (draining), then
  // the probe sends `connect` resuming the session. That takes the session over from the HTTP
  // transport (the server ends it with 4004); the resume replays from where that transport's
  // connection started, duplicates are dropped by offset, so nothing is lost or doubled. Then
  // the probe is the transport, remembered for the origin, and `connected` is emitted again.

  private scheduleProbe(): void {
    const after = this.opts.upgradeAfterMs ?? DEFAULTS.upgradeAfterMs;
    const current = this.transport?.name;
    if (after <= 0 || !current || current === 'websocket' || !this.selector.order.includes('websocket')) return;
    if (this.probeTimer !== undefined || this.probe) return;
    if (this.probeDelay === 0) this.probeDelay = after;
    this.probeTimer = this.clock.setTimeout(() => { this.probeTimer = undefined; this.startProbe(); }, this.probeDelay);
  }

  private startProbe(): void {
    if (this._state !== 'connected' || this.probe) return;
    const factory = this.factoryFor('websocket');
    if (!factory) return;
    let t: Transport;
    const handlers: TransportHandlers = {
      onOpen: () => { if (this.probe === t) this.probeOpened(); },
      onMessage: (m) => {
        if (this.probe === t) this.probeMessage(m);
        else if (this.transport === t) this.onMessage(m);
      },
      onClose: (code, reason, opened) => {
        if (this.probe === t) this.probeFailed(`WebSocket probe closed ${code}${reason ? ` (${reason})` : ''}`);
        else if (this.transport === t) this.endAttempt(code, reason, opened);
      },
      onError: (err) => {
        if (this.transport === t) this.emit('error', new SwitchboardError('bad_message', err.message));
      },
    };
    t = factory(this.transportContext(handlers));
    this.probe = t;
    this.probeState = 'opening';
    const ms = this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.probeDeadline = this.clock.setTimeout(() => {
      this.probeDeadline = undefined;
      this.probeFailed(`WebSocket probe: no connected within ${ms} ms`);
    }, ms);
    t.open();
  }

  /** WebSocket works: let the requests in flight on the current transport finish first. */
  private probeOpened(): void {
    this.probeState = 'draining';
    this.probeDrain();
  }

  private probeDrain(): void {
    if (this.probeState !== 'draining' || !this.probe) return;
    for (const p of this.pending.values()) if (p.sent) return;
    this.probeState = 'connecting';
    const msg = this.connectMessage();
    this.probeConnectId = msg.id as number;
    try {
      this.probe.send(msg);
    } catch (err) {
      this.probeFailed(`WebSocket probe: ${(err as Error).message}`);
    }
  }

  private probeMessage(m: Record<string, unknown>): void {
    if (m.id === undefined || m.id !== this.probeConnectId || this.probeState !== 'connecting') return;
    if (m.type !== 'connected') {
      this.probeFailed(`WebSocket probe: connect refused (${String(m.code ?? m.type)})`);
      return;
    }
    // The session is the probe's now: the old transport is closed without being heard again.
    const probe = this.probe!;
    const old = this.transport;
    this.clearProbeTimers();
    this.probe = undefined;
    this.probeState = 'idle';
    this.probeDelay = 0;
    this.oldEnded = undefined;
    this.notice = undefined;
    this.generation++;
    for (const k of ['heartbeatTimer', 'refreshTimer', 'flushTimer'] as const) {
      if (this[k] !== undefined) { this.clock.clearTimeout(this[k]); this[k] = undefined; }
    }
    this.transport = probe;
    this.transportOpened = true;
    old?.close(1000, 'moved to WebSocket');
    this.selector.switchTo('websocket');
    this.requeueInFlight();
    this.lastReceived = this.clock.now();
    this.onConnected(m);
  }

  private probeFailed(why: string): void {
    if (!this.probe && this.probeState === 'idle') return;
    const t = this.probe;
    const wasDraining = this.probeState === 'draining' || this.probeState === 'connecting';
    this.clearProbeTimers();
    this.probe = undefined;
    this.probeState = 'idle';
    t?.close(1000, why);
    const max = this.opts.upgradeMaxMs ?? DEFAULTS.upgradeMaxMs;
    this.probeDelay = Math.min(max, Math.max(this.probeDelay, 1) * 2);
    const oldEnded = this.oldEnded;
    this.oldEnded = undefined;
    if (oldEnded !== undefined) {
      // The session may have moved to the failed probe: resume it on a new connection.
      this.endAttempt(1006, `${oldEnded} (while moving to WebSocket: ${why})`, true);
      return;
    }
    if (this._state === 'connected') {
      this.scheduleProbe();
      if (wasDraining) this.flush();
    }
  }

  private clearProbeTimers(): void {
    for (const k of ['probeTimer', 'probeDeadline'] as const) {
      if (this[k] !== undefined) { this.clock.clearTimeout(this[k]); this[k] = undefined; }
    }
  }

  private cancelProbe(): void {
    this.clearProbeTimers();
    const t = this.probe;
    this.probe = undefined;
    this.probeState = 'idle';
    this.oldEnded = undefined;
    t?.close(1000, 'connection ended');
  }

  // ---- heartbeat and token refresh --------------------------------------------------------

  private startHeartbeat(pingIntervalS: number): void {
    this.heartbeatMs = pingIntervalS > 0 ? pingIntervalS * 1000 : (this.opts.pingIntervalMs ?? DEFAULTS.pingIntervalMs);
    this.pingSent = false;
    this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    const dead = this.heartbeatMs + (this.opts.pingTimeoutMs ?? DEFAULTS.pingTimeoutMs);
    const now = this.clock.now();
    const silent = now - this.lastReceived;
    const next = silent < this.heartbeatMs ? this.heartbeatMs - silent : dead - silent;
    this.heartbeatTimer = this.clock.setTimeout(() => this.heartbeat(), Math.max(1, next));
  }

  private heartbeat(): void {
    this.heartbeatTimer = undefined;
    if (this._state !== 'connected') return;
    const silent = this.clock.now() - this.lastReceived;
    if (silent >= this.heartbeatMs + (this.opts.pingTimeoutMs ?? DEFAULTS.pingTimeoutMs)) {
      this.endAttempt(1006, `no data from the server for ${silent} ms (heartbeat)`, true, true);
      return;
    }
    if (silent >= this.heartbeatMs && !this.pingSent) {
      // The server's WebSocket pings are invisible in browsers: ask for a `pong` instead.
      this.pingSent = true;
      this.sendNow({ type: 'ping' });
    }
    this.scheduleHeartbeat();
  }

  private scheduleRefresh(expiresIn: number | undefined): void {
    if (this.refreshTimer !== undefined) { this.clock.clearTimeout(this.refreshTimer); this.refreshTimer = undefined; }
    if (expiresIn === undefined || !this.opts.getToken) return;
    // Refresh at 80% of the remaining lifetime, and at least 5 s before.
    const ms = Math.max(0, Math.min(expiresIn * 800, expiresIn * 1000 - 5000));
    this.refreshTimer = this.clock.setTimeout(() => { this.refreshTimer = undefined; void this.refreshToken(); }, ms);
  }

  private async refreshToken(): Promise<void> {
    try {
      const token = await this.opts.getToken!();
      this.token = token;
      const r = await this.request({ type: 'refresh', token }, { control: true });
      this.scheduleRefresh(typeof r.expires_in === 'number' ? r.expires_in : undefined);
    } catch (err) {
      if (err instanceof SwitchboardError && (err.code === 'connection_lost' || err.code === 'client_closed')) return;
      this.emit('error', err instanceof SwitchboardError ? err : new SwitchboardError('token_unavailable', String((err as Error)?.message ?? err)));
    }
  }

  // ---- subscriptions ----------------------------------------------------------------------

  private async sendSubscribe(sub: Subscription, cause: RecoveryInfo['cause'] | undefined): Promise<void> {
    sub.state = 'subscribing';
    const msg: Record<string, unknown> = { type: 'subscribe', channel: sub.channel };
    const since = sub.pos;
    if (since) msg.since = { epoch: since.epoch, offset: since.offset };
    const gen = this.generation;
    if (sub.options.token !== undefined) {
      try {
        msg.token = typeof sub.options.token === 'function' ? await sub.options.token() : sub.options.token;
      } catch (err) {
        this.subscribeFailed(sub, new SwitchboardError('token_unavailable', `subscribe token for ${sub.channel}: ${(err as Error)?.message ?? err}`));
        return;
      }
      if (gen !== this.generation || sub.state !== 'subscribing') return;
    }
    // The reply is handled as it arrives, not after an `await`: the channel's publications that
    // follow it (the replay, live ones) may come in the same turn — the HTTP transports hand a
    // subscribe's reply over together with the stream events held while it was in flight — and
    // a publication for a subscription not yet `subscribed` is dropped.
    let answered = false;
    const onReply = (r: Record<string, unknown>, err: SwitchboardError | undefined): void => {
      answered = true;
      if (sub.state !== 'subscribing' || gen !== this.generation) return;
      if (err) { this.subscribeError(sub, gen, cause, err); return; }
      const pos: Position = { epoch: String(r.epoch ?? ''), offset: Number(r.offset ?? 0) };
      const recovered = typeof r.recovered === 'boolean' ? r.recovered : undefined;
      this.markSubscribed(sub, pos, recovered, since ? cause : undefined, !since || pos.epoch !== since.epoch);
    };
    try {
      await this.request(msg, { control: true, onReply });
    } catch (e) {
      // No reply (timeout, the connection ended): a reply was handled by onReply.
      if (answered || sub.state !== 'subscribing' || gen !== this.generation) return;
      this.subscribeError(sub, gen, cause, e as SwitchboardError);
    }
  }

  /** A subscribe was refused, or got no reply: try again, give up, or leave it to the reconnect. */
  private subscribeError(sub: Subscription, gen: number, cause: RecoveryInfo['cause'] | undefined, err: SwitchboardError): void {
    if (err.code === 'connection_lost' || err.code === 'client_closed') return; // the reconnect subscribes again
    if (err.code === 'already_subscribed') { this.markSubscribed(sub, sub.pos ?? { epoch: '', offset: 0 }, undefined, undefined, false); return; }
    if (err.code === 'timeout' || err.code === 'unavailable' || err.code === 'rate_limited' || err.code === 'internal') {
      // Transient: try again on this connection after a backoff delay.
      sub.state = 'pending';
      this.clock.setTimeout(() => {
        if (sub.state === 'pending' && this._state === 'connected' && gen === this.generation) void this.sendSubscribe(sub, cause);
      }, backoffDelay(1, this.backoffOpts, this.random));
      this.emit('error', err);
      return;
    }
    this.subscribeFailed(sub, err);
  }

  private subscribeFailed(sub: Subscription, err: SwitchboardError): void {
    sub.state = 'closed';
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
    sub.rejectReady(err);
    if (sub.options.onError) this.call(() => sub.options.onError!(err));
    else this.emit('error', err);
  }

  /**
   * The channel is live at `pos` (the server's current position). `takePos`: the delivered
   * position starts there (no recovery, or the epoch changed); otherwise the client's own
   * position stays, and what follows it is on its way.
   */
  private markSubscribed(sub: Subscription, pos: Position, recovered: boolean | undefined, cause: RecoveryInfo['cause'] | undefined, takePos: boolean): void {
    sub.state = 'subscribed';
    if (takePos || !sub.pos) sub.pos = { ...pos };
    const first = !sub.everSubscribed;
    sub.everSubscribed = true;
    const info = { channel: sub.channel, epoch: pos.epoch, offset: pos.offset, ...(recovered !== undefined ? { recovered } : {}) };
    if (first) sub.resolveReady(info);
    if (sub.options.onSubscribed) this.call(() => sub.options.onSubscribed!(info));
    if (cause && recovered !== undefined && sub.options.onRecovered) {
      this.call(() => sub.options.onRecovered!({ recovered, cause, epoch: pos.epoch, offset: pos.offset }));
    }
  }

  private onPublication(m: Record<string, unknown>): void {
    const sub = this.subs.get(String(m.channel));
    if (!sub || sub.state !== 'subscribed') return; // replays follow the (re)subscribe's reply
    const epoch = String(m.epoch ?? '');
    const offset = Number(m.offset);
    if (m.gap === true && sub.pos) {
      // Publications before this one were not sent: subscribe again from the last one delivered.
      void this.resync(sub);
      return;
    }
    if (sub.pos && sub.pos.epoch === epoch && offset <= sub.pos.offset) {
      // Seen already (a resume or at-least-once redelivery): drop it, but ack so the session lets go.
      this.scheduleAck(sub, sub.pos.offset);
      return;
    }
    const epochChanged = !!sub.pos && sub.pos.epoch !== epoch && sub.pos.epoch !== '';
    sub.pos = { epoch, offset };
    if (epochChanged || m.gap === true) {
      this.call(() => sub.options.onRecovered?.({ recovered: false, cause: 'gap', epoch, offset }));
    }
    this.call(() => sub.options.onMessage?.({ channel: sub.channel, epoch, offset, data: m.data }));
    this.scheduleAck(sub, offset);
  }

  private async resync(sub: Subscription): Promise<void> {
    sub.state = 'resyncing';
    const gen = this.generation;
    try {
      await this.request({ type: 'unsubscribe', channel: sub.channel }, { control: true });
    } catch (e) {
      const err = e as SwitchboardError;
      if (err.code === 'connection_lost' || err.code === 'client_closed' || gen !== this.generation) return;
      // not_subscribed is fine: subscribing is what matters.
    }
    if (sub.state !== 'resyncing' || gen !== this.generation) return;
    await this.sendSubscribe(sub, 'gap');
  }

  private scheduleAck(sub: Subscription, offset: number): void {
    if (sub.options.ack === false) return;
    if (offset > sub.ackTo || sub.ackTo > (sub.pos?.offset ?? 0)) sub.ackTo = offset;
    if (this.ackTimer !== undefined) return;
    this.ackTimer = this.clock.setTimeout(() => {
      this.ackTimer = undefined;
      if (this._state !== 'connected') return;
      for (const s of this.subs.values()) {
        if (s.state === 'closed' || s.ackTo === s.ackSent || s.ackTo === 0) continue;
        if (this.sendNow({ type: 'ack', channel: s.channel, offset: s.ackTo })) s.ackSent = s.ackTo;
      }
    }, this.opts.ackDelayMs ?? DEFAULTS.ackDelayMs);
  }

  /** Runs an app callback; a throw is reported without breaking the client. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      setTimeout(() => { throw err; }, 0);
    }
  }
}
