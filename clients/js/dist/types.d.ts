/** Shapes of the protocol's messages as the client hands them to the app (docs/protocol.md). */
/** A stream position: one life of a channel (`epoch`) and the offset in it. */
export interface Position {
    epoch: string;
    offset: number;
}
/** A publication delivered to a subscription. */
export interface Publication {
    channel: string;
    epoch: string;
    offset: number;
    data: unknown;
}
/** A `join` or `leave` event (namespaces with `join_leave = true`). */
export interface PresenceEvent {
    channel: string;
    client: string;
    user?: string;
    info?: Record<string, unknown>;
}
export interface PresenceEntry {
    client: string;
    user?: string;
    info?: Record<string, unknown>;
}
export interface PresenceResult {
    channel: string;
    count: number;
    clients: PresenceEntry[];
}
export interface HistoryOptions {
    /** Publications after this position (else the newest `limit`). */
    since?: Position;
    /** At most this many (0 or absent: all kept). */
    limit?: number;
}
export interface HistoryResult {
    channel: string;
    /** The channel's current position. */
    epoch: string;
    offset: number;
    /** With `since`: whether every publication after it is in `publications` (or follows on the next page). */
    recovered?: boolean;
    publications: Array<{
        offset: number;
        data: unknown;
    }>;
}
export interface PublishOptions {
    /** A second publish with the same key to the same channel within the namespace's
     *  `idempotency_window` is not published again. A publish with a key is also re-sent by the
     *  client if the connection is lost before its reply (safe: it cannot publish twice). */
    idempotencyKey?: string;
}
export interface PublishResult {
    channel: string;
    epoch: string;
    offset: number;
    /** The key was seen already: this is the first publication's position. */
    duplicate: boolean;
}
/** How a recovery went: after a reconnect (resume or resubscribe), a `gap`, or a `since` of the app's. */
export interface RecoveryInfo {
    /** true: every publication after the last one delivered follows, exactly once, in order.
     *  false: some are gone (history size/TTL passed, the server restarted, the epoch changed):
     *  reload the channel's state from your application. */
    recovered: boolean;
    cause: 'resume' | 'resubscribe' | 'gap' | 'subscribe';
    /** The channel's position the server answered with. */
    epoch: string;
    offset: number;
}
/** The `subscribed` outcome (also after a resume restored the channel). */
export interface SubscribedInfo {
    channel: string;
    epoch: string;
    offset: number;
    /** Present when a position was given (`since`, or the client's own after a reconnect). */
    recovered?: boolean;
}
export interface ConnectedInfo {
    /** This connection's id (presence, join/leave, /api/disconnect). */
    client: string;
    /** The session id: keep it to resume (the `session` option). Secret. */
    session: string;
    /** The session was resumed (its channels came back without subscribing again). */
    resumed: boolean;
    /** The token's subject, with auth on. */
    user?: string;
    /** Seconds until the connection token expires (then the client refreshes it with getToken). */
    expiresIn?: number;
    /** The server's ping interval in seconds (0: none). */
    pingInterval: number;
    transport: string;
}
export interface DisconnectedInfo {
    /** The close code (protocol.md "Close codes"); 1006 when the link died without one. */
    code: number;
    reason: string;
    /** Whether the client will try again (after `delayMs`). */
    reconnect: boolean;
    delayMs?: number;
}
