// One node of a Socket.IO 4 cluster on @socket.io/redis-adapter: the peer of Switchboard's
// Redis broker engine in bench/run_cluster_bench.sh. Several of these on one Redis share rooms:
// a publication on any node reaches the room's sockets on every node.
//
// Usage: node server.mjs --port 0 [--host 127.0.0.1] [--redis 127.0.0.1:6379] [--prefix KEY]
//   --redis   the Redis of the cluster; without it the node is alone (in-memory adapter),
//             the single-node figure
//   --prefix  the adapter's channel prefix ("key"), so runs on one Redis do not mix
// Prints "listening on HOST:PORT" once the listener and the Redis clients are up. SIGTERM or
// SIGINT closes the listener, the sockets and the Redis clients, then exits.
//
// The protocol is the generator's (generator.mjs), the smallest that maps onto Switchboard's
// subscribe/publish:
//   client -> "join" ROOM, ack()           join the room (socket.join), acknowledged
//   client -> "publish" {room, data}, ack  io.to(room).emit("message", data) through the
//                                          adapter (every node's members), then ack()
//   server -> "message" data               a publication of a room the socket joined
// The publisher joins no room, so it gets none of its own messages (as in the Switchboard runs).
import http from 'node:http';

import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 0, redis: '', prefix: 'socket.io' };
  for (let i = 0; i < argv.length; ++i) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (flag === '--host') o.host = value();
    else if (flag === '--port') o.port = Number(value());
    else if (flag === '--redis') o.redis = value();
    else if (flag === '--prefix') o.prefix = value();
    else throw new Error(`unknown flag ${argv[i]}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('bad --port');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
// WebSocket only and no compression: the generator speaks WebSocket from the first request
// (no long-polling upgrade dance) and Switchboard runs with compression off too.
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});

const redisClients = [];
if (opts.redis) {
  const pub = createClient({ url: `redis://${opts.redis}` });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) {
    // A lost Redis is a failed run, not a silent single-node fallback.
    c.on('error', (err) => {
      console.error(`redis: ${err.message}`);
      process.exitCode = 1;
    });
  }
  await Promise.all([pub.connect(), sub.connect()]);
  redisClients.push(pub, sub);
  io.adapter(createAdapter(pub, sub, { key: opts.prefix }));
}

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    if (typeof ack === 'function') ack();
  });
  socket.on('publish', (msg, ack) => {
    if (msg && msg.room !== undefined) io.to(String(msg.room)).emit('message', msg.data);
    if (typeof ack === 'function') ack();
  });
});

httpServer.listen(opts.port, opts.host, () => {
  const { address, port } = httpServer.address();
  console.log(`listening on ${address}:${port}`);
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  io.close();
  await Promise.allSettled(redisClients.map((c) => c.quit()));
  process.exit(process.exitCode ?? 0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
