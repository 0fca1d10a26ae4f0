import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { copyImageToStore, openStoreImage, storeImage } from '../../../src/store/image.js';
import { openLayer } from '../../../src/layer/decompress.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { sha256 } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';
import type { Image } from '../../../src/image/image.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-store-image-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function bytes(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every file of a layer: path → content. */
async function layerFiles(img: Image, i: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const { header, body } of readTar(openLayer(img.layers[i]!.open()))) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    out[header.name] = Buffer.concat(chunks).toString();
  }
  return out;
}

test('a store image as an Image: manifest, config and layers are the stored ones, read in place', async () => {
  const store = await Store.open({ root: path.join(tmp, 'a') });
  const loaded = await writeSmallImage(store, 'example.com/small:1', [{ 'a.txt': 'alpha' }, { 'b.txt': 'beta' }]);
  const img = await openStoreImage(store, 'example.com/small:1');
  assert.equal(img.kind, 'store');
  assert.equal(img.name, 'example.com/small:1');
  assert.equal(img.display, 'example.com/small:1');
  assert.equal(img.id, loaded.id);
  assert.equal(img.digest, loaded.descriptor.digest);
  assert.deepEqual(img.descriptor, loaded.descriptor);
  assert.equal(sha256(await img.rawConfig()), img.id);
  assert.equal(sha256(await img.rawManifest!()), img.digest);
  assert.equal(img.layers.length, 2);
  for (const [i, l] of img.layers.entries()) {
    assert.equal(l.index, i);
    assert.equal(l.diffId, loaded.config.rootfs.diff_ids[i]);
    assert.equal(l.digest, loaded.manifest.layers[i]!.digest);
    assert.equal(sha256(await bytes(l.open())), l.digest, 'the blob as stored');
    assert.equal(l.file?.path, store.blobPath(l.digest!));
    assert.equal(l.file!.end - l.file!.start + 1, l.size);
    assert.ok(l.uncompressedSize! > 0 && l.contentSize !== undefined, 'the store facts are given, not measured');
  }
  // History pairs with layers, the empty ENV entry skipped (docker's rule).
  assert.equal(img.layers[0]!.history?.created_by, 'COPY layer0 /');
  assert.equal(img.layers[1]!.history?.created_by, 'COPY layer1 /');
  assert.deepEqual(await layerFiles(img, 1), { 'b.txt': 'beta' });
  // By id too; and storeImage of a loaded image gives the same.
  const byId = await openStoreImage(store, loaded.id);
  assert.equal(byId.digest, img.digest);
  assert.equal((await storeImage(store, loaded)).display, 'example.com/small:1');
  await assert.rejects(openStoreImage(store, 'example.com/absent:1'), (e: unknown) => {
    return e instanceof KilnError && e.code === 'NOT_FOUND';
  });
});

test('copyImageToStore: an Image held elsewhere lands in another store with the same digests, verified', async () => {
  const a = await Store.open({ root: path.join(tmp, 'src') });
  const b = await Store.open({ root: path.join(tmp, 'dst') });
  await writeSmallImage(a, 'example.com/copy:1', [{ x: 'one' }, { y: 'two' }], 'none');
  const img = await openStoreImage(a, 'example.com/copy:1');
  // Seen from b, an Image of a's is foreign: present it so (as an archive's or a registry's would be).
  const foreign: Image = { ...img, kind: 'archive' };
  const copied = await copyImageToStore(b, foreign);
  assert.equal(copied.descriptor.digest, img.digest);
  assert.equal(copied.id, img.id);
  for (const l of img.layers) assert.ok(await b.hasBlob(l.digest!));
  assert.ok(await b.hasBlob(img.digest!));
  assert.deepEqual(await b.listImages(), [], 'nothing is tagged');
  // A layer whose bytes are not its digest's is refused, and nothing of it is kept.
  const c = await Store.open({ root: path.join(tmp, 'bad') });
  const lying: Image = {
    ...foreign,
    layers: foreign.layers.map((l, i) => (i === 1 ? { ...l, open: foreign.layers[0]!.open } : l)),
  };
  await assert.rejects(copyImageToStore(c, lying), (e: unknown) => e instanceof KilnError && e.code === 'DIGEST');
  assert.equal(await c.hasBlob(img.layers[1]!.digest!), false);
});

test('setTag: a name that already says this descriptor is left as it is (no write); another one moves', async () => {
  const store = await Store.open({ root: path.join(tmp, 'retag') });
  const a = await writeSmallImage(store, 'example.com/re:a', [{ 'a.txt': 'a' }]);
  const b = await writeSmallImage(store, 'example.com/re:b', [{ 'b.txt': 'b' }]);
  await store.setTag('example.com/re:x', a.descriptor);
  const index = path.join(store.root, 'index.json');
  const before = statSync(index);
  await store.setTag('example.com/re:x', a.descriptor);
  const same = statSync(index);
  assert.equal(same.ino, before.ino, 'index.json not replaced');
  assert.equal(same.mtimeMs, before.mtimeMs);
  await store.setTag('example.com/re:x', b.descriptor);
  assert.notEqual(statSync(index).ino, before.ino);
  assert.equal((await store.tagged('example.com/re:x'))?.digest, b.descriptor.digest);
  // Other annotations are part of what the name says: a different set is written.
  await store.setTag('example.com/re:x', { ...b.descriptor, annotations: { 'org.example.n': '1' } });
  assert.equal((await store.tagged('example.com/re:x'))?.annotations?.['org.example.n'], '1');
});
