#!/usr/bin/env node
// `npm run bench`: kiln's micro-benchmarks (dist/bench/*.js: parse, layer export, RUN → layer,
// pull/push, sbom/analyze), each in its own process, then — when docker or buildah is installed —
// the builders side by side on bench/workloads (bench/peers/run-peers.sh after
// bench/peers/peers-up.sh, with KILN set to this checkout's CLI), and one table of ratios.
//
//   node scripts/bench.mjs [options] [name-substring…]
//     name-substring…      only the micro-benchmarks whose file name contains all of these
//     --no-micro           skip the micro-benchmarks
//     --peers | --no-peers run the peer comparison (default: when dockerd or buildah is installed)
//     --workloads a,b      peer workloads (default: all of bench/workloads)
//     --builders a,b       buildkit,classic,buildah,kiln (default: those available, and kiln)
//     --reps N             repetitions per measurement in run-peers.sh (default 3; the median is kept)
//     --out FILE           run-peers.sh's TSV (default /var/tmp/kiln-bench/run-peers.tsv)
//     --floor              after the peer run: bench/process-floor.sh (the workloads' RUN commands run natively in
//                          a chroot, no builder) on the workloads it knows; a cold target whose floor is above
//                          BuildKit's build ÷ 1.1 says so (no builder running those commands can meet it)
//     --binfmt-off         turn binfmt_misc off (/proc/sys/fs/binfmt_misc/status) for the peer run, restored
//                          after: BuildKit (docker 20.10) probes every registered QEMU emulator on each build
//                          (~0.25 s here), which is not its best case; without it the targets show "qemu"
//     --scaling            instead: the scaling curves (scripts/bench-scaling.mjs), kiln and BuildKit
//                          as one RUN makes more files or one bigger file; writes scaling.tsv,
//                          scaling.md and scaling.svg in --scaling-dir (default docs/img)
//       --files 1k,10k,…   file counts (default 1k,10k,100k,300k)
//       --sizes 100M,1G,…  sizes of the one file (default 100M,1G,4G); "--files ''" or "--sizes ''": none
//       --no-run-alone     skip timing the RUN's generator alone in a container (long at 300k files)
//       --settle S         before each cold build and RUN alone of a many-file point: S seconds (default
//                          61) after the last clean-up and a sync (ext4 without a journal skips inodes
//                          freed < 60 s ago, at a cost per file created); 0: no wait. kiln's store lies
//                          beside dockerd's data root (kiln-scaling-store in the same parent directory)
//       --scaling-store DIR  kiln's store for the scaling curves instead (default: beside dockerd's data root)
//       --builders, --reps as above (default kiln,buildkit; 3); no point at all: the table and the
//                          chart redrawn from the TSV
// The peer run builds each workload cold, no-op and incremental with every builder: with all
// workloads and 3 repetitions it takes long on 2 cores; pick workloads and --reps 1 for a quick look.
import { readdirSync, readFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const peersDir = path.join(root, 'bench', 'peers');
const cli = path.join(root, 'dist', 'bin', 'kiln.js');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  if (v === undefined) die(`${name} needs a value`);
  argv.splice(i, 2);
  return v;
};
const flag = (name) => {
  const i = argv.indexOf(name);
  if (i >= 0) argv.splice(i, 1);
  return i >= 0;
};
function die(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

const scalingMode = flag('--scaling');
const scalingFiles = opt('--files', '1k,10k,100k,300k');
const scalingSizes = opt('--sizes', '100M,1G,4G');
const runAlone = !flag('--no-run-alone');
const settle = Number(opt('--settle', '61'));
if (!(settle >= 0)) die('--settle needs a number of seconds (0: no wait)');
const scalingStore = opt('--scaling-store', '');
const scalingDir = path.resolve(opt('--scaling-dir', path.join(root, 'docs', 'img')));
const noMicro = flag('--no-micro') || scalingMode;
const wantPeers = flag('--peers');
const noPeers = flag('--no-peers');
const workloads = opt('--workloads', '');
const builders = opt('--builders', '');
const reps = opt('--reps', '3');
const binfmtOff = flag('--binfmt-off');
const wantFloor = flag('--floor');
const benchDir = process.env.KILN_BENCH_DIR ?? '/var/tmp/kiln-bench';
const out = path.resolve(opt('--out', path.join(benchDir, 'run-peers.tsv')));
const unknown = argv.find((a) => a.startsWith('--'));
if (unknown) die(`unknown option ${unknown}`);
const filters = argv;

/** Rows of the final table: [measure, kiln, reference, ratio]. ratio > 1: kiln is faster / smaller. */
const table = [];
/** The issue's targets, one cell each: [goal, measure, value, met]. */
const goals = [];
// The load average through the run, sampled every 5 s: a target is only claimed on a quiet machine.
const cores = os.cpus().length;
const loads = [os.loadavg()[0]];
setInterval(() => loads.push(os.loadavg()[0]), 5000).unref();
let failed = 0;
/** Set when BuildKit's figures include its probe of the QEMU emulators binfmt_misc has registered. */
let buildkitProbedQemu = false;

// ---- micro-benchmarks
function ratioRows(name, text) {
  // Each benchmark prints its own result lines; the ones with a reference are turned into rows.
  let m;
  for (const line of text.split('\n')) {
    if (
      (m = /^(\S+): kiln ([\d.]+) s\b.*\| tar\|pigz -p2\|sha256sum ([\d.]+) s\b.*kiln\/pigz throughput ([\d.]+)x/.exec(
        line,
      ))
    ) {
      table.push([`layer export, ${m[1]}`, `${m[2]} s`, `tar|pigz -p2|sha256sum ${m[3]} s`, Number(m[4])]);
      goals.push(['export ≥ 0.9× pigz pipeline', m[1], `${Number(m[4]).toFixed(2)}×`, Number(m[4]) >= 0.9]);
      const rss = /peak RSS (\d+) MB/.exec(line);
      if (rss) goals.push(['peak RSS < 256 MB', `layer export, ${m[1]}`, `${rss[1]} MB`, Number(rss[1]) < 256]);
    } else if ((m = /^(\S+) (push-plain|push|pull)\s+kiln median ([\d.]+) s, skopeo copy ([\d.]+) s/.exec(line))) {
      table.push([
        `${m[2]} ${m[1]} (local registry)`,
        `${m[3]} s`,
        `skopeo copy ${m[4]} s`,
        Number(m[4]) / Number(m[3]),
      ]);
      if (m[2] !== 'pull') {
        const r = Number(m[4]) / Number(m[3]);
        goals.push(['push ≥ skopeo', `${m[2]} ${m[1]}`, `${r.toFixed(2)}×`, r >= 1]);
      }
    } else if ((m = /^run-layer (overlay|native): .*process exit → layer ready ([\d.]+) s/.exec(line))) {
      table.push([`RUN +30,000 files: exit → layer (${m[1]})`, `${m[2]} s`, '', undefined]);
    } else if ((m = /^run-layer buildah .*commit \(exit → layer ready\) ([\d.]+) s/.exec(line))) {
      for (const r of table.filter((r) => r[0].startsWith('RUN +30,000 files') && r[2] === '')) {
        r[2] = `buildah commit ${m[1]} s`;
        r[3] = Number(m[1]) / parseFloat(r[1]);
      }
    } else if ((m = /^copy-link: .* (\d+) files: --link ([\d.]+) s, without --link ([\d.]+) s/.exec(line))) {
      table.push([
        `base change under COPY --link of ${m[1]} files`,
        `${m[2]} s`,
        `without --link ${m[3]} s`,
        Number(m[3]) / Number(m[2]),
      ]);
    } else if ((m = /^parse\+plan (\d+)-line Dockerfile .*median ([\d.]+) ms/.exec(line))) {
      table.push([`parse+plan ${m[1]}-line Dockerfile`, `${m[2]} ms`, '(no peer measured)', undefined]);
    } else if ((m = /^(\S+)\s+kiln (sbom|analyze)\s+median ([\d.]+) s .*peak RSS (\d+) MB/.exec(line))) {
      table.push([`${m[2]} ${m[1]}`, `${m[3]} s, ${m[4]} MB RSS`, '(no peer measured)', undefined]);
      goals.push(['peak RSS < 256 MB', `${m[2]} ${m[1]}`, `${m[4]} MB`, Number(m[4]) < 256]);
    }
  }
  void name;
}

/** Scripts in dist/bench that another benchmark runs (with arguments), not benchmarks themselves. */
const HELPERS = new Set(['layer-encode.js']);

if (!noMicro) {
  const dir = path.join(root, 'dist', 'bench');
  let files = [];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.js') && !HELPERS.has(f))
      .sort();
  } catch {
    /* none built */
  }
  files = files.filter((f) => filters.every((s) => f.includes(s)));
  if (files.length === 0 && filters.length === 0) die('no benchmarks found (run npm run build)');
  for (const f of files) {
    console.log(`== ${f.replace(/\.js$/, '')}`);
    const text = await runTee(process.execPath, ['--expose-gc', path.join(dir, f)]);
    if (text.code !== 0) {
      failed++;
      console.log(`   (failed: exit ${text.code})`);
    }
    ratioRows(f, text.out);
  }
}

