/**
 * The addon's read-ahead (native/src/prefetch.c) and its count of reads that waited on the disk
 * (fswalk.c readFileInto), on files evicted from the page cache (dd iflag=nocache): the tar writer
 * turns the read-ahead on for them and writes the same bytes; the thread opens no symlink, device
 * or FIFO, ignores errors, ends when idle and never holds a process's exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { tarDirectory, tarEntries, type EntrySpec } from '../../../src/layer/write.js';
import { nativeFs, useNativeFs } from '../../../src/util/native-fs.js';
import { evict, writeSynced } from '../../helpers/page-cache.js';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether this file system lets a file's pages be evicted (not tmpfs): readFileInto then counts a cold read. */
function evictable(dir: string): boolean {
  const f = join(dir, 'probe');
  writeSynced(f, 'probe\n');
  evict([f]);
  const before = nativeFs().coldReads();
  nativeFs().readFileInto(f, Buffer.alloc(6), 0, 6);
  return nativeFs().coldReads() === before + 1;
}

// On a disk's file system (/var/tmp; /tmp may be a tmpfs, whose pages cannot be evicted).
const base = mkdtempSync(join(process.env.KILN_TEST_DISK_DIR ?? '/var/tmp', 'kiln-prefetch-'));
const evictableBase = evictable(base);
/** Each test first: what these tests need, said as what to do when it is missing. */
function needsEvictable(): void {
  assert.ok(
    evictableBase,
    `${base} is on a file system whose pages cannot be evicted (tmpfs?): set KILN_TEST_DISK_DIR to a directory on a disk`,
  );
}

test.after(() => rmSync(base, { recursive: true, force: true }));

test('readFileInto counts a read that waited on the disk, once; the bytes are the file', () => {
  needsEvictable();
  const f = join(base, 'one');
  writeSynced(f, 'hello, disk\n');
  evict([f]);
  const fs = nativeFs();
  const c0 = fs.coldReads();
  const into = Buffer.alloc(12);
  assert.equal(fs.readFileInto(f, into, 0, 12), 12);
  assert.equal(into.toString(), 'hello, disk\n');
  assert.equal(fs.coldReads(), c0 + 1);
  assert.equal(fs.readFileInto(f, into, 0, 12), 12);
  assert.equal(fs.coldReads(), c0 + 1, 'cached now');
});

test('prefetch reads a regular file into the page cache; never through a symlink; errors ignored', async () => {
  needsEvictable();
  const dir = join(base, 'hostile');
  mkdirSync(dir);
  const target = join(dir, 'target');
  writeSynced(target, 'x'.repeat(10000));
  symlinkSync(target, join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  mkdirSync(join(dir, 'subdir'));
  evict([target]);
  const fs = nativeFs();
  const s0 = fs.prefetchStats();
  // A symlink to the evicted file, a FIFO (no writer: a blocking open would hang), a directory, a missing path.
  const odd = [join(dir, 'link'), join(dir, 'fifo'), join(dir, 'subdir'), join(dir, 'missing')];
  assert.equal(fs.prefetch(odd), odd.length);
  for (let i = 0; i < 200 && fs.prefetchStats().probed < s0.probed + odd.length; i++) await sleep(5);
  const s1 = fs.prefetchStats();
  assert.equal(s1.probed, s0.probed + odd.length);
  assert.equal(s1.cold, s0.cold, 'nothing opened and found cold: the symlink was not followed');
  // The evicted file itself: found cold, and read into the cache (the writer's read then does not wait).
  fs.prefetch([target]);
  for (let i = 0; i < 200 && fs.prefetchStats().probed < s1.probed + 1; i++) await sleep(5);
  assert.equal(fs.prefetchStats().cold, s1.cold + 1);
  // WILLNEED's reads complete shortly after it returns: then the writer's read does not wait.
  await sleep(200);
  const c0 = fs.coldReads();
  const into = Buffer.alloc(10000);
  assert.equal(fs.readFileInto(target, into, 0, 10000), 10000);
  assert.equal(fs.coldReads(), c0, 'the prefetched file was read from the page cache');
  assert.ok(into.equals(Buffer.alloc(10000, 'x')));
});

test('a tar of evicted small files reads them ahead and writes the same bytes as from the cache', async () => {
  needsEvictable();
  const dir = join(base, 'tree');
  const files: string[] = [];
  for (let d = 0; d < 6; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) {
      const file = join(dir, `d${d}`, `f${f}.txt`);
      writeSynced(file, `${d}/${f} `.repeat(1 + ((d * 100 + f) % 50)));
      files.push(file);
    }
  }
  const cached = await collect(tarDirectory(dir, { sourceDateEpoch: 0 }));
  evict(files);
  const fs = nativeFs();
  const s0 = fs.prefetchStats();
  const cold = await collect(tarDirectory(dir, { sourceDateEpoch: 0 }));
  assert.ok(cold.equals(cached), 'the same tar');
  await sleep(50);
  const s1 = fs.prefetchStats();
  assert.ok(s1.probed - s0.probed >= 256, `files were handed to the read-ahead (${s1.probed - s0.probed})`);
  assert.ok(s1.cold > s0.cold, 'and found not cached');
  // Cached now: a second tar hands nothing.
  const s2 = fs.prefetchStats();
  const again = await collect(tarDirectory(dir, { sourceDateEpoch: 0 }));
  assert.ok(again.equals(cached));
  await sleep(50);
  assert.equal(fs.prefetchStats().probed, s2.probed, 'no read-ahead of cached files');
});

