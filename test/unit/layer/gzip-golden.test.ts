import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { encodeLayer } from '../../../src/layer/compress.js';
import { tarChanges, type Change } from '../../../src/layer/write.js';

/**
 * The gzip blobs kiln pushes and exports are named by their digest: for the same input and level
 * they must stay the very bytes they were (a registry and a cache would otherwise hold every layer
 * twice), whatever the number of threads and whatever the encoder's internals become. A change of
 * the digests below is a change of every pushed layer's digest, never a side effect. They were
 * made by kiln at f9216d4 (Node 20's bundled zlib) and changed deliberately in issue 23: in branch
 * s33E, zlib's memLevel 9 (7-9 % less CPU at every level) and the default level 4 (no bigger than
 * skopeo's default gzip, for less CPU); in branch s35A, the default (no level asked for) became
 * libdeflate's level 2 (Debian 12's libdeflate 1.14, through kiln's addon; compress.ts,
 * GZIP_DEFAULT): blobs no bigger than zlib 4's for a quarter less CPU. An explicit level is still
 * zlib's, with zlib's bytes (GOLDEN below, unchanged).
 */
const GOLDEN: Record<number, string> = {
  1: 'sha256:36baf4a887a1bf97672ec56588e72761f7c7ffc17ff595ee72466824fffb0a2c',
  4: 'sha256:cf15ba1df9b1b658a346ca003f16c18b5571a974ab40013ad257626ffae514ad',
  6: 'sha256:b2669a394f7999c95daa0f5b21a46ccdf83f275cd42f39bcf59b2420a31d3928',
  9: 'sha256:0e2e194b3d2529c348862cfcadd8beb18d1d4c032afc762a18df7f0e55c997a7',
};
/** No level asked for: libdeflate's level 2 (since s35A). */
const GOLDEN_DEFAULT = 'sha256:c5762b1a37c261618ee08e6e80fc6c055f2f76d0e13cf9361886bf695089b03b';

const TREE = {
  diffId: 'sha256:d5bba56e877da85e13124eaaf2b19f658d9141db6879b73ed63e19f5d536807f',
  digest: 'sha256:7bcfea6a2f171c173eafcf45aa7c5638ac627673ebfb7cdc7f3b2c3ed8c409f9',
};

/** A fixed input of ~2.6 MB: text (deflated), pseudo-random bytes (stored), a run of zeros, more text; blocks straddled. */
function fixedInput(): Buffer {
  const text: string[] = [];
  for (let i = 0, len = 0; len < 1_300_000; i++) {
    const l = `${i} ${(i * 7919) % 1013} usr/lib/python3/dist-packages/pkg${i % 97}/module${i % 13}.py\n`;
    text.push(l);
    len += l.length;
  }
  const noise: Buffer[] = [];
  for (let i = 0; noise.length * 32 < 700_000; i++) noise.push(createHash('sha256').update(`kiln ${i}`).digest());
  return Buffer.concat([
    Buffer.from(text.join('')),
    Buffer.concat(noise),
    Buffer.alloc(300_000),
    Buffer.from(text.slice(0, 2000).join('')),
  ]);
}

async function digestOf(data: Buffer, threads: number, level: number | undefined): Promise<string> {
  const dest = new PassThrough();
  dest.resume();
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += 65_537) parts.push(data.subarray(i, i + 65_537));
  const opts = { compression: 'gzip' as const, threads, ...(level !== undefined ? { level } : {}) };
  return (await encodeLayer(Readable.from(parts), dest, opts)).digest;
}

test('gzip layers: the same digest with 1 and 2 workers, and the digest kiln gives for a fixed input at each level', async () => {
  const data = fixedInput();
  for (const level of [1, 4, 6, 9]) {
    const one = await digestOf(data, 1, level);
    const two = await digestOf(data, 2, level);
    assert.equal(two, one, `level ${level}: the same bytes with 1 and 2 threads`);
    assert.equal(one, GOLDEN[level], `level ${level}: the digest kiln gives for this input since s33E`);
  }
  const one = await digestOf(data, 1, undefined);
  assert.equal(await digestOf(data, 2, undefined), one, 'no level asked for: the same bytes with 1 and 2 threads');
  assert.equal(one, GOLDEN_DEFAULT, "no level asked for: libdeflate's level 2, the digest kiln gives since s35A");
});

/** An lstat with fixed owners and times (the tree's own would be the test runner's), for tarChanges. */
function stats(type: 'file' | 'dir' | 'link', size: number, i: number): NonNullable<Change['stats']> {
  const mode = (type === 'dir' ? 0o040755 : type === 'link' ? 0o120777 : 0o100644) | (i % 3 === 0 ? 0o4000 : 0);
  return {
    mode,
    uid: i % 5 === 0 ? 70_000_000 : 1000 + (i % 4),
    gid: i % 7 === 0 ? 0 : 100,
    size,
    mtimeMs: 1_700_000_000_000 + i * 1_000_003,
    ctimeMs: 0,
    rdev: 0,
    dev: 1,
    ino: 1000 + i,
    nlink: 1,
    isFile: () => type === 'file',
    isDirectory: () => type === 'dir',
    isSymbolicLink: () => type === 'link',
    isCharacterDevice: () => false,
    isBlockDevice: () => false,
    isFIFO: () => false,
    isSocket: () => false,
  };
}

test('layer tars: the same diff_id and gzip digest for a fixed tree as kiln writes (small, large, long and non-ASCII names, PAX)', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kiln-golden-'));
  try {
    const changes: Change[] = [];
    const add = (p: string, type: 'file' | 'dir' | 'link', content?: Buffer | string) => {
      const abs = path.join(root, p);
      if (type === 'dir') mkdirSync(abs);
      else if (type === 'link') symlinkSync(content as string, abs);
      else writeFileSync(abs, content!);
      const size = type === 'file' ? Buffer.byteLength(content!) : 0;
      changes.push({ kind: 'add', path: p, stats: stats(type, size, changes.length) });
    };
    add('app', 'dir');
    for (let i = 0; i < 400; i++) add(`app/f${i}.py`, 'file', `# ${i}\n${'x = 1\n'.repeat(i % 250)}`);
    add(
      'app/big.bin',
      'file',
      Buffer.concat(Array.from({ length: 11_000 }, (_, i) => createHash('sha256').update(`b${i}`).digest())),
    );
    add('app/empty', 'file', '');
    add('app/link', 'link', 'f1.py');
    add(`app/${'long-name-'.repeat(14)}.txt`, 'file', 'long\n');
    add('app/naïve-ünïcode.txt', 'file', 'ü\n');
    changes.push({ kind: 'delete', path: 'app/gone' }, { kind: 'opaque', path: 'app' });
    const encode = async (threads: number) => {
      const dest = new PassThrough();
      dest.resume();
      return encodeLayer(tarChanges(root, changes), dest, { compression: 'gzip', threads });
    };
    const one = await encode(1);
    const two = await encode(2);
    assert.deepEqual(two, one, 'the same layer with 1 and 2 threads');
    assert.equal(one.diffId, TREE.diffId, 'the tar is the one kiln wrote at f9216d4');
    assert.equal(one.digest, TREE.digest, 'its gzip (the default, libdeflate 2) is the one kiln writes since s35A');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
