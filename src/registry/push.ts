/**
 * Push: an image of the store → its blobs (skipped when the registry has them, mounted from
 * another repository of the same registry when kiln knows one holds them), then the manifest under
 * the tag. The manifest's bytes are the store's, so the digest on the registry is the store's.
 */
import { parseReference, type ImageReference } from '../image/reference.js';
import type { Store } from '../store/store.js';
import type { Digest } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { clientFor, eachLimited, type PullOptions } from './pull.js';

export interface PushOptions extends Omit<PullOptions, 'platform' | 'tag'> {
  /** Upload blobs in chunks of this many bytes (PATCH) instead of one PUT. */
  chunkSize?: number;
}

export async function push(store: Store, image: string, dest?: string, opts: PushOptions = {}): Promise<{ digest: Digest; size: number; ref: string }> {
  const img = await store.resolveImage(image);
  const target = dest ?? img.name;
  if (!target) throw new KilnError('USAGE', `image ${image} has no name to push to`, { image }, { hint: `give a destination: kiln push ${image} REGISTRY/NAME:TAG` });
  let ref: ImageReference = parseReference(target);
  if (ref.tag === undefined && ref.digest === undefined) ref = parseReference(`${ref.name()}:latest`);
  const client = clientFor(opts);
  const body = await store.readBlob(img.descriptor.digest);
  const blobs = [img.manifest.config, ...img.manifest.layers];
  opts.onProgress?.({ type: 'resolved', ref: ref.toString(), digest: img.descriptor.digest, layers: img.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })) });
  await eachLimited(blobs, opts.concurrency ?? 4, async (b) => {
    if (!(await store.hasBlob(b.digest))) throw new KilnError('NOT_FOUND', `blob ${b.digest} of ${image} is missing from the store`, { image }, { hint: 'the store lost it: pull or build the image again' });
    // Repositories of the same registry known to hold the blob (from earlier pulls and pushes).
    const mountFrom = (await store.blobSources(b.digest)).filter((s) => s.startsWith(`${ref.registry}/`) && s !== ref.name()).map((s) => s.slice(ref.registry.length + 1));
    let current = 0;
    const state = await client.pushBlobFromStore(store, ref, b, {
      mountFrom,
      chunkSize: opts.chunkSize,
      onBytes: (n) => {
        current += n;
        opts.onProgress?.({ type: 'blob', digest: b.digest, state: 'uploading', current, total: b.size });
      },
    });
    opts.onProgress?.({ type: 'blob', digest: b.digest, state: state === 'uploaded' ? 'done' : state, current: b.size, total: b.size });
    await store.noteBlobSource(b.digest, ref.name());
  });
  const reference = ref.tag ?? ref.digest!;
  if (ref.digest && ref.digest !== img.descriptor.digest) throw new KilnError('USAGE', `cannot push ${image} as ${ref.digest}: its manifest digest is ${img.descriptor.digest}`, { image });
  await client.putManifest(ref, reference, body, img.descriptor.mediaType);
  return { digest: img.descriptor.digest, size: blobs.reduce((n, b) => n + b.size, 0) + body.length, ref: ref.toString() };
}
