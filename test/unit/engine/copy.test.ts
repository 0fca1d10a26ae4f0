/**
 * planCopy's hard links and wildcards, on real directories: what BuildKit's layers hold for the
 * same COPY (checked against Debian's BuildKit, see test/integration/build/realworld.test.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planCopy, type CopyRequest } from '../../../src/engine/copy.js';
import { BuildContext } from '../../../src/context/index.js';
import type { EntrySpec } from '../../../src/layer/write.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-copy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A context: a, b and dir/c one inode; dir/d and dir/e another; f alone. */
function linkedContext(): string {
  const dir = mkdtempSync(path.join(tmp, 'ctx-'));
  mkdirSync(path.join(dir, 'dir'));
  writeFileSync(path.join(dir, 'a'), 'aaa\n');
  linkSync(path.join(dir, 'a'), path.join(dir, 'b'));
  linkSync(path.join(dir, 'a'), path.join(dir, 'dir', 'c'));
  writeFileSync(path.join(dir, 'dir', 'd'), 'ddd\n');
  linkSync(path.join(dir, 'dir', 'd'), path.join(dir, 'dir', 'e'));
  writeFileSync(path.join(dir, 'f'), 'f\n');
  return dir;
}

async function copy(
  ctxDir: string,
  patterns: string[],
  dest: string,
  extra: Partial<CopyRequest> = {},
): Promise<string[]> {
  const ctx = BuildContext.open(ctxDir);
  const destRoot = mkdtempSync(path.join(tmp, 'dest-'));
  const entries = await planCopy({
    sources: patterns.map((pattern) => ({ ctx, pattern })),
    dest,
    workdir: '/',
    destRoot,
    keepOwner: false,
    place: {},
    ...extra,
  });
  return entries.map(show);
}

function show(e: EntrySpec): string {
  return e.type === 'hardlink' ? `${e.path} => ${e.linkname}` : `${e.type} ${e.path}`;
}

test('a copied tree keeps its hard links: the first path (in order) is the file, the others link to it', async () => {
  assert.deepEqual(await copy(linkedContext(), ['.'], '/t/'), [
    'directory t',
    'file t/a',
    't/b => t/a',
    'directory t/dir',
    't/dir/c => t/a',
    'file t/dir/d',
    't/dir/e => t/dir/d',
    'file t/f',
  ]);
});

test('links are kept within each source, not across the sources of one COPY (BuildKit copies each on its own)', async () => {
  const ctx = linkedContext();
  assert.deepEqual(await copy(ctx, ['a', 'b'], '/two/'), ['directory two', 'file two/a', 'file two/b']);
  assert.deepEqual(await copy(ctx, ['a', 'dir'], '/mix/'), [
    'directory mix',
    'file mix/a',
    'file mix/c',
    'file mix/d',
    'mix/e => mix/d',
  ]);
});

test('an excluded first link leaves the next path as the file', async () => {
  assert.deepEqual(await copy(linkedContext(), ['.'], '/x/', { exclude: ['a', 'dir/d'] }), [
    'directory x',
    'file x/b',
    'directory x/dir',
    'x/dir/c => x/b',
    'file x/dir/e',
    'file x/f',
  ]);
});

test('a wildcard that matches nothing selects nothing; a literal that does not exist is an error', async () => {
  const ctx = linkedContext();
  assert.deepEqual(await copy(ctx, ['f', 'yarn.lock*', 'pnpm-lock.yaml*'], '/app/'), ['directory app', 'file app/f']);
  assert.deepEqual(await copy(ctx, ['nomatch*'], '/y/'), []);
  await assert.rejects(copy(ctx, ['nomatch'], '/w/'), /"nomatch" not found in the build context/);
});