// ---- peers
const peersAvailable = has('dockerd') || has('buildah');
const doPeers = !scalingMode && !noPeers && (wantPeers || (peersAvailable && filters.length === 0));
if (doPeers) {
  if (process.getuid?.() !== 0)
    die('the peer comparison starts dockerd and a registry: run as root (or pass --no-peers)');
  // peers-up.sh makes the base tarballs with scripts/make-base.sh in the tests' cache
  // ($KILN_TEST_BASES, default /var/cache/kiln-test-bases): made once for tests, demo and bench.
  console.log('\n== peers: bench/peers/peers-up.sh');
  const up = spawnSync('bash', [path.join(peersDir, 'peers-up.sh')], { stdio: 'inherit' });
  if (up.status !== 0) {
    failed++;
    console.log(`   peers-up.sh failed (exit ${up.status}): no peer comparison`);
  } else {
    mkdirSync(path.dirname(out), { recursive: true });
    const args = ['-r', reps, '-o', out];
    if (workloads) args.push('-w', workloads);
    // kiln is always in the comparison; the others as run-peers.sh finds them (or as asked).
    const avail = [];
    if (
      spawnSync('docker', ['version'], {
        env: { ...process.env, DOCKER_HOST: 'unix:///tmp/dockerd.sock' },
        stdio: 'ignore',
      }).status === 0
    )
      avail.push('buildkit', 'classic');
    if (has('buildah')) avail.push('buildah');
    args.push('-b', builders || [...avail, 'kiln'].join(','));
    // Every kiln call of the run appends its phases (KILN_PROFILE, src/util/profile.ts) here.
    const profileFile = path.join(benchDir, 'profile.jsonl');
    rmSync(profileFile, { force: true });
    const env = {
      ...process.env,
      // kiln's executable, as users run it (`kiln`): its shell line spares node's start-up the load of
      // NODE_EXTRA_CA_CERTS (scripts/bundle.mjs); the node running this bench first on its PATH.
      KILN: cli,
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
      KILN_ROOT: path.join(benchDir, 'store'),
      KILN_PROFILE: profileFile,
      // The phases without their build step: the step's AsyncLocalStorage costs a small cold build
      // ~30 ms of CPU that a user's build does not pay (src/util/profile.ts); the tables sum by name.
      KILN_PROFILE_STEPS: '0',
    };
    console.log(`== peers: run-peers.sh ${args.join(' ')}   (KILN_ROOT=${env.KILN_ROOT})`);
    const qemu = binfmtQemu();
    const withBuildkit = args[args.length - 1].split(',').includes('buildkit');
    const restoreBinfmt = binfmtOff && qemu.enabled ? disableBinfmt() : () => undefined;
    if (withBuildkit && qemu.enabled && !binfmtOff) {
      buildkitProbedQemu = true;
      console.log(
        `   note: binfmt_misc has ${qemu.entries} QEMU emulator(s) registered and enabled: BuildKit (docker 20.10) runs` +
          ` a probe binary for each on every build (~0.25 s a build here), so its times are not its best case;` +
          ` --binfmt-off turns binfmt_misc off for the run (restored after)`,
      );
    }
    const t0 = Date.now();
    const r = await runTee('bash', [path.join(peersDir, 'run-peers.sh'), ...args], env).finally(restoreBinfmt);
    console.log(`   run-peers.sh took ${((Date.now() - t0) / 60000).toFixed(1)} min`);
    if (r.code !== 0) failed++;
    // Every cold build leaves layers behind (big-layer: 300 MB a build): left alone, a few runs
    // fill the disk (23 GB each for kiln's store and docker's was seen). The tagged results stay.
    const pruned = spawnSync(process.execPath, [cli, 'prune', '--cache', '--all-ages'], { env, encoding: 'utf8' });
    console.log(`   kiln prune of the bench store: ${(pruned.stdout || pruned.stderr).trim().split('\n').join('; ')}`);
    if (avail.includes('buildkit')) {
      const denv = { ...process.env, DOCKER_HOST: 'unix:///tmp/dockerd.sock' };
      spawnSync('docker', ['builder', 'prune', '-af'], { env: denv, stdio: 'ignore' });
      // Each cold build leaves the previous image of its tag dangling; hundreds of them made
      // BuildKit's many-files twice as slow (11.6 s instead of 5.5 s) on a later run.
      spawnSync('docker', ['image', 'prune', '-f'], { env: denv, stdio: 'ignore' });
    }
    const floors = wantFloor ? processFloors(workloads) : new Map();
    if (existsSync(out)) peerRows(readFileSync(out, 'utf8'), floors);
    if (existsSync(profileFile)) printProfiles(readFileSync(profileFile, 'utf8'));
  }
} else if (scalingMode) {
  await runScaling();
} else if (!noPeers && !peersAvailable) {
  console.log(
    '\n(peer comparison skipped: neither dockerd nor buildah is installed; bench/peers/peers-up.sh installs them)',
  );
}

