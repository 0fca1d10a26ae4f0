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
