/**
 * A synchronous push parser for tar streams, for analysis: feed it decompressed chunks as they
 * arrive; it calls back once per entry with the decoded header (layer/'s tar codec: PAX, GNU long
 * names, checksums) and, when the callback asks for it, the entry's body chunk by chunk. Bodies
 * nobody wants are skipped by counting bytes. No promise per entry, no buffering beyond one
 * header: memory stays flat whatever the layer holds.
 */
import { KilnError } from '../util/errors.js';
import { BLOCK, decodeHeader, parsePax, type TarHeader } from '../layer/tarformat.js';

export interface BodySink {
  data(chunk: Buffer): void;
  end(): void;
}

const MAX_META = 1 << 20;

type State = 'header' | 'meta' | 'body' | 'pad' | 'done';

export class TarScanner {
  private state: State = 'header';
  private head = Buffer.alloc(BLOCK);
  private headFill = 0;
  private remaining = 0;
  private padding = 0;
  private sink: BodySink | undefined;
  private metaType = '';
  private meta: Buffer[] = [];
  private pax = new Map<string, Buffer>();
  private readonly globalPax = new Map<string, Buffer>();
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;
  /** Entries seen (after the end-of-archive marker nothing more is read). */
  entries = 0;

  constructor(private readonly onEntry: (header: TarHeader) => BodySink | undefined) {}

  write(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && this.state !== 'done') {
      switch (this.state) {
        case 'header': {
          const take = Math.min(BLOCK - this.headFill, chunk.length - pos);
          chunk.copy(this.head, this.headFill, pos, pos + take);
          this.headFill += take;
          pos += take;
          if (this.headFill === BLOCK) {
            this.headFill = 0;
            this.onHeader();
          }
          break;
        }
        case 'meta':
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - pos);
          const part = chunk.subarray(pos, pos + take);
          pos += take;
          this.remaining -= take;
          if (this.state === 'meta') this.meta.push(Buffer.from(part));
          else this.sink?.data(part);
          if (this.remaining === 0) this.afterData();
          break;
        }
        case 'pad': {
          const take = Math.min(this.padding, chunk.length - pos);
          pos += take;
          this.padding -= take;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The input ended: an entry cut short is an error; a missing end-of-archive marker is not. */
  end(): void {
    if (this.state === 'done' || (this.state === 'header' && this.headFill === 0)) return;
    if (this.state === 'pad') return; // padding after the last entry may be missing
    throw new KilnError('INVALID', 'unexpected end of tar stream inside an entry');
  }

  private onHeader(): void {
    const d = decodeHeader(this.head, this.pax.size || this.globalPax.size ? new Map([...this.globalPax, ...this.pax]) : this.pax, this.longName, this.longLink);
    if (!d) {
      this.state = 'done';
      return;
    }
    const { typeflag, header } = d;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (header.size > MAX_META) throw new KilnError('UNSAFE', `tar ${typeflag === 'x' || typeflag === 'g' ? 'PAX' : 'GNU long name'} header of ${header.size} bytes refused`);
      this.metaType = typeflag;
      this.meta = [];
      this.remaining = header.size;
      this.padding = (BLOCK - (header.size % BLOCK)) % BLOCK;
      this.state = 'meta';
      if (this.remaining === 0) this.afterData();
      return;
    }
    this.pax = new Map();
    this.longName = undefined;
    this.longLink = undefined;
    this.entries++;
    this.sink = this.onEntry(header);
    this.remaining = header.size;
    this.padding = (BLOCK - (header.size % BLOCK)) % BLOCK;
    this.state = 'body';
    if (this.remaining === 0) this.afterData();
  }

  private afterData(): void {
    if (this.state === 'meta') {
      const data = Buffer.concat(this.meta);
      this.meta = [];
      if (this.metaType === 'x') parsePax(data, this.pax);
      else if (this.metaType === 'g') parsePax(data, this.globalPax);
      else if (this.metaType === 'L') this.longName = data;
      else this.longLink = data;
    } else {
      const s = this.sink;
      this.sink = undefined;
      s?.end();
    }
    this.state = this.padding ? 'pad' : 'header';
  }
}