/** The scaling curves: peers-up.sh (dockerd, the registry of bases), then scripts/bench-scaling.mjs. */
async function runScaling() {
  if (process.getuid?.() !== 0)
    die('the scaling curves start dockerd and a registry, and kiln runs RUN steps: run as root');
  const list = (s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const which = list(builders || 'kiln,buildkit');
  const bad = which.find((b) => b !== 'kiln' && b !== 'buildkit');
  if (bad) die(`--scaling compares kiln and buildkit, not ${bad}`);
  const { scaling, pairs } = await import('./bench-scaling.mjs');
  const files = list(scalingFiles);
  const sizes = list(scalingSizes);
  // No point (--files '' --sizes ''): only the table and the chart redrawn from the TSV.
  const up =
    files.length + sizes.length
      ? (console.log('== scaling: bench/peers/peers-up.sh'),
        spawnSync('bash', [path.join(peersDir, 'peers-up.sh')], { stdio: 'inherit' }))
      : { status: 0 };
  if (up.status !== 0) {
    failed++;
    return console.log(`   peers-up.sh failed (exit ${up.status}): no scaling curves`);
  }
  console.log(
    `== scaling: files ${files.join(',') || '-'}, sizes ${sizes.join(',') || '-'}, builders ${which.join(',')}, ${reps} rep(s)`,
  );
  let result;
  try {
    result = await scaling({
      cli,
      benchDir,
      files,
      sizes,
      reps: Number(reps),
      builders: which,
      runAlone,
      settle,
      kilnStore: scalingStore ? path.resolve(scalingStore) : undefined,
      outDir: scalingDir,
      log: (s) => console.log(s),
    });
  } catch (e) {
    failed++;
    return console.log(`   scaling failed: ${e instanceof Error ? e.message : e}`);
  }
  console.log(`   wrote ${path.join(scalingDir, 'scaling.tsv')}, scaling.md, scaling.svg\n`);
  console.log(result.md.replace(/^/gm, '   '));
  // This run's points only: the table and the targets speak for what was measured now.
  const key = (r) => `${r.kind} ${r.point}`;
  const now = new Set(result.fresh.map(key));
  for (const { k, p, cold, incr, outside } of pairs(result.rows).filter(({ k }) => now.has(key(k)))) {
    const what = k.kind === 'files' ? `${k.point} files in one RUN` : `one ${k.point}B file in one RUN`;
    table.push([`${what}: cold`, `${k.cold_s} s`, p ? `buildkit ${p.cold_s} s` : 'n/a', cold]);
    // Not a target: the builder's own part of the cold build, apart from the RUN's process.
    if (k.cold_outside_run_s && p?.cold_outside_run_s)
      table.push([
        `${what}: cold, outside the RUN`,
        `${k.cold_outside_run_s} s`,
        `buildkit ${p.cold_outside_run_s} s`,
        outside,
      ]);
    table.push([`${what}: incremental`, `${k.incr_s} s`, p ? `buildkit ${p.incr_s} s` : 'n/a', incr]);
    const rss = Math.max(Number(k.cold_rss_mb), Number(k.incr_rss_mb));
    table.push([
      `${what}: peak RSS`,
      `${rss} MB`,
      p ? `dockerd +${Math.max(Number(p.cold_rss_mb), Number(p.incr_rss_mb))} MB` : 'n/a',
      undefined,
    ]);
    goals.push(['kiln peak RSS < 256 MB', what, `${rss} MB`, rss < 256]);
    if (p) {
      for (const [phase, r] of [
        ['cold', cold],
        ['incremental', incr],
      ])
        goals.push([
          'kiln ≥ BuildKit',
          `${what}, ${phase}`,
          r === undefined ? 'n/a' : `${r.toFixed(2)}×`,
          r !== undefined && r >= 1,
        ]);
    }
  }
}

/** Bytes from run-peers' size column: bytes, or buildah's human form ("202MB", "1.2GB"). */
function bytes(s) {
  const m = /^([\d.]+)\s*([kKMGT]?B)?$/.exec(String(s).trim());
  if (!m) return undefined;
  const unit = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2] ?? 'B'] ?? 1;
  return Number(m[1]) * unit;
}
/**
 * bench/process-floor.sh on the workloads it knows (of those asked): workload → the median ms of
 * their longest chain's RUN commands run natively, with no builder.
 */
