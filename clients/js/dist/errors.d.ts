/**
 * Every failure the client reports is a SwitchboardError. `code` is either the server's error
 * code (docs/protocol.md, "Error codes": `unknown_namespace`, `permission_denied`, …) or one of
 * the client's own codes below.
 */
export type ClientErrorCode = 
/** No reply within `requestTimeoutMs`. */
'timeout'
/** The send queue holds `maxQueue` messages already. */
 | 'queue_full'
/** The request was sent, then the connection was lost before its reply; it may or may not
 *  have taken effect (only publishes without an idempotency key end so: the others are sent
 *  again after the reconnect). */
 | 'connection_lost'
/** `disconnect()` was called, or the client stopped for good, while the request waited. */
 | 'client_closed'
/** The subscription was unsubscribed (or failed) before the request could be made. */
 | 'unsubscribed'
/** No transport can be used here (no WebSocket implementation, none registered). */
 | 'no_transport'
/** A close the client does not retry (see README "Close codes"); `details` has code/reason. */
 | 'closed'
/** A message from the server the client could not read. */
 | 'bad_message'
/** getToken (or a subscribe token function) threw or rejected. */
 | 'token_unavailable';
/** The server's codes (protocol.md) plus the client's own. */
export type ErrorCode = ClientErrorCode | string;
export declare class SwitchboardError extends Error {
    /** The server's error code or a ClientErrorCode. */
    readonly code: ErrorCode;
    /** For server errors: the request's `type`; for `closed`: `{code, reason}`. */
    readonly details?: unknown;
    constructor(code: ErrorCode, message: string, details?: unknown);
}
