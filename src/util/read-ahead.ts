/**
 * When a reader of many small files has them read ahead of itself: the tar writer
 * (layer/write.ts encodeEntries) and the build context's content hash (context/hash.ts) read
 * each small file synchronously, one at a time: the fastest way when the files are in the page
 * cache (a RUN layer just written, a context just edited), and one disk latency per file when
 * they are not (an export, push or save of an older image, a context on a cold disk). Then the
 * next files of the walk are handed to the addon's read-ahead thread (native/src/prefetch.c),
 * which has the kernel read them into the page cache, many at a time, so that the reader's own
 * read (still the source of truth) finds them there.
 *
 * Adaptive, so that cached files cost nothing: off at first; turned on when the reads are seen to
 * wait on the disk (the addon counts readFileInto calls that found their file not cached:
 * coldReads); turned off again when the thread has looked at WARM_TO_STOP files since it last
 * found one not cached. The window is what the reader hands: a batch of its walk (at most 256
 * entries) and the next one; paths only, never file contents.
 */
import type { NativeFs } from './native-fs.js';

/** The addon's calls this uses (a test hands its own). */
export type ReadAheadFs = Pick<NativeFs, 'coldReads' | 'prefetch' | 'prefetchStats'>;

/** Small-file reads between two looks at how many of them waited on the disk. */
export const CHECK_EVERY = 16;
/** Reads that waited on the disk, among the last CHECK_EVERY, that turn reading ahead on. */
export const COLD_TO_START = 2;
/** Files the thread looked at, all cached, that turn reading ahead off again. */
export const WARM_TO_STOP = 256;

/** One tar's read-ahead: told of each small file read, and of each batch of files it will read next. */
export class ReadAhead {
  private on = false;
  private reads = 0;
  private coldSeen: number;
  /** The thread's counts when it was turned on or last found a file not cached. */
  private probedAt = 0;
  private coldAt = 0;

  constructor(private readonly fs: ReadAheadFs) {
    this.coldSeen = fs.coldReads();
  }

  /** Whether the files the writer reads next are to be handed to ahead(). */
  get active(): boolean {
    return this.on;
  }

  /**
   * A small file was read (by the addon, which counts the reads that waited). Every CHECK_EVERY
   * reads, whether reading ahead turns on: true when it did now (hand the rest of the batch).
   */
  read(): boolean {
    if (this.on || ++this.reads < CHECK_EVERY) return false;
    this.reads = 0;
    const cold = this.fs.coldReads();
    const fresh = cold - this.coldSeen;
    this.coldSeen = cold;
    if (fresh < COLD_TO_START) return false;
    this.on = true;
    const s = this.fs.prefetchStats();
    this.probedAt = s.probed;
    this.coldAt = s.cold;
    return true;
  }

  /** The small files the writer reads next, in its order: handed to the thread, unless it has found them all cached for a while (then off). */
  ahead(paths: string[]): void {
    if (!this.on || paths.length === 0) return;
    const s = this.fs.prefetchStats();
    if (s.cold !== this.coldAt) {
      this.coldAt = s.cold;
      this.probedAt = s.probed;
    } else if (s.probed - this.probedAt >= WARM_TO_STOP) {
      this.on = false;
      this.reads = 0;
      this.coldSeen = this.fs.coldReads();
      return;
    }
    this.fs.prefetch(paths);
  }
}
