/**
 * The tar format itself (POSIX ustar + PAX extended headers), both ways. Our own small codec
 * rather than a library's: layers need binary-safe xattrs (SCHILY.xattr.*, e.g.
 * security.capability), exact control of what is written (determinism), and strict, bounded
 * parsing of hostile input.
 */
import { KilnError } from '../util/index.js';

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarHeader {
  /** Path inside the layer, no leading "/" or "./"; directories without trailing "/". */
  name: string;
  type: EntryType;
  mode: number; // permission + setuid/setgid/sticky bits (no type bits)
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional allowed, written with PAX when not whole). */
  mtime: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  directory: '5',
  fifo: '6',
};
const FROM_TYPEFLAG: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'directory',
  '6': 'fifo',
};

export const BLOCK = 512;

/**
 * The first number a field of `width` bytes (octal digits and a NUL) cannot hold, 8 to the power
 * width - 1: ustar's two widths as constants (`**` is a call to pow, six per header of every entry).
 */
const octalLimit = (width: number): number =>
  width === 8 ? 0o10000000 : width === 12 ? 0o100000000000 : 8 ** (width - 1);

function octal(n: number, width: number): string | undefined {
  const s = Math.floor(n).toString(8);
  return s.length <= width - 1 ? `${s.padStart(width - 1, '0')}\0` : undefined;
}

/** Whether `octal(n, width)` is defined, without making its string (every header asks four times). */
function fitsOctal(n: number, width: number): boolean {
  const v = Math.floor(n);
  return v >= 0 && v < octalLimit(width) ? true : octal(n, width) !== undefined;
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "%d %s=%s\n" where %d counts the whole record, itself included.
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/**
 * Write `n` as `octal(n, width)` spells it (zero-padded digits and a NUL) at `off`; false when it
 * does not fit. Byte by byte: a header of many small files' layer is written per file, and the
 * string round trip was most of its cost.
 */
function putOctal(b: Buffer, off: number, n: number, width: number): boolean {
  let v = Math.floor(n);
  if (!(v >= 0) || v >= octalLimit(width))
    return octal(n, width) !== undefined && b.write(octal(n, width)!, off, 'latin1') > 0;
  b[off + width - 1] = 0;
  for (let i = off + width - 2; i >= off; i--) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  return true;
}

const ZERO8 = '0000000\0';
const ZERO12 = '00000000000\0';

function rawHeader(
  name: Buffer,
  h: Omit<TarHeader, 'name'>,
  typeflag: string,
  size: number,
  linkname: Buffer | undefined,
): Buffer {
  const b = Buffer.alloc(BLOCK);
  rawHeaderAt(b, 0, name, h, typeflag, size, linkname);
  return b;
}

/** A ustar header block written at `o` of `b`, whose 512 bytes there are zero. Names: bytes, or plain ASCII strings. */
function rawHeaderAt(
  b: Buffer,
  o: number,
  name: Buffer | string,
  h: Omit<TarHeader, 'name'>,
  typeflag: string,
  size: number,
  linkname: Buffer | string | undefined,
): void {
  if (typeof name === 'string') b.write(name, o, 'latin1');
  else name.copy(b, o, 0, Math.min(100, name.length));
  putOctal(b, o + 100, h.mode & 0o7777, 8);
  if (!putOctal(b, o + 108, h.uid, 8)) b.write(ZERO8, o + 108, 'latin1');
  if (!putOctal(b, o + 116, h.gid, 8)) b.write(ZERO8, o + 116, 'latin1');
  if (!putOctal(b, o + 124, size, 12)) b.write(ZERO12, o + 124, 'latin1');
  if (!putOctal(b, o + 136, Math.floor(h.mtime), 12)) b.write(ZERO12, o + 136, 'latin1');
  b.fill(0x20, o + 148, o + 156);
  b[o + 156] = typeflag.charCodeAt(0);
  if (typeof linkname === 'string') b.write(linkname, o + 157, 'latin1');
  else if (linkname) linkname.copy(b, o + 157, 0, Math.min(100, linkname.length));
  USTAR.copy(b, o + 257);
  if (h.uname) b.write(h.uname.slice(0, 31), o + 265, 'utf8');
  if (h.gname) b.write(h.gname.slice(0, 31), o + 297, 'utf8');
  if (!putOctal(b, o + 329, h.devmajor ?? 0, 8)) b.write(octal(h.devmajor ?? 0, 8)!, o + 329, 'latin1');
  if (!putOctal(b, o + 337, h.devminor ?? 0, 8)) b.write(octal(h.devminor ?? 0, 8)!, o + 337, 'latin1');
  let sum = 0;
  for (let i = o; i < o + BLOCK; i++) sum += b[i]!;
  putOctal(b, o + 148, sum, 7);
  b[o + 155] = 0x20;
}

/**
 * The sum of a plain name's bytes (printable ASCII, as isAscii tests them: such a string's UTF-8
 * is its latin1, one byte a character), or -1 when it is not plain or longer than 100.
 */
function plainNameSum(s: string): number {
  if (s.length > 100) return -1;
  let sum = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return -1;
    sum += c;
  }
  return sum;
}

