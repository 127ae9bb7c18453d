// Browser interop: Debian's Chromium (driven by playwright-core) opens
// `new WebSocket('ws://127.0.0.1:PORT/echo')` in a page and round-trips text and binary
// (ArrayBuffer) messages of 0 B, 1 KiB, 1 MiB and 16 MiB; Chromium must negotiate
// permessage-deflate. Data is generated and compared inside the page.
//   SB_SERVER=build/release/switchboard node --test tests/browser/chromium_echo.test.mjs
//   SB_REFERENCE=ws node --test tests/browser/chromium_echo.test.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

let server;
let context;
let page;
let browser;

before(async () => {
  server = await startServer({ flags: ['--max-message-size', '16MiB'] });
  browser = await launchChromium();
  context = browser.context;
  page = context.pages()[0] || await context.newPage();
  await page.setContent('<!doctype html><title>switchboard echo</title><body>echo</body>');
});

after(async () => {
  await browser?.close();
  const alive = server?.alive();
  await server?.stop();
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

// Runs in the page: opens a socket, sends one message, compares the echo byte for byte.
async function pageRoundTrip({ url, kind, size }) {
  const ws = new WebSocket(url, ['echo']);
  ws.binaryType = 'arraybuffer';
  const opened = await new Promise((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
    ws.onclose = (e) => resolve(false);
  });
  if (!opened) return { error: 'WebSocket failed to open' };
  let sent;
  if (kind === 'binary') {
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
    sent = b.buffer;
  } else {
    const unit = 'aé€😀'; // 10 UTF-8 bytes
    sent = unit.repeat(Math.floor(size / 10)) + 'b'.repeat(size % 10);
  }
  const result = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ error: 'no echo within 60 s' }), 60000);
    ws.onmessage = (e) => { clearTimeout(timer); resolve({ data: e.data }); };
    ws.onclose = (e) => { clearTimeout(timer); resolve({ error: `closed ${e.code} ${e.reason} before the echo` }); };
    ws.send(sent);
  });
  const out = { extensions: ws.extensions, protocol: ws.protocol };
  if (result.error) return { ...out, error: result.error };
  const got = result.data;
  if (kind === 'binary') {
    if (!(got instanceof ArrayBuffer)) return { ...out, error: `echo is ${typeof got}, expected ArrayBuffer` };
    if (got.byteLength !== size) return { ...out, error: `echo ${got.byteLength} B, sent ${size}` };
    const a = new Uint8Array(got);
    const s = new Uint8Array(sent);
    for (let i = 0; i < size; i++) if (a[i] !== s[i]) return { ...out, error: `byte ${i} differs` };
  } else {
    if (typeof got !== 'string') return { ...out, error: 'echo of a text message is not a string' };
    if (got !== sent) return { ...out, error: `text echo differs (${got.length} vs ${sent.length} UTF-16 units)` };
  }
  const closeCode = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('no close within 10 s'), 10000);
    ws.onclose = (e) => { clearTimeout(timer); resolve(e.code); };
    ws.close(1000, 'done');
  });
  return { ...out, closeCode };
}

for (const kind of ['text', 'binary']) {
  for (const size of [0, 1024, 1 << 20, 16 << 20]) {
    test(`chromium ${kind} ${size} B round trip`, { timeout: 120000 }, async () => {
      const r = await page.evaluate(pageRoundTrip, { url: server.url('/echo'), kind, size });
      assert.equal(r.error, undefined, r.error);
      assert.match(r.extensions, /permessage-deflate/, `Chromium did not negotiate permessage-deflate (extensions "${r.extensions}")`);
      assert.equal(r.protocol, 'echo');
      assert.equal(r.closeCode, 1000, `close code seen ${r.closeCode}`);
    });
  }
}
