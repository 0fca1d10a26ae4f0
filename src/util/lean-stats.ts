import { constants as fsConstants, type Stats } from 'node:fs';

/** The parts of an lstat kiln's tree walkers read: an fs.Stats has them, and so has a LeanStats. */
export type LstatFields = Pick<
  Stats,
  | 'mode'
  | 'uid'
  | 'gid'
  | 'size'
  | 'mtimeMs'
  | 'ctimeMs'
  | 'rdev'
  | 'dev'
  | 'ino'
  | 'nlink'
  | 'isFile'
  | 'isDirectory'
  | 'isSymbolicLink'
  | 'isCharacterDevice'
  | 'isBlockDevice'
  | 'isFIFO'
  | 'isSocket'
>;

/**
 * A directory's entries in a walk's order, each with its lstat fields packed (LeanStats.pack,
 * LeanStats.PACKED numbers an entry): ~100 bytes an entry, not ~350 as objects. What a walk found
 * (context's WalkListings), or what a RUN's differ read of a directory it made (sandbox/rootfs.ts).
 */
export interface PackedListing {
  readonly names: string[];
  readonly stats: Float64Array;
}

/**
 * The fields of an lstat that kiln keeps for many paths at once (a RUN layer's changes until each
 * entry is written; a stage's walk listings until its last COPY --from): an fs.Stats of Node 20
 * holds four Date objects and ~20 numbers (~850 bytes of heap, 85 MB for 100,000 files), this
 * ~100 bytes (the type tests on the prototype).
 */
export class LeanStats implements LstatFields {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly rdev: number;
  readonly dev: number;
  readonly ino: number;
  readonly nlink: number;
  constructor(
    st: Pick<Stats, 'mode' | 'uid' | 'gid' | 'size' | 'mtimeMs' | 'ctimeMs' | 'rdev' | 'dev' | 'ino' | 'nlink'>,
  ) {
    this.mode = st.mode;
    this.uid = st.uid;
    this.gid = st.gid;
    this.size = st.size;
    this.mtimeMs = st.mtimeMs;
    this.ctimeMs = st.ctimeMs;
    this.rdev = st.rdev;
    this.dev = st.dev;
    this.ino = st.ino;
    this.nlink = st.nlink;
  }
  /** The numbers a packed LeanStats takes in a Float64Array (exact: each field is a double in an fs.Stats). */
  static readonly PACKED = 10;

  /** Write the fields at entry `i` of `into` (PACKED numbers an entry). */
  pack(into: Float64Array, i: number): void {
    const o = i * LeanStats.PACKED;
    into[o] = this.mode;
    into[o + 1] = this.uid;
    into[o + 2] = this.gid;
    into[o + 3] = this.size;
    into[o + 4] = this.mtimeMs;
    into[o + 5] = this.ctimeMs;
    into[o + 6] = this.rdev;
    into[o + 7] = this.dev;
    into[o + 8] = this.ino;
    into[o + 9] = this.nlink;
  }

  /** The LeanStats packed at entry `i`. */
  static unpack(from: Float64Array, i: number): LeanStats {
    const o = i * LeanStats.PACKED;
    return new LeanStats({
      mode: from[o]!,
      uid: from[o + 1]!,
      gid: from[o + 2]!,
      size: from[o + 3]!,
      mtimeMs: from[o + 4]!,
      ctimeMs: from[o + 5]!,
      rdev: from[o + 6]!,
      dev: from[o + 7]!,
      ino: from[o + 8]!,
      nlink: from[o + 9]!,
    });
  }

  private is(type: number): boolean {
    return (this.mode & fsConstants.S_IFMT) === type;
  }
  isFile(): boolean {
    return this.is(fsConstants.S_IFREG);
  }
  isDirectory(): boolean {
    return this.is(fsConstants.S_IFDIR);
  }
  isSymbolicLink(): boolean {
    return this.is(fsConstants.S_IFLNK);
  }
  isCharacterDevice(): boolean {
    return this.is(fsConstants.S_IFCHR);
  }
  isBlockDevice(): boolean {
    return this.is(fsConstants.S_IFBLK);
  }
  isFIFO(): boolean {
    return this.is(fsConstants.S_IFIFO);
  }
  isSocket(): boolean {
    return this.is(fsConstants.S_IFSOCK);
  }
}
