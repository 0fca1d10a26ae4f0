import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { encodeLayer } from '../../../src/layer/compress.js';

async function encode(data: Buffer): Promise<{ out: Buffer; info: Awaited<ReturnType<typeof encodeLayer>> }> {
  const dest = new PassThrough();
  const chunks: Buffer[] = [];
  dest.on('data', (c: Buffer) => chunks.push(c));
  // Odd chunk sizes: blocks are cut by the encoder, not by the source.
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += 300_001) parts.push(data.subarray(i, i + 300_001));
  const info = await encodeLayer(Readable.from(parts), dest, { compression: 'gzip' });
  return { out: Buffer.concat(chunks), info };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('gzip layer: random blocks are stored, text blocks deflated; digests, sizes and content are right', async () => {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(60_000)); // ~2.6 MB
  const noise = randomBytes(3 << 20);
  const data = Buffer.concat([text, noise, text.subarray(0, 100_000)]);
  const { out, info } = await encode(data);
  assert.deepEqual(gunzipSync(out), data, 'gunzip gives the input back');
  const z = spawnSync('gzip', ['-dc'], { input: out, maxBuffer: 1 << 26 });
  assert.equal(z.status, 0, 'gzip(1) reads it');
  assert.ok(z.stdout.equals(data));
  assert.equal(info.diffId, sha(data));
  assert.equal(info.digest, sha(out));
  assert.equal(info.size, out.length);
  assert.equal(info.uncompressedSize, data.length);
  // Stored noise costs a few bytes per 64 KiB; deflated text shrinks to a few percent.
  const noiseOnly = (await encode(noise)).out.length;
  assert.ok(
    noiseOnly <= noise.length * 1.00025,
    `random data is stored, not inflated by deflate (${noiseOnly} for ${noise.length})`,
  );
  assert.ok(noiseOnly > noise.length, 'and not compressed either: it cannot be');
  const textOnly = (await encode(text)).out.length;
  assert.ok(textOnly < text.length / 20, `text is still deflated (${textOnly} for ${text.length})`);
});

test('gzip layer: the same bytes give the same blob (the store/skip choice depends only on content)', async () => {
  const data = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 20, 7), randomBytes(700_000)]);
  const a = await encode(data);
  const b = await encode(data);
  assert.equal(a.info.digest, b.info.digest);
  assert.ok(a.out.equals(b.out));
});

test('zstd without the zstd program: node:zlib encodes it where node has zstd (22.15+), else a clear error; openLayer reads it back', async () => {
  const { nodeZstd, openLayer } = { ...(await import('../../../src/layer/decompress.js')) };
  const data = Buffer.concat([Buffer.from('kiln zstd '.repeat(50_000)), randomBytes(200_000)]);
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent'; // no zstd program to find
  try {
    const dest = new PassThrough();
    const chunks: Buffer[] = [];
    dest.on('data', (c: Buffer) => chunks.push(c));
    const run = encodeLayer(Readable.from([data]), dest, { compression: 'zstd', level: 3 });
    if (!nodeZstd.createZstdCompress) {
      await assert.rejects(run, /zstd compression needs the zstd program \(apt-get install zstd\) or Node\.js 22\.15/);
      return;
    }
    const info = await run;
    const out = Buffer.concat(chunks);
    assert.equal(info.digest, sha(out));
    assert.equal(info.diffId, sha(data));
    assert.ok(out.length < data.length, 'compressed');
    process.env.PATH = saved;
    const z = spawnSync('zstd', ['-dc'], { input: out, maxBuffer: 1 << 26 });
    assert.equal(z.status, 0, 'the zstd program reads what node wrote');
    assert.ok(z.stdout.equals(data));
    // openLayer decodes it in process (node's zstd), with no zstd program on the PATH either.
    process.env.PATH = '/nonexistent';
    const back: Buffer[] = [];
    for await (const c of openLayer(Readable.from([out]))) back.push(c as Buffer);
    assert.ok(Buffer.concat(back).equals(data));
  } finally {
    process.env.PATH = saved;
  }
});
