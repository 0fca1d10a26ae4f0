#!/usr/bin/env node
// `npm run demo`: what multi-stage builds save, shown with kiln on the examples in examples/.
//
//   node scripts/demo.mjs [--root DIR] [--bases DIR] [--no-cache] [--only NAME[,NAME…]] [--jobs N] [--report FILE]
//
//  1. makes the base images from Debian packages (scripts/make-base.sh: python-full,
//     python-slim, node-full, node-slim), once: the tarballs are cached in --bases (default
//     $KILN_BASES, else the tests' cache $KILN_TEST_BASES or /var/cache/kiln-test-bases, so tests,
//     demo and benchmark make each base once), and imported into the demo's own store (--root, default $KILN_DEMO_ROOT or
//     /var/tmp/kiln-demo/store — never your default kiln store);
//  2. builds every example with its multi-stage Dockerfile and its single-stage twin
//     (Dockerfile.single), passing the local bases as build args;
//  3. runs each image and checks what it prints;
//  4. prints one table: stages, size against the single-stage twin, layers, packages (kiln sbom) and
//     the packages the build added beyond the final stage's base image (seed 002: the multi-stage
//     image adds no Debian package); for python-obfuscated, how many of the app's .py sources are
//     in the image's layers;
//  5. writes the HTML report of one image (kiln report);
//  6. rebuilds that image with --explain (why each step ran, or which cache record it came from),
//     and gates its single-stage twin against it as if the twin were the next release
//     (kiln diff --ci --baseline: size growth, new packages… exit 1).
// Up to --jobs (default 2) base images, builds and measurements run at once. Needs root (mmdebstrap,
// runc). Build logs go to DIR/../logs.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  createWriteStream,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist', 'bin', 'kiln.js');
const makeBase = path.join(repo, 'scripts', 'make-base.sh');
const started = Date.now();

// ---- options
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) die(`${name} needs a value`);
  argv.splice(i, 2);
  return v;
};
const flag = (name) => {
  const i = argv.indexOf(name);
  if (i >= 0) argv.splice(i, 1);
  return i >= 0;
};
function die(msg) {
  process.stderr.write(`demo: ${msg}\n`);
  process.exit(2);
}
if (flag('--help') || flag('-h')) {
  console.log(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(1)
      .filter((l) => l.startsWith('//'))
      .map((l) => l.slice(3))
      .join('\n'),
  );
  process.exit(0);
}
const storeDir = path.resolve(opt('--root', process.env.KILN_DEMO_ROOT ?? '/var/tmp/kiln-demo/store'));
const basesDir = path.resolve(
  opt('--bases', process.env.KILN_BASES ?? process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases'),
);
const noCache = flag('--no-cache');
const jobs = Math.max(1, Number(opt('--jobs', '2')) || 2);
const only = (opt('--only', '') || '').split(',').filter(Boolean);
const workDir = path.dirname(storeDir);
const reportFile = path.resolve(opt('--report', path.join(workDir, 'demo-report.html')));
if (argv.length) die(`unknown argument ${argv[0]} (see --help)`);
if (!existsSync(cli)) die(`${cli} is missing: run npm run build (npm run demo does)`);
if (process.getuid?.() !== 0)
  die('the demo makes base images with mmdebstrap and runs builds with runc: run it as root');
const logDir = path.join(workDir, 'logs');
mkdirSync(logDir, { recursive: true });
const env = { ...process.env, KILN_ROOT: storeDir, KILN_NO_PROGRESS: '1' };
delete env.SOURCE_DATE_EPOCH;

// ---- helpers
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
function kilnSync(args, { allowFail = false } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', maxBuffer: 512 << 20 });
  if (r.status !== 0 && !allowFail)
    throw new Error(`kiln ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr.trim()}`);
  return r;
}
/** kiln ARGS with output to LOG; resolves to the exit code. */
function kilnLogged(args, log) {
  return new Promise((resolve) => {
    const out = createWriteStream(log);
    out.write(`$ kiln ${args.join(' ')}\n`);
    const p = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.pipe(out, { end: false });
    p.stderr.pipe(out, { end: false });
    p.on('close', (code) => out.end(() => resolve(code ?? 1)));
  });
}
/** kiln ARGS, output captured; resolves to { status, stdout, stderr }. */
function kilnAsync(args, input) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    p.stdout.on('data', (b) => out.push(b));
    p.stderr.on('data', (b) => err.push(b));
    p.on('close', (code) =>
      resolve({ status: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    p.stdin.end(input ?? '');
  });
}
async function kilnOk(args, input) {
  const r = await kilnAsync(args, input);
  if (r.status !== 0) throw new Error(`kiln ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr.trim()}`);
  return r;
}
/** fn over items, n at a time, taken in list order. */
async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}
const tail = (file, n = 8) =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .slice(-n)
    .map((l) => `      ${l}`)
    .join('\n');
