/**
 * Reading layers: gzip blobs that live in files are decompressed in a worker thread, so
 * decompression and tar parsing overlap (a walk takes about as long as the slower of the two, not
 * their sum); everything else goes through layer/'s openLayer on this thread.
 */
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KilnError } from '../util/index.js';
import { openLayer } from '../layer/index.js';
import type { LayerRef } from './source.js';

function isGzipFile(path: string, start: number): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, start) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** The compiled worker beside this module (absent when running from TypeScript sources). */
function workerUrl(): URL | undefined {
  const u = new URL('./gunzip-worker.js', import.meta.url);
  return import.meta.url.endsWith('.js') && existsSync(fileURLToPath(u)) ? u : undefined;
}

export class LayerReader {
  private worker: Worker | undefined;
  private busy = false;

  /**
   * Push a layer's decompressed tar, chunk by chunk, to `onChunk` (called synchronously; the next
   * chunk is not requested before it returns). Resolves when the layer has been read.
   */
  async pump(layer: LayerRef, onChunk: (b: Buffer) => void): Promise<void> {
    const f = layer.file;
    const url = workerUrl();
    if (!f || !url || this.busy || f.end < f.start || !isGzipFile(f.path, f.start)) {
      for await (const c of openLayer(layer.open())) onChunk(c as Buffer);
      return;
    }
    this.worker ??= new Worker(url);
    const w = this.worker;
    this.busy = true;
    try {
      await new Promise<void>((resolve, reject) => {
        const onMessage = (m: { t: string; ab?: ArrayBuffer; message?: string }) => {
          if (m.t === 'data') {
            const b = Buffer.from(m.ab!);
            try {
              onChunk(b);
            } catch (e) {
              w.postMessage({ t: 'abort' });
              done();
              reject(e as Error);
              return;
            }
            w.postMessage({ t: 'ack', n: b.length });
          } else if (m.t === 'end') {
            done();
            resolve();
          } else if (m.t === 'error') {
            done();
            reject(new KilnError('INVALID', `corrupt gzip layer: ${m.message}`));
          }
        };
        const onError = (e: Error) => {
          done();
          reject(e);
        };
        const done = () => {
          w.off('message', onMessage);
          w.off('error', onError);
        };
        w.on('message', onMessage);
        w.on('error', onError);
        w.postMessage({ t: 'open', path: f.path, start: f.start, end: f.end });
      });
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
