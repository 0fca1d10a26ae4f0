import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const profileModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/util/profile.js');

/** A process that marks phases as the CLI does; KILN_PROFILE as given. */
function run(env: Record<string, string>): { stderr: string; status: number | null } {
  const script = `
    const p = await import(${JSON.stringify(profileModule)});
    p.startProfile();
    p.mark('first');
    await p.inStep('0/1 RUN', () => p.timed('slow part', () => new Promise((r) => setTimeout(r, 30))));
    await p.timed('outside', async () => undefined);
    p.mark('second');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { stderr: r.stderr, status: r.status };
}

test('KILN_PROFILE=FILE appends one JSON line: phases in time order, steps, sums, CPU and RSS', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-profile-'));
  try {
    const file = path.join(dir, 'p.jsonl');
    assert.equal(run({ KILN_PROFILE: file }).status, 0);
    assert.equal(run({ KILN_PROFILE: file }).status, 0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    const r = JSON.parse(lines[0]!);
    const names = r.phases.map((p: { name: string }) => p.name);
    assert.deepEqual([...names].sort(), ['first', 'node start-up (to first module)', 'outside', 'second', 'slow part']);
    const slow = r.phases.find((p: { name: string }) => p.name === 'slow part');
    assert.equal(slow.step, '0/1 RUN');
    assert.ok(slow.ms >= 25, `slow part took ${slow.ms} ms`);
    assert.equal(r.phases.find((p: { name: string }) => p.name === 'outside').step, undefined);
    // 'second' spans from 'first' to its mark: it encloses the slow part.
    const second = r.phases.find((p: { name: string }) => p.name === 'second');
    assert.ok(second.start <= slow.start && second.ms >= slow.ms);
    for (let i = 1; i < r.phases.length; i++) assert.ok(r.phases[i].start >= r.phases[i - 1].start);
    assert.equal(r.byName['slow part'].count, 1);
    assert.ok(r.cpuMs > 0 && r.maxRssMB > 0 && r.totalMs >= slow.ms);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('KILN_PROFILE=1 prints the phases on stderr; unset, nothing', () => {
  const shown = run({ KILN_PROFILE: '1' });
  assert.match(shown.stderr, /^profile: [\d.]+ ms wall, [\d.]+ ms CPU/);
  assert.match(shown.stderr, /slow part \[0\/1 RUN\]/);
  assert.match(shown.stderr, /sum per phase/);
  const quiet = run({ KILN_PROFILE: '' });
  assert.equal(quiet.stderr, '');
});

test('KILN_PROFILE_STEPS=0: the same phases without their build step (no AsyncLocalStorage at every promise)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-profile-'));
  try {
    const file = path.join(dir, 'p.jsonl');
    assert.equal(run({ KILN_PROFILE: file, KILN_PROFILE_STEPS: '0' }).status, 0);
    const r = JSON.parse(readFileSync(file, 'utf8').trim());
    const slow = r.phases.find((p: { name: string }) => p.name === 'slow part');
    assert.ok(slow.ms >= 25, `slow part took ${slow.ms} ms`);
    assert.equal(slow.step, undefined);
    assert.equal(r.byName['slow part'].count, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
