/**
 * Pull: a reference → its manifest (the platform's, from an index) → config and layers streamed
 * into the store in parallel, each verified; then the whole image is checked (every layer's
 * diff_id against the config) and only then tagged under its full name.
 */
import {
  parseReference,
  type ImageReference,
  formatPlatform,
  hostPlatform,
  matchPlatform,
  type Descriptor,
  type Platform,
  parseImageConfig,
  parseManifestOrIndex,
  parseJSONText,
  type TransferEvent,
  MANIFEST_MEDIA_TYPES,
} from '../image/index.js';
import { chainIds, type Digest, KilnError } from '../util/index.js';
import { type LoadedImage, type Store, IncomingLayer } from '../store/index.js';
import { RegistryClient, type ClientOptions } from './client.js';

export { type TransferEvent } from '../image/index.js';

export interface PullOptions extends ClientOptions {
  platform?: Platform;
  client?: RegistryClient;
  /** Parallel blob downloads (default 4). */
  concurrency?: number;
  onProgress?: (e: TransferEvent) => void;
  /** Tag the result in the store (default true). */
  tag?: boolean;
  /**
   * A multi-platform reference: pull every image of its index and tag the index (docker pull
   * --all-platforms); the image returned is `platform`'s (default this machine's, else the first).
   */
  allPlatforms?: boolean;
}

