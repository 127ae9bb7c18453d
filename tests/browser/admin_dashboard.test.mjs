// Browser: the /admin dashboard (web/admin/ and uPlot, embedded in the binary) on a real
// `switchboard serve --port 0` with SWITCHBOARD_ADMIN_PASSWORD set. Headless Chromium logs in
// (a wrong password first), watches the live figures move while Node WebSocket clients publish
// on /ws, finds their channel in the inspector, disconnects one of them from the page (it gets
// close 4003 and connects again), reads the running configuration (secrets redacted) and logs
// out. Checks visible text, saves screenshots in the suite's temporary directory, and fails on
// any request to another host than the server.
//   SB_SERVER=build/release/switchboard node --test tests/browser/admin_dashboard.test.mjs
// SB_KEEP_SCREENSHOTS=1 keeps the directory (its path is printed).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { REPO_ROOT, startServer } from '../support/server.mjs';

const require = createRequire(import.meta.url);
let WebSocket;
try { WebSocket = require('ws'); } catch { WebSocket = require(path.join(REPO_ROOT, 'node_modules', 'ws')); }

const WAIT = { timeout: 30000 };
const PASSWORD = 'correct horse battery staple';
const CHANNEL = 'chat:admin-load';

let server;
let origin;
let dir;
let browser;
let page;
const external = [];  // requests to anything but the server
const screenshots = [];
const loaders = [];   // the Node clients publishing

async function shot(label) {
  const file = path.join(dir, `${String(screenshots.length + 1).padStart(2, '0')}-${label}.png`);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 1000, `${file} is not a screenshot`);
  screenshots.push(file);
}

const showsText = (sel, t) => page.waitForFunction(([s, x]) =>
  document.querySelector(s)?.innerText.includes(x), [sel, t], WAIT).catch(async (e) => {
  const body = await page.locator('body').innerText().catch(() => '?');
  throw new Error(`${sel} never showed "${t}" (${e.message}); the page:\n${body}`);
});
// The number a card shows ("1,234.5" → 1234.5; "–" → NaN).
const numberIn = async (sel) => Number((await page.locator(sel).innerText()).replace(/[^0-9.]/g, '') || NaN);
// Waits until the number in `sel` compares to `v` with `op` ('==' or '>='). (No eval: the
// page's Content-Security-Policy forbids it, page.waitForFunction's predicates included.)
const waitNumber = (sel, op, v, what) => page.waitForFunction(([s, o, x]) => {
  const n = Number(document.querySelector(s).innerText.replace(/[^0-9.]/g, '') || NaN);
  return o === '==' ? n === x : n >= x;
}, [sel, op, v], WAIT).catch(async (e) => {
  throw new Error(`${what}: ${sel} shows "${await page.locator(sel).innerText()}" (${e.message})`);
});

// A native-protocol client on /ws that joins CHANNEL as `user` and publishes every 50 ms.
// It connects again by itself after a close that allows it (as the JS client would), and
// records every close code and every client id it was given.
function loader(user) {
  const me = { user, closes: [], ids: [], events: [], stopped: false, ws: null };
  let timer = null;
  const open = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, 'switchboard.v1.json');
    me.ws = ws;
    let n = 10;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connect', id: 1, user, info: { role: 'loader' } })));
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.type === 'connected') {
        me.ids.push(m.client);
        ws.send(JSON.stringify({ type: 'subscribe', id: 2, channel: CHANNEL }));
      } else if (m.type === 'subscribed') {
        timer = setInterval(() => {
          ws.send(JSON.stringify({ type: 'publish', id: ++n, channel: CHANNEL, data: { from: user, n } }));
        }, 50);
        resolve();
      } else if (m.type === 'disconnect') {
        me.events.push(m);
      }
    });
    ws.on('error', reject);
    ws.on('close', (code) => {
      clearInterval(timer);
      me.closes.push(code);
      if (!me.stopped && code !== 1000) setTimeout(() => open().catch(() => {}), 200);
    });
  });
  me.start = open;
  me.stop = () => { me.stopped = true; clearInterval(timer); me.ws?.close(1000); };
  loaders.push(me);
  return me;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-admin-dashboard-'));
  process.env.SWITCHBOARD_ADMIN_PASSWORD = PASSWORD;
  process.env.SWITCHBOARD_BROKER_REDIS_PASSWORD = 'redis-secret-value';
  try {
    server = await startServer({
      kind: 'switchboard',
      flags: ['--threads', '2', '--api-key', 'api-secret-value',
        '--nats-url', 'nats://natsuser:nats-secret-value@127.0.0.1:4222'],
    });
  } finally {
    delete process.env.SWITCHBOARD_ADMIN_PASSWORD;
    delete process.env.SWITCHBOARD_BROKER_REDIS_PASSWORD;
  }
  origin = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
  const { context } = browser;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    external.push(url);
    return route.abort();
  });
  page = context.pages()[0] || await context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  page.on('request', (r) => {
    if (!r.url().startsWith(`${origin}/`) && !r.url().startsWith('data:')) external.push(r.url());
  });
  page.on('websocket', (ws) => { if (!ws.url().startsWith(`ws://127.0.0.1:${server.port}/`)) external.push(ws.url()); });
  page.on('pageerror', (e) => external.push(`pageerror: ${e.message}`));
});

