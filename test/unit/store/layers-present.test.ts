import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { MediaType, type Descriptor } from '../../../src/image/index.js';
import { sha256 } from '../../../src/util/digest.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-present-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('layersPresent: blobs looked at; with a set of layers found before, those are not looked at again', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store') });
  const blobs = await Promise.all(['a', 'b'].map((x) => store.putBlob(`layer ${x}`)));
  // Not plain tars (gzip media type): only a blob makes them present, never a snapshot.
  const layers: Descriptor[] = blobs.map((b) => ({ mediaType: MediaType.OciLayerGzip, ...b }));
  const diffIds = [sha256('tar a'), sha256('tar b')];
  const found = new Set<string>();
  assert.equal(await store.layersPresent(layers, diffIds, found), true);
  assert.equal(found.size, 2);
  rmSync(store.blobPath(blobs[1]!.digest));
  // Without the set the missing blob is seen; with it, the layer found before counts as present.
  assert.equal(await store.layersPresent(layers, diffIds), false);
  assert.equal(await store.layersPresent(layers, diffIds, found), true);
  // A layer not found yet is looked at: the missing one is not added.
  const fresh = new Set<string>();
  assert.equal(await store.layersPresent(layers, diffIds, fresh), false);
  assert.equal(fresh.size, 1);
  assert.equal(await store.layersPresent(layers.slice(0, 1), diffIds, fresh), false); // lengths differ
});
