/**
 * `kiln load`: a docker-archive (what `docker save` writes: manifest.json with config and layer
 * tars, legacy or Docker 25+ OCI-shaped) or an OCI layout archive → images in the store. The
 * archive is read by archive/read.ts (the one reader of archives: a stream is spooled to the
 * store's tmp/ first, a file is read in place); blobs are streamed into the store and verified;
 * legacy `layer.tar`s are stored as the plain tars they are. Nothing is tagged unless the whole
 * archive was read and every image in it verified (store.verifyImage); then all its names are
 * tagged at once.
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { type Digest, KilnError } from '../util/index.js';
import {
  canonicalJSON,
  formatPlatform,
  normalizeImageName,
  Annotation,
  MediaType,
  type Descriptor,
  type Manifest,
  parseImageConfig,
  parseIndex,
  parseJSONText,
} from '../image/index.js';
import { cleanEntryName, measureLayer } from '../layer/index.js';
import { isIndexDescriptor, readIndexBlob, type Store } from '../store/index.js';
import { openImageArchive, type ImageArchive } from './read.js';

interface StoredFile {
  digest: Digest;
  size: number;
  mediaType?: string;
  diffId?: Digest;
}

export interface LoadResult {
  images: { name?: string; id: Digest; digest: Digest }[];
}

/** Load the archive in a file (read in place) or a stream (spooled to the store's tmp/ first). */
export async function loadArchive(store: Store, archive: Readable | string, where = 'archive'): Promise<LoadResult> {
  let spooled: string | undefined;
  let file: string;
  if (typeof archive === 'string') file = archive;
  else {
    spooled = path.join(store.tmpDir, `load-${process.pid}-${randomBytes(6).toString('hex')}.tar`);
    await pipeline(archive, createWriteStream(spooled, { mode: 0o600 }));
    file = spooled;
  }
  try {
    const a = await openImageArchive(file, { display: where, tmpDir: store.tmpDir });
    try {
      return await loadFrom(store, a, where);
    } finally {
      await a.close();
    }
  } finally {
    if (spooled) await fsp.rm(spooled, { force: true });
  }
}

