/**
 * @switchboard/client: the JavaScript/TypeScript client of Switchboard's native protocol
 * (`switchboard.v1.json`, docs/protocol.md). See README.md.
 */
export { Switchboard, canonicalChannel } from './client.js';
export type { Clock, ConnectionState, SwitchboardEvents, SwitchboardOptions } from './client.js';
export { Subscription } from './subscription.js';
export type { SubscriptionOptions, SubscriptionState } from './subscription.js';
export { SwitchboardError } from './errors.js';
export type { ClientErrorCode, ErrorCode } from './errors.js';
export { backoffCap, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { closePolicy } from './policy.js';
export type { ClosePolicy, DisconnectNotice } from './policy.js';
export { endpoints, registerTransport, TransportSelector, TRANSPORT_ORDER, } from './transport.js';
export type { ChannelPosition, ConnectParams, EventSourceInstance, EventSourceLike, FetchLike, StorageLike, Timers, Transport, TransportContext, TransportFactory, TransportHandlers, TransportName, WebSocketInstance, WebSocketLike, } from './transport.js';
export { SUBPROTOCOL, webSocketTransport } from './websocket.js';
export { sseTransport } from './sse.js';
export { pollingTransport } from './polling.js';
export { eventId } from './http.js';
export type * from './types.js';
