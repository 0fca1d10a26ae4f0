/**
 * kiln's native file-system helper (native/, the `kiln-native` package, built by node-gyp at
 * `npm ci`): a directory read with every entry's lstat and whether it has xattrs, in one call; a
 * small file read into a caller's buffer in one call; and a read-ahead of small files into the page
 * cache by a background thread (util/read-ahead.ts decides when). A layer of 30,000 small files
 * spent most of its main thread in Node's per-file calls (an lstat's Stats with four Dates,
 * fs-xattr's two listxattr calls, open/read/close). Loaded on first use, like fs-xattr
 * (util/xattr.ts), by native-addon.ts.
 */
import { LeanStats } from './lean-stats.js';
import { KilnError } from './errors.js';
import { nativeAddon, nativeAddonLoaded } from './native-addon.js';

/** A directory's entries in byte order, each with its lstat (undefined: lstat it with Node's fs) and an xattr hint. */
export interface DirectoryListing {
  names: string[];
  /** The entry's lstat, or undefined when it must be read with Node's lstatSync (which raises the error). */
  stats(i: number): LeanStats | undefined;
  /** False when the entry certainly has no xattrs (listxattr found none); true: read them as usual. */
  mayHaveXattrs(i: number): boolean;
}

export interface NativeFs {
  /** The entries of `dir` (not . and ..), or undefined: read it with Node's fs (an error, or a name that is not UTF-8). */
  readDirectory(dir: string): DirectoryListing | undefined;
  /**
   * Read up to `length` bytes of `file` from its start into `into` at `offset`: the bytes read
   * (fewer at its end), or -1: read it with Node's fs (which raises the error).
   */
  readFileInto(file: string, into: Uint8Array, offset: number, length: number): number;
  /**
   * How many readFileInto calls of this process found their file not in the page cache (they waited
   * on the disk); 0 on a file system that cannot tell.
   */
  coldReads(): number;
  /**
   * Ask a background thread to have the kernel read these files into the page cache (open
   * without following a symlink, regular files only; errors ignored; nothing is read for the
   * caller): how many were queued (the queue is bounded).
   */
  prefetch(paths: string[]): number;
  /** Of the files handed to prefetch so far: how many the thread looked at, and how many of them were not cached. */
  prefetchStats(): { probed: number; cold: number };
}

/** Numbers per entry in the addon's `stats` (fswalk.c's FIELDS). */
const FIELDS = 13;

/** An lstat time in ms, computed as Node's fs computes it from seconds and nanoseconds (the same double). */
const ms = (sec: number, nsec: number): number => sec * 1000 + nsec / 1e6;

class Listing implements DirectoryListing {
  constructor(
    readonly names: string[],
    private readonly f: Float64Array,
  ) {}
  stats(i: number): LeanStats | undefined {
    const f = this.f;
    const o = i * FIELDS;
    if (f[o]! < 0) return undefined;
    return new LeanStats({
      mode: f[o]!,
      uid: f[o + 1]!,
      gid: f[o + 2]!,
      size: f[o + 3]!,
      mtimeMs: ms(f[o + 4]!, f[o + 5]!),
      ctimeMs: ms(f[o + 6]!, f[o + 7]!),
      rdev: f[o + 8]!,
      dev: f[o + 9]!,
      ino: f[o + 10]!,
      nlink: f[o + 11]!,
    });
  }
  mayHaveXattrs(i: number): boolean {
    return this.f[i * FIELDS + 12] !== 0;
  }
}

let loaded: NativeFs | undefined;
let enabled = true;

/** Every call answered "use Node's fs" (useNativeFs(false)): the same steps as without the helper. */
const NODE_FS_ONLY: NativeFs = {
  readDirectory: () => undefined,
  readFileInto: () => -1,
  coldReads: () => 0,
  prefetch: () => 0,
  prefetchStats: () => ({ probed: 0, cold: 0 }),
};

/**
 * Files up to this size are read whole, synchronously, in one native call (readFileInto) by the
 * readers of many small files: the tar writer (layer/write.ts) and the context hash (context/hash.ts).
 */
export const SMALL_FILE = 256 << 10;

/**
 * Small files a process reads with Node's fs (open, read, close: ~3 calls more per file) before it
 * loads the native helper for the rest: loading it (dlopen, 1-4 ms of CPU) costs more than a few
 * hundred such reads, and a one-file rebuild's COPY (its key's hash, its tar) reads one to a few
 * files. Once loaded (by a directory walk, or past this count), it reads every small file.
 */
const NODE_READS_BEFORE_NATIVE = 64;
let nodeReads = 0;

/** Whether this small-file read goes through the native helper (else Node's fs): counts the reads before it is loaded. */
export function nativeSmallRead(): boolean {
  return nativeFsLoaded() || ++nodeReads > NODE_READS_BEFORE_NATIVE;
}

/** The helper; a KilnError naming what to install when it cannot be loaded. */
export function nativeFs(): NativeFs {
  return enabled ? (loaded ??= load()) : NODE_FS_ONLY;
}

/**
 * Whether the helper costs nothing more to use: the addon is loaded already (by a directory walk or
 * the gzip deflater), or the helper is turned off. A caller with only a few calls to make uses it
 * then, and Node's fs before (util/xattr.ts likewise loads its addon on first use only).
 */
export function nativeFsLoaded(): boolean {
  return loaded !== undefined || !enabled || nativeAddonLoaded();
}

/**
 * Whether nativeFs() uses the addon (the default) or answers every call with "use Node's fs":
 * the tests compare what the two ways write.
 */
export function useNativeFs(on: boolean): void {
  enabled = on;
}

function load(): NativeFs {
  const { addon: a, file } = nativeAddon();
  // An addon built from an older checkout (native/ not rebuilt after a pull): said now, not as a
  // TypeError in the middle of a layer.
  if (typeof a.prefetchFiles !== 'function' || typeof a.coldReads !== 'function')
    throw new KilnError(
      'NOT_FOUND',
      `kiln's native addon (${file}) was built from an older kiln: it has no read-ahead. Rebuild it: ` +
        "`npm rebuild kiln-native` (or `npm ci`) in kiln's directory",
    );
  return {
    readDirectory: (dir) => {
      const r = a.readDirectory(dir);
      return r ? new Listing(r.names, r.stats) : undefined;
    },
    readFileInto: (file, into, offset, length) => {
      const n = a.readFileInto(file, into, offset, length);
      return n < 0 ? -1 : n;
    },
    coldReads: () => a.coldReads(),
    prefetch: (paths) => a.prefetchFiles(paths),
    prefetchStats: () => {
      const [probed, cold] = a.prefetchStats();
      return { probed, cold };
    },
  };
}
