/**
 * What the HTTP transports (SSE: sse.ts, long-polling: polling.ts) share (protocol.md, "Server-
 * Sent Events and long-polling"):
 * - The opening request (GET /sse, GET /poll) connects: it carries the `connect` fields and the
 *   session to resume, with each channel's last delivered position as `lastEventId`, so the
 *   server recovers every channel from exactly where this client stopped. The server's first
 *   event (`connected`, or the `error` refusing the connect) opens the transport; the client's
 *   `connect` that follows is not sent anywhere: it is answered with that event (its `id` put
 *   in), so the client sees what it sees over a WebSocket.
 * - Every other request is POSTed (`?session=S`), one at a time, in order (as a WebSocket keeps
 *   them); the reply in the response body is handed to the client as if it came on the socket.
 * - A request's reply and the events it makes the server send travel on different HTTP
 *   connections. While a `subscribe` is in flight, events from the stream wait: its replay must
 *   reach the client after the `subscribed` reply, as on a WebSocket.
 * - Endings map onto protocol.md's close codes: a `disconnect` event's code, else 1006.
 */
import type {
  ChannelPosition, ConnectParams, EventSourceLike, FetchLike, Timers, Transport, TransportContext,
  TransportHandlers, TransportName,
} from './transport.js';

/** The session named on an opening request with no session to resume. The server wants a
 *  channel or a session on it, and an unknown session is a new one (`resumed: false`). */
export const NEW_SESSION = 'new';

export function resolveFetch(given?: FetchLike): FetchLike | undefined {
  if (given) return given;
  const g = (globalThis as any).fetch as FetchLike | undefined;
  return typeof g === 'function' ? g.bind(globalThis) as FetchLike : undefined;
}

export function resolveEventSource(given?: EventSourceLike): EventSourceLike | undefined {
  if (given) return given;
  const g = (globalThis as any).EventSource as EventSourceLike | undefined;
  return typeof g === 'function' ? g : undefined;
}

/** The event id protocol.md defines: `<session>|<channel>!<epoch>!<offset>|…`. */
export function eventId(session: string, positions: readonly ChannelPosition[]): string {
  let id = session;
  for (const p of [...positions].sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0))) {
    if (p.channel.includes('|') || p.channel.includes('!')) continue;
    id += `|${p.channel}!${p.epoch}!${p.offset}`;
  }
  return id;
}

/** `base` + `path` with `params` added to the base's own query. */
export function endpointUrl(base: string, path: string, params: Array<[string, string]>): string {
  const u = new URL(base);
  u.pathname = u.pathname.replace(/\/+$/, '') + path;
  for (const [k, v] of params) u.searchParams.append(k, v);
  return u.toString();
}

/** The opening request's parameters: the connect fields, the token, where to resume from. */
export function openParams(connect: ConnectParams | undefined, positions: readonly ChannelPosition[] | undefined, token: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const c = connect ?? {};
  if (c.session && positions && positions.length > 0) out.push(['lastEventId', eventId(c.session, positions)]);
  else out.push(['session', c.session || NEW_SESSION]);
  if (c.user) out.push(['user', c.user]);
  if (c.info) out.push(['info', JSON.stringify(c.info)]);
  if (token) out.push(['token', token]);
  return out;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

function asObject(text: string): Record<string, unknown> | undefined {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return undefined; }
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
}

interface Post {
  msg: Record<string, unknown>;
  body: string;
  abort?: AbortController;
}

/**
 * The shared state machine. Subclasses run the event stream (open(), stopStream()) and report
 * through gotFirst(), streamEvent() and finish().
 */
export abstract class HttpTransport implements Transport {
  abstract readonly name: TransportName;
  /** '/sse' or '/poll'. */
  protected abstract readonly path: string;
  protected readonly h: TransportHandlers;
  protected readonly timers: Timers;
  protected readonly fetchFn: FetchLike | undefined;
  protected token: string | undefined;
  /** The session the server connected (from the first event). */
  protected session: string | undefined;
  protected opened = false;
  /** close() was called or onClose was reported: nothing more goes to the client. */
  protected done = false;
  /** finish() was called: what is ready is delivered, then onClose. */
  protected ending: { code: number; reason: string } | undefined;
  private first: Record<string, unknown> | undefined;
  private connectAnswered = false;
  private readonly out: Array<Record<string, unknown>> = [];
  private held: Array<Record<string, unknown>> = [];
  private readonly posts: Post[] = [];
  private inflight: Post | undefined;
  private queuedBytes = 0;
  private pumpScheduled = false;

  constructor(protected readonly ctx: TransportContext) {
    this.h = ctx.handlers;
    this.timers = ctx.timers ?? realTimers;
    this.fetchFn = resolveFetch(ctx.fetch);
    this.token = ctx.token;
  }

  abstract open(): void;
  /** Stops the stream (or the poll loop): no more events from it. */
  protected abstract stopStream(): void;

  // ---- Transport --------------------------------------------------------------------------

