/**
 * Streaming tar reader: entries one at a time with their body as an async iterable of chunks.
 * Memory is bounded by one chunk plus headers; a body not consumed is skipped. Hostile input:
 * header sizes are bounded (PAX and GNU long names up to 1 MiB).
 */
import type { Readable } from 'node:stream';
import { KilnError } from '../util/index.js';
import { BLOCK, decodeHeader, parsePax, type TarHeader } from './tarformat.js';

const MAX_META = 1 << 20;

class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]();
  }
  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }
  /** Exactly n bytes, or fewer at the end of input. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.fill()));
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }
  /** Up to n bytes, as they arrive. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill()))
        throw new KilnError('INVALID', 'unexpected end of tar stream inside an entry');
      const take = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(take.length);
      left -= take.length;
      yield take;
    }
  }
  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) void _;
  }
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) this.buf = Buffer.alloc(0);
  }
}

export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
}

export async function* readTar(src: Readable | AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(src as AsyncIterable<Buffer>);
  let pax = new Map<string, Buffer>();
  const globalPax = new Map<string, Buffer>();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  for (;;) {
    const block = await r.read(BLOCK);
    if (block.length === 0) return; // tolerate a missing end-of-archive marker
    if (block.length < BLOCK) throw new KilnError('INVALID', 'truncated tar header');
    const merged = new Map([...globalPax, ...pax]);
    const d = decodeHeader(block, merged, longName, longLink);
    if (d === undefined) {
      await r.drain(); // end of archive: read the rest so the producer finishes
      return;
    }
    const { typeflag, header } = d;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (header.size > MAX_META)
        throw new KilnError(
          'UNSAFE',
          `tar ${typeflag === 'x' || typeflag === 'g' ? 'PAX' : 'GNU long name'} header of ${header.size} bytes refused`,
        );
      const data = await r.read(header.size);
      if (data.length < header.size) throw new KilnError('INVALID', 'truncated tar extended header');
      await r.read((BLOCK - (header.size % BLOCK)) % BLOCK);
      if (typeflag === 'x') parsePax(data, pax);
      else if (typeflag === 'g') parsePax(data, globalPax);
      else if (typeflag === 'L') longName = Buffer.from(data);
      else longLink = Buffer.from(data);
      continue;
    }
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    const size =
      header.type === 'file'
        ? header.size
        : header.type === 'hardlink' || header.type === 'symlink' || header.type === 'directory'
          ? 0
          : 0;
    // Some writers give hard links a size; their data is not present in practice, but honour it.
    const dataSize = header.type === 'file' ? size : header.size;
    let consumed = false;
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        consumed = true;
        return r.chunks(dataSize)[Symbol.asyncIterator]();
      },
    };
    yield { header: { ...header, size: dataSize }, body };
    if (!consumed) await r.skip(dataSize);
    await r.read((BLOCK - (dataSize % BLOCK)) % BLOCK);
  }
}