/**
 * `n` (a whole number that fits: fitsOctal) written as putOctal writes it, returning the sum of
 * the bytes written. Shifts below 2^31, where they are exact: most numbers of a header are.
 */
function putOctalSum(b: Buffer, off: number, n: number, width: number): number {
  let v = n;
  let sum = 0;
  b[off + width - 1] = 0;
  for (let i = off + width - 2; i >= off; i--) {
    const d = v < 0x8000_0000 ? 0x30 + (v & 7) : 0x30 + (v % 8);
    b[i] = d;
    sum += d;
    v = v < 0x8000_0000 ? v >>> 3 : Math.floor(v / 8);
  }
  return sum;
}

/** The bytes of the ustar magic and version, summed (every header's checksum counts them). */
const USTAR_SUM = 0x75 + 0x73 + 0x74 + 0x61 + 0x72 + 0x30 + 0x30;
/** The checksum field counts as eight spaces while the sum is made. */
const CHECKSUM_SPACES = 8 * 0x20;

/**
 * The header of an entry that needs no PAX header (the common case), written straight into `out`
 * at `pos` as encodeHeader would make it, without a buffer of its own: for layers of many small
 * files the per-header allocation and copy were a tenth of the tar writer's time. Its checksum is
 * summed as the fields are written (not read back from 512 bytes), and when `zeroed` says the 512
 * bytes at `pos` are already zero they are not cleared again. False (nothing written) when it
 * needs PAX or there is no room: encodeHeader then.
 */
export function encodeHeaderInto(h: TarHeader, out: Buffer, pos: number, zeroed = false): boolean {
  if (pos + BLOCK > out.length || h.xattrs) return false;
  const name = h.type === 'directory' ? `${h.name}/` : h.name;
  const nameSum = plainNameSum(name);
  if (nameSum < 0) return false;
  const link = h.linkname;
  const linkSum = link === undefined ? 0 : plainNameSum(link);
  if (linkSum < 0) return false;
  const size = h.type === 'file' ? h.size : 0;
  const major = h.devmajor ?? 0;
  const minor = h.devminor ?? 0;
  if (!fitsWhole(size, 12) || !fitsWhole(h.uid, 8) || !fitsWhole(h.gid, 8) || !fitsWhole(h.mtime, 12)) return false;
  if (!fitsWhole(major, 8) || !fitsWhole(minor, 8)) return false;
  if (!zeroed) out.fill(0, pos, pos + BLOCK);
  if (h.uname || h.gname) {
    rawHeaderAt(out, pos, name, h, TYPEFLAG[h.type], size, link);
    return true;
  }
  out.write(name, pos, 'latin1');
  let sum = nameSum + linkSum + USTAR_SUM + CHECKSUM_SPACES;
  sum += putOctalSum(out, pos + 100, h.mode & 0o7777, 8);
  sum += putOctalSum(out, pos + 108, h.uid, 8);
  sum += putOctalSum(out, pos + 116, h.gid, 8);
  sum += putOctalSum(out, pos + 124, size, 12);
  sum += putOctalSum(out, pos + 136, h.mtime, 12);
  const typeflag = TYPEFLAG[h.type].charCodeAt(0);
  out[pos + 156] = typeflag;
  sum += typeflag;
  if (link !== undefined) out.write(link, pos + 157, 'latin1');
  USTAR.copy(out, pos + 257);
  sum += putOctalSum(out, pos + 329, major, 8);
  sum += putOctalSum(out, pos + 337, minor, 8);
  putOctal(out, pos + 148, sum, 7);
  out[pos + 155] = 0x20;
  return true;
}

/** A whole number that octal() writes in `width` bytes (fractional and negative ones are not). */
function fitsWhole(n: number, width: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < octalLimit(width);
}

const USTAR = Buffer.from('ustar\0' + '00', 'latin1');

/** Header block(s) for one entry: a PAX extended header first when a field does not fit ustar. */
export function encodeHeader(h: TarHeader): Buffer {
  const name = Buffer.from(h.type === 'directory' ? `${h.name}/` : h.name, 'utf8');
  const link = h.linkname !== undefined ? Buffer.from(h.linkname, 'utf8') : undefined;
  const size = h.type === 'file' ? h.size : 0;
  const pax: Buffer[] = [];
  if (name.length > 100 || !isAscii(name)) pax.push(paxRecord('path', name));
  if (link && (link.length > 100 || !isAscii(link))) pax.push(paxRecord('linkpath', link));
  if (!fitsOctal(size, 12)) pax.push(paxRecord('size', Buffer.from(String(size))));
  if (!fitsOctal(h.uid, 8)) pax.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) pax.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!Number.isInteger(h.mtime) || !fitsOctal(h.mtime, 12))
    pax.push(paxRecord('mtime', Buffer.from(h.mtime.toFixed(9).replace(/\.?0+$/, ''))));
  if (h.xattrs) for (const k of Object.keys(h.xattrs).sort()) pax.push(paxRecord(`SCHILY.xattr.${k}`, h.xattrs[k]!));
  const main = rawHeader(name, h, TYPEFLAG[h.type], size, link);
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax);
  const paxName = Buffer.from(`PaxHeaders/${h.name}`.slice(0, 99), 'utf8');
  const ph = rawHeader(
    paxName,
    { ...h, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '' },
    'x',
    body.length,
    undefined,
  );
  return Buffer.concat([ph, body, padding(body.length), main]);
}

