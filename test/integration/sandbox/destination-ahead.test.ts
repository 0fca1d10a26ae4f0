/**
 * A COPY's or WORKDIR's destination read from the layers when a RUN of the stage is ahead
 * (layeredDestination's snapshotsAhead): the snapshots the engine is making meanwhile are not
 * waited for while the layers' skeletons answer; when they cannot (a symbolic link on the paths),
 * every snapshot is made and the layers read again as a whole, as before.
 */
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { layeredDestination } from '../../../src/sandbox/view.js';
import { canMountOverlay } from '../../../src/sandbox/rootfs.js';
import { runRoot } from '../../../src/sandbox/rundir.js';
import { layerSkeleton, tarEntries, type EntrySpec } from '../../../src/layer/write.js';
import type { Descriptor } from '../../../src/image/types.js';
import type { Digest } from '../../../src/util/digest.js';
import { writeSmallImage } from '../../helpers/small-image.js';
import { needs } from '../../helpers/prereq.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-destination-ahead-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const skip = needs(process.getuid?.() === 0 ? undefined : 'overlay views need root');

/** A layer as a WORKDIR or a small COPY writes it: its entries, its tops and skeleton recorded. */
async function kilnLayer(store: Store, entries: EntrySpec[]): Promise<{ layer: Descriptor; diffId: Digest }> {
  const tops = [...new Set(entries.map((e) => e.path.replace(/^\/+/, '').split('/')[0]!))].sort();
  const info = await store.putLayer(tarEntries(entries), { tops, skeleton: layerSkeleton(entries) });
  return { layer: { mediaType: info.mediaType, digest: info.digest, size: info.size }, diffId: info.diffId };
}

const dir = (p: string): EntrySpec => ({
  path: p,
  type: 'directory',
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime: 1_700_000_000,
});

describe('layeredDestination with snapshots ahead', { skip }, () => {
  test('the layers answer without the new layer unpacked: its snapshot is not made for the read', async (t) => {
    const store = await Store.open({ root: path.join(tmp, 'answer') });
    if (!(await canMountOverlay(runRoot(store.root)))) return t.skip('overlayfs cannot be mounted here');
    const base = await writeSmallImage(store, 'example.com/base:1', [{ 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' }]);
    await store.snapshots(base.manifest.layers, base.config.rootfs.diff_ids);
    const work = await kilnLayer(store, [dir('/app'), dir('/app/a')]);
    const layers = [...base.manifest.layers, work.layer];
    const ids = [...base.config.rootfs.diff_ids, work.diffId];
    // Its skeleton answers for /app/c; it writes nothing under /srv.
    for (const wanted of ['/app/c', '/srv/x']) {
      const d = await layeredDestination(store, layers, ids, [wanted], true);
      assert.ok(d && d !== 'links', `${wanted}: read from the layers`);
      assert.equal(d.fs.lstat(wanted.slice(1)), undefined);
    }
    const d = await layeredDestination(store, layers, ids, ['/app/c'], true);
    assert.ok(d && d !== 'links');
    assert.equal(d.fs.lstat('app')?.isDirectory(), true);
    assert.equal(await store.hasSnapshot(ids), false, 'the layer was not unpacked for the reads');
  });

  test('the layers cannot answer: every snapshot made, the layers read again from them alone', async (t) => {
    const setUp = async (name: string) => {
      const store = await Store.open({ root: path.join(tmp, name) });
      const base = await writeSmallImage(store, 'example.com/base:2', [
        { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' },
      ]);
      await store.snapshots(base.manifest.layers, base.config.rootfs.diff_ids);
      const work = await kilnLayer(store, [dir('/app'), dir('/app/a')]);
      // A layer whose facts have no skeleton (a COPY of many files), on the wanted path.
      const entries = [dir('/app'), { ...dir('/app/c'), mode: 0o700 }];
      const info = await store.putLayer(tarEntries(entries), { tops: ['app'] });
      const copy = { mediaType: info.mediaType, digest: info.digest, size: info.size };
      return {
        store,
        layers: [...base.manifest.layers, work.layer, copy],
        ids: [...base.config.rootfs.diff_ids, work.diffId, info.diffId],
      };
    };
    const ahead = await setUp('cannot-answer');
    if (!(await canMountOverlay(runRoot(ahead.store.root)))) return t.skip('overlayfs cannot be mounted here');
    const d = await layeredDestination(ahead.store, ahead.layers, ahead.ids, ['/app/c'], true);
    assert.ok(d && d !== 'links', 'read from the snapshots, no view');
    assert.equal((d.fs.lstat('app/c')?.mode ?? 0) & 0o7777, 0o700);
    assert.equal(d.fs.lstat('app')?.isDirectory(), true);
    for (let i = 1; i <= ahead.ids.length; i++)
      assert.equal(await ahead.store.hasSnapshot(ahead.ids.slice(0, i)), true, `layer ${i} unpacked`);
    // No RUN ahead: the same read calls for a view (nothing unpacked for it).
    const none = await setUp('cannot-answer-no-run');
    assert.equal(await layeredDestination(none.store, none.layers, none.ids, ['/app/c'], false), undefined);
    assert.equal(await none.store.hasSnapshot(none.ids), false);
  });
});