const phases = [];
function step(title, short) {
  const now = Date.now();
  if (phases.length) phases.at(-1).ms = now - phases.at(-1).t0;
  phases.push({ title: short, t0: now });
  console.log(`\n== ${title}`);
}

// ---- 1. base images
const L = 'localhost';
const bases = [
  { name: 'python-full', ref: `${L}/python-full:bookworm` },
  { name: 'python-slim', ref: `${L}/python-slim:bookworm` },
  { name: 'node-full', ref: `${L}/node-full:bookworm` },
  { name: 'node-slim', ref: `${L}/node-slim:bookworm` },
];
// The stand-in for gcr.io/distroless/nodejs: Debian's node on a minimal root, node as entrypoint.
const runtime = {
  ref: `${L}/nodejs-runtime:bookworm`,
  dockerfile: `FROM ${L}/node-slim:bookworm\nENTRYPOINT ["/usr/bin/node"]\n`,
};
/** The build args that select the local bases instead of the public images. */
const baseArgs = [
  ['PYTHON_BUILDER', `${L}/python-full:bookworm`],
  ['PYTHON_BASE', `${L}/python-slim:bookworm`],
  ['NODE_BUILDER', `${L}/node-full:bookworm`],
  ['NODE_RUNTIME', `${L}/nodejs-runtime:bookworm`],
];

function baseTar(name) {
  for (const dir of [basesDir, process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases']) {
    const t = path.join(dir, `${name}.tar`);
    if (existsSync(t) && statSync(t).size > 0) return t;
  }
  return undefined;
}

step(`base images (tarballs in ${basesDir}, store ${storeDir})`, 'bases');
{
  const t0 = Date.now();
  const missing = bases.map((b) => b.name).filter((n) => !baseTar(n));
  if (missing.length) {
    console.log(`   making ${missing.join(', ')} from Debian packages (mmdebstrap, once; cached in ${basesDir})…`);
    mkdirSync(basesDir, { recursive: true });
    // --jobs makers at a time, each given every jobs-th name (mostly downloading and unpacking).
    const groups = Array.from({ length: Math.min(jobs, missing.length) }, (_, i) =>
      missing.filter((_, k) => k % jobs === i),
    );
    const codes = await Promise.all(
      groups.map(
        (g) =>
          new Promise((resolve) => {
            spawn('bash', [makeBase, basesDir, ...g], { stdio: ['ignore', 'inherit', 'inherit'] }).on('close', resolve);
          }),
      ),
    );
    if (codes.some((c) => c !== 0)) die(`scripts/make-base.sh failed (exit ${codes.join(', ')})`);
    console.log(`   made in ${secs(Date.now() - t0)}`);
  }
  await pool(bases, jobs, async (b) => {
    if ((await kilnAsync(['inspect', b.ref])).status === 0) return;
    const t1 = Date.now();
    await kilnOk(['import', baseTar(b.name), b.ref]);
    console.log(`   imported ${b.ref} (${secs(Date.now() - t1)})`);
  });
  if ((await kilnAsync(['inspect', runtime.ref])).status !== 0) {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'kiln-demo-ctx-'));
    try {
      await kilnOk(['build', '-q', '-f', '-', '-t', runtime.ref, empty], runtime.dockerfile);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    console.log(`   built ${runtime.ref} (node-slim with ENTRYPOINT ["/usr/bin/node"], as distroless)`);
  }
  console.log(`   ready in ${secs(Date.now() - t0)}`);
}

