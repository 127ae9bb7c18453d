/** The session named on an opening request with no session to resume. The server wants a
 *  channel or a session on it, and an unknown session is a new one (`resumed: false`). */
export const NEW_SESSION = 'new';
export function resolveFetch(given) {
    if (given)
        return given;
    const g = globalThis.fetch;
    return typeof g === 'function' ? g.bind(globalThis) : undefined;
}
export function resolveEventSource(given) {
    if (given)
        return given;
    const g = globalThis.EventSource;
    return typeof g === 'function' ? g : undefined;
}
/** The event id protocol.md defines: `<session>|<channel>!<epoch>!<offset>|…`. */
export function eventId(session, positions) {
    let id = session;
    for (const p of [...positions].sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0))) {
        if (p.channel.includes('|') || p.channel.includes('!'))
            continue;
        id += `|${p.channel}!${p.epoch}!${p.offset}`;
    }
    return id;
}
/** `base` + `path` with `params` added to the base's own query. */
export function endpointUrl(base, path, params) {
    const u = new URL(base);
    u.pathname = u.pathname.replace(/\/+$/, '') + path;
    for (const [k, v] of params)
        u.searchParams.append(k, v);
    return u.toString();
}
/** The opening request's parameters: the connect fields, the token, where to resume from. */
export function openParams(connect, positions, token) {
    const out = [];
    const c = connect ?? {};
    if (c.session && positions && positions.length > 0)
        out.push(['lastEventId', eventId(c.session, positions)]);
    else
        out.push(['session', c.session || NEW_SESSION]);
    if (c.user)
        out.push(['user', c.user]);
    if (c.info)
        out.push(['info', JSON.stringify(c.info)]);
    if (token)
        out.push(['token', token]);
    return out;
}
const realTimers = {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h),
};
function asObject(text) {
    let v;
    try {
        v = JSON.parse(text);
    }
    catch {
        return undefined;
    }
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
}
/**
 * The shared state machine. Subclasses run the event stream (open(), stopStream()) and report
 * through gotFirst(), streamEvent() and finish().
 */
export class HttpTransport {
    constructor(ctx) {
        this.ctx = ctx;
        this.opened = false;
        /** close() was called or onClose was reported: nothing more goes to the client. */
        this.done = false;
        this.connectAnswered = false;
        this.out = [];
        this.held = [];
        this.posts = [];
        this.queuedBytes = 0;
        this.pumpScheduled = false;
        this.h = ctx.handlers;
        this.timers = ctx.timers ?? realTimers;
        this.fetchFn = resolveFetch(ctx.fetch);
        this.token = ctx.token;
    }
    // ---- Transport --------------------------------------------------------------------------
    send(msg) {
        if (this.done || this.ending)
            throw new Error('transport closed');
        if (msg.type === 'connect') {
            // Connected by the opening request: answer with what it got.
            if (!this.first)
                throw new Error('transport not open');
            if (this.connectAnswered)
                return;
            this.connectAnswered = true;
            const reply = { ...this.first };
            if (msg.id !== undefined)
                reply.id = msg.id;
            this.out.unshift(reply);
            this.schedulePump();
            return;
        }
        // A refresh's token is the one the POSTs carry from now on (the request itself included:
        // the old one may have expired).
        if (msg.type === 'refresh' && typeof msg.token === 'string')
            this.token = msg.token;
        const body = JSON.stringify(msg);
        this.posts.push({ msg, body });
        this.queuedBytes += body.length;
        this.nextPost();
    }
    bufferedAmount() {
        return this.queuedBytes;
    }
    close() {
        if (this.done)
            return;
        this.done = true;
        this.shutdown();
    }
    // ---- for the subclasses -----------------------------------------------------------------
    /** The server's first event: `connected`, or the `error` refusing the connect. */
    gotFirst(ev) {
        if (this.done || this.ending || this.first)
            return;
        this.first = ev;
        this.opened = true;
        if (ev.type === 'connected' && typeof ev.session === 'string')
            this.session = ev.session;
        this.h.onOpen();
    }
    /** An event from the server, in the order it was sent. */
    streamEvent(ev) {
        if (this.done || this.ending)
            return;
        if (this.inflight?.msg.type === 'subscribe') {
            this.held.push(ev);
            return;
        }
        this.out.push(ev);
        this.schedulePump();
    }
    /** The transport ended: what is ready is delivered first, then onClose(code, reason). */
    finish(code, reason) {
        if (this.done || this.ending)
            return;
        this.ending = { code, reason };
        this.held = [];
        this.shutdown();
        this.schedulePump();
    }
    /** Ends before anything opened (asynchronously, like any failure to connect). */
    failSoon(reason) {
        this.timers.setTimeout(() => this.finish(1006, reason), 0);
    }
    report(message) {
        if (!this.done)
            this.h.onError?.(new Error(message));
    }
    parse(text) {
        const m = asObject(text);
        if (!m)
            this.report(`${this.name}: a message from the server is not a JSON object: ${text.slice(0, 100)}`);
        return m;
    }
    /** Every header a request to the server carries. */
    headers() {
        const h = {};
        if (this.token)
            h.Authorization = `Bearer ${this.token}`;
        return h;
    }
    // ---- internals --------------------------------------------------------------------------
    shutdown() {
        this.stopStream();
        const p = this.inflight;
        this.inflight = undefined;
        p?.abort?.abort();
        this.posts.length = 0;
        this.queuedBytes = 0;
    }
    schedulePump() {
        if (this.pumpScheduled || this.done)
            return;
        this.pumpScheduled = true;
        queueMicrotask(() => { this.pumpScheduled = false; this.pump(); });
    }
    /** Hands the ready events to the client, in order; then the ending, if any. */
    pump() {
        if (this.connectAnswered || !this.first) {
            while (this.out.length > 0 && !this.done) {
                const m = this.out.shift();
                this.h.onMessage(m);
            }
        }
        if (this.ending && !this.done) {
            this.done = true;
            this.h.onClose(this.ending.code, this.ending.reason, this.opened);
        }
    }
    nextPost() {
        if (this.inflight || this.done || this.ending || this.posts.length === 0)
            return;
        const fetchFn = this.fetchFn;
        if (!fetchFn || !this.session) {
            this.finish(1006, `${this.name}: cannot send requests (no fetch, or no session)`);
            return;
        }
        const p = this.posts.shift();
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
        }, (err) => {
            if (this.inflight !== p || this.done || this.ending)
                return;
            this.finish(1006, `${this.name}: POST failed: ${err?.message ?? err}`);
        });
    }
    postDone(p, status, text) {
        if (this.inflight !== p || this.done || this.ending)
            return;
        if (status === 404 || status === 410) {
            // The session is no longer held here (its stream ended, a takeover, another node).
            this.finish(1006, `${this.name}: the server does not hold the session any more (HTTP ${status})`);
            return;
        }
        const replies = [];
        for (const line of text.split('\n')) {
            if (line.trim() === '')
                continue;
            const m = this.parse(line);
            if (m)
                replies.push(m);
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
