/**
 * An image's size as docker counts it: the files' bytes per layer (moby's directory.Size on the
 * unpacked layer), measured from the tar stream. Checked against the tree itself, walked the way
 * directory.Size walks it (lstat: regular files and symlinks, each inode once, directories 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TarContentSize, tarContentSize } from '../../../src/layer/content-size.js';
import { encodeLayer } from '../../../src/layer/compress.js';
import { announcedContentSize } from '../../../src/layer/content-size.js';
import { tarChanges, tarDirectory } from '../../../src/layer/write.js';
import { PassThrough, Readable } from 'node:stream';

/** directory.Size: regular files' and symlinks' lstat size, each inode once, directories 0. */
function directorySize(dir: string): number {
  const seen = new Set<number>();
  let total = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        walk(p);
        continue;
      }
      if (st.size === 0 || seen.has(st.ino)) continue;
      seen.add(st.ino);
      total += st.size;
    }
  };
  walk(dir);
  return total;
}

function makeTree(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-csize-'));
  const deep = path.join(dir, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60)); // paths past 100 bytes: PAX / GNU long names
  mkdirSync(deep, { recursive: true });
  for (const n of [0, 1, 511, 512, 513, 4096, 100_003]) writeFileSync(path.join(dir, `f${n}`), Buffer.alloc(n, 7));
  for (let i = 0; i < 300; i++) writeFileSync(path.join(deep, `small-${i}.txt`), `file number ${i}\n`);
  symlinkSync('f512', path.join(dir, 'short-link'));
  symlinkSync(`/${'t'.repeat(150)}/target`, path.join(dir, 'long-link')); // a link target past 100 bytes
  linkSync(path.join(dir, 'f100003'), path.join(dir, 'hard-100003')); // counted once
  linkSync(path.join(deep, 'small-1.txt'), path.join(dir, 'hard-small'));
  writeFileSync(path.join(dir, '.wh.gone'), ''); // a whiteout: 0 bytes
  return dir;
}

/** The tar in odd slices, so headers and bodies straddle chunk boundaries. */
function slices(b: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
}

for (const format of ['pax', 'gnu', 'ustar'] as const) {
  test(`the files' bytes of a ${format} tar equal directory.Size of the tree (long names, long link targets, hard links)`, async () => {
    const dir = makeTree();
    try {
      // ustar cannot hold a link name past 100 bytes: that format gets the tree without those.
      if (format === 'ustar') for (const l of ['long-link', 'hard-small']) rmSync(path.join(dir, l));
      const t = spawnSync('tar', [`--format=${format}`, '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
      assert.equal(t.status, 0, t.stderr.toString());
      const want = directorySize(dir);
      assert.ok(want > 100_003 + 4096, 'the tree has content');
      for (const n of [1, 7, 512, 1000, 1 << 20])
        assert.equal(await tarContentSize(slices(t.stdout, n)), want, `${format}, chunks of ${n}`);
      assert.ok(
        t.stdout.length > want * 1.5,
        'the tar is much longer than its files (headers, padding): the two differ',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('encodeLayer reports the content size beside the tar size, for every compression', async () => {
  const dir = makeTree();
  try {
    const t = spawnSync('tar', ['--format=pax', '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
    const want = directorySize(dir);
    for (const compression of ['none', 'gzip', 'zstd'] as const) {
      const dest = new PassThrough();
      dest.resume();
      const info = await encodeLayer(Readable.from(slices(t.stdout, 4093)), dest, { compression });
      assert.equal(info.contentSize, want, compression);
      assert.equal(info.uncompressedSize, t.stdout.length, compression);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kiln's own tar writer counts the content size as it writes, the same as the parser reads it back", async () => {
  const dir = makeTree();
  try {
    const want = directorySize(dir);
    const tar = tarDirectory(dir);
    assert.ok(announcedContentSize(tar), 'tarDirectory announces its content size');
    const chunks: Buffer[] = [];
    const dest = new PassThrough();
    dest.on('data', (b: Buffer) => chunks.push(b));
    const info = await encodeLayer(tar, dest, { compression: 'none' });
    assert.equal(info.contentSize, want, 'the count of the writer');
    assert.equal(await tarContentSize([Buffer.concat(chunks)]), want, 'the parser, on the same bytes');
    // Whiteouts and an opaque marker count 0.
    const changes = tarChanges(dir, [
      { kind: 'add', path: 'f4096' },
      { kind: 'delete', path: 'gone' },
      { kind: 'opaque', path: 'a'.repeat(60) },
      { kind: 'add', path: 'short-link' },
    ]);
    const out = new PassThrough();
    out.resume();
    assert.equal((await encodeLayer(changes, out, { compression: 'gzip' })).contentSize, 4096 + 'f512'.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stream that is no tar has no content size (the caller keeps the tar length)', async () => {
  assert.equal(await tarContentSize([Buffer.from('not a tar at all '.repeat(100))]), undefined);
  const c = new TarContentSize();
  assert.equal(c.size, 0, 'an empty stream holds no files');
});