// ---- 2./3. builds and runs
/**
 * Each image the demo builds: example directory, Dockerfile, extra args, tag; how to run it and what
 * its output must contain. `sources` counts the app's .py files in the layers (seed 000's point).
 */
const images = [
  {
    ex: 'python-obfuscated',
    kind: 'single',
    file: 'Dockerfile.single',
    run: [],
    expect: /licensed .*running from compiled/,
    sources: /^usr\/src\/app\/app\/.*\.py$/,
    slow: 1,
  },
  {
    ex: 'python-obfuscated',
    kind: 'multi',
    variant: 'clear',
    file: 'Dockerfile',
    args: ['--build-arg', 'SRC_FORMAT=clear'],
    run: [],
    expect: /licensed .*running from source/,
    sources: /^usr\/src\/app\/app\/.*\.py$/,
  },
  {
    ex: 'python-obfuscated',
    kind: 'multi',
    file: 'Dockerfile',
    run: [],
    expect: /licensed .*running from compiled/,
    sources: /^usr\/src\/app\/app\/.*\.py$/,
  },
  {
    ex: 'python-venv',
    kind: 'single',
    file: 'Dockerfile.single',
    run: ['./bin/run.sh', '--check'],
    expect: /sum of 1\.\.1000 = 500500/,
    slow: 2,
  },
  {
    ex: 'python-venv',
    kind: 'multi',
    file: 'Dockerfile',
    run: ['./bin/run.sh', '--check'],
    expect: /sum of 1\.\.1000 = 500500/,
    slow: 1,
  },
  {
    ex: 'python-wheels',
    kind: 'single',
    file: 'Dockerfile.single',
    run: ['1', '2', '3'],
    expect: /sum: 6 /,
    report: false,
    slow: 3,
  },
  { ex: 'python-wheels', kind: 'multi', file: 'Dockerfile', run: ['1', '2', '3'], expect: /sum: 6 /, report: true },
  { ex: 'python-usrlocal-user', kind: 'single', file: 'Dockerfile.single', run: [], expect: /user microblog \(1000\)/ },
  { ex: 'python-usrlocal-user', kind: 'multi', file: 'Dockerfile', run: [], expect: /user microblog \(1000\)/ },
  {
    ex: 'node-distroless',
    kind: 'single',
    file: 'Dockerfile.single',
    run: ['node', 'index.js', '--once'],
    expect: /hello from uid 65532/,
  },
  {
    ex: 'node-distroless',
    kind: 'multi',
    file: 'Dockerfile',
    run: ['index.js', '--once'],
    expect: /hello from uid 65532/,
  },
].filter((i) => only.length === 0 || only.includes(i.ex));
if (images.length === 0) die(`--only ${only.join(',')}: no such example`);
for (const im of images) {
  im.tag = `demo/${im.ex}:${im.variant ?? im.kind}`;
  im.ctx = path.join(repo, 'examples', im.ex);
  // Only the build args this Dockerfile declares (kiln, like docker, warns about the others).
  const declared = new Set(
    [...readFileSync(path.join(im.ctx, im.file), 'utf8').matchAll(/^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)/gim)].map(
      (m) => m[1],
    ),
  );
  im.args = [
    ...baseArgs.filter(([k]) => declared.has(k)).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
    ...(im.args ?? []),
  ];
}

