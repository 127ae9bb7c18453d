// Starts the server under test for the node suites: our binary from SB_SERVER, or the node
// `ws` reference (tests/support/ws_echo_server.mjs) when SB_REFERENCE=ws or SB_SERVER is
// unset and SB_ALLOW_REFERENCE=1. Reads the port from the listening line within a deadline;
// stops the process by its PID only.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUPPORT_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(SUPPORT_DIR, '..', '..');

export function targetKind() {
  if (process.env.SB_REFERENCE === 'ws') return 'reference-ws';
  if (process.env.SB_SERVER) return 'switchboard';
  throw new Error('set SB_SERVER=<switchboard binary> (or SB_REFERENCE=ws to run against the ' +
    'node ws reference server)');
}

function commandFor(kind, flags) {
  const base = ['--host', '127.0.0.1', '--port', '0', '--threads', '1', '--log-level', 'warn'];
  if (kind === 'switchboard') return [process.env.SB_SERVER, ['serve', ...base, ...flags]];
  return [process.execPath, [path.join(SUPPORT_DIR, 'ws_echo_server.mjs'), ...base, ...flags]];
}

export async function startServer({ kind = targetKind(), flags = [], timeoutMs = 15000 } = {}) {
  const [cmd, args] = commandFor(kind, flags);
  const env = { ...process.env, NODE_PATH: process.env.NODE_PATH || path.join(REPO_ROOT, 'node_modules') };
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${cmd}: no listening line within ${timeoutMs} ms; stdout=${out.slice(-300)} stderr=${stderr}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /switchboard listening on (\d+\.\d+\.\d+\.\d+):(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[2])); }
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code ?? sig}) before listening: ${stderr}`));
    });
  });
  proc.stdout.resume();
  return {
    kind, port, proc,
    url: (p = '/echo') => `ws://127.0.0.1:${port}${p}`,
    stderr: () => stderr,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

// Deterministic payloads: text with 1- to 4-byte code points (exactly n UTF-8 bytes), binary
// with every byte value.
export function textOf(n) {
  const unit = 'aé€😀'; // 10 bytes
  return unit.repeat(Math.floor(n / 10)) + 'b'.repeat(n % 10);
}

export function binaryOf(n) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

export const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

// Rejects after ms with a message naming what was awaited.
export function deadline(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}
