// Browser: the chat demo without WebSockets. The pages load through a TCP proxy that refuses
// WebSocket upgrades (as some corporate proxies do): alice's page, with the client's default
// transport order, must fall back to Server-Sent Events by itself; bob's page forces
// long-polling with `/?transports=polling`. Both chat with each other and with carol (the JS
// client in Node over a WebSocket straight to the server): presence, typing, messages; then the
// network drops under both pages (proxy cut) while carol publishes: reconnecting…, connected,
// and every message once, in order; then the server restarts (memory engine): both pages reload
// the room and the first message after it reaches everyone. carol (and dave, after the restart)
// also subscribe to the room over their WebSocket: a channel with WebSocket, SSE and long-polling
// subscribers on one event loop (the server once lost every publication for an SSE stream that
// came after a WebSocket in a channel's fan-out). No request may leave the page's origin.
//   SB_SERVER=build/release/switchboard node --test tests/browser/chat_fallback.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Switchboard } from '../../clients/js/dist/index.js';
import { launchChromium } from '../support/browser.mjs';
import { REPO_ROOT, startServer } from '../support/server.mjs';

const require = createRequire(import.meta.url);
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }

const WAIT = { timeout: 30000 };

// A TCP proxy: browser ⇄ proxy ⇄ server. cut() destroys every open pair (the browser sees its
// connection die, as when a network drops); block(true) refuses new connections at once (the
// network stays down); upstream(port) points new connections at another server.
// Here it also refuses WebSocket upgrades, as some corporate proxies do: a connection whose
// request asks for `Upgrade: websocket` is dropped before it reaches the server.
function startProxy(targetPort) {
  let target = targetPort;
  let blocked = false;
  const pairs = new Set();
  const server = net.createServer((down) => {
    if (blocked) { down.destroy(); return; }
    const up = net.connect(target, '127.0.0.1');
    const pair = { down, up };
    pairs.add(pair);
    const end = () => { pairs.delete(pair); down.destroy(); up.destroy(); };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    down.on('data', (chunk) => {
      if (/\r\nupgrade:\s*websocket/i.test(chunk.toString('latin1'))) { upgradesRefused++; end(); return; }
      up.write(chunk);
    });
    up.pipe(down);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    cut() { for (const p of [...pairs]) { p.down.destroy(); p.up.destroy(); } pairs.clear(); },
    block(on) { blocked = on; },
    upstream(port) { target = port; },
    close() { this.cut(); return new Promise((r) => server.close(r)); },
  })));
}

let server;
let proxy;
let origin;
let dir;
let alice;        // { browser, page, external: [] }
let bob;
let carol;        // Node client, straight to the server
let carolRoom;    // what carol's subscription to the room received
let dave;         // Node client, straight to the server after the restart
const screenshots = [];

async function openChat(name, viewport, query = '') {
  const browser = await launchChromium();
  const { context } = browser;
  const external = [];
  // Anything not to the page's own origin is refused and recorded (the page must need nothing
  // else: no CDN, font or analytics). WebSockets are not routed: checked in 'websocket' below.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    external.push(url);
    return route.abort();
  });
  await context.addInitScript((n) => { if (!localStorage.getItem('sb-chat-name')) localStorage.setItem('sb-chat-name', n); }, name);
  const page = context.pages()[0] || await context.newPage();
  await page.setViewportSize(viewport);
  page.on('request', (r) => { if (!r.url().startsWith(`${origin}/`) && !r.url().startsWith('data:')) external.push(r.url()); });
  page.on('websocket', (ws) => { if (!ws.url().startsWith(`ws://127.0.0.1:${proxy.port}/`)) external.push(ws.url()); });
  page.on('pageerror', (e) => external.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/${query}#lobby`);
  await connected(page);
  return { browser, page, external, name };
}

