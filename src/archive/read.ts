/**
 * The one reader of image archives: a docker-archive (what `docker save` writes: manifest.json
 * with config and layer files, legacy or Docker 25+ OCI-shaped) or an OCI image layout (index.json,
 * blobs/), as a tar (gzip-compressed or not) or as a directory. A tar is read in place: its headers
 * are indexed once (positional reads, bodies skipped) and every file is then a byte range of it;
 * a gzip-compressed tar is decompressed once to a temp file first. Images come out as `Image`s
 * (image/image.ts) whose layers are those byte ranges; `kiln load` (load.ts) copies them into the
 * store, analyze reads them where they lie.
 */
import { createReadStream, createWriteStream, promises as fsp, readdirSync, realpathSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { type Digest, isDigest, sha256, KilnError } from '../util/index.js';
import {
  layerHistory,
  type Image,
  type Layer,
  hostPlatform,
  matchPlatform,
  normalizeImageName,
  type Descriptor,
  type Platform,
  parseImageConfig,
  parseIndex,
  parseJSONText,
  parseManifestOrIndex,
} from '../image/index.js';
import { cleanEntryName, BLOCK, decodeHeader, parsePax, type TarHeader } from '../layer/index.js';

/** The largest image document (index, manifest, config, manifest.json) read into memory. */
const MAX_DOCUMENT = 64 << 20;

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
        // A member named outside the archive (../x, /x) is refused, as a layer's would be.
        out.set(cleanEntryName(d.header.name), {
          offset: dataAt,
          size,
          type: d.header.type,
          linkname: d.header.linkname,
        });
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

function cleanName(name: string): string {
  return name
    .split('/')
    .filter((p) => p && p !== '.')
    .join('/');
}

/** A file of the archive: a byte range (end inclusive) of a file on disk. */
export interface ArchiveFile {
  path: string;
  start: number;
  size: number;
}

/** One image an archive lists, before it is opened. */
export interface ArchiveEntry {
  /** Its names: the index's name annotations, or manifest.json's RepoTags (as written). */
  names: string[];
  /** Its descriptor in index.json (OCI layout); absent for a manifest.json entry. */
  descriptor?: Descriptor;
}

export interface ImageArchive {
  /** What the user named (for messages). */
  where: string;
  /** 'oci' when it has an index.json (Docker 25+'s docker-archive too), else 'docker'. */
  layout: 'oci' | 'docker';
  /** The files of the archive, by clean relative name (symlinks resolved when located). */
  names(): string[];
  /** Where a file of the archive lies; undefined when it has no such file. */
  locate(name: string): ArchiveFile | undefined;
  open(name: string): Readable;
  /** An image document (JSON), size-limited. */
  readDocument(name: string): Promise<Buffer>;
  /** index.json's manifests (when it has one and all their blobs are here), else manifest.json's entries. */
  entries(): Promise<ArchiveEntry[]>;
  /** manifest.json's entries as written (docker-archive), when it has one. */
  dockerManifest(): Promise<DockerManifestEntry[] | undefined>;
  /** The image of index.json's entry `i` (default: the only one, else the platform's), or manifest.json's first. */
  image(opts?: { index?: number; platform?: Platform; display?: string }): Promise<Image>;
  close(): Promise<void>;
}

export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** A digest's blob path in an OCI layout. */
export function blobName(d: Digest): string {
  return `blobs/sha256/${d.slice(7)}`;
}

/**
 * Open an archive: a tar file (gzip-compressed or not) or a directory. `tmpDir` is where a
 * compressed tar is decompressed (default: the system's).
 */
export async function openImageArchive(
  file: string,
  opts: { display?: string; tmpDir?: string } = {},
): Promise<ImageArchive> {
  const where = opts.display ?? file;
  const st = await fsp.stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new KilnError('NOT_FOUND', `cannot read image archive: ${e.code ?? e.message}`, { path: file });
  });
  if (st.isDirectory()) return archiveOf(where, dirFiles(file), async () => undefined);
  // A compressed archive cannot be read in place: decompress it once to a temp file.
  let tarFile = file;
  let tmpDir: string | undefined;
  const head = Buffer.alloc(2);
  const fh = await fsp.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new KilnError('NOT_FOUND', `cannot read image archive: ${e.code ?? e.message}`, { path: file });
  });
  await fh.read(head, 0, 2, 0);
  await fh.close();
  const cleanup = async () => {
    if (tmpDir) await fsp.rm(tmpDir, { recursive: true, force: true });
  };
  try {
    if (head[0] === 0x1f && head[1] === 0x8b) {
      tmpDir = await fsp.mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'kiln-archive-'));
      tarFile = path.join(tmpDir, 'archive.tar');
      await pipeline(createReadStream(file), createGunzip(), createWriteStream(tarFile));
    }
    return archiveOf(where, tarFiles(tarFile, await indexTarFile(tarFile), file), cleanup);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

