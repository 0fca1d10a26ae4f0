import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { fixturesDir } from '../../helpers/paths.js';

const seed000 = path.join(fixturesDir, 'seeds', '000-obfuscated.Dockerfile');

test('kiln plan --format json: seed 000 with SRC_FORMAT=clear skips the obfuscation stage', async () => {
  const r = await runKiln(['plan', '-f', seed000, '--build-arg', 'SRC_FORMAT=clear', '--format', 'json', fixturesDir]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as { schemaVersion: number; stages: { name?: string; needed: boolean }[]; order: number[] };
  assert.equal(plan.schemaVersion, 1);
  const needed = Object.fromEntries(plan.stages.map((s) => [s.name, s.needed]));
  assert.deepEqual(needed, { base: true, 'clear-code': true, 'obfuscated-code': false, 'copy-src': true, final: true });
});

test('kiln plan text output marks skipped stages', async () => {
  const r = await runKiln(['plan', '-f', seed000, fixturesDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stage clear-code \(#1\).*\[skipped\]/);
  assert.match(r.stdout, /build order: base \(#0\) -> obfuscated-code \(#2\) -> copy-src \(#3\) -> final \(#4\)/);
});

test('kiln plan reads the Dockerfile from stdin and from the context dir', async () => {
  const r = await runKiln(['plan', '-f', '-', '--target', 'b'], { input: 'FROM x AS a\nFROM y AS b\nRUN true\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /target b \(#1\)/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-plan-'));
  try {
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM debian:bookworm\nCMD ["sh"]\n');
    const r2 = await runKiln(['plan', dir]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, /FROM image debian:bookworm/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: one line with file:line:column, exit 1; usage errors exit 2; no stack trace', async () => {
  const bad = await runKiln(['plan', '-f', '-'], { input: 'FROM a\nCOPY --form=x a b\n' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: -:2:6: unknown flag: --form/);
  assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/);
  const usage = await runKiln(['plan', '--format', 'yaml', '-f', '-'], { input: 'FROM a' });
  assert.equal(usage.code, 2);
  const missing = await runKiln(['plan', '/nonexistent/ctx']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  const unknownOpt = await runKiln(['plan', '--bogus']);
  assert.equal(unknownOpt.code, 2);
});

test('an unused --build-arg gives a warning', async () => {
  const r = await runKiln(['plan', '-f', '-', '--build-arg', 'NOPE=1'], { input: 'FROM a\n' });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /warning: one or more build args were not consumed: NOPE/);
});
