/**
 * kiln's store: content-addressed blobs, the tagged images, unpacked layer snapshots. It is an
 * OCI image layout (oci-layout, index.json, blobs/sha256/…) so skopeo (`oci:ROOT:NAME`) and umoci
 * read it directly; the ref.name annotation holds the full normalised image name.
 *
 * Every write is atomic (temp file + fsync + rename, after the digest checks); index.json changes
 * happen under a cross-process lock; snapshots are made in a temp dir and renamed into place.
 */
import {
  chmodSync,
  closeSync,
  createReadStream,
  fstatSync,
  readSync,
  createWriteStream,
  fdatasync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  promises as fsp,
} from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { Writable, type Readable } from 'node:stream';
import {
  HashingStream,
  chainId,
  chainIds,
  digestHex,
  isDigest,
  sha256,
  type Digest,
  KilnError,
  writeFileAtomic,
  processAlive,
  removeTree,
  bootId,
  joinPath,
} from '../util/index.js';
import {
  canonicalJSON,
  familiarName,
  normalizeImageName,
  parseReference,
  matchPlatform,
  hostPlatform,
  formatPlatform,
  platformsOf,
  Annotation,
  INDEX_MEDIA_TYPES,
  MediaType,
  type Compression,
  type Descriptor,
  type ImageConfig,
  type Index,
  type Manifest,
  type Platform,
  parseImageConfig,
  parseOwnImageConfig,
  parseOwnIndex,
  parseOwnManifestOrIndex,
  parseJSONText,
  parseManifest,
} from '../image/index.js';
import {
  applyLayer,
  encodeLayer,
  type LayerInfo,
  type SkeletonEntry,
  openLayer,
  TarContentSize,
  measureLayer,
} from '../layer/index.js';
import { withFileLock } from './lock.js';
import { MemoryFirstWritable, replaceFileSync, writeFileDurably } from './small-blob.js';
import { parseProvenance, type CopyProvenance } from './provenance.js';
import { sweepVariants } from './variants.js';
import { defaultStoreRoot, StoreLayout, storeLayout } from './layout.js';

/** What the store remembers of a layer, so nothing has to read it again. */
export interface LayerFacts {
  diffId: Digest;
  uncompressedSize: number;
  /**
   * The bytes of its files as `docker images` counts them (layer/content-size.ts): what kiln
   * reports as the layer's size. Absent in facts written before it was kept, or when the layer
   * could not be read as a tar; imageSize measures it then.
   */
  contentSize?: number;
  /**
   * The first components of every path in the layer (e.g. ["app", "etc"]), when the layer was
   * made by kiln from known entries (COPY, WORKDIR): a partial view (sandbox/view.ts) skips a
   * layer with nothing on the paths it wants without reading it.
   */
  tops?: string[];
  /** Its skeleton (layer/write.ts layerSkeleton): a partial view may need not read it at all. */
  skeleton?: { root: string; entries: SkeletonEntry[] };
}

export interface BlobWriter {
  stream: Writable;
  commit(expected?: { digest?: Digest; size?: number }): Promise<{ digest: Digest; size: number }>;
  abort(): Promise<void>;
}

export interface ImageRecord {
  name: string;
  descriptor: Descriptor;
}

export interface LoadedImage {
  name?: string;
  descriptor: Descriptor;
  manifest: Manifest;
  config: ImageConfig;
  id: Digest;
}

const STALE_TMP_MS = 24 * 3600 * 1000;
/**
 * A layer up to this size is held in memory while it is encoded and written whole (small-blob.ts):
 * the tar encoder's own chunk is this size, so memory stays what streaming it took.
 */
const SMALL_LAYER = 1 << 20;

export class Store {
  /** Where each kind of state lives under the root: the store hands these places out. */
  readonly layout: StoreLayout;

  private constructor(readonly root: string) {
    this.layout = new StoreLayout(root);
  }

