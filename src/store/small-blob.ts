/**
 * Small files of the store written whole: a blob that turned out small (a one-file COPY's layer, a
 * few KB), the facts beside it, a small provenance record. Streaming such a file cost ~10 trips through the thread pool
 * (open, writes, the early writeback's second descriptor, close, open to sync, sync, close, rename,
 * then as many for its facts file): 5-10 ms of a one-file rebuild on a loaded machine, for bytes
 * the encoder had already made. Here they are written with synchronous calls (~10 µs each) and
 * only the fsync, which waits for the disk, goes through the thread pool.
 */
import { closeSync, fsync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { tempPathFor } from '../util/index.js';

/**
 * Replace `target` with `data`, durably: a temp file beside it, written, fsynced, renamed (a crash
 * leaves the old file or the new one, whole). `tmp` names the temp file when the caller has its own
 * temp place (the store's tmp/ for blobs). A missing directory of `target` is made.
 */
export async function writeFileDurably(target: string, data: Buffer, tmp = tempPathFor(target)): Promise<void> {
  const fd = writeTemp(tmp, data);
  try {
    await new Promise<void>((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameInPlace(tmp, target);
}

/**
 * Replace `target` with `data`, all or nothing for a concurrent reader (temp + rename), not fsynced:
 * for records every reader validates, a damaged or lost one reading as absent.
 */
export function replaceFileSync(target: string, data: Buffer | string): void {
  const tmp = tempPathFor(target);
  closeSync(writeTemp(tmp, typeof data === 'string' ? Buffer.from(data) : data));
  renameInPlace(tmp, target);
}

/** A new temp file holding `data`, still open (its descriptor); removed when the write fails. */
function writeTemp(tmp: string, data: Buffer): number {
  const fd = openTemp(tmp);
  try {
    writeAll(fd, data);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  return fd;
}

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
}

/** A new temp file (its directory made when missing). */
function openTemp(tmp: string): number {
  try {
    return openSync(tmp, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(path.dirname(tmp), { recursive: true });
    return openSync(tmp, 'wx', 0o644);
  }
}

/** Rename a written temp file over `target` (its directory made when missing), or remove it. */
function renameInPlace(tmp: string, target: string): void {
  try {
    try {
      renameSync(tmp, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(path.dirname(target), { recursive: true });
      renameSync(tmp, target);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * A Writable that keeps what it is given in memory while that is at most `limit` bytes, and else
 * hands it all, in order, to the stream `spill()` opens (once) and streams the rest there. After
 * `finish`: `held` is the whole content when nothing spilled (`spilled` undefined).
 * Chunks are copied: a producer may reuse a buffer once its write has called back.
 */
export class MemoryFirstWritable extends Writable {
  private chunks: Buffer[] = [];
  private heldBytes = 0;
  private out: Writable | undefined;

  constructor(
    private readonly limit: number,
    private readonly spill: () => Promise<Writable>,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  /** The stream the content went to, once it outgrew the limit. */
  get spilled(): Writable | undefined {
    return this.out;
  }

  /** Everything written, when it stayed in memory. */
  held(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.heldBytes);
  }

  get heldLength(): number {
    return this.heldBytes;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.out === undefined && this.heldBytes + chunk.length <= this.limit) {
      this.chunks.push(Buffer.from(chunk));
      this.heldBytes += chunk.length;
      cb();
      return;
    }
    this.forward(chunk).then(() => cb(), cb);
  }

  private async forward(chunk: Buffer): Promise<void> {
    if (this.out === undefined) {
      this.out = await this.spill();
      const before = this.chunks;
      this.chunks = [];
      this.heldBytes = 0;
      for (const c of before) await writeTo(this.out, c);
    }
    await writeTo(this.out, chunk);
  }
}

function writeTo(w: Writable, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => w.write(b, (e) => (e ? reject(e) : resolve())));
}
