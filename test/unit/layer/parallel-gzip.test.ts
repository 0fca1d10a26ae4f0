import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { crc32, gunzipSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { encodeLayer } from '../../../src/layer/compress.js';
import { crc32Combine, GZIP_BLOCK, makeBlockEncoder } from '../../../src/layer/gzip-block.js';
import { nativeAddon } from '../../../src/util/index.js';
import { DeflatePool } from '../../../src/layer/deflate-pool.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function gzip(
  data: Buffer,
  threads: number,
  chunk = 70_001,
  level?: number,
): Promise<{ out: Buffer; digest: string }> {
  const dest = new PassThrough();
  const chunks: Buffer[] = [];
  dest.on('data', (c: Buffer) => chunks.push(c));
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const info = await encodeLayer(Readable.from(parts), dest, {
    compression: 'gzip',
    threads,
    ...(level !== undefined ? { level } : {}),
  });
  const out = Buffer.concat(chunks);
  assert.equal(info.digest, sha(out), 'the digest is the bytes written');
  assert.equal(info.size, out.length);
  assert.equal(info.diffId, sha(data));
  assert.equal(info.uncompressedSize, data.length);
  return { out, digest: info.digest };
}

/** One gzip member: a 10-byte header, one deflate stream up to the 8-byte trailer (CRC-32, size). */
function assertOneMember(out: Buffer, data: Buffer): void {
  assert.deepEqual([out[0], out[1], out[2]], [0x1f, 0x8b, 8], 'a gzip header');
  assert.ok(inflateRawSync(out.subarray(10, out.length - 8)).equals(data), 'one deflate stream holds it all');
  assert.equal(out.readUInt32LE(out.length - 8), crc32(data) >>> 0, 'the trailer has the CRC-32 of the input');
  assert.equal(out.readUInt32LE(out.length - 4), data.length % 2 ** 32);
}

function readers(out: Buffer, data: Buffer, what: string): void {
  assert.ok(gunzipSync(out).equals(data), `${what}: node's gunzip`);
  for (const [cmd, args] of [
    ['gzip', ['-t']],
    ['gzip', ['-dc']],
    ['pigz', ['-dc']],
    ['zcat', []],
  ] as const) {
    const r = spawnSync(cmd, [...args], { input: out, maxBuffer: 1 << 28 });
    assert.equal(r.error, undefined, `${cmd} is installed (apt-get install gzip pigz)`);
    assert.equal(r.status, 0, `${what}: ${cmd} ${args.join(' ')}: ${r.stderr.toString()}`);
    if (args[0] !== '-t') assert.ok(r.stdout.equals(data), `${what}: ${cmd} gives the input back`);
  }
}

const text = (n: number) => {
  const lines: string[] = [];
  for (let i = 0, len = 0; len < n; i++) {
    const l = `${i} ${(i * 7919) % 1013} usr/lib/python3/dist-packages/pkg${i % 97}/module.py\n`;
    lines.push(l);
    len += l.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
};

test('parallel gzip: 1, 2 and 4 threads write the same bytes, one gzip member that gzip, pigz, zcat and node read', async () => {
  const inputs: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    tiny: Buffer.from('k'),
    'one block exactly': text(GZIP_BLOCK),
    compressible: text(3 << 20),
    random: randomBytes(3 << 20),
    mixed: Buffer.concat([text(1 << 20), randomBytes(700_000), Buffer.alloc(900_000, 0), text(333_333)]),
  };
  for (const [name, data] of Object.entries(inputs)) {
    const runs = [await gzip(data, 1), await gzip(data, 2), await gzip(data, 4), await gzip(data, 2, 1 << 20)];
    for (const r of runs.slice(1))
      assert.ok(r.out.equals(runs[0]!.out), `${name}: the same bytes whatever the threads`);
    assertOneMember(runs[0]!.out, data);
    readers(runs[0]!.out, data, name);
  }
});

test('parallel gzip: compresses as gzip does at the same level (dictionary across blocks), stores what does not compress', async () => {
  const data = text(4 << 20);
  // The default (libdeflate's level 2, no bigger than zlib's 4) and zlib's level 6, each against GNU gzip at 4 and 6.
  for (const level of [undefined, 6]) {
    const { out } = await gzip(data, 2, 70_001, level);
    const ref = spawnSync('gzip', [`-${level ?? 4}`, '-c'], { input: data, maxBuffer: 1 << 28 }).stdout;
    assert.ok(out.length <= ref.length * 1.02, `within 2% of gzip -${level ?? 4} (${out.length} for ${ref.length})`);
  }
  const noise = randomBytes(2 << 20);
  const stored = (await gzip(noise, 2)).out.length;
  assert.ok(stored <= noise.length * 1.0003, `random data is stored (${stored} for ${noise.length})`);
});

