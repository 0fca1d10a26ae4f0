/** The worker-thread gunzip (compiled code only: the worker is a .js file) yields exactly the tar. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { encodeLayer } from '../../../src/layer/compress.js';
import { LayerReader } from '../../../src/analyze/inflate.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-inflate-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('multi-member gzip from encodeLayer: the pumped bytes hash to the diff_id; corrupt data is an INVALID error', async () => {
  const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(5 << 20, 1), randomBytes(12345)]);
  const file = path.join(work, 'layer.gz');
  const info = await encodeLayer(Readable.from([data]), createWriteStream(file), { compression: 'gzip' });
  const reader = new LayerReader();
  try {
    const layer = {
      index: 0,
      diffId: info.diffId,
      file: { path: file, start: 0, end: statSync(file).size - 1 },
      open: () => Readable.from([readFileSync(file)]),
    };
    const h = createHash('sha256');
    let n = 0;
    await reader.pump(layer, (c) => {
      h.update(c);
      n += c.length;
    });
    assert.equal(`sha256:${h.digest('hex')}`, info.diffId);
    assert.equal(n, data.length);
    // Twice with the same worker, and a range inside a bigger file.
    const padded = path.join(work, 'padded');
    writeFileSync(padded, Buffer.concat([Buffer.from('HEAD'), readFileSync(file), Buffer.from('TAIL')]));
    const h2 = createHash('sha256');
    await reader.pump({ ...layer, file: { path: padded, start: 4, end: 4 + statSync(file).size - 1 } }, (c) =>
      h2.update(c),
    );
    assert.equal(`sha256:${h2.digest('hex')}`, info.diffId);
    const bad = Buffer.from(readFileSync(file));
    bad.fill(0x55, 200, 4000);
    writeFileSync(path.join(work, 'bad.gz'), bad);
    await assert.rejects(
      reader.pump(
        { ...layer, file: { path: path.join(work, 'bad.gz'), start: 0, end: bad.length - 1 } },
        () => undefined,
      ),
      (e: Error & { code?: string }) => e.code === 'INVALID' && /corrupt gzip layer/.test(e.message),
    );
  } finally {
    await reader.close();
  }
});
