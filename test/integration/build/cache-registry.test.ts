/**
 * The build cache shared through a registry (--cache-to / --cache-from type=registry), against
 * the real distribution registry: a build on an empty store with --cache-from the cache another
 * store pushed reuses every step (no RUN runs: the RUNs write `date +%s%N`, so the same image id
 * proves they did not run) and gives the same image.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { runKiln } from '../../helpers/kiln.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { parseJsonProgress, type Built } from './cache-helpers.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable(), registryUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-cache-reg-'));
after(() => rmSync(work, { recursive: true, force: true }));

let stores = 0;
const newStore = () => path.join(work, `store-${++stores}`);

async function build(
  root: string,
  ctx: string,
  extra: string[],
): Promise<Built & { manifest: string; records: (string | undefined)[] }> {
  const r = await runKiln(['build', '--progress', 'json', '-t', 'app:1', ...extra, ctx], { root });
  assert.equal(r.code, 0, `build failed: ${r.stderr}\n${r.stdout.split('\n').slice(-5).join('\n')}`);
  const done = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; manifestDigest?: string })
    .find((e) => e.type === 'done');
  // Where each hit's record came from (the `explain` events, build --explain).
  const records = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; cached?: boolean; record?: string })
    .filter((e) => e.type === 'explain' && e.cached)
    .map((e) => e.record);
  return { ...parseJsonProgress(r.stdout, r.stderr, 'app:1'), manifest: done!.manifestDigest!, records };
}
const ran = (b: Built) => b.steps.filter((s) => !s.cached).map((s) => s.text);

describe('build cache in a registry', { skip }, () => {
  let reg: Registry;
  let ctx: string;
  before(async () => {
    reg = await startRegistry();
    // The base lives in the registry: a fresh machine pulls it like any other.
    const a = path.join(work, 'seed');
    let r = await runKiln(
      ['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm', '--change', 'CMD ["bash"]'],
      { root: a },
    );
    assert.equal(r.code, 0, r.stderr);
    r = await runKiln(['push', 'debian-slim:bookworm', `${reg.host}/debian-slim:bookworm`], { root: a });
    assert.equal(r.code, 0, r.stderr);
    ctx = path.join(work, 'ctx');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(path.join(ctx, 'src'), { recursive: true });
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      [
        `FROM ${reg.host}/debian-slim:bookworm AS builder`,
        'RUN mkdir /out && echo "built $(date +%s%N)" > /out/stamp',
        'COPY src/ /src/',
        'RUN cat /src/*.txt > /out/all.txt && date +%s%N > /out/when',
        `FROM ${reg.host}/debian-slim:bookworm`,
        'ARG GREETING=hello',
        'RUN echo "$GREETING $(date +%s%N)" > /greeting',
        'COPY --from=builder /out /app',
        'WORKDIR /app',
        'CMD ["cat", "/app/all.txt"]',
      ].join('\n'),
    );
    writeFileSync(path.join(ctx, 'src', 'a.txt'), 'a\n');
  });
  after(async () => reg?.stop());

  test('mode=max: a build on an empty store with --cache-from runs no step and gives the same image', async () => {
    const cacheRef = `${reg.host}/cache/app:max`;
    const a = newStore();
    const first = await build(a, ctx, ['--cache-to', `type=registry,ref=${cacheRef},mode=max`]);
    assert.equal(first.steps.length, 8);
    assert.deepEqual(
      first.steps.filter((s) => s.cached),
      [],
    );

    const b = newStore();
    const second = await build(b, ctx, ['--cache-from', `type=registry,ref=${cacheRef}`]);
    assert.equal(second.steps.length, 8);
    assert.deepEqual(ran(second), [], 'every step CACHED on the empty store');
    assert.equal(second.id, first.id, 'same image id: no RUN ran (each writes the time)');
    assert.deepEqual(
      second.records,
      second.steps.map(() => cacheRef),
      '--explain names the registry cache each hit came from',
    );
    // A holds its layers as plain tars, B the cache's gzip blobs: local manifests differ by that
    // alone. Pushed, both give one manifest (the same gzip bytes).
    const pushedA = await runKiln(['push', 'app:1', `${reg.host}/pushed/app:a`], { root: a });
    const pushedB = await runKiln(['push', 'app:1', `${reg.host}/pushed/app:b`], { root: b });
    assert.equal(pushedA.code, 0, pushedA.stderr);
    assert.equal(pushedB.code, 0, pushedB.stderr);
    assert.equal(pushedB.stdout.trim(), pushedA.stdout.trim(), 'same manifest on the registry');
    // The image is complete on B: it runs.
    const out = await runKiln(['run', 'app:1'], { root: b });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'a\n');
    // What was imported is in B's own cache now: no --cache-from needed.
    const third = await build(b, ctx, []);
    assert.deepEqual(ran(third), []);
    assert.deepEqual(
      third.records,
      third.steps.map(() => 'local'),
    );
    assert.equal(third.id, first.id);
    // A changed source on yet another machine: the steps before its COPY come from the registry.
    const { writeFileSync } = await import('node:fs');
    const ctx2 = path.join(work, 'ctx2');
    (await import('node:fs')).cpSync(ctx, ctx2, { recursive: true });
    writeFileSync(path.join(ctx2, 'src', 'a.txt'), 'changed\n');
    const c = await build(newStore(), ctx2, ['--cache-from', cacheRef]);
    // (Stages run side by side: compared as a set, not in event order.)
    assert.deepEqual(
      ran(c)
        .map((t) => t.split(' ').slice(0, 2).join(' '))
        .sort(),
      ['COPY src/', 'RUN cat', 'COPY --from=builder', 'WORKDIR /app', 'CMD ["cat",'].sort(),
    );
  });

  test('mode=min exports the final stage line only: a stage it copies from runs again, what follows stays cached', async () => {
    const cacheRef = `${reg.host}/cache/app:min`;
    const a = newStore();
    const first = await build(a, ctx, ['--cache-to', `type=registry,ref=${cacheRef}`]);
    const b = newStore();
    const second = await build(b, ctx, ['--cache-from', `type=registry,ref=${cacheRef}`]);
    const builderSteps = second.steps.filter((s) => s.stage === 0);
    assert.ok(
      builderSteps.every((s) => !s.cached),
      'builder: not in a min cache',
    );
    // The builder's RUNs write new times into /out: the COPY --from sees new content and runs.
    assert.deepEqual(
      ran(second)
        .filter((t) => !builderSteps.some((s) => s.text === t))
        .map((t) => t.split(' ')[0]),
      ['COPY', 'WORKDIR', 'CMD'],
    );
    assert.ok(
      second.steps.find((s) => s.text.startsWith('RUN echo "$GREETING'))!.cached,
      "the final stage's RUN before the COPY comes from the registry",
    );
    assert.notEqual(second.id, first.id);
  });

  test('a store whose builder layers are snapshots only (a plain build) exports a whole cache: --cache-to re-runs what has no blob', async () => {
    const cacheRef = `${reg.host}/cache/app:after-plain`;
    const a = newStore();
    await build(a, ctx, []);
    const exported = await build(a, ctx, ['--cache-to', `type=registry,ref=${cacheRef},mode=max`]);
    const builderRuns = exported.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN'));
    assert.ok(
      builderRuns.every((s) => !s.cached),
      'the builder RUNs (snapshot-only layers) ran again, as blobs',
    );
    const c = await build(newStore(), ctx, ['--cache-from', `type=registry,ref=${cacheRef}`]);
    assert.deepEqual(ran(c), [], 'every step from the exported cache');
    assert.equal(c.id, exported.id);
  });

  test('--cache-from a ref that holds no cache: a warning, and the build goes on', async () => {
    const small = path.join(work, 'small');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(small, { recursive: true });
    writeFileSync(path.join(small, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /a.txt\n');
    writeFileSync(path.join(small, 'a.txt'), 'a\n');
    const r = await build(newStore(), small, ['--cache-from', `type=registry,ref=${reg.host}/cache/none:missing`]);
    assert.ok(
      r.warnings.some((w) => /cannot import the build cache from .*none:missing/.test(w)),
      r.warnings.join('\n'),
    );
    assert.deepEqual(
      r.steps.filter((s) => s.cached),
      [],
    );
    // An image is not a cache either.
    const img = await build(newStore(), small, ['--cache-from', `${reg.host}/debian-slim:bookworm`]);
    assert.ok(
      img.warnings.some((w) => /not a kiln cache/.test(w)),
      img.warnings.join('\n'),
    );
  });

  test('bad --cache-to / --cache-from values are usage errors', async () => {
    const root = newStore();
    for (const [flag, value, msg] of [
      ['--cache-to', 'type=local,dest=/tmp/x', /type=local is not supported/],
      ['--cache-to', `type=registry,ref=${reg.host}/c:x,mode=all`, /mode "all"/],
      ['--cache-to', 'type=registry', /needs ref=REF/],
      ['--cache-from', `type=registry,ref=${reg.host}/c:x,bogus=1`, /unknown --cache-from option "bogus"/],
    ] as const) {
      const r = await runKiln(['build', flag, value, ctx], { root });
      assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
  });
});
