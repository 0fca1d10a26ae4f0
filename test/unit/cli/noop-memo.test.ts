import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  buildInvocation,
  fileSha256,
  identityOf,
  memoHolds,
  memoKey,
  memoStoreRoot,
  MEMO_VERSION,
  type Invocation,
  type NoopMemo,
  withoutNoCache,
} from '../../../src/cli/noop-memo.js';

const base: Invocation = {
  identity: 'v20-x64-876149-1.5-42',
  argv: ['--root', '/s', 'build', '-t', 'x', '.'],
  cwd: '/work/ctx',
  env: { HOME: '/root', PATH: '/usr/bin', SOURCE_DATE_EPOCH: '1' },
  uid: 0,
  ttys: [false, false],
};

test('the memo key changes with every input of the invocation', () => {
  const k = memoKey(base);
  assert.match(k ?? '', /^[0-9a-f]{64}$/);
  const variants: Partial<Invocation>[] = [
    { identity: 'v20-x64-876150-1.5-42' },
    { cwd: '/work/other' },
    { argv: ['--root', '/s', 'build', '-t', 'y', '.'] },
    { argv: ['--root', '/s', 'build', '-t', 'x', '--build-arg', 'A=1', '.'] },
    { argv: ['--root', '/t', 'build', '-t', 'x', '.'] },
    { env: { ...base.env, SOURCE_DATE_EPOCH: '2' } },
    { env: { ...base.env, KILN_SNAPSHOTTER: 'native' } },
    { env: { ...base.env, A: '1' } }, // `--build-arg A` reads it
    { env: { ...base.env, HOME: '/home/u' } },
    { uid: 1000 },
    { ttys: [false, true] },
  ];
  for (const v of variants) assert.notEqual(memoKey({ ...base, ...v }), k, JSON.stringify(v));
  // Only how kiln reports: the same key.
  assert.equal(memoKey({ ...base, env: { ...base.env, KILN_PROFILE: '1', KILN_PROFILE_STEPS: '0', SHLVL: '3' } }), k);
  assert.equal(memoKey({ ...base, argv: ['--profile', '--root', '/s', 'build', '-t', 'x', '.'] }), k);
});

test('only `kiln build` with the global options the memo reads has a key', () => {
  assert.deepEqual(buildInvocation(['--root=/s', '--profile', 'build', '.']), {
    root: '/s',
    profile: true,
    rest: ['--root=/s', 'build', '.'],
  });
  for (const argv of [['images'], ['--debug', 'build', '.'], ['--help'], [], ['--root']])
    assert.equal(memoKey({ ...base, argv }), undefined, argv.join(' '));
  assert.equal(memoStoreRoot(['--root', 'rel', 'build', '.'], '/w'), '/w/rel');
});

function fixture(): { dir: string; memo: NoopMemo; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-memo-'));
  mkdirSync(path.join(dir, 'ctx/sub'), { recursive: true });
  writeFileSync(path.join(dir, 'ctx/a.txt'), 'hello');
  // Whole seconds: a time utimes can put back exactly (to the nanosecond).
  utimesSync(path.join(dir, 'ctx/a.txt'), 1_700_000_000, 1_700_000_000);
  writeFileSync(path.join(dir, 'ctx/sub/b.txt'), 'b');
  writeFileSync(path.join(dir, 'ctx/Dockerfile'), 'FROM x\n');
  writeFileSync(path.join(dir, 'blob'), '{}');
  writeFileSync(path.join(dir, 'record.json'), '{}');
  const watched = ['ctx', 'ctx/a.txt', 'ctx/sub', 'ctx/sub/b.txt', 'ctx/Dockerfile'].map((p) => path.join(dir, p));
  const memo: NoopMemo = {
    v: MEMO_VERSION,
    key: 'k',
    paths: watched.map(identityOf),
    digests: [{ path: path.join(dir, 'ctx/Dockerfile'), sha256: fileSha256(path.join(dir, 'ctx/Dockerfile')) }],
    present: [path.join(dir, 'blob')],
    records: [{ path: path.join(dir, 'record.json'), ino: String(statSync(path.join(dir, 'record.json')).ino) }],
    absent: [path.join(dir, 'ctx/.dockerignore')],
    output: [{ fd: 2, text: 'x\n' }],
  };
  return { dir, memo, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('a memo holds while nothing it names changed, and not after any one change', async () => {
  const changes: [string, (dir: string) => void][] = [
    [
      'a file edited keeping its size and mtime (ctime moves)',
      (d) => {
        const f = path.join(d, 'ctx/a.txt');
        const st = statSync(f, { bigint: true });
        writeFileSync(f, 'HELLO');
        utimesSync(f, 1_700_000_000, 1_700_000_000);
        const now = statSync(f, { bigint: true });
        assert.deepEqual([now.size, now.mtimeNs, now.ino], [st.size, st.mtimeNs, st.ino]);
      },
    ],
    ['a file added', (d) => writeFileSync(path.join(d, 'ctx/sub/c.txt'), '')],
    ['a file removed', (d) => unlinkSync(path.join(d, 'ctx/sub/b.txt'))],
    [
      'a file replaced (another inode)',
      (d) => {
        writeFileSync(path.join(d, 'ctx/a.tmp'), 'hello');
        rmSync(path.join(d, 'ctx/a.txt'));
        writeFileSync(path.join(d, 'ctx/a.txt'), 'hello');
      },
    ],
    ['the Dockerfile edited', (d) => writeFileSync(path.join(d, 'ctx/Dockerfile'), 'FROM y\n')],
    ['a .dockerignore appears', (d) => writeFileSync(path.join(d, 'ctx/.dockerignore'), 'a.txt\n')],
    ['a blob removed', (d) => unlinkSync(path.join(d, 'blob'))],
    ['a cache record removed', (d) => unlinkSync(path.join(d, 'record.json'))],
    [
      'a cache record replaced (by rename, as a --no-cache build or a damaged record does)',
      (d) => {
        writeFileSync(path.join(d, 'record.tmp'), '{}');
        renameSync(path.join(d, 'record.tmp'), path.join(d, 'record.json'));
      },
    ],
  ];
  for (const [what, change] of changes) {
    const { dir, memo, cleanup } = fixture();
    try {
      assert.equal(memoHolds(memo), true, `before: ${what}`);
      // Past the file system's clock tick: a change is seen by its times too.
      await new Promise((r) => setTimeout(r, 15));
      change(dir);
      assert.equal(memoHolds(memo), false, what);
    } finally {
      cleanup();
    }
  }
  const { memo, cleanup } = fixture();
  try {
    assert.equal(memoHolds({ ...memo, v: MEMO_VERSION + 1 }), false, 'another version of the memo');
    assert.equal(
      memoHolds({ ...memo, digests: [{ path: memo.digests[0]!.path, sha256: '0'.repeat(64) }] }),
      false,
      'another content digest',
    );
  } finally {
    cleanup();
  }
});

test('the run after a --no-cache build: the same argv without the flag, one spelling only', () => {
  assert.deepEqual(withoutNoCache(['build', '-q', '--no-cache', '-t', 'x', '.']), ['build', '-q', '-t', 'x', '.']);
  assert.deepEqual(withoutNoCache(['--root', 'r', 'build', '.', '--no-cache']), ['--root', 'r', 'build', '.']);
  assert.equal(withoutNoCache(['build', '-q', '.']), undefined, 'no --no-cache');
  assert.equal(withoutNoCache(['build', '--no-cache', '--no-cache', '.']), undefined, 'twice');
  assert.equal(withoutNoCache(['build', '--no-cache=true', '.']), undefined, 'another spelling');
});
