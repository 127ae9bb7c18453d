// Writes docs/benchmarks.svg from the newest bench/results/echo-*.json and fanout-*.json (the
// main rows: one server thread, pinned, no compression; the threads and deflate groups are in
// the tables only):
// a self-contained SVG (no libraries, no scripts, no external fonts) with one row per test
// and one bar per peer, the bar being the peer's median relative to Switchboard's on a log
// scale, oriented so that right of the 1× line is better than Switchboard (for "lower is
// better" figures, bytes per idle connection and latency, the ratio is inverted). Each row
// also prints the absolute medians.
// Usage: node bench/plot.mjs [ECHO.json] [FANOUT.json] [OUT.svg]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, 'results');
const newest = (prefix) => {
  const fs_ = fs.existsSync(resultsDir) ? fs.readdirSync(resultsDir) : [];
  const files = fs_.filter((f) => f.startsWith(prefix) && f.endsWith('.json')).sort();
  return files.length ? path.join(resultsDir, files[files.length - 1]) : null;
};
const [echoArg, fanoutArg, outArg] = process.argv.slice(2);
const echoPath = echoArg || newest('echo-');
const fanoutPath = fanoutArg || newest('fanout-');
const outPath = outArg || path.join(here, '..', 'docs', 'benchmarks.svg');
const load = (p) => (p && fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) : null);
const echo = load(echoPath);
const fanout = load(fanoutPath);
if (!echo && !fanout) {
  console.error('plot.mjs: no bench/results/echo-*.json or fanout-*.json');
  process.exit(1);
}

const NAMES = { switchboard: 'Switchboard', ws: 'node ws', uws: 'uWebSockets' };
const COLORS = { ws: '#d9822b', uws: '#3b7dd8' };
const EXTRA = ['#8e44ad', '#16a085', '#c0392b'];
const color = (s, i) => COLORS[s] || EXTRA[i % EXTRA.length];

const si = (v) => {
  const a = Math.abs(v);
  const f = (x, u) => `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}${u}`;
  if (a >= 1e6) return f(v / 1e6, 'M');
  if (a >= 1e3) return f(v / 1e3, 'k');
  return f(v, '');
};
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// rows: { group, label, unit, higher, cells: { server: {median,min,max} } }
const rows = [];
const servers = [];
const addServers = (list) => list.forEach((s) => servers.includes(s) || servers.push(s));
if (echo) {
  addServers(echo.servers);
  for (const t of echo.summary.filter((x) => (x.group ?? 'main') === 'main')) {
    const label = t.label.replace(/ \((msg\/s)\)$/, '');
    const unit = t.kind === 'echo' ? 'msg/s' : t.kind === 'handshake' ? 'handshakes/s' : 'B/conn';
    rows.push({ group: 'echo', label, unit, higher: t.higher_is_better, cells: t.servers });
  }
}
// PLOT_EXTRA="a.json b.json": more echo-format result files (e.g. a partial run of extra
// sizes) whose tests are appended when the main echo file does not have them.
const extras = (process.env.PLOT_EXTRA || '').split(/\s+/).filter(Boolean).map((p) => [p, load(p)]).filter(([, j]) => j);
for (const [, x] of extras) {
  addServers(x.servers);
  for (const t of x.summary) {
    if (echo?.summary.some((e) => e.test === t.test)) continue;
    const label = t.label.replace(/ \((msg\/s)\)$/, '') + ` [${x.date}]`;
    const unit = t.kind === 'echo' ? 'msg/s' : t.kind === 'handshake' ? 'handshakes/s' : 'B/conn';
    rows.push({ group: 'echo', label, unit, higher: t.higher_is_better, cells: t.servers });
  }
}
if (fanout) {
  addServers(fanout.servers);
  const rooms = fanout.latency?.rooms ?? 10000;
  for (const t of fanout.summary.filter((x) => (x.group ?? 'main') === 'main')) {
    for (const [m, v] of Object.entries(t.metrics)) {
      if (m === 'deliveries_per_sec') {
        rows.push({ group: 'fan-out', label: t.label.replace(/ \(deliveries\/s\)$/, ''), unit: 'deliveries/s', higher: true, cells: v.servers });
      } else if (m === 'p50_us' || m === 'p99_us') {
        rows.push({ group: 'fan-out', label: `latency ${rooms.toLocaleString('en-US')} rooms × 1 msg/s${t.test.endsWith('_off') ? ', history and presence off' : ''}, ${m.replace('_us', '').replace('p999', 'p99.9')}`, unit: 'µs', higher: false, cells: v.servers });
      }
    }
  }
}
const ref = 'switchboard';
const peers = servers.filter((s) => s !== ref);

// Ratio "better than Switchboard" (>1 = peer better).
const better = (row, s) => {
  const a = row.cells[s], b = row.cells[ref];
  if (!a?.median || !b?.median) return null;
  return row.higher ? a.median / b.median : b.median / a.median;
};
let lo = 1, hi = 1;
for (const r of rows) for (const p of peers) {
  const x = better(r, p);
  if (x) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
}
const decLo = Math.floor(Math.log10(lo)), decHi = Math.max(1, Math.ceil(Math.log10(hi) + 0.05));
const ticks = [];
for (let d = decLo; d <= decHi; d++) ticks.push(10 ** d);

