import { endpointUrl, HttpTransport, openParams } from './http.js';
import type { Transport, TransportContext, TransportFactory } from './transport.js';

interface Batch {
  seq: number;
  id: string;
  events: Array<Record<string, unknown>>;
}

/**
 * The long-polling transport: `GET {base}/poll?…` opens (or resumes) the session and answers
 * with the first batch; then `GET /poll?session=S&ack=N&wait=W` in a loop, each answer a batch
 * of events delivered in order; requests are POSTed (http.ts). A poll that fails is asked
 * again once with the same `ack` (the server sends the same batch again: nothing lost, nothing
 * twice); a second failure, or 410 (the session is no longer polled here), ends the transport
 * and the client reopens with its session and positions.
 */
class PollingTransport extends HttpTransport {
  readonly name = 'polling' as const;
  protected readonly path = '/poll';
  private ack = 0;
  private failures = 0;
  private abort: AbortController | undefined;
  private timer: unknown;
  private readonly waitS = Math.max(1, Math.min(30, Math.floor(this.ctx.pollWaitSeconds ?? 25)));
  /** The last batch's id: where the session stands (protocol.md's event id). */
  lastEventId = '';

  open(): void {
    if (!this.fetchFn) {
      this.failSoon('polling: no fetch implementation');
      return;
    }
    const url = endpointUrl(this.ctx.baseUrl, this.path, openParams(this.ctx.connect, this.ctx.positions, this.token));
    this.get(url, 0, (status, text) => {
      const body = text.trim() === '' ? undefined : this.parse(text);
      if (status === 401) { this.finish(1006, 'Unexpected server response: 401'); return; }
      if (status === 403 && body?.type === 'error') {
        this.gotFirst(body); // the connect was refused: the client is told so
        return;
      }
      if (status !== 200 || !body) { this.finish(1006, `polling: HTTP ${status} on the opening request`); return; }
      const batch = body as unknown as Batch;
      const events = Array.isArray(batch.events) ? batch.events : [];
      const first = events[0];
      if (!first || (first.type !== 'connected' && first.type !== 'error')) {
        this.finish(1006, 'polling: the first batch does not start with connected');
        return;
      }
      this.gotFirst(first);
      if (first.type !== 'connected') return;
      this.take(batch, 1);
      this.poll();
    }, (err) => this.finish(1006, `polling: the opening request failed: ${err}`));
  }

  protected stopStream(): void {
    if (this.timer !== undefined) { this.timers.clearTimeout(this.timer); this.timer = undefined; }
    const a = this.abort;
    this.abort = undefined;
    a?.abort();
  }

  /** One batch's events, in order (from `from`). False: it ended the transport. */
  private take(batch: Batch, from = 0): boolean {
    if (typeof batch.seq === 'number' && batch.seq > 0) this.ack = batch.seq;
    if (typeof batch.id === 'string') this.lastEventId = batch.id;
    const events = Array.isArray(batch.events) ? batch.events : [];
    for (let i = from; i < events.length; i++) {
      const m = events[i];
      if (!m || typeof m !== 'object') continue;
      this.streamEvent(m);
      if (m.type === 'disconnect') {
        this.finish(Number(m.code) || 1006, String(m.reason ?? ''));
        return false;
      }
    }
    return true;
  }

  private poll(): void {
    if (this.done || this.ending || !this.session) return;
    const url = endpointUrl(this.ctx.baseUrl, this.path, [
      ['session', this.session], ['ack', String(this.ack)], ['wait', String(this.waitS)],
    ]);
    // A poll answers within `wait`; past it plus the heartbeat margin the link is dead.
    this.get(url, this.waitS * 1000 + (this.ctx.pingTimeoutMs ?? 10_000), (status, text) => {
      if (status === 410 || status === 404) {
        this.finish(1006, `polling: the session is not polled here any more (HTTP ${status})`);
        return;
      }
      const body = status === 200 ? this.parse(text) : undefined;
      if (!body) { this.finish(1006, `polling: HTTP ${status} on a poll`); return; }
      this.failures = 0;
      const batch = body as unknown as Batch;
      // A batch seen already (seq not past the last ack) is not delivered again.
      if (typeof batch.seq === 'number' && batch.seq > 0 && batch.seq <= this.ack) { this.poll(); return; }
      if (this.take(batch)) this.poll();
    }, (err) => {
      // A lost response costs nothing: ask again with the same ack, once.
      if (++this.failures <= 1) this.poll();
      else this.finish(1006, `polling: poll failed: ${err}`);
    });
  }

  /** A GET with an optional deadline (ms, 0: none); exactly one of `ok`/`fail` is called,
   *  and neither once the transport has ended. */
  private get(url: string, deadlineMs: number, ok: (status: number, text: string) => void, fail: (err: string) => void): void {
    const abort = typeof AbortController === 'function' ? new AbortController() : undefined;
    this.abort = abort;
    let timedOut = false;
    if (deadlineMs > 0) {
      this.timer = this.timers.setTimeout(() => { this.timer = undefined; timedOut = true; abort?.abort(); }, deadlineMs);
    }
    const settle = () => {
      if (this.timer !== undefined) { this.timers.clearTimeout(this.timer); this.timer = undefined; }
      if (this.abort === abort) this.abort = undefined;
    };
    this.fetchFn!(url, { method: 'GET', cache: 'no-store', ...(abort ? { signal: abort.signal } : {}) })
      .then(async (res) => ({ status: res.status, text: await res.text() }))
      .then(({ status, text }) => {
        settle();
        if (this.done || this.ending) return;
        ok(status, text);
      }, (err: unknown) => {
        settle();
        if (this.done || this.ending) return;
        fail(timedOut ? `no answer within ${deadlineMs} ms` : String((err as Error)?.message ?? err));
      });
  }
}

export const pollingTransport: TransportFactory = (ctx: TransportContext): Transport => new PollingTransport(ctx);
