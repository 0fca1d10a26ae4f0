/**
 * The pieces of a pigz-style gzip stream: the input is cut into fixed blocks; each block is
 * deflated on its own (raw deflate ended on a byte boundary, not final, so the next block simply
 * follows), and the blocks concatenated form the body of one gzip member, closed by an empty final
 * block and the trailer (CRC-32 of the whole input, combined from the blocks' CRCs, and its size).
 * A block's bytes depend only on its input, the deflater and its level (and, for zlib, the block's
 * dictionary), so the stream is the same whoever compressed which block.
 *
 * Two deflaters: libdeflate (kiln's addon, native/src/deflate.c) by default, and Node's zlib for a
 * level asked for explicitly (`compression-level=N` keeps the bytes zlib gave at that level).
 * libdeflate's level 2 costs a quarter less CPU than zlib's level 4 for a smaller blob, but takes no
 * dictionary: its blocks start afresh (which costs ~0.3 % of python-full's blob).
 */
import * as zlib from 'node:zlib';

/** Bytes of input per block (pigz takes 128 KiB; four times that halves the per-block costs on data that does not compress). */
export const GZIP_BLOCK = 512 * 1024;
/** The deflate window: a block's dictionary is the end of the input before it. */
export const GZIP_DICTIONARY = 32 * 1024;

export interface EncodedBlock {
  /** Raw deflate blocks, not final, ending on a byte boundary. */
  data: Buffer;
  /** CRC-32 of the block's input. */
  crc: number;
}

/** Which deflater and its level. */
export interface DeflateMethod {
  library: 'zlib' | 'libdeflate';
  level: number;
}

/** kiln's addon's block deflater (native-addon.ts's deflateBlock). */
export type NativeDeflate = (input: Uint8Array, level: number) => Buffer;

export interface BlockEncoder {
  encodeSync(block: Buffer, dictionary: Buffer | undefined, method: DeflateMethod): EncodedBlock;
  encode(block: Buffer, dictionary: Buffer | undefined, method: DeflateMethod): Promise<EncodedBlock>;
}

/** Whether a block deflated by `method` takes the previous block's end as its dictionary (libdeflate's do not). */
export function usesDictionary(method: DeflateMethod): boolean {
  return method.library === 'zlib';
}

/**
 * The block encoder, given node:zlib and kiln's addon's deflater (needed for libdeflate only).
 * Self-contained on purpose (it uses nothing outside itself):
 * the worker threads run its source text (deflate-pool.ts), so workers and the main thread encode
 * a block with the very same code.
 *
 * A block that does not compress (random data, media, archives already compressed) is stored, not
 * deflated: a quick probe deflates four slices of it at level 1 first, and stops at the first
 * slice that compresses (most blocks pay one 8 KiB probe, not four). Deflating incompressible
 * data at level 6 costs ~26 ms/MiB and gains nothing; storing it costs next to nothing and gives a
 * smaller stream. The choice depends only on the block's bytes, so the output stays reproducible.
 */
