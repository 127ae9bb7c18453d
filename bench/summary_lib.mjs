// What the summarize_*.mjs scripts share: their arguments and inputs, and the median.
import fs from 'node:fs';

// Reads `RUNS.jsonl OUT.json META.json` from the command line (exits 2 with the usage line if
// one is missing): the runs (one JSON object a line), the output path and the run's metadata.
export function loadRuns(script) {
  const [runsPath, outPath, metaPath] = process.argv.slice(2);
  if (!runsPath || !outPath || !metaPath) {
    console.error(`usage: node ${script} RUNS.jsonl OUT.json META.json`);
    process.exit(2);
  }
  const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
  const runs = fs
    .readFileSync(runsPath, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
  return { runs, outPath, meta };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
