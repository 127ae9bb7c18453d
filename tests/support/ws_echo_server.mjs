// Reference echo server on node `ws` (a strict, widely used RFC 6455/7692 stack). It takes the
// same flags as `switchboard serve` and prints the same listening line, so every suite can be
// proven against it before our server exists, and client_vs_ws_server uses it as the peer.
//
// The WebSocket protocol is all `ws`. The HTTP handshake rejections (405/400/426/403/404/431,
// JSON bodies) and the handshake timeout are emulated here to match Switchboard's contract,
// because `ws` answers some of those cases with other statuses.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let WebSocketServer;
try {
  ({ WebSocketServer } = require('ws'));
} catch {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  ({ WebSocketServer } = require(path.join(root, 'node_modules', 'ws')));
}

function parseSize(s) {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  const mult = { b: 1, kib: 1024, mib: 1 << 20, gib: 1 << 30, kb: 1e3, mb: 1e6, gb: 1e9 };
  return Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()] : 1);
}
function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw new Error(`bad duration ${s}`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000 }[m[2] || 's']);
}

const opts = {
  host: '127.0.0.1', port: 0, maxMessage: 16 << 20, origins: null, handshakeTimeout: 10000,
  compression: true, subprotocols: ['echo'], maxHeaderBytes: 16384, pingInterval: 25000,
  idleTimeout: 35000, echoPaths: ['/echo'], tlsCert: null, tlsKey: null,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => argv[++i];
  switch (a) {
    case '--host': opts.host = next(); break;
    case '--port': opts.port = Number(next()); break;
    case '--threads': case '--log-level': case '--max-connections':
    case '--max-connections-per-ip': next(); break;
    case '--max-message-size': opts.maxMessage = parseSize(next()); break;
    case '--allowed-origins': opts.origins = next().split(',').map((s) => s.trim()); break;
    case '--handshake-timeout': opts.handshakeTimeout = parseDuration(next()); break;
    case '--ping-interval': opts.pingInterval = parseDuration(next()); break;
    case '--idle-timeout': opts.idleTimeout = parseDuration(next()); break;
    case '--no-compression': opts.compression = false; break;
    case '--subprotocols': opts.subprotocols = next().split(',').map((s) => s.trim()); break;
    case '--echo-path': opts.echoPaths.push(next()); break;
    // wss:// (node's https module): PEM certificate chain and key.
    case '--tls-cert': opts.tlsCert = next(); break;
    case '--tls-key': opts.tlsKey = next(); break;
    default:
      process.stderr.write(`ws_echo_server: unknown flag ${a}\n`);
      process.exit(2);
  }
}

// Mutation testing of the suites themselves: SB_REF_MUTATION=a,b breaks the reference on
// purpose, and the suites must then fail in the matching cases.
const mutation = new Set((process.env.SB_REF_MUTATION || '').split(',').filter(Boolean));
if (mutation.has('no-deflate')) opts.compression = false;
if (mutation.has('no-limit')) opts.maxMessage = 64 << 20;
if (mutation.has('no-origin-check')) opts.origins = null;
if (mutation.has('no-handshake-timeout')) opts.handshakeTimeout = 1e9;

const wss = new WebSocketServer({
  noServer: true,
  skipUTF8Validation: mutation.has('skip-utf8'),
  maxPayload: opts.maxMessage,
  // ws caps fragments per message at 16384 by default; Autobahn 9.3.1/9.4.1 send 65536.
  maxFragments: 0,
  perMessageDeflate: opts.compression ? { threshold: 0 } : false,
  handleProtocols: (offered) => {
    for (const p of offered) if (opts.subprotocols.includes(p)) return p;
    return false;
  },
});

function body(error, message) {
  return JSON.stringify({ error, message });
}

