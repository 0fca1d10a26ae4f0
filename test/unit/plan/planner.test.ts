import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { createPlan, type PlanOptions } from '../../../src/plan/index.js';
import { KilnError } from '../../../src/util/errors.js';
import { fixturesDir, sharedDir } from '../../helpers/paths.js';

const plan = (t: string, o: PlanOptions = {}) => createPlan(parseDockerfile(t, { file: 'Dockerfile' }), o);
function planError(t: string, re: RegExp, o: PlanOptions = {}, line?: number): KilnError {
  let caught: unknown;
  try {
    plan(t, o);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected KilnError, got ${String(caught)}`);
  assert.match(caught.message, re);
  if (line !== undefined) {
    assert.equal(caught.place.line, line);
    assert.ok(caught.place.source !== undefined, 'the offending line is attached');
  }
  return caught;
}

describe('ARG and ENV scoping', () => {
  test('global ARGs are usable in FROM, not inside a stage until redeclared', () => {
    const p = plan('ARG V=3.11\nARG IMG=python:${V}\nFROM $IMG\nWORKDIR /$V\nARG V\nWORKDIR /$V');
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'python:3.11' });
    // Not redeclared: not the global; it may still come from the base image's ENV, shown as written.
    assert.equal(p.stages[0]!.instructions[0]!.expanded, 'WORKDIR /$V');
    assert.equal(p.stages[0]!.instructions[2]!.expanded, 'WORKDIR /3.11');
  });
  test('--build-arg overrides global and stage defaults', () => {
    const p = plan('ARG V=1\nFROM a:$V\nARG V\nARG W=x\nENV OUT=$V-$W', { buildArgs: { V: '2', W: 'y' } });
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'a:2' });
    assert.equal(p.stages[0]!.instructions[2]!.expanded, 'ENV OUT=2-y');
  });
  test('ENV wins over ARG of the same name', () => {
    const p = plan('FROM a\nARG X=arg\nENV X=env\nARG X=again\nWORKDIR /$X');
    assert.equal(p.stages[0]!.instructions[3]!.expanded, 'WORKDIR /env');
  });
  test('ENV values on one line are expanded before any is set', () => {
    const p = plan('FROM a\nENV A=1\nENV A=2 B=$A');
    assert.equal(p.stages[0]!.instructions[1]!.expanded, 'ENV A=2 B=1');
  });
  test('ENV is inherited by a child stage, ARG is not', () => {
    const p = plan('FROM a AS one\nENV E=e\nARG A=a\nFROM one\nWORKDIR /$E/$A');
    assert.equal(p.stages[1]!.instructions[0]!.expanded, 'WORKDIR /e/$A');
    const scratch = plan('ARG V=1\nFROM scratch AS one\nENV E=e\nFROM one\nWORKDIR /$E/$V');
    assert.equal(scratch.stages[1]!.instructions[0]!.expanded, 'WORKDIR /e/', 'from scratch every ENV is known: unknown names are empty');
  });
  test('predefined platform ARGs in FROM and after declaration', () => {
    const p = plan('FROM --platform=$BUILDPLATFORM img:$TARGETARCH\nARG TARGETOS\nWORKDIR /$TARGETOS', { platform: 'linux/arm64' });
    assert.equal(p.stages[0]!.platform, 'linux/amd64');
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'img:arm64' });
    assert.equal(p.stages[0]!.instructions[1]!.expanded, 'WORKDIR /linux');
  });
  test('unused build args are reported, predefined ones are not', () => {
    const p = plan('ARG USED\nFROM a', { buildArgs: { USED: '1', UNUSED: '2', HTTP_PROXY: 'x', TARGETARCH: 'amd64' } });
    assert.deepEqual(p.unusedBuildArgs, ['UNUSED']);
    assert.ok(p.warnings.some((w) => /UNUSED/.test(w.message)));
  });
});

describe('stage graph', () => {
  test('stages by name (case-insensitive) and index; bases and dependencies', () => {
    const p = plan('FROM a AS Build\nRUN x\nFROM b AS other\nFROM build AS t\nCOPY --from=OTHER /x /x\nCOPY --from=0 /y /y\nCOPY --from=nginx:1 /z /z\nRUN --mount=type=bind,from=other,target=/m true');
    const t = p.stages[2]!;
    assert.deepEqual(t.base, { kind: 'stage', index: 0 });
    assert.deepEqual(t.dependsOn, [0, 1]);
    assert.deepEqual(t.images, ['nginx:1']);
    assert.deepEqual(p.order, [0, 1, 2]);
    assert.deepEqual(p.waves, [[0, 1], [2]]);
  });
  test('--target keeps only what the target needs', () => {
    const p = plan('FROM a AS one\nFROM b AS two\nFROM one AS three\nFROM c AS four', { target: 'THREE' });
    assert.equal(p.target, 2);
    assert.deepEqual(p.stages.map((s) => s.needed), [true, false, true, false]);
    assert.deepEqual(p.order, [0, 2]);
  });
  test('stage-scoped ARG in COPY --from is resolved at plan time (beyond BuildKit)', () => {
    const df = 'FROM a AS clear-code\nFROM a AS obfuscated-code\nFROM a\nARG SRC=obfuscated\nCOPY --from=${SRC}-code /app /app';
    assert.deepEqual(plan(df).stages[2]!.dependsOn, [1]);
    assert.deepEqual(plan(df, { buildArgs: { SRC: 'clear' } }).stages[2]!.dependsOn, [0]);
    assert.deepEqual(plan(df, { buildArgs: { SRC: 'clear' } }).stages.map((s) => s.needed), [true, false, true]);
  });
  test('errors: unknown target, self reference, later stage, cycles, duplicates', () => {
    planError('FROM a AS x', /target stage "nope" could not be found/, { target: 'nope' });
    planError('FROM a AS x\nFROM x AS x', /duplicate stage name/, {}, 2);
    planError('FROM a AS x\nFROM b AS y\nCOPY --from=y /a /a', /own stage/, {}, 3);
    planError('FROM later AS x\nFROM a AS later', /defined later/, {}, 1);
    planError('FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y\nCOPY --from=x /b /b', /circular dependency between stages/);
    planError('FROM a\nCOPY --from=1 /a /b\nFROM b', /later build stage/, {}, 2);
    planError('FROM a\nCOPY --from=0 /a /b', /current build stage/, {}, 2);
  });
  test('errors: empty Dockerfile, no FROM first, empty image name', () => {
    planError('', /empty/);
    planError('# just a comment\n', /empty/);
    planError('RUN x\nFROM a', /before the first FROM/, {}, 1);
    planError('ARG A\n', /no FROM/);
    planError('ARG IMG\nFROM $IMG', /empty image name/, {}, 2);
  });
  test('a forward COPY --from to a later stage is allowed when there is no cycle (as BuildKit)', () => {
    const p = plan('FROM a\nCOPY --from=late /x /x\nFROM b AS late', { target: undefined });
    assert.equal(p.target, 1);
    assert.deepEqual(plan('FROM a AS first\nCOPY --from=late /x /x\nFROM b AS late', { target: 'first' }).order, [1, 0]);
  });
});

describe('the seeds plan', () => {
  const seeds = readdirSync(path.join(fixturesDir, 'seeds')).filter((f) => f.endsWith('.Dockerfile'));
  for (const f of seeds) {
    test(f, () => {
      const text = readFileSync(path.join(fixturesDir, 'seeds', f), 'utf8');
      const p = plan(text);
      assert.ok(p.stages.length >= 1);
      assert.ok(p.stages[p.target]!.needed);
    });
  }
  test('seed 000: SRC_FORMAT=clear keeps clear-code and skips obfuscated-code', () => {
    const text = readFileSync(path.join(fixturesDir, 'seeds', '000-obfuscated.Dockerfile'), 'utf8');
    const byName = (p: ReturnType<typeof plan>, n: string) => p.stages.find((s) => s.name === n)!;
    const clear = plan(text, { buildArgs: { SRC_FORMAT: 'clear' } });
    assert.equal(byName(clear, 'clear-code').needed, true);
    assert.equal(byName(clear, 'obfuscated-code').needed, false);
    const obf = plan(text);
    assert.equal(byName(obf, 'clear-code').needed, false);
    assert.equal(byName(obf, 'obfuscated-code').needed, true);
  });
  test('the bench workloads plan (shared/bench)', { skip: readdirSafe(path.join(sharedDir, 'bench', 'workloads')).length === 0 ? `no ${sharedDir}/bench/workloads` : false }, () => {
    for (const w of readdirSafe(path.join(sharedDir, 'bench', 'workloads'))) {
      const text = readFileSync(path.join(sharedDir, 'bench', 'workloads', w, 'Dockerfile'), 'utf8');
      const p = plan(text, w === 'py-obfuscate' ? { buildArgs: { SRC_FORMAT: 'clear' } } : {});
      if (w === 'py-obfuscate') assert.equal(p.stages.find((s) => s.name === 'obfuscated-code')!.needed, false);
    }
  });
});

function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}
