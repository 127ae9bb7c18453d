/**
 * The transport interface: how the client moves protocol messages (JSON objects) to and from
 * the server. The WebSocket transport (websocket.ts) implements it; SSE (`/sse`) and
 * long-polling (`/poll`) transports plug in with registerTransport() or the `transportFactories`
 * option and need nothing else from the client: the protocol above them is the same.
 */
export type TransportName = 'websocket' | 'sse' | 'polling';
/** The default negotiation order. */
export declare const TRANSPORT_ORDER: readonly TransportName[];
/** Events a transport reports to the client. After close() or onClose, it reports nothing more. */
export interface TransportHandlers {
    /** The transport can carry messages (for WebSocket: the handshake completed). */
    onOpen(): void;
    /** One protocol message from the server, parsed. */
    onMessage(msg: Record<string, unknown>): void;
    /**
     * The transport ended. `code`/`reason` as in protocol.md's close code table (transports that
     * are not WebSocket map their endings onto the same codes: 1006 for a network failure, the
     * `disconnect` event's code otherwise). `opened`: whether onOpen was called first (false =
     * this transport could not connect at all, the client tries the next one in the order).
     */
    onClose(code: number, reason: string, opened: boolean): void;
    /** Something worth reporting that does not end the transport by itself. */
    onError?(err: Error): void;
}
export interface Transport {
    readonly name: TransportName;
    /** Starts connecting; onOpen or onClose follows. */
    open(): void;
    /** Sends one message. Only called after onOpen and before any close. */
    send(msg: Record<string, unknown>): void;
    /** Bytes accepted by send() and not yet handed to the network (0 if unknown). */
    bufferedAmount(): number;
    /** Ends the transport at once; no handler is called afterwards. */
    close(code?: number, reason?: string): void;
}
/** The fields of the client's `connect` (HTTP transports send them on their opening request). */
export interface ConnectParams {
    user?: string;
    info?: Record<string, unknown>;
    name?: string;
    /** The session to resume. */
    session?: string;
}
/** A channel's last delivered position (HTTP transports resume from it: `lastEventId`). */
export interface ChannelPosition {
    channel: string;
    epoch: string;
    offset: number;
}
/** Timers (the client's clock, so tests can drive them). */
export interface Timers {
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
}
/** The browser EventSource API as used here (npm `eventsource` implements it too). */
export interface EventSourceLike {
    new (url: string, init?: {
        withCredentials?: boolean;
    }): EventSourceInstance;
}
export interface EventSourceInstance {
    readonly readyState: number;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: {
        data: string;
        lastEventId?: string;
    }) => void) | null;
    /** npm `eventsource` puts the HTTP status in `code` and a `message`; browsers say nothing. */
    onerror: ((ev: any) => void) | null;
    close(): void;
}
/** `fetch` as used here (global in browsers and Node ≥ 18). */
export type FetchLike = (input: string, init?: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    signal?: AbortSignal;
    cache?: string;
}) => Promise<{
    status: number;
    ok: boolean;
    text(): Promise<string>;
}>;
/** What a transport factory gets from the client. */
export interface TransportContext {
    /** The server's origin URL: `http(s)://host:port` (with the base path, if any). */
    baseUrl: string;
    /** The WebSocket URL: `ws(s)://host:port/…/ws`. */
    wsUrl: string;
    /** The connection token to send on the request (query `token`), if any. */
    token?: string;
    /** The WebSocket implementation (websocket transport). */
    WebSocket?: WebSocketLike;
    /** The EventSource implementation (sse transport). */
    EventSource?: EventSourceLike;
    /** The fetch implementation (sse and polling transports). */
    fetch?: FetchLike;
    /** The connect request's fields: a transport that connects with its opening request (sse,
     *  polling) sends them there, and answers the client's `connect` with what that request got. */
    connect?: ConnectParams;
    /** Each subscribed channel's last delivered position, to resume from exactly (sse, polling). */
    positions?: ChannelPosition[];
    /** Timers for the transport's own deadlines (the client's clock). */
    timers?: Timers;
    /** How long past the server's ping interval silence means a dead link (ms). */
    pingTimeoutMs?: number;
    /** Long-polling: how long a poll may wait on the server for events (seconds, ≤ 30). */
    pollWaitSeconds?: number;
    handlers: TransportHandlers;
}
export type TransportFactory = (ctx: TransportContext) => Transport;
/** The browser WebSocket API as used here (npm `ws` implements it too). */
export interface WebSocketLike {
    new (url: string, protocols?: string | string[]): WebSocketInstance;
}
export interface WebSocketInstance {
    readonly readyState: number;
    readonly bufferedAmount: number;
    readonly protocol: string;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: {
        data: any;
    }) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((ev: any) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
/** Makes a transport available to every client (the SSE and polling transports call this). */
export declare function registerTransport(name: TransportName, factory: TransportFactory): void;
export declare function registeredTransport(name: TransportName): TransportFactory | undefined;
/** The parts of Web Storage used to remember the transport that worked. */
export interface StorageLike {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
}
export declare function defaultStorage(): StorageLike | undefined;
/**
 * Negotiation: the transports in the configured order (default websocket → sse → polling),
 * skipping those with no implementation. The first attempt starts at the one that last worked
 * for this origin (remembered in localStorage when there is one). A transport that fails before
 * it opened moves the next attempt to the next transport, at once; when every transport failed
 * in a row, the client backs off (`exhausted`).
 */
export declare class TransportSelector {
    private readonly origin;
    private readonly storage;
    private readonly available;
    private index;
    private failuresInRow;
    constructor(order: readonly TransportName[], has: (name: TransportName) => boolean, origin: string, storage: StorageLike | undefined);
    /** The usable transports, in order. */
    get order(): readonly TransportName[];
    /** The transport for the next attempt (undefined: none usable). */
    current(): TransportName | undefined;
    /** The current transport opened: remember it for this origin. */
    opened(): void;
    /** Another transport took over (an upgrade back to WebSocket): it is current and remembered. */
    switchTo(name: TransportName): void;
    /**
     * The current transport failed before it opened: move on. Returns true when every transport
     * has now failed in a row (the caller backs off before trying again from the first one).
     */
    failedBeforeOpen(): boolean;
    private read;
}
/**
 * Splits the URL the app gives into the WebSocket endpoint and the HTTP base the other
 * transports use. Accepted: `ws(s)://host[:port][/base]/ws`, `http(s)://host[:port][/base]`
 * (then `/ws` is appended for the WebSocket), and either with a query string (kept on
 * every endpoint).
 */
export declare function endpoints(url: string): {
    baseUrl: string;
    wsUrl: string;
    origin: string;
};
/** Adds `token` to a URL's query. */
export declare function withToken(url: string, token: string | undefined): string;
