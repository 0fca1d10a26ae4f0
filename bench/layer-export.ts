/**
 * Benchmark: layer export (tar + gzip + diff_id + digest) on ~300 MB of incompressible data and
 * on 30,000 small files, against `tar -c | pigz -p 2 | sha256sum` and single-threaded `tar -cz`;
 * medians of KILN_BENCH_RUNS (3) alternating runs, wall and CPU time (user + system of every process
 * and thread, start-up included). kiln encodes at its default gzip (libdeflate's level 2), pigz at its
 * own (6). Each kiln encode is a process of its own running layer-encode.ts bundled as kiln ships.
 * Target: ≥ 0.9× the pigz pipeline's throughput, peak RSS < 256 MB.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
function makeBig(dir: string): number {
  const fd = openSync(path.join(dir, 'blob.bin'), 'w');
  const chunk = 8 << 20;
  for (let i = 0; i < 300_000_000 / chunk; i++) writeSync(fd, randomBytes(chunk));
  closeSync(fd);
  return 300_000_000;
}
function makeSmall(dir: string): number {
  let bytes = 0;
  for (let d = 0; d < 300; d++) {
    mkdirSync(path.join(dir, `pkg${d}`, 'lib'), { recursive: true });
    for (let f = 0; f < 100; f++) {
      const body = `module.exports = ${JSON.stringify(randomBytes(200 + (f % 7) * 100).toString('base64'))};\n`;
      writeFileSync(path.join(dir, `pkg${d}`, 'lib', `f${f}.js`), body);
      bytes += body.length;
    }
  }
  return bytes;
}
/** `cmd`'s wall time and CPU time (user + system of every process of it, as the shell's `times` counts its children). */
function timeShell(cmd: string): { s: number; cpu: number } {
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true']);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `${cmd}; times`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  // `times`: the shell's user and system time, then its children's ("0m0.61s 0m0.20s").
  const children = r.stdout
    .trim()
    .split('\n')
    .at(-1)!
    .match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/);
  if (!children) throw new Error(`no CPU times from the shell: ${r.stdout}`);
  const [, um, us, sm, ss] = children.map(Number) as number[];
  return { s, cpu: um! * 60 + us! + sm! * 60 + ss! };
}
/**
 * layer-encode.js bundled as kiln ships (scripts/bundle.mjs's options for dist/bin/kiln-cli.cjs:
 * one CommonJS file, imports tree-shaken), beside it so that the native addons are found from it
 * as from dist/bin. `node dist/bench/layer-encode.cjs DIR` is then one encode as a kiln process.
 */
async function bundleEncoder(): Promise<string> {
  const outfile = path.join(here, 'layer-encode.cjs');
  await build({
    entryPoints: [path.join(here, 'layer-encode.js')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['fs-xattr'],
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
    define: { 'import.meta.url': '__kilnModuleUrl' },
    banner: { js: "var __kilnModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  });
  return outfile;
}

/**
 * One encode in a process of its own (the bundle above): its time, and its peak RSS as the kernel
 * counts it (process.resourceUsage().maxRSS: every thread, the gzip workers too), not raised by an
 * earlier workload of this benchmark.
 */
function timeKiln(encoder: string, dir: string): { s: number; cpu: number; rss: number } {
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true']);
  const r = spawnSync(process.execPath, [encoder, dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`kiln encode of ${dir} failed`);
  return JSON.parse(r.stdout) as { s: number; cpu: number; rss: number };
}

const RUNS = Number(process.env.KILN_BENCH_RUNS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const encoder = await bundleEncoder();
if (process.argv[2] === '--bundle') {
  process.stdout.write(`${encoder}\n`);
  process.exit(0);
}
const work = mkdtempSync(path.join(process.env.KILN_BENCH_DIR ?? os.tmpdir(), 'kiln-bench-layer-'));
try {
  for (const [name, make] of [
    ['300MB-incompressible', makeBig],
    ['30000-small-files', makeSmall],
  ] as const) {
    const dir = path.join(work, name);
    mkdirSync(dir, { recursive: true });
    const bytes = make(dir);
    // kiln and the pigz pipeline alternate, so both see the same load; medians of RUNS each.
    const kilnRuns: { s: number; cpu: number; rss: number }[] = [];
    const pigzRuns: { s: number; cpu: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      kilnRuns.push(timeKiln(encoder, dir));
      pigzRuns.push(timeShell(`tar -C ${dir} -c . | pigz -p 2 | sha256sum >/dev/null`));
    }
    const single = timeShell(`tar -C ${dir} -cz . | sha256sum >/dev/null`).s;
    const kiln = {
      s: median(kilnRuns.map((r) => r.s)),
      cpu: median(kilnRuns.map((r) => r.cpu)),
      rss: Math.max(...kilnRuns.map((r) => r.rss)),
    };
    const pigz = { s: median(pigzRuns.map((r) => r.s)), cpu: median(pigzRuns.map((r) => r.cpu)) };
    const mb = bytes / 1e6;
    // kiln at its default gzip (GZIP_DEFAULT: libdeflate's level 2), pigz at its own (6), as the issue names it.
    console.log(
      `${name}: kiln ${kiln.s.toFixed(2)} s, CPU ${kiln.cpu.toFixed(2)} s (${(mb / kiln.s).toFixed(0)} MB/s, peak RSS ${(kiln.rss / 1e6).toFixed(0)} MB) | ` +
        `tar|pigz -p2|sha256sum ${pigz.s.toFixed(2)} s, CPU ${pigz.cpu.toFixed(2)} s | tar -cz ${single.toFixed(2)} s | ` +
        `kiln/pigz throughput ${(pigz.s / kiln.s).toFixed(2)}x, by CPU ${(pigz.cpu / kiln.cpu).toFixed(2)}x (target >= 0.9x)` +
        ` [medians of ${RUNS}; kiln ${kilnRuns.map((r) => `${r.s.toFixed(2)}/${r.cpu.toFixed(2)}`).join(' ')}, pigz ${pigzRuns.map((r) => `${r.s.toFixed(2)}/${r.cpu.toFixed(2)}`).join(' ')} (wall/CPU); load ${os
          .loadavg()
          .map((x) => x.toFixed(1))
          .join(' ')}]`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
