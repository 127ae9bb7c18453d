/** The default negotiation order. */
export const TRANSPORT_ORDER = ['websocket', 'sse', 'polling'];
const registry = {};
/** Makes a transport available to every client (the SSE and polling transports call this). */
export function registerTransport(name, factory) {
    registry[name] = factory;
}
export function registeredTransport(name) {
    return registry[name];
}
export function defaultStorage() {
    try {
        const s = globalThis.localStorage;
        if (s && typeof s.getItem === 'function')
            return s;
    }
    catch {
        // Access to localStorage can throw (privacy settings, sandboxed frames).
    }
    return undefined;
}
const STORAGE_PREFIX = 'switchboard.transport:';
/**
 * Negotiation: the transports in the configured order (default websocket → sse → polling),
 * skipping those with no implementation. The first attempt starts at the one that last worked
 * for this origin (remembered in localStorage when there is one). A transport that fails before
 * it opened moves the next attempt to the next transport, at once; when every transport failed
 * in a row, the client backs off (`exhausted`).
 */
export class TransportSelector {
    constructor(order, has, origin, storage) {
        this.origin = origin;
        this.storage = storage;
        this.index = 0;
        this.failuresInRow = 0;
        const seen = new Set();
        this.available = order.filter((n) => !seen.has(n) && (seen.add(n), true) && has(n));
        const remembered = this.read();
        const at = remembered ? this.available.indexOf(remembered) : -1;
        if (at >= 0)
            this.index = at;
    }
    /** The usable transports, in order. */
    get order() { return this.available; }
    /** The transport for the next attempt (undefined: none usable). */
    current() { return this.available[this.index]; }
    /** The current transport opened: remember it for this origin. */
    opened() {
        this.failuresInRow = 0;
        const name = this.current();
        if (name && this.storage) {
            try {
                this.storage.setItem(STORAGE_PREFIX + this.origin, name);
            }
            catch { /* quota, privacy */ }
        }
    }
    /** Another transport took over (an upgrade back to WebSocket): it is current and remembered. */
    switchTo(name) {
        const at = this.available.indexOf(name);
        if (at < 0)
            return;
        this.index = at;
        this.opened();
    }
    /**
     * The current transport failed before it opened: move on. Returns true when every transport
     * has now failed in a row (the caller backs off before trying again from the first one).
     */
    failedBeforeOpen() {
        if (this.available.length === 0)
            return true;
        this.failuresInRow++;
        this.index = (this.index + 1) % this.available.length;
        if (this.failuresInRow >= this.available.length) {
            this.failuresInRow = 0;
            return true;
        }
        return false;
    }
    read() {
        if (!this.storage)
            return undefined;
        try {
            const v = this.storage.getItem(STORAGE_PREFIX + this.origin);
            return v === 'websocket' || v === 'sse' || v === 'polling' ? v : undefined;
        }
        catch {
            return undefined;
        }
    }
}
/**
 * Splits the URL the app gives into the WebSocket endpoint and the HTTP base the other
 * transports use. Accepted: `ws(s)://host[:port][/base]/ws`, `http(s)://host[:port][/base]`
 * (then `/ws` is appended for the WebSocket), and either with a query string (kept on
 * every endpoint).
 */
export function endpoints(url) {
    const u = new URL(url);
    const secure = u.protocol === 'wss:' || u.protocol === 'https:';
    if (!['ws:', 'wss:', 'http:', 'https:'].includes(u.protocol)) {
        throw new TypeError(`Switchboard: unsupported URL scheme ${u.protocol} (ws:, wss:, http:, https:)`);
    }
    let path = u.pathname.replace(/\/+$/, '');
    if (path.endsWith('/ws'))
        path = path.slice(0, -3);
    const host = u.host;
    const query = u.search;
    const baseUrl = `${secure ? 'https' : 'http'}://${host}${path}`;
    return {
        baseUrl: baseUrl + query,
        wsUrl: `${secure ? 'wss' : 'ws'}://${host}${path}/ws${query}`,
        origin: `${secure ? 'https' : 'http'}://${host}`,
    };
}
/** Adds `token` to a URL's query. */
export function withToken(url, token) {
    if (!token)
        return url;
    const u = new URL(url);
    u.searchParams.set('token', token);
    return u.toString();
}
