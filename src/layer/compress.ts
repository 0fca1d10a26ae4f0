/**
 * Layer encoding on the critical path of every build: compress (gzip or zstd) and compute the
 * uncompressed digest (diff_id), the compressed digest and size in one streaming pass.
 *
 * gzip runs in parallel on all cores: the tar is cut into 1 MiB blocks, each compressed on libuv's
 * thread pool (zlib's async calls) into an independent gzip member; members are written in order.
 * Concatenated gzip members are one valid gzip stream that every client decompresses (RFC 1952).
 * Memory stays bounded: at most two blocks per core are in flight. No worker threads: starting
 * them cost ~40 ms per layer, more than a small layer's whole encoding.
 *
 * A block that does not compress (random data, media, archives already compressed) is stored, not
 * deflated: a quick probe deflates a few slices of it at level 1 first. Deflating incompressible data
 * at level 6 costs ~26 ms/MiB and gains nothing; storing it costs ~2 ms/MiB and gives a smaller
 * member. The choice depends only on the block's bytes, so the output stays reproducible.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Writable, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { crc32, deflateRaw, gzip, type ZlibOptions } from 'node:zlib';
import { KilnError, type Digest } from '../util/index.js';
import { MediaType, type Compression } from '../image/index.js';
import { TarContentSize } from './content-size.js';
import { nodeZstd } from './decompress.js';

export interface LayerInfo {
  diffId: Digest;
  digest: Digest;
  size: number;
  uncompressedSize: number;
  /** The bytes of its files, as `docker images` counts them (content-size.ts); absent when the stream was no tar. */
  contentSize?: number;
  mediaType: string;
}

export interface EncodeOptions {
  compression: Compression;
  threads?: number;
  /** gzip level 1-9 (default 6, as docker and pigz); zstd level 1-19 (default 3) */
  level?: number;
}

const BLOCK = 1 << 20;
const SLICE = 16384;
const gzipAsync = promisify(gzip) as (b: Buffer, o: ZlibOptions) => Promise<Buffer>;
const deflateRawAsync = promisify(deflateRaw) as (b: Buffer, o: ZlibOptions) => Promise<Buffer>;

/** Incompressible: each of four slices spread over the block stays above 97% of its size at level 1. */
async function incompressible(block: Buffer): Promise<boolean> {
  if (block.length < 8 * SLICE) return false;
  const step = Math.floor((block.length - SLICE) / 3);
  const sizes = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      deflateRawAsync(block.subarray(i * step, i * step + SLICE), { level: 1 }).then((b) => b.length),
    ),
  );
  return sizes.every((n) => n >= SLICE * 0.97);
}

async function gzipBlock(block: Buffer, level: number): Promise<Buffer> {
  if (await incompressible(block)) return storedMember(block);
  // One output chunk bigger than the worst case: the pool thread returns once, not every 16 KiB.
  const chunkSize = block.length + (block.length >> 8) + 1024;
  return gzipAsync(block, { level, chunkSize });
}

const STORED_MAX = 65535;
/** gzip header: deflate, no name or mtime, "fastest" (as zlib writes for levels 0 and 1), Unix. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);

/**
 * A gzip member holding `block` in deflate stored blocks (RFC 1951 §3.2.4), written here rather
 * than by zlib at level 0: the same format without a trip through the thread pool; the crc is
 * zlib's own (zlib.crc32, Node ≥ 20.15).
 */
function storedMember(block: Buffer): Buffer {
  const parts = Math.max(1, Math.ceil(block.length / STORED_MAX));
  const out = Buffer.allocUnsafe(GZIP_HEADER.length + parts * 5 + block.length + 8);
  let pos = GZIP_HEADER.copy(out, 0);
  for (let off = 0, i = 0; i < parts; i++, off += STORED_MAX) {
    const len = Math.min(STORED_MAX, block.length - off);
    out[pos] = i === parts - 1 ? 1 : 0; // BFINAL on the last; BTYPE 00 (stored)
    out.writeUInt16LE(len, pos + 1);
    out.writeUInt16LE(~len & 0xffff, pos + 3);
    pos += 5;
    pos += block.copy(out, pos, off, off + len);
  }
  out.writeUInt32LE(crc32(block) >>> 0, pos);
  out.writeUInt32LE(block.length >>> 0, pos + 4);
  return out;
}

function write(dest: Writable, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = dest.write(b, (e) => (e ? reject(e) : undefined));
    if (ok) resolve();
    else {
      const onDrain = () => {
        dest.off('error', onErr);
        resolve();
      };
      const onErr = (e: Error) => {
        dest.off('drain', onDrain);
        reject(e);
      };
      dest.once('drain', onDrain);
      dest.once('error', onErr);
    }
  });
}

function end(dest: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    dest.once('error', reject);
    dest.end(() => resolve());
  });
}

const sized = (c: TarContentSize): { contentSize?: number } => (c.size === undefined ? {} : { contentSize: c.size });

