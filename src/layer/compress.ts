/**
 * Layer encoding on the critical path of every build: compress (gzip or zstd) and compute the
 * uncompressed digest (diff_id), the compressed digest and size in one streaming pass.
 *
 * gzip runs on all cores, as pigz does: the tar is cut into 512 KiB blocks, each deflated on its
 * own (gzip-block.ts: by libdeflate by default, by zlib with the 32 KiB before it as dictionary for
 * an explicit level), in worker threads (deflate-pool.ts); the blocks, written in order, make one
 * gzip member. The bytes depend only on the input and the deflater and level, never on the number
 * of threads. Memory stays bounded: a fixed window of blocks per core is in flight. A layer's first
 * blocks are encoded in process instead (zlib's on libuv's pool, libdeflate's on the main thread),
 * so a small layer never waits for workers to start; with one core there are no workers at all.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Writable, type Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { KilnError, nativeAddon, type Digest } from '../util/index.js';
import { MediaType, type Compression } from '../image/index.js';
import { TarContentSize, announcedContentSize } from './content-size.js';
import { nodeZstd } from './decompress.js';
import { deflatePool } from './deflate-pool.js';
import {
  GZIP_BLOCK,
  GZIP_DICTIONARY,
  crc32Combine,
  gzipEnd,
  gzipHeader,
  makeBlockEncoder,
  usesDictionary,
  type DeflateMethod,
  type EncodedBlock,
} from './gzip-block.js';

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
  /** gzip: worker threads (default: os.availableParallelism(); 1: none). The output is the same whatever the number. */
  threads?: number;
  /** gzip: zlib's level 1-9 (default: GZIP_DEFAULT, libdeflate's level 2); zstd level 1-19 (default 3) */
  level?: number;
}

/**
 * The gzip deflater when no level is asked for: libdeflate's level 2, the cheapest whose blobs are
 * no bigger than zlib's level 4 (kiln's default before; itself chosen as no bigger than skopeo's
 * and podman's default, klauspost/pgzip's): python-full's 516 MB tar gives 183.0 MB (zlib 4: 185.6
 * MB, skopeo 187.1 MB), node-full's 651 MB 214.4 MB (216.8 MB, 218.3 MB), for a quarter less
 * deflate CPU than zlib 4 (7.2 → 5.3 s for python-full, one thread, the block walk included).
 * libdeflate's level 1 gives 191.0 MB. `--compression-level` (and `compression-level=`) choose a
 * zlib level, whose bytes are the ones zlib gave.
 */
export const GZIP_DEFAULT: DeflateMethod = { library: 'libdeflate', level: 2 };

/** Blocks encoded in process (on libuv's pool) before a layer is worth the workers: 1 MiB. */
const INLINE_BLOCKS = 2;
/** Blocks in flight per thread: enough to keep every worker busy while the tar is read. */
const WINDOW_PER_THREAD = 4;
// The addon is looked up when libdeflate is first needed (zlib's explicit levels do without it).
const inline = makeBlockEncoder(zlib, (input, level) => nativeAddon().addon.deflateBlock(input, level));

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

/** The content size as the tar's writer counted it, else as the parser read it (undefined: no tar). */
class ContentSize {
  private readonly parser: TarContentSize | undefined;
  constructor(private readonly announced: (() => number) | undefined) {
    this.parser = announced ? undefined : new TarContentSize();
  }
  update(b: Buffer): void {
    this.parser?.update(b);
  }
  result(): { contentSize?: number } {
    const size = this.announced ? this.announced() : this.parser!.size;
    return size === undefined ? {} : { contentSize: size };
  }
}

/** Compress `tar` into `dest`, returning both digests and sizes. `dest` is ended. */
export async function encodeLayer(tar: Readable, dest: Writable, opts: EncodeOptions): Promise<LayerInfo> {
  const diff = createHash('sha256');
  const comp = createHash('sha256');
  const content = new ContentSize(announcedContentSize(tar));
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
      ...content.result(),
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
      ...content.result(),
      mediaType: MediaType.OciLayerZstd,
    };
  }
  // gzip, pigz-style
  const threads = Math.max(1, opts.threads ?? availableParallelism());
  const method: DeflateMethod = opts.level === undefined ? GZIP_DEFAULT : { library: 'zlib', level: opts.level };
  const chained = usesDictionary(method);
  const pool = threads > 1 ? deflatePool(threads) : undefined;
  const window = threads * WINDOW_PER_THREAD;
  const inflight: { length: number; done: Promise<EncodedBlock & { spare?: Buffer }> }[] = [];
  // Full blocks' memory, back from the workers: reused, so no block is garbage (see deflate-pool.ts).
  const spares: Buffer[] = [];
  let blocks = 0;
  let crc = 0;
  let dictionary: Buffer | undefined;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  const settle = async () => {
    const { length, done } = inflight.shift()!;
    const r = await done;
    if (r.spare && r.spare.length === GZIP_BLOCK && spares.length < window) spares.push(r.spare);
    crc = crc32Combine(crc, r.crc, length);
    await emit(r.data);
  };
  try {
    await emit(gzipHeader(method));
    const submit = async () => {
      // A copy of exactly the block: it owns its memory, which moves to a worker.
      const block = (pendingLen === GZIP_BLOCK && spares.pop()) || Buffer.allocUnsafeSlow(pendingLen);
      let at = 0;
      for (const p of pending) at += p.copy(block, at);
      pending = [];
      pendingLen = 0;
      const length = block.length; // read before the block moves to a worker
      const dict = dictionary;
      dictionary =
        chained && block.length >= GZIP_DICTIONARY
          ? Buffer.from(block.subarray(block.length - GZIP_DICTIONARY))
          : undefined;
      const done =
        pool && blocks >= INLINE_BLOCKS ? pool.encode(block, dict, method) : inline.encode(block, dict, method);
      blocks++;
      done.catch(() => undefined); // awaited in order below; a failure is not unhandled meanwhile
      inflight.push({ length, done });
      if (inflight.length >= window) await settle();
    };
    for await (const chunk of tar) {
      let b = chunk as Buffer;
      diff.update(b);
      content.update(b);
      usize += b.length;
      while (b.length > 0) {
        const take = Math.min(GZIP_BLOCK - pendingLen, b.length);
        pending.push(b.subarray(0, take));
        pendingLen += take;
        b = b.subarray(take);
        if (pendingLen === GZIP_BLOCK) await submit();
      }
    }
    if (pendingLen > 0) await submit();
    while (inflight.length) await settle();
    await emit(gzipEnd(crc, usize));
  } finally {
    // On failure, let blocks still compressing finish before the caller drops their buffers.
    await Promise.allSettled(inflight.map((f) => f.done));
  }
  await end(dest);
  return {
    diffId: `sha256:${diff.digest('hex')}`,
    digest: `sha256:${comp.digest('hex')}`,
    size: csize,
    uncompressedSize: usize,
    ...content.result(),
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
