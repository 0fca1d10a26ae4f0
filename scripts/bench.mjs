#!/usr/bin/env node
// Runs every compiled benchmark (dist/bench/*.js) in its own process and prints their result lines.
//   node scripts/bench.mjs [name-substring...]
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'dist', 'bench');
const filters = process.argv.slice(2);
let files = [];
try { files = readdirSync(dir).filter((f) => f.endsWith('.js')).sort(); } catch { /* none built */ }
files = files.filter((f) => filters.every((s) => f.includes(s)));
if (files.length === 0) { console.error('no benchmarks found (run npm run build)'); process.exit(1); }
let failed = 0;
for (const f of files) {
  console.log(`== ${f.replace(/\.js$/, '')}`);
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(dir, f)], { stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.log(`   (failed: exit ${r.status})`); }
}
process.exit(failed ? 1 : 0);
