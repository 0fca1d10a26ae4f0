/** cache/explain.ts: the comparison of a step's key parts with those of its last build. Pure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffFiles, explainMiss, type ExplainRecord, type StepParts } from '../../../src/cache/explain.js';
import type { Digest } from '../../../src/util/index.js';

const K1 = `sha256:${'1'.repeat(64)}` as Digest;
const K2 = `sha256:${'2'.repeat(64)}` as Digest;
const parts = (over: Partial<StepParts> = {}): StepParts => ({
  parent: `sha256:${'a'.repeat(64)}` as Digest,
  base: 'debian:12@sha256:aa',
  instruction: '{"kind":"RUN"}',
  text: 'RUN make',
  env: [['PATH', '/bin']],
  args: [],
  platform: 'linux/amd64',
  sourceDateEpoch: null,
  network: 'host',
  inputs: [],
  ...over,
});
const rec = (p: StepParts): ExplainRecord => ({ v: 1, identity: 'Dockerfile#0/1', key: K1, time: '', parts: p });
const ctx = { stages: new Map(), first: false };

test('first build, --no-cache, a pruned record', () => {
  assert.equal(explainMiss(undefined, K2, parts(), ctx).reason, 'first-build');
  assert.equal(explainMiss(rec(parts()), K2, parts(), { ...ctx, noCache: 'all' }).reason, 'no-cache');
  assert.equal(explainMiss(rec(parts()), K1, parts(), ctx).reason, 'record-gone');
});

test('an ENV value and a build arg are told apart and named with both values', () => {
  const e = explainMiss(rec(parts()), K2, parts({ env: [['PATH', '/usr/bin']] }), ctx);
  assert.deepEqual([e.reason, e.changes], ['env', ['ENV PATH: "/bin" → "/usr/bin"']]);
  const a = explainMiss(
    rec(parts({ env: [['V', '1']], args: ['V'] })),
    K2,
    parts({ env: [['V', '2']], args: ['V'] }),
    ctx,
  );
  assert.deepEqual([a.reason, a.changes], ['build-arg', ['build arg V: "1" → "2"']]);
});

test('a changed parent: the base on the first step, else the first step of the stage that changed', () => {
  const moved = parts({ parent: `sha256:${'b'.repeat(64)}` as Digest, base: 'debian:12@sha256:bb' });
  const b = explainMiss(rec(parts()), K2, moved, { ...ctx, first: true });
  assert.equal(b.reason, 'base-image');
  assert.match(b.text, /debian:12@sha256:aa → debian:12@sha256:bb/);
  const later = parts({ parent: `sha256:${'b'.repeat(64)}` as Digest });
  const e = explainMiss(rec(parts()), K2, later, { ...ctx, firstChangedStep: { step: 2, text: 'COPY . /' } });
  assert.deepEqual([e.reason, e.causeStep], ['earlier-step', 2]);
});

test('context files: added, removed, size/mode/content changes', () => {
  const d = diffFiles(
    [
      { path: 'a', type: 'f', mode: '644', size: 1, content: 'x' },
      { path: 'b', type: 'f', mode: '644', size: 1, content: 'x' },
      { path: 'gone', type: 'f', mode: '644', size: 1, content: 'x' },
    ],
    [
      { path: 'a', type: 'f', mode: '755', size: 1, content: 'x' },
      { path: 'b', type: 'f', mode: '644', size: 2, content: 'y' },
      { path: 'new', type: 'f', mode: '644', size: 3, content: 'z' },
    ],
  );
  assert.deepEqual(d?.lines, ['a: mode 644 → 755', 'b: size 1 → 2 B, content', 'new: added (3 B)', 'gone: removed']);
  assert.equal(diffFiles(undefined, []), undefined, 'a listing too long to keep: no detail');
});