/** Compress `tar` into `dest`, returning both digests and sizes. `dest` is ended. */
export async function encodeLayer(tar: Readable, dest: Writable, opts: EncodeOptions): Promise<LayerInfo> {
  const diff = createHash('sha256');
  const comp = createHash('sha256');
  const content = new TarContentSize();
  let usize = 0;
  let csize = 0;
  const emit = async (b: Buffer) => {
    comp.update(b);
    csize += b.length;
    await write(dest, b);
  };
  if (opts.compression === 'none') {
    // The blob is the tar: one hash is both digests.
    for await (const chunk of tar) {
      const b = chunk as Buffer;
      diff.update(b);
      content.update(b);
      usize += b.length;
      await write(dest, b);
    }
    await end(dest);
    const d = `sha256:${diff.digest('hex')}` as Digest;
    return {
      diffId: d,
      digest: d,
      size: usize,
      uncompressedSize: usize,
      ...sized(content),
      mediaType: MediaType.OciLayer,
    };
  }
  if (opts.compression === 'zstd') {
    const z = await zstdEncoder(opts.level ?? 3);
    const feeding = (async () => {
      for await (const chunk of tar) {
        const b = chunk as Buffer;
        diff.update(b);
        content.update(b);
        usize += b.length;
        await write(z.input, b);
      }
      await end(z.input);
    })();
    const draining = (async () => {
      for await (const chunk of z.output) await emit(chunk as Buffer);
    })();
    await Promise.all([feeding, draining]);
    await z.finished();
    await end(dest);
    return {
      diffId: `sha256:${diff.digest('hex')}`,
      digest: `sha256:${comp.digest('hex')}`,
      size: csize,
      uncompressedSize: usize,
      ...sized(content),
      mediaType: MediaType.OciLayerZstd,
    };
  }
  // gzip, parallel
  const threads = Math.max(1, opts.threads ?? availableParallelism());
  const level = opts.level ?? 6;
  const inflight: Promise<Buffer>[] = [];
  let blocks = 0;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  try {
    const submit = async (block: Buffer) => {
      blocks++;
      const done = gzipBlock(block, level);
      done.catch(() => undefined); // awaited in order below; a failure is not unhandled meanwhile
      inflight.push(done);
      if (inflight.length >= threads * 2) await emit(await inflight.shift()!);
    };
    for await (const chunk of tar) {
      let b = chunk as Buffer;
      diff.update(b);
      content.update(b);
      usize += b.length;
      while (b.length > 0) {
        const take = Math.min(BLOCK - pendingLen, b.length);
        pending.push(b.subarray(0, take));
        pendingLen += take;
        b = b.subarray(take);
        if (pendingLen === BLOCK) {
          const block = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
          pending = [];
          pendingLen = 0;
          await submit(block);
        }
      }
    }
    if (pendingLen > 0 || blocks === 0) await submit(Buffer.concat(pending, pendingLen));
    while (inflight.length) await emit(await inflight.shift()!);
  } finally {
    // On failure, let blocks still compressing finish before the caller drops their buffers.
    await Promise.allSettled(inflight);
  }
  await end(dest);
  return {
    diffId: `sha256:${diff.digest('hex')}`,
    digest: `sha256:${comp.digest('hex')}`,
    size: csize,
    uncompressedSize: usize,
    ...sized(content),
    mediaType: MediaType.OciLayerGzip,
  };
}

/**
 * A zstd encoder: the zstd program (-T0: every core) when installed, else node:zlib's zstd
 * (Node 22.15+, one thread), so zstd output needs neither on a machine with the other.
 */
async function zstdEncoder(level: number): Promise<{ input: Writable; output: Readable; finished(): Promise<void> }> {
  const child = spawn('zstd', ['-q', '-c', '-T0', `-${level}`, '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const errText: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => errText.push(b));
  const started = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => resolve(e));
    child.on('spawn', () => resolve(undefined));
  });
  if (started === undefined) {
    const exited = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
    return {
      input: child.stdin,
      output: child.stdout,
      finished: async () => {
        if ((await exited) !== 0)
          throw new KilnError('INTERNAL', `zstd failed: ${Buffer.concat(errText).toString().trim()}`);
      },
    };
  }
  if (started.code !== 'ENOENT') throw started;
  if (!nodeZstd.createZstdCompress)
    throw new KilnError(
      'NOT_FOUND',
      'zstd compression needs the zstd program (apt-get install zstd) or Node.js 22.15 or newer',
    );
  const z = nodeZstd.createZstdCompress({
    chunkSize: 1 << 20,
    params: { [nodeZstd.constants.ZSTD_c_compressionLevel!]: level },
  });
  return { input: z, output: z, finished: async () => undefined };
}

/**
 * The identity of a layer tar without keeping it: its diff_id and size (the uncompressed tar's
 * descriptor). For a layer kept only as a snapshot.
 */
export function plainLayerInfo(tar: Readable): Promise<LayerInfo> {
  const discard = new Writable({ write: (_chunk, _enc, cb) => cb() });
  return encodeLayer(tar, discard, { compression: 'none' });
}
