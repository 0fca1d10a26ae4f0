import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { LayerSha256, OFF_THREAD_FROM, warmHashThread } from '../../../src/layer/sha256-thread.js';
import { encodeLayer } from '../../../src/layer/compress.js';

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `data` in chunks of the given sizes, cycled (odd sizes: pieces are cut by the hasher, not the source). */
function chunks(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function feed(sha: LayerSha256, parts: Buffer[]): Promise<string> {
  for (const p of parts) await sha.update(p);
  return sha.digest();
}

test('a small stream is hashed in process, whatever the worker', async () => {
  assert.equal(await warmHashThread(), true, 'the worker starts');
  const data = randomBytes(300_000);
  const sha = new LayerSha256();
  for (const p of chunks(data, [1, 4096, 77_777])) await sha.update(p);
  assert.equal(sha.where, 'held', 'under the threshold nothing is handed over');
  assert.equal(await sha.digest(), hex(data));
});

test('a big stream goes to the worker once it is up, and digests as createHash does (pieces, window, big chunks)', async () => {
  assert.equal(await warmHashThread(), true);
  // More than the window of pieces in flight, chunks both smaller and bigger than a piece.
  const data = randomBytes(OFF_THREAD_FROM + (21 << 20) + 12_345);
  const sha = new LayerSha256();
  const parts = chunks(data, [300_001, 1 << 20, (2 << 20) + 7, 511]);
  let i = 0;
  while (sha.where === 'held') await sha.update(parts[i++]!);
  assert.equal(sha.where, 'thread');
  for (; i < parts.length; i++) await sha.update(parts[i]!);
  assert.equal(await sha.digest(), hex(data));
});

test('the chunks fed stay the caller’s: changing one after it was fed does not change the digest', async () => {
  assert.equal(await warmHashThread(), true);
  const data = randomBytes(3 << 20);
  const sha = new LayerSha256(1 << 20);
  const copy = Buffer.from(data);
  for (const p of chunks(copy, [1 << 19])) await sha.update(p);
  assert.equal(sha.where, 'thread');
  copy.fill(0); // the last chunks were copied into pieces when fed
  assert.equal(await sha.digest(), hex(data));
});

test('streams hashed at once in the worker keep their own bytes', async () => {
  assert.equal(await warmHashThread(), true);
  const datas = [randomBytes(5 << 20), randomBytes((6 << 20) + 3), randomBytes(2 << 20)];
  const shas = datas.map(() => new LayerSha256(1 << 20));
  const parts = datas.map((d, i) => chunks(d, [65_536 * (i + 1) + i]));
  // Interleaved, chunk by chunk.
  for (let k = 0; parts.some((p) => k < p.length); k++)
    await Promise.all(parts.map((p, i) => (k < p.length ? shas[i]!.update(p[k]!) : undefined)));
  assert.deepEqual(await Promise.all(shas.map((s) => s.digest())), datas.map(hex));
  assert.ok(shas.every((s) => s.where === 'thread'));
});

test('an abandoned stream leaves the worker for the next one', async () => {
  assert.equal(await warmHashThread(), true);
  const gone = new LayerSha256(1 << 20);
  for (const p of chunks(randomBytes(3 << 20), [1 << 20])) await gone.update(p);
  assert.equal(gone.where, 'thread');
  gone.abandon();
  const data = randomBytes(3 << 20);
  assert.equal(await feed(new LayerSha256(1 << 20), chunks(data, [999_999])), hex(data));
});

test('encodeLayer of a plain layer bigger than the threshold: diff_id and digest as createHash gives them', async () => {
  assert.equal(await warmHashThread(), true);
  const data = randomBytes(OFF_THREAD_FROM * 2 + 512);
  const dest = new PassThrough();
  const got: Buffer[] = [];
  dest.on('data', (c: Buffer) => got.push(c));
  const info = await encodeLayer(Readable.from(chunks(data, [1 << 20])), dest, { compression: 'none' });
  assert.equal(info.diffId, `sha256:${hex(data)}`);
  assert.equal(info.digest, info.diffId);
  assert.equal(info.size, data.length);
  assert.ok(Buffer.concat(got).equals(data), 'the bytes written are the input');
});

test('a started worker with no layer to hash does not keep the process alive', () => {
  const src = `import { warmHashThread } from ${JSON.stringify(new URL('../../../src/layer/sha256-thread.js', import.meta.url).href)};
if (!(await warmHashThread())) process.exit(3);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { timeout: 20_000 });
  assert.equal(r.signal, null, 'the process ended by itself (not killed at the timeout)');
  assert.equal(r.status, 0, r.stderr.toString());
});