interface Files {
  names(): string[];
  locate(name: string): ArchiveFile | undefined;
}

function tarFiles(tarFile: string, index: Map<string, TarIndexEntry>, where: string): Files {
  const resolve = (name: string, depth = 0): TarIndexEntry | undefined => {
    const e = index.get(name);
    if (e?.type === 'symlink' && e.linkname !== undefined) {
      if (depth >= 8) throw new KilnError('INVALID', `archive: too many symlinks at ${name}`, { path: where });
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(name), e.linkname)).replace(/^\/+/, '');
      return resolve(target, depth + 1);
    }
    return e;
  };
  return {
    names: () => [...index.entries()].filter(([, e]) => e.type === 'file' || e.type === 'symlink').map(([n]) => n),
    locate: (name) => {
      const e = resolve(cleanName(name));
      return e && e.type === 'file' ? { path: tarFile, start: e.offset, size: e.size } : undefined;
    },
  };
}

/** An archive unpacked in a directory (an OCI layout directory, or a docker save unpacked): its files, never outside it. */
function dirFiles(dir: string): Files {
  const root = path.resolve(dir);
  return {
    names: () => {
      const out: string[] = [];
      const walk = (rel: string, depth: number) => {
        if (depth > 4) return;
        for (const e of readdirSafe(path.join(root, rel))) {
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) walk(r, depth + 1);
          else if (e.isFile() || e.isSymbolicLink()) out.push(r);
        }
      };
      walk('', 0);
      return out;
    },
    locate: (name) => {
      const clean = cleanName(name);
      if (clean.split('/').includes('..')) return undefined;
      let real: string;
      try {
        real = realpathSync(path.join(root, clean));
      } catch {
        return undefined;
      }
      if (real !== root && !real.startsWith(`${root}${path.sep}`)) return undefined;
      const st = statSafe(real);
      return st?.isFile() ? { path: real, start: 0, size: st.size } : undefined;
    },
  };
}

