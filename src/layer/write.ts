/**
 * Writing layer tars: from a whole directory, from a list of changes under a root (what a RUN
 * step changed), or from explicit entries (COPY/ADD without a container). Deterministic: sorted
 * paths, parents before children, hard links written once then as links, optional
 * SOURCE_DATE_EPOCH clamping of every timestamp.
 */
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  statSync,
  promises as fsp,
} from 'node:fs';
import { createHash, hash } from 'node:crypto';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  KilnError,
  LeanStats,
  type LstatFields,
  nativeFs,
  nativeSmallRead,
  ReadAhead,
  SMALL_FILE,
  xattr,
} from '../util/index.js';
import { announceContentSize } from './content-size.js';
import { BLOCK, END_OF_ARCHIVE, encodeHeader, encodeHeaderInto, type EntryType, type TarHeader } from './tarformat.js';

export interface TarOptions {
  /** Clamp every mtime above this (seconds) down to it: reproducible layers. */
  sourceDateEpoch?: number;
  /** Every xattr name an entry has (kept in the tar or not), as it is read: one listing serves the caller too. */
  onXattrNames?: (name: string, xattrs: string[]) => void;
  /**
   * Told the sha256 (hex) of each small regular file's bytes as they are put in the tar, with the
   * lstat they were read under: a builder stage's RUN layer records them so that a `COPY --from`
   * of its files is keyed without opening them again (context/hash.ts, RecordedFileDigests).
   * Files larger than SMALL_FILE are not told: reading them costs their bytes either way.
   */
  onFileDigest?: (name: string, st: EntryStats, digest: string) => void;
}

/** A regular file of a layer as read into its tar: its identity (the lstat it was read under) and content digest. */
export interface FileDigestRecord {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** sha256 of the bytes, hex. */
  digest: string;
}

/** Recorded file digests looked up by path (a FileDigestTable, or a Map). */
export interface FileDigestLookup {
  get(name: string): FileDigestRecord | undefined;
}

/**
 * A RUN layer's recorded file digests, packed: each file's numbers in a Float64Array and its
 * sha256 in a Buffer, by path (~130 bytes a file instead of ~280 as an object and a hex string):
 * a builder stage of 100,000 files holds them until its `COPY --from` is keyed.
 */
export class FileDigestTable implements FileDigestLookup {
  private readonly index = new Map<string, number>();
  private nums = new Float64Array(4 * 256);
  private digests = Buffer.alloc(32 * 256);

  get size(): number {
    return this.index.size;
  }

  set(name: string, r: FileDigestRecord): void {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.index.size;
      if ((i + 1) * 32 > this.digests.length) {
        const nums = new Float64Array(this.nums.length * 2);
        nums.set(this.nums);
        this.nums = nums;
        const digests = Buffer.alloc(this.digests.length * 2);
        this.digests.copy(digests);
        this.digests = digests;
      }
      this.index.set(name, i);
    }
    const o = i * 4;
    this.nums[o] = r.size;
    this.nums[o + 1] = r.mtimeMs;
    this.nums[o + 2] = r.ctimeMs;
    this.nums[o + 3] = r.ino;
    this.digests.write(r.digest, i * 32, 32, 'hex');
  }

  get(name: string): FileDigestRecord | undefined {
    const i = this.index.get(name);
    if (i === undefined) return undefined;
    const o = i * 4;
    return {
      size: this.nums[o]!,
      mtimeMs: this.nums[o + 1]!,
      ctimeMs: this.nums[o + 2]!,
      ino: this.nums[o + 3]!,
      digest: this.digests.toString('hex', i * 32, i * 32 + 32),
    };
  }
}

/**
 * A path the layer adds, deletes (whiteout) or makes opaque; `stats`: its lstat when the differ had
 * it; `noXattrs`: the differ found it has no xattrs (listxattr), so the tar writer lists none.
 */
export type Change = { kind: 'add' | 'delete' | 'opaque'; path: string; stats?: EntryStats; noXattrs?: boolean };

/** What the tar writer reads of an lstat: an fs.Stats has it, and so has a LeanStats (util/lean-stats.ts). */
export type EntryStats = LstatFields;

// The differs' lean lstat, for the layer's users (sandbox/rootfs.ts).
export { LeanStats };

