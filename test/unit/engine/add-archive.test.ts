/**
 * ADD's local archives (engine/add-archive.ts archiveSources): a pattern that selects tar archives
 * gives one unpacked directory per archive (members keep their owners) and the other matches as
 * they are; a pattern without archives gives nothing (the caller copies it as written).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { archiveSources } from '../../../src/engine/add-archive.js';
import { BuildContext } from '../../../src/context/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-add-archive-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ctxDir = path.join(tmp, 'ctx');
mkdirSync(path.join(ctxDir, 'src/dir'), { recursive: true });
writeFileSync(path.join(ctxDir, 'src/dir/in.txt'), 'inside\n');
execFileSync('tar', ['-czf', path.join(ctxDir, 'one.tar.gz'), '-C', path.join(ctxDir, 'src'), 'dir']);
writeFileSync(path.join(ctxDir, 'one.txt'), 'plain\n');
const scratch = path.join(tmp, 'scratch');
mkdirSync(scratch);

test('archives are unpacked into temp directories, other matches kept as they are', async () => {
  const ctx = BuildContext.open(ctxDir);
  const cleanups: string[] = [];
  const got = await archiveSources(ctx, 'one.*', scratch, {}, cleanups);
  assert.ok(got);
  assert.equal(got.length, 2);
  const [unpacked, plain] = got;
  assert.equal(unpacked!.pattern, '.');
  assert.equal(unpacked!.keepOwner, true);
  assert.equal(unpacked!.unpacked, true);
  assert.equal(readFileSync(path.join(unpacked!.ctx.root, 'dir/in.txt'), 'utf8'), 'inside\n');
  assert.deepEqual([plain!.ctx, plain!.pattern], [ctx, 'one.txt']);
  assert.deepEqual(cleanups, [unpacked!.ctx.root]);
  assert.ok(
    cleanups.every((d) => d.startsWith(scratch + path.sep)),
    'temp directories under the given tmpDir',
  );
});

test('no archive selected: undefined, nothing made', async () => {
  const cleanups: string[] = [];
  assert.equal(await archiveSources(BuildContext.open(ctxDir), 'one.txt', scratch, {}, cleanups), undefined);
  assert.deepEqual(cleanups, []);
});

test('a .gz that is no tar is copied as it is', async () => {
  const d = path.join(tmp, 'gz');
  mkdirSync(d);
  writeFileSync(path.join(d, 'notes.txt'), 'text\n');
  execFileSync('gzip', [path.join(d, 'notes.txt')]);
  const ctx = BuildContext.open(d);
  const cleanups: string[] = [];
  const got = await archiveSources(ctx, 'notes.txt.gz', scratch, {}, cleanups);
  assert.deepEqual(
    got?.map((s) => [s.ctx === ctx, s.pattern, s.unpacked ?? false]),
    [[true, 'notes.txt.gz', false]],
  );
  assert.ok(cleanups.length === 1 && existsSync(cleanups[0]!), 'its temp directory is still handed back for cleanup');
});