function archiveOf(where: string, files: Files, close: () => Promise<void>): ImageArchive {
  const locate = (name: string): ArchiveFile => {
    const f = files.locate(name);
    if (!f) throw new KilnError('INVALID', `archive lacks ${name}`, { path: where });
    return f;
  };
  const open = (name: string): Readable => {
    const f = locate(name);
    return f.size === 0
      ? Readable.from([])
      : createReadStream(f.path, { start: f.start, end: f.start + f.size - 1, highWaterMark: 1 << 20 });
  };
  const readDocument = async (name: string): Promise<Buffer> => {
    const f = locate(name);
    if (f.size > MAX_DOCUMENT)
      throw new KilnError('INVALID', `${name} is too large for an image document`, { path: where });
    const h = await fsp.open(f.path, 'r');
    try {
      const b = Buffer.alloc(f.size);
      await h.read(b, 0, f.size, f.start);
      return b;
    } finally {
      await h.close();
    }
  };
  const layout: 'oci' | 'docker' = files.locate('index.json') ? 'oci' : 'docker';
  const readIndex = async () => parseIndex(parseJSONText(await readDocument('index.json'), 'index.json', where), where);
  const dockerManifest = async (): Promise<DockerManifestEntry[] | undefined> => {
    if (!files.locate('manifest.json')) return undefined;
    const entries = parseJSONText(await readDocument('manifest.json'), 'manifest.json', where);
    if (!Array.isArray(entries))
      throw new KilnError('INVALID', 'malformed manifest.json: expected a list', { path: where });
    return entries as DockerManifestEntry[];
  };
  const notAnArchive = () =>
    new KilnError(
      'INVALID',
      'not an image archive: no manifest.json or index.json',
      { path: where },
      { hint: 'give a file written by docker save, kiln save or skopeo copy docker-archive:/oci-archive:' },
    );

  const ociImage = async (desc: Descriptor, platform: Platform, display: string): Promise<Image> => {
    let name: string | undefined =
      desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name'];
    for (let depth = 0; depth < 4; depth++) {
      const doc = parseManifestOrIndex(
        parseJSONText(await readDocument(blobName(desc.digest)), 'manifest', where),
        desc.mediaType,
        where,
      );
      if (doc.kind === 'index') {
        const m =
          matchPlatform(doc.index.manifests, platform) ??
          (doc.index.manifests.length === 1 ? doc.index.manifests[0] : undefined);
        if (!m)
          throw new KilnError(
            'NOT_FOUND',
            `no image for platform ${platform.os}/${platform.architecture} in the archive`,
            {
              path: where,
            },
          );
        desc = m;
        continue;
      }
      const manifest = doc.manifest;
      const config = parseImageConfig(
        parseJSONText(await readDocument(blobName(manifest.config.digest)), 'image config', where),
        where,
      );
      if (manifest.layers.length !== config.rootfs.diff_ids.length)
        throw new KilnError(
          'INVALID',
          `image has ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
          { path: where },
        );
      const hist = layerHistory(config);
      try {
        name = name && name.includes(':') ? normalizeImageName(name) : undefined;
      } catch {
        name = undefined;
      }
      const manifestDesc = desc;
      return {
        display,
        name,
        id: manifest.config.digest,
        digest: desc.digest,
        descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
        config,
        manifest,
        kind: 'archive',
        layers: manifest.layers.map((l, i): Layer => ({
          index: i,
          diffId: config.rootfs.diff_ids[i]!,
          digest: l.digest,
          mediaType: l.mediaType,
          size: l.size,
          history: hist[i],
          file: range(locate(blobName(l.digest))),
          open: () => open(blobName(l.digest)),
        })),
        rawConfig: () => readDocument(blobName(manifest.config.digest)),
        rawManifest: () => readDocument(blobName(manifestDesc.digest)),
        close,
      };
    }
    throw new KilnError('INVALID', 'image indexes nested too deeply', { path: where });
  };

  const dockerImage = async (entry: DockerManifestEntry, display: string): Promise<Image> => {
    if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers))
      throw new KilnError('INVALID', 'manifest.json entry needs Config and Layers', { path: where });
    const cfgBytes = await readDocument(entry.Config);
    const config = parseImageConfig(parseJSONText(cfgBytes, 'image config', where), where);
    const layerPaths = entry.Layers as unknown[];
    if (layerPaths.length !== config.rootfs.diff_ids.length)
      throw new KilnError(
        'INVALID',
        `image has ${layerPaths.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
        { path: where },
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
      layers: layerPaths.map((p, i): Layer => {
        if (typeof p !== 'string')
          throw new KilnError('INVALID', `manifest.json layer ${i} is not a path`, { path: where });
        const clean = cleanName(p);
        const f = locate(clean);
        return {
          index: i,
          diffId: config.rootfs.diff_ids[i]!,
          digest: digestOfBlobName(clean),
          size: f.size,
          history: hist[i],
          file: range(f),
          open: () => open(clean),
        };
      }),
      rawConfig: async () => cfgBytes,
      close,
    };
  };

  return {
    where,
    layout,
    names: () => files.names(),
    locate: (name) => files.locate(name),
    open,
    readDocument,
    dockerManifest,
    async entries() {
      if (layout === 'oci') {
        const index = await readIndex();
        if (index.manifests.length && index.manifests.every((d) => files.locate(blobName(d.digest))))
          return index.manifests.map((d) => ({ names: namesOf(d), descriptor: d }));
      }
      const docker = await dockerManifest();
      if (!docker) throw notAnArchive();
      return docker.map((e) => ({
        names: Array.isArray(e.RepoTags) ? e.RepoTags.filter((t) => typeof t === 'string') : [],
      }));
    },
    async image(o = {}) {
      const display = o.display ?? where;
      const platform = o.platform ?? hostPlatform();
      if (layout === 'oci') {
        // OCI layout (also what Docker 25+ `docker save` writes beside manifest.json).
        const idx = parseManifestOrIndex(
          parseJSONText(await readDocument('index.json'), 'index.json', where),
          undefined,
          where,
        );
        if (idx.kind !== 'index') throw new KilnError('INVALID', 'index.json is not an image index', { path: where });
        const list = idx.index.manifests;
        let desc: Descriptor | undefined =
          o.index !== undefined ? list[o.index] : list.length === 1 ? list[0] : undefined;
        if (!desc && o.index === undefined) desc = matchPlatform(list, platform) ?? list[0];
        if (!desc) throw new KilnError('INVALID', 'the archive holds no image', { path: where });
        return ociImage(desc, platform, display);
      }
      const docker = await dockerManifest();
      if (!docker) throw notAnArchive();
      const entry = docker[o.index ?? 0];
      if (!entry) throw new KilnError('INVALID', 'manifest.json lists no image', { path: where });
      return dockerImage(entry, display);
    },
    close,
  };
}

function range(f: ArchiveFile): { path: string; start: number; end: number } {
  return { path: f.path, start: f.start, end: f.start + f.size - 1 };
}

/** A docker-archive layer named blobs/sha256/<hex> (Docker 25+) is named by its digest. */
function digestOfBlobName(name: string): Digest | undefined {
  const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
  return m && isDigest(`sha256:${m[1]}`) ? (`sha256:${m[1]}` as Digest) : undefined;
}

/** The names an OCI index entry gives its image (containerd's full name, else ref.name). */
function namesOf(d: Descriptor): string[] {
  const full = d.annotations?.['io.containerd.image.name'];
  const ref = d.annotations?.['org.opencontainers.image.ref.name'];
  return [full, ref].filter((n): n is string => n !== undefined);
}

function readdirSafe(dir: string) {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

function statSafe(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