const text = (page, sel) => page.locator(sel).innerText();
const connected = (page) => page.waitForFunction(() =>
  document.getElementById('conn-state').textContent === 'connected' &&
  /You joined #\S+ as /.test(document.getElementById('messages').innerText), null, WAIT);
const isText = (page, sel, t) => page.waitForFunction(([s, x]) =>
  document.querySelector(s).innerText === x, [sel, t], WAIT);
const msgCount = (page, n) => page.waitForFunction((k) =>
  document.querySelectorAll('#messages li.msg').length === k, n, WAIT);
const showsText = (page, sel, t) => page.waitForFunction(([s, x]) =>
  document.querySelector(s).innerText.includes(x), [sel, t], WAIT).catch(async (e) => {
  const body = await page.locator('body').innerText().catch(() => '?');
  throw new Error(`${sel} never showed "${t}" (${e.message}); the page:\n${body}`);
});
// The chat lines (not notices) as "user: text", in screen order.
const lines = (page) => page.$$eval('#messages li.msg', (lis) =>
  lis.map((li) => `${li.querySelector('.who').textContent}: ${li.querySelector('.text').textContent}`));
const offsets = (page) => page.$$eval('#messages li.msg', (lis) => lis.map((li) => Number(li.dataset.offset)));

async function say(page, t) {
  await page.fill('#send-text', t);
  await page.press('#send-text', 'Enter');
}

async function shot(who, label) {
  const file = path.join(dir, `${String(screenshots.length + 1).padStart(2, '0')}-${label}-${who.name}.png`);
  await who.page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

let upgradesRefused = 0;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-chat-fallback-'));
  server = await startServer({ kind: 'switchboard' });
  proxy = await startProxy(server.port);
  origin = `http://127.0.0.1:${proxy.port}`;
  carol = new Switchboard(`ws://127.0.0.1:${server.port}/ws`, { user: 'carol', WebSocket, storage: null });
  await carol.connect();
  // Subscribed before the pages: first in the room's fan-out.
  carolRoom = subscribeRoom(carol);
  await carolRoom.sub.ready;
});

// A Node client's subscription to the room: the "user: text" lines it received, in order.
function subscribeRoom(c) {
  const r = { lines: [], errors: [] };
  c.on('error', (e) => r.errors.push(`${e.code}: ${e.message}`));
  r.sub = c.subscribe('chat:lobby', { onMessage: (m) => r.lines.push(`${m.data?.user}: ${m.data?.text}`) });
  return r;
}

