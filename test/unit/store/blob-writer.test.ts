/**
 * The store's blob writer with its early writeback (syncs of what is written while the rest comes):
 * the blob is the bytes given, a writer leaves no descriptor open (committed or aborted), an
 * aborted one no temp file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../../src/store/store.js';
import { type Digest } from '../../../src/util/digest.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-blobwriter-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const openFds = () => readdirSync('/proc/self/fd').length;

async function writeSlowly(w: { stream: NodeJS.WritableStream }, chunks: Buffer[]): Promise<void> {
  for (const b of chunks) {
    if (!w.stream.write(b)) await new Promise((r) => w.stream.once('drain', r));
    await sleep(15); // a producer slower than the writeback's poll: syncs start meanwhile
  }
}

test('a blob written over time (synced as it grows) is committed whole, and no descriptor stays open', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store') });
  const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1 << 20, i + 1));
  const fds = openFds();
  const w = await store.createBlobWriter({ hashedBy: 'producer' });
  await writeSlowly(w, chunks);
  const whole = Buffer.concat(chunks);
  const digest = `sha256:${createHash('sha256').update(whole).digest('hex')}` as Digest;
  assert.deepEqual(await w.commit({ digest, size: whole.length }), { digest, size: whole.length });
  assert.ok(readFileSync(store.blobPath(digest)).equals(whole));
  assert.equal(openFds(), fds);
});

test('an aborted blob leaves neither its temp file nor a descriptor', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store2') });
  const fds = openFds();
  const w = await store.createBlobWriter({ hashedBy: 'producer' });
  await writeSlowly(
    w,
    Array.from({ length: 10 }, () => Buffer.alloc(1 << 20, 7)),
  );
  await w.abort();
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(openFds(), fds);
});

test('a commit whose size is not the one written fails as before, and leaves nothing', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store3') });
  const fds = openFds();
  const w = await store.createBlobWriter({ hashedBy: 'producer' });
  await writeSlowly(w, [Buffer.alloc(5 << 20, 1)]);
  await assert.rejects(w.commit({ digest: `sha256:${'0'.repeat(64)}` as Digest, size: 1 }), /blob size mismatch/);
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(openFds(), fds);
});
