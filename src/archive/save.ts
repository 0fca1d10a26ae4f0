/**
 * `kiln save`: images → one tar. `docker` format is what `docker save` writes and `docker load`
 * reads (manifest.json + repositories), laid out as an OCI layout too (index.json, blobs/), as
 * Docker 25+ does; `oci` format is an OCI image layout alone. Blobs are streamed as their
 * holder keeps them (compressed layers stay compressed: docker load and OCI readers both accept
 * them). An image is any `Image` (image/image.ts: the store's, an archive's, a registry's) or a
 * loaded image of the store; a multi-platform image of the store is saved whole (`IndexToSave`):
 * index.json names its index, as BuildKit's oci exporter and Docker 25+'s containerd store write
 * it, and the blobs of every platform are in the archive, each once. A docker-archive's
 * manifest.json cannot name an index: it names one platform's image of it (docker's classic store
 * loads that one), as Docker 25+ does.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest, KilnError, openOutputFile } from '../util/index.js';
import {
  canonicalJSON,
  familiarName,
  formatPlatform,
  hostPlatform,
  matchPlatform,
  parseReference,
  Annotation,
  MediaType,
  type Descriptor,
  type Manifest,
  type Image,
  type Platform,
} from '../image/index.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../layer/index.js';
import { isIndexDescriptor, readIndexBlob, type LoadedImage, type Store } from '../store/index.js';

export type ArchiveFormat = 'docker' | 'oci';

interface Item {
  name: string;
  open?: () => Readable | Promise<Buffer>;
  content?: Buffer;
  size: number;
}

/** A multi-platform image of the store, saved whole: its index and every image it lists. */
export interface IndexToSave {
  /** The name index.json (and a docker-archive's manifest.json) give it. */
  name?: string;
  /** The index's descriptor; its blob and every image it lists are in the store. */
  index: Descriptor;
  /** A docker-archive's manifest.json names one image of it: this platform's (default: this machine's, else the first). */
  dockerPlatform?: Platform;
}

/** What was saved under one name: a multi-platform image has its platforms, and the one a docker-archive's manifest.json names. */
export interface SavedEntry {
  name?: string;
  /** The descriptor index.json gives: an image manifest's or an index's. */
  digest: Digest;
  platforms?: string[];
  dockerPlatform?: string;
}

export type SaveInput = LoadedImage | Image | IndexToSave;

function isImage(x: LoadedImage | Image): x is Image {
  return 'kind' in x && 'layers' in x;
}

function isIndexToSave(x: SaveInput): x is IndexToSave {
  return 'index' in x && !('manifest' in x);
}

/** What save writes of an image: its manifest's descriptor and document, and where each blob comes from. */
interface Saved {
  name?: string;
  id: Digest;
  descriptor: Descriptor;
  manifest: Manifest;
  open: Map<Digest, () => Readable | Promise<Buffer>>;
}

function savedOf(store: Store, x: LoadedImage | Image): Saved {
  if (!isImage(x)) {
    const open = new Map<Digest, () => Readable | Promise<Buffer>>();
    for (const d of [x.manifest.config, ...x.manifest.layers, x.descriptor])
      open.set(d.digest, () => store.openBlob(d.digest));
    return { name: x.name, id: x.id, descriptor: x.descriptor, manifest: x.manifest, open };
  }
  if (!x.manifest || !x.descriptor || !x.rawManifest)
    throw new KilnError(
      'UNSUPPORTED',
      `${x.display} has no manifest (a legacy docker-archive): load it into the store first`,
      { image: x.display },
      { hint: 'kiln load -i ARCHIVE, then save the loaded image' },
    );
  const rawManifest = x.rawManifest.bind(x);
  const open = new Map<Digest, () => Readable | Promise<Buffer>>([
    [x.manifest.config.digest, () => x.rawConfig()],
    [x.descriptor.digest, () => rawManifest()],
  ]);
  for (const l of x.layers) if (l.digest) open.set(l.digest, () => l.open());
  return { name: x.name, id: x.id, descriptor: x.descriptor, manifest: x.manifest, open };
}

/** A saved index: its descriptor, its images (in its order) and the one a docker-archive's manifest.json names. */
interface SavedIndex {
  name?: string;
  descriptor: Descriptor;
  images: Saved[];
  platforms: string[];
  docker: { image: Saved; platform: string };
}

async function savedIndexOf(store: Store, x: IndexToSave): Promise<SavedIndex> {
  const where = x.name ?? x.index.digest;
  const index = await readIndexBlob(store, x.index, where);
  if (!index.manifests.length)
    throw new KilnError('INVALID', `${where} is an image index that lists no image`, { image: where });
  const images: Saved[] = [];
  const platforms: string[] = [];
  for (const m of index.manifests) {
    const p = m.platform ? formatPlatform(m.platform) : 'unknown';
    if (isIndexDescriptor(m))
      throw new KilnError(
        'UNSUPPORTED',
        `${where} lists another index (${m.digest}): kiln saves an index of images`,
        { image: where },
        { hint: 'save the platform you need: --platform os/arch' },
      );
    // Every platform must be here: an archive that names an image it lacks is what a reader cannot load.
    const img = await store.loadImage(m, { name: `${where} (${p})` }).catch((e: unknown) => {
      throw e instanceof KilnError && e.code === 'NOT_FOUND'
        ? new KilnError(
            'NOT_FOUND',
            `${where}: the image for ${p} (${m.digest}) is not in the store`,
            { image: where },
            { hint: 'pull or build that platform, or save one platform: --platform os/arch' },
          )
        : e;
    });
    images.push(savedOf(store, { ...img, name: x.name }));
    platforms.push(p);
  }
  const want = x.dockerPlatform ?? hostPlatform();
  const match = matchPlatform(index.manifests, want);
  const at = match ? index.manifests.indexOf(match) : 0;
  return {
    name: x.name,
    descriptor: { mediaType: x.index.mediaType, digest: x.index.digest, size: x.index.size },
    images,
    platforms,
    docker: { image: images[at]!, platform: platforms[at]! },
  };
}