function processFloors(asked) {
  const known = ['py-wheels', 'py-obfuscate', 'single-stage-fat', 'py-venv', 'node-distroless'];
  const list = asked ? asked.split(',').filter((w) => known.includes(w)) : known;
  const floors = new Map();
  if (!list.length) return floors;
  console.log(`== floor: bench/process-floor.sh ${list.join(' ')}`);
  const r = spawnSync('bash', [path.join(root, 'bench', 'process-floor.sh'), ...list], { encoding: 'utf8' });
  process.stdout.write((r.stdout ?? '').replace(/^/gm, '   '));
  if (r.status !== 0) {
    failed++;
    console.log(`   process-floor.sh failed (exit ${r.status}): ${(r.stderr ?? '').trim()}`);
  }
  for (const m of (r.stdout ?? '').matchAll(/^(\S+): the RUN commands alone, natively: median (\d+) ms/gm))
    floors.set(m[1], Number(m[2]));
  return floors;
}

function peerRows(tsv, floors = new Map()) {
  const rows = tsv
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => {
      const [workload, builder, cold, noop, incr, size, layers, coldRun] = l.split('\t');
      return { workload, builder, cold, noop, incr, size, layers, coldRun };
    });
  for (const w of [...new Set(rows.map((r) => r.workload))]) {
    const k = rows.find((r) => r.workload === w && r.builder === 'kiln');
    for (const p of rows.filter((r) => r.workload === w && r.builder !== 'kiln')) {
      for (const phase of ['cold', 'noop', 'incr']) {
        const kv = Number(k?.[phase]);
        const pv = Number(p[phase]);
        const ratio = kv > 0 && pv > 0 ? pv / kv : undefined;
        table.push([`${w} build ${phase}`, k ? `${k[phase]} s` : 'n/a', `${p.builder} ${p[phase]} s`, ratio]);
        // Not a target: the cold build apart from the RUN steps' processes (run-peers.sh's
        // cold_run_s), i.e. the builder's own part, and the RUN processes themselves.
        const kRun = Number(k?.coldRun);
        const pRun = Number(p.coldRun);
        const both = phase === 'cold' && k?.coldRun && p.coldRun && kRun >= 0 && pRun >= 0;
        if (both) {
          const kOut = Number(k.cold) - kRun;
          const pOut = Number(p.cold) - pRun;
          table.push([
            `${w} build cold: RUN processes`,
            `${kRun.toFixed(2)} s`,
            `${p.builder} ${pRun.toFixed(2)} s`,
            pRun / kRun,
          ]);
          table.push([
            `${w} build cold: outside the RUN processes`,
            `${kOut.toFixed(2)} s`,
            `${p.builder} ${pOut.toFixed(2)} s`,
            kOut > 0 ? pOut / kOut : undefined,
          ]);
        }
        if (p.builder === 'buildkit') {
          const [goal, min] = {
            cold: ['cold ≥ 1.1× BuildKit', 1.1],
            noop: ['no-op ≤ BuildKit', 1],
            incr: ['incremental ≤ BuildKit', 1],
          }[phase];
          // The issue bounds the no-op at 0.10 s on this machine (BuildKit's warm daemon) as well.
          const within = phase !== 'noop' || kv <= 0.1;
          // Where the user's commands alone, natively, take longer than BuildKit's build ÷ 1.1, no
          // builder that runs them can meet the cold target: the cell says so.
          const floor = phase === 'cold' ? floors.get(w) : undefined;
          const beyond =
            floor !== undefined && pv > 0 && floor / 1000 > pv / min
              ? `; out of reach: its RUN commands alone take ${(floor / 1000).toFixed(2)} s natively > ${(pv / min).toFixed(2)} s`
              : both && kRun > pv / min
                ? `; kiln's RUN processes alone took ${kRun.toFixed(2)} s > ${(pv / min).toFixed(2)} s (BuildKit's ${pRun.toFixed(2)} s)`
                : '';
          goals.push([
            phase === 'noop' ? 'no-op ≤ BuildKit, ≤ 0.10 s' : goal,
            w,
            ratio === undefined
              ? 'n/a'
              : `${ratio.toFixed(2)}× (kiln ${k?.[phase]} s, BuildKit ${p[phase]} s${beyond})`,
            ratio !== undefined && ratio >= min && within,
          ]);
        }
      }
      const ks = bytes(k?.size);
      const ps = bytes(p.size);
      table.push([
        `${w} image size`,
        ks ? `${(ks / 1e6).toFixed(0)} MB, ${k.layers} layers` : 'n/a',
        `${p.builder} ${ps ? `${(ps / 1e6).toFixed(0)} MB` : p.size}, ${p.layers} layers`,
        ks && ps ? ps / ks : undefined,
      ]);
    }
  }
}

