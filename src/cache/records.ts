/**
 * The cache index, in the store under cache/:
 *   cache/records/<key hex>.json   one record per step key: the state after the step (layer
 *                                  descriptors, image config with history, shell) and the layer
 *                                  the step added. Written atomically (temp + rename); its mtime
 *                                  is the last use (touched on every hit), for LRU pruning.
 *   cache/content/<memo hex>       the content digest of paths copied out of a file system
 *                                  (keyed by chain id + paths), so a rebuild need not unpack a
 *                                  source stage again just to hash what COPY --from takes.
 *   cache/files/<ctx id>.json      file digests of a build context (context/hash.ts FileHashCache).
 *   cache/explain/<id hex>.json    what went into each step's last key, by step identity
 *                                  (explain.ts: `build --explain`); pruned with the records.
 *   gc-roots/cache-<key hex>       the layer digests of a record's state, one a line, and the chain
 *                                  ids of its snapshot-only layers: the store's gc keeps them
 *                                  (written before the record, removed after it).
 * Concurrent builds share everything: a record is complete or absent.
 */
import {
  closeSync,
  fstatSync,
  linkSync,
  openSync,
  promises as fsp,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { type Descriptor, parseOwnDescriptor, parseOwnImageConfig } from '../image/index.js';
import {
  SNAPSHOT_ROOT,
  isPlainLayer,
  layersPresentIn,
  replaceFileSync,
  type Store,
  storeLayout,
} from '../store/index.js';
import { chainIds, digestHex, isDigest, type Digest, KilnError, joinPath } from '../util/index.js';
import type { StepState } from './keys.js';
import { pruneExplain } from './explain.js';
import { writeTemp } from './small-files.js';

export interface CacheRecord {
  v: 1;
  key: Digest;
  /** When the step ran (ISO time). */
  created: string;
  /** The layer this step added, with its diff id and uncompressed size; absent for config-only steps. */
  layer?: Descriptor & { diffId: Digest; uncompressedSize: number; contentSize?: number };
  state: StepState;
}

export interface RecordInfo {
  key: Digest;
  lastUsed: number;
  /** Size of the layer blob the step added (0 for config-only steps). */
  size: number;
  layer?: Digest;
  /** Every layer of the state after the step (what the record's gc root keeps). */
  layers: { digest: Digest; size: number }[];
}

/**
 * The cache index's files are a few KB each and read or written once per step, most of them on a
 * build's critical path: they are read and written with synchronous calls (~10 µs each), not through
 * the thread pool, where each call waited behind the layer I/O of the stages running beside it
 * (a record read took 1–9 ms of wall time for ~0.1 ms of work).
 */
export class CacheIndex {
  readonly dir: string;
  /**
   * The inode of each record file this process read or wrote, by key (records are replaced by
   * rename, never rewritten in place: the engine's rebuildRecords tells by it that a record is still
   * the one this build used).
   */
  private readonly seen = new Map<Digest, string>();

  /** `storeRoot`: the store's root directory. */
  constructor(readonly storeRoot: string) {
    this.dir = storeLayout(storeRoot).cacheDir;
  }

  static forStore(store: Store): CacheIndex {
    return new CacheIndex(store.root);
  }

  get recordsDir(): string {
    return joinPath(this.dir, 'records');
  }
  get filesDir(): string {
    return joinPath(this.dir, 'files');
  }
  private recordPath(key: Digest): string {
    return joinPath(this.recordsDir, `${digestHex(key)}.json`);
  }
  private rootPath(key: Digest): string {
    return joinPath(storeLayout(this.storeRoot).gcRootsDir, `cache-${digestHex(key)}`);
  }
  private memoPath(key: Digest): string {
    return joinPath(this.dir, 'content', digestHex(key));
  }

  async get(key: Digest): Promise<CacheRecord | undefined> {
    return this.readWithInode(key)?.record;
  }

  /**
   * A record with its file and that file's inode, read through one descriptor (the inode is the
   * record's: a record is replaced by rename, never rewritten in place). Undefined: absent or damaged
   * (a miss: the next run rewrites it). Synchronous: a few KB, read on the build's critical path.
   */
  readWithInode(key: Digest): { record: CacheRecord; path: string; ino: string } | undefined {
    const file = this.recordPath(key);
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const ino = String(fstatSync(fd, { bigint: true }).ino);
      const record = parseRecord(JSON.parse(readFileSync(fd, 'utf8')), key);
      this.seen.set(key, ino);
      return { record, path: file, ino };
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** The inode of the record file this process last read or wrote for `key` (see `seen`). */
  inodeOf(key: Digest): string | undefined {
    return this.seen.get(key);
  }

  /** The file of a key's record. */
  recordFile(key: Digest): string {
    return this.recordPath(key);
  }

  /**
   * Store a record; returns the record in effect for its key. Without `replace` (a step that ran
   * because the cache had nothing for it) the first record of a key wins: when a concurrent build
   * recorded the same key meanwhile, that record is kept and returned, and the caller carries on
   * from it, so concurrent builds converge on one result per key and their later steps' records
   * chain up. With `replace` (--no-cache, a deliberate re-run) this record replaces any other.
   * The gc root goes in place first (under a temp name, which gc honours too), the record last.
   * Neither is fsynced (small-files.ts): a cache may lose a record in a crash. A record a crash
   * leaves empty or cut short fails parseRecord and is a miss; a record whose gc root was lost is
   * used only while its layers are present (lookups check them), and is a miss once gc took them.
   */
  async put(rec: CacheRecord, opts: { replace?: boolean } = {}): Promise<CacheRecord> {
    const root = this.rootPath(rec.key);
    const target = this.recordPath(rec.key);
    const tmpRoot = writeTemp(root, gcRootText(this.storeRoot, rec.state)).path;
    let tmpRec: string | undefined;
    try {
      const written = writeTemp(target, JSON.stringify(rec));
      tmpRec = written.path;
      if (opts.replace) renameSync(tmpRec, target);
      else {
        try {
          linkSync(tmpRec, target); // atomic "create unless it exists"
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          this.seen.delete(rec.key);
          const existing = this.readWithInode(rec.key)?.record;
          if (existing && (await this.blobsPresent(existing))) return existing;
          renameSync(tmpRec, target); // damaged, or its blobs are gone: ours replaces it
        }
      }
      this.seen.set(rec.key, written.ino);
      renameSync(tmpRoot, root);
      return rec;
    } finally {
      rmSync(tmpRoot, { force: true });
      if (tmpRec) rmSync(tmpRec, { force: true });
    }
  }

  private blobsPresent(rec: CacheRecord): Promise<boolean> {
    return layersPresentIn(this.storeRoot, rec.state.layers, rec.state.config.rootfs.diff_ids);
  }

  /** Mark a record used now (LRU order for `prune --keep-storage`). */
  async touch(key: Digest): Promise<void> {
    const now = new Date();
    try {
      utimesSync(this.recordPath(key), now, now);
    } catch {
      // gone meanwhile (pruned): nothing to mark
    }
  }

  async remove(key: Digest): Promise<void> {
    await fsp.rm(this.recordPath(key), { force: true });
    await fsp.rm(this.rootPath(key), { force: true });
  }

  /** gc roots whose record is gone, temp files of killed writers (a build killed between writes). */
  private async removeOrphanRoots(): Promise<void> {
    const dir = storeLayout(this.storeRoot).gcRootsDir;
    // Younger than a minute: it may belong to a record being written right now.
    const old = async (p: string) => {
      const st = await fsp.stat(p).catch(() => undefined);
      return st !== undefined && Date.now() - st.mtimeMs > 60_000;
    };
    for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
      if (f.startsWith('.tmp-cache-')) {
        if (await old(joinPath(dir, f))) await fsp.rm(joinPath(dir, f), { force: true });
        continue;
      }
      const m = /^cache-([a-f0-9]{64})$/.exec(f);
      if (!m) continue;
      const rec = await fsp.stat(joinPath(this.recordsDir, `${m[1]}.json`)).catch(() => undefined);
      if (!rec && (await old(joinPath(dir, f)))) await fsp.rm(joinPath(dir, f), { force: true });
    }
    for (const f of await fsp.readdir(this.recordsDir).catch(() => [] as string[])) {
      if (f.startsWith('.tmp-') && (await old(joinPath(this.recordsDir, f))))
        await fsp.rm(joinPath(this.recordsDir, f), { force: true });
    }
  }

  async list(): Promise<RecordInfo[]> {
    const out: RecordInfo[] = [];
    for (const f of await fsp.readdir(this.recordsDir).catch(() => [] as string[])) {
      if (!/^[a-f0-9]{64}\.json$/.test(f)) continue;
      const p = joinPath(this.recordsDir, f);
      const [st, text] = await Promise.all([
        fsp.stat(p).catch(() => undefined),
        fsp.readFile(p, 'utf8').catch(() => undefined),
      ]);
      if (!st || text === undefined) continue;
      const key = `sha256:${f.slice(0, 64)}` as Digest;
      let rec: CacheRecord | undefined;
      try {
        rec = parseRecord(JSON.parse(text), key);
      } catch {
        rec = undefined;
      }
      out.push({
        key,
        lastUsed: st.mtimeMs,
        size: rec?.layer?.size ?? 0,
        layer: rec?.layer?.digest,
        layers: (rec?.state.layers ?? []).map((l) => ({ digest: l.digest, size: l.size })),
      });
    }
    return out;
  }

  /**
   * Synchronous, as the records (a digest's 71 bytes): read by a `COPY --from` key on the build's
   * critical path, where each of readFile's four trips through the thread pool waited its turn.
   */
  async getMemo(key: Digest): Promise<Digest | undefined> {
    let t: string;
    try {
      t = readFileSync(this.memoPath(key), 'utf8').trim();
    } catch {
      return undefined;
    }
    return isDigest(t) ? t : undefined;
  }

  /**
   * Not fsynced: a crash may leave the memo empty (it is one small write), and getMemo then finds
   * no digest in it and the paths are hashed again, as for a memo never written. Temp + rename,
   * with synchronous calls (store's replaceFileSync).
   */
  async putMemo(key: Digest, value: Digest): Promise<void> {
    replaceFileSync(this.memoPath(key), value);
  }

  /**
   * Drop records, least recently used first, until the layers the cache made (the layers some
   * record added: base image layers do not count, the images using them keep them) that the
   * remaining records pin take at most `keepBytes` — all records without a limit; content memos
   * and file digests go too then. A record pins every layer of its state, not only its own, so a
   * kept record is charged for each cache-made layer of its state not already charged: a
   * config-only step after a big RUN cannot keep the RUN's layer alive for free.
   * Blobs are freed by the store's gc afterwards.
   */
  async prune(opts: { keepBytes?: number } = {}): Promise<{ records: number; bytes: number; keptBytes: number }> {
    const all = (await this.list()).sort((a, b) => b.lastUsed - a.lastUsed || (a.key < b.key ? -1 : 1));
    let records = 0;
    await this.removeOrphanRoots();
    const made = new Map<string, number>();
    for (const r of all) if (r.layer) made.set(r.layer, r.size);
    const total = [...made.values()].reduce((a, b) => a + b, 0);
    if (opts.keepBytes === undefined) {
      for (const r of all) {
        await this.remove(r.key);
        records++;
      }
      await fsp.rm(joinPath(this.dir, 'content'), { recursive: true, force: true });
      await fsp.rm(this.filesDir, { recursive: true, force: true });
      await pruneExplain(this.dir);
      return { records, bytes: total, keptBytes: 0 };
    }
    // Most recent first: keep a record while the cache-made layers kept so far, with its own, fit.
    const kept = new Set<string>();
    const keptKeys = new Set<string>();
    let keptBytes = 0;
    for (const r of all) {
      const extra = [...new Set(r.layers.map((l) => l.digest))].filter((d) => made.has(d) && !kept.has(d));
      const cost = extra.reduce((n, d) => n + made.get(d)!, 0);
      if (keptBytes + cost <= opts.keepBytes) {
        keptBytes += cost;
        for (const d of extra) kept.add(d);
        keptKeys.add(r.key);
        continue;
      }
      await this.remove(r.key);
      records++;
    }
    // What a step's last key was made of lives as long as that key's record (cache/explain.ts).
    await pruneExplain(this.dir, keptKeys);
    return { records, bytes: total - keptBytes, keptBytes };
  }
}

/** Validate a record read from disk or from a registry (untrusted JSON). */
export function parseRecord(json: unknown, key?: Digest): CacheRecord {
  const bad = (why: string) => new KilnError('INVALID', `invalid cache record${key ? ` ${key}` : ''}: ${why}`);
  if (typeof json !== 'object' || json === null) throw bad('not an object');
  const r = json as Record<string, unknown>;
  if (r.v !== 1) throw bad('unknown version');
  if (!isDigest(r.key) || (key !== undefined && r.key !== key)) throw bad('key mismatch');
  const s = r.state as Record<string, unknown> | undefined;
  if (typeof s !== 'object' || s === null) throw bad('no state');
  if (
    !Array.isArray(s.layers) ||
    !Array.isArray(s.shell) ||
    !s.shell.every((x) => typeof x === 'string') ||
    typeof s.cmdSet !== 'boolean'
  )
    throw bad('bad state');
  const layers = s.layers.map((l) => parseOwnDescriptor(l, 'cache record'));
  // The document is the caller's own, just parsed: checked by hand, the schema only when that fails.
  const config = parseOwnImageConfig(s.config, 'cache record');
  if (config.rootfs.diff_ids.length !== layers.length) throw bad('layers and diff_ids differ in number');
  let layer: CacheRecord['layer'];
  if (r.layer !== undefined) {
    const l = r.layer as Record<string, unknown>;
    const d = parseOwnDescriptor(l, 'cache record');
    if (!isDigest(l.diffId)) throw bad('bad diffId');
    if (typeof l.uncompressedSize !== 'number' || !Number.isSafeInteger(l.uncompressedSize) || l.uncompressedSize < 0)
      throw bad('bad uncompressedSize');
    if (!layers.some((x) => x.digest === d.digest)) throw bad('its layer is not in its state');
    if (
      l.contentSize !== undefined &&
      (typeof l.contentSize !== 'number' || !Number.isSafeInteger(l.contentSize) || l.contentSize < 0)
    )
      throw bad('bad contentSize');
    layer = {
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      diffId: l.diffId,
      uncompressedSize: l.uncompressedSize,
      ...(l.contentSize !== undefined ? { contentSize: l.contentSize } : {}),
    };
  }
  return {
    v: 1,
    key: r.key,
    created: typeof r.created === 'string' ? r.created : '',
    ...(layer ? { layer } : {}),
    state: { layers, config, cmdSet: s.cmdSet, shell: s.shell as string[] },
  };
}

/**
 * What a record's gc root keeps: each layer's blob, and the snapshot of each snapshot-only layer
 * that has no blob (a plain-tar layer with its blob needs no snapshot kept: it can be unpacked again).
 */
function gcRootText(storeRoot: string, state: StepState): string {
  const ids = state.config.rootfs.diff_ids;
  const chains = chainIds(ids);
  const layout = storeLayout(storeRoot);
  return state.layers
    .map((l, i) => {
      const pin = isPlainLayer(l, ids[i]) && !statSync(layout.blobFile(l.digest), { throwIfNoEntry: false });
      return `${l.digest}\n${pin ? `${SNAPSHOT_ROOT}${chains[i]}\n` : ''}`;
    })
    .join('');
}

/** A cache that records can also come from (an imported registry or OCI-layout cache). */
export interface CacheSource {
  /** How `build --explain` names a record from here (the cache's reference). */
  readonly name?: string;
  /** The record for a key, its layer blobs made present in `store` first; undefined when absent. */
  record(key: Digest, store: Store): Promise<CacheRecord | undefined>;
  memo(key: Digest): Promise<Digest | undefined>;
}

/** Where the records a build used go at its end (a registry or an OCI-layout cache). */
export interface CacheSink {
  /** mode max: every stage's records; min: the target stage and the stages it is based on. */
  mode: 'min' | 'max';
  /**
   * Make the export ready without sending anything (layers compressed, the cache config document
   * serialized): the secret proof searches that document before `push` sends it. Undefined when
   * it failed and the sink was told to ignore errors (it warned).
   */
  prepare(store: Store, records: CacheRecord[], memos: Map<Digest, Digest>): Promise<PreparedCacheExport | undefined>;
}

/** An export ready to go: exactly the bytes `push` sends. */
export interface PreparedCacheExport {
  /** Where it goes (the cache's reference), for messages. */
  readonly name: string;
  /** The cache config document, as it will be pushed. */
  readonly config: Buffer;
  /** The records the document holds, in its order, as serialized there. */
  readonly records: CacheRecord[];
  push(): Promise<void>;
}