export interface EntrySpec {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';
  source?: string;
  content?: Buffer;
  size?: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
  xattrs?: Record<string, Buffer>;
  /** chardev and blockdev: the device numbers. */
  devmajor?: number;
  devminor?: number;
}

/**
 * xattrs images carry; others (e.g. overlay's own markers: trusted.overlay.* on the host,
 * user.overlay.* in a rootless user namespace, fuse-overlayfs' user.fuseoverlayfs.*; selinux
 * labels) stay out.
 */
const KEPT_XATTR =
  /^(security\.capability|user\.(?!overlay\.|fuseoverlayfs\.)|trusted\.(?!overlay\.)|security\.(?!selinux))/;

/** Whether a layer carries this xattr (the native snapshotter drops the others from a root it keeps). */
export function layerKeepsXattr(name: string): boolean {
  return KEPT_XATTR.test(name);
}

/** The xattrs of a file (not followed) that a layer carries, by name; undefined when it has none. */
export function keptXattrs(p: string): Record<string, Buffer> | undefined {
  return readXattrs(p);
}

function readXattrs(p: string, onNames?: (names: string[]) => void): Record<string, Buffer> | undefined {
  let names: string[];
  try {
    names = xattr().listAttributesSync(p);
  } catch {
    return undefined; // links on some file systems, or no xattr support
  }
  if (names.length === 0) return undefined; // most entries: nothing more to make
  onNames?.(names);
  const out: Record<string, Buffer> = {};
  let any = false;
  for (const n of names.sort()) {
    if (!KEPT_XATTR.test(n)) continue;
    try {
      out[n] = xattr().getAttributeSync(p, n);
      any = true;
    } catch {
      // vanished or unreadable: skip it
    }
  }
  return any ? out : undefined;
}

