// Browser (regression): the demo page at `/` is a chat over the native protocol at `/ws`, so it
// works whether or not the /echo route is served. Two Chromium pages load it from a server
// started with --no-echo; a line typed in one must appear in the other, and neither page may
// show a closed socket (the old page used /echo and showed "closed: 1006" there).
//   SB_SERVER=build/release/switchboard node --test tests/browser/chromium_demo.test.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

let server;
let context;
let browser;

before(async () => {
  server = await startServer({ kind: 'switchboard', flags: ['--no-echo'] });
  browser = await launchChromium();
  context = browser.context;
});

after(async () => {
  await browser?.close();
  const alive = server?.alive();
  await server?.stop();
  assert.ok(alive !== false, `server died during the suite: ${server?.stderr()}`);
});

async function openDemo() {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${server.port}/echo.html`);
  // The page logs "connected as CLIENT" once its `connect` is answered.
  await page.waitForFunction(() => /connected as /.test(document.getElementById('log').textContent),
    null, { timeout: 15000 });
  return page;
}

test('the demo chat works with --no-echo: a line typed in one page reaches the other', async () => {
  const a = await openDemo();
  const b = await openDemo();
  // /echo is really off: the route answers 404 instead of upgrading.
  const echo = await a.evaluate(async () => (await fetch('/echo')).status);
  assert.equal(echo, 404, 'server started with --no-echo still serves /echo');
  // The subscribe reply precedes anything published after it; wait for both subscriptions by
  // retrying the publish until b sees a line (a publish before b subscribed is not delivered).
  const text = `hello ${Date.now()}`;
  const deadline = Date.now() + 15000;
  let seen = false;
  while (!seen && Date.now() < deadline) {
    await a.fill('#msg', text);
    await a.click('#send');
    seen = await b.waitForFunction((t) => document.getElementById('log').textContent.includes(t),
      text, { timeout: 1000 }).then(() => true, () => false);
  }
  assert.ok(seen, `page b never showed "${text}": ${await b.textContent('#log')}`);
  for (const [name, page] of [['a', a], ['b', b]]) {
    const status = await page.textContent('#status');
    assert.match(status, /^connected to ws:\/\//, `page ${name} status: ${status}`);
    const log = await page.textContent('#log');
    assert.doesNotMatch(log, /error |disconnected /, `page ${name} log: ${log}`);
  }
});
