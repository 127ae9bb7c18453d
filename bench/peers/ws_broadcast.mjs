// Room broadcast server on the node `ws` library, the peer for bench/run_fanout_bench.sh.
// Usage: node ws_broadcast.mjs [port] [--deflate]   (0 = ephemeral; binds 127.0.0.1 only)
// Prints "ws listening on 127.0.0.1:PORT" once listening.
//
// Rooms are URL paths: a client of ws://HOST/room/1 is in room "/room/1". A text message from
// a client is sent to every other client of its room (not back to the sender: in the
// Switchboard runs the publisher is not subscribed either), with the broadcast loop of ws's
// README ("Server broadcast", excluding the sender): `client.send(data, { binary })` per client.
//
// One addition for publishers that serve many rooms (the latency test publishes to 10,000
// rooms from one connection, as Switchboard's `publish` names a channel): a client of the path
// "/pub" is in no room, and each of its messages is "ROOM-PATH PAYLOAD"; PAYLOAD (a slice of the
// received buffer, no copy) goes to every client of ROOM-PATH.
//
// perMessageDeflate is off unless --deflate (Switchboard runs with --no-compression). `ws`
// resolves from the repo's node_modules, or from the directory in WS_NODE_MODULES (a
// node_modules folder's parent).
import { createRequire } from 'node:module';
import path from 'node:path';

async function loadWs() {
  try {
    return await import('ws');
  } catch (err) {
    if (!process.env.WS_NODE_MODULES) throw err;
    const require = createRequire(path.join(process.env.WS_NODE_MODULES, 'noop.js'));
    return require('ws');
  }
}

const wsModule = await loadWs();
const WebSocketServer = wsModule.WebSocketServer ?? wsModule.default.WebSocketServer;
const OPEN = (wsModule.WebSocket ?? wsModule.default).OPEN;
const port = Number(process.argv[2] ?? 0);
// --deflate: permessage-deflate on (the bench's deflate rows), compressing messages of 64 bytes
// and more, as Switchboard does (ws's default threshold, 1 KiB, would leave them all plain).
const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate ? { threshold: 64 } : false,
  maxPayload: 16 * 1024 * 1024,
  clientTracking: false, // rooms are tracked below
});

const rooms = new Map(); // room path -> Set of clients

function broadcast(room, sender, data, isBinary) {
  if (room === undefined) return;
  for (const client of room) {
    if (client !== sender && client.readyState === OPEN) {
      client.send(data, { binary: isBinary });
    }
  }
}

wss.on('connection', (ws, req) => {
  const name = (req.url ?? '/').split('?')[0];
  ws.on('error', () => {}); // the generator resets connections when it is done
  if (name === '/pub') {
    ws.on('message', (data, isBinary) => {
      const sp = data.indexOf(0x20);
      if (sp <= 0) return;
      broadcast(rooms.get(data.toString('latin1', 0, sp)), ws, data.subarray(sp + 1), isBinary);
    });
    return;
  }
  let room = rooms.get(name);
  if (room === undefined) {
    room = new Set();
    rooms.set(name, room);
  }
  room.add(ws);
  ws.on('message', (data, isBinary) => broadcast(room, ws, data, isBinary));
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0 && rooms.get(name) === room) rooms.delete(name);
  });
});
wss.on('listening', () => {
  process.stdout.write(`ws listening on 127.0.0.1:${wss.address().port}\n`);
});
const stop = () => {
  wss.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