export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - r);
}

export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c > 0x7e || c < 0x20) return false;
  return true;
}

// ---- reading ----

function cstr(b: Buffer, off: number, len: number): Buffer {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return z < 0 ? s : s.subarray(0, z);
}

function parseNumber(b: Buffer, off: number, len: number, field: string): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    // GNU base-256 for large values.
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    if (!Number.isSafeInteger(n)) throw new KilnError('UNSAFE', `tar header field ${field} is too large`);
    return n;
  }
  const s = cstr(b, off, len).toString('latin1').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new KilnError('INVALID', `malformed tar header: field ${field} is not an octal number`);
  return parseInt(s, 8);
}

export interface RawEntry {
  header: TarHeader;
  /** Whiteout entries are reported with their name; the caller interprets .wh. prefixes. */
}

/** Parse the PAX records of an extended header (binary-safe values). */
export function parsePax(buf: Buffer, out: Map<string, Buffer>): void {
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 20) throw new KilnError('INVALID', 'malformed PAX header');
    const len = Number(buf.subarray(pos, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || pos + len > buf.length)
      throw new KilnError('INVALID', 'malformed PAX header record length');
    const rec = buf.subarray(sp + 1, pos + len - 1); // drop trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new KilnError('INVALID', 'malformed PAX header record');
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
}

/** Decode a main header block given the pending PAX/GNU overrides. Returns undefined for an all-zero block. */
export function decodeHeader(
  b: Buffer,
  pax: Map<string, Buffer>,
  gnuLongName?: Buffer,
  gnuLongLink?: Buffer,
): { typeflag: string; header: TarHeader } | undefined {
  if (b.every((x) => x === 0)) return undefined;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  const want = parseNumber(b, 148, 8, 'chksum');
  if (sum !== want)
    throw new KilnError('INVALID', 'malformed tar header: checksum mismatch (not a tar stream, or corrupt)');
  const typeflag = String.fromCharCode(b[156]!);
  let name = cstr(b, 0, 100);
  const magic = b.subarray(257, 263).toString('latin1');
  if (magic.startsWith('ustar')) {
    const prefix = cstr(b, 345, 155);
    if (prefix.length) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  if (gnuLongName) name = cstr(gnuLongName, 0, gnuLongName.length);
  let linkname = cstr(b, 157, 100);
  if (gnuLongLink) linkname = cstr(gnuLongLink, 0, gnuLongLink.length);
  const get = (k: string) => pax.get(k)?.toString('utf8');
  const num = (k: string, dflt: number) => {
    const v = get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new KilnError('INVALID', `malformed PAX ${k} "${v.slice(0, 40)}"`);
    return n;
  };
  const type = FROM_TYPEFLAG[typeflag];
  const xattrs: Record<string, Buffer> = {};
  let hasX = false;
  for (const [k, v] of pax) {
    if (k.startsWith('SCHILY.xattr.')) {
      xattrs[k.slice(13)] = v;
      hasX = true;
    }
  }
  let nm = get('path') ?? name.toString('utf8');
  if (nm.length > 4096) throw new KilnError('UNSAFE', 'tar entry name longer than 4096 bytes');
  const isDir = type === 'directory' || (type === 'file' && nm.endsWith('/'));
  nm = nm.replace(/\/+$/, '');
  const header: TarHeader = {
    name: nm,
    type: isDir ? 'directory' : (type ?? 'file'),
    mode: parseNumber(b, 100, 8, 'mode') & 0o7777,
    uid: num('uid', parseNumber(b, 108, 8, 'uid')),
    gid: num('gid', parseNumber(b, 116, 8, 'gid')),
    size: num('size', parseNumber(b, 124, 12, 'size')),
    mtime: num('mtime', parseNumber(b, 136, 12, 'mtime')),
    uname: get('uname') ?? cstr(b, 265, 32).toString('utf8'),
    gname: get('gname') ?? cstr(b, 297, 32).toString('utf8'),
    devmajor: parseNumber(b, 329, 8, 'devmajor'),
    devminor: parseNumber(b, 337, 8, 'devminor'),
  };
  const ln = get('linkpath') ?? linkname.toString('utf8');
  if (ln) header.linkname = ln;
  if (hasX) header.xattrs = xattrs;
  return { typeflag, header };
}