async function until(pred, what, ms = 30000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms: ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

after(async () => {
  await alice?.browser.close();
  await bob?.browser.close();
  carol?.disconnect();
  dave?.disconnect();
  await proxy?.close();
  const alive = server?.alive();
  await server?.stop();
  if (process.env.SB_KEEP_SCREENSHOTS) console.log(`# screenshots: ${dir}`);
  else if (dir) fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

test('WebSocket refused: SSE by itself; polling when asked; chat, presence and typing work', { timeout: 120000 }, async () => {
  alice = await openChat('alice', { width: 1200, height: 800 });
  assert.equal(await text(alice.page, '#transport'), 'via sse');
  assert.ok(upgradesRefused >= 1, 'the page never tried a WebSocket');
  bob = await openChat('bob', { width: 390, height: 844 }, '?transports=polling');
  assert.equal(await text(bob.page, '#transport'), 'via polling');
  await showsText(alice.page, '#people', 'bob');
  await showsText(bob.page, '#people', 'alice');
  await showsText(alice.page, '#messages', 'bob joined');

  await say(alice.page, 'over sse');
  await showsText(bob.page, '#messages', 'over sse');
  await bob.page.click('#send-text');
  await bob.page.keyboard.type('over poll', { delay: 20 });
  await showsText(alice.page, '#typing', 'bob is typing…');
  await bob.page.press('#send-text', 'Enter');
  await showsText(alice.page, '#messages', 'over poll');
  await carol.publish('chat:lobby', { user: 'carol', text: 'over ws' });
  for (const who of [alice, bob]) await showsText(who.page, '#messages', 'over ws');
  const expected = ['alice: over sse', 'bob: over poll', 'carol: over ws'];
  assert.deepEqual(await lines(alice.page), expected);
  assert.deepEqual(await lines(bob.page), expected);
  await until(() => carolRoom.lines.length >= expected.length, () => `carol's subscription got ${JSON.stringify(carolRoom.lines)}`);
  assert.deepEqual(carolRoom.lines, expected);
  assert.deepEqual(carolRoom.errors, []);
  await shot(alice, 'sse');
  await shot(bob, 'polling');
});

test('the network drops under SSE and polling: reconnecting…, connected, nothing lost or doubled', { timeout: 120000 }, async () => {
  const before = await lines(alice.page);
  proxy.block(true);
  proxy.cut();
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'reconnecting…', null, WAIT);
  }
  for (const t of ['missed 1', 'missed 2']) await carol.publish('chat:lobby', { user: 'carol', text: t });
  await say(bob.page, 'queued by bob');
  proxy.block(false);
  const after = [...before, 'carol: missed 1', 'carol: missed 2', 'bob: queued by bob'];
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, WAIT);
    await who.page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length >= n, after.length, WAIT);
    assert.deepEqual(await lines(who.page), after, `${who.name}'s messages after the drop`);
    const offs = await offsets(who.page);
    assert.equal(new Set(offs).size, offs.length, `${who.name}: a message shown twice`);
  }
  // Still a fallback, SSE or long-polling: after the SSE stream failed, alice's client tries
  // polling at once (then WebSocket, then backs off): when the network came back between the
  // two, it is on polling (2 of 30 loaded runs), as it may be.
  assert.match(await text(alice.page, '#transport'), /^via (sse|polling)$/);
  assert.equal(await text(bob.page, '#transport'), 'via polling');
  await shot(alice, 'sse-after-drop');
});

test('the server restarts (memory engine): both pages reload the room; the first message after it reaches everyone', { timeout: 120000 }, async () => {
  carol.disconnect();
  await server.stop();                        // history and sessions are gone with it
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'reconnecting…', null, WAIT);
  }
  server = await startServer({ kind: 'switchboard' });
  // dave (WebSocket) subscribes to the room before the pages are back: first in its fan-out.
  dave = new Switchboard(`ws://127.0.0.1:${server.port}/ws`, { user: 'dave', WebSocket, storage: null });
  await dave.connect();
  const daveRoom = subscribeRoom(dave);
  await daveRoom.sub.ready;
  proxy.upstream(server.port);
  for (const who of [alice, bob]) {
    await showsText(who.page, '#conn-note', 'missed messages — reloaded');
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, WAIT);
    await showsText(who.page, '#messages', 'Messages were missed while disconnected: the room was reloaded.');
    assert.deepEqual(await lines(who.page), [], `${who.name}: old messages still shown after the reload`);
  }
  await say(bob.page, 'still here?');
  await showsText(alice.page, '#messages', 'still here?');
  await say(alice.page, 'yes');
  await showsText(bob.page, '#messages', 'yes');
  const expected = ['bob: still here?', 'alice: yes'];
  for (const who of [alice, bob]) {
    await msgCount(who.page, expected.length);
    assert.deepEqual(await lines(who.page), expected, `${who.name}'s messages after the restart`);
  }
  await until(() => daveRoom.lines.length >= expected.length, () => `dave's subscription got ${JSON.stringify(daveRoom.lines)}`);
  assert.deepEqual(daveRoom.lines, expected);
  assert.deepEqual(daveRoom.errors, []);
  assert.match(await text(alice.page, '#transport'), /^via (sse|polling)$/, 'alice: a fallback (see the network drop)');
  assert.equal(await text(bob.page, '#transport'), 'via polling');
  await shot(alice, 'sse-after-restart');
});

test('no request left the page\'s origin; no page errors', () => {
  assert.deepEqual(alice.external, []);
  assert.deepEqual(bob.external, []);
});
