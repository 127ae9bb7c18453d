// Browser: the chat demo at `/` (web/, embedded in the binary) on a real `switchboard serve
// --port 0` with its built-in defaults (no config: the built-in `chat` namespace). Two Chromium
// contexts (separate profiles: alice at desktop width, bob at phone width) load the page through
// a TCP proxy the test controls, so the network under the browser can be cut and the server
// restarted behind an unchanged origin. A third participant, carol, is the JS client in Node,
// connected straight to the server (not through the proxy), to publish while the pages are cut
// off. Checks visible text only (plus the pages' own client for the transport name), saves
// screenshots in the suite's temporary directory, and fails on any request not to the page's
// origin (route interception + every request and WebSocket seen).
//   SB_SERVER=build/release/switchboard node --test tests/browser/chat_demo.test.mjs
// SB_KEEP_SCREENSHOTS=1 keeps the directory (its path is printed).
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
    down.pipe(up);
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
const screenshots = [];

async function openChat(name, viewport) {
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
  // WebSocket only: the fallbacks (SSE, long-polling) are chat_fallback.test.mjs's, its server
  // restart included. (Without this, a page that came back from the cut or the restart over SSE
  // while the other one was on WebSocket met the server's mixed WebSocket/SSE fan-out bug, fixed
  // since: one of the two lost every publication, bob's first message after the restart.)
  await page.goto(`${origin}/?transports=websocket#lobby`);
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

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-chat-demo-'));
  server = await startServer({ kind: 'switchboard' });
  proxy = await startProxy(server.port);
  origin = `http://127.0.0.1:${proxy.port}`;
});

after(async () => {
  await alice?.browser.close();
  await bob?.browser.close();
  carol?.disconnect();
  await proxy?.close();
  const alive = server?.alive();
  await server?.stop();
  if (process.env.SB_KEEP_SCREENSHOTS) console.log(`# screenshots: ${dir}`);
  else if (dir) fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

test('served by the binary: /, /chat.js, /chat.css, /switchboard.min.js, /echo.html', async () => {
  for (const [p, type] of [['/', 'text/html'], ['/index.html', 'text/html'], ['/chat.js', 'text/javascript'],
    ['/chat.css', 'text/css'], ['/switchboard.min.js', 'text/javascript'], ['/echo.html', 'text/html']]) {
    const r = await fetch(`http://127.0.0.1:${server.port}${p}`);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-type'), new RegExp(`^${type}`), p);
    assert.ok((await r.text()).length > 100, p);
  }
  const bundle = await (await fetch(`http://127.0.0.1:${server.port}/switchboard.min.js`)).text();
  const committed = fs.readFileSync(path.join(REPO_ROOT, 'clients/js/dist/switchboard.min.js'), 'utf8');
  assert.equal(bundle, committed, 'the served bundle is not the committed one: rebuild the server');
  assert.equal((await fetch(`http://127.0.0.1:${server.port}/nope.html`)).status, 404);
});

test('two people: presence, join notices, history on open, messages, typing', { timeout: 120000 }, async () => {
  alice = await openChat('alice', { width: 1200, height: 800 });
  assert.equal(await text(alice.page, '#room-title'), '#lobby');
  assert.match(await text(alice.page, '#transport'), /^via websocket$/);
  // Name changed through the form (a new connection under the new name).
  await alice.page.fill('#user-name', 'Alice');
  await alice.page.click('#name-form button');
  await showsText(alice.page, '#messages', 'You joined #lobby as Alice.');
  alice.name = 'Alice';
  for (const t of ['first', 'second', 'third']) await say(alice.page, t);
  await showsText(alice.page, '#messages', 'third');

  // bob opens later, at phone width: the room's history is there, and both see each other.
  bob = await openChat('bob', { width: 390, height: 844 });
  await showsText(bob.page, '#messages', 'third');
  assert.deepEqual(await lines(bob.page), ['Alice: first', 'Alice: second', 'Alice: third']);
  await showsText(bob.page, '#people', 'Alice');
  await showsText(bob.page, '#people', 'bob (you)');
  await showsText(alice.page, '#people', 'bob');
  await showsText(alice.page, '#messages', 'bob joined');
  await isText(alice.page, '#people-count', '2');
  // Phone width: nothing wider than the screen.
  assert.ok(await bob.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    'the page scrolls sideways at 390 px');

  // Typing: bob types, alice sees it; the message clears it.
  await bob.page.click('#send-text');
  await bob.page.keyboard.type('hello Ali', { delay: 20 });
  await showsText(alice.page, '#typing', 'bob is typing…');
  assert.equal(await text(bob.page, '#typing'), '', 'bob sees his own typing');
  await shot(alice, 'typing');
  await bob.page.keyboard.type('ce');
  await bob.page.press('#send-text', 'Enter');
  await showsText(alice.page, '#messages', 'hello Alice');
  await alice.page.waitForFunction(() => document.getElementById('typing').textContent === '', null, WAIT);
  // Typing without sending: the indicator goes away by itself.
  await bob.page.keyboard.type('hmm');
  await showsText(alice.page, '#typing', 'bob is typing…');
  await alice.page.waitForFunction(() => document.getElementById('typing').textContent === '', null, WAIT);
  await bob.page.fill('#send-text', '');

  await say(alice.page, 'hi bob');
  await showsText(bob.page, '#messages', 'hi bob');
  const expected = ['Alice: first', 'Alice: second', 'Alice: third', 'bob: hello Alice', 'Alice: hi bob'];
  for (const who of [alice, bob]) await msgCount(who.page, expected.length);
  assert.deepEqual(await lines(alice.page), expected);
  assert.deepEqual(await lines(bob.page), expected);
  await shot(alice, 'chat');
  await shot(bob, 'chat');
});

test('the network drops: reconnecting…, then connected; nothing lost or doubled', { timeout: 120000 }, async () => {
  carol = new Switchboard(`ws://127.0.0.1:${server.port}/ws`, { user: 'carol', WebSocket, storage: null });
  await carol.connect();
  const before = await lines(alice.page);

  proxy.block(true);
  proxy.cut();
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'reconnecting…', null, WAIT);
  }
  await shot(bob, 'reconnecting');
  // While the pages are cut off: carol publishes (straight to the server), and alice sends
  // (queued in her client until it is back).
  for (const t of ['while away 1', 'while away 2']) await carol.publish('chat:lobby', { user: 'carol', text: t });
  await say(alice.page, 'sent offline');
  assert.equal(await text(alice.page, '#conn-state'), 'reconnecting…');

  proxy.block(false);
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, WAIT);
    await showsText(who.page, '#messages', 'sent offline');
    await showsText(who.page, '#conn-note', 'recovered');
  }
  const after = [...before, 'carol: while away 1', 'carol: while away 2', 'Alice: sent offline'];
  for (const who of [alice, bob]) {
    await who.page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length >= n, after.length, WAIT);
    assert.deepEqual(await lines(who.page), after, `${who.name}'s messages after the drop`);
    const offs = await offsets(who.page);
    assert.deepEqual(offs, [...offs].sort((a, b) => a - b), `${who.name}: offsets out of order`);
    assert.equal(new Set(offs).size, offs.length, `${who.name}: a message shown twice`);
  }
  assert.deepEqual(await lines(alice.page), await lines(bob.page));
  // Presence is right again (asked after the reconnect): both, once each.
  await showsText(alice.page, '#people', 'bob');
  await isText(bob.page, '#people-count', '2');
  await shot(alice, 'recovered');
});

