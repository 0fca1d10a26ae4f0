/**
 * An image of the store as an `Image` (image/image.ts): its layers are the store's blobs, read in
 * place, with the facts the store keeps of them (uncompressed and content sizes) so that nothing
 * is read again to know them.
 */
import { KilnError } from '../util/index.js';
import { layerHistory, type Image, type Descriptor, type Platform } from '../image/index.js';
import type { Readable } from 'node:stream';
import type { LoadedImage, Store } from './store.js';

/** A loaded image of the store (store.resolveImage, store.loadImage) as an Image. */
export async function storeImage(store: Store, img: LoadedImage, display?: string): Promise<Image> {
  const shown = display ?? img.name ?? img.id;
  if (img.manifest.layers.length !== img.config.rootfs.diff_ids.length)
    throw new KilnError(
      'INVALID',
      `image has ${img.manifest.layers.length} layers but ${img.config.rootfs.diff_ids.length} diff_ids`,
      { image: shown },
    );
  const hist = layerHistory(img.config);
  const facts = await Promise.all(img.manifest.layers.map((l) => store.layerFacts(l.digest)));
  return {
    display: shown,
    name: img.name,
    id: img.id,
    digest: img.descriptor.digest,
    descriptor: img.descriptor,
    config: img.config,
    manifest: img.manifest,
    kind: 'store',
    layers: img.manifest.layers.map((d, i) => ({
      index: i,
      diffId: img.config.rootfs.diff_ids[i]!,
      digest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
      history: hist[i],
      uncompressedSize: facts[i]?.uncompressedSize,
      contentSize: facts[i]?.contentSize,
      file: { path: store.blobPath(d.digest), start: 0, end: d.size - 1 },
      open: () => store.openBlob(d.digest),
    })),
    rawConfig: () => store.readBlob(img.manifest.config.digest),
    rawManifest: () => store.readBlob(img.descriptor.digest),
    close: async () => undefined,
  };
}

/** The store's image of that name or id (for the platform, when the name is an index) as an Image. */
export async function openStoreImage(store: Store, ref: string, opts: { platform?: Platform } = {}): Promise<Image> {
  return storeImage(store, await store.resolveImage(ref, { platform: opts.platform }), ref);
}

/**
 * Copy an image held elsewhere (an archive, a registry) into the store, blob by blob, each
 * verified by its digest and size; then the whole image is checked (store.verifyImage: every
 * layer's diff_id) and returned as the store's. Blobs the store has are not read again. Nothing is
 * tagged. An image must have a manifest (a legacy docker-archive has none: `kiln load` makes one).
 */
export async function copyImageToStore(store: Store, image: Image): Promise<LoadedImage> {
  if (image.kind === 'store' && image.descriptor) return store.loadImage(image.descriptor, { name: image.name });
  if (!image.manifest || !image.descriptor || !image.rawManifest)
    throw new KilnError(
      'UNSUPPORTED',
      `${image.display} has no manifest (a legacy docker-archive): load it into the store first`,
      { image: image.display },
      { hint: 'kiln load -i ARCHIVE, then name the loaded image' },
    );
  const copy = async (d: Descriptor, open: () => Readable | Promise<Buffer>) => {
    if (await store.hasBlob(d.digest)) return;
    const src = open();
    if (src instanceof Promise) {
      await store.putBlob(await src, { digest: d.digest, size: d.size });
      return;
    }
    const w = await store.createBlobWriter();
    try {
      for await (const c of src) if (!w.stream.write(c)) await new Promise((r) => w.stream.once('drain', r));
    } catch (e) {
      await w.abort();
      throw e;
    }
    await w.commit({ digest: d.digest, size: d.size });
  };
  const manifest = image.manifest;
  await copy(manifest.config, () => image.rawConfig());
  for (const [i, d] of manifest.layers.entries()) {
    const layer = image.layers[i];
    if (!layer) throw new KilnError('INVALID', `${image.display}: layer ${i} is missing`, { image: image.display });
    await copy(d, () => layer.open());
  }
  await copy(image.descriptor, () => image.rawManifest!());
  const img = await store.verifyImage(image.descriptor, { where: image.name ?? image.display });
  return { ...img, name: image.name };
}
