/**
 * Push: an image of the store → its blobs (skipped when the registry has them, mounted from
 * another repository of the same registry when kiln knows one holds them), then the manifest under
 * the tag. Layers the store keeps as plain tars (those kiln builds) are compressed first (gzip by
 * default), as `docker push` does, so the pushed manifest is not the local one: its digest is the
 * one returned. An image whose layers are compressed already (a pulled one) goes as it is: the
 * digest on the registry is the store's.
 */
import { parseReference, type ImageReference, type Image, type Compression, type Descriptor } from '../image/index.js';
import { type Store, copyImageToStore, encodeVariant, readyLayer, withLayers } from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';
import { clientFor, eachLimited, type PullOptions } from './pull.js';

export interface PushOptions extends Omit<PullOptions, 'platform' | 'tag'> {
  /** Upload blobs in chunks of this many bytes (PATCH) instead of one PUT. */
  chunkSize?: number;
  /** Layer compression on the registry (default gzip): plain-tar layers are compressed so. */
  compression?: Compression;
  /** Re-encode layers compressed otherwise too (podman's --force-compression). */
  forceCompression?: boolean;
  /** gzip or zstd level (podman's --compression-level). */
  compressionLevel?: number;
}

/**
 * `image`: a name or id in the store, or an `Image` (image/image.ts): the store's, or one held
 * elsewhere (an archive, another registry), which is copied into the store first (its layers are
 * uploaded from there, compressed as the store's are).
 */
export async function push(
  store: Store,
  given: string | Image,
  dest?: string,
  opts: PushOptions = {},
): Promise<{ digest: Digest; size: number; ref: string }> {
  const image = typeof given === 'string' ? given : given.display;
  const local = typeof given === 'string' ? await store.resolveImage(given) : await copyImageToStore(store, given);
  const target = dest ?? local.name;
  if (!target)
    throw new KilnError(
      'USAGE',
      `image ${image} has no name to push to`,
      { image },
      { hint: `give a destination: kiln push ${image} REGISTRY/NAME:TAG` },
    );
  let ref: ImageReference = parseReference(target);
  if (ref.tag === undefined && ref.digest === undefined) ref = parseReference(`${ref.name()}:latest`);
  const client = clientFor(opts);
  const copts = { compression: opts.compression ?? 'gzip', force: opts.forceCompression, level: opts.compressionLevel };
  const progress = opts.onProgress ?? (() => undefined);
  // The manifest's digest is known once every layer is compressed: the first line names the ref only.
  progress({
    type: 'resolved',
    ref: ref.toString(),
    digest: '',
    layers: local.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
  });
  /** A blob the store holds: skipped when the registry has it, mounted when another repository of it does, else uploaded. */
  const pushStored = async (b: Descriptor) => {
    if (!(await store.hasBlob(b.digest)))
      throw new KilnError(
        'NOT_FOUND',
        `blob ${b.digest} of ${image} is missing from the store`,
        { image },
        { hint: 'the store lost it: pull or build the image again' },
      );
    // Repositories of the same registry known to hold the blob (from earlier pulls and pushes).
    const mountFrom = (await store.blobSources(b.digest))
      .filter((s) => s.startsWith(`${ref.registry}/`) && s !== ref.name())
      .map((s) => s.slice(ref.registry.length + 1));
    let current = 0;
    const state = await client.pushBlobFromStore(store, ref, b, {
      mountFrom,
      chunkSize: opts.chunkSize,
      onBytes: (n) => {
        current += n;
        progress({ type: 'blob', digest: b.digest, state: 'uploading', current, total: b.size });
      },
    });
    progress({
      type: 'blob',
      digest: b.digest,
      state: state === 'uploaded' ? 'done' : state,
      current: b.size,
      total: b.size,
    });
    await store.noteBlobSource(b.digest, ref.name());
  };
  const ids = local.config.rootfs.diff_ids;
  const layers: Descriptor[] = [];
  await eachLimited([...local.manifest.layers.keys()], opts.concurrency ?? 4, async (i) => {
    const l = local.manifest.layers[i]!;
    const ready = await readyLayer(store, l, ids[i]!, copts);
    if (ready) {
      layers[i] = ready;
      return pushStored(ready);
    }
    // A plain layer (as a build leaves it): compressed for this push, and uploaded as it is
    // compressed (with --chunk-size: compressed first, then sent in chunks).
    progress({ type: 'blob', digest: l.digest, state: 'compressing', current: 0, total: l.size });
    if (opts.chunkSize) {
      layers[i] = await encodeVariant(store, l, ids[i]!, copts);
      return pushStored(layers[i]!);
    }
    const d = await client.pushBlobWhileMaking(store, ref, (tee) =>
      encodeVariant(store, l, ids[i]!, { ...copts, tee }),
    );
    layers[i] = d;
    progress({ type: 'blob', digest: l.digest, state: 'done', current: d.size, total: d.size });
    await store.noteBlobSource(d.digest, ref.name());
  });
  await pushStored(local.manifest.config);
  const img = await withLayers(store, local, layers, copts.compression);
  const body = await store.readBlob(img.descriptor.digest);
  const reference = ref.tag ?? ref.digest!;
  if (ref.digest && ref.digest !== img.descriptor.digest)
    throw new KilnError(
      'USAGE',
      `cannot push ${image} as ${ref.digest}: its manifest digest is ${img.descriptor.digest}`,
      { image },
    );
  await client.putManifest(ref, reference, body, img.descriptor.mediaType);
  return {
    digest: img.descriptor.digest,
    size: [img.manifest.config, ...img.manifest.layers].reduce((n, b) => n + b.size, 0) + body.length,
    ref: ref.toString(),
  };
}
