import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { encodeHeader, padding, END_OF_ARCHIVE, type TarHeader } from '../../../src/layer/tarformat.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { TarScanner } from '../../../src/analyze/tarscan.js';

function entry(h: Partial<TarHeader> & { name: string }, body = Buffer.alloc(0)): Buffer {
  const header: TarHeader = { type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1700000000, ...h };
  return Buffer.concat([encodeHeader(header), body, padding(body.length)]);
}

const long = `deep/${'d'.repeat(120)}/file.txt`;
const tar = Buffer.concat([
  entry({ name: 'etc', type: 'directory', size: 0, mode: 0o755 }),
  entry({ name: 'etc/os-release' }, Buffer.from('ID=debian\n')),
  entry({ name: long }, Buffer.alloc(1500, 7)),
  entry({ name: 'bin/sh', type: 'symlink', size: 0, linkname: `${'x'.repeat(150)}/dash` }),
  entry({ name: 'caps', xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2]) } }, Buffer.from('x')),
  entry({ name: 'etc/.wh.old' }),
  entry({ name: 'empty' }),
  END_OF_ARCHIVE,
  Buffer.alloc(1024, 0xff), // garbage after the end marker is never parsed
]);

async function viaReadTar(buf: Buffer) {
  const out: string[] = [];
  for await (const { header, body } of readTar(Readable.from([buf.subarray(0, buf.length - 1024)]))) {
    const h = createHash('sha256');
    for await (const c of body) h.update(c);
    out.push(
      `${header.name} ${header.type} ${header.size} ${header.linkname ?? ''} ${Object.keys(header.xattrs ?? {}).join(',')} ${h.digest('hex')}`,
    );
  }
  return out;
}

function viaScanner(buf: Buffer, chunk: number): string[] {
  const out: string[] = [];
  const s = new TarScanner((header) => {
    const h = createHash('sha256');
    return {
      data: (c) => h.update(c),
      end: () =>
        out.push(
          `${header.name} ${header.type} ${header.size} ${header.linkname ?? ''} ${Object.keys(header.xattrs ?? {}).join(',')} ${h.digest('hex')}`,
        ),
    };
  });
  for (let i = 0; i < buf.length; i += chunk) s.write(buf.subarray(i, i + chunk));
  s.end();
  return out;
}

test('the push parser sees what readTar sees, whatever the chunk boundaries', async () => {
  const want = await viaReadTar(tar);
  assert.equal(want.length, 7);
  for (const size of [1, 3, 100, 511, 512, 513, 4096, tar.length])
    assert.deepEqual(viaScanner(tar, size), want, `chunks of ${size}`);
});

test('bodies nobody asks for are skipped; a truncated entry is an error', () => {
  const names: string[] = [];
  const s = new TarScanner((h) => {
    names.push(h.name);
    return undefined;
  });
  s.write(tar);
  s.end();
  assert.equal(names.length, 7);
  const cut = new TarScanner(() => undefined);
  cut.write(tar.subarray(0, 512 * 3 + 100));
  assert.throws(() => cut.end(), /unexpected end of tar stream/);
});

test('the fast header path decodes exactly what decodeHeader does (property test)', async () => {
  const fc = await import('fast-check');
  const { decodeHeader } = await import('../../../src/layer/tarformat.js');
  const { fastHeader } = await import('../../../src/analyze/tarscan.js');
  const seg = fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/);
  fc.assert(
    fc.property(
      fc.array(seg, { minLength: 1, maxLength: 6 }),
      fc.constantFrom('file', 'directory', 'symlink', 'hardlink', 'fifo', 'chardev'),
      fc.nat({ max: 0o7777 }),
      fc.nat({ max: 65535 }),
      fc.nat({ max: 2 ** 33 }),
      fc.nat({ max: 2 ** 33 }),
      (parts, type, mode, uid, size, mtime) => {
        const name = parts.join('/');
        const t = type as TarHeader['type'];
        const h: TarHeader = {
          name,
          type: t,
          mode,
          uid,
          gid: uid,
          size: t === 'file' ? size : 0,
          mtime,
          uname: 'u',
          gname: 'g',
        };
        if (t === 'symlink' || t === 'hardlink') h.linkname = `../${parts[0]}`;
        const enc = encodeHeader(h);
        const main = enc.subarray(enc.length - 512);
        const slow = decodeHeader(main, new Map());
        const fast = fastHeader(main);
        if (enc.length > 512) return fast === undefined || slow === undefined || fast !== 'end'; // PAX-prefixed: slow path decides
        assert.ok(slow && fast && fast !== 'end');
        const { uname: _u, gname: _g, ...want } = slow.header;
        assert.deepEqual(fast, want);
        return true;
      },
    ),
    { numRuns: 300 },
  );
  const bad = Buffer.from(encodeHeader({ name: 'x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 }));
  bad[0] = 0x79; // checksum no longer matches: the slow path must see it (and throw)
  assert.equal(fastHeader(bad), undefined);
  assert.equal(fastHeader(Buffer.alloc(512)), 'end');
});
