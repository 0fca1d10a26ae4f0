import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { encodeLayer } from '../../../src/layer/compress.js';
import { measureLayer } from '../../../src/layer/measure.js';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../../../src/layer/tarformat.js';
import { tarEntries } from '../../../src/layer/write.js';
import { IncomingLayer } from '../../../src/store/compressed.js';
import type { Compression } from '../../../src/image/types.js';

async function blob(tar: Buffer, compression: Compression): Promise<Buffer> {
  const dest = new PassThrough();
  const out: Buffer[] = [];
  dest.on('data', (c: Buffer) => out.push(c));
  await encodeLayer(Readable.from([tar]), dest, { compression });
  return Buffer.concat(out);
}

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function feed(incoming: IncomingLayer, data: Buffer, chunk = 65_536): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) await incoming.write(data.subarray(i, i + chunk));
}

const sampleTar = () =>
  collect(
    tarEntries(
      Array.from({ length: 40 }, (_, i) => ({
        path: `usr/share/f${i}`,
        type: 'file' as const,
        content: i % 2 ? randomBytes(50_000) : Buffer.from(`file ${i}\n`.repeat(5_000)),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
      })),
    ),
  );

test('IncomingLayer: a layer measured as it arrives (gzip, zstd, plain) gives what measureLayer gives reading it again', async () => {
  const tar = await sampleTar();
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    const data = await blob(tar, compression);
    const incoming = new IncomingLayer();
    await feed(incoming, data, 10_007);
    const got = await incoming.measured();
    const again = await measureLayer(Readable.from([data]));
    assert.deepEqual(got, { diffId: again.diffId, uncompressedSize: again.uncompressedSize }, compression);
  }
});

test('IncomingLayer: a download that starts over (a registry ignoring Range) is measured from its first byte', async () => {
  const data = await blob(await sampleTar(), 'gzip');
  const incoming = new IncomingLayer();
  await feed(incoming, data.subarray(0, data.length >> 1));
  incoming.restart();
  await feed(incoming, data);
  const again = await measureLayer(Readable.from([data]));
  assert.equal((await incoming.measured())?.diffId, again.diffId);
});

test('IncomingLayer: a blob that is no layer gives no measure, and does not hold the download', async () => {
  const garbage = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(8 << 20)]); // a broken gzip
  const escaping = Buffer.concat([
    encodeHeader({ name: '../x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0 }),
    Buffer.from('abc'),
    padding(3),
    END_OF_ARCHIVE,
  ]);
  for (const [what, data] of [
    ['corrupt gzip', garbage],
    ['random bytes', randomBytes(8 << 20)],
    ['an entry leaving the root', await blob(escaping, 'gzip')],
  ] as const) {
    const incoming = new IncomingLayer();
    await feed(incoming, data); // returns: 8 MiB is far more than the measure buffers
    assert.equal(await incoming.measured(), undefined, what);
  }
});
