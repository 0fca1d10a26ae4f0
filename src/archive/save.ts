/**
 * `kiln save`: images → one tar. `docker` format is what `docker save` writes and `docker load`
 * reads (manifest.json + repositories), laid out as an OCI layout too (index.json, blobs/), as
 * Docker 25+ does; `oci` format is an OCI image layout alone. Blobs are streamed as their
 * holder keeps them (compressed layers stay compressed: docker load and OCI readers both accept
 * them). An image is any `Image` (image/image.ts: the store's, an archive's, a registry's) or a
 * loaded image of the store.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest, KilnError, openOutputFile } from '../util/index.js';
import {
  canonicalJSON,
  familiarName,
  parseReference,
  Annotation,
  MediaType,
  type Descriptor,
  type Manifest,
  type Image,
} from '../image/index.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';

export type ArchiveFormat = 'docker' | 'oci';

interface Item {
  name: string;
  open?: () => Readable | Promise<Buffer>;
  content?: Buffer;
  size: number;
}

function isImage(x: LoadedImage | Image): x is Image {
  return 'kind' in x && 'layers' in x;
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

export async function saveImages(
  store: Store,
  given: (LoadedImage | Image)[],
  format: ArchiveFormat,
  out: Writable,
): Promise<void> {
  const images = given.map((g) => savedOf(store, g));
  const items: Item[] = [];
  const seen = new Set<string>();
  const addBlob = (d: Descriptor, img: Saved) => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const open = img.open.get(d.digest);
    if (!open) throw new KilnError('INVALID', `blob ${d.digest} of ${img.name ?? img.id} cannot be read`);
    items.push({ name: `blobs/sha256/${digestHex(d.digest)}`, open, size: d.size });
  };
  const index: Descriptor[] = [];
  const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const img of images) {
    addBlob(img.manifest.config, img);
    for (const l of img.manifest.layers) addBlob(l, img);
    addBlob(img.descriptor, img);
    const annotations: Record<string, string> = {};
    const tags: string[] = [];
    if (img.name) {
      const ref = parseReference(img.name);
      annotations['io.containerd.image.name'] = img.name;
      if (ref.tag) {
        annotations[Annotation.RefName] = format === 'oci' ? img.name : ref.tag;
        tags.push(familiarName(img.name));
        const repo = familiarName(ref.name());
        (repositories[repo] ??= {})[ref.tag] = digestHex(img.id);
      }
    }
    index.push({
      mediaType: img.descriptor.mediaType,
      digest: img.descriptor.digest,
      size: img.descriptor.size,
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
}

/** Save to a file atomically (temp + rename), so a failed save leaves no half archive. */
export async function saveImagesToFile(
  store: Store,
  images: (LoadedImage | Image)[],
  format: ArchiveFormat,
  file: string,
): Promise<void> {
  const out = await openOutputFile(file);
  try {
    await saveImages(store, images, format, out.stream);
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}
