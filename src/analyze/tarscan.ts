/**
 * A synchronous push parser for tar streams, for analysis: feed it decompressed chunks as they
 * arrive; it calls back once per entry with the decoded header (layer/'s tar codec: PAX, GNU long
 * names, checksums) and, when the callback asks for it, the entry's body chunk by chunk. Bodies
 * nobody wants are skipped by counting bytes. No promise per entry, no buffering beyond one
 * header: memory stays flat whatever the layer holds.
 */
import { KilnError } from '../util/index.js';
import { BLOCK, decodeHeader, parsePax, type TarHeader } from '../layer/index.js';

export interface BodySink {
  data(chunk: Buffer): void;
  end(): void;
}

const MAX_META = 1 << 20;

const TYPES: Record<number, TarHeader['type']> = {
  0x30: 'file',
  0x00: 'file',
  0x37: 'file',
  0x31: 'hardlink',
  0x32: 'symlink',
  0x33: 'chardev',
  0x34: 'blockdev',
  0x35: 'directory',
  0x36: 'fifo',
};

/** An octal field as parseNumber reads it (up to NUL, trimmed), or -1 when it needs the slow path. */
function octal(b: Buffer, off: number, len: number): number {
  let end = off;
  const stop = off + len;
  while (end < stop && b[end] !== 0) end++;
  let i = off;
  while (i < end && b[i] === 0x20) i++;
  let j = end;
  while (j > i && b[j - 1] === 0x20) j--;
  let n = 0;
  for (let k = i; k < j; k++) {
    const c = b[k]!;
    if (c < 0x30 || c > 0x37) return -1;
    n = n * 8 + (c - 0x30);
  }
  return n;
}

function cstrEnd(b: Buffer, off: number, len: number): number {
  const z = b.indexOf(0, off);
  return z < 0 || z > off + len ? off + len : z;
}

/**
 * The common case of a tar header, decoded without allocation-heavy generic code: a ustar header
 * with octal fields and no pending PAX or GNU long-name records. Anything else (or anything odd)
 * returns undefined and goes through layer/'s decodeHeader, which also produces the errors.
 * The result equals decodeHeader's except that uname/gname are not decoded (analysis never uses
 * them). "end" means an all-zero block.
 */
export function fastHeader(b: Buffer): TarHeader | 'end' | undefined {
  let sum = 0;
  let raw = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = b[i]!;
    raw += c;
    sum += i >= 148 && i < 156 ? 32 : c;
  }
  if (raw === 0) return 'end';
  if (b[257] !== 0x75 || b[258] !== 0x73 || b[259] !== 0x74 || b[260] !== 0x61 || b[261] !== 0x72) return undefined; // "ustar"
  if (b[124]! & 0x80 || b[108]! & 0x80 || b[116]! & 0x80 || b[136]! & 0x80) return undefined; // base-256 numbers
  const type = TYPES[b[156]!];
  if (type === undefined) return undefined; // PAX/GNU meta headers and unknown types
  const chk = octal(b, 148, 8);
  if (chk !== sum) return undefined; // the slow path reports it
  const mode = octal(b, 100, 8);
  const uid = octal(b, 108, 8);
  const gid = octal(b, 116, 8);
  const size = octal(b, 124, 12);
  const mtime = octal(b, 136, 12);
  const devmajor = octal(b, 329, 8);
  const devminor = octal(b, 337, 8);
  if (mode < 0 || uid < 0 || gid < 0 || size < 0 || mtime < 0 || devmajor < 0 || devminor < 0) return undefined;
  let name = b.toString('utf8', 0, cstrEnd(b, 0, 100));
  const prefixEnd = cstrEnd(b, 345, 155);
  if (prefixEnd > 345) name = `${b.toString('utf8', 345, prefixEnd)}/${name}`;
  const isDir = type === 'directory' || (type === 'file' && name.endsWith('/'));
  if (name.endsWith('/')) name = name.replace(/\/+$/, '');
  const header: TarHeader = {
    name,
    type: isDir ? 'directory' : type,
    mode: mode & 0o7777,
    uid,
    gid,
    size,
    mtime,
    devmajor,
    devminor,
  };
  const linkEnd = cstrEnd(b, 157, 100);
  if (linkEnd > 157) header.linkname = b.toString('utf8', 157, linkEnd);
  return header;
}

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
    if (this.pax.size === 0 && this.globalPax.size === 0 && !this.longName && !this.longLink) {
      const h = fastHeader(this.head);
      if (h === 'end') {
        this.state = 'done';
        return;
      }
      if (h) {
        this.entries++;
        this.sink = this.onEntry(h);
        this.remaining = h.size;
        this.padding = (BLOCK - (h.size % BLOCK)) % BLOCK;
        this.state = 'body';
        if (this.remaining === 0) this.afterData();
        return;
      }
    }
    const d = decodeHeader(
      this.head,
      this.pax.size || this.globalPax.size ? new Map([...this.globalPax, ...this.pax]) : this.pax,
      this.longName,
      this.longLink,
    );
    if (!d) {
      this.state = 'done';
      return;
    }
    const { typeflag, header } = d;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (header.size > MAX_META)
        throw new KilnError(
          'UNSAFE',
          `tar ${typeflag === 'x' || typeflag === 'g' ? 'PAX' : 'GNU long name'} header of ${header.size} bytes refused`,
        );
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