/**
 * kiln's phases per workload and kind of build (cold: --no-cache; then no-op and incremental
 * alternate, as run-peers.sh runs them): the median CPU time and wall time, and the median of each
 * phase's sum, largest first.
 */
function printProfiles(jsonl) {
  const runs = new Map();
  for (const line of jsonl.trim().split('\n')) {
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      continue;
    }
    if (r.argv[0] !== 'build') continue;
    const w = path.basename(r.argv[r.argv.length - 1]);
    const list = runs.get(w) ?? [];
    list.push(r);
    runs.set(w, list);
  }
  const median = (v) => {
    const s = [...v].sort((a, b) => a - b);
    return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : 0;
  };
  console.log('\n== kiln per phase (KILN_PROFILE; medians; ms)');
  for (const [w, list] of runs) {
    const kinds = { cold: [], noop: [], incr: [] };
    let warm = 0;
    for (const r of list) {
      if (r.argv.includes('--no-cache')) kinds.cold.push(r);
      else (warm++ % 2 === 0 ? kinds.noop : kinds.incr).push(r);
    }
    for (const [kind, rs] of Object.entries(kinds)) {
      if (!rs.length) continue;
      const names = [...new Set(rs.flatMap((r) => Object.keys(r.byName)))];
      const phases = names
        .map((n) => [n, median(rs.map((r) => r.byName[n]?.ms ?? 0)), median(rs.map((r) => r.byName[n]?.count ?? 0))])
        .sort((a, b) => b[1] - a[1]);
      console.log(
        `   ${w} ${kind} (${rs.length} runs): wall ${median(rs.map((r) => r.totalMs)).toFixed(0)}, CPU ${median(rs.map((r) => r.cpuMs)).toFixed(0)}, peak RSS ${median(rs.map((r) => r.maxRssMB)).toFixed(0)} MB, load ${median(rs.map((r) => r.loadavg[0] ?? 0)).toFixed(1)}`,
      );
      for (const [n, ms, count] of phases.slice(0, 12))
        console.log(`      ${ms.toFixed(1).padStart(9)}  ${n}${count > 1 ? ` (×${count})` : ''}`);
    }
  }
}

