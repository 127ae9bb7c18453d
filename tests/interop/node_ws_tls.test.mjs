// Interop over TLS: the node `ws` client against wss:// /echo of a server started with
// --tls-cert/--tls-key (a throwaway CA from tests/support/tls_ca.mjs, trusted only through ws's
// `ca:` option). Text and binary, 0 B to 16 MiB, permessage-deflate off and on; https://
// /healthz with node's https; a client without the CA, with another CA or asking for another
// name gets a certificate error and the server keeps serving.
//   SB_SERVER=build/release/switchboard node --test tests/interop/node_ws_tls.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT, SIZES, binaryOf, deadline, startServer, textOf } from '../support/server.mjs';
import { makeTestCA } from '../support/tls_ca.mjs';

const require = createRequire(import.meta.url);
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }

let ca;
let good;
let rogue;
let caPem;
let server;

before(async () => {
  assert.ok(process.env.SB_SERVER, 'set SB_SERVER=<switchboard binary> (the node reference servers speak no TLS)');
  ca = makeTestCA();
  good = ca.issue('server');
  rogue = ca.selfSigned('rogue');
  caPem = fs.readFileSync(ca.cert);
  server = await startServer({
    kind: 'switchboard',
    flags: ['--max-message-size', '16MiB', '--tls-cert', good.cert, '--tls-key', good.key],
  });
});

after(async () => {
  const alive = server?.alive();
  await server?.stop();
  ca?.cleanup();
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

// Connects to 127.0.0.1 only; `servername` is the name verified (SNI and the certificate).
const wssUrl = (p = '/echo') => `wss://127.0.0.1:${server.port}${p}`;

function open({ deflate = false, tls = { ca: caPem, servername: 'localhost' } } = {}) {
  const ws = new WebSocket(wssUrl(), ['echo'], {
    perMessageDeflate: deflate ? { threshold: 0 } : false, maxPayload: 0, ...tls,
  });
  const ready = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return deadline(ready, 10000, 'wss:// open');
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onClose = (code, reason) => reject(new Error(`closed ${code} ${reason} before the echo`));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => { ws.off('close', onClose); resolve({ data, isBinary }); });
    ws.once('error', reject);
  });
}

function closeAndSee(ws) {
  const closed = new Promise((resolve) => ws.once('close', (c) => resolve(c)));
  ws.close(1000, 'bye');
  return deadline(closed, 10000, 'close handshake');
}

async function roundTrip({ deflate, kind, size }) {
  const ws = await open({ deflate });
  const sock = ws._socket;
  assert.ok(sock.encrypted, 'the WebSocket is not on a TLS socket');
  assert.match(sock.getProtocol(), /^TLSv1\.[23]$/, `TLS version ${sock.getProtocol()}`);
  assert.equal(/permessage-deflate/.test(ws.extensions), deflate, `extensions "${ws.extensions}"`);
  const binary = kind === 'binary';
  const data = binary ? binaryOf(size) : textOf(size);
  const echoed = nextMessage(ws);
  ws.send(data, { binary });
  const { data: got, isBinary } = await deadline(echoed, 60000, `echo of ${size} B`);
  assert.equal(isBinary, binary, 'echo opcode differs');
  const expect = binary ? data : Buffer.from(data, 'utf8');
  assert.equal(got.length, expect.length, 'echo length differs');
  assert.ok(Buffer.compare(got, expect) === 0, 'echo content differs');
  assert.equal(await closeAndSee(ws), 1000);
}

// Resolves with the error a wss:// open ends in (rejects if it opens).
async function openError(tls) {
  try {
    const ws = await open({ tls });
    ws.terminate();
  } catch (e) {
    return e;
  }
  throw new Error('the wss:// connection opened');
}

describe('wss:// echo, CA trusted through `ca:`', () => {
  for (const kind of ['text', 'binary']) {
    for (const size of SIZES) {
      test(`${kind} ${size} B`, { timeout: 90000 }, () => roundTrip({ deflate: false, kind, size }));
    }
    test(`${kind} 1 MiB with permessage-deflate`, { timeout: 90000 },
      () => roundTrip({ deflate: true, kind, size: 1 << 20 }));
  }

  test('several messages on one connection, in order', { timeout: 60000 }, async () => {
    const ws = await open();
    const sizes = [0, 1, 1000, 70000, 300000, 5];
    const got = [];
    const all = new Promise((resolve, reject) => {
      ws.on('message', (d) => { got.push(d.length); if (got.length === sizes.length) resolve(); });
      ws.once('close', (c) => reject(new Error(`closed ${c}`)));
    });
    for (const n of sizes) ws.send(binaryOf(n), { binary: true });
    await deadline(all, 30000, 'all echoes');
    assert.deepEqual(got, sizes);
    assert.equal(await closeAndSee(ws), 1000);
  });

  test('the IP SAN verifies too (no servername)', async () => {
    const ws = await open({ tls: { ca: caPem } });
    assert.equal(await closeAndSee(ws), 1000);
  });
});

describe('https://', () => {
  test('GET /healthz with node https and the CA, ALPN http/1.1', async () => {
    const res = await deadline(new Promise((resolve, reject) => {
      const req = https.get({
        host: '127.0.0.1', port: server.port, path: '/healthz', ca: caPem,
        servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'], agent: false,
      }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d) => { body += d; });
        r.on('end', () => resolve({ status: r.statusCode, body, alpn: r.socket.alpnProtocol }));
      });
      req.on('error', reject);
    }), 10000, 'GET /healthz');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ok\n');
    assert.equal(res.alpn, 'http/1.1');
  });
});

describe('refused', () => {
  test('a client without the CA gets a certificate error', async () => {
    const e = await openError({ servername: 'localhost' });
    assert.equal(e.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', `${e.code}: ${e.message}`);
  });

  test('a client trusting another certificate only gets a certificate error', async () => {
    const e = await openError({ ca: rogue.pem(), servername: 'localhost' });
    assert.equal(e.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', `${e.code}: ${e.message}`);
  });

  test('a client asking for another name gets ERR_TLS_CERT_ALTNAME_INVALID', async () => {
    const e = await openError({ ca: caPem, servername: 'other.example' });
    assert.equal(e.code, 'ERR_TLS_CERT_ALTNAME_INVALID', `${e.code}: ${e.message}`);
  });

  test('after the refusals a trusting client still echoes', { timeout: 30000 },
    () => roundTrip({ deflate: false, kind: 'text', size: 4096 }));
});