async function loadFrom(store: Store, archive: ImageArchive, where: string): Promise<LoadResult> {
  // Every blob of an OCI-shaped archive, into the store (verified by its digest).
  const files = new Map<string, StoredFile>();
  for (const name of archive.names()) {
    const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
    const f = m ? archive.locate(name) : undefined;
    if (!m || !f) continue;
    const digest = `sha256:${m[1]}` as Digest;
    if (!(await store.hasBlob(digest))) {
      const w = await store.createBlobWriter();
      try {
        for await (const c of archive.open(name))
          if (!w.stream.write(c)) await new Promise((r) => w.stream.once('drain', r));
      } catch (e) {
        await w.abort();
        throw e;
      }
      await w.commit({ digest, size: f.size });
    }
    files.set(name, { digest, size: f.size });
  }
  /** A legacy `layer.tar`, stored as the plain tar it is (once, however many images list it). */
  const putLegacyLayer = async (name: string): Promise<StoredFile> => {
    const known = files.get(name);
    if (known) return known;
    const info = await store.putLayer(archive.open(name));
    // Its facts are recorded as it is stored, so verifyImage would trust it: read it through once
    // now, as a layer (a tar, no entry the applier would refuse).
    await measureLayer(store.openBlob(info.digest)).catch((e: unknown) => {
      throw e instanceof KilnError
        ? new KilnError(
            e.code,
            `${where}: layer ${name}: ${e.message}`,
            { path: where },
            { hint: 'nothing was tagged' },
          )
        : e;
    });
    const f = { digest: info.digest, size: info.size, mediaType: info.mediaType, diffId: info.diffId };
    files.set(name, f);
    return f;
  };
  const readDocument = (name: string) => (archive.locate(name) ? archive.readDocument(name) : undefined);

  const result: LoadResult = { images: [] };
  const indexBuf = await readDocument('index.json');
  const manifestJson = await readDocument('manifest.json');
  // Prefer the OCI index when its manifests are all here: digests stay exactly as saved.
  if (indexBuf) {
    const index = parseIndex(parseJSONText(indexBuf, 'index.json', where), where);
    const usable = await Promise.all(index.manifests.map((d) => whole(store, d, where)));
    if (usable.every(Boolean) && index.manifests.length) {
      const tags: { name: string; descriptor: Descriptor }[] = [];
      for (const d of index.manifests) {
        const name = nameFromAnnotations(d);
        const at = name ? `${where} (${name})` : where;
        // A multi-platform image: every platform's image is checked, and the name tags the index.
        const id = isIndexDescriptor(d)
          ? (await verifyIndex(store, d, at), d.digest)
          : (await store.verifyImage(d, { where: at })).id;
        if (name) tags.push({ name, descriptor: stripAnnotations(d) });
        result.images.push({ name, id, digest: d.digest });
      }
      await store.setTags(tags);
      return result;
    }
  }
  if (!manifestJson)
    throw new KilnError(
      'INVALID',
      'not an image archive: no manifest.json or index.json',
      { path: where },
      { hint: 'kiln load reads what docker save or kiln save write' },
    );
  const entries = parseJSONText(manifestJson, 'manifest.json', where);
  if (!Array.isArray(entries))
    throw new KilnError('INVALID', 'malformed manifest.json: expected a list', { path: where });
  // Every name is checked, and every image verified, before the first tag is written: all or nothing.
  const tags: { name: string; descriptor: Descriptor }[] = [];
  for (const [i, e] of entries.entries()) {
    const repoTags = (e as { RepoTags?: unknown }).RepoTags;
    if (repoTags === undefined || repoTags === null) continue;
    if (!Array.isArray(repoTags))
      throw new KilnError(
        'INVALID',
        `malformed manifest.json: entry ${i} RepoTags is not a list`,
        { path: where },
        { hint: 'nothing was loaded' },
      );
    for (const t of repoTags as unknown[]) {
      try {
        if (typeof t !== 'string') throw new Error('not a string');
        normalizeImageName(t);
      } catch (err) {
        throw new KilnError(
          'INVALID',
          `manifest.json entry ${i}: invalid RepoTag ${JSON.stringify(t)}: ${(err as Error).message}`,
          { path: where },
          { hint: 'nothing was tagged' },
        );
      }
    }
  }
  for (const [i, e] of entries.entries()) {
    const entry = e as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers))
      throw new KilnError('INVALID', `malformed manifest.json: entry ${i} needs Config and Layers`, { path: where });
    const cfgBytes = await readDocument(cleanEntryName(entry.Config));
    if (!cfgBytes) throw new KilnError('INVALID', `archive lacks the config ${entry.Config}`, { path: where });
    const config = parseImageConfig(parseJSONText(cfgBytes, 'image config', where), where);
    const cfg = await store.putBlob(cfgBytes);
    const layers: Descriptor[] = [];
    for (const [j, l] of (entry.Layers as unknown[]).entries()) {
      if (typeof l !== 'string')
        throw new KilnError('INVALID', `malformed manifest.json: entry ${i} layer ${j}`, { path: where });
      const clean = cleanEntryName(l);
      const f =
        files.get(clean) ??
        (clean.endsWith('layer.tar') && archive.locate(clean) ? await putLegacyLayer(clean) : undefined);
      if (!f) throw new KilnError('INVALID', `archive lacks the layer ${l}`, { path: where });
      layers.push({
        mediaType: f.mediaType ?? (await detectLayerMediaType(store, f.digest)),
        digest: f.digest,
        size: f.size,
      });
      if (f.diffId && config.rootfs.diff_ids[j] !== f.diffId)
        throw new KilnError('DIGEST', `layer ${l} does not match the config's diff_id ${config.rootfs.diff_ids[j]}`, {
          path: where,
        });
    }
    if (layers.length !== config.rootfs.diff_ids.length)
      throw new KilnError(
        'INVALID',
        `entry ${i}: ${layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
        { path: where },
      );
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: cfg.digest, size: cfg.size },
      layers,
    };
    const mb = await store.putBlob(canonicalJSON(manifest));
    const desc: Descriptor = { mediaType: MediaType.DockerManifest, digest: mb.digest, size: mb.size };
    const names = Array.isArray(entry.RepoTags) ? (entry.RepoTags as string[]) : [];
    await store.verifyImage(desc, { where: names[0] ? `${where} (${names[0]})` : where });
    for (const name of names) tags.push({ name, descriptor: desc });
    result.images.push({
      name: names[0] ? normalizeImageName(names[0]) : undefined,
      id: cfg.digest,
      digest: mb.digest,
    });
  }
  await store.setTags(tags);
  return result;
}

/** Whether the archive brought a descriptor's document, and each image of an index. */
async function whole(store: Store, d: Descriptor, where: string): Promise<boolean> {
  if (!(await store.hasBlob(d.digest))) return false;
  if (!isIndexDescriptor(d)) return true;
  const index = await readIndexBlob(store, d, where);
  const present = await Promise.all(index.manifests.map((m) => store.hasBlob(m.digest)));
  return present.every(Boolean);
}

/** Every image of an index verified (store.verifyImage), before anything is tagged. */
async function verifyIndex(store: Store, d: Descriptor, where: string): Promise<void> {
  const index = await readIndexBlob(store, d, where);
  if (!index.manifests.length)
    throw new KilnError(
      'INVALID',
      `${where}: the image index lists no image`,
      { path: where },
      { hint: 'nothing was tagged' },
    );
  for (const m of index.manifests) {
    if (isIndexDescriptor(m))
      throw new KilnError(
        'UNSUPPORTED',
        `${where}: an index inside an index (${m.digest})`,
        { path: where },
        { hint: 'nothing was tagged' },
      );
    // BuildKit's attestations (provenance, SBOM: in-toto documents, not layers) are kept as the blobs they are.
    if (m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    await store.verifyImage(m, { where: `${where}, ${m.platform ? formatPlatform(m.platform) : m.digest}` });
  }
}

function nameFromAnnotations(d: Descriptor): string | undefined {
  const full = d.annotations?.['io.containerd.image.name'];
  const ref = d.annotations?.[Annotation.RefName];
  for (const candidate of [full, ref]) {
    if (!candidate) continue;
    // A bare tag ("latest") names nothing on its own.
    if (!candidate.includes('/') && !candidate.includes(':') && candidate === ref && !full) continue;
    try {
      return normalizeImageName(candidate);
    } catch {
      // not a reference: try the next
    }
  }
  return undefined;
}

function stripAnnotations(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

async function detectLayerMediaType(store: Store, d: Digest): Promise<string> {
  const fh = await fsp.open(store.blobPath(d), 'r');
  const b = Buffer.alloc(4);
  await fh.read(b, 0, 4, 0);
  await fh.close();
  if (b[0] === 0x1f && b[1] === 0x8b) return MediaType.DockerLayerGzip;
  if (b[0] === 0x28 && b[1] === 0xb5) return MediaType.OciLayerZstd;
  return MediaType.OciLayer;
}