step(`building ${images.length} images${noCache ? ' (--no-cache)' : ''}`, 'builds');
// The slow ones first (apt-get in the single-stage twins, three stages in python-venv), so that
// the pool ends together.
const slowFirst = [...images].sort((a, b) => (b.slow ?? 0) - (a.slow ?? 0));
await pool(slowFirst, jobs, async (im) => {
  const log = path.join(logDir, `${im.ex}-${im.variant ?? im.kind}.log`);
  const t0 = Date.now();
  const code = await kilnLogged(
    ['build', ...(noCache ? ['--no-cache'] : []), '-f', path.join(im.ctx, im.file), ...im.args, '-t', im.tag, im.ctx],
    log,
  );
  im.buildSecs = (Date.now() - t0) / 1000;
  im.built = code === 0;
  console.log(
    `   ${im.built ? 'built ' : 'FAILED'} ${im.tag.padEnd(38)} ${secs(Date.now() - t0).padStart(8)}   (log: ${log})`,
  );
  if (!im.built) console.log(tail(log));
});

step('running each image', 'runs');
for (const im of images.filter((i) => i.built)) {
  const r = kilnSync(['run', im.tag, ...im.run], { allowFail: true });
  const out = `${r.stdout}${r.stderr}`.trim();
  im.ran = r.status === 0 && im.expect.test(out);
  const first = out.split('\n').find((l) => im.expect.test(l)) ?? out.split('\n')[0] ?? '';
  console.log(`   ${im.ran ? 'ok    ' : 'FAILED'} kiln run ${[im.tag, ...im.run].join(' ')}`);
  console.log(`          ${first.length > 110 ? `${first.slice(0, 107)}…` : first}`);
  if (!im.ran)
    console.log(
      out
        .split('\n')
        .slice(-6)
        .map((l) => `          ${l}`)
        .join('\n'),
    );
}

// ---- 4. figures
step('measuring (kiln inspect, kiln plan, kiln sbom)', 'measuring');
const sbomCache = new Map();
/** The packages of an image (kiln sbom), once per image. */
function packages(ref) {
  if (!sbomCache.has(ref)) {
    sbomCache.set(
      ref,
      kilnOk(['sbom', ref, '--format', 'json']).then((r) =>
        JSON.parse(r.stdout).packages.map((p) => ({ type: p.type, key: `${p.type}/${p.name}@${p.version}` })),
      ),
    );
  }
  return sbomCache.get(ref);
}
/** The final stage's base image, following FROM <stage> chains; and how many stages the build ran. */
async function planFacts(im) {
  const plan = JSON.parse(
    (await kilnOk(['plan', '--format', 'json', '-f', path.join(im.ctx, im.file), ...im.args, im.ctx])).stdout,
  );
  let s = plan.stages.find((st) => st.index === plan.target);
  while (s.base.kind === 'stage') s = plan.stages.find((st) => st.index === s.base.index);
  return { stages: plan.stages.filter((st) => st.needed).length, base: s.base.ref };
}
/**
 * Entries matching re in the image's layers — what `docker save` would hand anyone — read from the
 * store's blobs (an OCI layout). The base image's own layers are skipped: they were made from
 * Debian packages and cannot hold the app.
 */
