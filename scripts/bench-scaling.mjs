// `npm run bench -- --scaling` (scripts/bench.mjs): kiln and BuildKit side by side as the work of one
// RUN grows — a number of files (1k … 300k) or one file of incompressible data (100 MB … 4 GB).
// For each point a workload is generated in a temp dir:
//
//   FROM localhost:5000/debian-slim:bookworm      (the tests' base, served by peers-up.sh's registry)
//   RUN <make N files, or one file of S bytes>
//   COPY marker.txt /marker.txt
//
// and built by each builder (both with --network none: the RUN needs none):
//   cold         no build cache: kiln's image removed and `kiln prune --cache --all-ages`; docker's
//                image removed and `docker builder prune -af`; then a build with --no-cache;
//   incremental  marker.txt changed, build again: the big RUN is a cache hit, the one-file COPY
//                after it reruns — how fast the cached big layer is found and a small layer added
//                on top (the user's everyday rebuild above a heavy dependency step).
//   RUN alone    the same generator in a container of the base (`kiln run` / `docker run`): the
//                part of a cold build that is the workload's own process, not the builder's.
//   outside the RUN  a cold build's time less its RUN step's process (kiln: the profile's "RUN
//                process" phase, KILN_PROFILE; BuildKit: the RUN step's `DONE` time in
//                --progress=plain): the builder's own work — the layer's diff, tar and hash, the
//                image — apart from the files' creation, which this machine's file system makes
//                depend on where they land (below).
// Peak memory: kiln — the peak of the summed RSS of the CLI process and all its descendants (the
// runtime, the RUN's process), sampled from /proc every 100 ms; BuildKit (embedded in dockerd) —
// the peak RSS of the dockerd process during the build minus its RSS just before it (the docker
// client, containerd and the RUN's process are not counted).
//
// Fair ground for many-file points (see docs/benchmarks.md, "Scaling"): kiln's store lies beside
// dockerd's data root (same parent directory: `kiln-scaling-store`), and each cold build or RUN
// alone starts `--settle` seconds (default 61) after the last removal of a point's files and a
// `sync`. This machine's ext4 has no journal; there ext4's inode allocator skips inodes freed less
// than 60 s ago (360 s while their inode table block is dirty: `recently_deleted()` in
// fs/ext4/ialloc.c), probing the buffer cache once per skipped inode for every file it creates —
// a cost quadratic in the files the bench's own clean-up just removed in the same block groups,
// which is not either builder's work (perf: 36–68 % of a 10k-file RUN's samples when it is paid).
//
// Results: a TSV (one row per point and builder; rows of earlier runs for other points are kept,
// so the curve can be measured in pieces), a markdown table and an SVG chart (our own generator
// below: no dependency) in the output directory (docs/img by default).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rssOf, tree } from './proc-tree.mjs';

const registry = 'localhost:5000';
const base = `${registry}/debian-slim:bookworm`;
const dockerHost = 'unix:///tmp/dockerd.sock';
const D = '/usr/bin/docker';

/** "1k" → 1000, "300k" → 300000, "100M" → 1e8, "4G" → 4e9 (decimal, as the issue's MB and GB). */
export function parseCount(s) {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)B?$/.exec(s.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 }[m[2]];
  return Math.round(Number(m[1]) * mult);
}

/** The RUN's command for a point: shell with coreutils only (seq, split, head), no loop per file. */
function generator(kind, n) {
  if (kind === 'size') return `head -c ${n} /dev/urandom > /blob.bin`;
  // Directories of 1,000 files (like a package tree, not one huge directory), each file holding
  // its own number: one `split` per directory writes its 1,000 files.
  const dirs = Math.ceil(n / 1000);
  const last = n - (dirs - 1) * 1000;
  return (
    `mkdir /files && cd /files && for d in $(seq ${dirs}); do mkdir $d; ` +
    `seq $([ $d = ${dirs} ] && echo ${last} || echo 1000) | split -l 1 -a 4 -d - $d/f; done`
  );
}

/**
 * Run a command, timed; meanwhile sample memory every 100 ms: `memory(pid)` → bytes. Resolves to
 * { secs, peak, code, err }.
 */