/** Run `fn` over items with at most `limit` at once; the first failure stops new starts. */
export async function eachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const t = items[next++]!;
      try {
        await fn(t);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

export function clientFor(opts: PullOptions & { client?: RegistryClient }): RegistryClient {
  if (opts.client) return opts.client;
  return new RegistryClient({
    ...opts,
    onRetry:
      opts.onRetry ?? ((r) => opts.onProgress?.({ type: 'retry', what: r.what, attempt: r.attempt, reason: r.reason })),
  });
}

/** Resolve a reference to one platform's manifest (descriptor + bytes), following an index. */
export async function resolveManifest(
  client: RegistryClient,
  ref: ImageReference,
  platform: Platform,
): Promise<{ descriptor: Descriptor; body: Buffer; index?: Descriptor }> {
  let got = await client.getManifest(ref);
  let doc = parseManifestOrIndex(parseJSONText(got.body, 'manifest', ref.toString()), got.mediaType, ref.toString());
  let index: Descriptor | undefined;
  if (doc.kind === 'index') {
    index = { mediaType: got.mediaType, digest: got.digest, size: got.body.length };
    const m = matchPlatform(doc.index.manifests, platform);
    if (!m) {
      const have = doc.index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ');
      throw new KilnError(
        'NOT_FOUND',
        `${ref.familiar()} has no image for ${formatPlatform(platform)} (it has: ${have})`,
        { image: ref.toString() },
        { hint: 'pick one with --platform' },
      );
    }
    got = await client.getManifest(ref, m.digest);
    if (got.digest !== m.digest)
      throw new KilnError('DIGEST', `manifest ${m.digest} of ${ref.familiar()} does not match its digest`, {
        image: ref.toString(),
      });
    doc = parseManifestOrIndex(parseJSONText(got.body, 'manifest', ref.toString()), got.mediaType, ref.toString());
    if (doc.kind !== 'manifest')
      throw new KilnError('INVALID', `${ref.familiar()}: an index inside an index is not supported`, {
        image: ref.toString(),
      });
  }
  return { descriptor: { mediaType: got.mediaType, digest: got.digest, size: got.body.length }, body: got.body, index };
}

export async function pull(store: Store, refText: string, opts: PullOptions = {}): Promise<LoadedImage> {
  const parsed = parseReference(refText);
  const ref =
    parsed.tag === undefined && parsed.digest === undefined ? parseReference(`${parsed.name()}:latest`) : parsed;
  const client = clientFor(opts);
  const platform = opts.platform ?? hostPlatform();
  if (opts.allPlatforms) {
    const got = await client.getManifest(ref);
    const top = parseManifestOrIndex(
      parseJSONText(got.body, 'manifest', ref.toString()),
      got.mediaType,
      ref.toString(),
    );
    if (top.kind === 'index') return pullIndex(store, ref, got, top.index.manifests, { ...opts, client });
  }
  const { descriptor, body, index } = await resolveManifest(client, ref, platform);
  const doc = parseManifestOrIndex(
    parseJSONText(body, 'manifest', ref.toString()),
    descriptor.mediaType,
    ref.toString(),
  );
  if (doc.kind !== 'manifest') throw new KilnError('INTERNAL', 'expected a manifest');
  const manifest = doc.manifest;
  opts.onProgress?.({
    type: 'resolved',
    ref: ref.toString(),
    digest: descriptor.digest,
    layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
  });
  const blobs = [manifest.config, ...manifest.layers];
  for (const b of blobs) {
    if (b.urls?.length && /foreign|nondistributable/.test(b.mediaType)) {
      throw new KilnError(
        'UNSUPPORTED',
        `${ref.familiar()} has a non-distributable layer ${b.digest} (served from ${b.urls[0]})`,
        { image: ref.toString() },
      );
    }
  }
  const name = ref.toString();
  // Each layer is checked against the config's diff_id as soon as it is here, while the others
  // download (verifyImage below then finds it checked). The config comes first.
  let configHere!: () => void;
  let configFailed!: (e: unknown) => void;
  const config = new Promise<void>((resolve, reject) => {
    configHere = resolve;
    configFailed = reject;
  });
  config.catch(() => undefined);
  await eachLimited(blobs, opts.concurrency ?? 4, async (b) => {
    let current = 0;
    let state: Awaited<ReturnType<RegistryClient['pullBlobToStore']>>;
    // A layer is decompressed and hashed as it downloads: its diff_id is known when the last byte is here.
    const incoming = b === manifest.config ? undefined : new IncomingLayer();
    try {
      state = await client.pullBlobToStore(
        store,
        ref,
        b,
        (n) => {
          current += n;
          opts.onProgress?.({ type: 'blob', digest: b.digest, state: 'downloading', current, total: b.size });
        },
        incoming,
      );
    } catch (e) {
      if (b === manifest.config) configFailed(e);
      throw e;
    }
    opts.onProgress?.({
      type: 'blob',
      digest: b.digest,
      state: state === 'present' ? 'present' : 'done',
      current: b.size,
      total: b.size,
    });
    await store.noteBlobSource(b.digest, ref.name());
    if (b === manifest.config) return configHere();
    await config;
    const diffIds = parseImageConfig(await store.readJSON(manifest.config.digest), name).rootfs.diff_ids;
    const i = manifest.layers.indexOf(b);
    // A config that does not match the manifest is reported by verifyImage, with the whole picture.
    if (diffIds.length !== manifest.layers.length) return;
    // The blob's digest was checked as it was stored; what it unpacks to was measured meanwhile.
    // When that is the config's diff_id, the store knows it and verifyLayer reads nothing again;
    // else verifyLayer reads the blob and reports what is wrong.
    const measured = state === 'downloaded' ? await incoming?.measured() : undefined;
    if (measured !== undefined && measured.diffId === diffIds[i])
      await store.recordLayer(b.digest, { diffId: measured.diffId, uncompressedSize: measured.uncompressedSize });
    await store.verifyLayer(b, diffIds[i]!, chainIds(diffIds)[i]!, name);
  });
  await store.putBlob(body, { digest: descriptor.digest, size: descriptor.size });
  // The whole image is checked (config against manifest, every layer's diff_id) before the tag moves.
  const img = await store.verifyImage(descriptor, { where: name });
  // A single-platform image asked for another platform explicitly: refuse, as docker does.
  if (!index && opts.platform && (img.config.os !== platform.os || img.config.architecture !== platform.architecture)) {
    throw new KilnError(
      'NOT_FOUND',
      `${ref.familiar()} is for ${img.config.os}/${img.config.architecture}, not the requested ${formatPlatform(platform)}`,
      { image: name },
      { hint: 'drop --platform, or pull a multi-platform image' },
    );
  }
  if (opts.tag !== false) await store.setTag(name, descriptor, { allowDigest: true });
  return img;
}

/**
 * Every image of an index (each pulled by digest, verified, untagged), then the index itself, byte
 * for byte, tagged under the reference: the store can push it again with the same digest.
 */
async function pullIndex(
  store: Store,
  ref: ImageReference,
  got: { mediaType: string; digest: Digest; body: Buffer },
  manifests: Descriptor[],
  opts: PullOptions & { client: RegistryClient },
): Promise<LoadedImage> {
  const name = ref.toString();
  for (const m of manifests) {
    if (!MANIFEST_MEDIA_TYPES.includes(m.mediaType))
      throw new KilnError('UNSUPPORTED', `${ref.familiar()}: an index inside an index is not supported`, {
        image: name,
      });
    await pull(store, `${ref.name()}@${m.digest}`, { ...opts, allPlatforms: false, platform: undefined, tag: false });
  }
  const descriptor: Descriptor = { mediaType: got.mediaType, digest: got.digest, size: got.body.length };
  await store.putBlob(got.body, { digest: got.digest, size: got.body.length });
  if (opts.tag !== false) await store.setTag(name, descriptor, { allowDigest: true });
  const want = matchPlatform(manifests, opts.platform ?? hostPlatform()) ?? manifests[0];
  if (!want) throw new KilnError('INVALID', `${ref.familiar()} is an empty index`, { image: name });
  return { ...(await store.loadImage(want, { name })), name };
}
