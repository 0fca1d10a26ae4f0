/**
 * Opening layers for reading: gzip blobs that live in files are decompressed in a worker thread
 * (decompression and tar parsing then overlap: the walk takes about as long as the slower of the
 * two instead of their sum); everything else goes through layer/'s openLayer.
 */
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KilnError } from '../util/errors.js';
import { openLayer } from '../layer/decompress.js';
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

  /** The decompressed tar stream of a layer. Layers are read one after another. */
  open(layer: LayerRef): Readable {
    const f = layer.file;
    const url = workerUrl();
    if (!f || !url || this.busy || f.end < f.start || !isGzipFile(f.path, f.start)) return openLayer(layer.open());
    this.worker ??= new Worker(url);
    const w = this.worker;
    this.busy = true;
    let unacked = 0;
    let done = false;
    const out = new Readable({
      highWaterMark: 4 << 20,
      read: () => {
        if (unacked) {
          w.postMessage({ t: 'ack', n: unacked });
          unacked = 0;
        }
      },
      destroy: (err, cb) => {
        if (!done) w.postMessage({ t: 'abort' });
        finish();
        cb(err);
      },
    });
    const onMessage = (m: { t: string; ab?: ArrayBuffer; message?: string }) => {
      if (m.t === 'data') {
        const b = Buffer.from(m.ab!);
        unacked += b.length;
        out.push(b);
      } else if (m.t === 'end') {
        done = true;
        finish();
        out.push(null);
      } else if (m.t === 'error') {
        done = true;
        finish();
        out.destroy(new KilnError('INVALID', `corrupt gzip layer: ${m.message}`));
      }
    };
    const onError = (e: Error) => {
      done = true;
      finish();
      out.destroy(e);
    };
    const finish = () => {
      w.off('message', onMessage);
      w.off('error', onError);
      this.busy = false;
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.postMessage({ t: 'open', path: f.path, start: f.start, end: f.end });
    return out;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
