#!/usr/bin/env node
// Stand-in for the C++ `sb_ws_echo_check`, on the node `ws` client, with the same CLI:
//   echo_check_standin.mjs --url URL [--deflate] --sizes 0,1,... [--binary] [--fragment N]
// Used only to prove tests/interop/client_vs_ws_server.test.mjs before the real tool exists.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WebSocket = require(path.join(root, 'node_modules', 'ws'));

const a = process.argv.slice(2);
const opt = { deflate: false, binary: false, fragment: 0, sizes: [], url: null };
for (let i = 0; i < a.length; i++) {
  if (a[i] === '--url') opt.url = a[++i];
  else if (a[i] === '--deflate') opt.deflate = true;
  else if (a[i] === '--binary') opt.binary = true;
  else if (a[i] === '--fragment') opt.fragment = Number(a[++i]);
  else if (a[i] === '--sizes') opt.sizes = a[++i].split(',').map(Number);
  else { console.error(`unknown flag ${a[i]}`); process.exit(2); }
}
const ws = new WebSocket(opt.url, { perMessageDeflate: opt.deflate, maxPayload: 0 });
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
ws.on('open', async () => {
  for (const n of opt.sizes) {
    const data = opt.binary ? Buffer.alloc(n, 0xab) : 'x'.repeat(n);
    const got = new Promise((r) => ws.once('message', (d, isBinary) => r({ d, isBinary })));
    const parts = [];
    const buf = Buffer.from(data);
    const f = opt.fragment || buf.length || 1;
    for (let i = 0; i < buf.length; i += f) parts.push(buf.subarray(i, i + f));
    if (!parts.length) parts.push(Buffer.alloc(0));
    parts.forEach((p, i) => ws.send(p, { binary: opt.binary, fin: i === parts.length - 1 }));
    const { d, isBinary } = await got;
    if (isBinary !== opt.binary || Buffer.compare(d, buf) !== 0) {
      console.error(`size ${n}: echo mismatch`);
      process.exit(1);
    }
    console.log(`size ${n}: ok`);
  }
  ws.close(1000);
  ws.on('close', () => process.exit(0));
});
