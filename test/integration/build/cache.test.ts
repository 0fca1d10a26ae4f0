/**
 * The build cache through the CLI: which steps come from the cache (the `step-cached` events of
 * `--progress json`) and, independently of what the build says about itself, what the image holds:
 * RUN steps that write `date +%s%N` give a new layer whenever they really run, so equal layer
 * digests prove a step did not run and different ones that it did.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { Workspace } from './util.js';
import { parseJsonProgress, type Built } from './cache-helpers.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-cache-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

let builds = 0;
async function build(ctx: string, extra: string[] = [], env?: NodeJS.ProcessEnv, w: Workspace = ws): Promise<Built> {
  const tag = `cache-test:${++builds}`;
  const r = await w.kiln(['build', '--progress', 'json', '-t', tag, ...extra, ctx], { env });
  assert.equal(r.code, 0, `build failed: ${r.stderr}\n${r.stdout.split('\n').slice(-5).join('\n')}`);
  return parseJsonProgress(r.stdout, r.stderr, tag);
}

/** Texts of the steps that ran (were not CACHED). */
const ran = (b: Built) => b.steps.filter((s) => !s.cached).map((s) => s.text);
const cached = (b: Built) => b.steps.filter((s) => s.cached).map((s) => s.text);

async function layers(w: Workspace, b: Built): Promise<string[]> {
  return (await w.inspect(b.tag)).RootFS.Layers;
}

/** The stage inputs of the last build's keys of the Dockerfile in `ctx`, by label (what cache-step.ts hashed). */
function stageInputs(ctx: string): Map<string, string> {
  const dir = path.join(ws.root, 'cache', 'explain');
  const out = new Map<string, string>();
  for (const f of readdirSync(dir)) {
    const rec = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as {
      identity: string;
      parts: { inputs: { kind: string; label: string; digest: string }[] };
    };
    if (!rec.identity.startsWith(path.join(ctx, 'Dockerfile'))) continue;
    for (const i of rec.parts.inputs) if (i.kind === 'stage') out.set(i.label, i.digest);
  }
  return out;
}