  static async open(opts: { root?: string } = {}): Promise<Store> {
    const root = path.resolve(opts.root ?? defaultStoreRoot());
    const s = new Store(root);
    // Synchronous: a dozen calls of ~10 µs on every command's start, each of which waited its turn
    // on the thread pool (~3 ms in all).
    refuseForeignDir(root);
    lockDown(root);
    mkdirSync(s.layout.blobsDir, { recursive: true });
    mkdirSync(s.tmpDir, { recursive: true });
    mkdirSync(s.layout.snapshotsDir, { recursive: true, mode: 0o700 });
    lockDown(s.layout.snapshotsDir);
    const layout = s.layout.ociLayoutFile;
    if (!statSync(layout, { throwIfNoEntry: false }))
      await writeFileAtomic(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (!statSync(s.indexPath, { throwIfNoEntry: false }))
      await writeFileAtomic(
        s.indexPath,
        canonicalJSON({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
      );
    return s;
  }

  get tmpDir(): string {
    return this.layout.tmpDir;
  }
  /** Run-state directories of containers and views (sandbox/rundir.ts makes one per run). */
  get runDir(): string {
    return this.layout.runDir;
  }
  /** The build cache's directory (cache/records.ts). */
  get cacheDir(): string {
    return this.layout.cacheDir;
  }
  /** RUN --mount=type=cache directories. */
  get cacheMountsDir(): string {
    return this.layout.cacheMountsDir;
  }
  /** Where the files naming what gc must keep besides tagged images go. */
  get gcRootsDir(): string {
    return this.layout.gcRootsDir;
  }
  /** The snapshot directory of a chain id. */
  snapshotDir(chain: Digest): string {
    return this.layout.snapshotDir(chain);
  }
  private get indexPath(): string {
    return this.layout.indexFile;
  }
  private get lockPath(): string {
    return this.layout.lockFile;
  }

  // ---- blobs ----

  blobPath(d: Digest): string {
    if (!isDigest(d)) throw new KilnError('INVALID', `invalid digest ${JSON.stringify(d)}`);
    return this.layout.blobFile(d);
  }

  /** Synchronous (a stat, ~5 µs): asked of every layer of an image as a build ends, where a trip through the thread pool queued behind other I/O. */
  async hasBlob(d: Digest): Promise<boolean> {
    return statSync(this.blobPath(d), { throwIfNoEntry: false }) !== undefined;
  }

  openBlob(d: Digest, opts: { start?: number } = {}): Readable {
    const s = createReadStream(this.blobPath(d), { start: opts.start, highWaterMark: 1 << 20 });
    return s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        s.emit('error', new KilnError('NOT_FOUND', `blob ${d} is not in the store`, { path: this.root }));
    });
  }

  async readBlob(d: Digest): Promise<Buffer> {
    try {
      return await fsp.readFile(this.blobPath(d));
    } catch (e) {
      throw this.blobReadError(d, e);
    }
  }

  /** A blob's read error as the store reports it: a missing blob is NOT_FOUND. */
  private blobReadError(d: Digest, e: unknown): unknown {
    return (e as NodeJS.ErrnoException).code === 'ENOENT'
      ? new KilnError('NOT_FOUND', `blob ${d} is not in the store`, { path: this.root })
      : e;
  }

  /**
   * A JSON blob (a manifest, a config, an index: a few KB, read whole and parsed at once anyway),
   * read with a synchronous call: each stage of a build reads its base image's on its path, where
   * each of readFile's four trips through the thread pool waited behind the other stages' I/O.
   */
  async readJSON(d: Digest): Promise<unknown> {
    let text: Buffer;
    try {
      text = readFileSync(this.blobPath(d));
    } catch (e) {
      throw this.blobReadError(d, e);
    }
    return parseJSONText(text, `blob ${d}`);
  }

  /**
   * A temp file that becomes a blob on commit (fsynced, then renamed). It hashes what it is given, unless `hashedBy:
   * 'producer'`: then the producer (the layer encoder, which hashes every byte it emits) names the
   * digest, and commit checks the size only, sparing a second sha256 pass over every layer.
   */
  async createBlobWriter(opts: { hashedBy?: 'store' | 'producer'; heldUpTo?: number } = {}): Promise<BlobWriter> {
    return opts.heldUpTo ? this.heldBlobWriter(opts.heldUpTo, opts) : this.streamingBlobWriter(opts);
  }

  /** A blob's temp file. */
  private blobTempPath(): string {
    return joinPath(this.tmpDir, `blob-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * createBlobWriter with `heldUpTo`: a blob of at most that many bytes is held in memory and
   * written whole at commit (small-blob.ts: a tiny layer no longer pays a stream's trips through the
   * thread pool); a bigger one streams to its temp file as soon as it outgrows the limit.
   */
  private async heldBlobWriter(limit: number, opts: { hashedBy?: 'store' | 'producer' }): Promise<BlobWriter> {
    let inner: BlobWriter | undefined;
    let done = false;
    const stream = new MemoryFirstWritable(limit, async () => {
      if (done) throw new KilnError('INTERNAL', 'blob writer already finished');
      inner = await this.streamingBlobWriter(opts);
      return inner.stream;
    });
    const finished = new Promise<void>((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', reject);
    });
    finished.catch(() => undefined);
    const abort = async () => {
      done = true;
      stream.destroy();
      await inner?.abort();
    };
    return {
      stream,
      abort,
      commit: async (expected = {}) => {
        if (done) throw new KilnError('INTERNAL', 'blob writer already finished');
        try {
          if (!stream.writableEnded) stream.end();
          await finished;
          if (inner) {
            done = true;
            return await inner.commit(expected); // it cleans up after itself when it fails
          }
          const buf = stream.held();
          if (opts.hashedBy === 'producer' && expected.digest === undefined)
            throw new KilnError('INTERNAL', 'a producer-hashed blob needs its digest at commit');
          const digest = opts.hashedBy === 'producer' ? expected.digest! : sha256(buf);
          checkBlob(expected, digest, buf.length);
          // Already stored (e.g. the same small COPY layer made again after an earlier step changed):
          // that file was synced before it was renamed in, so it is whole; no second fsync.
          if (!statSync(this.blobPath(digest), { throwIfNoEntry: false }))
            await writeFileDurably(this.blobPath(digest), buf, this.blobTempPath());
          done = true;
          return { digest, size: buf.length };
        } catch (e) {
          await abort();
          throw e;
        }
      },
    };
  }

  /** createBlobWriter's stream to a temp file, synced as it grows (EarlyWriteback). */
  private async streamingBlobWriter(opts: { hashedBy?: 'store' | 'producer' }): Promise<BlobWriter> {
    const tmp = this.blobTempPath();
    const file = createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 });
    const writeback = new EarlyWriteback(file, tmp);
    const hasher = opts.hashedBy === 'producer' ? undefined : new HashingStream();
    hasher?.pipe(file);
    const input: Writable = hasher ?? file;
    const finished = new Promise<void>((resolve, reject) => {
      file.on('close', resolve);
      file.on('error', reject);
      hasher?.on('error', reject);
    });
    finished.catch(() => undefined);
    let done = false;
    const abort = async () => {
      done = true;
      await writeback.stop();
      hasher?.destroy();
      file.destroy();
      await fsp.rm(tmp, { force: true });
    };
    return {
      stream: input,
      abort,
      commit: async (expected = {}) => {
        if (done) throw new KilnError('INTERNAL', 'blob writer already finished');
        try {
          if (!input.writableEnded) input.end();
          await finished;
          await writeback.stop();
          if (!hasher && expected.digest === undefined)
            throw new KilnError('INTERNAL', 'a producer-hashed blob needs its digest at commit');
          const digest = hasher ? hasher.digest() : expected.digest!;
          const size = hasher ? hasher.bytes : file.bytesWritten;
          checkBlob(expected, digest, size);
          // Already stored (a layer made again with the same bytes, e.g. a COPY --from after an
          // earlier step changed): that file was synced before it was renamed in; no second fsync.
          if (statSync(this.blobPath(digest), { throwIfNoEntry: false })) {
            await fsp.rm(tmp, { force: true });
            done = true;
            return { digest, size };
          }
          const fh = await fsp.open(tmp, 'r');
          await fh.sync();
          await fh.close();
          await fsp.rename(tmp, this.blobPath(digest));
          done = true;
          return { digest, size };
        } catch (e) {
          await abort();
          throw e;
        }
      },
    };
  }

  /**
   * Encode a layer tar into a blob (a plain tar unless `compression` says otherwise: the store keeps
   * the layers it makes so, see compressed.ts), and remember its diff_id and size. With
   * `expectedDiffId`, a tar of other content is refused (nothing is stored).
   */
  async putLayer(
    tar: Readable,
    opts: {
      compression?: Compression;
      expectedDiffId?: Digest;
      tops?: string[];
      skeleton?: LayerFacts['skeleton'];
      /** tops and skeleton known once the tar was read (a layer whose entries were streamed into it). */
      factsAfter?: () => { tops?: string[]; skeleton?: LayerFacts['skeleton'] };
      tee?: (chunk: Buffer) => Promise<void>;
      /** Called once the layer is encoded and checked, before the blob is committed (a push ends its upload meanwhile). */
      encoded?: (info: LayerInfo) => void;
      level?: number;
    } = {},
  ): Promise<LayerInfo> {
    const w = await this.createBlobWriter({ hashedBy: 'producer', heldUpTo: SMALL_LAYER });
    let info: LayerInfo;
    try {
      // `tee`: every encoded chunk goes there too, as it is written (a push uploads it meanwhile).
      const dest = opts.tee ? teeTo(w.stream, opts.tee) : w.stream;
      info = await encodeLayer(tar, dest, { compression: opts.compression ?? 'none', level: opts.level });
      if (opts.expectedDiffId !== undefined && info.diffId !== opts.expectedDiffId)
        throw new KilnError('DIGEST', `layer diff_id mismatch: expected ${opts.expectedDiffId}, got ${info.diffId}`);
      opts.encoded?.(info);
    } catch (e) {
      await w.abort();
      throw e;
    }
    await w.commit({ digest: info.digest, size: info.size });
    const { tops, skeleton } = opts.factsAfter?.() ?? opts;
    await this.recordLayer(info.digest, {
      diffId: info.diffId,
      uncompressedSize: info.uncompressedSize,
      ...(info.contentSize !== undefined ? { contentSize: info.contentSize } : {}),
      ...(tops ? { tops } : {}),
      ...(skeleton ? { skeleton } : {}),
    });
    return info;
  }

  async putBlob(
    data: Buffer | string,
    expected?: { digest?: Digest; size?: number },
  ): Promise<{ digest: Digest; size: number }> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const digest = sha256(buf);
    if (expected?.digest && expected.digest !== digest)
      throw new KilnError('DIGEST', `blob digest mismatch: expected ${expected.digest}, got ${digest}`);
    if (statSync(this.blobPath(digest), { throwIfNoEntry: false })) return { digest, size: buf.length };
    // A document in memory (a manifest, a config: a few KB, on a build's critical path): written
    // with synchronous calls, and fsynced through the thread pool (the one wait: a build's config
    // and manifest are synced side by side), not streamed through a hashing writer (~8 round trips).
    await writeFileDurably(this.blobPath(digest), buf, this.blobTempPath());
    return { digest, size: buf.length };
  }

  // ---- images ----

  private async readIndex(): Promise<Index> {
    return this.indexUnderLock(this.lastIndex);
  }

  /** index.json's bytes and what they parsed to, as last read by this Store (readIndex). */
  private lastIndex?: { text: Buffer; idx: Index };

  /**
   * index.json's bytes, read whole on each use (another process may have changed it). Synchronous:
   * a few KB, read on a build's critical path (tag, base images), where a trip through the thread
   * pool waited behind the layer I/O of other work.
   */
  private readIndexText(): Buffer {
    return readFileSync(this.indexPath);
  }

  private parseIndexText(text: Buffer): Index {
    return parseOwnIndex(parseJSONText(text, 'store index.json', this.indexPath), this.indexPath);
  }

  /**
   * Replace index.json (under the store's lock): temp file, one fsync, rename. The one fsync of a
   * tag: index.json is the root of every tagged image, and a crash must leave it whole, the old or
   * the new one (the directory is not synced: a crash may undo the rename, i.e. the tag).
   */
  private async writeIndexFile(idx: Index): Promise<void> {
    // The fsync through the thread pool (writeFileDurably): it waits for the disk (2-10 ms at a
    // build's end), while the build's one JavaScript thread goes on with what runs beside it.
    await writeFileDurably(this.indexPath, Buffer.from(canonicalJSON(idx)));
  }

  /**
   * index.json as it is now (under the lock, for a change): a copy of `before` (its bytes and what
   * they parsed to, read earlier) when its bytes are the same, without parsing and validating it
   * again (~0.5 ms for a few images: a build reads it for its base images, then to tag).
   */
  private indexUnderLock(before?: { text: Buffer; idx: Index }): Index {
    const text = this.readIndexText();
    if (before && text.equals(before.text)) return structuredClone(before.idx);
    const idx = this.parseIndexText(text);
    this.lastIndex = { text, idx: structuredClone(idx) };
    return idx;
  }

  async listImages(): Promise<ImageRecord[]> {
    const idx = await this.readIndex();
    return idx.manifests
      .filter((d) => d.annotations?.[Annotation.RefName])
      .map((d) => ({ name: d.annotations![Annotation.RefName]!, descriptor: d }));
  }

  /** The descriptor NAME (any docker spelling) points at: a manifest's or an index's; undefined when untagged. */
  async tagged(name: string): Promise<Descriptor | undefined> {
    let full: string;
    try {
      full = normalizeImageName(name);
    } catch {
      return undefined;
    }
    return (await this.listImages()).find((i) => i.name === full)?.descriptor;
  }

  /** Point NAME at a manifest (or index) descriptor; replaces an existing tag. */
  async setTag(name: string, manifest: Descriptor, opts: { allowDigest?: boolean } = {}): Promise<void> {
    const full = normalizeImageName(name);
    // A pull by digest records NAME@DIGEST (docker's repo digest); a user cannot tag by digest.
    if (!opts.allowDigest && parseReference(full).digest !== undefined && parseReference(full).tag === undefined)
      throw new KilnError('USAGE', `cannot tag by digest: ${name}`);
    const { annotations: _a, ...rest } = manifest;
    void _a;
    const entry: Descriptor = { ...rest, annotations: { ...(manifest.annotations ?? {}), [Annotation.RefName]: full } };
    // The name already says exactly this (a rebuild of the same image): no lock, no write, no fsync.
    // index.json is replaced atomically, so this read sees a whole index; a concurrent retag of the
    // name is then ordered after this one, as if it had been written.
    const named = (await this.readIndex()).manifests.find((d) => d.annotations?.[Annotation.RefName] === full);
    if (named && canonicalJSON(named) === canonicalJSON(entry)) return;
    await withFileLock(this.lockPath, async () => {
      const idx = this.indexUnderLock(this.lastIndex);
      idx.manifests = idx.manifests.filter((d) => d.annotations?.[Annotation.RefName] !== full);
      idx.manifests.push(entry);
      idx.manifests.sort(byRefName);
      await this.writeIndexFile(idx);
    });
  }

  /**
   * Point several names at images in one change of index.json: all of them or none. Every name is
   * checked before anything is written.
   */
  async setTags(tags: { name: string; descriptor: Descriptor }[], opts: { allowDigest?: boolean } = {}): Promise<void> {
    const entries = tags.map((t) => {
      let full: string;
      try {
        full = normalizeImageName(t.name);
      } catch (e) {
        throw new KilnError(
          'INVALID',
          `invalid image name ${JSON.stringify(t.name)}: ${(e as Error).message}`,
          { image: t.name },
          { hint: 'nothing was tagged' },
        );
      }
      if (!opts.allowDigest && parseReference(full).digest !== undefined && parseReference(full).tag === undefined)
        throw new KilnError('USAGE', `cannot tag by digest: ${t.name}`);
      const { annotations: _a, ...rest } = t.descriptor;
      void _a;
      return {
        ...rest,
        annotations: { ...(t.descriptor.annotations ?? {}), [Annotation.RefName]: full },
      } as Descriptor;
    });
    if (!entries.length) return;
    await withFileLock(this.lockPath, async () => {
      const idx = this.indexUnderLock();
      const names = new Set(entries.map((d) => d.annotations![Annotation.RefName]));
      idx.manifests = idx.manifests.filter((d) => !names.has(d.annotations?.[Annotation.RefName] ?? ''));
      // A name given twice: the last one wins, as a sequence of tags would have it.
      const last = new Map(entries.map((d) => [d.annotations![Annotation.RefName]!, d]));
      idx.manifests.push(...last.values());
      idx.manifests.sort(byRefName);
      await this.writeIndexFile(idx);
    });
  }

  /**
   * Check a whole image before a tag moves to it (pull, load, import): its manifest and config
   * parse, the config names as many diff_ids as the manifest has layers, every blob is here (each
   * was checked against its digest on the way in) and every layer is a tar whose diff_id is the
   * config's. A layer is read once: what it measured is remembered in its facts.
   */
  async verifyImage(
    desc: Descriptor,
    opts: { where?: string; platform?: Platform; concurrency?: number } = {},
  ): Promise<LoadedImage> {
    const where = opts.where ?? desc.digest;
    const img = await this.loadImage(desc, { name: opts.where, platform: opts.platform });
    const { layers } = img.manifest;
    const diffIds = img.config.rootfs.diff_ids;
    if (diffIds.length !== layers.length) {
      throw new KilnError(
        'INVALID',
        `${where}: the config lists ${diffIds.length} layers (diff_ids), the manifest ${layers.length}`,
        { image: where },
        { hint: 'the image is malformed; nothing was tagged' },
      );
    }
    const chains = chainIds(diffIds);
    let next = 0;
    let failed: unknown;
    const worker = async () => {
      while (failed === undefined && next < layers.length) {
        const i = next++;
        try {
          await this.verifyLayer(layers[i]!, diffIds[i]!, chains[i]!, where);
        } catch (e) {
          failed ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, layers.length) }, worker));
    if (failed !== undefined) throw failed;
    return img;
  }

  /** One layer of verifyImage: `chain` is its chain id in the image (a snapshot-only layer has only that). */
  async verifyLayer(layer: Descriptor, diffId: Digest, chain: Digest, where: string): Promise<void> {
    const known = await this.layerFacts(layer.digest);
    if (known?.diffId === diffId) return;
    if (!(await this.hasBlob(layer.digest))) {
      // A snapshot-only layer (a builder's RUN layer kiln made): its snapshot stands for it.
      if (isPlainLayer(layer, diffId) && (await snapshotPresent(this.root, chain))) return;
      throw new KilnError(
        'NOT_FOUND',
        `${where}: layer ${layer.digest} is missing`,
        { image: where },
        { hint: 'nothing was tagged' },
      );
    }
    let m: Awaited<ReturnType<typeof measureLayer>>;
    try {
      m = await measureLayer(this.openBlob(layer.digest));
    } catch (e) {
      if (e instanceof KilnError)
        throw new KilnError(
          e.code === 'UNSAFE' ? 'UNSAFE' : 'INVALID',
          `${where}: layer ${layer.digest} is not a valid layer: ${e.message}`,
          { image: where },
          { hint: 'nothing was tagged' },
        );
      throw e;
    }
    if (m.diffId !== diffId) {
      throw new KilnError(
        'DIGEST',
        `${where}: layer ${layer.digest} unpacks to ${m.diffId}, but the config says its diff_id is ${diffId}`,
        { image: where },
        { hint: 'the image config does not describe its layers; nothing was tagged' },
      );
    }
    if (!known) await this.recordLayer(layer.digest, { diffId: m.diffId, uncompressedSize: m.uncompressedSize });
  }

  async removeTag(name: string): Promise<boolean> {
    const full = normalizeImageName(name);
    return withFileLock(this.lockPath, async () => {
      const idx = this.indexUnderLock();
      const before = idx.manifests.length;
      idx.manifests = idx.manifests.filter((d) => d.annotations?.[Annotation.RefName] !== full);
      if (idx.manifests.length === before) return false;
      await this.writeIndexFile(idx);
      return true;
    });
  }

  /** A manifest descriptor → the image (an index is resolved to the platform's manifest). */
  async loadImage(desc: Descriptor, opts: { platform?: Platform; name?: string } = {}): Promise<LoadedImage> {
    const mine = this.written.get(desc.digest);
    if (mine) return { ...structuredClone(mine), descriptor: { ...desc }, name: opts.name };
    let d = desc;
    const where = opts.name ?? desc.digest;
    for (let depth = 0; depth < 4; depth++) {
      const doc = parseOwnManifestOrIndex(await this.readJSON(d.digest), d.mediaType, where);
      if (doc.kind === 'manifest') {
        const config = parseOwnImageConfig(await this.readJSON(doc.manifest.config.digest), where);
        return { name: opts.name, descriptor: d, manifest: doc.manifest, config, id: doc.manifest.config.digest };
      }
      const want = opts.platform ?? hostPlatform();
      // An index of one image that names no platform (some OCI layouts): that image.
      const only = doc.index.manifests.length === 1 ? doc.index.manifests[0] : undefined;
      const m = matchPlatform(doc.index.manifests, want) ?? (only && !only.platform ? only : undefined);
      if (!m)
        throw new KilnError(
          'NOT_FOUND',
          `${where} has no image for ${formatPlatform(want)} (it has: ${platformsOf(doc.index.manifests)})`,
          { image: where },
          { hint: opts.platform ? 'pick one of its platforms' : 'pick one of its platforms with --platform' },
        );
      d = m;
    }
    throw new KilnError('INVALID', 'image indexes nested too deeply', { image: where });
  }

  /**
   * loadImage, remembered per manifest (or index) digest and platform for this Store's life: a
   * build resolves its base images for the build checks, then again for its stages (~1 ms each of
   * reading and validating the same manifest and config). A blob is named by its digest, so what it
   * parsed to cannot change; each caller gets its own copy (the engine changes a base's config).
   */
  private async loadImageOnce(desc: Descriptor, opts: { platform?: Platform; name?: string }): Promise<LoadedImage> {
    const key = `${desc.digest} ${opts.platform ? formatPlatform(opts.platform) : ''}`;
    let img = this.loaded.get(key);
    if (!img) {
      img = await this.loadImage(desc, { platform: opts.platform, name: opts.name });
      this.loaded.set(key, img);
    }
    return { ...structuredClone(img), name: opts.name };
  }

  private readonly loaded = new Map<string, LoadedImage>();

  /**
   * The images this Store wrote (writeImage), by manifest digest: a blob is named by its digest,
   * so what it holds is what was written (loadImage gives each caller its own copy).
   */
  private readonly written = new Map<string, Omit<LoadedImage, 'name'>>();

  /** By name (any docker spelling), image id (config digest, full or ≥12-hex prefix) or manifest digest. */
  async resolveImage(nameOrId: string, opts: { platform?: Platform } = {}): Promise<LoadedImage> {
    const images = await this.listImages();
    let full: string | undefined;
    try {
      full = normalizeImageName(nameOrId);
    } catch {
      full = undefined;
    }
    const byName = full !== undefined ? images.find((i) => i.name === full) : undefined;
    if (byName) return this.loadImageOnce(byName.descriptor, { ...opts, name: byName.name });
    const hex = nameOrId.replace(/^sha256:/, '');
    if (/^[a-f0-9]{12,64}$/.test(hex)) {
      for (const i of images) {
        if (digestHex(i.descriptor.digest).startsWith(hex))
          return this.loadImage(i.descriptor, { ...opts, name: i.name });
        const img = await this.loadImage(i.descriptor, opts).catch(() => undefined);
        if (img && digestHex(img.id).startsWith(hex)) return { ...img, name: i.name };
      }
      // An untagged image still in the store (e.g. a build's intermediate): by manifest digest.
      if (hex.length === 64 && (await this.hasBlob(`sha256:${hex}`))) {
        const blob = await this.readJSON(`sha256:${hex}`).catch(() => undefined);
        const mt = (blob as { mediaType?: string } | undefined)?.mediaType;
        if (mt && (mt === MediaType.OciManifest || mt === MediaType.DockerManifest || INDEX_MEDIA_TYPES.includes(mt))) {
          const buf = await this.readBlob(`sha256:${hex}`);
          return this.loadImage({ mediaType: mt, digest: `sha256:${hex}`, size: buf.length }, opts);
        }
      }
    }
    throw new KilnError(
      'NOT_FOUND',
      `no such image: ${nameOrId}`,
      { image: nameOrId },
      { hint: "see 'kiln images'; 'kiln pull' or 'kiln import' brings one in" },
    );
  }

  /** Write config + manifest blobs for an image; returns the manifest descriptor. */
  async writeImage(
    config: ImageConfig,
    layers: Descriptor[],
    opts: { annotations?: Record<string, string>; mediaTypes?: 'oci' | 'docker' } = {},
  ): Promise<{ descriptor: Descriptor; manifest: Manifest; id: Digest }> {
    const docker = opts.mediaTypes === 'docker';
    const cfgBytes = Buffer.from(canonicalJSON(config));
    const cfg = { digest: sha256(cfgBytes), size: cfgBytes.length };
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
      config: { mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
      layers,
    };
    if (opts.annotations && Object.keys(opts.annotations).length) manifest.annotations = opts.annotations;
    // Both written (and fsynced) at once: the manifest names the config by its digest, and nothing
    // names the manifest before both are stored (the caller tags it once this returns).
    const [, m] = await Promise.all([this.putBlob(cfgBytes), this.putBlob(canonicalJSON(manifest))]);
    const descriptor: Descriptor = { mediaType: manifest.mediaType!, digest: m.digest, size: m.size };
    // The build's outputs load it again by its descriptor: from here, not read and validated again.
    this.written.set(m.digest, structuredClone({ descriptor, manifest, config, id: cfg.digest }));
    return { descriptor, manifest, id: cfg.digest };
  }

  // ---- layer facts and snapshots ----

  /** Remember a layer's diff_id and uncompressed size (docker's image SIZE is uncompressed). */
  async recordLayer(digest: Digest, info: LayerFacts): Promise<void> {
    const p = this.layout.layerFactsFile(digest);
    if (statSync(p, { throwIfNoEntry: false })) return;
    // A few hundred bytes after every layer a build makes, on its path: written whole (temp +
    // rename), not fsynced. Every reader takes a missing or damaged file for none (layerFacts) and
    // does without: the snapshot made or the blob measured again, as for a pulled layer; so a crash
    // costs that work once, where an fsync here cost every new layer a wait for the disk.
    replaceFileSync(p, JSON.stringify(info));
  }

  async layerFacts(digest: Digest): Promise<LayerFacts | undefined> {
    const p = this.layout.layerFactsFile(digest);
    // Synchronous: a few hundred bytes, read for every layer of an image as a build ends (its
    // size), where four trips through the thread pool per file queued behind other I/O.
    let t: string | undefined;
    try {
      t = readFileSync(p, 'utf8');
    } catch {
      t = undefined;
    }
    if (!t) return undefined;
    try {
      const v = JSON.parse(t) as LayerFacts;
      if (!isDigest(v.diffId) || typeof v.uncompressedSize !== 'number') return undefined;
      if (v.tops !== undefined && !(Array.isArray(v.tops) && v.tops.every((x) => typeof x === 'string'))) delete v.tops;
      if (v.skeleton !== undefined && !validSkeleton(v.skeleton)) delete v.skeleton;
      return v;
    } catch {
      return undefined; // damaged: as if unknown
    }
  }

  /**
   * Record what a COPY/ADD layer brought in (the latest build that wrote the layer wins). Not
   * fsynced: a crash may leave the record empty or torn, and `provenance` (its only reader) then
   * fails to parse or validate it and answers "not recorded", as for a layer built elsewhere.
   */
  async putProvenance(rec: CopyProvenance): Promise<void> {
    const p = this.layout.provenanceFile(rec.diffId);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await writeFileAtomic(p, provenanceJson(rec), 0o644, { durable: false });
  }

  /**
   * putProvenance for a record whose files are many: its fields but the files, then each file's
   * JSON as it comes (the same bytes as putProvenance of the whole record).
   */
  async putProvenanceParts(head: Omit<CopyProvenance, 'files'>, files: AsyncIterable<string>): Promise<void> {
    const p = this.layout.provenanceFile(head.diffId);
    async function* pieces(): AsyncGenerator<string> {
      let out = `${JSON.stringify(head).slice(0, -1)},"files":[`;
      let first = true;
      for await (const f of files) {
        out += first ? f : `,${f}`;
        first = false;
        if (out.length >= 1 << 20) {
          yield out;
          out = '';
        }
      }
      yield `${out}]}`;
    }
    const it = pieces();
    const first = await it.next();
    const second = first.done ? first : await it.next();
    // One piece (under 1 MiB: a COPY of a few files, the common case): written with synchronous
    // calls, where the streamed write's ~6 trips through the thread pool held up the build's end.
    if (second.done) return replaceFileSync(p, first.done ? '' : first.value);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    async function* all(): AsyncGenerator<string> {
      yield first.value as string;
      yield second.value as string;
      yield* it;
    }
    await writeFileAtomic(p, all(), 0o644, { durable: false });
  }

  /**
   * A provenance record's fields but its files and packages, read without its file list (a
   * 300,000-file record is ~25 MB of JSON): whether a build writing the same layer has it already.
   */
  async provenanceHead(diffId: Digest): Promise<Omit<CopyProvenance, 'files' | 'packages'> | undefined> {
    const file = this.layout.provenanceFile(diffId);
    // Synchronous: at most 1 MiB read from the page cache, in a build's background job, where
    // five trips through a busy thread pool held up the build's end.
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return undefined;
    }
    try {
      const size = fstatSync(fd).size;
      const tail = Buffer.alloc(2);
      // A record written whole ends so (a torn one is as if unknown, as provenance() has it).
      if (size < 2 || readSync(fd, tail, 0, 2, size - 2) !== 2 || tail.toString() !== ']}') return undefined;
      // Keys are written in order, packages before files; in a string value a quote is escaped.
      const buf = Buffer.alloc(Math.min(size, 1 << 20));
      const bytesRead = readSync(fd, buf, 0, buf.length, 0);
      const text = buf.toString('utf8', 0, bytesRead);
      const at = text.indexOf(',"packages":');
      if (at < 0) return (await this.provenance(diffId)) ?? undefined;
      const r = parseProvenance(JSON.parse(`${text.slice(0, at)},"packages":[],"files":[]}`));
      if (!r || r.diffId !== diffId) return undefined;
      const { files: _files, packages: _packages, ...head } = r;
      return head;
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  /** What a COPY/ADD layer brought in, when a build of this store recorded it. */
  async provenance(diffId: Digest): Promise<CopyProvenance | undefined> {
    const t = await fsp.readFile(this.layout.provenanceFile(diffId), 'utf8').catch(() => undefined);
    if (!t) return undefined;
    try {
      const r = parseProvenance(JSON.parse(t));
      return r && r.diffId === diffId ? r : undefined;
    } catch {
      return undefined; // damaged: as if unknown
    }
  }

  /**
   * Remember that a registry repository (registry/repository) holds a blob, so a later push to
   * another repository of the same registry can mount it instead of uploading it.
   */
  async noteBlobSource(digest: Digest, repository: string): Promise<void> {
    const p = this.layout.blobSourcesFile(digest);
    const known = await this.blobSources(digest);
    if (known.includes(repository)) return;
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await writeFileAtomic(p, JSON.stringify([repository, ...known].slice(0, 16)));
  }

  async blobSources(digest: Digest): Promise<string[]> {
    const p = this.layout.blobSourcesFile(digest);
    const t = await fsp.readFile(p, 'utf8').catch(() => undefined);
    if (!t) return [];
    try {
      const v = JSON.parse(t) as unknown;
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  /**
   * An image's size as `docker images` and `docker inspect` report it: the bytes of the files of
   * all its layers (LayerFacts.contentSize), not the length of the layer tars.
   */
  async imageSize(img: LoadedImage): Promise<number> {
    return (await this.imageSizes(img)).content;
  }

  /**
   * An image's sizes: `content`, the bytes of its files (what docker calls the image's size);
   * `tar`, its layers' uncompressed tar bytes; `blobs`, its layers as stored (the download size
   * when the store keeps them compressed).
   */
  async imageSizes(img: LoadedImage): Promise<{ content: number; tar: number; blobs: number }> {
    const sizes = { content: 0, tar: 0, blobs: 0 };
    for (const [i, l] of img.manifest.layers.entries()) {
      let facts = await this.layerFacts(l.digest);
      if (!facts || facts.contentSize === undefined) {
        // Pulled, loaded, or recorded before contentSize was kept: measure once by decompressing
        // (a layer kept only as a snapshot has no blob: its tar length stands in), then remember.
        const measured = (await this.hasBlob(l.digest)) ? await this.measureLayerBlob(l.digest) : undefined;
        facts = {
          ...(facts ?? {}),
          diffId: facts?.diffId ?? img.config.rootfs.diff_ids[i]!,
          uncompressedSize: measured?.uncompressedSize ?? facts?.uncompressedSize ?? l.size,
          ...(measured?.contentSize !== undefined ? { contentSize: measured.contentSize } : {}),
        };
        if (measured) await this.rewriteLayerFacts(l.digest, facts);
      }
      sizes.content += facts.contentSize ?? facts.uncompressedSize;
      sizes.tar += facts.uncompressedSize;
      sizes.blobs += l.size;
    }
    return sizes;
  }

  private async measureLayerBlob(digest: Digest): Promise<{ uncompressedSize: number; contentSize?: number }> {
    const content = new TarContentSize();
    let n = 0;
    for await (const c of openLayer(this.openBlob(digest))) {
      n += (c as Buffer).length;
      content.update(c as Buffer);
    }
    return { uncompressedSize: n, ...(content.size !== undefined ? { contentSize: content.size } : {}) };
  }

  /** Replace what is remembered of a layer (recordLayer keeps the first record). */
  private async rewriteLayerFacts(digest: Digest, info: LayerFacts): Promise<void> {
    await writeFileAtomic(this.layout.layerFactsFile(digest), JSON.stringify(info));
  }

  /** Where the snapshot of the top layer of a chain (bottom → top diff_ids) lives. */
  snapshotPath(diffIds: Digest[]): string {
    return snapshotPathIn(this.root, diffIds);
  }

  /** Whether the top layer of `diffIds` has a snapshot that can be trusted (snapshotPresent). */
  hasSnapshot(diffIds: Digest[]): Promise<boolean> {
    const chain = chainId(diffIds);
    return chain === '' ? Promise.resolve(false) : snapshotPresent(this.root, chain as Digest);
  }

  /** Whether every layer of a stack can be had, as a blob or as a snapshot-only layer (see layersPresentIn). */
  layersPresent(layers: Descriptor[], diffIds: Digest[], known?: Set<string>): Promise<boolean> {
    return layersPresentIn(this.root, layers, diffIds, known);
  }

  /**
   * Take `dir` — the top layer of `diffIds` already unpacked in overlay-marker form (a RUN's overlay
   * upper dir) — as that chain's snapshot, so the next step does not unpack the layer it just wrote.
   * Moved, not copied; false (dir left alone) when the snapshot exists already.
   */
  async adoptSnapshot(diffIds: Digest[], dir: string): Promise<boolean> {
    const dest = this.snapshotPath(diffIds);
    if (await this.hasSnapshot(diffIds)) return false;
    try {
      await markUnsynced(dest);
      await fsp.rename(dir, dest);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (e as NodeJS.ErrnoException).code === 'EEXIST')
        return false;
      throw e;
    }
  }

  /** One unpacked directory per layer (overlay-marker form), bottom → top; made once, reused. */
  async snapshots(layers: Descriptor[], diffIds: Digest[]): Promise<string[]> {
    if (layers.length !== diffIds.length)
      throw new KilnError('INVALID', `image has ${layers.length} layers but ${diffIds.length} diff_ids`);
    const dirs: string[] = [];
    for (const [i, chain] of chainIds(diffIds).entries()) {
      const dir = this.snapshotDir(chain);
      if (!(await snapshotPresent(this.root, chain))) {
        const tmp = joinPath(this.layout.snapshotsDir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
        try {
          const r = await applyLayer(this.openBlob(layers[i]!.digest), tmp, {
            whiteouts: 'overlay',
            expectedDiffId: diffIds[i],
          });
          void r;
          await markUnsynced(dir);
          await fsp.rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
            // Another process made it meanwhile: theirs is as good as ours.
            if (e.code === 'ENOTEMPTY' || e.code === 'EEXIST') await removeTree(tmp);
            else throw e;
          });
        } catch (e) {
          await removeTree(tmp);
          throw e;
        }
      }
      dirs.push(dir);
    }
    return dirs;
  }

  // ---- locking and garbage collection ----

  withLock<T>(_mode: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T> {
    return withFileLock(this.lockPath, fn);
  }

  /** Remove blobs, layer facts and snapshots no tagged image references, and stale temp files. */
  async gc(opts: { minAgeMs?: number } = {}): Promise<{ blobs: number; snapshots: number; bytes: number }> {
    const minAge = opts.minAgeMs ?? 10 * 60 * 1000; // spare what a running build just wrote
    return withFileLock(this.lockPath, async () => {
      const keep = new Set<string>();
      const keepChains = new Set<string>();
      const visit = async (d: Descriptor) => {
        keep.add(digestHex(d.digest));
        const doc = parseOwnManifestOrIndex(await this.readJSON(d.digest), d.mediaType);
        if (doc.kind === 'index') for (const m of doc.index.manifests) if (await this.hasBlob(m.digest)) await visit(m);
        if (doc.kind === 'manifest') {
          keep.add(digestHex(doc.manifest.config.digest));
          for (const l of doc.manifest.layers) keep.add(digestHex(l.digest));
          const cfg = parseImageConfig(await this.readJSON(doc.manifest.config.digest));
          for (const chain of chainIds(cfg.rootfs.diff_ids)) keepChains.add(digestHex(chain));
        }
      };
      for (const i of (await this.readIndex()).manifests) await visit(i);
      const roots = await this.gcRoots();
      for (const extra of roots.blobs) keep.add(extra);
      for (const chain of roots.snapshots) keepChains.add(chain);
      const now = Date.now();
      let blobs = 0;
      let bytes = 0;
      const blobDir = this.layout.blobsDir;
      for (const f of await fsp.readdir(blobDir)) {
        if (keep.has(f)) continue;
        const st = await fsp.stat(joinPath(blobDir, f)).catch(() => undefined);
        if (!st || now - st.mtimeMs < minAge) continue;
        await fsp.rm(joinPath(blobDir, f), { force: true });
        await fsp.rm(this.layout.layerFactsFile(f), { force: true });
        await fsp.rm(this.layout.blobSourcesFile(f), { force: true });
        // A plain layer's blob is named by its diff_id: its provenance goes with it.
        await fsp.rm(this.layout.provenanceFile(f), { force: true });
        blobs++;
        bytes += st.size;
      }
      await sweepVariants(this.root);
      let snapshots = 0;
      const snapDir = this.layout.snapshotsDir;
      for (const f of await fsp.readdir(snapDir)) {
        const st = await fsp.stat(joinPath(snapDir, f)).catch(() => undefined);
        if (!st) continue;
        // A snapshot's boot marker (CHAIN.boot) goes with its snapshot.
        const marker = f.endsWith(BOOT_MARKER);
        const stale = f.startsWith('tmp-')
          ? now - st.mtimeMs > STALE_TMP_MS || !pidAlive(f)
          : !keepChains.has(marker ? f.slice(0, -BOOT_MARKER.length) : f) && now - st.mtimeMs >= minAge;
        if (!stale) continue;
        await removeTree(joinPath(snapDir, f));
        if (!marker) snapshots++;
      }
      for (const f of await fsp.readdir(this.tmpDir)) {
        const st = await fsp.stat(joinPath(this.tmpDir, f)).catch(() => undefined);
        if (!st) continue;
        if (now - st.mtimeMs > STALE_TMP_MS || !pidAlive(f)) {
          await fsp.rm(joinPath(this.tmpDir, f), { recursive: true, force: true });
          bytes += st.isFile() ? st.size : 0;
        }
      }
      // Build checks' results and no-op memos: remembered only to spare a rebuild work; the next build redoes it.
      for (const dir of [this.layout.buildChecksDir, this.layout.noopMemoDir])
        for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
          const st = await fsp.stat(joinPath(dir, f)).catch(() => undefined);
          if (st && now - st.mtimeMs >= minAge) await fsp.rm(joinPath(dir, f), { force: true });
        }
      return { blobs, snapshots, bytes };
    });
  }

  /**
   * Extra blobs and snapshots to keep (e.g. a build cache's layers): files under gc-roots/, one
   * blob digest a line, or `snapshot CHAIN-ID` for a snapshot-only layer.
   */
  private async gcRoots(): Promise<{ blobs: string[]; snapshots: string[] }> {
    const dir = this.layout.gcRootsDir;
    const out = { blobs: [] as string[], snapshots: [] as string[] };
    for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
      const t = await fsp.readFile(joinPath(dir, f), 'utf8').catch(() => '');
      for (const raw of t.split('\n')) {
        const line = raw.trim();
        if (isDigest(line)) out.blobs.push(digestHex(line));
        else if (line.startsWith(SNAPSHOT_ROOT) && isDigest(line.slice(SNAPSHOT_ROOT.length)))
          out.snapshots.push(digestHex(line.slice(SNAPSHOT_ROOT.length)));
      }
    }
    return out;
  }
}

function validSkeleton(k: unknown): boolean {
  const x = k as { root?: unknown; entries?: unknown };
  const num = (n: unknown) => typeof n === 'number' && Number.isFinite(n);
  return (
    typeof x?.root === 'string' &&
    Array.isArray(x.entries) &&
    x.entries.every(
      (e: Partial<SkeletonEntry>) =>
        typeof e?.path === 'string' &&
        typeof e.type === 'string' &&
        num(e.mode) &&
        num(e.uid) &&
        num(e.gid) &&
        num(e.mtime) &&
        (e.linkname === undefined || typeof e.linkname === 'string'),
    )
  );
}

/** A gc-roots line that keeps a snapshot: `snapshot CHAIN-ID`. */
export const SNAPSHOT_ROOT = 'snapshot ';

/** A stack's top snapshot is named by the stack's chain id. */
export function snapshotPathIn(root: string, diffIds: Digest[]): string {
  const chain = chainId(diffIds);
  if (chain === '') throw new KilnError('INTERNAL', 'a snapshot needs at least one layer');
  return snapshotDir(root, chain as Digest);
}

/** The snapshot directory of a chain id. */
export function snapshotDir(root: string, chain: Digest): string {
  return storeLayout(root).snapshotDir(chain);
}

/**
 * A plain-tar layer (digest = diff_id), as the store keeps the layers kiln makes. Its blob can be
 * made again from its snapshot, and checked by its diff_id; so a builder stage's RUN layer, which
 * no image ships, is kept as its snapshot only, with no blob.
 */
export function isPlainLayer(layer: Descriptor, diffId: Digest | undefined): boolean {
  return layer.mediaType === MediaType.OciLayer && layer.digest === diffId;
}

/** Every layer of a stack is present: its blob, or for a plain layer without one its snapshot. */
export async function layersPresentIn(
  root: string,
  layers: Descriptor[],
  diffIds: Digest[],
  /** Layers (digest and chain id) found present before: not looked at again; those found now are added. */
  known?: Set<string>,
): Promise<boolean> {
  const chains = chainIds(diffIds);
  const layout = storeLayout(root);
  // Synchronous stats (~5 µs each): a cache lookup asks this of every layer of a record's state,
  // on the build's critical path, where each trip through the thread pool waited behind layer I/O.
  const each = await Promise.all(
    layers.map(async (l, i) => {
      const id = `${l.digest} ${chains[i] ?? ''}`;
      if (known?.has(id)) return true;
      let present = statSync(layout.blobFile(l.digest), { throwIfNoEntry: false }) !== undefined;
      if (!present && isPlainLayer(l, diffIds[i]) && chains[i]) present = await snapshotPresent(root, chains[i]);
      if (present) known?.add(id);
      return present;
    }),
  );
  return layers.length === diffIds.length && each.every(Boolean);
}

/**
 * Snapshots are written without a sync: a layer unpacked from its blob, and a RUN's overlay upper
 * dir adopted as its layer's snapshot (the builder stages' RUN layers are kept as nothing else:
 * isPlainLayer). Syncing them would cost what RUN overlays are mounted `volatile` to avoid (the
 * unmount's sync of the whole file system, sandbox/rootfs.ts). Within the boot that wrote them the
 * page cache is the truth; after a power loss they could be empty or torn while the cache records
 * and images naming them survived. So each such snapshot carries a marker beside it, CHAIN.boot,
 * holding the boot id it was made in, written before the snapshot is renamed into place (a
 * journaling file system keeps those two in order; the marker's bytes may be lost, and a marker
 * that does not say this boot counts as another boot's). A snapshot whose marker names another
 * boot is dropped at its first look-up (this function, the one place presence is decided: the
 * cache's layersPresent, verifyImage, snapshots(), adoptSnapshot): a layer with a blob is unpacked
 * again, a snapshot-only layer is missing, so its cached step misses and runs again. Once the
 * process that made them exits, a detached child syncs the file system and removes their markers
 * (syncSnapshotsLater): only a crash before that sync ends costs them. A snapshot without a marker
 * (synced so, or made by a kiln whose unmounts synced) is trusted.
 */
export async function snapshotPresent(root: string, chain: Digest): Promise<boolean> {
  const dir = snapshotDir(root, chain);
  // Synchronous: a stat and a read of a few bytes, on a cache lookup's critical path (layersPresentIn).
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) return false;
  let made: string | undefined;
  try {
    made = readFileSync(`${dir}${BOOT_MARKER}`, 'utf8');
  } catch (e) {
    made = (e as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : '';
  }
  if (made === undefined || (made !== '' && made === bootId())) return true;
  // Another boot's: out of the way first (a rename), then gone; a concurrent look-up finds it absent.
  // The marker stays: the next snapshot of the chain writes its own before it is renamed in.
  const away = joinPath(path.dirname(dir), `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await fsp.rename(dir, away);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  // Another process of this boot may have dropped it and made it again meanwhile (between the
  // stat and the rename): that one is put back, not removed under the RUN using it.
  if (
    (await fsp.stat(away)).ino !== st.ino &&
    (await fsp.rename(away, dir).then(
      () => true,
      () => false,
    ))
  )
    return true;
  await removeTree(away);
  return false;
}

/** The marker beside a snapshot made without a sync: CHAIN.boot (snapshotPresent). */
const BOOT_MARKER = '.boot';

/** Mark the snapshot about to be renamed to `dir` as made in this boot, not synced (snapshotPresent). */
async function markUnsynced(dir: string): Promise<void> {
  // No boot id to be read (no /proc): nothing to compare with later; trusted, as before markers.
  if (!bootId()) return;
  const marker = `${dir}${BOOT_MARKER}`;
  await fsp.writeFile(marker, bootId());
  const st = await fsp.stat(marker, { bigint: true });
  if (!unsyncedMarkers.length && process.env.KILN_SNAPSHOT_SYNC !== '0') process.once('exit', syncSnapshotsLater);
  const ns = st.mtimeNs % 1_000_000_000n;
  unsyncedMarkers.push(`${st.ino}:${st.mtimeNs / 1_000_000_000n}.${String(ns).padStart(9, '0')}:${marker}`);
}

/** The markers this process wrote, as `ino:mtime:path` (mtime as stat(1)'s %.9Y; syncSnapshotsLater). */
const unsyncedMarkers: string[] = [];

/**
 * When this process exits, a detached shell waits until the kernel's writeback has had its chance
 * (dirty_expire_centisecs + 5 s, at most 60 s), syncs the store's file system (`sync -f`,
 * syncfs(2): nearly free by then) and removes the markers this process wrote: those snapshots are
 * on disk, trusted after a reboot as an older kiln's synced ones are. Off the build's critical path
 * (the sync a RUN overlay's unmount made it wait for, sandbox/rootfs.ts), and not racing the next
 * build for the disk; only a crash before the sync ends costs the markers' snapshots. A marker is
 * removed only if it is the same file, unchanged (inode, mtime): one written again meanwhile (its
 * snapshot dropped and made again, perhaps after the sync began) stays. Snapshot files are written
 * before their marker, so a marker older than the sync covers its snapshot.
 * KILN_SNAPSHOT_SYNC=0: no child, the markers stay (those snapshots are dropped after a reboot);
 * KILN_SNAPSHOT_SYNC_DELAY=S: wait S seconds instead.
 */
function syncSnapshotsLater(): void {
  const markers = unsyncedMarkers.splice(0);
  const first = markers[0]?.split(':').slice(2).join(':');
  if (!first) return;
  const script = `sleep "$1"; sync -f "$2" || exit 0; shift 2
for m; do i=\${m%%:*}; r=\${m#*:}; t=\${r%%:*}; f=\${r#*:}
  [ "$(stat -c %i:%.9Y -- "$f" 2>/dev/null)" = "$i:$t" ] && rm -f -- "$f"; done`;
  try {
    spawn(
      '/bin/sh',
      ['-c', script, 'kiln-snapshot-sync', String(syncDelaySeconds()), path.dirname(first), ...markers],
      {
        detached: true,
        stdio: 'ignore',
      },
    ).unref();
  } catch {
    // No child: the markers stay, and those snapshots are made again after a reboot.
  }
}

/** How long the background sync waits: the kernel's own writeback of dirty pages, plus its 5 s period. */
function syncDelaySeconds(): number {
  const set = Number(process.env.KILN_SNAPSHOT_SYNC_DELAY);
  if (process.env.KILN_SNAPSHOT_SYNC_DELAY && Number.isFinite(set) && set >= 0) return set;
  try {
    const expire = Number(readFileSync('/proc/sys/vm/dirty_expire_centisecs', 'utf8')) / 100;
    if (Number.isFinite(expire)) return Math.min(60, Math.ceil(expire) + 5);
  } catch {
    /* no /proc: the default below */
  }
  return 35;
}

/** A writable that writes to `dest` and hands each chunk to `tee` (both awaited before the next). */
function teeTo(dest: Writable, tee: (chunk: Buffer) => Promise<void>): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      const toDest = new Promise<void>((resolve, reject) => {
        dest.write(chunk, (e) => (e ? reject(e) : resolve()));
      });
      Promise.all([toDest, tee(chunk)]).then(() => cb(), cb);
    },
    final(cb) {
      dest.end(cb);
    },
    destroy(e, cb) {
      if (e) dest.destroy(e);
      cb(e);
    },
  });
}