function timed(cmd, args, env, memory, keepStderr = false) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b) => (err = keepStderr ? err + b : (err + b).slice(-4000)));
    let peak = 0;
    const sample = () => {
      if (p.pid !== undefined) peak = Math.max(peak, memory(p.pid));
    };
    const timer = setInterval(sample, 100);
    sample();
    p.on('close', (code) => {
      clearInterval(timer);
      resolve({ secs: Number(process.hrtime.bigint() - t0) / 1e9, peak, code: code ?? 1, err });
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * How long to wait before a measurement that creates many files: until `settleSecs` after the last
 * removal of many files (`removedAt`, ms, taken after the `sync` that wrote the freed inodes' table
 * blocks). 0 when that is past, or when nothing was removed yet.
 */
export function settleWait(removedAt, settleSecs, now = Date.now()) {
  if (removedAt === undefined || !(settleSecs > 0)) return 0;
  return Math.max(0, removedAt + settleSecs * 1000 - now);
}

/**
 * Where the bench's kiln store lies: beside dockerd's data root (the same parent directory), so
 * that both builders' files go to the same part of the disk; without dockerd, in the bench dir.
 */
export function kilnStoreBeside(dockerRoot, benchDir) {
  return dockerRoot ? path.join(path.dirname(dockerRoot), 'kiln-scaling-store') : path.join(benchDir, 'store');
}

/**
 * Seconds of a BuildKit build's RUN steps, from its `--progress=plain` output (`#5 [2/3] RUN …`, then
 * `#5 DONE 7.1s`); undefined when none is found.
 */
export function buildkitRunSecs(progress) {
  const open = new Set();
  let total;
  for (const line of progress.split('\n')) {
    const head = /^#(\d+) \[[^\]]*\] RUN /.exec(line);
    if (head) open.add(head[1]);
    const done = /^#(\d+) DONE (\d+(?:\.\d+)?)s\s*$/.exec(line);
    if (done && open.delete(done[1])) total = (total ?? 0) + Number(done[2]);
  }
  return total;
}

/** Seconds of kiln's RUN processes, from its KILN_PROFILE record (src/util/profile.ts); undefined when none ran. */
export function kilnRunSecs(record) {
  const runs = Object.entries(record?.byName ?? {}).filter(([name]) => name.startsWith('RUN process'));
  return runs.length ? runs.reduce((s, [, v]) => s + v.ms, 0) / 1000 : undefined;
}

const median = (v) => {
  const s = v.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
};
const quiet = (cmd, args, env) => spawnSync(cmd, args, { env, stdio: 'ignore' });

export const COLUMNS = [
  'kind',
  'point',
  'n',
  'builder',
  'cold_s',
  'incr_s',
  'run_alone_s',
  'cold_run_s',
  'cold_outside_run_s',
  'cold_rss_mb',
  'incr_rss_mb',
  'reps',
  'load1',
  'date',
];

/**
 * Measure every point with every builder; returns the rows of this run (objects keyed by COLUMNS).
 * opts: { cli, benchDir, files: string[], sizes: string[], reps, builders: string[], runAlone, log,
 *   settle?: seconds (default 61), kilnStore?: path (default beside dockerd's data root) }
 */
export async function measure(opts) {
  const { cli, benchDir, reps, builders, log } = opts;
  if (opts.files.length + opts.sizes.length === 0) return [];
  const dockerEnv = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_BUILDKIT: '1' };
  const dockerRoot = builders.includes('buildkit')
    ? spawnSync(D, ['info', '-f', '{{.DockerRootDir}}'], { env: dockerEnv, encoding: 'utf8' }).stdout?.trim()
    : undefined;
  const kilnStore = opts.kilnStore ?? kilnStoreBeside(dockerRoot || undefined, benchDir);
  log(`   kiln's store: ${kilnStore}${dockerRoot ? ` (dockerd's data root: ${dockerRoot})` : ''}`);
  const kilnEnv = { ...process.env, KILN_ROOT: kilnStore };
  const settleSecs = opts.settle ?? 61;
  // When many files were last removed (after a sync); each builder's clean-up sets it.
  let removedAt;
  const removed = () => {
    quiet('sync', []);
    removedAt = Date.now();
  };
  const settle = async (kind) => {
    if (kind === 'files') await sleep(settleWait(removedAt, settleSecs));
  };
  const kiln = (...a) => [process.execPath, [cli, ...a], kilnEnv];
  const docker = (...a) => [D, a, dockerEnv];
  let dockerdPid;
  if (builders.includes('buildkit')) {
    dockerdPid = Number(readFileSync('/tmp/dockerd.pid', 'utf8').trim());
    if (quiet(D, ['pull', '-q', base], dockerEnv).status !== 0) throw new Error(`docker pull ${base} failed`);
  }
  if (builders.includes('kiln') && quiet(...kiln('pull', base)).status !== 0)
    throw new Error(`kiln pull ${base} failed`);
  // One untimed build per builder first: the base unpacked (kiln unpacks at first use, docker at
  // pull) and kiln's V8 code cache written, so that the first point pays neither.
  const warm = path.join(benchDir, 'scaling', 'warm-up');
  mkdirSync(warm, { recursive: true });
  writeFileSync(path.join(warm, 'Dockerfile'), `FROM ${base}\nRUN true\n`);
  for (const b of builders) {
    const [cmd, args, env] =
      b === 'kiln'
        ? kiln('build', '-q', '--network', 'none', '--no-cache', '-t', 'scaling-warm-up:latest', warm)
        : docker('build', '-q', '--network', 'none', '--no-cache', '-t', 'scaling-warm-up:latest', warm);
    if (quiet(cmd, args, env).status !== 0)
      throw new Error(`${b}: the warm-up build failed (${cmd} ${args.join(' ')})`);
    if (b === 'kiln') quiet(...kiln('rmi', 'scaling-warm-up:latest'));
    else quiet(...docker('rmi', '-f', 'scaling-warm-up:latest'));
  }
  rmSync(warm, { recursive: true, force: true });
  const treeRss = (pid) => tree(pid).reduce((s, p) => s + rssOf(p), 0);
  const dockerdGrowth = (before) => () => Math.max(0, rssOf(dockerdPid) - before);

  const points = [
    ...opts.files.map((p) => ({ kind: 'files', point: p, n: parseCount(p) })),
    ...opts.sizes.map((p) => ({ kind: 'size', point: p, n: parseCount(p) })),
  ];
  const rows = [];
  for (const { kind, point, n } of points) {
    if (!n) throw new Error(`not a count: ${point} (e.g. 10k, 300k, 100M, 4G)`);
    const ctx = path.join(benchDir, 'scaling', `${kind}-${point}`);
    rmSync(ctx, { recursive: true, force: true });
    mkdirSync(ctx, { recursive: true });
    const gen = generator(kind, n);
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      `# kiln's scaling benchmark (scripts/bench-scaling.mjs): ${kind === 'files' ? `${n} files` : `${n} bytes`} in one RUN\n` +
        `FROM ${base}\nRUN ${gen}\nCOPY marker.txt /marker.txt\n`,
    );
    // The builders take turns, rep by rep (and which goes first alternates): creating many small
    // files on this machine's ext4 (mounted with discard) was seen to take 3x longer from one minute to
    // the next (the same `docker run` of the 10k-file generator: 2.1 s, then 5.1 s), so a builder's
    // reps run back to back would measure the disk's mood as much as the builder.
    const state = new Map();
    for (const b of builders) {
      const tag = `scaling-${kind}-${point.toLowerCase()}-${b}:latest`;
      const build = (...flags) =>
        b === 'kiln'
          ? kiln('build', '-q', '--network', 'none', ...flags, '-t', tag, ctx)
          : docker('build', '-q', '--network', 'none', ...flags, '-t', tag, ctx);
      const clean = () => {
        if (b === 'kiln') {
          quiet(...kiln('rmi', tag));
          quiet(...kiln('prune', '--cache', '--all-ages'));
        } else {
          quiet(...docker('rmi', '-f', tag));
          // The incremental build left the cold one's image dangling (1 GB at the 1 GB point).
          quiet(...docker('image', 'prune', '-f'));
          quiet(...docker('builder', 'prune', '-af'));
        }
        removed();
      };
      const run = async ([cmd, args, env], keepStderr = false) => {
        const before = b === 'buildkit' ? rssOf(dockerdPid) : 0;
        const r = await timed(cmd, args, env, b === 'kiln' ? treeRss : dockerdGrowth(before), keepStderr);
        if (r.code !== 0) throw new Error(`${b} ${args.slice(1, 3).join(' ')} ${kind} ${point} failed:\n${r.err}`);
        return r;
      };
      // A build, with how long its RUN's process took (r.runSecs): kiln's profile, BuildKit's progress.
      // kiln's peak is also at least its own process's (the profile's maxRSS): a rebuild of ~0.1 s
      // can end before the 100 ms sampler sees the process grown.
      const profiledBuild = async (...flags) => {
        const [cmd, args, env] = build(...flags);
        if (b === 'kiln') {
          const profile = path.join(benchDir, 'scaling', `profile-${process.pid}.jsonl`);
          rmSync(profile, { force: true });
          // Without the phases' steps (their AsyncLocalStorage is the profile's own cost: src/util/profile.ts).
          const r = await run([cmd, args, { ...env, KILN_PROFILE: profile, KILN_PROFILE_STEPS: '0' }]);
          const last = existsSync(profile) ? readFileSync(profile, 'utf8').trim().split('\n').at(-1) : undefined;
          rmSync(profile, { force: true });
          const record = last ? JSON.parse(last) : undefined;
          const own = Number(record?.maxRssMB) * 2 ** 20; // the profile's MB are MiB (maxRSS / 1024)
          return { ...r, peak: Math.max(r.peak, Number.isFinite(own) ? own : 0), runSecs: kilnRunSecs(record) };
        }
        const r = await run([cmd, args.map((a) => (a === '-q' ? '--progress=plain' : a)), env], true);
        return { ...r, runSecs: buildkitRunSecs(r.err) };
      };
      state.set(b, { build, profiledBuild, clean, run, cold: [], incr: [], loads: [] });
    }
    for (let i = 0; i < reps; i++) {
      for (const b of i % 2 === 0 ? builders : [...builders].reverse()) {
        const { profiledBuild, clean, cold, incr, loads } = state.get(b);
        clean();
        writeFileSync(path.join(ctx, 'marker.txt'), `cold ${i} ${b} ${Date.now()}\n`);
        await settle(kind);
        loads.push(os.loadavg()[0]);
        cold.push(await profiledBuild('--no-cache'));
        writeFileSync(path.join(ctx, 'marker.txt'), `incremental ${i} ${b} ${Date.now()}\n`);
        loads.push(os.loadavg()[0]);
        incr.push(await profiledBuild());
        log(
          `   ${kind} ${point} ${b}: cold ${cold[i].secs.toFixed(2)} s (${(cold[i].peak / 1e6).toFixed(0)} MB; its RUN ${cold[i].runSecs?.toFixed(2) ?? '?'} s), ` +
            `incremental ${incr[i].secs.toFixed(2)} s (${(incr[i].peak / 1e6).toFixed(0)} MB), load ${loads.at(-1).toFixed(1)}`,
        );
        clean();
      }
    }
    for (const b of builders) {
      const { run, cold, incr, loads } = state.get(b);
      // The workload's own process alone, in a container of the base (start-up included); both
      // remove the container's files when it ends.
      if (opts.runAlone !== false) await settle(kind);
      const alone =
        opts.runAlone === false
          ? undefined
          : await run(
              b === 'kiln'
                ? kiln('run', '--network', 'none', base, 'sh', '-c', gen)
                : docker('run', '--rm', '--network', 'none', base, 'sh', '-c', gen),
            );
      if (alone) log(`   ${kind} ${point} ${b}: RUN alone ${alone.secs.toFixed(2)} s`);
      if (b === 'kiln') quiet(...kiln('prune', '--all-ages'));
      if (alone || b === 'kiln') removed();
      rows.push({
        kind,
        point,
        n: String(n),
        builder: b,
        cold_s: median(cold.map((r) => r.secs)).toFixed(2),
        incr_s: median(incr.map((r) => r.secs)).toFixed(2),
        run_alone_s: alone ? alone.secs.toFixed(2) : '',
        cold_run_s: cold.every((r) => r.runSecs !== undefined) ? median(cold.map((r) => r.runSecs)).toFixed(2) : '',
        cold_outside_run_s: cold.every((r) => r.runSecs !== undefined)
          ? median(cold.map((r) => r.secs - r.runSecs)).toFixed(2)
          : '',
        cold_rss_mb: (Math.max(...cold.map((r) => r.peak)) / 1e6).toFixed(0),
        incr_rss_mb: (Math.max(...incr.map((r) => r.peak)) / 1e6).toFixed(0),
        reps: String(reps),
        load1: `${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`,
        date: new Date().toISOString().slice(0, 16) + 'Z',
      });
    }
    rmSync(ctx, { recursive: true, force: true });
  }
  return rows;
}

/** The TSV's rows (objects keyed by COLUMNS), or [] when there is none. */
export function readTsv(file) {
  if (!existsSync(file)) return [];
  const [head, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = (head ?? '').split('\t');
  return lines.filter(Boolean).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));
}

/** Rows of this run replace those of the same point and builder; the rest are kept. Sorted. */
export function mergeRows(old, fresh) {
  const key = (r) => `${r.kind}\t${r.point}\t${r.builder}`;
  const seen = new Set(fresh.map(key));
  return [...old.filter((r) => !seen.has(key(r))), ...fresh].sort(
    (a, b) => a.kind.localeCompare(b.kind) || Number(a.n) - Number(b.n) || a.builder.localeCompare(b.builder),
  );
}

function writeAtomic(file, text) {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

export function toTsv(rows) {
  return [COLUMNS.join('\t'), ...rows.map((r) => COLUMNS.map((c) => r[c] ?? '').join('\t'))].join('\n') + '\n';
}

const label = (kind, n) =>
  kind === 'files' ? `${n >= 1000 ? `${n / 1000}k` : n} files` : n >= 1e9 ? `${n / 1e9} GB` : `${n / 1e6} MB`;

/** Pairs of rows (kiln, BuildKit) per point; the ratios reference / kiln (above 1: kiln faster). */
export function pairs(rows) {
  const out = [];
  for (const k of rows.filter((r) => r.builder === 'kiln')) {
    const p = rows.find((r) => r.builder === 'buildkit' && r.kind === k.kind && r.point === k.point);
    const ratio = (a, b) => (Number(a) > 0 && Number(b) > 0 ? Number(b) / Number(a) : undefined);
    out.push({
      k,
      p,
      cold: ratio(k.cold_s, p?.cold_s),
      incr: ratio(k.incr_s, p?.incr_s),
      outside: ratio(k.cold_outside_run_s, p?.cold_outside_run_s),
    });
  }
  return out;
}

export function toMarkdown(rows) {
  const x = (r) => (r === undefined ? 'n/a' : `${r.toFixed(2)}×`);
  const lines = [
    '| point | cold: kiln | BuildKit | ratio | cold outside the RUN: kiln / BuildKit | ratio | incremental: kiln | BuildKit | ratio | RUN alone: kiln / docker run | peak RSS: kiln (cold / incr.) | dockerd growth (cold / incr.) | load: kiln / BuildKit |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { k, p, cold, incr, outside } of pairs(rows)) {
    const outsideRun =
      k.cold_outside_run_s || p?.cold_outside_run_s
        ? `${k.cold_outside_run_s || 'n/a'} / ${p?.cold_outside_run_s || 'n/a'} s`
        : 'not measured';
    lines.push(
      `| ${label(k.kind, Number(k.n))} | ${k.cold_s} s | ${p ? `${p.cold_s} s` : 'n/a'} | ${x(cold)} | ${outsideRun} | ${x(outside)} | ${k.incr_s} s | ${p ? `${p.incr_s} s` : 'n/a'} | ${x(incr)} | ${k.run_alone_s || p?.run_alone_s ? `${k.run_alone_s || 'n/a'} / ${p?.run_alone_s || 'n/a'} s` : 'not run'} | ${k.cold_rss_mb} / ${k.incr_rss_mb} MB | ${p ? `${p.cold_rss_mb} / ${p.incr_rss_mb} MB` : 'n/a'} | ${k.load1} / ${p?.load1 ?? 'n/a'} |`,
    );
  }
  return lines.join('\n') + '\n';
}

// ---- the chart: four panels (time and peak memory, against files and against layer size), log x.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
/** 1, 2, 5 × 10^k ticks covering [lo, hi]. */
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  return out;
}
function linTicks(hi) {
  const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((s) => hi / s <= 6) ?? 1000;
  const out = [];
  for (let v = 0; out.length === 0 || out[out.length - 1] < hi; v += step) out.push(v);
  return out;
}
const fmtSecs = (v) => (v >= 1 ? `${v} s` : `${v * 1000} ms`);

const SERIES = [
  { builder: 'kiln', phase: 'cold', color: '#c2410c', dash: '', name: 'kiln cold' },
  { builder: 'kiln', phase: 'incr', color: '#c2410c', dash: '6 4', name: 'kiln incremental' },
  { builder: 'buildkit', phase: 'cold', color: '#1d4ed8', dash: '', name: 'BuildKit cold' },
  { builder: 'buildkit', phase: 'incr', color: '#1d4ed8', dash: '6 4', name: 'BuildKit incremental' },
  // Time panels only (no memory of its own): the cold build less its RUN's process.
  { builder: 'kiln', phase: 'cold_outside_run', color: '#c2410c', dash: '1 3', name: 'kiln cold, outside the RUN' },
  {
    builder: 'buildkit',
    phase: 'cold_outside_run',
    color: '#1d4ed8',
    dash: '1 3',
    name: 'BuildKit cold, outside the RUN',
  },
];

function panel({ x0, y0, w, h, title, xs, series, xlabel, ylog, yfmt, xfmt, limit }) {
  const out = [];
  const all = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => y > 0);
  out.push(`<text x="${x0 + w / 2}" y="${y0 - 12}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  if (xs.length === 0 || all.length === 0) {
    out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${x0 + w / 2}" y="${y0 + h / 2}" text-anchor="middle" fill="#666">not measured</text>`);
    return out.join('\n');
  }
  let xlo = Math.min(...xs);
  let xhi = Math.max(...xs);
  if (xlo === xhi) [xlo, xhi] = [xlo / 2, xhi * 2];
  const lx = (v) => x0 + ((Math.log10(v) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo))) * w;
  let ylo;
  let yhi;
  let ly;
  let yticks;
  if (ylog) {
    ylo = 10 ** Math.floor(Math.log10(Math.min(...all)));
    yhi = 10 ** Math.ceil(Math.log10(Math.max(...all)));
    ly = (v) => y0 + h - ((Math.log10(v) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * h;
    yticks = logTicks(ylo, yhi);
  } else {
    yticks = linTicks(Math.max(...all, limit ?? 0) * 1.1);
    ylo = 0;
    yhi = yticks[yticks.length - 1];
    ly = (v) => y0 + h - (v / yhi) * h;
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="#fff" stroke="#999"/>`);
  for (const t of yticks) {
    const y = ly(t).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(yfmt(t))}</text>`);
  }
  for (const t of xs) {
    const x = lx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + h}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x}" y="${y0 + h + 16}" text-anchor="middle">${esc(xfmt(t))}</text>`);
  }
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" fill="#444">${esc(xlabel)}</text>`);
  if (limit !== undefined) {
    const y = ly(limit).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#dc2626" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${x0 + w - 4}" y="${Number(y) + 14}" text-anchor="end" fill="#dc2626">goal: ${limit} MB</text>`);
  }
  for (const s of series) {
    const pts = s.points.filter(([, y]) => y > 0 || !ylog);
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${lx(x).toFixed(1)},${ly(y).toFixed(1)}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    for (const [x, y] of pts)
      out.push(`<circle cx="${lx(x).toFixed(1)}" cy="${ly(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  return out.join('\n');
}

/** The SVG chart of the rows: time (log-log) and peak memory (linear y) per kind of point. */
export function toSvg(rows, subtitle) {
  const W = 1000;
  const pw = 360;
  const ph = 220;
  const panels = [];
  const kinds = [
    { kind: 'files', xlabel: 'files made by the RUN', xfmt: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)) },
    {
      kind: 'size',
      xlabel: 'bytes of the one file the RUN makes',
      xfmt: (v) => (v >= 1e9 ? `${v / 1e9} GB` : `${v / 1e6} MB`),
    },
  ];
  kinds.forEach(({ kind, xlabel, xfmt }, col) => {
    const rs = rows.filter((r) => r.kind === kind);
    const xs = [...new Set(rs.map((r) => Number(r.n)))].sort((a, b) => a - b);
    const series = (metric) =>
      SERIES.map((s) => ({
        ...s,
        points: rs
          .filter((r) => r.builder === s.builder)
          .map((r) => [Number(r.n), Number(r[metric(s.phase)])])
          .filter(([, y]) => Number.isFinite(y))
          .sort((a, b) => a[0] - b[0]),
      }));
    const x0 = 110 + col * (pw + 120);
    panels.push(
      panel({
        x0,
        y0: 110,
        w: pw,
        h: ph,
        title: `build time against ${kind === 'files' ? 'the number of files' : "one layer's size"}`,
        xs,
        series: series((phase) => `${phase}_s`),
        xlabel,
        ylog: true,
        yfmt: fmtSecs,
        xfmt,
      }),
      panel({
        x0,
        y0: 110 + ph + 110,
        w: pw,
        h: ph,
        title: `peak memory against ${kind === 'files' ? 'the number of files' : "one layer's size"}`,
        xs,
        series: series((phase) => `${phase}_rss_mb`),
        xlabel,
        ylog: false,
        yfmt: (v) => `${v} MB`,
        xfmt,
        limit: 256,
      }),
    );
  });
  const legend = SERIES.map((s, i) => {
    const x = 110 + (i % 4) * 200;
    const y = 62 + Math.floor(i / 4) * 18;
    return (
      `<line x1="${x}" x2="${x + 30}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>` +
      `<text x="${x + 36}" y="${y}" dominant-baseline="middle">${esc(s.name)}</text>`
    );
  }).join('\n');
  const H = 110 + 2 * ph + 110 + 70;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="#fafafa"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">kiln and BuildKit: one RUN making many files or one big file</text>
