import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from '../../../src/layer/tarformat.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { tarEntries } from '../../../src/layer/write.js';
import { spawnSync } from 'node:child_process';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

test('headers round-trip, including long and non-ASCII names, big ids and binary xattrs', async () => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x30, 0x00, 0x00, 0xff, 0x00]);
  const entries: TarHeader[] = [
    { name: 'dir', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1700000000 },
    {
      name: `dir/${'long'.repeat(60)}`,
      type: 'file',
      mode: 0o4755,
      uid: 3000000,
      gid: 65534,
      size: 5,
      mtime: 1700000001,
      xattrs: { 'security.capability': cap },
    },
    {
      name: 'dir/héllo wörld',
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: 0,
      linkname: `../${'x'.repeat(150)}`,
    },
  ];
  const bufs: Buffer[] = [];
  for (const e of entries) {
    bufs.push(encodeHeader(e));
    if (e.type === 'file') bufs.push(Buffer.from('hello'), padding(5));
  }
  bufs.push(END_OF_ARCHIVE);
  const got: TarHeader[] = [];
  for await (const { header, body } of readTar(Readable.from([Buffer.concat(bufs)]))) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    if (header.type === 'file') assert.equal(Buffer.concat(chunks).toString(), 'hello');
    got.push(header);
  }
  assert.equal(got.length, 3);
  assert.equal(got[1]!.name, entries[1]!.name);
  assert.equal(got[1]!.uid, 3000000);
  assert.equal(got[1]!.mode, 0o4755);
  assert.deepEqual(got[1]!.xattrs!['security.capability'], cap, 'binary xattr value intact');
  assert.equal(got[2]!.name, 'dir/héllo wörld');
  assert.equal(got[2]!.linkname, entries[2]!.linkname);
});

test('GNU tar reads what we write (long names, PAX)', async () => {
  const tar = await collect(
    tarEntries([
      { path: 'a', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1 },
      {
        path: `a/${'n'.repeat(200)}`,
        type: 'file',
        content: Buffer.from('x\n'),
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: 2,
      },
      { path: 'a/l', type: 'symlink', linkname: 'target', mode: 0o777, uid: 0, gid: 0, mtime: 3 },
    ]),
  );
  const r = spawnSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar });
  assert.equal(r.status, 0, r.stderr.toString());
  const out = r.stdout.toString();
  assert.match(out, new RegExp(`1000/1000 +2 .* a/${'n'.repeat(200)}`));
  assert.match(out, /a\/l -> target/);
});

test('reading refuses corrupt headers and oversized metadata', async () => {
  const bad = Buffer.alloc(1024, 0x41);
  await assert.rejects(async () => {
    for await (const _ of readTar(Readable.from([bad]))) void _;
  }, /checksum|octal/);
  const hugePax = encodeHeader({
    name: 'PaxHeaders/x',
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 2 << 20,
    mtime: 0,
  });
  hugePax[156] = 'x'.charCodeAt(0);
  let sum = 0;
  hugePax.fill(0x20, 148, 156);
  for (let i = 0; i < 512; i++) sum += hugePax[i]!;
  hugePax.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  await assert.rejects(async () => {
    for await (const _ of readTar(Readable.from([hugePax, Buffer.alloc(4096)]))) void _;
  }, /refused/);
});