/**
 * The root is made private (below): so it must be the store's own directory, never one it would
 * take from others — a non-empty directory that is no OCI layout (`--root /tmp`, `--root ~`).
 */
function refuseForeignDir(root: string): void {
  let names: string[] | undefined;
  try {
    names = readdirSync(root);
  } catch {
    names = undefined;
  }
  if (!names || names.length === 0 || names.includes('oci-layout') || names.includes('index.json')) return;
  throw new KilnError(
    'STORE',
    `${root} is not a kiln store (it holds other files): kiln would make it private to its owner`,
    { path: root },
    { hint: 'give --root a new or empty directory, or an existing store' },
  );
}

/**
 * The store holds images' files as they are, setuid programs included (an image's passwd, a copy
 * of id made setuid by a RUN): a directory on the way to them that other users can search lets any
 * local user run them with euid 0 (moby CVE-2021-41091). So the root is 0700, as docker's and
 * containerd's roots are, and so is snapshots/ (a second lock, should the root be opened up by
 * hand). An existing store made with wider modes is repaired when opened. A root kiln cannot make
 * private (owned by another user) is refused rather than used.
 */
function lockDown(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory())
    throw new KilnError(
      'STORE',
      `the store root ${dir} is not a directory`,
      { path: dir },
      { hint: 'give another --root' },
    );
  if ((st.mode & 0o077) === 0) return;
  try {
    chmodSync(dir, st.mode & 0o7700);
  } catch (e) {
    throw new KilnError(
      'STORE',
      `cannot make ${dir} private to its owner (mode ${(st.mode & 0o7777).toString(8)}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { path: dir },
      { hint: 'the store must be reachable by its owner only; use a --root you own' },
    );
  }
}

/** Temp names carry the writer's pid ("blob-PID-…", "tmp-PID-…"): dead writer, stale file. */
function pidAlive(name: string): boolean {
  const m = /^(?:blob|tmp)-(\d+)-/.exec(name);
  return m !== null && processAlive(Number(m[1]));
}

export { familiarName, parseManifest };

/**
 * JSON.stringify(rec), byte for byte, in pieces of about a megabyte: the record of a COPY of
 * 300,000 files is ~25 MB of JSON, which was held whole (and again as the bytes written) beside
 * the build's other per-file state.
 */
export function* provenanceJson(rec: CopyProvenance): Generator<string> {
  let out = '{';
  let first = true;
  for (const [k, v] of Object.entries(rec) as [string, unknown][]) {
    if (v === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:`;
    first = false;
    if (k !== 'files' || !Array.isArray(v)) {
      out += JSON.stringify(v);
      continue;
    }
    out += '[';
    for (let i = 0; i < v.length; i++) {
      out += `${i ? ',' : ''}${JSON.stringify(v[i]) ?? 'null'}`;
      if (out.length >= 1 << 20) {
        yield out;
        out = '';
      }
    }
    out += ']';
  }
  yield `${out}}`;
}

