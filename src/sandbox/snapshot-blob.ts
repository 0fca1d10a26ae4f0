/**
 * The blob of a snapshot-only layer (store's isPlainLayer without a blob: a builder stage's RUN layer kept as
 * its snapshot), made when an image comes to need it: the snapshot is an overlay upper dir, so
 * its tar is the one the RUN step's upper gave, byte for byte; the diff_id proves it. Read against
 * the layers below, as the RUN's differ read it: an entry the RUN copied up and left as it was
 * (useradd's /etc/.pwd.lock) is in the upper dir but not in the layer.
 */
import { type Compression, type Descriptor } from '../image/index.js';
import { type LayerInfo, tarChangesInOrder } from '../layer/index.js';
import { type Store } from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';
import { upperChanges } from './rootfs.js';

/** Encode the top layer of `diffIds` from its snapshot into a blob; `below`: the layers under it. */
export async function blobFromSnapshot(
  store: Store,
  diffIds: Digest[],
  below: Descriptor[],
  compression: Compression = 'none',
  level?: number,
): Promise<LayerInfo> {
  const dir = store.snapshotPath(diffIds);
  if (!(await store.hasSnapshot(diffIds)))
    throw new KilnError(
      'NOT_FOUND',
      `layer ${diffIds.at(-1)} has neither a blob nor a snapshot in the store`,
      { path: store.root },
      { hint: 'build again with --no-cache' },
    );
  const lowers = await store.snapshots(below, diffIds.slice(0, -1));
  return store.putLayer(tarChangesInOrder(dir, upperChanges(dir, lowers)), {
    compression,
    level,
    expectedDiffId: diffIds.at(-1),
  });
}
