/**
 * The tar writer reads a process's first few small files with Node's fs and loads the native
 * helper (util/native-fs.ts) only past them: a one-file COPY does not pay for loading it. Its own
 * file, so its own process: no other test has loaded the helper before the first assertion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { tarEntries, type EntrySpec } from '../../../src/layer/write.js';
import { nativeFsLoaded, useNativeFs } from '../../../src/util/native-fs.js';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const fileEntry = (dir: string, name: string): EntrySpec => ({
  path: name,
  type: 'file',
  source: join(dir, name),
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 1700000000,
});

/** The tar of `names` (files under `dir`). */
const tarOf = (dir: string, names: string[]): Promise<Buffer> =>
  collect(tarEntries(names.map((n) => fileEntry(dir, n))));

test("a few small files are read with Node's fs, the helper loaded only past them; the same bytes either way", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-small-copy-'));
  try {
    const names = Array.from({ length: 100 }, (_, i) => `f${String(i).padStart(3, '0')}.txt`);
    names.forEach((n, i) => writeFileSync(join(dir, n), `line ${i}\n`.repeat(i + 1)));

    // A one-file COPY, then one of three files: no native helper loaded.
    const one = await collect(tarEntries([fileEntry(dir, names[7]!)]));
    assert.equal(nativeFsLoaded(), false, 'a one-file tar loaded the native helper');
    const three = await collect(tarEntries(names.slice(0, 3).map((n) => fileEntry(dir, n))));
    assert.equal(nativeFsLoaded(), false, 'a three-file tar loaded the native helper');
    // The file's bytes are in the tar, after its 512-byte header.
    assert.equal(one.subarray(512, 512 + 16).toString(), 'line 7\nline 7\nli');
    assert.equal(three.length % 512, 0);

    // Past the count: the helper is loaded and reads the rest.
    const many = await collect(tarEntries(names.map((n) => fileEntry(dir, n))));
    assert.equal(nativeFsLoaded(), true, 'a hundred-file tar did not load the native helper');

    // The same bytes as with Node's fs alone, and as the helper writes now it is loaded.
    useNativeFs(false);
    let nodeOnly: Buffer;
    let nodeOne: Buffer;
    try {
      nodeOnly = await collect(tarEntries(names.map((n) => fileEntry(dir, n))));
      nodeOne = await collect(tarEntries([fileEntry(dir, names[7]!)]));
    } finally {
      useNativeFs(true);
    }
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(many), sha(nodeOnly));
    assert.equal(sha(one), sha(nodeOne));
    assert.equal(sha(await collect(tarEntries([fileEntry(dir, names[7]!)]))), sha(one));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tar larger than one output chunk (1 MiB) ends with its last chunk and the end-of-archive blocks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-small-copy-'));
  try {
    // 40 files of 40 KB: the chunk fills and flushes mid-way; the archive ends with two zero blocks.
    const names = Array.from({ length: 40 }, (_, i) => `g${i}`);
    names.forEach((n, i) => writeFileSync(join(dir, n), Buffer.alloc(40_000, 97 + (i % 26))));
    const bytes = await tarOf(dir, names);
    assert.equal(bytes.length, 40 * (512 + Math.ceil(40_000 / 512) * 512) + 1024);
    assert.ok(bytes.subarray(bytes.length - 1024).every((b) => b === 0));
    // Each file's first byte right after its header.
    let at = 0;
    for (let i = 0; i < names.length; i++) {
      assert.equal(
        bytes
          .subarray(at, at + 100)
          .toString()
          .replace(/\0+$/, ''),
        names[i],
      );
      assert.equal(bytes[at + 512], 97 + (i % 26));
      at += 512 + Math.ceil(40_000 / 512) * 512;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
