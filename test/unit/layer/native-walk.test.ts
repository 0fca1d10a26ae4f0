/**
 * The tar writer with kiln's native file-system helper (util/native-fs.ts) against the same writer
 * on Node's fs alone (useNativeFs(false)): the same bytes, the same callbacks, the same errors, on
 * a tree with every kind of entry a layer meets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { tarDirectory, tarEntries, type TarOptions } from '../../../src/layer/write.js';
import { useNativeFs } from '../../../src/util/native-fs.js';

const xattr = createRequire(import.meta.url)('fs-xattr') as { setAttributeSync(p: string, n: string, v: string): void };

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** What a tar of `make()` writes and tells, with the helper on or off. */
async function both<T>(make: () => Promise<T>): Promise<{ native: T; node: T }> {
  try {
    useNativeFs(false);
    const node = await make();
    useNativeFs(true);
    return { native: await make(), node };
  } finally {
    useNativeFs(true);
  }
}

async function failure(r: Readable): Promise<string> {
  try {
    await collect(r);
  } catch (e) {
    return `${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}`;
  }
  return 'no error';
}

const sh = (cwd: string, script: string) => {
  const r = spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
};

test('a walk with the native helper writes the bytes and tells what Node fs alone does (every kind of entry)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-native-walk-'));
  try {
    mkdirSync(join(dir, 'pkg', 'lib'), { recursive: true });
    for (let i = 0; i < 300; i++)
      writeFileSync(join(dir, 'pkg', 'lib', `f${i}.js`), `module.exports = ${i};\n`.repeat(i));
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'edge'), Buffer.alloc(256 << 10, 'e')); // the largest file read whole
    writeFileSync(join(dir, 'large'), Buffer.alloc((256 << 10) + 1, 'l')); // streamed
    writeFileSync(join(dir, 'é-\u{1F600}'), 'astral');
    const long = 'n'.repeat(200);
    mkdirSync(join(dir, long));
    writeFileSync(join(dir, long, long), 'a long path');
    symlinkSync('pkg/lib/f1.js', join(dir, 'link'));
    linkSync(join(dir, 'pkg', 'lib', 'f2.js'), join(dir, 'hard'));
    xattr.setAttributeSync(join(dir, 'empty'), 'user.kiln-test', 'kept');
    xattr.setAttributeSync(join(dir, 'pkg'), 'user.kiln-dir', 'kept too');
    sh(dir, 'mkfifo fifo && python3 -c "import socket; socket.socket(socket.AF_UNIX).bind(\'sock\')"');
    sh(dir, 'mknod null c 1 3 && mknod blk b 7 200'); // the tests run as root (the sandbox needs it)
    // Times with nanoseconds at the edge of a millisecond (Node's mtimeMs rounds them).
    sh(dir, 'touch -h -d @1700000000.999999999 pkg/lib/f3.js link && touch -d @-5.5 pkg/lib/f4.js');
    for (const opts of [{}, { sourceDateEpoch: 1_600_000_000 }] as TarOptions[]) {
      const r = await both(async () => {
        const told: string[] = [];
        const tar = await collect(
          tarDirectory(dir, {
            ...opts,
            onXattrNames: (n, names) => told.push(`xattrs ${n} ${names.join(',')}`),
            onFileDigest: (n, st, d) =>
              told.push(`file ${n} ${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino} ${st.mode} ${st.nlink} ${d}`),
          }),
        );
        return { tar: tar.toString('base64'), told };
      });
      assert.equal(r.native.tar, r.node.tar);
      assert.deepEqual(r.native.told, r.node.told);
      assert.ok(r.native.told.length > 300);
    }
    // A COPY's entries read through the same writer.
    const specs = [0, 1, 299].map((i) => ({
      path: `app/f${i}.js`,
      type: 'file' as const,
      source: join(dir, 'pkg', 'lib', `f${i}.js`),
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 0,
    }));
    const copies = await both(async () => (await collect(tarEntries(specs))).toString('base64'));
    assert.equal(copies.native, copies.node);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a name that is not UTF-8, a path too long and a file gone mid-walk fail as with Node fs alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-native-walk-'));
  try {
    mkdirSync(join(dir, 'odd'));
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/odd/bad-`), Buffer.from([0xff])]), 'x');
    const odd = await both(() => failure(tarDirectory(join(dir, 'odd'))));
    assert.match(odd.node, /^ENOENT: /);
    assert.equal(odd.native, odd.node);

    mkdirSync(join(dir, 'deep'));
    sh(join(dir, 'deep'), `for i in $(seq 25); do mkdir ${'d'.repeat(200)} && cd ${'d'.repeat(200)}; done; echo x > f`);
    const deep = await both(() => failure(tarDirectory(join(dir, 'deep'))));
    assert.match(deep.node, /^ENAMETOOLONG: /);
    assert.equal(deep.native, deep.node);

    // A large file first: its header goes out (a chunk) while the small one after it is listed but unread.
    mkdirSync(join(dir, 'vanish'));
    const vanish = await both(async () => {
      writeFileSync(join(dir, 'vanish', 'a-large'), Buffer.alloc(1 << 20, 'a'));
      writeFileSync(join(dir, 'vanish', 'b-small'), 'b');
      const tar = tarDirectory(join(dir, 'vanish'));
      let first = true;
      try {
        for await (const _ of tar)
          if (first) {
            first = false;
            unlinkSync(join(dir, 'vanish', 'b-small'));
          }
      } catch (e) {
        return `${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}`;
      }
      return 'no error';
    });
    assert.match(vanish.node, /^ENOENT: .*open .*b-small/);
    assert.equal(vanish.native, vanish.node);
  } finally {
    spawnSync('rm', ['-rf', dir]); // rmSync cannot: the deep tree's paths are longer than PATH_MAX
  }
});
