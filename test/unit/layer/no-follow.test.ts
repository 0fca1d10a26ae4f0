/**
 * A layer's tar never reads through a symbolic link put where the walk saw a regular file: the
 * entry's bytes would be whatever the link points at (a host file, for a context or a directory
 * another user can write). The tar fails instead, saying what changed — small files (the native
 * read and Node's fs) and large ones (streamed) alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { tarEntries, type EntrySpec } from '../../../src/layer/write.js';
import { useNativeFs } from '../../../src/util/native-fs.js';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const SECRET = 'secret-of-the-host\n';

/** `count` files of `size` bytes listed as the walk saw them; then the last one swapped for a link to a secret. */
function swappedTree(dir: string, count: number, size: number): EntrySpec[] {
  const secret = join(dir, 'secret');
  writeFileSync(secret, SECRET.repeat(Math.ceil(size / SECRET.length)).slice(0, size));
  const specs: EntrySpec[] = [];
  for (let i = 0; i < count; i++) {
    const source = join(dir, `f${i}`);
    writeFileSync(source, Buffer.alloc(size, 0x61));
    specs.push({ path: `f${i}`, type: 'file', source, size, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
  }
  const last = specs[count - 1]!.source!;
  unlinkSync(last);
  symlinkSync(secret, last);
  return specs;
}

for (const [what, count, size, native] of [
  ['a small file, read by the native helper', 100, 100, true],
  ["a small file, read by Node's fs", 3, 100, false],
  ['a large file, streamed', 2, 600_000, true],
] as const) {
  test(`${what}: a symbolic link swapped in after the walk is not followed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-no-follow-'));
    useNativeFs(native);
    try {
      const specs = swappedTree(dir, count, size);
      let tar: Buffer | undefined;
      await assert.rejects(
        collect(tarEntries(specs)).then((b) => void (tar = b)),
        (e: Error) => /f\d+ changed while being archived: it is a symbolic link now/.test(e.message),
      );
      assert.equal(tar, undefined);
    } finally {
      useNativeFs(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
