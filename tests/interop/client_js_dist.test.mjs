// clients/js/dist/ is committed (the server serves dist/switchboard.min.js to the demo page with
// no build step): it must be exactly what the sources build with the pinned typescript and
// esbuild (`npm ci` at the repository root installs them through the npm workspace).
//   node --test tests/interop/client_js_dist.test.mjs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/server.mjs';

test('clients/js/dist is up to date with clients/js/src', () => {
  const script = path.join(REPO_ROOT, 'clients', 'js', 'scripts', 'build.mjs');
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `build --check failed:\n${r.stdout}\n${r.stderr}`);
});

test('the browser bundle is one ESM file exporting the API', async () => {
  const mod = await import(path.join(REPO_ROOT, 'clients', 'js', 'dist', 'switchboard.min.js'));
  for (const name of ['Switchboard', 'SwitchboardError', 'Subscription', 'registerTransport', 'backoffDelay', 'closePolicy']) {
    assert.equal(typeof mod[name], 'function', name);
  }
});