after(async () => {
  for (const l of loaders) l.stop();
  await browser?.close();
  const alive = server?.alive();
  await server?.stop();
  if (process.env.SB_KEEP_SCREENSHOTS) console.log(`# screenshots: ${dir}`);
  else if (dir) fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

test('served by the binary: /admin is the login, assets and uPlot embedded, data needs the cookie', async () => {
  const r = await fetch(`${origin}/admin`);
  assert.equal(r.status, 200);
  assert.match(await r.text(), /<form method="post" action="\/admin\/login"/);
  for (const [p, type] of [['/admin/uPlot.iife.min.js', 'text/javascript'], ['/admin/uPlot.min.css', 'text/css'],
    ['/admin/dashboard.js', 'text/javascript'], ['/admin/admin.css', 'text/css']]) {
    const a = await fetch(`${origin}${p}`);
    assert.equal(a.status, 200, p);
    assert.match(a.headers.get('content-type'), new RegExp(`^${type}`), p);
  }
  const uplot = await (await fetch(`${origin}/admin/uPlot.iife.min.js`)).text();
  assert.equal(uplot, fs.readFileSync(path.join(REPO_ROOT, 'node_modules/uplot/dist/uPlot.iife.min.js'), 'utf8'));
  assert.equal((await fetch(`${origin}/admin/index.html`)).status, 404, 'the dashboard page is only /admin');
  assert.equal((await fetch(`${origin}/admin/api/config`)).status, 401);
  assert.equal((await fetch(`${origin}/admin/api/channels`, { headers: { Cookie: 'sb_admin=' + 'a'.repeat(64) } })).status, 401);
});

test('a wrong password is refused with 401 and the form says so', async () => {
  await page.goto(`${origin}/admin`);
  await page.fill('#password', 'not the password');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${origin}/admin/login`),
    page.click('#login-button'),
  ]);
  assert.equal(resp.status(), 401);
  await showsText('#login-error', 'Wrong password.');
  assert.equal(await page.locator('#live-state').count(), 0, 'no dashboard without the password');
  await shot('wrong-password');
});

test('the right password opens the dashboard, with an HttpOnly SameSite=Strict cookie', async () => {
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(`${origin}/admin`), page.click('#login-button')]);
  await showsText('#live-state', 'live');
  await showsText('#engine-state', 'memory engine available');
  const cookies = await browser.context.cookies(`${origin}/admin`);
  const c = cookies.find((k) => k.name === 'sb_admin');
  assert.ok(c, `no sb_admin cookie in ${JSON.stringify(cookies)}`);
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Strict');
  assert.equal(c.path, '/admin');
  assert.equal(c.secure, false, 'plain HTTP: no Secure flag');
  assert.match(c.value, /^[0-9a-f]{64}$/);
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the cookie');
});

test('under load the figures move: connections, messages per second, latency, channels', async () => {
  await waitNumber('#rate-in', '==', 0, 'idle before the load');
  const before = await numberIn('#conn-websocket');
  await Promise.all(['ann', 'ben', 'cat'].map((u) => loader(u).start()));
  await waitNumber('#conn-websocket', '>=', before + 3, 'three more WebSockets');
  await waitNumber('#clients', '>=', 3, 'messaging clients');
  await waitNumber('#rate-in', '>=', 20, 'messages in per second');
  await waitNumber('#rate-out', '>=', 20, 'messages out per second');
  await page.waitForFunction(() => /ms$/.test(document.getElementById('lat-p99').innerText), null, WAIT);
  await waitNumber('#channels-count', '>=', 1, 'channels');
  await showsText('#top-channels', CHANNEL);
  // The fastest channels: the loaders' channel publishes, with its 3 subscribers.
  await page.waitForFunction((ch) => [...document.querySelectorAll('#fastest-channels tbody tr')].some((tr) => {
    const td = [...tr.children].map((c) => c.innerText);
    return td[0] === ch && parseFloat(td[1]) > 0 && Number(td[2]) >= 3;
  }), CHANNEL, WAIT);
  // Per namespace: the loaders' namespace has their 3 subscriptions and publishes.
  await page.waitForFunction(() => [...document.querySelectorAll('#namespaces tbody tr')].some((tr) => {
    const td = [...tr.children].map((c) => c.innerText);
    return td[0] === 'chat' && Number(td[1].replace(/,/g, '')) >= 3 && parseFloat(td[2]) > 0;
  }), null, WAIT);
  // The charts got points (uPlot draws on canvases; their legend shows the series).
  await showsText('#chart-rates', 'messages in/s');
  assert.ok(await page.locator('#chart-rates canvas').count() >= 1, 'the rates chart is drawn');
  await shot('under-load');
  const inNow = await numberIn('#rate-in');
  assert.ok(inNow > 0, `messages in/s ${inNow}`);
});

test('the inspector finds the channel and shows who is in it and its last publications', async () => {
  await page.fill('#find-channel', 'admin-load');
  await page.click('#find-button');
  await showsText('#find-result', '1 channel found');
  await showsText('#detail-title', CHANNEL);
  for (const l of loaders) await showsText('#presence', l.ids.at(-1));
  await showsText('#presence', 'ann');
  await showsText('#presence-note', '3 clients in presence');
  await showsText('#history', '"from":');
  await showsText('#history-note', 'most recent publications');
  await shot('inspector');
});

test('disconnecting a client from the page closes it with 4003; it connects again', async () => {
  const victim = loaders[0];
  const oldId = victim.ids.at(-1);
  await page.click(`button[data-client="${oldId}"]`);
  await showsText('#action-result', `Disconnected ${oldId}`);
  const deadline = Date.now() + 20000;
  while ((victim.closes.length === 0 || victim.ids.length < 2) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(victim.closes, [4003], 'closed once, with 4003');
  assert.equal(victim.events[0]?.code, 4003);
  assert.equal(victim.events[0]?.reconnect, true);
  assert.equal(victim.ids.length, 2, 'connected again');
  const newId = victim.ids[1];
  assert.notEqual(newId, oldId);
  // The inspector shows the new connection (it refreshes after the disconnect).
  await page.click('#find-button');
  await showsText('#presence', newId);
  assert.equal(await page.locator(`button[data-client="${oldId}"]`).count(), 0, 'the old id is gone');
  await waitNumber('#slow-consumers', '==', 0, 'no slow-consumer disconnect');
  // Why clients left, by close code: the 4003 given from this page is counted.
  await showsText('#disconnect-codes', '4003: 1');
  await shot('after-disconnect');
});

test('the running configuration is shown with every secret redacted', async () => {
  await page.click('#config-load');
  await showsText('#config', 'admin.password = "<set>"');
  const text = await page.locator('#config').innerText();
  assert.match(text, /api\.key = "<set>"/);
  assert.match(text, /broker\.redis_password = "<set>"/);
  assert.match(text, /nats:\/\/<redacted>@127\.0\.0\.1:4222/);
  for (const secret of [PASSWORD, 'api-secret-value', 'redis-secret-value', 'nats-secret-value', 'natsuser']) {
    assert.ok(!text.includes(secret), `the page shows ${secret}`);
  }
  await shot('config');
});

test('log out: back to the login form, and the old cookie opens nothing', async () => {
  const token = (await browser.context.cookies(`${origin}/admin`)).find((k) => k.name === 'sb_admin').value;
  await Promise.all([page.waitForURL(`${origin}/admin`), page.click('#logout')]);
  await page.waitForSelector('#password', WAIT);
  assert.equal((await browser.context.cookies(`${origin}/admin`)).filter((k) => k.name === 'sb_admin').length, 0);
  const r = await fetch(`${origin}/admin/api/config`, { headers: { Cookie: `sb_admin=${token}` } });
  assert.equal(r.status, 401);
  await shot('logged-out');
});

test('nothing was requested from any other host', () => {
  assert.deepEqual(external, []);
  assert.ok(screenshots.length >= 6, `${screenshots.length} screenshots`);
});
