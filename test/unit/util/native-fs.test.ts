import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeFs } from '../../../src/util/native-fs.js';

const xattr = createRequire(import.meta.url)('fs-xattr') as { setAttributeSync(p: string, n: string, v: string): void };

test("readDirectory: every entry in byte order with the numbers of Node's lstat, and whether it has xattrs", () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-native-'));
  try {
    const names = ['b\u{1F600}', 'b\uFFFD', 'a', 'B', 'é', 'a.b', 'a-b', 'x'.repeat(255)];
    for (const n of names) writeFileSync(join(dir, n), n);
    mkdirSync(join(dir, 'd'));
    symlinkSync('a', join(dir, 'link'));
    xattr.setAttributeSync(join(dir, 'a'), 'user.kiln-test', 'y');
    xattr.setAttributeSync(join(dir, 'd'), 'user.kiln-test', 'y');
    const listing = nativeFs().readDirectory(dir);
    assert.ok(listing);
    const want = [...names, 'd', 'link'].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(listing.names, want);
    for (const [i, n] of listing.names.entries()) {
      const st = lstatSync(join(dir, n));
      const got = listing.stats(i);
      assert.ok(got, n);
      for (const k of ['mode', 'uid', 'gid', 'size', 'mtimeMs', 'ctimeMs', 'rdev', 'dev', 'ino', 'nlink'] as const)
        assert.equal(got[k], st[k], `${n}: ${k}`);
      assert.equal(got.isDirectory(), st.isDirectory());
      assert.equal(got.isSymbolicLink(), st.isSymbolicLink());
      assert.equal(listing.mayHaveXattrs(i), n === 'a' || n === 'd', n);
    }
    assert.equal(nativeFs().readDirectory(join(dir, 'missing')), undefined);
    assert.equal(nativeFs().readDirectory(join(dir, 'a')), undefined); // not a directory
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readDirectory: a directory with a name that is not UTF-8 is left to Node (undefined)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-native-'));
  try {
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe])]), 'x');
    writeFileSync(join(dir, 'good'), 'x');
    assert.equal(nativeFs().readDirectory(dir), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readFileInto: the bytes at an offset, fewer at the end of the file, -1 where Node must answer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-native-'));
  try {
    writeFileSync(join(dir, 'f'), 'hello');
    const into = Buffer.alloc(16, 0xaa);
    assert.equal(nativeFs().readFileInto(join(dir, 'f'), into, 3, 5), 5);
    assert.equal(into.toString('latin1', 3, 8), 'hello');
    assert.equal(into[2], 0xaa);
    assert.equal(into[8], 0xaa);
    assert.equal(nativeFs().readFileInto(join(dir, 'f'), into, 0, 10), 5); // shorter than asked
    assert.equal(nativeFs().readFileInto(join(dir, 'f'), into, 0, 3), 3); // longer than asked: 3 only
    assert.equal(into.toString('latin1', 0, 9), 'hellollo\xaa'); // 'hello' at 0, then the first 'hel' again
    assert.equal(nativeFs().readFileInto(join(dir, 'missing'), into, 0, 3), -1);
    assert.equal(nativeFs().readFileInto(join(dir, 'f\0x'), into, 0, 3), -1); // Node refuses a NUL
    assert.equal(nativeFs().readFileInto(join(dir, 'f'), into, 12, 5), -1); // past the buffer
    assert.equal(nativeFs().readFileInto(dir, into, 0, 3), -1); // a directory: EISDIR
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
