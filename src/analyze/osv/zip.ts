/**
 * Reading the members of a zip file (what osv.dev publishes: one all.zip per ecosystem), with
 * positional reads: the central directory is read, then each wanted member on its own. Stored and
 * deflated members, zip64 sizes and counts. Hostile archives: offsets and sizes are checked
 * against the file, and a member may not inflate beyond `maxMemberBytes`.
 */
import { promises as fsp } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { KilnError } from '../../util/index.js';

export interface ZipMember {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function bad(file: string, why: string): KilnError {
  return new KilnError('INVALID', `not a readable zip archive: ${why}`, { path: file });
}

function u64(b: Buffer, off: number): number {
  const n = b.readBigUInt64LE(off);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new KilnError('INVALID', 'zip64 value too large');
  return Number(n);
}

export class ZipReader {
  private constructor(
    readonly file: string,
    private readonly fh: fsp.FileHandle,
    private readonly fileSize: number,
    readonly members: ZipMember[],
  ) {}

  static async open(file: string): Promise<ZipReader> {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      const tailLen = Math.min(size, 65535 + 22);
      const tail = Buffer.alloc(tailLen);
      await fh.read(tail, 0, tailLen, size - tailLen);
      let e = -1;
      for (let i = tailLen - 22; i >= 0; i--) {
        if (tail.readUInt32LE(i) === EOCD) {
          e = i;
          break;
        }
      }
      if (e < 0) throw bad(file, 'no end-of-central-directory record');
      let count = tail.readUInt16LE(e + 10);
      let cdSize = tail.readUInt32LE(e + 12);
      let cdOffset = tail.readUInt32LE(e + 16);
      if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
        const locAt = e - 20;
        if (locAt < 0 || tail.readUInt32LE(locAt) !== EOCD64_LOCATOR) throw bad(file, 'zip64 locator missing');
        const eocd64Off = u64(tail, locAt + 8);
        const rec = Buffer.alloc(56);
        await fh.read(rec, 0, 56, eocd64Off);
        if (rec.readUInt32LE(0) !== EOCD64) throw bad(file, 'zip64 end record missing');
        count = u64(rec, 32);
        cdSize = u64(rec, 40);
        cdOffset = u64(rec, 48);
      }
      if (cdOffset + cdSize > size) throw bad(file, 'central directory beyond the end of the file');
      const cd = Buffer.alloc(cdSize);
      await fh.read(cd, 0, cdSize, cdOffset);
      const members: ZipMember[] = [];
      let p = 0;
      for (let i = 0; i < count; i++) {
        if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL)
          throw bad(file, `central directory entry ${i} is malformed`);
        const method = cd.readUInt16LE(p + 10);
        let compressedSize = cd.readUInt32LE(p + 20);
        let usize = cd.readUInt32LE(p + 24);
        const nameLen = cd.readUInt16LE(p + 28);
        const extraLen = cd.readUInt16LE(p + 30);
        const commentLen = cd.readUInt16LE(p + 32);
        let localHeaderOffset = cd.readUInt32LE(p + 42);
        const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
        // zip64 extra field (id 1) carries the values that are 0xFFFFFFFF above, in this order.
        let x = p + 46 + nameLen;
        const xEnd = x + extraLen;
        while (x + 4 <= xEnd) {
          const id = cd.readUInt16LE(x);
          const len = cd.readUInt16LE(x + 2);
          if (id === 1) {
            let q = x + 4;
            if (usize === 0xffffffff) {
              usize = u64(cd, q);
              q += 8;
            }
            if (compressedSize === 0xffffffff) {
              compressedSize = u64(cd, q);
              q += 8;
            }
            if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(cd, q);
          }
          x += 4 + len;
        }
        members.push({ name, method, compressedSize, size: usize, localHeaderOffset });
        p = xEnd + commentLen;
      }
      return new ZipReader(file, fh, size, members);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async read(m: ZipMember, maxMemberBytes = 64 << 20): Promise<Buffer> {
    if (m.size > maxMemberBytes) throw bad(this.file, `member ${m.name} is ${m.size} bytes (limit ${maxMemberBytes})`);
    const lh = Buffer.alloc(30);
    await this.fh.read(lh, 0, 30, m.localHeaderOffset);
    if (lh.readUInt32LE(0) !== LOCAL) throw bad(this.file, `member ${m.name}: local header missing`);
    const dataAt = m.localHeaderOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (dataAt + m.compressedSize > this.fileSize)
      throw bad(this.file, `member ${m.name} runs past the end of the file`);
    const data = Buffer.alloc(m.compressedSize);
    await this.fh.read(data, 0, m.compressedSize, dataAt);
    if (m.method === 0) return data;
    if (m.method === 8) {
      try {
        return inflateRawSync(data, { maxOutputLength: maxMemberBytes });
      } catch (e) {
        throw bad(this.file, `member ${m.name}: ${(e as Error).message}`);
      }
    }
    throw bad(this.file, `member ${m.name} uses compression method ${m.method} (only stored and deflate are read)`);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
