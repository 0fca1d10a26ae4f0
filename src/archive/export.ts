/** `kiln export`: an image's flattened filesystem as one tar (what `docker export` gives for a container). */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { applyLayer, tarDirectory } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';

/** Flatten the image's layers into a temp dir under the store, then stream it as a tar. */
export async function exportImage(store: Store, img: LoadedImage, out: Writable): Promise<void> {
  const dir = path.join(store.tmpDir, `tmp-${process.pid}-export-${randomBytes(6).toString('hex')}`);
  try {
    for (const [i, l] of img.manifest.layers.entries()) {
      await applyLayer(store.openBlob(l.digest), dir, {
        whiteouts: 'apply',
        expectedDiffId: img.config.rootfs.diff_ids[i],
      });
    }
    await fsp.mkdir(dir, { recursive: true });
    await pipeline(tarDirectory(dir), out);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