test('the server restarts (memory engine): "missed messages — reloaded", and chat goes on', { timeout: 120000 }, async () => {
  carol.disconnect();
  await server.stop();                        // history and sessions are gone with it
  for (const who of [alice, bob]) {
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'reconnecting…', null, WAIT);
  }
  server = await startServer({ kind: 'switchboard' });
  proxy.upstream(server.port);
  for (const who of [alice, bob]) {
    await showsText(who.page, '#conn-note', 'missed messages — reloaded');
    await who.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, WAIT);
    await showsText(who.page, '#messages', 'Messages were missed while disconnected: the room was reloaded.');
    // Reloaded from the new server: its history is empty.
    assert.deepEqual(await lines(who.page), [], `${who.name}: old messages still shown after the reload`);
  }
  await shot(bob, 'reloaded');
  await say(bob.page, 'still here?');
  await showsText(alice.page, '#messages', 'still here?');
  assert.deepEqual(await lines(alice.page), ['bob: still here?']);
  await showsText(alice.page, '#people', 'bob');
  await showsText(bob.page, '#people', 'Alice');
  await shot(alice, 'after-restart');
});

test('rooms: join a room by name; messages stay in their room', { timeout: 60000 }, async () => {
  await alice.page.fill('#room-name', 'team-7');
  await alice.page.press('#room-name', 'Enter');
  await showsText(alice.page, '#room-title', '#team-7');
  await showsText(alice.page, '#messages', 'You joined #team-7 as Alice.');
  await showsText(alice.page, '#room-list', '#team-7');
  await say(alice.page, 'in team-7');
  await showsText(alice.page, '#messages', 'in team-7');
  await isText(alice.page, '#people-count', '1');
  // bob opens a link to the room (it is not in his list).
  await bob.page.goto(`${origin}/?transports=websocket#team-7`);
  await connected(bob.page);
  await showsText(bob.page, '#messages', 'in team-7');           // history on open
  await showsText(alice.page, '#messages', 'bob joined');
  // Back in #lobby, nothing of team-7.
  await bob.page.locator('#room-list button', { hasText: /^#lobby$/ }).click();
  await showsText(bob.page, '#messages', 'You joined #lobby as bob.');
  assert.ok(!(await lines(bob.page)).includes('Alice: in team-7'));
  await shot(bob, 'rooms');
});

test('no request left the page\'s origin; no page errors', () => {
  assert.deepEqual(alice.external, []);
  assert.deepEqual(bob.external, []);
  if (process.env.SB_KEEP_SCREENSHOTS) console.log(`# ${screenshots.length} screenshots:\n# ${screenshots.join('\n# ')}`);
  for (const f of screenshots) assert.ok(fs.statSync(f).size > 1000, f);
});
