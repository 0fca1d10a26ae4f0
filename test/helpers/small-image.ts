/**
 * A small image written into a store for the tests of the Image implementations: one layer per
 * given file map (gzip or plain, as asked), a config with a history entry per layer (for the host's
 * platform unless `opts.platform` says another), tagged.
 */
import { tarEntries, type EntrySpec } from '../../src/layer/write.js';
import type { Compression, Descriptor, ImageConfig, Platform } from '../../src/image/types.js';
import type { Digest } from '../../src/util/digest.js';
import type { LoadedImage, Store } from '../../src/store/store.js';
import { hostPlatform } from '../../src/image/platform.js';

export async function writeSmallImage(
  store: Store,
  name: string,
  layers: Record<string, string>[],
  compression: Compression = 'gzip',
  opts: { platform?: Platform } = {},
): Promise<LoadedImage> {
  const descs: Descriptor[] = [];
  const diffIds: Digest[] = [];
  for (const files of layers) {
    const entries: EntrySpec[] = Object.entries(files).map(([p, text]) => ({
      path: p,
      type: 'file',
      content: Buffer.from(text),
      size: Buffer.byteLength(text),
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 1_700_000_000,
    }));
    const info = await store.putLayer(tarEntries(entries), { compression });
    descs.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
    diffIds.push(info.diffId);
  }
  const config: ImageConfig = {
    architecture: opts.platform?.architecture ?? hostPlatform().architecture,
    os: opts.platform?.os ?? 'linux',
    ...(opts.platform?.variant ? { variant: opts.platform.variant } : {}),
    config: { Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [
      { created_by: 'ENV PATH=/usr/bin:/bin', empty_layer: true },
      ...layers.map((_, i) => ({ created_by: `COPY layer${i} /` })),
    ],
  };
  const written = await store.writeImage(config, descs);
  await store.setTag(name, written.descriptor);
  return store.resolveImage(name);
}
