import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildChecks,
  buildChecksKey,
  cachedBuildChecks,
  type BuildChecksInput,
} from '../../../src/analyze/lint/build-checks.js';
import { Store } from '../../../src/store/store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-build-checks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Two findings: a lowercase `from` (ConsistentInstructionCasing) and FROM ... as (FromAsCasing).
const text = 'FROM alpine AS base\nfrom base as final\nRUN true\n';
const input = (over: Partial<BuildChecksInput> = {}): BuildChecksInput => ({
  text,
  file: 'Dockerfile',
  target: undefined,
  buildArgs: new Map([
    ['A', '1'],
    ['B', '2'],
  ]),
  ignorePatterns: ['*.log'],
  ignored: undefined,
  baseImages: new Map([['alpine', { env: ['PATH'], os: 'linux', architecture: 'amd64' }]]),
  platforms: ['linux/amd64'],
  ...over,
});

test('buildChecksKey: every input the checks read is in the key; map order is not', () => {
  const key = buildChecksKey(input(), 'code-1');
  assert.match(key, /^sha256:[0-9a-f]{64}$/);
  assert.equal(
    buildChecksKey(
      input({
        buildArgs: new Map([
          ['B', '2'],
          ['A', '1'],
        ]),
      }),
      'code-1',
    ),
    key,
    'the same args in another order',
  );
  const others = [
    buildChecksKey(input(), 'code-2'),
    buildChecksKey(input({ text: text + 'RUN false\n' }), 'code-1'),
    buildChecksKey(input({ file: 'other/Dockerfile' }), 'code-1'),
    buildChecksKey(input({ target: 'base' }), 'code-1'),
    buildChecksKey(input({ buildArgs: new Map([['A', '1']]) }), 'code-1'),
    buildChecksKey(
      input({
        buildArgs: new Map([
          ['A', '1'],
          ['B', '3'],
        ]),
      }),
      'code-1',
    ),
    buildChecksKey(input({ ignorePatterns: ['*.txt'] }), 'code-1'),
    buildChecksKey(input({ ignorePatterns: [] }), 'code-1'),
    buildChecksKey(input({ ignorePatterns: undefined }), 'code-1'),
    buildChecksKey(input({ baseImages: new Map() }), 'code-1'),
    buildChecksKey(input({ baseImages: new Map([['alpine', { env: ['PATH', 'HOME'] }]]) }), 'code-1'),
    buildChecksKey(input({ platforms: ['linux/amd64', 'linux/arm64'] }), 'code-1'),
  ];
  assert.equal(new Set([key, ...others]).size, others.length + 1, 'each change makes another key');
});

test('cachedBuildChecks: the first build lints and keeps the result, the next reads it; a bad record is redone', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store') });
  const want = buildChecks(text, 'Dockerfile', undefined, input().buildArgs, undefined, input().baseImages);
  assert.ok(want.findings.length >= 1, 'the Dockerfile has findings');
  assert.deepEqual(await cachedBuildChecks(store, input()), want);
  const dir = path.join(store.root, 'checks');
  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  // What the next build gets is what is kept: change the record and see it come back.
  const kept = path.join(dir, files[0]!);
  const edited = { ...want, findings: [{ ...want.findings[0]!, message: 'read from the record' }] };
  writeFileSync(kept, JSON.stringify(edited));
  assert.equal((await cachedBuildChecks(store, input())).findings[0]?.message, 'read from the record');
  // Another Dockerfile: another record.
  await cachedBuildChecks(store, input({ text: 'FROM alpine\n' }));
  assert.equal(readdirSync(dir).length, 2);
  // A record that is not a result (torn, edited, another version's shape) is linted again and replaced.
  writeFileSync(kept, '{"findings": 3}');
  assert.deepEqual(await cachedBuildChecks(store, input()), want);
  writeFileSync(kept, 'not json');
  assert.deepEqual(await cachedBuildChecks(store, input()), want);
  assert.deepEqual(JSON.parse((await import('node:fs')).readFileSync(kept, 'utf8')), JSON.parse(JSON.stringify(want)));
  // kiln prune (store gc) drops them: the next build lints again.
  await store.gc({ minAgeMs: 0 });
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(await cachedBuildChecks(store, input()), want);
});
