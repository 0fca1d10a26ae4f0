/**
 * Lines written once and read back once, in order: kept in memory while they are few, spilled to a
 * temp file (in the store's tmp dir) past a few MB. A `COPY --from` of 300,000 files lists each
 * file's source for its provenance record, and the record's file list is made before its package
 * list is known: neither is held whole in memory (copy.ts, provenance.ts).
 */
import { closeSync, createReadStream, openSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** What is kept in memory before the lines go to a file. */
const IN_MEMORY = 4 << 20;
/** Lines gathered before they are kept or written. */
const PIECE = 64 << 10;

export class LineSpill {
  private pieces: string[] = [];
  private pending = '';
  private held = 0;
  private fd: number | undefined;
  private file: string | undefined;
  count = 0;

  constructor(private readonly tmpDir: string) {}

  /** One line (no newline in it: JSON text). */
  push(line: string): void {
    this.count++;
    this.pending += `${line}\n`;
    if (this.pending.length < PIECE) return;
    this.flushPending();
  }

  private flushPending(): void {
    if (this.pending === '') return;
    if (this.fd === undefined && this.held + this.pending.length <= IN_MEMORY) {
      this.pieces.push(this.pending);
      this.held += this.pending.length;
      this.pending = '';
      return;
    }
    if (this.fd === undefined) {
      this.file = path.join(this.tmpDir, `tmp-${process.pid}-spill-${randomBytes(8).toString('hex')}`);
      this.fd = openSync(this.file, 'wx', 0o600);
      for (const p of this.pieces) writeAll(this.fd, p);
      this.pieces = [];
      this.held = 0;
    }
    writeAll(this.fd, this.pending);
    this.pending = '';
  }

  /** The lines in the order they were pushed (once: the spill is removed after). */
  async *lines(): AsyncGenerator<string> {
    this.flushPending();
    try {
      if (this.fd === undefined) {
        for (const p of this.pieces) yield* splitLines(p);
        return;
      }
      closeSync(this.fd);
      this.fd = undefined;
      let rest = '';
      for await (const chunk of createReadStream(this.file!, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
        const text = rest + (chunk as string);
        const end = text.lastIndexOf('\n');
        rest = text.slice(end + 1);
        yield* splitLines(text.slice(0, end + 1));
      }
    } finally {
      this.dispose();
    }
  }

  /** Remove the spill (also when its lines were never read). */
  dispose(): void {
    this.pieces = [];
    this.pending = '';
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.file !== undefined) rmSync(this.file, { force: true });
    this.file = undefined;
  }
}

function* splitLines(text: string): Generator<string> {
  for (let start = 0; start < text.length;) {
    const end = text.indexOf('\n', start);
    yield text.slice(start, end);
    start = end + 1;
  }
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
}
