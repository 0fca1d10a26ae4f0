/**
 * The store's blob writer with its early writeback (syncs of what is written while the rest comes):
 * the blob is the bytes given, a writer leaves no descriptor open (committed or aborted), an
 * aborted one no temp file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

// A writer with `heldUpTo` (putLayer's, for a one-file COPY's tiny layer): written whole at commit
// when it stays under the limit, streamed like any other once it outgrows it.
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

test('a held blob under the limit is the bytes given, named by its hash, with no temp file or descriptor left', async () => {
  const store = await Store.open({ root: path.join(tmp, 'held1') });
  const fds = openFds();
  const chunks = [Buffer.from('a'.repeat(700)), Buffer.alloc(0), Buffer.from('tail')];
  const w = await store.createBlobWriter({ heldUpTo: 1024 });
  for (const c of chunks) w.stream.write(c);
  // A producer may reuse its buffer once the write called back: the blob keeps what was written.
  chunks[0]!.fill(0x7a);
  const whole = Buffer.concat([Buffer.from('a'.repeat(700)), Buffer.from('tail')]);
  assert.deepEqual(await w.commit(), { digest: digestOf(whole), size: whole.length });
  assert.ok(readFileSync(store.blobPath(digestOf(whole))).equals(whole));
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(openFds(), fds);
});

test('a held blob that outgrows its limit streams to its file and is committed whole', async () => {
  const store = await Store.open({ root: path.join(tmp, 'held2') });
  const fds = openFds();
  const chunks = Array.from({ length: 6 }, (_, i) => Buffer.alloc(300 << 10, i + 1));
  const w = await store.createBlobWriter({ hashedBy: 'producer', heldUpTo: 1 << 20 });
  await writeSlowly(w, chunks);
  const whole = Buffer.concat(chunks);
  const digest = digestOf(whole);
  assert.deepEqual(await w.commit({ digest, size: whole.length }), { digest, size: whole.length });
  assert.ok(readFileSync(store.blobPath(digest)).equals(whole));
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(openFds(), fds);
});

test('a held blob refuses a wrong size or digest and leaves nothing; an aborted one neither', async () => {
  const store = await Store.open({ root: path.join(tmp, 'held3') });
  const small = Buffer.from('small layer');
  const w1 = await store.createBlobWriter({ hashedBy: 'producer', heldUpTo: 1024 });
  w1.stream.end(small);
  await assert.rejects(w1.commit({ digest: digestOf(small), size: 1 }), /blob size mismatch/);
  const w2 = await store.createBlobWriter({ heldUpTo: 1024 });
  w2.stream.end(small);
  await assert.rejects(w2.commit({ digest: `sha256:${'0'.repeat(64)}` as Digest }), /blob digest mismatch/);
  const w3 = await store.createBlobWriter({ hashedBy: 'producer', heldUpTo: 1024 });
  await writeSlowly(w3, [Buffer.alloc(4096, 1)]); // spilled to its temp file
  await w3.abort();
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(readdirSync(path.dirname(store.blobPath(digestOf(small)))).length, 0);
});

test('a held blob already in the store is not written again (its file, synced when it came, stays)', async () => {
  const store = await Store.open({ root: path.join(tmp, 'held4') });
  const small = Buffer.from('the same small layer');
  const w1 = await store.createBlobWriter({ heldUpTo: 1024 });
  w1.stream.end(small);
  const { digest } = await w1.commit();
  const before = statSync(store.blobPath(digest)).ino;
  const w2 = await store.createBlobWriter({ heldUpTo: 1024 });
  w2.stream.end(small);
  assert.deepEqual(await w2.commit(), { digest, size: small.length });
  assert.equal(statSync(store.blobPath(digest)).ino, before);
  assert.deepEqual(readdirSync(store.tmpDir), []);
});

test('a streamed blob already in the store is not synced or renamed again, and its temp file goes', async () => {
  const store = await Store.open({ root: path.join(tmp, 'stream-again') });
  const chunks = Array.from({ length: 3 }, (_, i) => Buffer.alloc(1 << 20, i + 3));
  const whole = Buffer.concat(chunks);
  const digest = digestOf(whole);
  const w1 = await store.createBlobWriter({ hashedBy: 'producer' });
  await writeSlowly(w1, chunks);
  await w1.commit({ digest, size: whole.length });
  const before = statSync(store.blobPath(digest)).ino;
  const fds = openFds();
  const w2 = await store.createBlobWriter();
  await writeSlowly(w2, chunks);
  assert.deepEqual(await w2.commit({ size: whole.length }), { digest, size: whole.length });
  assert.equal(statSync(store.blobPath(digest)).ino, before);
  assert.deepEqual(readdirSync(store.tmpDir), []);
  assert.equal(openFds(), fds);
});

test('putLayer of a small layer: the blob and its facts written whole, no temp file left; facts lost read as none', async () => {
  const { tarEntries } = await import('../../../src/layer/index.js');
  const store = await Store.open({ root: path.join(tmp, 'small-layer') });
  const tar = tarEntries([
    { path: 'app/util.py', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: Buffer.from('x = 1\n') },
  ]);
  const info = await store.putLayer(tar, { tops: ['app'] });
  assert.equal(info.digest, info.diffId);
  assert.equal(readFileSync(store.blobPath(info.digest)).length, info.size);
  assert.deepEqual(await store.layerFacts(info.digest), {
    diffId: info.diffId,
    uncompressedSize: info.uncompressedSize,
    contentSize: 6,
    tops: ['app'],
  });
  assert.deepEqual(readdirSync(store.tmpDir), []);
  const factsDir = path.join(store.root, 'layers');
  assert.deepEqual(readdirSync(factsDir), [`${info.digest.slice('sha256:'.length)}.json`]);
  // Not fsynced: a crash may leave it empty, which reads as no facts (the callers do without).
  writeFileSync(path.join(factsDir, readdirSync(factsDir)[0]!), '');
  assert.equal(await store.layerFacts(info.digest), undefined);
});