test('crc32Combine: the CRC-32 of A·B from the CRCs of A and B', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
      const A = Buffer.from(a);
      const B = Buffer.from(b);
      assert.equal(crc32Combine(crc32(A), crc32(B), B.length), crc32(Buffer.concat([A, B])) >>> 0);
    }),
    { numRuns: 300 },
  );
  // Lengths past 2^31: the bit loop must not use 32-bit shifts on the length.
  const zeros = (n: number) => {
    let c = 0;
    const mib = Buffer.alloc(1 << 20);
    for (let i = 0; i < n; i++) c = crc32(mib, c);
    return c >>> 0;
  };
  assert.equal(
    crc32Combine(crc32(Buffer.from('x')), zeros(3), 3 << 20),
    crc32(Buffer.alloc(3 << 20), crc32(Buffer.from('x'))) >>> 0,
  );
  const big = 2 ** 32 + 5;
  assert.equal(
    crc32Combine(crc32Combine(0, 0, 2 ** 32), 0, 5),
    crc32Combine(0, 0, big),
    'combining splits consistently',
  );
});

test('parallel gzip (property): any mix of runs, random and text, any chunking: same bytes for 1 and 2 threads, round trip', async () => {
  const textPool = text(250_000);
  const noisePool = randomBytes(150_000);
  const segment = fc.oneof(
    fc.record({
      kind: fc.constant('byte' as const),
      n: fc.integer({ min: 0, max: 200_000 }),
      v: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('random' as const), n: fc.integer({ min: 0, max: 150_000 }), v: fc.constant(0) }),
    fc.record({ kind: fc.constant('text' as const), n: fc.integer({ min: 0, max: 250_000 }), v: fc.constant(0) }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(segment, { maxLength: 6 }),
      fc.integer({ min: 4096, max: 200_000 }),
      async (segs, chunk) => {
        const data = Buffer.concat(
          segs.map((s) =>
            s.kind === 'byte'
              ? Buffer.alloc(s.n, s.v)
              : s.kind === 'random'
                ? noisePool.subarray(0, s.n)
                : textPool.subarray(0, s.n),
          ),
        );
        const one = await gzip(data, 1, chunk);
        const two = await gzip(data, 2, 65_536);
        assert.ok(one.out.equals(two.out));
        assertOneMember(one.out, data);
      },
    ),
    { numRuns: 15 },
  );
});

test('deflate pool: a block comes back from its worker as a spare of the same size, its bytes as they were', async () => {
  const pool = new DeflatePool(1);
  const input = randomBytes(GZIP_BLOCK);
  const block = Buffer.allocUnsafeSlow(GZIP_BLOCK);
  input.copy(block);
  const r = await pool.encode(block, undefined, { library: 'zlib', level: 6 });
  assert.equal(block.buffer.byteLength, 0, 'the block moved to the worker');
  assert.ok(r.spare, 'the block came back');
  assert.equal(r.spare.length, GZIP_BLOCK);
  assert.ok(r.spare.equals(input));
  assert.ok(inflateRawSync(r.data, { finishFlush: 2 }).equals(input));
  assert.equal(r.crc, crc32(input));
});

test("deflate pool: a worker deflates with libdeflate (kiln's addon) to the bytes the main thread gives", async () => {
  const pool = new DeflatePool(1);
  const input = text(GZIP_BLOCK);
  const block = Buffer.allocUnsafeSlow(GZIP_BLOCK);
  input.copy(block);
  const method = { library: 'libdeflate' as const, level: 2 };
  const r = await pool.encode(block, undefined, method);
  const here = makeBlockEncoder(zlib, (b, l) => nativeAddon().addon.deflateBlock(b, l)).encodeSync(
    input,
    undefined,
    method,
  );
  assert.ok(r.data.equals(here.data), 'the same bytes in a worker and here');
  assert.equal(r.crc, here.crc);
  assert.ok(inflateRawSync(r.data, { finishFlush: 2 }).equals(input));
});
