import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { inflateRawSync } from 'node:zlib';
import { WORKER_SOURCE } from '../../../src/layer/deflate-pool.js';
import { nativeAddon } from '../../../src/util/native-addon.js';

/** One block through a gzip worker given `addon` as the addon's path and the main thread's open fd. */
function encodeInWorker(addon: string, block: Buffer): Promise<{ data?: Uint8Array; error?: string }> {
  const { fd } = nativeAddon();
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon, fd } });
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { data?: Uint8Array; error?: string }) => {
      void worker.terminate();
      resolve(m);
    });
    worker.once('error', reject);
    worker.postMessage({ block, method: { library: 'libdeflate', level: 2 } });
  });
}

const block = Buffer.from('kiln '.repeat(20_000));

test('a gzip worker loads the addon by its path', async () => {
  const r = await encodeInWorker(nativeAddon().file, Buffer.from(block));
  assert.equal(r.error, undefined);
  // Not final: inflate it with the end of a stream appended (an empty final stored block).
  const data = Buffer.concat([Buffer.from(r.data!), Buffer.from([1, 0, 0, 0xff, 0xff])]);
  assert.deepEqual(inflateRawSync(data), block);
});

test('a gzip worker whose path to the addon is gone (host-root: / emptied around a RUN) loads the same file through the main thread’s open fd', async () => {
  const r = await encodeInWorker('/nonexistent/kiln_native.node', Buffer.from(block));
  assert.equal(r.error, undefined);
  const data = Buffer.concat([Buffer.from(r.data!), Buffer.from([1, 0, 0, 0xff, 0xff])]);
  assert.deepEqual(inflateRawSync(data), block);
});
