/**
 * `kiln build --explain` on real builds: change one thing at a time (a context file, a build arg,
 * the image the base tag names) and each rebuild names exactly that cause — on the step that reads
 * it, with the steps after it "because step N changed" — while a hit names its record.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { Workspace } from './util.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-explain-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

interface Explained {
  stage: number;
  step: number;
  cached: boolean;
  reason: string;
  text: string;
  changes: string[];
  record?: string;
  causeStep?: number;
}

async function build(ctx: string, extra: string[] = []): Promise<{ steps: Explained[]; table: string }> {
  const r = await ws.kiln(['build', '--progress', 'json', '--explain', '-t', 'explain:latest', ...extra, ctx]);
  assert.equal(r.code, 0, r.stderr);
  const steps: Explained[] = [];
  const cachedEvents = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as Explained & { type: string };
    if (e.type === 'explain') steps.push(e);
    if (e.type === 'step-cached') cachedEvents.add(`${e.stage}/${e.step}`);
  }
  // The explanation agrees with what the build did.
  for (const s of steps) assert.equal(s.cached, cachedEvents.has(`${s.stage}/${s.step}`), JSON.stringify(s));
  return { steps, table: r.stderr };
}

const reasons = (b: { steps: Explained[] }) => b.steps.map((s) => s.reason);

describe('build --explain', { skip }, () => {
  let ctx = '';
  before(async () => {
    // Two different images from the same base: mybase:1 names one, then the other.
    const tar = await ensureBaseTar('debian-slim');
    for (const [ref, change] of [
      ['mybase:1', 'CMD ["bash"]'],
      ['otherbase:1', 'LABEL flavour=other'],
    ]) {
      const r = await ws.kiln(['import', tar, ref!, '--change', change!]);
      assert.equal(r.code, 0, r.stderr);
    }
    ctx = ws.context('app', {
      Dockerfile: [
        'FROM mybase:1',
        'ARG GREETING=hello',
        'RUN echo "$GREETING" > /greeting',
        'COPY app.txt conf/ /app/',
        'RUN cat /app/app.txt > /copy',
      ].join('\n'),
      'app.txt': 'one\n',
      'conf/a.conf': 'a=1\n',
    });
  });

  test('first build, then every step a hit naming its local record', async () => {
    const first = await build(ctx);
    assert.deepEqual(reasons(first), ['first-build', 'first-build', 'first-build', 'first-build']);
    const again = await build(ctx);
    assert.deepEqual(reasons(again), ['hit', 'hit', 'hit', 'hit']);
    for (const s of again.steps) assert.equal(s.record, 'local');
    assert.match(again.table, /STEP +INSTRUCTION +RESULT +WHY/);
    assert.match(again.table, /COPY app\.txt conf\/ \/app\/ +cached +cache hit: local record/);
  });

  test('a changed context file: the COPY names the file and what changed, the RUN after it names the COPY', async () => {
    writeFileSync(path.join(ctx, 'app.txt'), 'one two\n');
    const b = await build(ctx);
    assert.deepEqual(reasons(b), ['hit', 'hit', 'context-files', 'earlier-step']);
    const copy = b.steps[2]!;
    assert.deepEqual(copy.changes, ['app.txt: size 4 → 8 B, content']);
    assert.match(copy.text, /context files changed: app\.txt$/);
    assert.equal(b.steps[3]!.causeStep, 3);
    assert.match(b.steps[3]!.text, /because step 3 changed/);
    assert.match(
      b.table,
      /COPY app\.txt conf\/ \/app\/ +ran +context files changed: app\.txt\n +app\.txt: size 4 → 8 B, content/,
    );
    // A file added to a copied directory is named as added.
    writeFileSync(path.join(ctx, 'conf', 'b.conf'), 'b=2\n');
    const added = await build(ctx);
    assert.deepEqual(added.steps[2]!.changes, ['conf/b.conf: added (4 B)']);
  });

  test('a changed build arg: the ARG names it with both values; nothing else is blamed', async () => {
    const b = await build(ctx, ['--build-arg', 'GREETING=hi']);
    assert.equal(b.steps[0]!.reason, 'build-arg');
    assert.deepEqual(b.steps[0]!.changes, ['GREETING: "hello" → "hi"']);
    for (const s of b.steps.slice(1)) {
      assert.ok(['build-arg', 'earlier-step'].includes(s.reason), JSON.stringify(s));
      if (s.reason === 'earlier-step') assert.equal(s.causeStep, 1);
      else assert.deepEqual(s.changes, ['build arg GREETING: "hello" → "hi"']);
    }
  });

  test('the base tag names another image: the first step names the base and both digests', async () => {
    const before = await build(ctx);
    assert.deepEqual(reasons(before), ['hit', 'hit', 'hit', 'hit'], 'back to the default arg: the old records');
    const t = await ws.kiln(['tag', 'otherbase:1', 'mybase:1']);
    assert.equal(t.code, 0, t.stderr);
    const b = await build(ctx);
    assert.equal(b.steps[0]!.reason, 'base-image');
    assert.match(b.steps[0]!.text, /^base image changed: mybase:1@sha256:[0-9a-f]{64} → mybase:1@sha256:[0-9a-f]{64}$/);
    for (const s of b.steps.slice(1)) {
      assert.equal(s.reason, 'earlier-step', JSON.stringify(s));
      assert.equal(s.causeStep, 1);
    }
  });

  test('--no-cache says so; kiln prune --cache removes the records, and the next build is a first build', async () => {
    const nc = await build(ctx, ['--no-cache']);
    assert.deepEqual(reasons(nc), ['no-cache', 'no-cache', 'no-cache', 'no-cache']);
    const explainDir = path.join(ws.root, 'cache', 'explain');
    assert.ok(existsSync(explainDir) && readdirSync(explainDir).length >= 4);
    const p = await ws.kiln(['prune', '--cache']);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(existsSync(explainDir) ? readdirSync(explainDir) : [], []);
    const b = await build(ctx);
    assert.deepEqual(reasons(b), ['first-build', 'first-build', 'first-build', 'first-build']);
  });
});
