/**
 * Push: an image of the store → its blobs (skipped when the registry has them, mounted from
 * another repository of the same registry when kiln knows one holds them), then the manifest under
 * the tag. Layers the store keeps as plain tars (those kiln builds) are compressed first (gzip by
 * default), as `docker push` does, so the pushed manifest is not the local one: its digest is the
 * one returned. An image whose layers are compressed already (a pulled one) goes as it is: the
 * digest on the registry is the store's.
 */
import {
  canonicalJSON,
  formatPlatform,
  normalizeImageName,
  parseReference,
  type ImageReference,
  type Image,
  type Compression,
  type Descriptor,
} from '../image/index.js';
import {
  type LoadedImage,
  type Store,
  copyImageToStore,
  encodeVariant,
  isIndexDescriptor,
  readIndexBlob,
  readyLayer,
  withLayers,
} from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';
import { type RegistryClient } from './client.js';
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
  // A tag naming an index (a multi-platform image): every image, then the index.
  const tagged = typeof given === 'string' ? await store.tagged(given) : undefined;
  if (tagged && isIndexDescriptor(tagged)) return pushIndex(store, given as string, tagged, dest, opts);
  const local = typeof given === 'string' ? await store.resolveImage(given) : await copyImageToStore(store, given);
  const ref = targetRef(image, dest ?? local.name);
  const client = clientFor(opts);
  const progress = opts.onProgress ?? (() => undefined);
  // The manifest's digest is known once every layer is compressed: the first line names the ref only.
  progress({
    type: 'resolved',
    ref: ref.toString(),
    digest: '',
    layers: local.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
  });
  const img = await pushImageBlobs(store, client, ref, local, image, opts);
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

/** The reference to push to: `target` (a name without tag or digest gets :latest). */
function targetRef(image: string, target: string | undefined): ImageReference {
  if (!target)
    throw new KilnError(
      'USAGE',
      `image ${image} has no name to push to`,
      { image },
      { hint: `give a destination: kiln push ${image} REGISTRY/NAME:TAG` },
    );
  const ref = parseReference(target);
  return ref.tag === undefined && ref.digest === undefined ? parseReference(`${ref.name()}:latest`) : ref;
}

/**
 * Push an index of the store: each of its images (layers, config, then its manifest by digest),
 * then the index under the tag. An image whose plain layers were compressed for the push has
 * another manifest digest: the pushed index names the pushed manifests (and is kept in the store
 * too); when no image changed, the index goes byte for byte as the store holds it, so the
 * registry's digest is the store's.
 */
async function pushIndex(
  store: Store,
  image: string,
  desc: Descriptor,
  dest: string | undefined,
  opts: PushOptions,
): Promise<{ digest: Digest; size: number; ref: string }> {
  const name = normalizeImageName(image);
  const ref = targetRef(image, dest ?? name);
  const client = clientFor(opts);
  const progress = opts.onProgress ?? (() => undefined);
  const index = await readIndexBlob(store, desc, image);
  const missing = [];
  for (const m of index.manifests) if (!(await store.hasBlob(m.digest))) missing.push(m);
  if (missing.length)
    throw new KilnError(
      'NOT_FOUND',
      `${image} is an index whose image${missing.length > 1 ? 's' : ''} ${missing.map(describeEntry).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not in the store`,
      { image },
      { hint: 'pull the index with --all-platforms, or build every platform, before pushing it' },
    );
  const images = [];
  for (const m of index.manifests) images.push(await store.loadImage(m, { name: `${image} (${describeEntry(m)})` }));
  const seen = new Set<string>();
  progress({
    type: 'resolved',
    ref: ref.toString(),
    digest: '',
    layers: images
      .flatMap((i) => i.manifest.layers)
      .filter((l) => !seen.has(l.digest) && seen.add(l.digest))
      .map((l) => ({ digest: l.digest, size: l.size })),
  });
  let size = 0;
  const manifests: Descriptor[] = [];
  for (const [i, m] of index.manifests.entries()) {
    const local = images[i]!;
    const img = await pushImageBlobs(store, client, ref, local, image, opts);
    const body = await store.readBlob(img.descriptor.digest);
    await client.putManifest(ref, img.descriptor.digest, body, img.descriptor.mediaType);
    size += [img.manifest.config, ...img.manifest.layers].reduce((n, b) => n + b.size, 0) + body.length;
    manifests.push({ ...m, mediaType: img.descriptor.mediaType, digest: img.descriptor.digest, size: body.length });
  }
  const same = manifests.every((m, i) => m.digest === index.manifests[i]!.digest);
  const body = same ? await store.readBlob(desc.digest) : Buffer.from(canonicalJSON({ ...index, manifests }));
  const pushed = same ? desc : { mediaType: desc.mediaType, ...(await store.putBlob(body)) };
  if (ref.digest && ref.digest !== pushed.digest)
    throw new KilnError(
      'USAGE',
      `cannot push ${image} as ${ref.digest}: the pushed index's digest is ${pushed.digest}`,
      {
        image,
      },
    );
  await client.putManifest(ref, ref.tag ?? ref.digest!, body, desc.mediaType);
  return { digest: pushed.digest, size: size + body.length, ref: ref.toString() };
}

function describeEntry(d: Descriptor): string {
  return d.platform ? formatPlatform(d.platform) : d.digest;
}

/**
 * Upload an image's config and layers (plain layers compressed as `opts` says) to `ref`'s
 * repository; returns the image as pushed (its manifest written to the store, not to the registry).
 */
async function pushImageBlobs(
  store: Store,
  client: RegistryClient,
  ref: ImageReference,
  local: LoadedImage,
  image: string,
  opts: PushOptions,
): Promise<LoadedImage> {
  const copts = { compression: opts.compression ?? 'gzip', force: opts.forceCompression, level: opts.compressionLevel };
  const progress = opts.onProgress ?? (() => undefined);
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
  // The config goes up beside the layers, not after them: compression never changes it (the
  // diff_ids are the uncompressed tars'), and blobs may go in any order as long as the manifest
  // comes last.
  const config = pushStored(local.manifest.config);
  config.catch(() => undefined); // heard below, after the layers: no unhandled rejection meanwhile
  const ids = local.config.rootfs.diff_ids;
  const layers: Descriptor[] = [];
  const uploaded = eachLimited([...local.manifest.layers.keys()], opts.concurrency ?? 4, async (i) => {
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
    const d = await client.pushBlobWhileMaking(store, ref, (tee, encoded) =>
      encodeVariant(store, l, ids[i]!, { ...copts, tee, encoded }),
    );
    layers[i] = d;
    progress({ type: 'blob', digest: l.digest, state: 'done', current: d.size, total: d.size });
    await store.noteBlobSource(d.digest, ref.name());
  });
  try {
    await uploaded;
  } catch (e) {
    await config.catch(() => undefined); // not left running behind the layer's error
    throw e;
  }
  await config;
  return withLayers(store, local, layers, copts.compression);
}