export function makeBlockEncoder(z: typeof zlib, native: NativeDeflate | undefined): BlockEncoder {
  const SLICE = 8192;
  const STORED_MAX = 65535;
  const slices = (block: Buffer): Buffer[] => {
    if (block.length < 8 * SLICE) return [];
    const step = Math.floor((block.length - SLICE) / 3);
    return [0, 1, 2, 3].map((i) => block.subarray(i * step, i * step + SLICE));
  };
  /** A probe slice that does not compress (its level-1 deflate keeps 97 % of it). */
  const incompressibleSlice = (deflated: number): boolean => deflated >= SLICE * 0.97;
  /** Deflate stored blocks (RFC 1951 §3.2.4), none final; each starts on a byte boundary. */
  const stored = (block: Buffer): Buffer => {
    const parts = Math.max(1, Math.ceil(block.length / STORED_MAX));
    const out = Buffer.allocUnsafe(parts * 5 + block.length);
    let pos = 0;
    for (let off = 0, i = 0; i < parts; i++, off += STORED_MAX) {
      const len = Math.min(STORED_MAX, block.length - off);
      out[pos] = 0; // BFINAL 0, BTYPE 00 (stored), then padding to the byte boundary
      out.writeUInt16LE(len, pos + 1);
      out.writeUInt16LE(~len & 0xffff, pos + 3);
      pos += 5;
      pos += block.copy(out, pos, off, off + len);
    }
    return out;
  };
  const options = (block: Buffer, dictionary: Buffer | undefined, level: number): zlib.ZlibOptions => ({
    level,
    // Node's zlib (Chromium's) deflates 7-9 % faster at every level with a 64 Ki-entry hash table and
    // 32 Ki-symbol blocks (memLevel 9) than with the default 8, for 0.05-0.1 points of ratio.
    memLevel: 9,
    finishFlush: z.constants.Z_SYNC_FLUSH,
    // One output chunk bigger than the worst case: zlib returns once, not every 16 KiB.
    chunkSize: Math.max(64, block.length + (block.length >> 8) + 1024),
    ...(dictionary && dictionary.length > 0 ? { dictionary } : {}),
  });
  /** An exact-size copy when zlib's result is a view of a bigger buffer (it is transferred whole). */
  const own = (b: Buffer): Buffer =>
    b.byteOffset === 0 && b.byteLength === b.buffer.byteLength
      ? b
      : Buffer.from(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const deflateAsync = (b: Buffer, o: zlib.ZlibOptions): Promise<Buffer> =>
    new Promise((resolve, reject) => z.deflateRaw(b, o, (e, r) => (e ? reject(e) : resolve(r))));
  const libdeflate = (block: Buffer, level: number): Buffer => {
    if (!native) throw new Error("libdeflate's deflater (kiln's native addon) was not given");
    return native(block, level);
  };
  const encodeSync: BlockEncoder['encodeSync'] = (block, dictionary, method) => {
    const crc = z.crc32(block) >>> 0;
    // Slice by slice: most blocks compress, and the first slice that does decides (3 probes of 4 saved).
    const probe = slices(block);
    if (probe.length > 0 && probe.every((s) => incompressibleSlice(z.deflateRawSync(s, { level: 1 }).length)))
      return { data: stored(block), crc };
    if (method.library === 'libdeflate') return { data: libdeflate(block, method.level), crc };
    return { data: own(z.deflateRawSync(block, options(block, dictionary, method.level))), crc };
  };
  return {
    encodeSync,
    async encode(block, dictionary, method) {
      // libdeflate runs here, on the calling thread (a 512 KiB block takes a few ms): only a layer's
      // first blocks, or every block with one core, are encoded outside the workers.
      if (method.library === 'libdeflate') return encodeSync(block, dictionary, method);
      const probe = slices(block);
      let stores = probe.length > 0;
      for (const s of probe) if (!(stores = incompressibleSlice((await deflateAsync(s, { level: 1 })).length))) break;
      const crc = z.crc32(block) >>> 0;
      if (stores) return { data: stored(block), crc };
      return { data: own(await deflateAsync(block, options(block, dictionary, method.level))), crc };
    },
  };
}

/** The gzip header (RFC 1952): deflate, no name, no mtime (reproducible), XFL as zlib (or libdeflate) sets it for the level, Unix. */
export function gzipHeader(method: DeflateMethod): Buffer {
  const { level } = method;
  const xfl = method.library === 'zlib' ? (level >= 9 ? 2 : level === 1 ? 4 : 0) : level >= 8 ? 2 : level < 2 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

/** An empty final block with fixed codes (BFINAL 1, BTYPE 01, end-of-block), then the trailer: CRC-32 and size mod 2^32. */
export function gzipEnd(crc: number, size: number): Buffer {
  const out = Buffer.alloc(10);
  out[0] = 0x03;
  out[1] = 0x00;
  out.writeUInt32LE(crc >>> 0, 2);
  out.writeUInt32LE(size % 0x1_0000_0000, 6);
  return out;
}

// CRC-32 combination (zlib's crc32_combine): polynomials over GF(2) modulo the CRC's, reflected.
const POLY = 0xedb88320;

function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) mod p for k = 0..31. */
const X2N: number[] = (() => {
  const t = [0x40000000];
  for (let k = 1; k < 32; k++) t.push(multModP(t[k - 1]!, t[k - 1]!));
  return t;
})();

/** The CRC-32 of A followed by B, from crc(A), crc(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  // x^(8·lengthB) mod p: bytes → bits is k starting at 3.
  let p = 0x80000000;
  let k = 3;
  for (let n = lengthB; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
  return (multModP(p, crcA >>> 0) ^ crcB) >>> 0;
}