// Layout
const W = 1200, labelW = 360, valueW = 300, plotX = labelW + 10, plotW = W - labelW - valueW - 30;
const barH = 11, rowPad = 10, rowH = Math.max(1, peers.length) * (barH + 2) + rowPad;
const top = 104, groupGap = 22;
const groups = [...new Set(rows.map((r) => r.group))];
const H = top + rows.length * rowH + groups.length * groupGap + 70;
const xOf = (v) => plotX + ((Math.log10(v) - decLo) / (decHi - decLo)) * plotW;

const out = [];
out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`);
out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
const when = [echo && `echo ${echo.date} (Switchboard ${echo.switchboard_commit || echo.commit})`, fanout && `fan-out ${fanout.date} (Switchboard ${fanout.switchboard_commit || fanout.commit})`].filter(Boolean).join('; ');
out.push(`<text x="10" y="20" font-size="15" font-weight="bold">Peers relative to Switchboard (median of ${echo?.rounds ?? fanout?.rounds} interleaved rounds; log scale; right of 1× = better than Switchboard)</text>`);
out.push(`<text x="10" y="38" fill="#555">${esc(when)}</text>`);
out.push(`<text x="10" y="${W > 0 ? 52 : 0}" fill="#555">${esc(echo?.machine?.nproc ?? fanout?.machine?.nproc)} vCPUs (${esc(echo?.machine?.cpu ?? fanout?.machine?.cpu)}), server and generator pinned to separate cores, loopback. Lower-is-better rows (B/conn, latency) are inverted: the bar is Switchboard ÷ peer.</text>`);
// legend
let lx = 10;
peers.forEach((p, i) => {
  out.push(`<rect x="${lx}" y="62" width="12" height="12" fill="${color(p, i)}"/><text x="${lx + 16}" y="72">${esc(NAMES[p] || p)} ÷ Switchboard</text>`);
  lx += 190;
});
out.push(`<text x="${W - valueW}" y="${top - 8}" fill="#555">medians: Switchboard | ${esc(peers.map((p) => NAMES[p] || p).join(' | '))}</text>`);

let y = top;
const plotTop = top;
for (const g of groups) {
  out.push(`<text x="10" y="${y + 14}" font-weight="bold" font-size="12">${esc(g)}</text>`);
  y += groupGap;
  for (const r of rows.filter((r) => r.group === g)) {
    const mid = y + (rowH - rowPad) / 2;
    out.push(`<text x="${labelW}" y="${mid + 4}" text-anchor="end">${esc(r.label)}</text>`);
    peers.forEach((p, i) => {
      const x = better(r, p);
      const by = y + i * (barH + 2);
      if (!x) {
        out.push(`<text x="${xOf(1) + 4}" y="${by + barH - 2}" fill="#999">${esc(NAMES[p] || p)}: not run</text>`);
        return;
      }
      const x0 = xOf(1), x1 = xOf(x);
      out.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${by}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${barH}" fill="${color(p, i)}"><title>${esc(`${NAMES[p] || p}: ${r.label}: ${si(r.cells[p].median)} ${r.unit} vs Switchboard ${si(r.cells[ref].median)}`)}</title></rect>`);
      const txt = `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x >= 0.1 ? x.toFixed(2) : x.toFixed(3)}×`;
      const tx = x1 < x0 ? x1 - 3 : x1 + 3;
      out.push(`<text x="${tx.toFixed(1)}" y="${by + barH - 2}" font-size="9.5" text-anchor="${x1 < x0 ? 'end' : 'start'}" fill="#333">${txt}</text>`);
    });
    const vals = [ref, ...peers].map((s) => (r.cells[s]?.median ? si(r.cells[s].median) : '–')).join(' | ');
    out.push(`<text x="${W - valueW}" y="${mid + 4}">${esc(`${vals} ${r.unit}`)}</text>`);
    y += rowH;
  }
}
const plotBottom = y;
for (const t of ticks) {
  const x = xOf(t);
  out.push(`<line x1="${x.toFixed(1)}" y1="${plotTop}" x2="${x.toFixed(1)}" y2="${plotBottom}" stroke="${t === 1 ? '#000' : '#ddd'}" stroke-width="${t === 1 ? 1.2 : 1}"/>`);
  out.push(`<text x="${x.toFixed(1)}" y="${plotBottom + 14}" text-anchor="middle">${t >= 1 ? t : t.toPrecision(1)}×</text>`);
}
out.push(`<text x="${xOf(1).toFixed(1)}" y="${plotBottom + 30}" text-anchor="middle" fill="#555">← worse than Switchboard | better than Switchboard →</text>`);
out.push(`<text x="10" y="${H - 10}" fill="#777">Generated by bench/plot.mjs from ${esc([echoPath, ...extras.map(([p]) => p), fanoutPath].filter(Boolean).map((p) => path.relative(path.join(here, '..'), p)).join(', '))}</text>`);
out.push('</svg>');
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, out.join('\n') + '\n');
console.error(`plot.mjs: wrote ${outPath} (${rows.length} rows, peers: ${peers.join(', ') || 'none'})`);
