#!/usr/bin/env node
// Runs the compiled tests (dist/test/**/*.test.js) with node's test runner.
//   node scripts/test.mjs [unit|integration] [name-substring...]
// Node 20's runner takes explicit files; we collect them so the selection is ours.
import { readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const kinds = args.filter((a) => a === 'unit' || a === 'integration');
const filters = args.filter((a) => a !== 'unit' && a !== 'integration');

function walk(dir) {
  let out = [];
  let entries = [];
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const dirs = (kinds.length ? kinds : ['unit', 'integration']).map((k) => path.join(root, 'dist', 'test', k));
const files = dirs.flatMap(walk).filter((f) => filters.every((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('no test files found (did `npm run build` run?)');
  process.exit(1);
}
const concurrency = process.env.KILN_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
