/**
 * `kiln save`: images → one tar. `docker` format is what `docker save` writes and `docker load`
 * reads (manifest.json + repositories), laid out as an OCI layout too (index.json, blobs/), as
 * Docker 25+ does; `oci` format is an OCI image layout alone. Blobs are streamed as stored
 * (compressed layers stay compressed: docker load and OCI readers both accept them).
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest, openOutputFile } from '../util/index.js';
import { canonicalJSON, familiarName, parseReference, Annotation, MediaType, type Descriptor } from '../image/index.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';

export type ArchiveFormat = 'docker' | 'oci';

interface Item {
  name: string;
  blob?: Digest;
  content?: Buffer;
  size: number;
}

export async function saveImages(
  store: Store,
  images: LoadedImage[],
  format: ArchiveFormat,
  out: Writable,
): Promise<void> {
  const items: Item[] = [];
  const seen = new Set<string>();
  const addBlob = (d: Descriptor) => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    items.push({ name: `blobs/sha256/${digestHex(d.digest)}`, blob: d.digest, size: d.size });
  };
  const index: Descriptor[] = [];
  const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const img of images) {
    addBlob(img.manifest.config);
    for (const l of img.manifest.layers) addBlob(l);
    addBlob(img.descriptor);
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
      else for await (const c of store.openBlob(it.blob!)) yield c as Buffer;
      yield padding(it.size);
    }
    yield END_OF_ARCHIVE;
  }
  await pipeline(Readable.from(gen()), out);
}

/** Save to a file atomically (temp + rename), so a failed save leaves no half archive. */
export async function saveImagesToFile(
  store: Store,
  images: LoadedImage[],
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
