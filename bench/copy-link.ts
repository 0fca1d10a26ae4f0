/**
 * Benchmark: a base-image change under a COPY of 30,000 small files, with and without `--link`.
 * Each repetition builds a new base (a different file on debian-slim), then times the rebuild of
 * `FROM $BASE` + `COPY [--link] files/ /app/` on it through the CLI: with --link the COPY's layer
 * comes from the cache and is rebased (copy-step.ts, cache-step.ts), without it the files are
 * hashed, copied and written into a new layer.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const basesDir = process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases';
const baseTar = path.join(basesDir, 'debian-slim.tar');
let repo = path.dirname(fileURLToPath(import.meta.url));
while (!existsSync(path.join(repo, 'scripts', 'make-base.sh')) && path.dirname(repo) !== repo)
  repo = path.dirname(repo);
if (!existsSync(baseTar)) {
  const made = spawnSync('bash', [path.join(repo, 'scripts', 'make-base.sh'), basesDir, 'debian-slim'], {
    stdio: 'inherit',
  });
  if (made.status !== 0) {
    console.error(`copy-link: cannot make ${baseTar} (scripts/make-base.sh failed, exit ${made.status})`);
    process.exit(1);
  }
}
const cli = path.join(repo, 'dist', 'bin', 'kiln.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-link-'));
const root = path.join(work, 'store');
const FILES = 30_000;
const REPS = Number(process.env.KILN_BENCH_REPS ?? 3);

function kiln(args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, KILN_ROOT: root },
  });
  if (r.status !== 0) {
    console.error(`copy-link: kiln ${args.join(' ')} failed:\n${r.stderr}`);
    process.exit(1);
  }
  return Number(process.hrtime.bigint() - t) / 1e9;
}

try {
  kiln(['import', baseTar, 'debian-slim:bookworm']);
  const ctx = path.join(work, 'ctx');
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(ctx, 'files', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 7)));
  }
  const times: Record<'link' | 'plain', number[]> = { link: [], plain: [] };
  for (const mode of ['link', 'plain'] as const) {
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      `ARG BASE\nFROM $BASE\nCOPY ${mode === 'link' ? '--link ' : ''}files/ /app/\n`,
    );
    const baseCtx = path.join(work, `base-${mode}`);
    mkdirSync(baseCtx, { recursive: true });
    writeFileSync(path.join(baseCtx, 'Dockerfile'), 'FROM debian-slim:bookworm\nCOPY stamp /stamp\n');
    for (let rep = 0; rep <= REPS; rep++) {
      // A new base each time: the step below sees a changed parent.
      writeFileSync(path.join(baseCtx, 'stamp'), `${mode} ${rep}\n`);
      const base = `base-${mode}:${rep}`;
      kiln(['build', '-q', '-t', base, baseCtx]);
      const s = kiln(['build', '-q', '--build-arg', `BASE=${base}`, '-t', `app-${mode}:${rep}`, ctx]);
      if (rep > 0) times[mode].push(s); // rep 0 fills the cache (and the file-digest cache)
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const link = median(times.link);
  const plain = median(times.plain);
  console.log(
    `copy-link: rebuild after a base change under a COPY of ${FILES} files: --link ${link.toFixed(2)} s, without --link ${plain.toFixed(2)} s (median of ${REPS}; ${(plain / link).toFixed(1)}x)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
