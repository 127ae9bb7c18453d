// Browser: @stomp/stompjs (its UMD bundle, added to the page) in headless Chromium, with the
// browser's own WebSocket, against STOMP on /ws. The page is loaded from the server's origin
// (/metrics: it runs no script of its own). A native /ws client in node is the other side:
// what it publishes reaches the page's subscription exactly once and in order, what the page
// SENDs reaches it the same way; NACK redelivers; heart-beats flow both ways. The page writes
// what it received into the document; the test saves a screenshot in its temp dir.
//   SB_SERVER=build/release/switchboard node --test tests/browser/stomp_browser.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { REPO_ROOT, deadline, startServer } from '../support/server.mjs';

const require = createRequire(import.meta.url);
function resolve(name) {
  try { return require.resolve(name); } catch { return require.resolve(path.join(REPO_ROOT, 'node_modules', name)); }
}
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }
const STOMP_BUNDLE = path.join(path.dirname(resolve('@stomp/stompjs/package.json')), 'bundles', 'stomp.umd.min.js');

const CONFIG = `
[namespaces.chat]
history_size = 100
`;

let tmp;
let server;
let browser;
const sockets = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A native /ws client in node. */
async function native() {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, ['switchboard.v1.json']);
  sockets.push(ws);
  const events = [];
  const waiting = new Map();
  let next = 1;
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.id !== undefined && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); } else events.push(m);
  });
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  const request = (msg) => {
    const id = next++;
    const p = new Promise((ok) => waiting.set(id, ok));
    ws.send(JSON.stringify({ ...msg, id }));
    return deadline(p, 5000, `reply to ${msg.type}`);
  };
  assert.equal((await request({ type: 'connect' })).type, 'connected');
  return { events, request };
}

describe('stompjs in Chromium against STOMP on /ws', () => {
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-stomp-browser-'));
    fs.writeFileSync(path.join(tmp, 'sb.toml'), CONFIG);
    server = await startServer({ kind: 'switchboard', flags: ['--config', path.join(tmp, 'sb.toml')] });
    browser = await launchChromium();
  });

  after(async () => {
    for (const s of sockets) s.terminate();
    await browser?.close();
    const alive = server?.alive();
    await server?.stop();
    assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
    console.log(`# screenshot kept in ${tmp}`);
  });

  test('subscribe, receive from a native publisher, SEND to a native subscriber, NACK, heart-beats', async () => {
    const page = await browser.context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.port}/metrics`);
    await page.addScriptTag({ path: STOMP_BUNDLE });
    const tag = Math.random().toString(16).slice(2, 8);
    const channel = `chat:browser-${tag}`;
    const dest = `/topic/chat.browser-${tag}`;

    // The page connects with heart-beats both ways (500 ms) and subscribes (client-individual).
    const connected = await page.evaluate(({ dest }) => new Promise((resolve, reject) => {
      document.body.innerHTML = '<h1>STOMP</h1><div id="state"></div><pre id="log"></pre>';
      const log = document.getElementById('log');
      const state = document.getElementById('state');
      const client = new StompJs.Client({
        brokerURL: `ws://${location.host}/ws`,
        reconnectDelay: 0, heartbeatIncoming: 500, heartbeatOutgoing: 500,
      });
      window.t = { client, got: [], errors: [], closes: [], lost: 0, nackedOnce: false };
      client.onHeartbeatLost = () => { window.t.lost++; };
      client.onStompError = (f) => { window.t.errors.push(f.headers.message); };
      client.onWebSocketClose = (e) => { window.t.closes.push(e.code); state.textContent = `closed ${e.code}`; };
      client.onConnect = (f) => {
        state.textContent = `connected, STOMP ${f.headers.version} over ${client.webSocket.protocol}`;
        client.subscribe(dest, (m) => {
          window.t.got.push({ body: m.body, type: m.headers['content-type'], offset: m.headers.offset, redelivered: m.headers.redelivered === 'true' });
          log.textContent += `#${m.headers.offset}${m.headers.redelivered ? ' (again)' : ''} ${m.body}\n`;
          // The first message is NACKed once: it must come back.
          if (!window.t.nackedOnce) { window.t.nackedOnce = true; m.nack(); } else m.ack();
        }, { ack: 'client-individual', receipt: 'sub' });
        client.watchForReceipt('sub', () => resolve({ version: f.headers.version, protocol: client.webSocket.protocol }));
      };
      setTimeout(() => reject(new Error('no CONNECTED + RECEIPT in 5 s')), 5000);
      client.activate();
    }), { dest });
    assert.deepEqual(connected, { version: '1.2', protocol: 'v12.stomp' });

    // Native publisher → the page.
    const pub = await native();
    const N = 30;
    for (let i = 0; i < N; i++) {
      const r = await pub.request({ type: 'publish', channel, data: i % 2 ? `text ${i}` : { i } });
      assert.equal(r.type, 'published');
    }
    const got = () => page.evaluate(() => window.t.got);
    const end = Date.now() + 10000;
    while ((await got()).length < N + 1 && Date.now() < end) await sleep(50);
    const messages = await got();
    assert.equal(messages.length, N + 1, `${N} messages and one redelivery: ${JSON.stringify(messages)}`);
    // The redelivery comes as soon as the NACK arrives: among the first ones, not first.
    const again = messages.filter((m) => m.redelivered);
    assert.equal(again.length, 1, 'the NACKed first message comes again, once');
    assert.equal(again[0].offset, messages[0].offset);
    const firsts = messages.filter((m) => !m.redelivered);
    assert.deepEqual(firsts.map((m) => (m.type === 'application/json' ? JSON.parse(m.body).i : Number(m.body.slice(5)))),
      Array.from({ length: N }, (_, i) => i), 'every publication once, in order');

    // The page → a native subscriber.
    const sub = await native();
    assert.equal((await sub.request({ type: 'subscribe', channel })).type, 'subscribed');
    await page.evaluate(({ dest }) => new Promise((resolve) => {
      for (let i = 0; i < 20; i++) window.t.client.publish({ destination: dest, body: `from page ${i}` });
      window.t.client.watchForReceipt('last', resolve);
      window.t.client.publish({ destination: dest, body: 'from page 20', headers: { receipt: 'last' } });
    }), { dest });
    const fromPage = () => sub.events.filter((e) => e.type === 'message').map((e) => e.data);
    const end2 = Date.now() + 5000;
    while (fromPage().length < 21 && Date.now() < end2) await sleep(20);
    assert.deepEqual(fromPage(), Array.from({ length: 21 }, (_, i) => `from page ${i}`));

    // Heart-beats both ways keep an otherwise idle connection open.
    await sleep(2000);
    const t = await page.evaluate(() => ({ lost: window.t.lost, errors: window.t.errors, closes: window.t.closes, connected: window.t.client.connected }));
    assert.deepEqual(t, { lost: 0, errors: [], closes: [], connected: true });

    await page.screenshot({ path: path.join(tmp, 'stomp-browser.png') });
    fs.writeFileSync(path.join(tmp, 'stomp-browser.txt'), await page.evaluate(() => document.body.innerText));
    await page.evaluate(() => window.t.client.deactivate());
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
