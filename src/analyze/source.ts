/**
 * Where an image to analyse comes from: kiln's store (by name or id), an image archive (a
 * docker-archive as `docker save` writes it, or an OCI layout, as a tar or a directory; optionally
 * prefixed "docker-archive:" / "oci-archive:" / "oci:"), read in place without importing it
 * (archive/read.ts), or — when nothing local matches — a registry (pulled into the store first).
 * Every one is an `Image` (image/image.ts); layers are opened as streams; nothing is unpacked.
 */
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError, isKilnError } from '../util/index.js';
import { normalizeImageName, type Image, type Layer, type Platform } from '../image/index.js';
import { type Store, openStoreImage } from '../store/index.js';
import { pull } from '../registry/index.js';
import { openImageArchive } from '../archive/index.js';

export { layerHistory } from '../image/index.js';
export { indexTarFile } from '../archive/index.js';

/** An image's layer as analyze reads it: image/'s `Layer`. */
export type LayerRef = Layer;

/** An image as analyze reads it, wherever it is held: image/'s `Image`. */
export type ImageSource = Image;

export interface OpenOptions {
  store?: Store;
  platform?: Platform;
}

export async function openImageSource(ref: string, opts: OpenOptions = {}): Promise<ImageSource> {
  const m = /^(docker-archive|oci-archive|oci):(.+)$/.exec(ref);
  if (m) return openArchive(m[2]!, ref, opts);
  if (existsSync(ref) && (statSync(ref).isFile() || isArchiveDir(ref))) return openArchive(ref, ref, opts);
  if (!opts.store) throw new KilnError('NOT_FOUND', `no such image: ${ref}`, { image: ref });
  try {
    return await openStoreImage(opts.store, ref, opts);
  } catch (e) {
    if (!(isKilnError(e) && e.code === 'NOT_FOUND')) throw e;
    // A name of the store without the platform (an index of others): no pull, the store's answer.
    if (await opts.store.tagged(ref)) throw e;
    const pulled = await tryPull(opts.store, ref, opts);
    if (pulled) return pulled;
    throw e;
  }
}

/** A directory holding an OCI layout or an unpacked docker save. */
function isArchiveDir(p: string): boolean {
  return (
    statSync(p).isDirectory() && (existsSync(path.join(p, 'index.json')) || existsSync(path.join(p, 'manifest.json')))
  );
}

/** An image that is not in the store, pulled through kiln's registry client (as docker would). */
async function tryPull(store: Store, ref: string, opts: OpenOptions): Promise<ImageSource | undefined> {
  let name: string;
  try {
    name = normalizeImageName(ref);
  } catch {
    return undefined;
  }
  try {
    await pull(store, name, { platform: opts.platform });
  } catch (e) {
    if (isKilnError(e))
      throw new KilnError(
        e.code,
        `${ref} is not in the store, and pulling it failed: ${e.message}`,
        { image: ref },
        { hint: e.hint ?? "see 'kiln images', or give an archive (docker save / OCI layout)" },
      );
    throw e;
  }
  const src = await openStoreImage(store, name, opts);
  return { ...src, kind: 'registry' };
}

// ---- archives ----

async function openArchive(file: string, display: string, opts: OpenOptions): Promise<ImageSource> {
  const archive = await openImageArchive(file, { display });
  try {
    return await archive.image({ platform: opts.platform, display });
  } catch (e) {
    await archive.close();
    throw e;
  }
}
