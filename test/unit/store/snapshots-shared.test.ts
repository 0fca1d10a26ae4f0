/**
 * store.snapshots: a snapshot this process is already making (the engine starts a step's ahead of
 * the RUN that needs it) is waited for by a second caller, not unpacked again beside it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-snapshots-shared-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('two calls at once unpack each layer once and both get its snapshot', async () => {
  const store = await Store.open({ root: path.join(tmp, 'once') });
  const img = await writeSmallImage(store, 'example.com/shared:1', [{ 'a.txt': 'alpha' }, { 'b.txt': 'beta' }]);
  const ids = img.config.rootfs.diff_ids;
  const opened: string[] = [];
  const openBlob = store.openBlob.bind(store);
  store.openBlob = (digest) => {
    opened.push(digest);
    return openBlob(digest);
  };
  const [first, second] = await Promise.all([
    store.snapshots(img.manifest.layers, ids),
    store.snapshots(img.manifest.layers, ids),
  ]);
  assert.deepEqual(second, first);
  assert.deepEqual(
    opened,
    img.manifest.layers.map((l) => l.digest),
    'each blob read once',
  );
  assert.equal(readFileSync(path.join(first[1]!, 'b.txt'), 'utf8'), 'beta');
  const snapshotsDir = path.dirname(first[0]!);
  assert.deepEqual(
    readdirSync(snapshotsDir).filter((n) => n.startsWith('tmp-')),
    [],
    'no second unpack left behind',
  );
  // Made: a later call reads no blob.
  await store.snapshots(img.manifest.layers, ids);
  assert.equal(opened.length, 2);
});

test('a failed making is not remembered: the next call makes the snapshot again and says why it fails', async () => {
  const store = await Store.open({ root: path.join(tmp, 'failed') });
  const img = await writeSmallImage(store, 'example.com/shared:2', [{ 'a.txt': 'alpha' }]);
  const ids = img.config.rootfs.diff_ids;
  const openBlob = store.openBlob.bind(store);
  let failing = true;
  store.openBlob = (digest) => {
    if (failing) throw new Error('blob unreadable');
    return openBlob(digest);
  };
  await assert.rejects(store.snapshots(img.manifest.layers, ids), /blob unreadable/);
  await assert.rejects(store.snapshots(img.manifest.layers, ids), /blob unreadable/, 'tried again, same error');
  failing = false;
  const [dir] = await store.snapshots(img.manifest.layers, ids);
  assert.equal(readFileSync(path.join(dir!, 'a.txt'), 'utf8'), 'alpha');
});
