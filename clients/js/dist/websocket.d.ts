import type { TransportFactory, WebSocketLike } from './transport.js';
export declare const SUBPROTOCOL = "switchboard.v1.json";
/** Finds a WebSocket implementation: the option, else the global one (browsers, Node ≥ 22). */
export declare function resolveWebSocket(given?: WebSocketLike): WebSocketLike | undefined;
/**
 * The WebSocket transport: `/ws`, subprotocol switchboard.v1.json, one JSON object per text
 * frame. WebSocket pings are answered by the browser (or `ws`) and never seen here; the
 * client's heartbeat uses the protocol's `ping` message instead.
 */
export declare const webSocketTransport: TransportFactory;
