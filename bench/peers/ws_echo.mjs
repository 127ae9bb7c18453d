// Echo server on the node `ws` library, the peer for bench/run_echo_bench.sh.
// Usage: node ws_echo.mjs [port] [--deflate]   (0 = ephemeral; binds 127.0.0.1 only)
// Prints "ws listening on 127.0.0.1:PORT" once listening. perMessageDeflate is off unless
// --deflate, so the comparison is against Switchboard's --no-compression. `ws` resolves from
// the repo's node_modules, or from the directory in WS_NODE_MODULES (a node_modules folder's
// parent).
import { createRequire } from 'node:module';
import path from 'node:path';

async function loadWs() {
  try {
    return (await import('ws')).WebSocketServer;
  } catch (err) {
    if (!process.env.WS_NODE_MODULES) throw err;
    const require = createRequire(path.join(process.env.WS_NODE_MODULES, 'noop.js'));
    return require('ws').WebSocketServer;
  }
}

const WebSocketServer = await loadWs();
const port = Number(process.argv[2] ?? 0);
// --deflate: permessage-deflate on (the bench's deflate rows), compressing messages of 64 bytes
// and more, as Switchboard does (ws's default threshold, 1 KiB, would leave them all plain).
const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate ? { threshold: 64 } : false,
  maxPayload: 16 * 1024 * 1024,
  clientTracking: false, // the echo needs no connection set
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // the generator resets connections when it is done
});
wss.on('listening', () => {
  process.stdout.write(`ws listening on 127.0.0.1:${wss.address().port}\n`);
});
const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
