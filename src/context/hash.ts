/**
 * Content hashing of what a COPY/ADD (or a bind mount) selects: the build cache's view of the
 * sources. A selection hashes to one digest over, for every entry in a stable order, its type,
 * its path, its permission bits, its ownership (only when it reaches the layer as it is), the
 * content digest of a file, the target of a symlink — never timestamps, so touching a file
 * without changing it keeps the cache.
 *
 * Re-reading every file of a large context on every build is what makes rebuilds slow, so file
 * digests are remembered in a FileHashCache keyed by (path, size, mtime, ctime, inode): a file
 * whose stat is unchanged is not read again. Entries whose mtime/ctime are too recent to be
 * trusted (a write in the same clock tick would not change them) are not remembered.
 */
import { promises as fsp, readFileSync, readlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { BuildContext, ContextEntry, EntryStat } from './build-context.js';
import {
  type ErrorPlace,
  writeFileAtomic,
  type Digest,
  joinPath,
  nativeFs,
  nativeSmallRead,
  ReadAhead,
  SMALL_FILE,
} from '../util/index.js';

/** A stat younger than this is not remembered (racy: a same-tick rewrite keeps mtime). */
const RACY_MS = 2000;
const CHUNK = 1 << 20;

type Remembered = [size: number, mtimeMs: number, ctimeMs: number, ino: number, digest: string];

/** Where a selection's file digests come from: remembered ones when a file's identity is unchanged, else its bytes. */
export interface FileDigester {
  /** sha256 (hex) of the regular file `abs`, which is `rel` in its root, whose lstat is `st`. */
  digest(abs: string, st: EntryStat, rel: string): Promise<string>;
  /** Whether digest() answers without reading the file (it is not read ahead). */
  remembers?(abs: string, st: EntryStat, rel: string): boolean;
}

/** The identity rule of a remembered digest: same size, mtime, ctime and inode as when it was read. */
function sameFile(r: { size: number; mtimeMs: number; ctimeMs: number; ino: number }, st: EntryStat): boolean {
  return r.size === st.size && r.mtimeMs === st.mtimeMs && r.ctimeMs === st.ctimeMs && r.ino === st.ino;
}

/**
 * File digests remembered between builds, one JSON file per context root (the caller chooses
 * where, e.g. under the store). Safe to share: a lost or stale file only costs re-reading.
 */
export class FileHashCache implements FileDigester {
  private map = new Map<string, Remembered>();
  private dirty = false;
  private loaded = false;
  /** Counters for benchmarks and tests. */
  readonly stats = { hits: 0, misses: 0, bytesRead: 0 };

  /** `racyMs`: stats younger than this are not remembered (file systems with coarse clocks). */
  constructor(
    readonly file?: string,
    private readonly racyMs = RACY_MS,
  ) {}

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    if (!this.file) return;
    try {
      const doc = JSON.parse(readFileSync(this.file, 'utf8')) as { v?: number; files?: Record<string, Remembered> };
      if (doc.v !== 1 || typeof doc.files !== 'object' || doc.files === null) return;
      for (const [k, r] of Object.entries(doc.files))
        if (Array.isArray(r) && r.length === 5 && typeof r[4] === 'string') this.map.set(k, r);
    } catch {
      // missing or damaged: start empty
    }
  }

  remembers(abs: string, st: EntryStat): boolean {
    this.load();
    const r = this.map.get(abs);
    return r !== undefined && sameFile({ size: r[0], mtimeMs: r[1], ctimeMs: r[2], ino: r[3] }, st);
  }

  /** The digest of a regular file, from memory when its stat is unchanged. */
  async digest(abs: string, st: EntryStat): Promise<string> {
    this.load();
    const r = this.map.get(abs);
    if (r && sameFile({ size: r[0], mtimeMs: r[1], ctimeMs: r[2], ino: r[3] }, st)) {
      this.stats.hits++;
      return r[4];
    }
    this.stats.misses++;
    const d = await hashFile(abs, st.size);
    this.stats.bytesRead += st.size;
    const now = Date.now();
    if (now - st.mtimeMs > this.racyMs && now - st.ctimeMs > this.racyMs) {
      this.map.set(abs, [st.size, st.mtimeMs, st.ctimeMs, st.ino, d]);
      this.dirty = true;
    } else if (r) {
      this.map.delete(abs);
      this.dirty = true;
    }
    return d;
  }

  /**
   * Write what was learned (atomic; the last concurrent writer wins, which is fine for a cache).
   * Not fsynced (an fsync at every build's end that changed a file): a crash may leave the file
   * empty or cut short, which `load` takes for none — every file is read again, never a wrong digest.
   */
  async save(): Promise<void> {
    if (!this.dirty || !this.file) return;
    const files: Record<string, Remembered> = {};
    for (const [k, r] of this.map) files[k] = r;
    await writeFileAtomic(this.file, JSON.stringify({ v: 1, files }), 0o644, { durable: false });
    this.dirty = false;
  }
}

