import { endpointUrl, HttpTransport, openParams, resolveEventSource } from './http.js';
import type { EventSourceInstance, Transport, TransportContext, TransportFactory } from './transport.js';

/**
 * The Server-Sent Events transport: `GET {base}/sse?…` streams the session's events (one JSON
 * object per `data:`), requests are POSTed (http.ts). The EventSource is closed on its first
 * error: the client's own reconnect (backoff, session resume, positions) drives, not the
 * EventSource's. A stream that stays silent past the server's ping interval plus
 * `pingTimeoutMs` is a dead link (the server sends `ping` events when quiet).
 */
class SseTransport extends HttpTransport {
  readonly name = 'sse' as const;
  protected readonly path = '/sse';
  private es: EventSourceInstance | undefined;
  private watchdog: unknown;
  private silenceMs = 0;

  open(): void {
    const ES = resolveEventSource(this.ctx.EventSource);
    if (!ES || !this.fetchFn) {
      this.failSoon('sse: no EventSource or fetch implementation (pass the `EventSource` option)');
      return;
    }
    const url = endpointUrl(this.ctx.baseUrl, this.path, openParams(this.ctx.connect, this.ctx.positions, this.token));
    try {
      this.es = new ES(url);
    } catch (err) {
      this.failSoon(`sse: ${(err as Error).message}`);
      return;
    }
    this.es.onmessage = (ev) => this.onData(ev.data);
    this.es.onerror = (ev: any) => this.onStreamError(ev);
  }

  protected stopStream(): void {
    if (this.watchdog !== undefined) { this.timers.clearTimeout(this.watchdog); this.watchdog = undefined; }
    const es = this.es;
    this.es = undefined;
    if (!es) return;
    es.onmessage = null;
    es.onopen = null;
    es.onerror = () => {};
    try { es.close(); } catch { /* closed */ }
  }

  private onData(data: string): void {
    if (this.done || this.ending) return;
    this.arm();
    const m = this.parse(data);
    if (!m) return;
    if (!this.opened) {
      if (m.type !== 'connected' && m.type !== 'error') {
        this.report(`sse: the stream did not start with connected: ${data.slice(0, 100)}`);
        return;
      }
      if (m.type === 'connected') {
        const ping = Number(m.ping_interval ?? 0);
        if (ping > 0) this.silenceMs = ping * 1000 + (this.ctx.pingTimeoutMs ?? 10_000);
        this.arm();
      }
      this.gotFirst(m);
      return;
    }
    this.streamEvent(m);
    if (m.type === 'disconnect') {
      // The server's last event: it ends the stream.
      this.finish(Number(m.code) || 1006, String(m.reason ?? ''));
    }
  }

  private onStreamError(ev: any): void {
    if (this.done || this.ending) return;
    // npm `eventsource` tells the status of a refused request; browsers tell nothing.
    const status = typeof ev?.code === 'number' ? ev.code : undefined;
    const detail = typeof ev?.message === 'string' && ev.message ? `: ${ev.message}` : '';
    let reason: string;
    if (status === 401 && !this.opened) reason = 'Unexpected server response: 401';
    else if (status !== undefined) reason = `sse: HTTP ${status}${detail}`;
    else reason = this.opened ? `sse: the event stream ended${detail}` : `sse: the event stream could not be opened${detail}`;
    this.finish(1006, reason);
  }

  /** (Re)starts the dead-link deadline: any data on the stream moves it. */
  private arm(): void {
    if (this.silenceMs <= 0) return;
    if (this.watchdog !== undefined) this.timers.clearTimeout(this.watchdog);
    this.watchdog = this.timers.setTimeout(() => {
      this.watchdog = undefined;
      this.finish(1006, `sse: no data on the event stream for ${this.silenceMs} ms (heartbeat)`);
    }, this.silenceMs);
  }
}

export const sseTransport: TransportFactory = (ctx: TransportContext): Transport => new SseTransport(ctx);
