/**
 * Image indexes (multi-platform images) in the store: an OCI image index written from image
 * manifests the store holds, each with its platform, so one tag names them all (`store.setTag`),
 * as `docker buildx build --platform a,b` and `docker manifest create` leave one.
 */
import {
  canonicalJSON,
  formatPlatform,
  INDEX_MEDIA_TYPES,
  MediaType,
  parseIndex,
  parseJSONText,
  parsePlatform,
  type Descriptor,
  type Index,
  type Manifest,
  type Platform,
} from '../image/index.js';
import { KilnError } from '../util/index.js';
import type { Store } from './store.js';

/** One image of an index: its manifest's descriptor (in the store) and its platform. */
export interface IndexEntry {
  descriptor: Descriptor;
  platform: Platform;
  annotations?: Record<string, string>;
}

/** Is this descriptor an index (OCI image index or docker manifest list)? */
export function isIndexDescriptor(d: Descriptor): boolean {
  return INDEX_MEDIA_TYPES.includes(d.mediaType);
}

/**
 * Write an OCI image index of these images (their manifests must be in the store) and return its
 * descriptor, for `store.setTag`. The index is canonical JSON, so the same images and platforms
 * always make the same digest; the blob is written atomically (store.putBlob). Nothing is tagged.
 */
export async function writeIndex(
  store: Store,
  entries: IndexEntry[],
  opts: { annotations?: Record<string, string> } = {},
): Promise<Descriptor> {
  if (!entries.length) throw new KilnError('USAGE', 'an image index needs at least one image');
  const manifests: Descriptor[] = [];
  for (const e of entries) {
    const d = e.descriptor;
    if (d.mediaType !== MediaType.OciManifest && d.mediaType !== MediaType.DockerManifest)
      throw new KilnError('INVALID', `${d.digest} is not an image manifest (${d.mediaType}): an index lists images`);
    if (!(await store.hasBlob(d.digest)))
      throw new KilnError('NOT_FOUND', `image manifest ${d.digest} is not in the store`, { image: d.digest });
    // Checked as any platform given by a user is (os/arch[/variant] in lower case).
    parsePlatform(formatPlatform(e.platform));
    const platform: Platform = { architecture: e.platform.architecture, os: e.platform.os };
    if (e.platform['os.version']) platform['os.version'] = e.platform['os.version'];
    if (e.platform['os.features']?.length) platform['os.features'] = [...e.platform['os.features']];
    if (e.platform.variant) platform.variant = e.platform.variant;
    manifests.push({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      platform,
      ...(e.annotations && Object.keys(e.annotations).length ? { annotations: { ...e.annotations } } : {}),
    });
  }
  const index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  if (opts.annotations && Object.keys(opts.annotations).length) index.annotations = { ...opts.annotations };
  const blob = await store.putBlob(canonicalJSON(index));
  return { mediaType: MediaType.OciIndex, digest: blob.digest, size: blob.size };
}

/** The index a descriptor of the store names (its blob read and validated). */
export async function readIndexBlob(store: Store, d: Descriptor, where?: string): Promise<Index> {
  const at = where ?? d.digest;
  if (!isIndexDescriptor(d))
    throw new KilnError('INVALID', `${at} is not an image index (it is ${d.mediaType})`, { image: at });
  return parseIndex(parseJSONText(await store.readBlob(d.digest), 'image index', at), at);
}

/** The platform of an image manifest as its config says it (for an index entry that names none). */
export async function platformOfManifest(store: Store, manifest: Manifest): Promise<Platform> {
  const cfg = parseJSONText(await store.readBlob(manifest.config.digest), 'image config') as Partial<
    Platform & { 'os.version': string; 'os.features': string[] }
  >;
  if (typeof cfg.os !== 'string' || typeof cfg.architecture !== 'string')
    throw new KilnError('INVALID', `image config ${manifest.config.digest} names no os/architecture`);
  const p: Platform = { os: cfg.os, architecture: cfg.architecture };
  if (typeof cfg.variant === 'string' && cfg.variant) p.variant = cfg.variant;
  if (typeof cfg['os.version'] === 'string' && cfg['os.version']) p['os.version'] = cfg['os.version'];
  if (Array.isArray(cfg['os.features']) && cfg['os.features'].length) p['os.features'] = cfg['os.features'];
  return p;
}
