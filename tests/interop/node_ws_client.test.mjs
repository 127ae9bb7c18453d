// Interop: the node `ws` client against /echo. Text and binary, 0 B to 16 MiB, whole and
// fragmented (ws's `fin: false`), with permessage-deflate on and off; subprotocol and close
// codes as the client sees them.
//   SB_SERVER=build/release/switchboard node --test tests/interop/node_ws_client.test.mjs
//   SB_REFERENCE=ws node --test tests/interop/node_ws_client.test.mjs   (proves the checks)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT, SIZES, binaryOf, deadline, startServer, textOf } from '../support/server.mjs';

const require = createRequire(import.meta.url);
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }

let server;
before(async () => { server = await startServer({ flags: ['--max-message-size', '16MiB'] }); });
after(async () => {
  const alive = server?.alive();
  await server?.stop();
  assert.ok(alive, `server died during the suite: ${server?.stderr()}`);
});

function open(deflate, extra = {}) {
  const ws = new WebSocket(server.url('/echo'), ['echo'], {
    perMessageDeflate: deflate ? { threshold: 0 } : false, maxPayload: 0, ...extra,
  });
  const ready = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return deadline(ready, 10000, 'WebSocket open');
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onClose = (code, reason) => reject(new Error(`closed ${code} ${reason} before the echo`));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => { ws.off('close', onClose); resolve({ data, isBinary }); });
    ws.once('error', reject);
  });
}

function closeAndSee(ws, code = 1000, reason = 'bye') {
  const closed = new Promise((resolve) => ws.once('close', (c, r) => resolve({ code: c, reason: r.toString() })));
  ws.close(code, reason);
  return deadline(closed, 10000, 'close handshake');
}

async function sendAll(ws, parts, binary) {
  for (let i = 0; i < parts.length; i++) {
    await new Promise((resolve, reject) => ws.send(parts[i], { binary, fin: i === parts.length - 1 },
      (err) => (err ? reject(err) : resolve())));
  }
}

function splitText(s, n) {
  // Split on code points so every fragment is a well-formed string for ws to encode.
  const cps = Array.from(s);
  const out = [];
  for (let i = 0; i < cps.length; i += n) out.push(cps.slice(i, i + n).join(''));
  return out.length ? out : [''];
}

function splitBuf(b, n) {
  const out = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out.length ? out : [Buffer.alloc(0)];
}

async function roundTrip({ deflate, kind, size, fragment }) {
  const ws = await open(deflate);
  const negotiated = /permessage-deflate/.test(ws.extensions);
  assert.equal(negotiated, deflate, `permessage-deflate negotiated=${negotiated} (extensions "${ws.extensions}")`);
  assert.equal(ws.protocol, 'echo', `subprotocol "${ws.protocol}"`);
  const binary = kind === 'binary';
  const data = binary ? binaryOf(size) : textOf(size);
  const echoed = nextMessage(ws);
  if (fragment) {
    await sendAll(ws, binary ? splitBuf(data, fragment) : splitText(data, fragment), binary);
  } else {
    ws.send(data, { binary });
  }
  const { data: got, isBinary } = await deadline(echoed, 60000, `echo of ${size} B`);
  assert.equal(isBinary, binary, 'echo opcode differs');
  const expect = binary ? data : Buffer.from(data, 'utf8');
  assert.equal(got.length, expect.length, 'echo length differs');
  assert.ok(Buffer.compare(got, expect) === 0, 'echo content differs');
  const { code } = await closeAndSee(ws);
  assert.equal(code, 1000, `close code seen ${code}`);
}

for (const deflate of [false, true]) {
  describe(`permessage-deflate ${deflate ? 'on' : 'off'}`, () => {
    for (const kind of ['text', 'binary']) {
      for (const size of SIZES) {
        test(`${kind} ${size} B`, { timeout: 90000 }, () => roundTrip({ deflate, kind, size }));
      }
      for (const [size, fragment] of [[126, 10], [65536, 4096], [1 << 20, 65536], [16 << 20, 1 << 20]]) {
        test(`${kind} ${size} B in ${fragment}-unit fragments`, { timeout: 90000 },
          () => roundTrip({ deflate, kind, size, fragment }));
      }
    }
  });
}

describe('close codes', () => {
  for (const code of [1000, 1001, 3000, 4999]) {
    test(`client closes with ${code}, server answers ${code} or 1000`, async () => {
      const ws = await open(false);
      const { code: seen } = await closeAndSee(ws, code);
      assert.ok(seen === code || seen === 1000, `server answered ${seen}`);
    });
  }
  test('message over --max-message-size (16 MiB + 1) -> close 1009', { timeout: 60000 }, async () => {
    const ws = await open(false);
    const closed = new Promise((resolve) => ws.once('close', (c) => resolve(c)));
    ws.on('error', () => {});
    ws.send(Buffer.alloc((16 << 20) + 1));
    const code = await deadline(closed, 30000, 'close after an oversized message');
    assert.equal(code, 1009);
  });
});
