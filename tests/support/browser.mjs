// Headless Debian Chromium for the browser suites, driven by playwright-core: one persistent
// context in a temporary profile, removed again by close().
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { REPO_ROOT } from './server.mjs';

const require = createRequire(import.meta.url);
let chromium;
try { ({ chromium } = require('playwright-core')); } catch {
  ({ chromium } = require(path.join(REPO_ROOT, 'node_modules', 'playwright-core')));
}

export const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

// Returns { context, close }. extraArgs: more Chromium switches (e.g. the TLS suite's
// --ignore-certificate-errors-spki-list=...).
export async function launchChromium(extraArgs = []) {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: [...ARGS, ...extraArgs], timeout: 60000,
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