describe('build cache', { skip }, () => {
  before(() => ws.importDebian());

  test('a second build takes every step from the cache (a new process: the cache is in the store) and gives the same image', async () => {
    const ctx = ws.context('same', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'ARG VERSION=1',
        'RUN mkdir /out && echo "same $VERSION $(date +%s%N)" > /out/stamp',
        'WORKDIR /src',
        'COPY src/ ./',
        'RUN cat *.txt > /out/all.txt',
        'FROM debian-slim:bookworm',
        'ENV APP=/app',
        'COPY --from=builder /out /app',
        'COPY app.txt /app/',
        'LABEL purpose=cache-test',
        'USER nobody',
        'CMD ["cat", "/app/all.txt"]',
      ].join('\n'),
      'src/one.txt': 'one\n',
      'src/two.txt': 'two\n',
      'app.txt': 'app\n',
    });
    const first = await build(ctx);
    assert.equal(first.steps.length, 11);
    assert.deepEqual(cached(first), [], 'nothing to reuse the first time');
    const second = await build(ctx);
    assert.equal(second.steps.length, 11);
    assert.deepEqual(ran(second), [], 'every step CACHED');
    assert.equal(second.id, first.id);
    assert.equal(await ws.sh(second.tag, 'cat /app/all.txt /app/app.txt'), 'one\ntwo\napp\n');
  });

  test("a changed source file re-runs the steps from the COPY that takes it; mtime-only and .dockerignore'd changes keep the cache", async () => {
    const ctx = ws.context('edit', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN echo "edit before $(date +%s%N)" > /before',
        'COPY a.txt /app/',
        'RUN echo "after $(date +%s%N)" > /after',
        'COPY b.txt /app/',
        'COPY . /ctx/',
      ].join('\n'),
      'a.txt': 'a1\n',
      'b.txt': 'b1\n',
      '.dockerignore': '*.log\n',
      'debug.log': 'x\n',
    });
    const [RUN1, COPYA, RUN2, COPYB, COPYALL] = [
      'RUN echo "edit before',
      'COPY a.txt',
      'RUN echo "after',
      'COPY b.txt',
      'COPY . /ctx/',
    ];
    const starts = (b: Built) => ran(b).map((t) => [RUN1, COPYA, RUN2, COPYB, COPYALL].find((p) => t.startsWith(p)));
    const first = await build(ctx);
    const L1 = await layers(ws, first);
    const base = L1.length - 5;

    // Only the mtime changes (a checkout, `touch`): the content is what counts.
    const later = new Date(Date.now() + 3600_000);
    for (const f of ['a.txt', 'b.txt', 'Dockerfile']) utimesSync(path.join(ctx, f), later, later);
    const touched = await build(ctx);
    assert.deepEqual(ran(touched), [], 'touch keeps every step cached');
    assert.equal(touched.id, first.id);

    // Files the .dockerignore leaves out: changed, added, removed — nothing reaches a step.
    writeFileSync(path.join(ctx, 'debug.log'), 'a different log\n');
    writeFileSync(path.join(ctx, 'new.log'), 'new\n');
    const ignored = await build(ctx);
    assert.deepEqual(ran(ignored), [], ".dockerignore'd changes keep every step cached");
    assert.equal(ignored.id, first.id);
    unlinkSync(path.join(ctx, 'new.log'));

    // a.txt's content: its COPY and everything after it run again, the RUN before it does not.
    writeFileSync(path.join(ctx, 'a.txt'), 'a2\n');
    const editA = await build(ctx);
    assert.deepEqual(starts(editA), [COPYA, RUN2, COPYB, COPYALL]);
    const L2 = await layers(ws, editA);
    assert.equal(L2[base], L1[base], 'the RUN before the COPY did not run again (same layer)');
    assert.notEqual(L2[base + 1], L1[base + 1], 'the COPY layer holds the new a.txt');
    assert.notEqual(L2[base + 2], L1[base + 2], 'the RUN after the COPY ran again (new date in its layer)');
    assert.equal(
      await ws.sh(editA.tag, 'cat /app/a.txt /ctx/a.txt; test ! -e /ctx/debug.log && echo no-log'),
      'a2\na2\nno-log\n',
    );

    // b.txt: only the last two COPY steps.
    writeFileSync(path.join(ctx, 'b.txt'), 'b2\n');
    const editB = await build(ctx);
    assert.deepEqual(starts(editB), [COPYB, COPYALL]);
    assert.equal((await layers(ws, editB))[base + 2], L2[base + 2], 'the RUN before COPY b.txt kept its layer');

    // Back to the first contents: the first build's records still answer, whole image reused.
    writeFileSync(path.join(ctx, 'a.txt'), 'a1\n');
    writeFileSync(path.join(ctx, 'b.txt'), 'b1\n');
    const back = await build(ctx);
    assert.deepEqual(ran(back), []);
    assert.equal(back.id, first.id);
  });

  test('a changed --build-arg busts the steps that see it; an unused one changes nothing', async () => {
    const ctx = ws.context('args', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN echo "args first $(date +%s%N)" > /first',
        'ARG USED=default',
        'RUN echo "$USED $(date +%s%N)" > /used',
        'CMD ["cat", "/used"]',
      ].join('\n'),
    });
    const b1 = await build(ctx, ['--build-arg', 'USED=1']);
    const b2 = await build(ctx, ['--build-arg', 'USED=1', '--build-arg', 'UNUSED=zzz']);
    assert.deepEqual(ran(b2), [], 'an undeclared build arg is in no key');
    assert.equal(b2.id, b1.id);
    assert.ok(
      b2.warnings.some((w) => /UNUSED/.test(w)),
      `the unused arg is reported: ${b2.warnings.join('; ')}`,
    );
    const b3 = await build(ctx, ['--build-arg', 'USED=2']);
    // CMD too: it is a step whose parent state changed.
    assert.deepEqual(ran(b3), ['ARG USED=default', 'RUN echo "$USED $(date +%s%N)" > /used', 'CMD ["cat", "/used"]']);
    assert.ok(
      cached(b3).some((t) => t.startsWith('RUN echo "args first')),
      'the RUN before the ARG stays cached',
    );
    assert.equal((await ws.sh(b3.tag, 'cat /used')).split(' ')[0], '2');
    const hist = (await ws.inspect(b3.tag)).History.map((h) => h.created_by);
    assert.ok(hist.includes('ARG USED=2'), `the history shows the value the ARG took: ${hist.join(' | ')}`);
    // The default (no --build-arg) is a value of its own.
    const b4 = await build(ctx);
    assert.deepEqual(ran(b4), ['ARG USED=default', 'RUN echo "$USED $(date +%s%N)" > /used', 'CMD ["cat", "/used"]']);
    const b5 = await build(ctx, ['--build-arg', 'USED=1']);
    assert.equal(b5.id, b1.id, 'USED=1 again: the first records answer');
  });

  test('--no-cache runs every step; --no-cache-filter STAGE runs that stage only, and a COPY --from whose content did not change stays cached', async () => {
    const ctx = ws.context('nocache', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'RUN mkdir /out && echo "nocache constant" > /out/f && date +%s%N > /stamp',
        'FROM debian-slim:bookworm AS other',
        'RUN date +%s%N > /other',
        'FROM debian-slim:bookworm',
        'RUN echo "nocache final $(date +%s%N)" > /final',
        'COPY --from=builder /out/f /f',
        'COPY --from=other /other /other',
        'RUN echo "after copies $(date +%s%N)" > /after',
      ].join('\n'),
    });
    const first = await build(ctx);
    const all = await build(ctx, ['--no-cache']);
    assert.equal(all.steps.length, 6);
    assert.deepEqual(cached(all), [], '--no-cache: every step runs');
    assert.notEqual(all.id, first.id);
    const again = await build(ctx);
    assert.deepEqual(ran(again), [], '--no-cache recorded its results for the next build');
    assert.equal(again.id, all.id);

    // builder runs again; its /out/f is the same, so the COPY --from of it (and what follows) stays cached.
    const L0 = await layers(ws, again);
    const filtered = await build(ctx, ['--no-cache-filter', 'builder']);
    const stageOf = (b: Built, text: string) => b.steps.find((s) => s.text.startsWith(text));
    assert.equal(stageOf(filtered, 'RUN mkdir /out')!.cached, false, 'the filtered stage runs');
    assert.deepEqual(ran(filtered), ['RUN mkdir /out && echo "nocache constant" > /out/f && date +%s%N > /stamp']);
    assert.equal(filtered.id, again.id, 'same content copied: same image');
    assert.deepEqual(await layers(ws, filtered), L0);

    // The final stage (by index) only: its RUNs run, builder and other stay cached.
    const finalOnly = await build(ctx, ['--no-cache-filter', '2']);
    assert.deepEqual(
      ran(finalOnly).map((t) => t.split(' ').slice(0, 2).join(' ')),
      ['RUN echo', 'COPY --from=builder', 'COPY --from=other', 'RUN echo'],
    );
    assert.ok(stageOf(finalOnly, 'RUN date +%s%N > /other')!.cached);

    const bad = await ws.kiln(['build', '--no-cache-filter', 'nosuch', ctx]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /no stage named "nosuch"/);
  });

  test('two builds at once on one store both succeed and leave a complete cache', async () => {
    const df = (n: string) =>
      [
        'FROM debian-slim:bookworm',
        'RUN echo "concurrent shared $(date +%s%N)" > /shared',
        `RUN echo "${n} $(date +%s%N)" > /own`,
        'COPY f.txt /f.txt',
      ].join('\n');
    const a = ws.context('conc-a', { Dockerfile: df('a'), 'f.txt': 'a\n' });
    const b = ws.context('conc-b', { Dockerfile: df('b'), 'f.txt': 'b\n' });
    const [ra, rb, ra2] = await Promise.all([build(a), build(b), build(a)]);
    for (const r of [ra, rb, ra2]) assert.equal(r.steps.length, 3);
    const [sa, sb] = await Promise.all([build(a), build(b)]);
    assert.deepEqual(ran(sa), []);
    assert.deepEqual(ran(sb), []);
    assert.ok([ra.id, ra2.id].includes(sa.id), 'the cache holds one of the concurrent results');
    assert.equal(await ws.sh(sa.tag, 'cat /f.txt'), 'a\n');
    assert.equal(await ws.sh(sb.tag, 'cat /f.txt'), 'b\n');
  });

  test('kiln prune --cache drops the records (then every step runs); --keep-storage keeps the most recently used', async () => {
    const w = new Workspace('kiln-cache-prune-');
    try {
      await w.importDebian();
      // Two images, each with an incompressible 300 kB layer.
      const x = w.context('x', {
        Dockerfile: 'FROM debian-slim:bookworm\nRUN head -c 300000 /dev/urandom > /x.bin\nCMD ["true"]\n',
      });
      const y = w.context('y', {
        Dockerfile: 'FROM debian-slim:bookworm\nRUN head -c 300000 /dev/urandom > /y.bin\nCMD ["true"]\n',
      });
      const x1 = await build(x, [], undefined, w);
      await new Promise((r) => setTimeout(r, 50));
      const y1 = await build(y, [], undefined, w);
      const xLayer = x1.steps[0]!.layer!;
      const yLayer = y1.steps[0]!.layer!;
      const blob = (d: string) => existsSync(path.join(w.root, 'blobs', 'sha256', d.slice('sha256:'.length)));
      assert.ok(blob(xLayer) && blob(yLayer));
      // Untagged, the layers are kept by the cache records alone.
      assert.equal((await w.kiln(['rmi', x1.tag, y1.tag])).code, 0);
      const plain = await w.kiln(['prune', '--all-ages']);
      assert.equal(plain.code, 0, plain.stderr);
      assert.ok(blob(xLayer) && blob(yLayer), 'a plain prune keeps what the cache needs');
      // Only y fits in 400 kB: x's records go, and x's layer with them (gc); y's stay.
      const p = await w.kiln(['prune', '--cache', '--keep-storage', '400kb', '--all-ages']);
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /Deleted 2 build-cache record\(s\)/);
      assert.ok(!blob(xLayer), "x's layer went with its records");
      assert.ok(blob(yLayer), "y's layer stays: its records are the most recently used");
      const y2 = await build(y, [], undefined, w);
      assert.deepEqual(ran(y2), []);
      assert.equal(y2.id, y1.id);
      const x2 = await build(x, [], undefined, w);
      assert.equal(x2.steps.length, 2);
      assert.deepEqual(cached(x2), [], 'x lost its records');
      assert.notEqual(x2.id, x1.id);
      // Everything: the next build runs all steps.
      const all = await w.kiln(['prune', '--cache', '--all-ages']);
      assert.equal(all.code, 0, all.stderr);
      const y3 = await build(y, [], undefined, w);
      assert.deepEqual(cached(y3), []);
      const usage = await w.kiln(['prune', '--keep-storage', '1GB']);
      assert.notEqual(usage.code, 0);
      assert.match(usage.stderr, /--keep-storage goes with --cache/);
    } finally {
      rmSync(w.dir, { recursive: true, force: true });
    }
  });

  test("a COPY --from key taken from the digests a builder's RUN layers recorded as they were tarred is the key of reading its files", async () => {
    // Files of both RUN layers (an earlier layer's, one the later layer changed or chmod'ed), an
    // empty one, one too large to be recorded, a hard link, a symlink, and /etc mixing the base's
    // files with the RUN's.
    const ctx = ws.context('recorded-digests', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'RUN mkdir -p /out/a /out/b && for i in $(seq 1 200); do echo "file $i" > /out/a/f$i; done' +
          ' && : > /out/empty && head -c 300000 /dev/zero | tr "\\0" x > /out/big' +
          ' && ln /out/a/f1 /out/a/link1 && ln -s f2 /out/a/sym2',
        'RUN echo changed > /out/a/f3 && echo new > /out/b/n && chmod 600 /out/a/f4 && mkdir /etc/gen && echo g > /etc/gen/x',
        'FROM debian-slim:bookworm',
        'COPY --from=builder /out /out',
        'COPY --from=builder /out/a/f5 /f5',
        'COPY --from=builder /etc /etc2',
      ].join('\n'),
    });
    // Without SOURCE_DATE_EPOCH the builder's upper dirs become its snapshots: the keys use the
    // digests recorded while tarring. With it, the layers are clamped and unpacked anew: the keys
    // read every file. Contents are the same (timestamps are not in a content key).
    const recorded = await build(ctx, ['--no-cache']);
    const fromRecorded = stageInputs(ctx);
    assert.equal(fromRecorded.size, 3, JSON.stringify([...fromRecorded]));
    const read = await build(ctx, ['--no-cache'], { ...process.env, SOURCE_DATE_EPOCH: '1700000000' });
    assert.deepEqual(stageInputs(ctx), fromRecorded);
    assert.notEqual(read.id, recorded.id);
  });

  test("a COPY --from of a directory only the stage's top layer holds is keyed in its snapshot, as through the view", async () => {
    const dockerfile = (above: string[]) =>
      [
        'FROM debian-slim:bookworm AS builder',
        'RUN mkdir -p /top/d/e && for i in $(seq 1 50); do echo "top $i" > /top/d/f$i; done' +
          ' && ln -s d/f1 /top/link && ln /top/d/f3 /top/d/e/hard3 && chown 7:7 /top/d/f2 && chmod 700 /top/d/e',
        ...above,
        'FROM debian-slim:bookworm',
        'COPY --from=builder /top /top',
      ].join('\n');
    // /top held by the top layer only: walked in its snapshot. With a RUN above it: through the view.
    const inTop = ws.context('top-layer', { Dockerfile: dockerfile([]) });
    const below = ws.context('top-layer-below', { Dockerfile: dockerfile(['RUN mkdir /elsewhere']) });
    const profiled = async (ctx: string) => {
      const r = await ws.kiln(['--profile', 'build', '--no-cache', '-q', ctx]);
      assert.equal(r.code, 0, r.stderr);
      return r.stderr;
    };
    assert.match(await profiled(inTop), /stage paths hashed \(in the top layer's snapshot\)/);
    const direct = stageInputs(inTop).get('/top of stage 0');
    assert.doesNotMatch(await profiled(below), /in the top layer's snapshot/);
    const viewed = stageInputs(below).get('/top of stage 0');
    assert.ok(direct !== undefined && viewed !== undefined);
    assert.equal(direct, viewed);
  });

  test("a COPY --from of a directory only the stage's top layer holds is copied from its snapshot: the layer a view gives", async () => {
    // Links, a hard link, owners, modes, an empty dir, a fifo, a file the RUN wrote and removed,
    // and under /etc (merged with the base's) a copy that needs the view.
    const dockerfile = (above: string[]) =>
      [
        'FROM debian-slim:bookworm AS builder',
        'RUN mkdir -p /top/d/e /top/empty /top/node_modules/m && for i in $(seq 1 20); do echo "top $i" > /top/d/f$i; done' +
          ' && ln -s d/f1 /top/link && ln /top/d/f3 /top/d/e/hard3 && chown 7:8 /top/d/f2 && chmod 700 /top/d/e' +
          ' && mkfifo /top/d/fifo && echo gone > /top/d/gone && rm /top/d/gone' +
          ' && echo \'{"name":"m","version":"1.2.3"}\' > /top/node_modules/m/package.json && echo x > /top/node_modules/m/i.js',
        ...above,
        'FROM debian-slim:bookworm',
        'COPY --from=builder /top /copied',
        'COPY --from=builder /top/d/ /top/node_modules /two/',
      ].join('\n');
    const epoch = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
    const inTop = ws.context('top-layer-copy', { Dockerfile: dockerfile([]) });
    const below = ws.context('top-layer-copy-below', { Dockerfile: dockerfile(['RUN mkdir /elsewhere']) });
    const r = await ws.kiln(['--profile', 'build', '--no-cache', '-q', '-t', 'top-copy:direct', inTop], { env: epoch });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stderr.match(/COPY source read in the top layer's snapshot \[/g) ?? []).length, 2, r.stderr);
    const v = await ws.kiln(['--profile', 'build', '--no-cache', '-q', '-t', 'top-copy:view', below], { env: epoch });
    assert.equal(v.code, 0, v.stderr);
    assert.doesNotMatch(v.stderr, /COPY source read in the top layer's snapshot/);
    const [direct, viewed] = [
      (await ws.inspect('top-copy:direct')).RootFS.Layers,
      (await ws.inspect('top-copy:view')).RootFS.Layers,
    ];
    assert.equal(direct.length, viewed.length);
    assert.deepEqual(direct.slice(-2), viewed.slice(-2), 'the copies wrote the same layers');
  });
});
