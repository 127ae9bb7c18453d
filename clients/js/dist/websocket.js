import { withToken } from './transport.js';
export const SUBPROTOCOL = 'switchboard.v1.json';
/** Finds a WebSocket implementation: the option, else the global one (browsers, Node ≥ 22). */
export function resolveWebSocket(given) {
    if (given)
        return given;
    const g = globalThis.WebSocket;
    return typeof g === 'function' ? g : undefined;
}
/**
 * The WebSocket transport: `/ws`, subprotocol switchboard.v1.json, one JSON object per text
 * frame. WebSocket pings are answered by the browser (or `ws`) and never seen here; the
 * client's heartbeat uses the protocol's `ping` message instead.
 */
export const webSocketTransport = (ctx) => {
    const WS = resolveWebSocket(ctx.WebSocket);
    const h = ctx.handlers;
    let ws;
    let opened = false;
    let done = false;
    const finish = (code, reason) => {
        if (done)
            return;
        done = true;
        detach();
        h.onClose(code, reason, opened);
    };
    const detach = () => {
        if (!ws)
            return;
        ws.onopen = ws.onmessage = ws.onclose = null;
        // Not null: `ws` emits 'error' when a socket still connecting is closed, and an 'error'
        // event with no listener throws (it would crash a Node process).
        ws.onerror = () => { };
    };
    return {
        name: 'websocket',
        open() {
            if (!WS) {
                // Reported asynchronously like any other failure to connect.
                setTimeout(() => finish(1006, 'no WebSocket implementation (pass the `WebSocket` option)'), 0);
                return;
            }
            try {
                ws = new WS(withToken(ctx.wsUrl, ctx.token), SUBPROTOCOL);
            }
            catch (err) {
                setTimeout(() => finish(1006, `WebSocket: ${err.message}`), 0);
                return;
            }
            let lastError = '';
            ws.onopen = () => {
                if (done)
                    return;
                opened = true;
                h.onOpen();
            };
            ws.onmessage = (ev) => {
                if (done)
                    return;
                if (typeof ev.data !== 'string') {
                    h.onError?.(new Error('binary frame from the server ignored'));
                    return;
                }
                let msg;
                try {
                    msg = JSON.parse(ev.data);
                }
                catch {
                    h.onError?.(new Error(`invalid JSON from the server: ${ev.data.slice(0, 100)}`));
                    return;
                }
                if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
                    h.onError?.(new Error('a message from the server is not a JSON object'));
                    return;
                }
                h.onMessage(msg);
            };
            ws.onerror = (ev) => {
                // Browsers say nothing here; `ws` says e.g. "Unexpected server response: 401".
                lastError = ev?.message ?? ev?.error?.message ?? '';
            };
            ws.onclose = (ev) => {
                finish(ev.code || 1006, ev.reason || lastError || '');
            };
        },
        send(msg) {
            if (!ws || done)
                throw new Error('transport not open');
            ws.send(JSON.stringify(msg));
        },
        bufferedAmount() {
            return ws?.bufferedAmount ?? 0;
        },
        close(code = 1000, reason = '') {
            if (done)
                return;
            done = true;
            detach();
            if (!ws)
                return;
            const sock = ws;
            try {
                // A link found dead is not worth a close handshake: `ws` can drop it at once.
                if (code !== 1000 && typeof sock.terminate === 'function')
                    sock.terminate();
                else
                    sock.close(1000, reason.slice(0, 120)); // browsers allow only 1000 and 3000-4999
            }
            catch {
                try {
                    sock.close();
                }
                catch { /* already closed */ }
            }
        },
    };
};
