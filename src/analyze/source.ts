/**
 * Where an image to analyse comes from: kiln's store (by name or id), an image archive file
 * (docker-archive as `docker save` writes it, or an OCI layout tar; optionally prefixed
 * "docker-archive:" / "oci-archive:"), read in place without importing it, or — when nothing
 * local matches — a registry (pulled into the store first, when kiln's registry client is
 * available). Layers are opened as streams; nothing is unpacked.
 */
import { createReadStream, createWriteStream, promises as fsp, existsSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { type Digest, isDigest, sha256, KilnError, isKilnError } from '../util/index.js';
import {
  hostPlatform,
  matchPlatform,
  normalizeImageName,
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
  type Manifest,
  type Platform,
  parseImageConfig,
  parseJSONText,
  parseManifestOrIndex,
} from '../image/index.js';
import { BLOCK, decodeHeader, parsePax, type TarHeader } from '../layer/index.js';
import { type Store } from '../store/index.js';
import { pull } from '../registry/index.js';

export interface LayerRef {
  index: number;
  diffId: Digest;
  /** Blob digest (compressed), when the source has one. */
  digest?: Digest;
  mediaType?: string;
  /** Blob size in bytes, when known. */
  size?: number;
  /** The history entry that made this layer ("(missing)" sources have none). */
  history?: HistoryEntry;
  /** Size of the uncompressed tar, when known without reading it. */
  uncompressedSize?: number;
  /** Its files' bytes (what docker shows as a layer's size: layer/content-size.ts), when known without reading it. */
  contentSize?: number;
  /** Where the blob lies in a file (byte range, end inclusive), when it does: read in place. */
  file?: { path: string; start: number; end: number };
  /** The layer blob as stored (gzip, zstd or plain tar: openLayer detects which). */
  open(): Readable;
}

export interface ImageSource {
  /** What the user named. */
  display: string;
  /** Full normalised name when the image has one. */
  name?: string;
  /** Image id: the config digest. */
  id: Digest;
  /** Manifest digest, when the image has a manifest. */
  digest?: Digest;
  config: ImageConfig;
  manifest?: Manifest;
  layers: LayerRef[];
  kind: 'store' | 'archive' | 'registry';
  close(): Promise<void>;
}

export interface OpenOptions {
  store?: Store;
  platform?: Platform;
}

/** Pair each non-empty history entry with its layer, in order (docker's rule). */
export function layerHistory(config: ImageConfig): (HistoryEntry | undefined)[] {
  const n = config.rootfs.diff_ids.length;
  const nonEmpty = (config.history ?? []).filter((h) => !h.empty_layer);
  return Array.from({ length: n }, (_, i) => nonEmpty[i]);
}

export async function openImageSource(ref: string, opts: OpenOptions = {}): Promise<ImageSource> {
  const m = /^(docker-archive|oci-archive):(.+)$/.exec(ref);
  if (m) return openArchive(m[2]!, ref, opts);
  if (existsSync(ref) && statSync(ref).isFile()) return openArchive(ref, ref, opts);
  if (!opts.store) throw new KilnError('NOT_FOUND', `no such image: ${ref}`, { image: ref });
  try {
    return await fromStore(opts.store, ref, opts);
  } catch (e) {
    if (!(isKilnError(e) && e.code === 'NOT_FOUND')) throw e;
    const pulled = await tryPull(opts.store, ref, opts);
    if (pulled) return pulled;
    throw e;
  }
}

async function fromStore(store: Store, ref: string, opts: OpenOptions): Promise<ImageSource> {
  const img = await store.resolveImage(ref, { platform: opts.platform });
  const hist = layerHistory(img.config);
  const facts = await Promise.all(img.manifest.layers.map((l) => store.layerFacts(l.digest)));
  if (img.manifest.layers.length !== img.config.rootfs.diff_ids.length)
    throw new KilnError(
      'INVALID',
      `image has ${img.manifest.layers.length} layers but ${img.config.rootfs.diff_ids.length} diff_ids`,
      { image: ref },
    );
  return {
    display: ref,
    name: img.name,
    id: img.id,
    digest: img.descriptor.digest,
    config: img.config,
    manifest: img.manifest,
    kind: 'store',
    layers: img.manifest.layers.map((d, i) => ({
      index: i,
      diffId: img.config.rootfs.diff_ids[i]!,
      digest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
      history: hist[i],
      uncompressedSize: facts[i]?.uncompressedSize,
      contentSize: facts[i]?.contentSize,
      file: { path: store.blobPath(d.digest), start: 0, end: d.size - 1 },
      open: () => store.openBlob(d.digest),
    })),
    close: async () => undefined,
  };
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
  const src = await fromStore(store, name, opts);
  return { ...src, kind: 'registry' };
}

// ---- archives ----

interface TarIndexEntry {
  offset: number;
  size: number;
  type: TarHeader['type'];
  linkname?: string;
}

/** Index an uncompressed tar file by reading only its headers (positional reads, bodies skipped). */
export async function indexTarFile(file: string): Promise<Map<string, TarIndexEntry>> {
  const fh = await fsp.open(file, 'r');
  const out = new Map<string, TarIndexEntry>();
  try {
    const { size: fileSize } = await fh.stat();
    let pos = 0;
    let pax = new Map<string, Buffer>();
    const globalPax = new Map<string, Buffer>();
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    const block = Buffer.alloc(BLOCK);
    while (pos + BLOCK <= fileSize) {
      await fh.read(block, 0, BLOCK, pos);
      const d = decodeHeader(block, new Map([...globalPax, ...pax]), longName, longLink);
      if (!d) break;
      const dataAt = pos + BLOCK;
      const size = d.header.size;
      const next = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      if (dataAt + size > fileSize)
        throw new KilnError('INVALID', `truncated archive: entry ${d.header.name} runs past the end`, { path: file });
      if ('xgLK'.includes(d.typeflag)) {
        if (size > 1 << 20) throw new KilnError('UNSAFE', 'archive tar extended header too large', { path: file });
        const data = Buffer.alloc(size);
        await fh.read(data, 0, size, dataAt);
        if (d.typeflag === 'x') parsePax(data, pax);
        else if (d.typeflag === 'g') parsePax(data, globalPax);
        else if (d.typeflag === 'L') longName = data;
        else longLink = data;
      } else {
        const name = d.header.name
          .split('/')
          .filter((p) => p && p !== '.')
          .join('/');
        out.set(name, { offset: dataAt, size, type: d.header.type, linkname: d.header.linkname });
        pax = new Map();
        longName = undefined;
        longLink = undefined;
      }
      pos = next;
    }
  } finally {
    await fh.close();
  }
  return out;
}

async function openArchive(file: string, display: string, opts: OpenOptions): Promise<ImageSource> {
  // A compressed archive cannot be read in place: decompress it once to a temp file.
  let tarFile = file;
  let tmpDir: string | undefined;
  const head = Buffer.alloc(2);
  const fh = await fsp.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new KilnError('NOT_FOUND', `cannot read image archive: ${e.code ?? e.message}`, { path: file });
  });
  await fh.read(head, 0, 2, 0);
  await fh.close();
  if (head[0] === 0x1f && head[1] === 0x8b) {
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-analyze-'));
    tarFile = path.join(tmpDir, 'archive.tar');
    await pipeline(createReadStream(file), createGunzip(), createWriteStream(tarFile));
  }
  const cleanup = async () => {
    if (tmpDir) await fsp.rm(tmpDir, { recursive: true, force: true });
  };
  try {
    const index = await indexTarFile(tarFile);
    const resolve = (name: string, depth = 0): TarIndexEntry => {
      const e = index.get(name);
      if (!e) throw new KilnError('INVALID', `archive lacks ${name}`, { path: file });
      if (e.type === 'symlink' && e.linkname !== undefined && depth < 8) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(name), e.linkname)).replace(/^\/+/, '');
        return resolve(target, depth + 1);
      }
      return e;
    };
    const readSmall = async (name: string): Promise<Buffer> => {
      const e = resolve(name);
      if (e.size > 64 << 20)
        throw new KilnError('INVALID', `${name} is too large for an image document`, { path: file });
      const h = await fsp.open(tarFile, 'r');
      try {
        const b = Buffer.alloc(e.size);
        await h.read(b, 0, e.size, e.offset);
        return b;
      } finally {
        await h.close();
      }
    };
    const fileRange = (name: string) => {
      const e = resolve(name);
      return { path: tarFile, start: e.offset, end: e.offset + e.size - 1 };
    };
    const stream = (name: string) => () => {
      const e = resolve(name);
      return e.size === 0
        ? Readable.from([])
        : createReadStream(tarFile, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: 1 << 20 });
    };
    const platform = opts.platform ?? hostPlatform();

    if (index.has('index.json')) {
      // OCI layout (also what Docker 25+ `docker save` writes beside manifest.json).
      const idx = parseManifestOrIndex(
        parseJSONText(await readSmall('index.json'), 'index.json', file),
        undefined,
        file,
      );
      if (idx.kind !== 'index') throw new KilnError('INVALID', 'index.json is not an image index', { path: file });
      let desc: Descriptor | undefined = idx.index.manifests.length === 1 ? idx.index.manifests[0] : undefined;
      if (!desc) desc = matchPlatform(idx.index.manifests, platform) ?? idx.index.manifests[0];
      if (!desc) throw new KilnError('INVALID', 'the archive holds no image', { path: file });
      const blob = (d: Digest) => `blobs/sha256/${d.slice(7)}`;
      let name: string | undefined =
        desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name'];
      for (let depth = 0; depth < 4; depth++) {
        const doc = parseManifestOrIndex(
          parseJSONText(await readSmall(blob(desc.digest)), 'manifest', file),
          desc.mediaType,
          file,
        );
        if (doc.kind === 'index') {
          const m =
            matchPlatform(doc.index.manifests, platform) ??
            (doc.index.manifests.length === 1 ? doc.index.manifests[0] : undefined);
          if (!m)
            throw new KilnError(
              'NOT_FOUND',
              `no image for platform ${platform.os}/${platform.architecture} in the archive`,
              { path: file },
            );
          desc = m;
          continue;
        }
        const manifest = doc.manifest;
        const config = parseImageConfig(
          parseJSONText(await readSmall(blob(manifest.config.digest)), 'image config', file),
          file,
        );
        if (manifest.layers.length !== config.rootfs.diff_ids.length)
          throw new KilnError(
            'INVALID',
            `image has ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
            { path: file },
          );
        const hist = layerHistory(config);
        try {
          name = name && name.includes(':') ? normalizeImageName(name) : undefined;
        } catch {
          name = undefined;
        }
        return {
          display,
          name,
          id: manifest.config.digest,
          digest: desc.digest,
          config,
          manifest,
          kind: 'archive',
          layers: manifest.layers.map((l, i) => ({
            index: i,
            diffId: config.rootfs.diff_ids[i]!,
            digest: l.digest,
            mediaType: l.mediaType,
            size: l.size,
            history: hist[i],
            file: fileRange(blob(l.digest)),
            open: stream(blob(l.digest)),
          })),
          close: cleanup,
        };
      }
      throw new KilnError('INVALID', 'image indexes nested too deeply', { path: file });
    }

    if (index.has('manifest.json')) {
      const entries = parseJSONText(await readSmall('manifest.json'), 'manifest.json', file);
      if (!Array.isArray(entries) || entries.length === 0)
        throw new KilnError('INVALID', 'manifest.json lists no image', { path: file });
      const entry = entries[0] as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
      if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers))
        throw new KilnError('INVALID', 'manifest.json entry needs Config and Layers', { path: file });
      const cfgBytes = await readSmall(entry.Config);
      const config = parseImageConfig(parseJSONText(cfgBytes, 'image config', file), file);
      const layerPaths = entry.Layers as unknown[];
      if (layerPaths.length !== config.rootfs.diff_ids.length)
        throw new KilnError(
          'INVALID',
          `image has ${layerPaths.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
          { path: file },
        );
      const hist = layerHistory(config);
      const tags = Array.isArray(entry.RepoTags)
        ? (entry.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string')
        : [];
      let name: string | undefined;
      try {
        name = tags[0] ? normalizeImageName(tags[0]) : undefined;
      } catch {
        name = undefined;
      }
      return {
        display,
        name,
        id: sha256(cfgBytes),
        config,
        kind: 'archive',
        layers: layerPaths.map((p, i) => {
          if (typeof p !== 'string')
            throw new KilnError('INVALID', `manifest.json layer ${i} is not a path`, { path: file });
          const e = resolve(
            p
              .split('/')
              .filter((x) => x && x !== '.')
              .join('/'),
          );
          const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
          const digest = m && isDigest(`sha256:${m[1]}`) ? (`sha256:${m[1]}` as Digest) : undefined;
          const name = p
            .split('/')
            .filter((x) => x && x !== '.')
            .join('/');
          return {
            index: i,
            diffId: config.rootfs.diff_ids[i]!,
            digest,
            size: e.size,
            history: hist[i],
            file: fileRange(name),
            open: stream(name),
          };
        }),
        close: cleanup,
      };
    }
    throw new KilnError(
      'INVALID',
      'not an image archive: no manifest.json or index.json',
      { path: file },
      { hint: 'give a file written by docker save, kiln save or skopeo copy docker-archive:/oci-archive:' },
    );
  } catch (e) {
    await cleanup();
    throw e;
  }
}
