import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { chunkReturn } from '../../../src/layer/chunk-return.js';
import { encodeLayer } from '../../../src/layer/compress.js';
import { tarDirectory } from '../../../src/layer/write.js';

/**
 * A tree of ~6 MB in files of many sizes (so the writer's 1 MiB chunks end at different places and
 * a reused chunk is written shorter or longer than before), of bytes that differ per file: any
 * byte left over from a chunk's earlier use would show in the tar.
 */
function makeTree(root: string): void {
  let n = 0;
  for (let d = 0; d < 12; d++) {
    const dir = path.join(root, `d${d}`);
    mkdirSync(dir);
    for (let f = 0; f < 40; f++, n++) {
      const size = [0, 1, 511, 512, 513, 4000, 25_000, 70_000, 200_000, 262_144, 262_145][(n * 7) % 11]!;
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i += 32) createHash('sha256').update(`${n}:${i}`).digest().copy(body, i);
      writeFileSync(path.join(dir, `f${f}`), body);
    }
  }
}

/** Compared by digest: a failing deepEqual of megabytes would spend minutes on its message. */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function plainTar(root: string, giveBack: (reader: (b: Buffer) => void, b: Buffer) => void): Promise<string> {
  const tar = tarDirectory(root, { sourceDateEpoch: 0 });
  const back = chunkReturn(tar);
  assert.ok(back, 'the tar writer takes its chunks back');
  const parts: Buffer[] = [];
  for await (const chunk of tar) {
    parts.push(Buffer.from(chunk as Buffer)); // a copy: the chunk itself may be reused
    giveBack(back, chunk as Buffer);
  }
  return sha(Buffer.concat(parts));
}

test('chunks handed back to the tar writer are reused without changing a byte', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kiln-chunk-return-'));
  try {
    makeTree(root);
    const kept = await plainTar(root, () => undefined);
    // Every chunk back at once, as the gzip encoder does once it copied it.
    assert.equal(await plainTar(root, (back, b) => back(b)), kept);
    // Twice, a part of one, a copy of one, a foreign buffer: ignored, the bytes the same.
    assert.equal(
      await plainTar(root, (back, b) => {
        back(b.subarray(0, b.length >> 1));
        back(Buffer.from(b));
        back(Buffer.alloc(b.length));
        back(b);
        back(b);
      }),
      kept,
    );
    // The gzip encoder, which hands every chunk back: the tar it compressed is the same tar.
    const gz: Buffer[] = [];
    const sink = new Writable({
      write: (c: Buffer, _e, cb) => {
        gz.push(c);
        cb();
      },
    });
    const info = await encodeLayer(tarDirectory(root, { sourceDateEpoch: 0 }), sink, {
      compression: 'gzip',
      threads: 2,
    });
    const tar = gunzipSync(Buffer.concat(gz));
    assert.ok(tar.length > 5_000_000);
    assert.equal(sha(tar), kept);
    assert.equal(info.diffId, `sha256:${kept}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
