// Browser: Chromium's own EventSource against /sse (src/server/sse.h). The page is loaded from
// the server's origin (/metrics: any same-origin page will do, and it runs no script of its
// own), so the EventSource needs no CORS. The browser, not the test, reconnects: after
// /api/disconnect (reconnect:true) ends the stream it waits the server's `retry:` and sends
// Last-Event-ID, and the server recovers what was published meanwhile: every publication
// arrives exactly once, in order. The page writes what it received into the document; the
// test reads that text and saves a screenshot in its temp dir.
//   SB_SERVER=build/release/switchboard node --test tests/browser/sse_browser.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const API_KEY = 'sse-browser-key';
const CONFIG = `
[api]
key = "${API_KEY}"
rate_limit = 0

[namespaces.feed]
history_size = 1000
`;

let tmp;
let server;
let browser;

async function api(name, body) {
  const r = await fetch(`http://127.0.0.1:${server.port}/api/${name}`, {
    method: 'POST', headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = await r.json();
  assert.equal(r.status, 200, `/api/${name} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(out)}`);
  return out;
}

describe('Chromium EventSource against /sse', () => {
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-sse-browser-'));
    fs.writeFileSync(path.join(tmp, 'sb.toml'), CONFIG);
    server = await startServer({ kind: 'switchboard', flags: ['--config', path.join(tmp, 'sb.toml')] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    const alive = server?.alive();
    await server?.stop();
    assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
    console.log(`# screenshots and page text kept in ${tmp}`);
  });

  test('receives publications, reconnects by itself with Last-Event-ID after a forced disconnect, every publication exactly once', async () => {
    const page = await browser.context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.port}/metrics`);
    const tag = Math.random().toString(16).slice(2, 8);
    const channels = [`feed:${tag}-a`, `feed:${tag}-b`];
    await page.evaluate((chans) => {
      document.body.innerHTML = '<h1>SSE</h1><div id="state"></div><pre id="log"></pre>';
      const log = document.getElementById('log');
      const state = document.getElementById('state');
      const url = '/sse?' + chans.map((c) => 'channel=' + encodeURIComponent(c)).join('&');
      const es = new EventSource(url);
      window.sse = { es, events: [], opens: 0, errors: [] };
      es.onopen = () => { window.sse.opens++; state.textContent = 'open ' + window.sse.opens; };
      es.onerror = () => { window.sse.errors.push(es.readyState); state.textContent = 'error, readyState ' + es.readyState; };
      es.onmessage = (e) => {
        const json = JSON.parse(e.data);
        window.sse.events.push({ json, lastEventId: e.lastEventId });
        if (json.type === 'message') log.textContent += `${json.channel} #${json.offset} ${JSON.stringify(json.data)}\n`;
        else if (json.type !== 'ping') log.textContent += `[${json.type}${json.resumed !== undefined ? ' resumed=' + json.resumed : ''}${json.code ? ' ' + json.code : ''}]\n`;
      };
    }, channels);
    const of = (type) => page.evaluate((t) => window.sse.events.filter((e) => e.json.type === t), type);
    const waitCount = (type, n, what, timeout = 15000) => page.waitForFunction(
      ([t, k]) => window.sse.events.filter((e) => e.json.type === t).length >= k, [type, n], { timeout })
      .catch(async (e) => { throw new Error(`${what}: ${e.message}; page log:\n${await page.textContent('#log')}`); });

    await waitCount('subscribed', 2, 'two subscribed');
    const [first] = await of('connected');
    assert.equal(first.json.resumed, false);

    const published = [];
    const pub = async (n, label) => {
      for (let i = 0; i < n; i++) {
        const ch = channels[i % 2];
        const text = `${label}-${i}`;
        const r = await api('publish', { channel: ch, data: { text } });
        published.push({ channel: ch, offset: r.offset, text });
      }
    };
    await pub(10, 'before');
    await waitCount('message', 10, '10 messages before the disconnect');
    const r = await api('disconnect', { client: first.json.client, reconnect: true });
    assert.equal(r.result, 'requested');
    // The stream ended: Chromium fires error with readyState CONNECTING (0) and waits `retry:`.
    await page.waitForFunction(() => window.sse.errors.length >= 1, null, { timeout: 10000 });
    assert.equal((await page.evaluate(() => window.sse.errors))[0], 0, 'EventSource should be reconnecting');
    await pub(8, 'during');
    await waitCount('connected', 2, 'a second connected (the browser reconnected)');
    const again = (await of('connected'))[1];
    assert.equal(again.json.resumed, true, `reconnect did not resume: ${JSON.stringify(again.json)}`);
    assert.equal(again.json.session, first.json.session);
    assert.deepEqual(again.json.channels.map((c) => [c.channel, c.recovered]).sort(),
      channels.map((c) => [c, true]), `channels ${JSON.stringify(again.json.channels)}`);
    await pub(6, 'after');
    await waitCount('message', published.length, `${published.length} messages`);
    const marker = await api('publish', { channel: channels[1], data: { text: 'marker' } });
    published.push({ channel: channels[1], offset: marker.offset, text: 'marker' });
    await waitCount('message', published.length, 'the marker');

    const msgs = await of('message');
    const key = (c, o) => `${c}#${o}`;
    const got = msgs.map((e) => key(e.json.channel, e.json.offset));
    assert.deepEqual(got.slice().sort(), published.map((p) => key(p.channel, p.offset)).sort(),
      `every publication exactly once; got ${got.join(' ')}`);
    for (const ch of channels) {
      const offs = msgs.filter((e) => e.json.channel === ch).map((e) => e.json.offset);
      assert.deepEqual(offs, offs.slice().sort((a, b) => a - b), `${ch} out of order: ${offs}`);
    }
    for (const e of msgs) {
      const p = published.find((x) => x.channel === e.json.channel && x.offset === e.json.offset);
      assert.deepEqual(e.json.data, { text: p.text });
      assert.ok(e.lastEventId.startsWith(`${first.json.session}|`) &&
        e.lastEventId.split('|').includes(`${e.json.channel}!${e.json.epoch}!${e.json.offset}`),
      `lastEventId ${e.lastEventId} for ${JSON.stringify(e.json)}`);
    }
    const dis = await of('disconnect');
    assert.equal(dis.length, 1);
    assert.equal(dis[0].json.code, 4003);

    // What the page shows: every publication's text, in the document.
    const text = await page.textContent('#log');
    for (const p of published) {
      assert.ok(text.includes(`${p.channel} #${p.offset} {"text":"${p.text}"}`), `page lacks ${p.text}:\n${text}`);
    }
    assert.match(text, /\[connected resumed=false\][\s\S]*\[disconnect 4003\][\s\S]*\[connected resumed=true\]/);
    assert.equal(await page.evaluate(() => window.sse.opens), 2);
    fs.writeFileSync(path.join(tmp, 'sse_page.txt'), text);
    await page.screenshot({ path: path.join(tmp, 'sse_browser.png'), fullPage: true });
    assert.ok(fs.statSync(path.join(tmp, 'sse_browser.png')).size > 0);
    assert.deepEqual(pageErrors, []);
    await page.evaluate(() => window.sse.es.close());
    await page.close();
  });
});