<text x="${W / 2}" y="42" text-anchor="middle" fill="#444">${esc(subtitle)}</text>
${legend}
${panels.join('\n')}
<text x="110" y="${H - 14}" fill="#444">time: log scale; peak memory: kiln = its CLI process and children (summed RSS), BuildKit = dockerd's RSS growth during the build</text>
</svg>
`;
}

/** Measure, merge with the TSV in outDir, write the TSV, the markdown table and the SVG. */
export async function scaling(opts) {
  const tsvFile = path.join(opts.outDir, 'scaling.tsv');
  const fresh = await measure(opts);
  const rows = mergeRows(readTsv(tsvFile), fresh);
  writeAtomic(tsvFile, toTsv(rows));
  const md = toMarkdown(rows);
  writeAtomic(path.join(opts.outDir, 'scaling.md'), md);
  const dates = [...new Set(rows.map((r) => r.date.slice(0, 10)))].join(', ');
  const loads = rows.map((r) => r.load1).join(' ');
  const nums = loads.split(/[\s-]+/).map(Number);
  const subtitle = `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}; ${dates}; load average ${Math.min(...nums).toFixed(1)}–${Math.max(...nums).toFixed(1)}; medians of ${[...new Set(rows.map((r) => r.reps))].join('/')} rep(s)`;
  writeAtomic(path.join(opts.outDir, 'scaling.svg'), toSvg(rows, subtitle));
  return { fresh, rows, md, tsvFile };
}
