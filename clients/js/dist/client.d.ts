import { type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { Subscription, type SubscriptionHost, type SubscriptionOptions } from './subscription.js';
import { type EventSourceLike, type FetchLike, type StorageLike, type TransportFactory, type TransportName, type WebSocketLike } from './transport.js';
import type { ConnectedInfo, DisconnectedInfo, HistoryOptions, HistoryResult, PresenceResult, PublishOptions, PublishResult } from './types.js';
/** Timers and time; injectable for tests. */
export interface Clock {
    now(): number;
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
}
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
    connecting(ev: {
        attempt: number;
        transport: TransportName;
    }): void;
    /** The server answered `connected`; `resumed`: the session came back. */
    connected(ev: ConnectedInfo): void;
    /** A connection (or an attempt) ended; `reconnect` says whether the client tries again. */
    disconnected(ev: DisconnectedInfo): void;
    /** Something went wrong that no promise reports (a refused subscribe, a close not retried, …). */
    error(err: SwitchboardError): void;
    /** Every state change. */
    state(state: ConnectionState): void;
}
/** `default:room` and `room` are one channel, which the server calls `room`. */
export declare function canonicalChannel(channel: string): string;
/**
 * A Switchboard client: one logical connection that survives reconnects, with its
 * subscriptions. See README.md.
 */
export declare class Switchboard extends Emitter<SwitchboardEvents> implements SubscriptionHost {
    private readonly opts;
    private readonly clock;
    private readonly random;
    private readonly backoffOpts;
    private readonly ep;
    private readonly selector;
    private readonly subs;
    private readonly pending;
    private queue;
    private nextId;
    private _state;
    private transport;
    private transportOpened;
    private attempt;
    private token;
    private needToken;
    private _session;
    private _client;
    private _connected;
    private notice;
    private connectId;
    private retryTimer;
    private connectTimer;
    private heartbeatTimer;
    private refreshTimer;
    private flushTimer;
    private ackTimer;
    private lastReceived;
    private pingSent;
    private heartbeatMs;
    private generation;
    private waiters;
    private probe;
    private probeState;
    private probeTimer;
    private probeDeadline;
    private probeDelay;
    private probeConnectId;
    /** The transport being left ended while the probe's connect was on its way. */
    private oldEnded;
    constructor(url: string, options?: SwitchboardOptions);
    get state(): ConnectionState;
    /** The session id (after `connected`); keep it to resume after a page reload. */
    get session(): string | undefined;
    /** This connection's client id, while connected. */
    get clientId(): string | undefined;
    /** The transport in use (or being tried). */
    get transportName(): TransportName | undefined;
    /** The current subscriptions by channel. */
    get subscriptions(): ReadonlyMap<string, Subscription>;
    /** Messages waiting in the send queue. */
    get queued(): number;
    /** Whether a reconnect is scheduled (state `reconnecting`). */
    get reconnectScheduled(): boolean;
    /**
     * Starts connecting (and reconnecting until disconnect() or a close that must not be
     * retried). Resolves at the next `connected`; rejects when the client stops before that.
     */
    connect(): Promise<ConnectedInfo>;
    /** Closes the connection and stops reconnecting. Subscriptions and the session are kept:
     *  connect() resumes them. Queued and waiting requests are rejected with `client_closed`. */
    disconnect(): void;
    /** Subscribes to a channel (`namespace:name`); works offline too (sent once connected). */
    subscribe(channel: string, options?: SubscriptionOptions): Subscription;
    /** The subscription of a channel, if any. */
    getSubscription(channel: string): Subscription | undefined;
    /** Publishes `data` (any JSON value) to a channel; no subscription needed. */
    publish(channel: string, data: unknown, opts?: PublishOptions): Promise<PublishResult>;
    /** Who is subscribed to a channel (namespaces with `presence = true`). */
    presence(channel: string): Promise<PresenceResult>;
    /** A channel's kept publications. */
    history(channel: string, opts?: HistoryOptions): Promise<HistoryResult>;
    /** A protocol-level round trip (`ping` → `pong`); resolves with the time it took (ms). */
    ping(): Promise<number>;
    /** @internal */
    _unsubscribe(sub: Subscription): Promise<void>;
    private request;
    private settle;
    /**
     * The request went out on the transport: its reply must come within requestTimeoutMs from
     * now. Time spent in the queue (offline, reconnecting, transport buffer full) does not count:
     * a queued request waits for the connection, until disconnect() or a close not retried.
     */
    private markSent;
    /** Sends what the queue holds while connected and the transport's buffer has room. */
    private flush;
    private sendNow;
    /** The connection ended: requests in flight are re-queued if safe, else rejected. */
    private requeueInFlight;
    private failAll;
    private setState;
    private factoryFor;
    /** The context a transport is made with. */
    private transportContext;
    /** The connect request (user, info, name, session) with a fresh id. */
    private connectMessage;
    private startAttempt;
    private onTransportOpen;
    private onMessage;
    private onConnectRefused;
    private onConnected;
    /** Ends the current attempt or connection and decides what comes next. */
    private endAttempt;
    /** Stops for good (until connect()). */
    private stop;
    private rejectWaiters;
    /** Closes the transport and clears every per-connection timer. */
    private teardown;
    private scheduleProbe;
    private startProbe;
    /** WebSocket works: let the requests in flight on the current transport finish first. */
    private probeOpened;
    private probeDrain;
    private probeMessage;
    private probeFailed;
    private clearProbeTimers;
    private cancelProbe;
    private startHeartbeat;
    private scheduleHeartbeat;
    private heartbeat;
    private scheduleRefresh;
    private refreshToken;
    private sendSubscribe;
    /** A subscribe was refused, or got no reply: try again, give up, or leave it to the reconnect. */
    private subscribeError;
    private subscribeFailed;
    /**
     * The channel is live at `pos` (the server's current position). `takePos`: the delivered
     * position starts there (no recovery, or the epoch changed); otherwise the client's own
     * position stays, and what follows it is on its way.
     */
    private markSubscribed;
    private onPublication;
    private resync;
    private scheduleAck;
    /** Runs an app callback; a throw is reported without breaking the client. */
    private call;
}
