import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { storeLayout } from '../../../src/store/layout.js';
import { runRoot } from '../../../src/sandbox/rundir.js';
import { cacheMountsDir } from '../../../src/engine/run-mounts.js';
import { CacheIndex } from '../../../src/cache/records.js';
import { sha256, digestHex } from '../../../src/util/digest.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-layout-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// The layout stores have always had: an existing store must keep working, so these names are fixed.
test('the store hands out the places of its root, as stores have always laid them out', async () => {
  const root = path.join(tmp, 'store');
  const store = await Store.open({ root });
  const d = sha256('x');
  const hex = digestHex(d);
  assert.equal(store.layout.root, root);
  assert.equal(store.blobPath(d), path.join(root, 'blobs', 'sha256', hex));
  assert.equal(store.snapshotDir(d), path.join(root, 'snapshots', hex));
  assert.equal(store.tmpDir, path.join(root, 'tmp'));
  assert.equal(store.runDir, path.join(root, 'run'));
  assert.equal(store.cacheDir, path.join(root, 'cache'));
  assert.equal(store.cacheMountsDir, path.join(root, 'cache-mounts'));
  assert.equal(store.gcRootsDir, path.join(root, 'gc-roots'));
  assert.equal(store.layout.layerFactsFile(d), path.join(root, 'layers', `${hex}.json`));
  assert.equal(store.layout.blobSourcesFile(d), path.join(root, 'sources', `${hex}.json`));
  assert.equal(store.layout.variantsDir, path.join(root, 'variants'));
  assert.ok(statSync(store.layout.blobsDir).isDirectory());
  assert.ok(existsSync(store.layout.ociLayoutFile) && existsSync(store.layout.indexFile));
});

test('the folders that keep state in the store take their places from its layout', async () => {
  const root = path.join(tmp, 'other');
  const layout = storeLayout(root);
  assert.equal(runRoot(root), layout.runDir);
  assert.equal(cacheMountsDir(root), layout.cacheMountsDir);
  assert.equal(new CacheIndex(root).dir, layout.cacheDir);
  const store = await Store.open({ root });
  assert.equal(CacheIndex.forStore(store).dir, store.cacheDir);
});