interface PendingEntry {
  header: TarHeader;
  source?: string;
  content?: Buffer;
  /** Told the sha256 (hex) of a small file's bytes, as read from `source`. */
  onDigest?: (digest: string) => void;
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

function typeOf(st: EntryStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets are not carried in layers
}

function clamp(mtime: number, opts: TarOptions): number {
  return opts.sourceDateEpoch !== undefined && mtime > opts.sourceDateEpoch ? opts.sourceDateEpoch : mtime;
}

const OUT_CHUNK = 1 << 20;

/**
 * Tar entries → tar byte stream in chunks of about OUT_CHUNK. Headers and small files are packed
 * straight into the chunk being filled (one open/read/close per file, no per-file buffers): for
 * trees of many small files the per-file overhead, not the bytes, is the cost. Large files stream.
 */
async function* encodeEntries(
  entries: AsyncIterable<PendingEntry> | Iterable<PendingEntry>,
  counted: { contentSize: number },
): AsyncGenerator<Buffer> {
  // Zeroed chunks: a header's unused fields and a file's padding are already zero (not cleared per entry).
  let out = Buffer.alloc(OUT_CHUNK);
  let pos = 0;
  // `last`: the end of the archive, after which nothing is packed: no next chunk is allocated (a
  // zeroed MiB, counted by V8 as external memory, for each layer a one-file COPY writes).
  const flush = (last = false): Buffer | undefined => {
    if (pos === 0) return undefined;
    const full = out.subarray(0, pos);
    if (!last) out = Buffer.alloc(OUT_CHUNK);
    pos = 0;
    return full;
  };
  const put = (b: Buffer): Buffer | undefined => {
    let flushed: Buffer | undefined;
    if (pos + b.length > out.length) flushed = flush();
    if (b.length > out.length) return flushed ? Buffer.concat([flushed, b]) : b;
    b.copy(out, pos);
    pos += b.length;
    return flushed;
  };
  const pad = (size: number): void => {
    pos += (BLOCK - (size % BLOCK)) % BLOCK; // zero already: out is written once, front to back
  };
  const iter =
    Symbol.asyncIterator in entries
      ? (entries as AsyncIterable<PendingEntry>)
      : syncToAsyncBatched(entries as Iterable<PendingEntry>);
  // The read-ahead, made on the first small file the addon reads: it has the next ones read into
  // the page cache once reads are seen to wait on the disk (util/read-ahead.ts).
  const reading: { ahead?: ReadAhead } = {};
  for await (const list of readingAhead(iter as AsyncIterable<PendingEntry | PendingEntry[]>, reading)) {
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (encodeHeaderInto(e.header, out, pos, true)) pos += BLOCK;
      else {
        const head = put(encodeHeader(e.header));
        if (head) yield head;
      }
      // As content-size.ts reads it back: files' sizes, symlinks' targets; hard links, directories 0.
      if (e.header.type === 'file') counted.contentSize += e.header.size;
      else if (e.header.type === 'symlink') counted.contentSize += Buffer.byteLength(e.header.linkname ?? '');
      const size = e.header.type === 'file' ? e.header.size : 0;
      if (size === 0) {
        e.onDigest?.(EMPTY_SHA256);
        continue;
      }
      const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
      if (e.content !== undefined) {
        const c = put(e.content.length > size ? e.content.subarray(0, size) : e.content);
        if (c) yield c;
        if (e.content.length < size) throw new KilnError('INTERNAL', `${e.header.name}: content shorter than its size`);
        if (pos + padded - size > out.length) {
          const f = flush();
          if (f) yield f;
        }
        pad(size);
        continue;
      }
      if (e.source === undefined) throw new KilnError('INTERNAL', `${e.header.name}: a file entry without content`);
      if (size <= SMALL_FILE) {
        // Synchronous on purpose: for many small files the thread-pool round trips dominate.
        if (pos + padded > out.length) {
          const f = flush();
          if (f) yield f;
        }
        // One native call (open, read, close); -1: Node's fs again, which raises the error. The
        // first few files of a process are read with Node's fs (util/native-fs.ts nativeSmallRead).
        let got = -1;
        if (nativeSmallRead()) {
          reading.ahead ??= new ReadAhead(nativeFs());
          got = nativeFs().readFileInto(e.source, out, pos, size);
          // Reads now seen to wait on the disk: the rest of this batch is read ahead, then every next one.
          if (reading.ahead.read()) reading.ahead.ahead(smallFileSources(list, i + 1));
        }
        if (got < 0) got = readSmallFile(e, out, pos, size);
        if (got !== size) throw changedSize(e, got);
        // crypto.hash: one call, a third of createHash's cost on a 1 KB file (a RUN layer tells every one).
        e.onDigest?.(hash('sha256', out.subarray(pos, pos + size), 'hex'));
        pos += size;
        pad(size);
        continue;
      }
      const f = flush();
      if (f) yield f;
      let written = 0;
      try {
        // Opened here (not by the stream) so that no link is followed: the stream's flags are a string.
        const fd = openSync(e.source, READ_NO_FOLLOW);
        for await (const chunk of createReadStream('', { fd, highWaterMark: 1 << 20 })) {
          const b = chunk as Buffer;
          const room = size - written;
          if (room <= 0) break;
          const part = b.length > room ? b.subarray(0, room) : b;
          written += part.length;
          yield part;
        }
      } catch (err) {
        throw becameLink(e, err);
      }
      if (written !== size) throw changedSize(e, written);
      pad(size);
    }
  }
  const end = put(END_OF_ARCHIVE);
  if (end) yield end;
  const last = flush(true);
  if (last) yield last;
}

/**
 * The entries' batches (a lone entry as a list of one), in order. While the read-ahead is on, the
 * next batch is walked before this one is written, and the small files of both are handed to it:
 * the next batch's first files are on their way when this one ends (else each batch's first reads
 * waited on the disk). At most two batches of paths are held.
 */
async function* readingAhead(
  entries: AsyncIterable<PendingEntry | PendingEntry[]>,
  reading: { ahead?: ReadAhead },
): AsyncGenerator<PendingEntry[]> {
  const listOf = (b: PendingEntry | PendingEntry[]): PendingEntry[] => (Array.isArray(b) ? b : [b]);
  const source = entries[Symbol.asyncIterator]();
  try {
    let current = await source.next();
    let handed = false; // whether current's files were handed already
    while (current.done !== true) {
      const list = listOf(current.value);
      let upcoming: IteratorResult<PendingEntry | PendingEntry[]> | undefined;
      const ra = reading.ahead;
      if (ra?.active) {
        if (!handed) ra.ahead(smallFileSources(list, 0));
        upcoming = await source.next();
        if (upcoming.done !== true) ra.ahead(smallFileSources(listOf(upcoming.value), 0));
      }
      yield list;
      handed = upcoming !== undefined;
      current = upcoming ?? (await source.next());
    }
  } finally {
    // Stopped early (an error, the reader gone): the walk ends too, as for-await ends it.
    await source.return?.();
  }
}

