// Interop of our C++ client role: `sb_ws_echo_check` (the lead's tool) against a node `ws`
// echo server with permessage-deflate enabled, over ws:// and over wss:// (node's https with a
// self-signed certificate made at test time by the `openssl` CLI; our client verifies it via
// --ca, or skips verification with --insecure). The tool exits 0 only when every echo matched.
//   SB_ECHO_CHECK=build/release/sb_ws_echo_check node --test tests/interop/client_vs_ws_server.test.mjs
// Without SB_ECHO_CHECK the tool is looked for beside SB_SERVER / SB_CLIENT_TOOL; if it is not
// found the tests are skipped with a message saying so.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startServer } from '../support/server.mjs';

function findTool() {
  if (process.env.SB_ECHO_CHECK) return process.env.SB_ECHO_CHECK;
  for (const v of [process.env.SB_SERVER, process.env.SB_CLIENT_TOOL]) {
    if (!v) continue;
    for (const rel of ['sb_ws_echo_check', path.join('apps', 'sb_ws_echo_check'), path.join('..', 'sb_ws_echo_check')]) {
      const p = path.join(path.dirname(v), rel);
      if (fs.existsSync(p)) return p;
    }
  }
  return null;
}

const TOOL = findTool();
const SKIP = TOOL ? false : 'SB_ECHO_CHECK is not set and no sb_ws_echo_check was found beside SB_SERVER: C++ client interop not run';
const SIZES = '0,1,125,126,65535,65536,1048576,16777216';

// A throwaway self-signed certificate for localhost and 127.0.0.1 (never committed).
function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wss-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) return { dir, error: `openssl req failed: ${r.error ?? r.stderr}` };
  return { dir, cert, key };
}

const TLS = SKIP ? null : makeCert();
const SKIP_TLS = SKIP || (TLS.error ? `no test certificate (${TLS.error}): wss interop not run` : false);

let server;
let tlsServer;
before(async () => {
  if (SKIP) return;
  assert.ok(fs.existsSync(TOOL), `SB_ECHO_CHECK=${TOOL} does not exist`);
  // The peer is always node ws here (the reference stack), whatever SB_SERVER says.
  server = await startServer({ kind: 'reference-ws', flags: ['--max-message-size', '32MiB', '--echo-path', '/'] });
  if (!SKIP_TLS) {
    tlsServer = await startServer({ kind: 'reference-ws', flags: ['--max-message-size', '32MiB', '--echo-path', '/',
      '--tls-cert', TLS.cert, '--tls-key', TLS.key] });
  }
});
after(async () => {
  const alive = server?.alive();
  const tlsAlive = tlsServer?.alive();
  await server?.stop();
  await tlsServer?.stop();
  if (TLS) fs.rmSync(TLS.dir, { recursive: true, force: true });
  if (server) assert.ok(alive, `ws echo server died: ${server.stderr()}`);
  if (tlsServer) assert.ok(tlsAlive, `wss echo server died: ${tlsServer.stderr()}`);
});

function run(args, timeoutMs) {
  return new Promise((resolve) => {
    const p = spawn(TOOL, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out = (out + d).slice(-4000); });
    p.stderr.on('data', (d) => { out = (out + d).slice(-4000); });
    const t = setTimeout(() => { p.kill('SIGKILL'); out += `\n[killed after ${timeoutMs} ms]`; }, timeoutMs);
    p.on('close', (code, sig) => { clearTimeout(t); resolve({ code, sig, out }); });
  });
}

for (const deflate of [false, true]) {
  for (const binary of [false, true]) {
    for (const fragment of [0, 4096]) {
      const name = `${binary ? 'binary' : 'text'}${deflate ? ' deflate' : ''}${fragment ? ` fragment ${fragment}` : ''}`;
      test(`sb_ws_echo_check ${name} sizes ${SIZES}`, { skip: SKIP, timeout: 180000 }, async () => {
        const args = ['--url', `ws://127.0.0.1:${server.port}/`, '--sizes', SIZES];
        if (deflate) args.push('--deflate');
        if (binary) args.push('--binary');
        if (fragment) args.push('--fragment', String(fragment));
        const r = await run(args, 150000);
        assert.equal(r.code, 0, `${TOOL} ${args.join(' ')} exited ${r.code ?? r.sig}:\n${r.out}`);
      });
    }
  }
}

// wss://: the same sizes (0 B to 16 MiB), text and binary, with and without deflate, with the
// certificate verified against --ca (name: localhost).
for (const deflate of [false, true]) {
  for (const binary of [false, true]) {
    const name = `wss ${binary ? 'binary' : 'text'}${deflate ? ' deflate' : ''}`;
    test(`sb_ws_echo_check ${name} sizes ${SIZES}`, { skip: SKIP_TLS, timeout: 180000 }, async () => {
      const args = ['--url', `wss://localhost:${tlsServer.port}/`, '--ca', TLS.cert, '--sizes', SIZES];
      if (deflate) args.push('--deflate');
      if (binary) args.push('--binary');
      const r = await run(args, 150000);
      assert.equal(r.code, 0, `${TOOL} ${args.join(' ')} exited ${r.code ?? r.sig}:\n${r.out}`);
    });
  }
}

test('sb_ws_echo_check wss --insecure by IP, fragmented', { skip: SKIP_TLS, timeout: 180000 }, async () => {
  const args = ['--url', `wss://127.0.0.1:${tlsServer.port}/`, '--insecure', '--fragment', '4096', '--sizes', SIZES];
  const r = await run(args, 150000);
  assert.equal(r.code, 0, `${TOOL} ${args.join(' ')} exited ${r.code ?? r.sig}:\n${r.out}`);
});

test('sb_ws_echo_check wss without --ca refuses the self-signed certificate', { skip: SKIP_TLS, timeout: 60000 }, async () => {
  const r = await run(['--url', `wss://localhost:${tlsServer.port}/`, '--sizes', '1'], 30000);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /TLS handshake failed: certificate verify failed: self-signed certificate/);
});
