/**
 * Worker threads that encode gzip blocks (gzip-block.ts) for every layer of the process. Started
 * on first use, when a layer is big enough to pay their start-up (~40 ms), and kept: a build's
 * later layers and a push's next layer reuse them. An idle worker does not keep the process alive.
 *
 * The workers run makeBlockEncoder's own source text (no separate file to find beside a bundle),
 * so a block encodes to the same bytes in a worker and in the main thread.
 */
import { Worker } from 'node:worker_threads';
import { nativeAddon } from '../util/index.js';
import { makeBlockEncoder, type DeflateMethod, type EncodedBlock } from './gzip-block.js';

// workerData.addon: the path of kiln's addon (its deflater), loaded when a libdeflate block comes;
// workerData.fd: that file, opened by the main thread: when the path is gone from this view of /
// (the host-root backend empties / around each RUN), the same file is loaded through /proc.
export const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const load = () => {
  try {
    return require(workerData.addon);
  } catch (e) {
    if (!e || e.code !== 'MODULE_NOT_FOUND') throw e;
    const m = { exports: {} };
    process.dlopen(m, '/proc/self/fd/' + workerData.fd);
    return m.exports;
  }
};
let addon;
const native = (input, level) => (addon ??= load()).deflateBlock(input, level);
const encoder = (${makeBlockEncoder.toString()})(require('node:zlib'), native);
parentPort.on('message', (m) => {
  try {
    const view = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    const r = encoder.encodeSync(view(m.block), m.dictionary ? view(m.dictionary) : undefined, m.method);
    const data = new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
    // The block goes back for the next one: dead blocks would pile up here, in a heap too small
    // to be collected often (up to V8's external memory limit, ~64 MB per worker).
    parentPort.postMessage({ data, crc: r.crc, block: m.block }, [data.buffer, m.block.buffer]);
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
});
`;

/** A block encoded by a worker, with the input block's memory given back (for the next block). */
export interface PooledBlock extends EncodedBlock {
  spare?: Buffer;
}

interface Job {
  block: Buffer;
  dictionary: Buffer | undefined;
  method: DeflateMethod;
  resolve: (r: PooledBlock) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job?: Job;
}

export class DeflatePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];

  constructor(readonly size: number) {}

  /**
   * Encode one block in a worker. `block` must own its whole ArrayBuffer: it is transferred (the
   * caller must not use it afterwards). `dictionary` is copied.
   */
  encode(block: Buffer, dictionary: Buffer | undefined, method: DeflateMethod): Promise<PooledBlock> {
    return new Promise((resolve, reject) => {
      this.queue.push({ block, dictionary, method, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.start();
      }
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      const transfer = job.block.byteOffset === 0 && job.block.byteLength === job.block.buffer.byteLength;
      slot.worker.postMessage(
        { block: job.block, dictionary: job.dictionary, method: job.method },
        transfer ? [job.block.buffer as ArrayBuffer] : [],
      );
    }
  }

  private start(): Slot {
    // The addon's path, found (and loaded, or its error raised) here: a worker cannot search for it.
    const { file, fd } = nativeAddon();
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon: file, fd } });
    const slot: Slot = { worker };
    worker.on('message', (m: { data?: Uint8Array; crc?: number; block?: Uint8Array; error?: string }) => {
      const job = slot.job;
      slot.job = undefined;
      worker.unref();
      if (job) {
        if (m.error !== undefined || !m.data || m.crc === undefined)
          job.reject(new Error(`gzip worker: ${m.error ?? 'no result'}`));
        else
          job.resolve({
            data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength),
            crc: m.crc,
            ...(m.block ? { spare: Buffer.from(m.block.buffer, m.block.byteOffset, m.block.byteLength) } : {}),
          });
      }
      this.dispatch();
    });
    const fail = (e: Error) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.job?.reject(e);
      slot.job = undefined;
      this.dispatch();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`gzip worker exited (${code})`)));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }
}

const pools = new Map<number, DeflatePool>();

/** The process's pool of `size` workers. */
export function deflatePool(size: number): DeflatePool {
  let p = pools.get(size);
  if (!p) pools.set(size, (p = new DeflatePool(size)));
  return p;
}