async function inLayers(ins, baseRef, re) {
  const baseLayers = new Set(
    JSON.parse((await kilnOk(['inspect', baseRef])).stdout)[0].Manifest.Layers.map((l) => l.digest),
  );
  let n = 0;
  for (const l of ins.Manifest.Layers) {
    if (baseLayers.has(l.digest)) continue;
    const blob = path.join(storeDir, 'blobs', ...l.digest.split(':'));
    const list = spawnSync('tar', ['-tf', blob], { encoding: 'utf8', maxBuffer: 512 << 20 });
    if (list.status !== 0) throw new Error(`tar -tf ${blob}: ${list.stderr}`);
    // whiteouts (.wh.NAME) record deletions: not a source
    n += list.stdout
      .split('\n')
      .map((e) => e.replace(/^\.\//, ''))
      .filter((e) => re.test(e) && !path.posix.basename(e).startsWith('.wh.')).length;
  }
  return n;
}
async function measure(im) {
  const ins = JSON.parse((await kilnOk(['inspect', im.tag])).stdout)[0];
  im.size = ins.Size;
  im.layers = ins.RootFS.Layers.length;
  Object.assign(im, await planFacts(im));
  const pk = await packages(im.tag);
  const baseKeys = new Set((await packages(im.base)).map((p) => p.key));
  im.packages = pk.length;
  const added = pk.filter((p) => !baseKeys.has(p.key));
  im.addedDeb = added.filter((p) => p.type === 'deb').length;
  im.addedOther = added.length - im.addedDeb;
  im.addedOtherTypes = [...new Set(added.filter((p) => p.type !== 'deb').map((p) => p.type))].join('+') || 'other';
  if (im.sources) im.sourceFiles = await inLayers(ins, im.base, im.sources);
}
await pool(
  images.filter((i) => i.built),
  jobs,
  async (im) => {
    try {
      await measure(im);
    } catch (e) {
      im.measureError = String(e.message ?? e);
      console.log(`   could not measure ${im.tag}: ${im.measureError}`);
    }
  },
);

// ---- the table
step('single-stage twin against multi-stage, per example', 'table');
const rows = [
  [
    'image',
    'stages',
    'size',
    'vs single',
    'layers',
    'packages',
    'added beyond base',
    'app .py in layers',
    'build',
    'runs',
  ],
];
for (const im of images) {
  if (!im.built || im.measureError) {
    rows.push([
      im.tag,
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      im.built ? `${im.buildSecs.toFixed(0)} s` : 'FAILED',
      im.ran ? 'ok' : 'FAILED',
    ]);
    continue;
  }
  const single = images.find((i) => i.ex === im.ex && i.kind === 'single' && i.size !== undefined);
  const vs = im.kind === 'multi' && single ? `${(((im.size - single.size) / single.size) * 100).toFixed(0)}%` : '';
  rows.push([
    im.tag,
    String(im.stages),
    mb(im.size),
    vs,
    String(im.layers),
    String(im.packages),
    `+${im.addedDeb} deb, +${im.addedOther} ${im.addedOther ? im.addedOtherTypes : 'other'}`,
    im.sources ? String(im.sourceFiles) : '',
    `${im.buildSecs.toFixed(0)} s`,
    im.ran ? 'ok' : 'FAILED',
  ]);
}
const hasSources = images.some((i) => i.sources);
const cols = rows[0].map((_, c) => c).filter((c) => c !== 7 || hasSources);
const width = cols.map((c) => Math.max(...rows.map((r) => r[c].length)));
const right = new Set([1, 2, 3, 4, 5, 7, 8]);
for (const [n, r] of rows.entries()) {
  console.log(`   ${cols.map((c, k) => (right.has(c) ? r[c].padStart(width[k]) : r[c].padEnd(width[k]))).join('  ')}`);
  if (n === 0) console.log(`   ${width.map((w) => '-'.repeat(w)).join('  ')}`);
}
console.log(`
   size: uncompressed, as docker images shows it. stages: stages the build ran (a skipped stage,
   such as python-obfuscated's clear-code when SRC_FORMAT=obfuscated, is not counted). packages:
   kiln sbom (Debian packages, Python dist-info, node_modules). added beyond base: packages not in
   the final stage's base image (${L}/python-slim, ${L}/nodejs-runtime, or the full image for a
   single-stage build). app .py in layers: python-obfuscated's sources in any layer of the image.`);

// ---- 4b. where files came from (issue 21): kiln trace, analyze --copies, lint's BroadCopyFromStage
const traced = [
  { ex: 'python-usrlocal-user', find: 'find /usr/local/lib -path "*-packages/*/__init__.py" | sort | head -1' },
  { ex: 'node-distroless', find: 'find /app/node_modules -mindepth 2 -maxdepth 2 -name "*.js" | sort | head -1' },
  { ex: 'python-venv' },
]
  .map((t) => ({ ...t, im: images.find((i) => i.ex === t.ex && i.kind === 'multi' && i.built) }))
  .filter((t) => t.im);
if (traced.length) {
  step('where files came from: kiln trace, kiln analyze --copies, kiln lint', 'provenance');
  for (const { im, find } of traced) {
    if (find) {
      const f = kilnSync(['run', '--entrypoint', '', im.tag, 'sh', '-c', find], { allowFail: true }).stdout.trim();
      if (f) {
        console.log(`   kiln trace ${im.tag} ${f}`);
        const t = kilnSync(['trace', im.tag, f], { allowFail: true });
        for (const line of t.stdout.trim().split('\n').slice(1)) console.log(`     ${line}`);
      }
    }
    const c = kilnSync(['analyze', '--copies', im.tag], { allowFail: true });
    console.log(`   kiln analyze --copies ${im.tag}`);
    for (const line of c.stdout
      .trim()
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('Total'))) {
      const short = line.replace(`${repo}/`, '');
      console.log(`     ${short.length > 120 ? `${short.slice(0, 117)}…` : short}`);
    }
    const l = kilnSync(['lint', '-f', path.join(im.ctx, im.file), im.ctx], { allowFail: true });
    for (const line of `${l.stdout}`.split('\n').filter((x) => x.includes('BroadCopyFromStage')))
      console.log(
        `   kiln lint: ${line
          .replace(`${repo}/`, '')
          .replace(/: "[^"]*" copies all/, ' BroadCopyFromStage: copies all')
          .slice(0, 150)}…`,
      );
  }
}

// ---- 5. the report
const reported = images.find((i) => i.report && i.built) ?? images.find((i) => i.kind === 'multi' && i.built);
if (reported) {
  step('HTML report', 'report');
  const r = kilnSync(
    ['report', reported.tag, '-f', path.join(reported.ctx, reported.file), ...reported.args, '-o', reportFile],
    { allowFail: true },
  );
  console.log(
    r.status === 0
      ? `   kiln report ${reported.tag} -f ${path.relative(repo, path.join(reported.ctx, reported.file))} -o ${reportFile}`
      : `   kiln report failed: ${r.stderr.trim()}`,
  );
}

// ---- 6. --explain and the CI gate (docs/cache.md, docs/ci-gate.md)
const twin = reported && images.find((i) => i.ex === reported.ex && i.kind === 'single' && i.built);
if (reported) {
  step('why each step ran (kiln build --explain) and the CI gate (kiln diff --ci)', 'explain+gate');
  const r = kilnSync(
    [
      'build',
      '--explain',
      '-q',
      '-f',
      path.join(reported.ctx, reported.file),
      ...reported.args,
      '-t',
      reported.tag,
      reported.ctx,
    ],
    { allowFail: true },
  );
  console.log(`   kiln build --explain ${reported.tag} (a rebuild: every step names its record)`);
  console.log(
    r.stderr
      .trim()
      .split('\n')
      .slice(0, 8)
      .map((l) => `     ${l.length > 150 ? `${l.slice(0, 149)}…` : l}`)
      .join('\n'),
  );
  if (twin) {
    const g = kilnSync(['diff', '--ci', '--baseline', reported.tag, twin.tag], { allowFail: true });
    console.log(`\n   kiln diff --ci --baseline ${reported.tag} ${twin.tag}   → exit ${g.status}`);
    console.log(
      g.stdout
        .trim()
        .split('\n')
        .filter((l) => /^(PASS|FAIL|SKIP|Result)/.test(l))
        .map((l) => `     ${l}`)
        .join('\n'),
    );
  }
}

const failed = images.filter((i) => !i.built || !i.ran || i.measureError);
phases.at(-1).ms = Date.now() - phases.at(-1).t0;
console.log(`\n   time: ${phases.map((p) => `${p.title} ${secs(p.ms)}`).join(', ')}`);
console.log(
  `\n== demo ${failed.length ? `finished with ${failed.length} failure(s)` : 'done'} in ${secs(Date.now() - started)} (store: ${storeDir}; remove it to start over)`,
);
writeFileSync(
  path.join(workDir, 'demo-results.json'),
  JSON.stringify(
    images.map(({ expect, sources, ...rest }) => rest),
    null,
    2,
  ),
);
process.exit(failed.length ? 1 : 0);