// ---- the table
console.log(`\n== kiln against the references (ratio = reference / kiln: above 1, kiln is faster or smaller)`);
console.log(
  `   machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, node ${process.version}; load average now ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
if (table.length === 0) console.log('   (no comparable results)');
else {
  const rows = [
    ['measure', 'kiln', 'reference', 'ratio'],
    ...table.map(([a, b, c, r]) => [a, b, c, r === undefined ? '' : `${r.toFixed(2)}×`]),
  ];
  const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(`   ${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padEnd(w[2])}  ${r[3].padStart(w[3])}`);
    if (i === 0) console.log(`   ${w.map((n) => '-'.repeat(n)).join('  ')}`);
  }
}
printGoals();
process.exit(failed ? 1 : 0);

/**
 * The issue's targets at a glance: ✔ met, ✘ missed. A met target is not claimed from a loaded
 * run: when the 1-minute load average went above the number of cores, it shows "load" instead.
 */
function printGoals() {
  loads.push(os.loadavg()[0]);
  const sorted = [...loads].sort((a, b) => a - b);
  const max = sorted[sorted.length - 1];
  const median = sorted[(sorted.length - 1) >> 1];
  const high = max > cores;
  console.log(`\n== the issue's targets (ratio = reference / kiln)`);
  console.log(
    `   load average (1 min) during the run: median ${median.toFixed(1)}, max ${max.toFixed(1)} on ${cores} cores` +
      (high ? ': too high to claim a target (met ones show "load"; run again on a quiet machine)' : ': quiet'),
  );
  if (buildkitProbedQemu)
    console.log(
      '   BuildKit probed the QEMU emulators on every build: a target met against it shows "qemu", not ✔ (run with --binfmt-off)',
    );
  if (goals.length === 0) return console.log('   (no target measured in this run)');
  const mark = (g, ok) => {
    if (!ok) return '✘';
    if (high) return 'load';
    return buildkitProbedQemu && g.includes('BuildKit') ? 'qemu' : '✔';
  };
  const rows = [['target', 'measure', 'value', ''], ...goals.map(([g, m, v, ok]) => [g, m, v, mark(g, ok)])];
  const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(`   ${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2].padStart(w[2])}  ${r[3]}`);
    if (i === 0) console.log(`   ${w.map((n) => '-'.repeat(n)).join('  ')}  ----`);
  }
}