// Returns null when the request is an acceptable WebSocket upgrade, else [status, error,
// message, extraHeaders]. Order: path, method, HTTP version, Upgrade, Connection, version,
// key, origin.
function checkHandshake(req) {
  const url = new URL(req.url, 'http://x');
  if (!opts.echoPaths.includes(url.pathname)) return [404, 'not_found', 'no such endpoint', {}];
  if (req.method !== 'GET') {
    return [405, 'method_not_allowed', 'WebSocket upgrade needs GET', { Allow: 'GET' }];
  }
  if (req.httpVersion !== '1.1') return [400, 'bad_request', 'HTTP/1.1 required', {}];
  const upgrade = (req.headers.upgrade || '').toLowerCase();
  const need426 = { 'Sec-WebSocket-Version': '13', Upgrade: 'websocket', Connection: 'Upgrade' };
  if (upgrade !== 'websocket') return [426, 'upgrade_required', 'Upgrade: websocket required', need426];
  const conn = (req.headers.connection || '').toLowerCase().split(',').map((s) => s.trim());
  if (!conn.includes('upgrade')) return [400, 'bad_request', 'Connection: Upgrade required', {}];
  if (req.headers['sec-websocket-version'] !== '13') {
    return [426, 'unsupported_version', 'Sec-WebSocket-Version 13 required', need426];
  }
  const key = req.headers['sec-websocket-key'];
  if (!key || !/^[+/0-9A-Za-z]{22}==$/.test(key)) {
    return [400, 'bad_request', 'invalid Sec-WebSocket-Key', {}];
  }
  if (opts.origins && !opts.origins.includes(req.headers.origin)) {
    return [403, 'origin_not_allowed', 'Origin not allowed', {}];
  }
  return null;
}

function rawResponse(status, text, headers, payload) {
  const lines = [`HTTP/1.1 ${status} ${text}`, 'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(payload)}`, 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n' + payload;
}

const serverOptions = { maxHeaderSize: opts.maxHeaderBytes };
if (opts.tlsCert) {
  serverOptions.cert = fs.readFileSync(opts.tlsCert);
  serverOptions.key = fs.readFileSync(opts.tlsKey);
}
const server = (opts.tlsCert ? https : http).createServer(serverOptions, (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/healthz') {
    const b = body('', 'ok').replace('"error":""', '"status":"ok"');
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
    res.end(b);
    return;
  }
  const bad = checkHandshake(req) || [426, 'upgrade_required', 'WebSocket endpoint', {}];
  const [status, error, message, headers] = bad;
  const b = body(error, message);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b),
    Connection: 'close', ...headers });
  res.end(b);
});

server.on('upgrade', (req, socket, head) => {
  const bad = checkHandshake(req);
  if (bad) {
    const [status, error, message, headers] = bad;
    socket.end(rawResponse(status, http.STATUS_CODES[status], headers, body(error, message)));
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    clearTimeout(socket.handshakeTimer);
    wss.emit('connection', ws, req);
  });
});

server.on('clientError', (err, socket) => {
  if (!socket.writable) { socket.destroy(); return; }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    socket.end(rawResponse(431, 'Request Header Fields Too Large', {},
      body('headers_too_large', 'request headers too large')));
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy();
  } else {
    socket.end(rawResponse(400, 'Bad Request', {}, body('bad_request', err.code || 'bad request')));
  }
});

// With TLS, 'connection' is the raw TCP socket; the timer must go on the TLS socket that
// 'upgrade' hands over, which is 'secureConnection'.
server.on(opts.tlsCert ? 'secureConnection' : 'connection', (socket) => {
  socket.handshakeTimer = setTimeout(() => socket.destroy(), opts.handshakeTimeout);
  socket.on('close', () => clearTimeout(socket.handshakeTimer));
});

wss.on('connection', (ws) => {
  ws.isAliveAt = Date.now();
  const alive = () => { ws.isAliveAt = Date.now(); };
  ws.on('pong', alive);
  ws.on('ping', alive);
  ws.on('message', (data, isBinary) => {
    alive();
    if (mutation.has('corrupt-large') && data.length >= 65536) data[data.length - 1] ^= 1;
    if (mutation.has('text-as-binary')) isBinary = true;
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

const pinger = setInterval(() => {
  const now = Date.now();
  for (const ws of wss.clients) {
    if (now - ws.isAliveAt > opts.idleTimeout) ws.terminate();
    else ws.ping();
  }
}, opts.pingInterval);
pinger.unref();

process.on('SIGTERM', () => {
  server.close();
  const done = () => process.exit(0);
  if (wss.clients.size === 0) done();
  for (const ws of wss.clients) {
    ws.on('close', () => { if (wss.clients.size === 0) done(); });
    ws.close(mutation.has('sigterm-1000') ? 1000 : 1001, 'server shutting down');
  }
  setTimeout(done, 3000).unref();
});

server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  process.stdout.write(`switchboard listening on ${address}:${port}\n`);
});