  send(msg: Record<string, unknown>): void {
    if (this.done || this.ending) throw new Error('transport closed');
    if (msg.type === 'connect') {
      // Connected by the opening request: answer with what it got.
      if (!this.first) throw new Error('transport not open');
      if (this.connectAnswered) return;
      this.connectAnswered = true;
      const reply = { ...this.first };
      if (msg.id !== undefined) reply.id = msg.id;
      this.out.unshift(reply);
      this.schedulePump();
      return;
    }
    // A refresh's token is the one the POSTs carry from now on (the request itself included:
    // the old one may have expired).
    if (msg.type === 'refresh' && typeof msg.token === 'string') this.token = msg.token;
    const body = JSON.stringify(msg);
    this.posts.push({ msg, body });
    this.queuedBytes += body.length;
    this.nextPost();
  }

  bufferedAmount(): number {
    return this.queuedBytes;
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.shutdown();
  }

  // ---- for the subclasses -----------------------------------------------------------------

  /** The server's first event: `connected`, or the `error` refusing the connect. */
  protected gotFirst(ev: Record<string, unknown>): void {
    if (this.done || this.ending || this.first) return;
    this.first = ev;
    this.opened = true;
    if (ev.type === 'connected' && typeof ev.session === 'string') this.session = ev.session;
    this.h.onOpen();
  }

  /** An event from the server, in the order it was sent. */
  protected streamEvent(ev: Record<string, unknown>): void {
    if (this.done || this.ending) return;
    if (this.inflight?.msg.type === 'subscribe') {
      this.held.push(ev);
      return;
    }
    this.out.push(ev);
    this.schedulePump();
  }

  /** The transport ended: what is ready is delivered first, then onClose(code, reason). */
  protected finish(code: number, reason: string): void {
    if (this.done || this.ending) return;
    this.ending = { code, reason };
    this.held = [];
    this.shutdown();
    this.schedulePump();
  }

  /** Ends before anything opened (asynchronously, like any failure to connect). */
  protected failSoon(reason: string): void {
    this.timers.setTimeout(() => this.finish(1006, reason), 0);
  }

  protected report(message: string): void {
    if (!this.done) this.h.onError?.(new Error(message));
  }

  protected parse(text: string): Record<string, unknown> | undefined {
    const m = asObject(text);
    if (!m) this.report(`${this.name}: a message from the server is not a JSON object: ${text.slice(0, 100)}`);
    return m;
  }

  /** Every header a request to the server carries. */
  protected headers(): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  // ---- internals --------------------------------------------------------------------------

  private shutdown(): void {
    this.stopStream();
    const p = this.inflight;
    this.inflight = undefined;
    p?.abort?.abort();
    this.posts.length = 0;
    this.queuedBytes = 0;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.done) return;
    this.pumpScheduled = true;
    queueMicrotask(() => { this.pumpScheduled = false; this.pump(); });
  }

  /** Hands the ready events to the client, in order; then the ending, if any. */
  private pump(): void {
    if (this.connectAnswered || !this.first) {
      while (this.out.length > 0 && !this.done) {
        const m = this.out.shift()!;
        this.h.onMessage(m);
      }
    }
    if (this.ending && !this.done) {
      this.done = true;
      this.h.onClose(this.ending.code, this.ending.reason, this.opened);
    }
  }

  private nextPost(): void {
    if (this.inflight || this.done || this.ending || this.posts.length === 0) return;
    const fetchFn = this.fetchFn;
    if (!fetchFn || !this.session) {
      this.finish(1006, `${this.name}: cannot send requests (no fetch, or no session)`);
      return;
    }
    const p = this.posts.shift()!;
    this.queuedBytes -= p.body.length;
    p.abort = typeof AbortController === 'function' ? new AbortController() : undefined;
    this.inflight = p;
    const url = endpointUrl(this.ctx.baseUrl, this.path, [['session', this.session]]);
    fetchFn(url, {
      method: 'POST',
      // text/plain: a "simple" request, no CORS preflight for it.
      headers: { 'Content-Type': 'text/plain;charset=UTF-8', ...this.headers() },
      body: p.body,
      cache: 'no-store',
      ...(p.abort ? { signal: p.abort.signal } : {}),
    }).then(async (res) => {
      const text = await res.text();
      this.postDone(p, res.status, text);
    }, (err: unknown) => {
      if (this.inflight !== p || this.done || this.ending) return;
      this.finish(1006, `${this.name}: POST failed: ${(err as Error)?.message ?? err}`);
    });
  }

  private postDone(p: Post, status: number, text: string): void {
    if (this.inflight !== p || this.done || this.ending) return;
    if (status === 404 || status === 410) {
      // The session is no longer held here (its stream ended, a takeover, another node).
      this.finish(1006, `${this.name}: the server does not hold the session any more (HTTP ${status})`);
      return;
    }
    const replies: Array<Record<string, unknown>> = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const m = this.parse(line);
      if (m) replies.push(m);
    }
    if (status !== 200) {
      // A refusal with the protocol's error body (401, 403, 429, …) answers the request.
      const err = replies.find((m) => m.type === 'error');
      if (!err) {
        this.finish(1006, `${this.name}: POST answered HTTP ${status}`);
        return;
      }
      replies.length = 0;
      replies.push(p.msg.id !== undefined ? { ...err, id: p.msg.id } : err);
    }
    this.inflight = undefined;
    this.out.push(...replies, ...this.held);
    this.held = [];
    this.schedulePump();
    this.nextPost();
  }
}
