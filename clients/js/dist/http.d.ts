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
import type { ChannelPosition, ConnectParams, EventSourceLike, FetchLike, Timers, Transport, TransportContext, TransportHandlers, TransportName } from './transport.js';
/** The session named on an opening request with no session to resume. The server wants a
 *  channel or a session on it, and an unknown session is a new one (`resumed: false`). */
export declare const NEW_SESSION = "new";
export declare function resolveFetch(given?: FetchLike): FetchLike | undefined;
export declare function resolveEventSource(given?: EventSourceLike): EventSourceLike | undefined;
/** The event id protocol.md defines: `<session>|<channel>!<epoch>!<offset>|…`. */
export declare function eventId(session: string, positions: readonly ChannelPosition[]): string;
/** `base` + `path` with `params` added to the base's own query. */
export declare function endpointUrl(base: string, path: string, params: Array<[string, string]>): string;
/** The opening request's parameters: the connect fields, the token, where to resume from. */
export declare function openParams(connect: ConnectParams | undefined, positions: readonly ChannelPosition[] | undefined, token: string | undefined): Array<[string, string]>;
/**
 * The shared state machine. Subclasses run the event stream (open(), stopStream()) and report
 * through gotFirst(), streamEvent() and finish().
 */
export declare abstract class HttpTransport implements Transport {
    protected readonly ctx: TransportContext;
    abstract readonly name: TransportName;
    /** '/sse' or '/poll'. */
    protected abstract readonly path: string;
    protected readonly h: TransportHandlers;
    protected readonly timers: Timers;
    protected readonly fetchFn: FetchLike | undefined;
    protected token: string | undefined;
    /** The session the server connected (from the first event). */
    protected session: string | undefined;
    protected opened: boolean;
    /** close() was called or onClose was reported: nothing more goes to the client. */
    protected done: boolean;
    /** finish() was called: what is ready is delivered, then onClose. */
    protected ending: {
        code: number;
        reason: string;
    } | undefined;
    private first;
    private connectAnswered;
    private readonly out;
    private held;
    private readonly posts;
    private inflight;
    private queuedBytes;
    private pumpScheduled;
    constructor(ctx: TransportContext);
    abstract open(): void;
    /** Stops the stream (or the poll loop): no more events from it. */
    protected abstract stopStream(): void;
    send(msg: Record<string, unknown>): void;
    bufferedAmount(): number;
    close(): void;
    /** The server's first event: `connected`, or the `error` refusing the connect. */
    protected gotFirst(ev: Record<string, unknown>): void;
    /** An event from the server, in the order it was sent. */
    protected streamEvent(ev: Record<string, unknown>): void;
    /** The transport ended: what is ready is delivered first, then onClose(code, reason). */
    protected finish(code: number, reason: string): void;
    /** Ends before anything opened (asynchronously, like any failure to connect). */
    protected failSoon(reason: string): void;
    protected report(message: string): void;
    protected parse(text: string): Record<string, unknown> | undefined;
    /** Every header a request to the server carries. */
    protected headers(): Record<string, string>;
    private shutdown;
    private schedulePump;
    /** Hands the ready events to the client, in order; then the ending, if any. */
    private pump;
    private nextPost;
    private postDone;
}
