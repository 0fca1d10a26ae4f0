/**
 * Benchmark: `kiln sbom` and `kiln analyze` on the python-full and node-full bases (Debian
 * rootfs tars from make-base-rootfs.sh, imported as one-layer images). Each command runs as a
 * user would run it (a fresh CLI process), three times; wall time and peak RSS from GNU time.
 * Target: < 3 s and < 300 MB each, streaming over the layers: the store must not gain unpacked
 * snapshots or temp files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureBaseTar, basesUnavailable, type BaseName } from '../test/helpers/bases.js';
import { cliPath } from '../test/helpers/paths.js';

const TARGET_S = 3;
const TARGET_MB = 300;
const RUNS = 3;

const why = basesUnavailable();
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}
if (!existsSync('/usr/bin/time')) {
  console.log('skipped: needs GNU time (/usr/bin/time) for peak RSS');
  process.exit(0);
}

const work = mkdtempSync(path.join(process.env.KILN_BENCH_DIR ?? os.tmpdir(), 'kiln-bench-analyze-'));
const env = { ...process.env, KILN_ROOT: path.join(work, 'store'), KILN_NO_PROGRESS: '1' };

function kiln(args: string[]): void {
  const r = spawnSync(process.execPath, [cliPath, ...args], { env, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`kiln ${args.join(' ')} failed: ${r.stderr}`);
}

/** One timed CLI run: [seconds, peak RSS in MB]. */
function timed(args: string[]): [number, number] {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, cliPath, ...args], {
    env,
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  if (r.status !== 0) throw new Error(`kiln ${args.join(' ')} failed: ${r.stderr}`);
  const m = /(\d+(?:\.\d+)?) (\d+)\s*$/.exec(r.stderr.trim());
  if (!m) throw new Error(`cannot read GNU time output: ${r.stderr}`);
  return [Number(m[1]), Number(m[2]) / 1024];
}

function storeState(): { snapshots: number; tmp: number } {
  const count = (d: string) => (existsSync(d) ? readdirSync(d).length : 0);
  return { snapshots: count(path.join(env.KILN_ROOT, 'snapshots')), tmp: count(path.join(env.KILN_ROOT, 'tmp')) };
}

let failed = false;
try {
  for (const base of ['python-full', 'node-full'] as BaseName[]) {
    const tar = await ensureBaseTar(base);
    kiln(['import', tar, `${base}:bench`]);
    const before = storeState();
    for (const [cmd, extra] of [
      ['sbom', ['--format', 'json']],
      ['analyze', ['--format', 'json']],
    ] as const) {
      const runs: [number, number][] = [];
      for (let i = 0; i < RUNS; i++)
        runs.push(timed([cmd, `${base}:bench`, ...extra, '-o', path.join(work, 'out.json')]));
      const times = runs.map((r) => r[0]).sort((a, b) => a - b);
      const rss = Math.max(...runs.map((r) => r[1]));
      const median = times[Math.floor(times.length / 2)]!;
      const ok = median < TARGET_S && rss < TARGET_MB;
      if (!ok) failed = true;
      console.log(
        `${base.padEnd(12)} kiln ${cmd.padEnd(8)} median ${median.toFixed(2)} s (best ${times[0]!.toFixed(2)} s)  peak RSS ${rss.toFixed(0)} MB  ` +
          `[${(statSync(tar).size / 1e6).toFixed(0)} MB rootfs]  ${ok ? 'OK' : `MISSED target < ${TARGET_S} s and < ${TARGET_MB} MB`}`,
      );
    }
    const after = storeState();
    const streamed = after.snapshots === before.snapshots && after.tmp === before.tmp;
    console.log(
      `${base.padEnd(12)} streamed without unpacking: ${streamed ? 'yes' : `NO (snapshots ${before.snapshots}→${after.snapshots}, tmp ${before.tmp}→${after.tmp})`}`,
    );
    if (!streamed) failed = true;
    console.log(
      `${base.padEnd(12)} load average during the runs: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} on ${os.cpus().length} CPUs`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
