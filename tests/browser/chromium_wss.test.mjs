// Browser over TLS: headless Chromium loads the demo page from https://localhost:PORT/ (its chat
// then runs over wss:// /ws) and a page script echoes text and binary over
// `new WebSocket('wss://localhost:PORT/echo')`. The server's certificate (from a throwaway CA,
// tests/support/tls_ca.mjs) is trusted only through
// --ignore-certificate-errors-spki-list=<base64 SHA-256 of its SubjectPublicKeyInfo>; a second
// server whose certificate is not in that list is refused, both as a page and as a WebSocket.
//   SB_SERVER=build/release/switchboard node --test tests/browser/chromium_wss.test.mjs
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { makeTestCA } from '../support/tls_ca.mjs';

let ca;
let trusted;   // server whose certificate's SPKI is in the list
let other;     // server with another key: not in the list
let browser;
let page;

// The pin the way the brief of this suite spells it, with the openssl CLI only.
function spkiPin(certFile) {
  return execFileSync('sh', ['-c',
    'openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | ' +
    'openssl dgst -sha256 -binary | base64', 'sh', certFile]).toString().trim();
}

before(async () => {
  assert.ok(process.env.SB_SERVER, 'set SB_SERVER=<switchboard binary> (the node reference servers speak no TLS)');
  ca = makeTestCA();
  const good = ca.issue('server');
  const second = ca.issue('other', { cn: 'localhost-other' });
  const pin = spkiPin(good.cert);
  assert.equal(pin, good.spkiSha256Base64(), 'two ways of computing the SPKI pin disagree');
  assert.notEqual(pin, second.spkiSha256Base64());
  const tls = (c) => ['--tls-cert', c.cert, '--tls-key', c.key];
  trusted = await startServer({ kind: 'switchboard', flags: tls(good) });
  other = await startServer({ kind: 'switchboard', flags: tls(second) });
  browser = await launchChromium([
    `--ignore-certificate-errors-spki-list=${pin}`,
    // localhost is 127.0.0.1 only (the servers listen there; no ::1 attempt first).
    '--host-resolver-rules=MAP localhost 127.0.0.1',
  ]);
  page = browser.context.pages()[0] || await browser.context.newPage();
});

after(async () => {
  await browser?.close();
  const alive = [trusted?.alive(), other?.alive()];
  await trusted?.stop();
  await other?.stop();
  ca?.cleanup();
  assert.ok(alive[0] !== false, `trusted server died during the suite: ${trusted?.stderr()}`);
  assert.ok(alive[1] !== false, `second server died during the suite: ${other?.stderr()}`);
});

const origin = (s) => `https://localhost:${s.port}`;

// Runs in the page: opens a socket, echoes each message, compares byte for byte.
async function pageEcho({ url, messages }) {
  const ws = new WebSocket(url, ['echo']);
  ws.binaryType = 'arraybuffer';
  const opened = await new Promise((resolve) => {
    const t = setTimeout(() => resolve('no open within 15 s'), 15000);
    ws.onopen = () => { clearTimeout(t); resolve(true); };
    ws.onerror = () => { clearTimeout(t); resolve('error event'); };
    ws.onclose = (e) => { clearTimeout(t); resolve(`closed ${e.code}`); };
  });
  if (opened !== true) return { error: `WebSocket failed to open: ${opened}` };
  for (const { kind, size } of messages) {
    let sent;
    if (kind === 'binary') {
      const b = new Uint8Array(size);
      for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
      sent = b.buffer;
    } else {
      const unit = 'aé€😀'; // 10 UTF-8 bytes
      sent = unit.repeat(Math.floor(size / 10)) + 'b'.repeat(size % 10);
    }
    const got = await new Promise((resolve) => {
      const t = setTimeout(() => resolve({ error: 'no echo within 30 s' }), 30000);
      ws.onmessage = (e) => { clearTimeout(t); resolve({ data: e.data }); };
      ws.onclose = (e) => { clearTimeout(t); resolve({ error: `closed ${e.code} before the echo` }); };
      ws.send(sent);
    });
    if (got.error) return { error: `${kind} ${size} B: ${got.error}` };
    if (kind === 'binary') {
      const a = new Uint8Array(got.data);
      const s = new Uint8Array(sent);
      if (!(got.data instanceof ArrayBuffer) || a.length !== s.length) return { error: `binary ${size} B: echo differs in type or length` };
      for (let i = 0; i < size; i++) if (a[i] !== s[i]) return { error: `binary ${size} B: byte ${i} differs` };
    } else if (got.data !== sent) {
      return { error: `text ${size} B: echo differs` };
    }
  }
  const code = await new Promise((resolve) => {
    const t = setTimeout(() => resolve('no close within 10 s'), 10000);
    ws.onclose = (e) => { clearTimeout(t); resolve(e.code); };
    ws.close(1000, 'done');
  });
  return { closeCode: code, protocol: ws.protocol, secure: window.isSecureContext };
}

test('https:// demo page loads and its chat connects over wss:// /ws', { timeout: 60000 }, async () => {
  const resp = await page.goto(`${origin(trusted)}/echo.html`);
  assert.equal(resp.status(), 200);
  const tlsInfo = await resp.securityDetails();
  assert.ok(tlsInfo, 'no TLS details for the page');
  assert.match(tlsInfo.protocol, /TLS 1\.[23]/, `protocol ${tlsInfo.protocol}`);
  assert.equal(tlsInfo.subjectName, 'localhost', `certificate ${JSON.stringify(tlsInfo)}`);
  await page.waitForFunction(() => /connected as /.test(document.getElementById('log').textContent),
    null, { timeout: 15000 });
  const status = await page.textContent('#status');
  assert.match(status, /^connected to wss:\/\/localhost:\d+\/ws/, `status: ${status}`);
});

test('wss:// /echo from the page: text and binary, 0 B to 1 MiB', { timeout: 90000 }, async () => {
  const r = await page.evaluate(pageEcho, {
    url: `wss://localhost:${trusted.port}/echo`,
    messages: [{ kind: 'text', size: 0 }, { kind: 'text', size: 1000 }, { kind: 'text', size: 1 << 20 },
      { kind: 'binary', size: 0 }, { kind: 'binary', size: 65536 }, { kind: 'binary', size: 1 << 20 }],
  });
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.protocol, 'echo');
  assert.equal(r.secure, true, 'the page is not a secure context');
  assert.equal(r.closeCode, 1000, `close code ${r.closeCode}`);
});

test('a server whose certificate is not in the SPKI list: the page does not load', { timeout: 60000 }, async () => {
  const p = await browser.context.newPage();
  try {
    const err = await p.goto(`${origin(other)}/echo.html`).then(() => null, (e) => e);
    assert.ok(err, 'https page of a server with an untrusted certificate loaded');
    assert.match(err.message, /ERR_CERT_/, `navigation failed, but not on the certificate: ${err.message}`);
  } finally {
    await p.close();
  }
});

test('... and a WebSocket to it from the trusted page fails', { timeout: 60000 }, async () => {
  const r = await page.evaluate(pageEcho, {
    url: `wss://localhost:${other.port}/echo`, messages: [{ kind: 'text', size: 10 }],
  });
  assert.match(r.error ?? '', /failed to open/, `WebSocket to the untrusted server: ${JSON.stringify(r)}`);
  // The trusted server still works from the same page afterwards.
  const ok = await page.evaluate(pageEcho, {
    url: `wss://localhost:${trusted.port}/echo`, messages: [{ kind: 'text', size: 10 }],
  });
  assert.equal(ok.error, undefined, ok.error);
});