test('a header written in place (encodeHeaderInto) is the very bytes encodeHeader makes, or nothing', async () => {
  const { encodeHeaderInto } = await import('../../../src/layer/tarformat.js');
  const types = ['file', 'directory', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo'] as const;
  const names = [
    'a',
    'dir/sub/f.js',
    'x'.repeat(100),
    'y'.repeat(99),
    'z'.repeat(101),
    'héllo',
    'tab\there',
    '~!@#$%^&*()',
  ];
  const numbers = [0, 1, 7, 8, 0o777, 65534, 0x7fff_ffff, 0x8000_0000, 0o7777777, 0o10000000, 1700000000, 2 ** 33 - 1];
  let seed = 42;
  const pick = <T>(xs: readonly T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length]!;
  let inPlace = 0;
  for (let i = 0; i < 3000; i++) {
    const type = pick(types);
    const h: TarHeader = {
      name: pick(names),
      type,
      mode: pick([0o644, 0o755, 0o4755, 0o1777, 0o100644]),
      uid: pick(numbers),
      gid: pick(numbers),
      size: type === 'file' ? pick([...numbers, 8 ** 11, 8 ** 11 - 1]) : 0,
      mtime: pick([...numbers, 8 ** 11 - 1, 8 ** 11, 1700000000.5]),
    };
    if (type === 'symlink' || type === 'hardlink') h.linkname = pick(names);
    if (type === 'chardev' || type === 'blockdev') {
      h.devmajor = pick([0, 1, 259, 0o7777777]);
      h.devminor = pick([0, 5, 0xfffff]);
    }
    if (i % 7 === 0) h.uname = 'root';
    if (i % 11 === 0) h.xattrs = { 'user.a': Buffer.from('b') };
    const want = encodeHeader(h);
    for (const zeroed of [true, false]) {
      const out = zeroed ? Buffer.alloc(1024) : Buffer.alloc(1024, 0xa5);
      if (!encodeHeaderInto(h, out, 256, zeroed)) {
        assert.ok(zeroed ? out.equals(Buffer.alloc(1024)) : out.equals(Buffer.alloc(1024, 0xa5)), 'nothing written');
        continue;
      }
      inPlace++;
      assert.equal(want.length, 512, `${JSON.stringify(h)} needs PAX, yet was written in place`);
      assert.deepEqual(out.subarray(256, 768), want, JSON.stringify(h));
      assert.equal(out[255], zeroed ? 0 : 0xa5);
      assert.equal(out[768], zeroed ? 0 : 0xa5);
    }
  }
  assert.ok(inPlace > 1000, `${inPlace} headers written in place`);
});

test('a directory walk writes names in byte order (astral names too) and still records a kept xattr', async () => {
  const { mkdtempSync, writeFileSync, rmSync, mkdirSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createRequire } = await import('node:module');
  const { tarDirectory } = await import('../../../src/layer/write.js');
  const xattr = createRequire(import.meta.url)('fs-xattr') as {
    setAttributeSync(p: string, n: string, v: string): void;
  };
  const dir = mkdtempSync(join(tmpdir(), 'kiln-walk-'));
  try {
    // UTF-16 order puts U+1F600 (a surrogate pair) before U+FFFD; UTF-8's bytes put it after.
    const names = ['b\u{1F600}', 'b\uFFFD', 'a', 'B', 'é', 'a.b', 'a-b'];
    for (const n of names) writeFileSync(join(dir, n), n);
    mkdirSync(join(dir, 'd'));
    writeFileSync(join(dir, 'd', 'x'), 'x');
    xattr.setAttributeSync(join(dir, 'a'), 'user.kiln-test', 'kept');
    xattr.setAttributeSync(join(dir, 'd'), 'user.kiln-dir', 'kept too');
    const got: { name: string; xattrs?: Record<string, Buffer> }[] = [];
    for await (const e of readTar(tarDirectory(dir))) {
      got.push({ name: e.header.name, ...(e.header.xattrs ? { xattrs: e.header.xattrs } : {}) });
      for await (const _ of e.body) void _;
    }
    const want = [...names, 'd', 'd/x'].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(
      got.map((g) => g.name),
      want,
    );
    assert.equal(got.find((g) => g.name === 'a')?.xattrs?.['user.kiln-test']?.toString(), 'kept');
    assert.equal(got.find((g) => g.name === 'd')?.xattrs?.['user.kiln-dir']?.toString(), 'kept too');
    assert.equal(got.filter((g) => g.xattrs).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('onFileDigest tells each small file its sha256 as put in the tar (an empty file too), with its lstat', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createHash } = await import('node:crypto');
  const { tarDirectory } = await import('../../../src/layer/write.js');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-digest-'));
  try {
    const files: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      small: Buffer.from('hello\n'),
      kb: Buffer.alloc(1000, 'x'),
      edge: Buffer.alloc(256 << 10, 'y'),
    };
    for (const [n, b] of Object.entries(files)) writeFileSync(join(dir, n), b);
    const told = new Map<string, { digest: string; size: number }>();
    for await (const c of tarDirectory(dir, { onFileDigest: (n, st, d) => told.set(n, { digest: d, size: st.size }) }))
      void c;
    for (const [n, b] of Object.entries(files))
      assert.deepEqual(told.get(n), { digest: createHash('sha256').update(b).digest('hex'), size: b.length }, n);
    assert.equal(told.size, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tarEntries: a list and an async source of the same entries give the same bytes (a file without a size is stat-ed)', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-entries-'));
  try {
    writeFileSync(join(dir, 'a'), 'alpha\n');
    writeFileSync(join(dir, 'b'), Buffer.alloc(3000, 'b'));
    const specs = [
      { path: '/app/', type: 'directory' as const, mode: 0o755, uid: 0, gid: 0, mtime: 5 },
      { path: '/app/a', type: 'file' as const, source: join(dir, 'a'), mode: 0o644, uid: 1, gid: 1, mtime: 5 },
      {
        path: 'app/b',
        type: 'file' as const,
        source: join(dir, 'b'),
        size: 3000,
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime: 6,
      },
      { path: 'app/c', type: 'file' as const, content: Buffer.from('c'), mode: 0o644, uid: 0, gid: 0, mtime: 7 },
      { path: 'app/l', type: 'symlink' as const, linkname: 'a', mode: 0o777, uid: 0, gid: 0, mtime: 8 },
    ];
    async function* later() {
      for (const s of specs) yield s;
    }
    const fromList = await collect(tarEntries(specs));
    const fromAsync = await collect(tarEntries(later()));
    assert.ok(fromList.equals(fromAsync));
    const names: [string, number][] = [];
    for await (const e of readTar(Readable.from([fromList]))) {
      names.push([e.header.name, e.header.size]);
      for await (const _ of e.body) void _;
    }
    assert.deepEqual(names, [
      ['app', 0],
      ['app/a', 6],
      ['app/b', 3000],
      ['app/c', 1],
      ['app/l', 0],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
