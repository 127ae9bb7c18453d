/** What the server said in its `disconnect` event before closing (protocol.md). */
export interface DisconnectNotice {
    code: number;
    reason: string;
    reconnect: boolean;
    /** A graceful shutdown (1001): when to come back, drawn by the server so that its clients
     *  do not all reconnect at once. The first attempt waits at least this long. */
    afterMs?: number;
}
/** What the client does after a connection ended. */
export interface ClosePolicy {
    /** Try again (after the backoff delay). */
    reconnect: boolean;
    /** Offer the session id on the next connect (resume). False: forget the session. */
    resume: boolean;
    /** Fetch a new token (getToken) before the next attempt. */
    newToken: boolean;
    /** Why, for the `disconnected` event and the docs. */
    why: string;
}
/**
 * The retry policy, per close code (docs/protocol.md, "Close codes"). `notice` is the server's
 * `disconnect` event if one came just before the close; its `reconnect` flag wins over the
 * code's default. `canRefreshToken`: the app gave `getToken`, so a 4005 (token expired) can be
 * followed by a connect with a new token.
 */
export declare function closePolicy(code: number, notice: DisconnectNotice | undefined, canRefreshToken: boolean): ClosePolicy;
/** A `connect` refused with one of these codes is not retried unless a new token can be had. */
export declare function isAuthError(code: string): boolean;
