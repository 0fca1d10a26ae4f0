/**
 * The context hash's small-file reads (context/hash.ts): by the native helper once loaded, with
 * the same digest readFileSync gives (a file grown or shrunk since its lstat included); a context
 * evicted from the page cache is read ahead (util/read-ahead.ts) and hashes to the same selection
 * digest as from the cache and as with Node's fs alone; remembered digests are not read ahead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuildContext } from '../../../src/context/build-context.js';
import { FileHashCache, hashFile, hashSelection } from '../../../src/context/hash.js';
import { nativeFs, useNativeFs } from '../../../src/util/native-fs.js';
import { evict, writeSynced } from '../../helpers/page-cache.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
// On a disk's file system (/var/tmp; /tmp may be a tmpfs, whose pages cannot be evicted).
const base = mkdtempSync(join(process.env.KILN_TEST_DISK_DIR ?? '/var/tmp', 'kiln-hash-ahead-'));
test.after(() => rmSync(base, { recursive: true, force: true }));

/** A tree of `n` small files in directories of 100; their paths. */
function tree(dir: string, n: number): string[] {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = join(dir, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d, { recursive: true });
    const f = join(d, `f${i}.txt`);
    writeSynced(f, `file ${i} `.repeat(1 + (i % 40)));
    files.push(f);
  }
  return files;
}

test('hashFile through the native helper: the digest of the whole file, grown or shrunk since its lstat', async () => {
  nativeFs(); // loaded: small files are read by it from the first
  const f = join(base, 'grows');
  writeFileSync(f, 'abcdef');
  assert.equal(await hashFile(f, 6), sha('abcdef'));
  assert.equal(await hashFile(f, 3), sha('abcdef'), 'grown since: read whole');
  assert.equal(await hashFile(f, 100), sha('abcdef'), 'shrunk since: what is there');
  writeFileSync(f, '');
  assert.equal(await hashFile(f, 0), sha(''));
  await assert.rejects(hashFile(join(base, 'missing'), 5), { code: 'ENOENT' });
});

test('an evicted context is read ahead and hashes as from the cache and with Node fs alone', async () => {
  const dir = join(base, 'ctx');
  const files = tree(dir, 900);
  const warm = await hashSelection(BuildContext.plain(dir), ['.']);
  useNativeFs(false);
  try {
    assert.equal(await hashSelection(BuildContext.plain(dir), ['.']), warm);
  } finally {
    useNativeFs(true);
  }
  evict(files);
  const before = nativeFs().coldReads();
  const s0 = nativeFs().prefetchStats();
  const cold = await hashSelection(BuildContext.plain(dir), ['.']);
  assert.equal(cold, warm);
  if (nativeFs().coldReads() === before)
    return assert.fail('eviction had no effect: not a file system kiln runs its tests on');
  const s1 = nativeFs().prefetchStats();
  assert.ok(s1.probed - s0.probed >= 256, `files handed to the read-ahead: ${s1.probed - s0.probed}`);
  assert.ok(
    nativeFs().coldReads() - before < 200,
    `most reads found their file cached (${nativeFs().coldReads() - before} waited)`,
  );
});

test('files whose digest is remembered are not read ahead', async () => {
  const dir = join(base, 'remembered');
  const files = tree(dir, 900);
  const cache = new FileHashCache(undefined, -1000); // every digest remembered, however recent;
  const first = await hashSelection(BuildContext.plain(dir), ['.'], { files: cache });
  for (const f of files) assert.ok(cache.remembers(f, lstatSync(f)));
  // All remembered: an evicted context is hashed without reading a file, nothing handed.
  evict(files);
  const s0 = nativeFs().prefetchStats();
  const c0 = nativeFs().coldReads();
  assert.equal(await hashSelection(BuildContext.plain(dir), ['.'], { files: cache }), first);
  assert.equal(nativeFs().coldReads(), c0);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(nativeFs().prefetchStats().probed, s0.probed);
  // One file changed (its stat): it alone is read.
  writeSynced(files[5]!, 'changed');
  assert.notEqual(await hashSelection(BuildContext.plain(dir), ['.'], { files: cache }), first);
  assert.equal(cache.stats.misses, 900 + 1);
});
