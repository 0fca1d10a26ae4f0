// `kiln plan` end to end: the built CLI as a user runs it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { fixturesDir, workloadsDir } from '../../helpers/paths.js';

const seed000 = path.join(fixturesDir, 'seeds', '000-obfuscated.Dockerfile');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-plan-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface PlanJSON {
  schemaVersion: number;
  file: string;
  target: number;
  stages: {
    index: number;
    name?: string;
    needed: boolean;
    base: unknown;
    dependsOn: number[];
    instructions: { expanded: string; instruction: { kind: string } }[];
  }[];
  order: number[];
  waves: number[][];
  globalArgs: { name: string; value?: string }[];
  buildArgs: Record<string, string>;
  unusedBuildArgs: string[];
  warnings: { message: string }[];
  platform: { target: string; build: string };
}

test('kiln plan --format json: seed 000 with SRC_FORMAT=clear skips the obfuscation stage', async () => {
  const r = await runKiln(['plan', '-f', seed000, '--build-arg', 'SRC_FORMAT=clear', '--format', 'json', fixturesDir]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as PlanJSON;
  assert.equal(plan.schemaVersion, 1);
  const needed = Object.fromEntries(plan.stages.map((s) => [s.name, s.needed]));
  assert.deepEqual(needed, { base: true, 'clear-code': true, 'obfuscated-code': false, 'copy-src': true, final: true });
  assert.deepEqual(plan.globalArgs, [{ name: 'SRC_FORMAT', value: 'clear' }]);
  assert.deepEqual(plan.buildArgs, { SRC_FORMAT: 'clear' });
  assert.deepEqual(plan.order, [0, 1, 3, 4]);
  assert.deepEqual(plan.waves, [[0], [1], [3], [4]]);
  assert.equal(plan.target, 4);
  assert.deepEqual(plan.stages[3]!.base, { kind: 'stage', index: 1 });
  assert.equal(plan.platform.target, plan.platform.build, "the default target platform is this machine's");
  assert.match(plan.platform.build, /^linux\/[a-z0-9]+/);
  // Every field the schema documents is there.
  for (const k of [
    'schemaVersion',
    'file',
    'target',
    'stages',
    'order',
    'waves',
    'globalArgs',
    'buildArgs',
    'unusedBuildArgs',
    'warnings',
    'platform',
  ])
    assert.ok(k in plan, k);
  for (const k of ['index', 'position', 'base', 'dependsOn', 'images', 'needed', 'instructions'])
    assert.ok(k in plan.stages[0]!, k);
});

test('the bench workload py-obfuscate with SRC_FORMAT=clear keeps clear-code and skips obfuscated-code', async () => {
  const wl = path.join(workloadsDir, 'py-obfuscate');
  const r = await runKiln(['plan', '--build-arg', 'SRC_FORMAT=clear', '--format', 'json', wl]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as PlanJSON;
  const needed = Object.fromEntries(plan.stages.map((s) => [s.name, s.needed]));
  assert.equal(needed['clear-code'], true);
  assert.equal(needed['obfuscated-code'], false);
});

test('kiln plan text output: build order, skipped stages, expanded instructions, warnings', async () => {
  const r = await runKiln(['plan', '-f', seed000, fixturesDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stage clear-code \(#1\).*\[skipped\]/);
  assert.match(r.stdout, /build order: base \(#0\) -> obfuscated-code \(#2\) -> copy-src \(#3\) -> final \(#4\)/);
  const df = path.join(tmp, 'Dockerfile.text');
  writeFileSync(
    df,
    'ARG V=1.2\nFROM alpine:$V AS a\nFROM busybox AS b\nFROM scratch\nARG V\nCOPY --from=a /x /x-$V\nCOPY --from=b /y /y\n',
  );
  const t = await runKiln(['plan', '-f', df, '--build-arg', 'NOPE=1', tmp]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /build order: a \(#0\) \+ b \(#1\) -> #2/, 'independent stages in one wave');
  assert.match(t.stdout, /COPY --from=a \/x \/x-1\.2/);
  assert.match(t.stdout, /warning: one or more build args were not consumed: NOPE/);
});

test('stdin, the context directory, --target and --platform', async () => {
  const r = await runKiln(['plan', '-f', '-', '--target', 'B', '--platform', 'linux/arm64', '--format', 'json'], {
    input: 'FROM x AS a\nFROM y AS b\nARG TARGETARCH\nWORKDIR /$TARGETARCH\nFROM z\n',
  });
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as PlanJSON;
  assert.equal(plan.file, '-');
  assert.equal(plan.target, 1);
  assert.deepEqual(
    plan.stages.map((s) => s.needed),
    [false, true, false],
  );
  assert.equal(plan.stages[1]!.instructions[1]!.expanded, 'WORKDIR /arm64');
  const dir = path.join(tmp, 'ctx');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'Dockerfile'), 'FROM debian:bookworm\nCMD ["sh"]\n');
  const r2 = await runKiln(['plan', dir]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /FROM image debian:bookworm/);
});

test('errors: one line with file:line:column and the offending line, exit 1; usage errors exit 2; no stack trace', async () => {
  const bad = await runKiln(['plan', '-f', '-'], { input: 'FROM a\nCOPY --form=x a b\n' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: -:2:6: unknown flag: --form/);
  assert.match(bad.stderr, /COPY --form=x a b/, 'the offending line is shown');
  assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/);
  const plan = await runKiln(['plan', '-f', '-'], { input: 'FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y\n' });
  assert.equal(plan.code, 1);
  assert.match(plan.stderr, /^error: -:2:1: --from=y: stage "y" is defined later/);
  const target = await runKiln(['plan', '-f', '-', '--target', 'nope'], { input: 'FROM a AS x\n' });
  assert.equal(target.code, 1);
  assert.match(target.stderr, /target stage "nope" could not be found/);
  const empty = await runKiln(['plan', '-f', '-'], { input: '' });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the Dockerfile is empty/);
  const usage = await runKiln(['plan', '--format', 'yaml', '-f', '-'], { input: 'FROM a' });
  assert.equal(usage.code, 2);
  const missing = await runKiln(['plan', '/nonexistent/ctx']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  const platform = await runKiln(['plan', '--platform', 'amd64', '-f', '-'], { input: 'FROM a' });
  assert.equal(platform.code, 2);
  assert.match(platform.stderr, /invalid platform "amd64"/);
  const unknownOpt = await runKiln(['plan', '--bogus']);
  assert.equal(unknownOpt.code, 2);
  const debug = await runKiln(['--debug', 'plan', '-f', '-'], { input: 'FORM a\n' });
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /unknown instruction: FORM/);
  assert.match(debug.stderr, /at .*parser\.(js|ts):\d+/, '--debug shows the stack (mapped back from the bundle)');
});

test('json mode keeps stdout pure JSON and sends warnings to stderr', async () => {
  const r = await runKiln(['plan', '-f', '-', '--build-arg', 'NOPE=1', '--format', 'json'], {
    input: 'FROM a\nMAINTAINER me\n',
  });
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as PlanJSON;
  assert.deepEqual(plan.unusedBuildArgs, ['NOPE']);
  assert.match(r.stderr, /warning: -:2: MAINTAINER instruction is deprecated/);
  assert.match(r.stderr, /warning: one or more build args were not consumed: NOPE/);
});