/** A file's digest as a layer's tar read it (sandbox's recordFileDigests): its identity then, and sha256 hex. */
export interface RecordedFile {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  digest: string;
}

/**
 * The digests a stage's RUN layers recorded as they were tarred, by path in the stage's file
 * system (`recorded`: one map per layer, any order). A file of a view of those layers whose lstat
 * has the identity it was read under (overlayfs shows a lower file's own inode and times) is that
 * file, unchanged since: its recorded digest is its content's. Any other is read.
 */
export class RecordedFileDigests implements FileDigester {
  /** Counters for the profile and tests. */
  readonly stats = { hits: 0, misses: 0 };
  constructor(private readonly recorded: { get(rel: string): RecordedFile | undefined }[]) {}

  remembers(_abs: string, st: EntryStat, rel: string): boolean {
    return this.recorded.some((m) => {
      const r = m.get(rel);
      return r !== undefined && sameFile(r, st);
    });
  }

  async digest(abs: string, st: EntryStat, rel: string): Promise<string> {
    for (const m of this.recorded) {
      const r = m.get(rel);
      if (r && sameFile(r, st)) {
        this.stats.hits++;
        return r.digest;
      }
    }
    this.stats.misses++;
    return hashFile(abs, st.size);
  }
}

/** sha256 of a file's bytes (small files in one read, large ones in 1 MiB chunks). */
export async function hashFile(abs: string, size: number): Promise<string> {
  const h = createHash('sha256');
  if (size <= CHUNK) {
    // Hashed before any await: the scratch buffer is this call's alone.
    h.update(readSmallFile(abs, size) ?? readFileSync(abs));
    return h.digest('hex');
  }
  const fh = await fsp.open(abs, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

let scratch: Buffer | undefined;
/** The process's context-hash read-ahead (util/read-ahead.ts), made on the first native read. */
let readAhead: ReadAhead | undefined;

/**
 * A small file's bytes as readFileSync reads them (to its end), read by the native helper in one
 * call, which also tells whether the read waited on the disk; undefined: read it with Node's fs
 * (an error, which Node raises; a file grown since its lstat; the first few of a process).
 */
function readSmallFile(abs: string, size: number): Buffer | undefined {
  if (size === 0 || size > SMALL_FILE) return undefined;
  if (!nativeSmallRead()) return undefined;
  scratch ??= Buffer.allocUnsafe(SMALL_FILE + 1);
  readAhead ??= new ReadAhead(nativeFs());
  // One byte more than its lstat's size: a file that has grown is read by Node's fs, whole.
  const got = nativeFs().readFileInto(abs, scratch, 0, size + 1);
  readAhead.read();
  return got >= 0 && got <= size ? scratch.subarray(0, got) : undefined;
}

/** How many entries of a walk are taken at a time: the read-ahead's window is this batch and the next. */
const BATCH = 256;

/**
 * A walk's entries, unchanged and in order. While the read-ahead is on (the hash's reads were seen
 * to wait on the disk), taken BATCH at a time, and each batch's small files that will be read (no
 * remembered digest) handed to it a batch before they are hashed; else one at a time, as walked.
 */
function* readingAhead(walk: Iterable<ContextEntry>, files: FileDigester | undefined): Generator<ContextEntry> {
  const it = walk[Symbol.iterator]();
  const take = (): ContextEntry[] => {
    const batch: ContextEntry[] = [];
    while (batch.length < BATCH) {
      const r = it.next();
      if (r.done === true) break;
      batch.push(r.value);
    }
    return batch;
  };
  const toRead = (batch: ContextEntry[]): string[] => {
    const paths: string[] = [];
    for (const e of batch)
      if (e.stat.isFile() && e.stat.size > 0 && e.stat.size <= SMALL_FILE && !files?.remembers?.(e.abs, e.stat, e.rel))
        paths.push(e.abs);
    return paths;
  };
  try {
    let pending: ContextEntry[] = []; // taken and handed to the read-ahead, not yet hashed
    for (;;) {
      if (pending.length === 0 && readAhead?.active !== true) {
        const r = it.next();
        if (r.done === true) return;
        yield r.value;
        continue;
      }
      let batch = pending;
      if (batch.length === 0) {
        batch = take();
        readAhead!.ahead(toRead(batch));
        if (batch.length === 0) return;
      }
      pending = readAhead?.active === true ? take() : [];
      if (pending.length > 0) readAhead!.ahead(toRead(pending));
      yield* batch;
    }
  } finally {
    it.return?.();
  }
}

export interface SelectionOptions {
  /** Error place for "not found" (the caller usually treats any error as "cannot key this step"). */
  place?: ErrorPlace;
  /** Include uid/gid (sources whose ownership reaches the layer: another stage, an image). */
  keepOwner?: boolean;
  /** Digests known without reading (remembered between builds for context sources, recorded by a stage's RUN layers). */
  files?: FileDigester;
  /** Told each entry hashed (for `build --explain`: what a selection was, file by file). */
  onEntry?: (e: SelectedEntry) => void;
}

/** An entry of a selection as it was hashed: content is a file's digest (hex) or a symlink's target. */
export interface SelectedEntry {
  path: string;
  type: 'f' | 'd' | 'l';
  mode: string;
  size?: number;
  content?: string;
}

/**
 * One digest for the entries `sources` select in `ctx` (after .dockerignore; directories with
 * everything under them), in the order COPY reads them. A source that selects nothing throws
 * (as COPY would).
 */
export async function hashSelection(
  ctx: BuildContext,
  sources: string[],
  opts: SelectionOptions = {},
): Promise<Digest> {
  const h = new LineHash();
  h.update('kiln-selection-v1\n');
  for (const s of sources) {
    h.update(`source ${JSON.stringify(s)}\n`);
    for (const e of ctx.select(s, opts.place ?? {})) {
      // Files linked to each other within a selected entry are one inode in the layer (COPY keeps
      // hard links per source, build/copy.ts): the links are part of what the step makes.
      const inodes = new Map<string, string>();
      await hashEntry(h, e, opts, inodes);
      if (e.stat.isDirectory())
        for (const c of readingAhead(ctx.walk(e.rel), opts.files)) await hashEntry(h, c, opts, inodes);
    }
  }
  return `sha256:${h.digest()}`;
}

/**
 * sha256 of a selection's lines, handed to the hash 16 KB at a time: the digest of the lines one
 * after the other, as one update per line made it (each line ends with a newline and holds no lone
 * surrogate — JSON.stringify escapes them —, so the UTF-8 of the whole is the lines' UTF-8 end to
 * end); an update per line cost more than hashing its bytes (30,000 files' lines: ~15 ms).
 */
class LineHash {
  private readonly h = createHash('sha256');
  private pending = '';
  update(line: string): void {
    this.pending += line;
    if (this.pending.length >= 1 << 14) this.flush();
  }
  digest(): string {
    this.flush();
    return this.h.digest('hex');
  }
  private flush(): void {
    if (this.pending === '') return;
    this.h.update(this.pending);
    this.pending = '';
  }
}

async function hashEntry(
  h: LineHash,
  e: ContextEntry,
  opts: SelectionOptions,
  inodes: Map<string, string>,
): Promise<void> {
  const st = e.stat;
  const owner = opts.keepOwner ? ` ${st.uid}:${st.gid}` : '';
  const perm = (st.mode & 0o7777).toString(8);
  const name = JSON.stringify(e.rel);
  if (st.isDirectory()) {
    h.update(`d ${name} ${perm}${owner}\n`);
    opts.onEntry?.({ path: e.rel, type: 'd', mode: perm });
  } else if (st.isSymbolicLink()) {
    const target = readlinkSync(e.abs);
    h.update(`l ${name}${owner} ${JSON.stringify(target)}\n`);
    opts.onEntry?.({ path: e.rel, type: 'l', mode: perm, content: target });
  } else if (st.isFile()) {
    const d = opts.files ? await opts.files.digest(e.abs, st, e.rel) : await hashFile(e.abs, st.size);
    h.update(`f ${name} ${perm}${owner} ${st.size} ${d}\n`);
    opts.onEntry?.({ path: e.rel, type: 'f', mode: perm, size: st.size, content: d });
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first === undefined) inodes.set(key, e.rel);
      else h.update(`h ${name} ${JSON.stringify(first)}\n`);
    }
  }
  // sockets, fifos, devices are not copied: not hashed either
}

/** Where a context's file digests are remembered under `dir` (one file per context root). */
export function fileHashCachePath(dir: string, contextRoot: string): string {
  const id = createHash('sha256').update(path.resolve(contextRoot)).digest('hex').slice(0, 32);
  return joinPath(dir, `${id}.json`);
}