test('a file that vanished or shrank after the walk fails the tar as it does without the read-ahead', async () => {
  needsEvictable();
  const dir = join(base, 'changing');
  mkdirSync(dir);
  const specs: EntrySpec[] = [];
  for (let f = 0; f < 700; f++) {
    const file = join(dir, `f${String(f).padStart(3, '0')}`);
    writeSynced(file, `${f}\n`.repeat(20));
    specs.push({
      path: `f${f}`,
      type: 'file',
      source: file,
      size: `${f}\n`.length * 20,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 0,
    });
  }
  // Well past the first batch, so that the read-ahead is on (the first batch's reads waited) and was handed them.
  unlinkSync(specs[600]!.source!);
  const errorOf = async (): Promise<string> => {
    evict(specs.filter((s) => s !== specs[600]).map((s) => s.source!));
    const p0 = nativeFs().prefetchStats().probed;
    const e = await collect(tarEntries(specs)).then(
      () => 'no error',
      (err: NodeJS.ErrnoException) => `${err.code}: ${err.message}`,
    );
    return `${e} (read ahead: ${nativeFs().prefetchStats().probed > p0})`;
  };
  const withReadAhead = await errorOf();
  assert.match(withReadAhead, /^ENOENT: .*f600.*\(read ahead: true\)$/);
  useNativeFs(false);
  try {
    assert.equal(await errorOf(), withReadAhead.replace('read ahead: true', 'read ahead: false'));
  } finally {
    useNativeFs(true);
  }
  // Shorter than the walk saw it: the same error as ever.
  writeSynced(specs[600]!.source!, 'short');
  const shrank = await errorOf();
  assert.match(shrank, /changed size while being archived \(5 of \d+ bytes\).*\(read ahead: true\)$/);
});

test('the thread ends when idle, and a process that used it exits at once', async () => {
  needsEvictable();
  const fs = nativeFs();
  fs.prefetch([join(base, 'missing-1')]);
  await sleep(600);
  assert.equal((await import('../../../src/util/native-addon.js')).nativeAddon().addon.prefetchStats()[2], 0);
  // A child hands the thread many paths (of a slow kind: files to open) and returns at once.
  const addonModule = fileURLToPath(new URL('../../../src/util/native-addon.js', import.meta.url));
  const many = join(base, 'many');
  mkdirSync(many);
  for (let i = 0; i < 1000; i++) writeFileSync(join(many, `f${i}`), 'x');
  const script =
    `const { nativeAddon } = await import(${JSON.stringify(addonModule)}); const a = nativeAddon().addon;` +
    `const ps = Array.from({ length: 1000 }, (_, i) => ${JSON.stringify(many)} + '/f' + i);` +
    `console.log(a.prefetchFiles(ps), a.prefetchStats()[2]);`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '1000 1');
  assert.ok(ms < 3000, `exited in ${ms} ms`);
});
