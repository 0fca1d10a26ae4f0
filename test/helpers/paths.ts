/** Where things are, for tests: the repository, the built CLI, fixtures, bench workloads. */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kiln') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the kiln repository root');
    dir = up;
  }
}

export const repoRoot = findRepoRoot();
/** The `kiln` executable as users run it: the bundle (scripts/bundle.mjs). */
export const cliPath = path.join(repoRoot, 'dist', 'bin', 'kiln.js');
/** Hand-made test inputs (source tree, not dist). */
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');
/** The benchmark workloads (the seeds' patterns, offline, and the stress cases): bench/workloads. */
export const workloadsDir = path.join(repoRoot, 'bench', 'workloads');