export async function saveImages(
  store: Store,
  given: SaveInput[],
  format: ArchiveFormat,
  out: Writable,
): Promise<SavedEntry[]> {
  const entries: (Saved | SavedIndex)[] = [];
  for (const g of given) entries.push(isIndexToSave(g) ? await savedIndexOf(store, g) : savedOf(store, g));
  const items: Item[] = [];
  const seen = new Set<string>();
  const addBlob = (d: Descriptor, img: Saved) => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const open = img.open.get(d.digest);
    if (!open) throw new KilnError('INVALID', `blob ${d.digest} of ${img.name ?? img.id} cannot be read`);
    items.push({ name: `blobs/sha256/${digestHex(d.digest)}`, open, size: d.size });
  };
  const addImageBlobs = (img: Saved) => {
    addBlob(img.manifest.config, img);
    for (const l of img.manifest.layers) addBlob(l, img);
    addBlob(img.descriptor, img);
  };
  const index: Descriptor[] = [];
  const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const summary: SavedEntry[] = [];
  for (const entry of entries) {
    let img: Saved;
    if ('images' in entry) {
      for (const i of entry.images) addImageBlobs(i);
      if (!seen.has(entry.descriptor.digest)) {
        seen.add(entry.descriptor.digest);
        const d = entry.descriptor.digest;
        items.push({
          name: `blobs/sha256/${digestHex(d)}`,
          open: () => store.openBlob(d),
          size: entry.descriptor.size,
        });
      }
      img = entry.docker.image;
      summary.push({
        name: entry.name,
        digest: entry.descriptor.digest,
        platforms: entry.platforms,
        dockerPlatform: entry.docker.platform,
      });
    } else {
      img = entry;
      addImageBlobs(img);
      summary.push({ name: img.name, digest: img.descriptor.digest });
    }
    const annotations: Record<string, string> = {};
    const tags: string[] = [];
    if (entry.name) {
      const ref = parseReference(entry.name);
      annotations['io.containerd.image.name'] = entry.name;
      if (ref.tag) {
        annotations[Annotation.RefName] = format === 'oci' ? entry.name : ref.tag;
        tags.push(familiarName(entry.name));
        const repo = familiarName(ref.name());
        (repositories[repo] ??= {})[ref.tag] = digestHex(img.id);
      }
    }
    index.push({
      mediaType: entry.descriptor.mediaType,
      digest: entry.descriptor.digest,
      size: entry.descriptor.size,
      ...(Object.keys(annotations).length ? { annotations } : {}),
    });
    dockerManifest.push({
      Config: `blobs/sha256/${digestHex(img.id)}`,
      RepoTags: tags,
      Layers: img.manifest.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    });
  }
  const text = (name: string, s: string): Item => ({ name, content: Buffer.from(s), size: Buffer.byteLength(s) });
  const meta: Item[] = [
    text('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' })),
    text('index.json', canonicalJSON({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: index })),
  ];
  if (format === 'docker') {
    meta.push(text('manifest.json', JSON.stringify(dockerManifest)));
    if (Object.keys(repositories).length) meta.push(text('repositories', JSON.stringify(repositories)));
  }
  const mtime = 0;
  async function* gen(): AsyncGenerator<Buffer> {
    yield encodeHeader({ name: 'blobs', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime });
    yield encodeHeader({ name: 'blobs/sha256', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime });
    for (const it of [...items, ...meta]) {
      yield encodeHeader({ name: it.name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: it.size, mtime });
      if (it.content) yield it.content;
      else {
        // A blob read from another holder than the store: a size other than its descriptor's would break the tar.
        const src = it.open!();
        let n = 0;
        for await (const c of src instanceof Promise ? [await src] : src) {
          n += (c as Buffer).length;
          if (n > it.size) break;
          yield c as Buffer;
        }
        if (n !== it.size)
          throw new KilnError(
            'DIGEST',
            `${it.name} has ${n > it.size ? 'more' : 'fewer'} bytes than its descriptor's ${it.size}`,
          );
      }
      yield padding(it.size);
    }
    yield END_OF_ARCHIVE;
  }
  await pipeline(Readable.from(gen()), out);
  return summary;
}

/** Save to a file atomically (temp + rename), so a failed save leaves no half archive. */
export async function saveImagesToFile(
  store: Store,
  images: SaveInput[],
  format: ArchiveFormat,
  file: string,
): Promise<SavedEntry[]> {
  const out = await openOutputFile(file);
  try {
    const saved = await saveImages(store, images, format, out.stream);
    await out.commit();
    return saved;
  } catch (e) {
    await out.abort();
    throw e;
  }
}
