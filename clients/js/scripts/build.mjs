// Builds dist/: tsc (ESM + .d.ts, one file per source) and esbuild (dist/switchboard.min.js,
// the one-file ESM bundle the server's demo page loads). dist/ is committed so that nothing
// is built at serve or install time; `--check` builds into a temporary directory and fails
// if dist/ differs from what the sources give (the interop suite runs it).
//   node scripts/build.mjs           rebuild dist/
//   node scripts/build.mjs --check   verify dist/ is up to date
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');
const require = createRequire(path.join(pkg, 'package.json'));
const check = process.argv.includes('--check');

function resolveTool(spec, what) {
  try {
    return require.resolve(spec);
  } catch {
    console.error(`build: ${what} is not installed: run \`npm ci\` at the repository root (npm workspaces install clients/js's devDependencies)`);
    process.exit(2);
  }
}

const tsc = resolveTool('typescript/bin/tsc', 'typescript');
const esbuildEntry = resolveTool('esbuild', 'esbuild');
const esbuild = await import(esbuildEntry.startsWith('/') ? 'file://' + esbuildEntry : esbuildEntry);

const out = check ? fs.mkdtempSync(path.join(os.tmpdir(), 'sb-client-dist-')) : path.join(pkg, 'dist');
try {
  if (!check) fs.rmSync(out, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(pkg, 'tsconfig.json'), '--outDir', out], { stdio: 'inherit' });
  if (r.status !== 0) { console.error('build: tsc failed'); process.exit(1); }
  await esbuild.build({
    entryPoints: [path.join(pkg, 'src', 'index.ts')],
    bundle: true,
    format: 'esm',
    minify: true,
    target: 'es2020',
    platform: 'neutral',
    legalComments: 'none',
    charset: 'utf8',
    outfile: path.join(out, 'switchboard.min.js'),
    logLevel: 'warning',
  });
  if (check) {
    const list = (dir) => fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
    const want = list(out);
    const have = fs.existsSync(path.join(pkg, 'dist')) ? list(path.join(pkg, 'dist')) : [];
    const problems = [];
    for (const f of want) {
      if (!have.includes(f)) problems.push(`missing dist/${f}`);
      else if (!fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(pkg, 'dist', f)))) problems.push(`stale dist/${f}`);
    }
    for (const f of have) if (!want.includes(f)) problems.push(`extra dist/${f}`);
    if (problems.length) {
      console.error(`build --check: dist/ is not what the sources build (run \`npm run build -w @switchboard/client\`):\n  ${problems.join('\n  ')}`);
      process.exit(1);
    }
    console.log(`build --check: dist/ is up to date (${want.length} files)`);
  } else {
    console.log(`build: wrote ${fs.readdirSync(out).length} files to dist/`);
  }
} finally {
  if (check) fs.rmSync(out, { recursive: true, force: true });
}