/** The files of `list` from `from` on that encodeEntries reads whole and synchronously (small ones), in order. */
function smallFileSources(list: PendingEntry[], from: number): string[] {
  const paths: string[] = [];
  for (let i = from; i < list.length; i++) {
    const e = list[i]!;
    const size = e.header.size;
    if (e.header.type === 'file' && e.source !== undefined && e.content === undefined && size > 0 && size <= SMALL_FILE)
      paths.push(e.source);
  }
  return paths;
}

/**
 * How a file entry's source is opened: never through a symbolic link at its end. The walk saw a
 * regular file there; a link put in its place since (a context being edited, another user's
 * directory) would have the layer carry whatever it points at, the host's files included.
 */
const READ_NO_FOLLOW = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

/** An entry's read error; ELOOP (its source is a symbolic link now) said as what happened. */
function becameLink(e: PendingEntry, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException)?.code !== 'ELOOP') return err;
  return new KilnError(
    'INTERNAL',
    `${e.source ?? e.header.name} changed while being archived: it is a symbolic link now, not the file it was`,
    { path: e.source ?? e.header.name },
  );
}

/** Up to `size` bytes of `file` into `out` at `pos` with Node's fs: the bytes read. */
function readSmallFile(e: PendingEntry, out: Buffer, pos: number, size: number): number {
  const file = e.source!;
  let fd: number;
  try {
    fd = openSync(file, READ_NO_FOLLOW);
  } catch (err) {
    throw becameLink(e, err);
  }
  let got = 0;
  try {
    while (got < size) {
      const n = readSync(fd, out, pos + got, size - got, got);
      if (n === 0) break;
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  return got;
}

function changedSize(e: PendingEntry, got: number): KilnError {
  return new KilnError(
    'INTERNAL',
    `${e.source ?? e.header.name} changed size while being archived (${got} of ${e.header.size} bytes)`,
    { path: e.source ?? e.header.name },
  );
}

/** The tar stream of `entries`, announcing its content size (content-size.ts) to the encoder. */
function tarStream(entries: AsyncIterable<PendingEntry> | Iterable<PendingEntry>): Readable {
  const counted = { contentSize: 0 };
  return announceContentSize(Readable.from(encodeEntries(entries, counted), { objectMode: false }), () => {
    return counted.contentSize;
  });
}

/** A synchronous entry source read in batches: one await per batch, not per entry. */
async function* syncToAsyncBatched(entries: Iterable<PendingEntry>): AsyncGenerator<PendingEntry[]> {
  let batch: PendingEntry[] = [];
  for (const e of entries) {
    batch.push(e);
    if (batch.length >= 256) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

class HardlinkTracker {
  private readonly seen = new Map<string, string>();
  /** The first path of this inode, when it was already written. */
  check(st: EntryStats, name: string): string | undefined {
    if (st.isDirectory() || st.nlink < 2) return undefined;
    const key = `${st.dev}:${st.ino}`;
    const first = this.seen.get(key);
    if (first === undefined) this.seen.set(key, name);
    return first;
  }
}

function entryFor(
  abs: string,
  name: string,
  st: EntryStats,
  links: HardlinkTracker,
  opts: TarOptions,
  mayHaveXattrs = true,
): PendingEntry | undefined {
  const type = typeOf(st);
  if (type === undefined) return undefined;
  const header: TarHeader = {
    name,
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: 0,
    mtime: clamp(Math.floor(st.mtimeMs / 1000), opts),
  };
  const first = links.check(st, name);
  if (first !== undefined) {
    header.type = 'hardlink';
    header.linkname = first;
    return { header };
  }
  if (type === 'file') header.size = st.size;
  if (type === 'symlink') header.linkname = readlinkSync(abs);
  if (type === 'chardev' || type === 'blockdev') {
    header.devmajor = Math.floor(st.rdev / 256) & 0xfff;
    header.devminor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
  }
  if (type !== 'symlink' && mayHaveXattrs) {
    const x = readXattrs(abs, opts.onXattrNames && ((names) => opts.onXattrNames!(name, names)));
    if (x) header.xattrs = x;
  }
  if (type !== 'file') return { header };
  const told = opts.onFileDigest;
  return {
    header,
    source: abs,
    ...(told && st.size <= SMALL_FILE ? { onDigest: (d: string) => told(name, st, d) } : {}),
  };
}

/**
 * Byte-wise path order with parents before children (a/b before a.b before a/…): component by
 * component, each compared as UTF-8 bytes, a prefix first. In one pass over the code units: at the
 * first difference, a component that ends there ('/' or the path's end) is the shorter one, and
 * other code units order as their UTF-8 does unless one is a surrogate (a character above U+FFFF,
 * which UTF-16 orders below U+E000–U+FFFF and UTF-8 above): then component by component, as bytes.
 * Every change of a RUN layer is compared with the one before it (tarChangesInOrder): the split and
 * the Buffers per call were a measurable part of a many-file layer's tar.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  const ca = a.charCodeAt(i);
  const cb = b.charCodeAt(i);
  if (ca === 0x2f) return -1;
  if (cb === 0x2f) return 1;
  if ((ca < 0xd800 || ca > 0xdfff) && (cb < 0xd800 || cb > 0xdfff)) return ca - cb;
  return compareComponents(a, b);
}

/** comparePaths the long way: each pair of components as UTF-8 bytes. */
function compareComponents(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    if (as[i] !== bs[i]) return Buffer.compare(Buffer.from(as[i]!), Buffer.from(bs[i]!));
  }
  return as.length - bs.length;
}

/**
 * Names in byte order. UTF-16 order is UTF-8's (code point order) unless a name has a surrogate
 * (a character above U+FFFF): most directories sort as strings, the others with each name's UTF-8
 * made once, not at every comparison.
 */
function byteOrder(names: string[]): string[] {
  if (!names.some((n) => SURROGATE.test(n))) return names.sort();
  return names
    .map((n) => ({ n, b: Buffer.from(n) }))
    .sort((x, y) => Buffer.compare(x.b, y.b))
    .map((x) => x.n);
}

const SURROGATE = /[\ud800-\udfff]/;

function* walk(root: string, rel: string, links: HardlinkTracker, opts: TarOptions): Generator<PendingEntry> {
  // Synchronous metadata reads: a tree walk is thousands of tiny calls, each a thread-pool hop when async.
  const dir = path.join(root, rel);
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  // One native call lists the directory with every entry's lstat and whether it has xattrs, in the
  // same byte order; an entry it could not lstat is lstat'ed here (raising the same error as before).
  const listing = nativeFs().readDirectory(dir);
  if (listing) {
    const names = listing.names;
    for (let i = 0; i < names.length; i++) {
      const r = rel ? `${rel}/${names[i]}` : names[i]!;
      const abs = prefix + names[i];
      const st = listing.stats(i) ?? lstatSync(abs);
      const e = entryFor(abs, r, st, links, opts, listing.mayHaveXattrs(i));
      if (e) yield e;
      if (st.isDirectory()) yield* walk(root, r, links, opts);
    }
    return;
  }
  // A directory the helper did not read (an error, to be raised as Node's fs raises it; a name
  // that is not UTF-8, which Node's fs names as it always did).
  const names = byteOrder(readdirSync(dir));
  for (const n of names) {
    const r = rel ? `${rel}/${n}` : n;
    const abs = prefix + n; // path.join(root, r): dir is normalized, a name from readdir has no slash
    const st = lstatSync(abs);
    const e = entryFor(abs, r, st, links, opts);
    if (e) yield e;
    if (st.isDirectory()) yield* walk(root, r, links, opts);
  }
}

/** The whole tree under `root` as a layer tar. */
export function tarDirectory(root: string, opts: TarOptions = {}): Readable {
  return tarStream(walk(root, '', new HardlinkTracker(), opts));
}

/** The given changes under `root` as a layer tar (adds with their metadata, deletes as whiteouts). */
export function tarChanges(root: string, changes: Change[], opts: TarOptions = {}): Readable {
  return tarChangesInOrder(root, [...changes].sort(compareChanges), opts);
}

/** The layer's order of changes: by path (comparePaths), a directory's entry before its opaque marker. */
export function compareChanges(a: Change, b: Change): number {
  return comparePaths(a.path, b.path) || rank(a) - rank(b);
}

/**
 * tarChanges of changes already in the layer's order (compareChanges), read one at a time as the
 * tar is written: a differ that walks in that order (sandbox/rootfs.ts upperChanges) streams its
 * changes straight into the layer, and nothing is held per path for the whole layer. A change out
 * of order is an INTERNAL error (the layer would not be reproducible).
 */
export function tarChangesInOrder(root: string, changes: Iterable<Change>, opts: TarOptions = {}): Readable {
  function* gen(): Generator<PendingEntry> {
    const links = new HardlinkTracker();
    const epoch = opts.sourceDateEpoch ?? 0;
    // Paths below the root joined by hand (a change's path is clean and relative): path.join per
    // entry was a measurable part of a many-file layer's tar.
    const clean = path.normalize(root);
    const rootSlash = clean.endsWith('/') ? clean : `${clean}/`;
    let previous: Change | undefined;
    for (const c of changes) {
      if (previous && compareChanges(previous, c) > 0)
        throw new KilnError('INTERNAL', `layer changes out of order: ${c.kind} ${c.path} after ${previous.path}`);
      previous = c;
      if (c.kind === 'delete') {
        const dir = path.posix.dirname(c.path);
        const base = path.posix.basename(c.path);
        yield {
          header: {
            name: dir === '.' ? `.wh.${base}` : `${dir}/.wh.${base}`,
            type: 'file',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: epoch,
          },
        };
      } else if (c.kind === 'opaque') {
        yield {
          header: { name: `${c.path}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: epoch },
        };
      } else {
        const abs = rootSlash + c.path;
        const e = entryFor(abs, c.path, c.stats ?? lstatSync(abs), links, opts, c.noXattrs !== true);
        if (e) yield e;
      }
    }
  }
  return tarStream(gen());
}
// A directory's own entry comes before its opaque marker; a whiteout sorts as its own name.
function rank(c: Change): number {
  return c.kind === 'add' ? 0 : c.kind === 'opaque' ? 1 : 2;
}

/** Explicit entries (the build engine gives each one's final metadata) as a layer tar. */
export function tarEntries(entries: Iterable<EntrySpec> | AsyncIterable<EntrySpec>, opts: TarOptions = {}): Readable {
  const sizeOf = (s: EntrySpec, stat: (p: string) => number): number =>
    s.type === 'file' ? (s.content?.length ?? s.size ?? (s.source ? stat(s.source) : 0)) : 0;
  if (Symbol.iterator in entries) {
    // A list (a COPY's entries): read in batches (syncToAsyncBatched), not one await per entry.
    const list = entries;
    function* gen(): Generator<PendingEntry> {
      for (const s of list)
        yield pendingOf(
          s,
          sizeOf(s, (p) => statSync(p).size),
          opts,
        );
    }
    return tarStream(gen());
  }
  async function* gen(): AsyncGenerator<PendingEntry> {
    for await (const s of entries) {
      const toStat = s.type === 'file' && s.content === undefined && s.size === undefined ? s.source : undefined;
      yield pendingOf(s, toStat ? (await fsp.stat(toStat)).size : sizeOf(s, () => 0), opts);
    }
  }
  return tarStream(gen());
}

function pendingOf(s: EntrySpec, size: number, opts: TarOptions): PendingEntry {
  const header: TarHeader = {
    name: s.path.replace(/^\/+/, '').replace(/\/+$/, ''),
    type: s.type,
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size,
    mtime: clamp(s.mtime, opts),
  };
  if (s.linkname !== undefined) header.linkname = s.linkname;
  if (s.xattrs) header.xattrs = s.xattrs;
  if (s.type === 'chardev' || s.type === 'blockdev') {
    header.devmajor = s.devmajor ?? 0;
    header.devminor = s.devminor ?? 0;
  }
  return { header, source: s.source, content: s.content };
}

/** One entry of a layer's skeleton: what an unpacker makes of it (times clamped as in the tar). */
export interface SkeletonEntry {
  path: string;
  type: EntrySpec['type'];
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
}

/**
 * layerSkeleton's answer for entries read one at a time, in the layer's order, without holding them:
 * an entry strictly inside the leaves' common root so far stays inside it (the root only shortens),
 * so only the few others are kept. The caller says which paths are leaves (a file, a link, a
 * directory with nothing under it in the layer), when it knows.
 */
export class SkeletonTracker {
  private root: string | undefined;
  private kept: EntrySpec[] = [];
  private none = false;

  entry(s: EntrySpec): void {
    if (this.none) return;
    const p = cleanPath(s.path);
    if (this.root !== undefined && p.length > this.root.length + 1 && p.startsWith(`${this.root}/`)) return;
    // Thousands of entries outside the root: not a layer of that shape (layerSkeleton stops at 64).
    if (this.kept.length >= 4096) {
      this.giveUp();
      return;
    }
    this.kept.push(s);
  }

  leaf(path: string): void {
    if (this.none) return;
    const p = cleanPath(path);
    let r = this.root ?? p;
    while (r !== '' && !(p === r || (p.startsWith(r) && p.charCodeAt(r.length) === 0x2f)))
      r = r.slice(0, Math.max(r.lastIndexOf('/'), 0));
    this.root = r;
    if (r === '') this.giveUp();
  }

  private giveUp(): void {
    this.none = true;
    this.kept = [];
  }

  result(opts: TarOptions = {}): { root: string; entries: SkeletonEntry[] } | undefined {
    const r = this.root;
    if (this.none || r === undefined || r === '') return undefined;
    const entries = skeletonEntries(
      r,
      this.kept.map((s) => cleanPath(s.path)),
      this.kept,
      opts,
    );
    return entries && { root: r, entries };
  }
}

function cleanPath(p: string): string {
  // Called for every entry: most have no slash to strip.
  return p.charCodeAt(0) === 0x2f || p.charCodeAt(p.length - 1) === 0x2f
    ? p.replace(/^\/+/, '').replace(/\/+$/, '')
    : p;
}

/**
 * A layer of known entries, summed up for partial views (sandbox/view.ts): every entry is either
 * strictly inside `root` or one of `entries` (root itself and its parents). A COPY of a tree to
 * /app/node_modules has root "app/node_modules" and the entries app, app/node_modules: whether
 * /app exists and whose it is can be answered without reading the layer. Undefined when the
 * entries have no such shape (no common root, or more than a few outside it).
 */
export function layerSkeleton(
  specs: EntrySpec[],
  opts: TarOptions = {},
): { root: string; entries: SkeletonEntry[] } | undefined {
  const clean = (p: string) => p.replace(/^\/+/, '').replace(/\/+$/, '');
  const paths = specs.map((s) => clean(s.path));
  const ancestors = new Set<string>();
  for (const p of paths) for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) ancestors.add(p.slice(0, i));
  // The leaves' longest common leading components, shortened in place (no split per path).
  let r: string | undefined;
  for (const p of paths) {
    if (ancestors.has(p)) continue; // not a leaf
    if (r === undefined) r = p;
    while (r !== '' && !(p === r || (p.startsWith(r) && p.charCodeAt(r.length) === 0x2f)))
      r = r.slice(0, Math.max(r.lastIndexOf('/'), 0));
  }
  r ??= '';
  if (r === '') return undefined;
  const entries = skeletonEntries(r, paths, specs, opts);
  return entries && { root: r, entries };
}

/**
 * The skeleton's entries of a layer whose leaves lie under `root`: those outside it (root itself
 * and its parents), at most 64; undefined when one lies elsewhere. `paths[i]` is `specs[i]`'s path,
 * cleaned.
 */
function skeletonEntries(
  root: string,
  paths: string[],
  specs: EntrySpec[],
  opts: TarOptions,
): SkeletonEntry[] | undefined {
  const entries: SkeletonEntry[] = [];
  for (const [i, s] of specs.entries()) {
    const p = paths[i]!;
    if (p.startsWith(`${root}/`)) continue;
    if (!(p === root || root.startsWith(`${p}/`))) return undefined;
    if (entries.length >= 64) return undefined;
    entries.push({
      path: p,
      type: s.type,
      mode: s.mode,
      uid: s.uid,
      gid: s.gid,
      mtime: clamp(s.mtime, opts),
      ...(s.linkname !== undefined ? { linkname: s.linkname } : {}),
    });
  }
  return entries;
}