/**
 * index.json's order: by name, in code units. Not localeCompare: its first call loads ICU's collator
 * (~9 ms, on every build's tag), and its order would depend on the host's ICU data.
 */
function byRefName(a: Descriptor, b: Descriptor): number {
  const x = a.annotations?.[Annotation.RefName] ?? '';
  const y = b.annotations?.[Annotation.RefName] ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The writeback of a blob being written, started as it grows: every few MB written, an fdatasync
 * of what is there (in the thread pool, while the producer makes the rest), so the commit's fsync
 * waits for the tail only, not for a whole layer's pages (~30 ms for 23 MB here) on the step's
 * critical path. The same durability: the commit still syncs the whole file before the rename.
 * Synced through a descriptor of its own (the stream closes its own when it ends).
 */
class EarlyWriteback {
  private static readonly EVERY = 4 << 20;
  private fd: number | undefined;
  private stopped = false;
  private synced = 0;
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: ReturnType<typeof createWriteStream>,
    tmp: string,
  ) {
    file.once('open', () =>
      open(tmp, 'r', (e, fd) => {
        if (e) return;
        if (this.stopped) closeSync(fd);
        else this.fd = fd;
      }),
    );
    this.timer = setInterval(() => this.poll(), 10);
    this.timer.unref();
  }

  private poll(): void {
    const written = this.file.bytesWritten;
    if (this.fd === undefined || this.inFlight || written - this.synced < EarlyWriteback.EVERY) return;
    this.synced = written;
    const fd = this.fd;
    // Best effort: the commit's fsync is the one that counts (and reports).
    this.inFlight = new Promise<void>((resolve) => fdatasync(fd, () => resolve())).finally(
      () => (this.inFlight = undefined),
    );
  }

  /** No more syncs: the one in flight ended, the descriptor closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.inFlight;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A blob's digest and size against what its writer's caller expected. */
function checkBlob(expected: { digest?: Digest; size?: number }, digest: Digest, size: number): void {
  if (expected.size !== undefined && size !== expected.size)
    throw new KilnError(
      'DIGEST',
      `blob size mismatch: expected ${expected.size} bytes, got ${size}`,
      {},
      { hint: 'the source sent different content than it announced' },
    );
  if (expected.digest !== undefined && digest !== expected.digest)
    throw new KilnError('DIGEST', `blob digest mismatch: expected ${expected.digest}, got ${digest}`);
}