/** binfmt_misc's state: on, and how many QEMU emulators it has registered and enabled. */
function binfmtQemu() {
  const dir = '/proc/sys/fs/binfmt_misc';
  try {
    if (readFileSync(path.join(dir, 'status'), 'utf8').trim() !== 'enabled') return { enabled: false, entries: 0 };
    const entries = readdirSync(dir).filter(
      (f) => f.startsWith('qemu-') && readFileSync(path.join(dir, f), 'utf8').startsWith('enabled'),
    ).length;
    return { enabled: entries > 0, entries };
  } catch {
    return { enabled: false, entries: 0 };
  }
}

/** Turn binfmt_misc off (host-wide) until the returned function runs; also restored if the bench is killed. */
function disableBinfmt() {
  const status = '/proc/sys/fs/binfmt_misc/status';
  const restore = () => {
    try {
      writeFileSync(status, '1');
    } catch {
      /* already restored, or not ours to restore */
    }
  };
  writeFileSync(status, '0');
  console.log('   binfmt_misc turned off for the peer run (--binfmt-off); it is turned on again after');
  process.once('exit', restore);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.once(sig, () => {
      restore();
      process.exit(130);
    });
  return restore;
}

/** Run a command with its output shown and kept. */
function runTee(cmd, args, env = process.env) {
  return new Promise((resolve) => {
    let text = '';
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (b) => {
      text += b;
      process.stdout.write(b);
    });
    p.on('close', (code) => resolve({ code: code ?? 1, out: text }));
  });
}
