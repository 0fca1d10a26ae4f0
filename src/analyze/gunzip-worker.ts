/**
 * Worker thread that decompresses gzip layer blobs from files, so decompression runs alongside
 * the tar parsing on the main thread instead of taking turns with it. One job at a time:
 *   in:  { t: 'open', path, start, end } | { t: 'ack', n } | { t: 'abort' }
 *   out: { t: 'data', ab } (transferred) | { t: 'end' } | { t: 'error', message }
 * Flow control: output stops while more than HIGH bytes are unacknowledged.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { createGunzip, type Gunzip } from 'node:zlib';

const HIGH = 16 << 20;
const LOW = 8 << 20;

let src: ReadStream | undefined;
let gz: Gunzip | undefined;
let outstanding = 0;
let paused = false;

function stop(): void {
  src?.destroy();
  gz?.destroy();
  src = undefined;
  gz = undefined;
  outstanding = 0;
  paused = false;
}

parentPort!.on('message', (m: { t: string; path?: string; start?: number; end?: number; n?: number }) => {
  if (m.t === 'open') {
    stop();
    const s = createReadStream(m.path!, { start: m.start, end: m.end, highWaterMark: 1 << 20 });
    const g = createGunzip({ chunkSize: 4 << 20 });
    src = s;
    gz = g;
    const fail = (e: Error) => {
      if (gz !== g) return;
      parentPort!.postMessage({ t: 'error', message: e.message, code: (e as NodeJS.ErrnoException).code });
      stop();
    };
    s.on('error', fail);
    g.on('error', fail);
    g.on('data', (c: Buffer) => {
      // A chunk that owns its whole buffer is handed over as it is; zlib's partial chunks may
      // share memory with what comes next, so those are copied.
      let ab: ArrayBuffer;
      if (c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.buffer instanceof ArrayBuffer) ab = c.buffer;
      else {
        ab = new ArrayBuffer(c.length);
        new Uint8Array(ab).set(c);
      }
      parentPort!.postMessage({ t: 'data', ab }, [ab]);
      outstanding += c.length;
      if (outstanding > HIGH && !paused) {
        paused = true;
        g.pause();
      }
    });
    g.on('end', () => {
      if (gz !== g) return;
      parentPort!.postMessage({ t: 'end' });
      src = undefined;
      gz = undefined;
    });
    s.pipe(g);
  } else if (m.t === 'ack') {
    outstanding -= m.n ?? 0;
    if (paused && outstanding < LOW) {
      paused = false;
      gz?.resume();
    }
  } else if (m.t === 'abort') {
    stop();
  }
});
