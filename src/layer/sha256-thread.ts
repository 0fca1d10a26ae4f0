/**
 * A layer's sha256 (its diff_id, and digest when the blob is the tar) computed in a worker thread
 * while the main thread makes the tar: after a RUN, the walk, the file reads and the header
 * encoding run on one core and the hash (~2 ms a MiB here, ~45 ms for a 23 MB venv layer, ~0.6 s
 * for 300 MB) on the other, instead of one after the other on the build's critical path.
 *
 * A layer is hashed off the main thread only once it has reached OFF_THREAD_FROM bytes and the
 * worker is already up (warmHashThread, called as a RUN starts, or an earlier big layer): a small
 * layer is hashed in process as before, and no layer waits for the worker's start-up (~40 ms).
 * Bytes are copied into pieces that go to the worker and come back for reuse (the chunks stay
 * the caller's: a write stream still holds them); a bounded number are in flight, so memory stays
 * flat and a slow worker slows the producer down instead of queueing the layer.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { KilnError } from '../util/index.js';

/** Below this many bytes a layer is hashed in process (the hand-over's round trips outweigh the hash). */
export const OFF_THREAD_FROM = 4 << 20;
/** The size of a piece sent to the worker, and how many may be in flight (8 MiB). */
const PIECE = 1 << 20;
const IN_FLIGHT = 8;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  try {
    let h = open.get(m.id);
    if (!h) open.set(m.id, (h = createHash('sha256')));
    if (m.piece) {
      h.update(m.piece.subarray(0, m.length));
      parentPort.postMessage({ spare: m.piece }, [m.piece.buffer]);
    } else {
      open.delete(m.id);
      parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
});
`;

type Reply = { spare: Uint8Array } | { id: number; hex: string } | { id: number; error: string };

/** The process's one hashing worker: started on demand, kept, never keeping the process alive when idle. */
class HashThread {
  private worker: Worker | undefined;
  private up = false;
  private started: Promise<boolean> | undefined;
  private failed: Error | undefined;
  private nextId = 1;
  private sessions = 0;
  private inFlight = 0;
  private readonly spares: Uint8Array[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private readonly digests = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();

  /** Start the worker when it is not started yet; resolves true once it is up, false if it failed. */
  warm(): Promise<boolean> {
    if (!this.started) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      this.worker = w;
      this.started = new Promise<boolean>((resolve) => {
        w.once('online', () => resolve((this.up = true)));
        w.once('error', () => resolve(false));
        w.once('exit', () => resolve(false));
      });
      w.on('message', (m: Reply) => this.onReply(m));
      w.once('error', (e) => this.fail(e));
      w.once('exit', (code) => this.fail(new Error(`the hashing thread exited (${code})`)));
      // Held by the process until it is up (whoever awaits warm() is answered), then by the
      // layers being hashed only (an idle worker does not keep the process alive).
      void this.started.then(() => this.sessions === 0 && w.unref());
    }
    return this.started;
  }

  /** Up and answering: a layer may be handed over without waiting. */
  get ready(): boolean {
    return this.up && !this.failed;
  }

  open(): number {
    if (this.sessions++ === 0) this.worker!.ref();
    return this.nextId++;
  }

  /** `bytes` added to session `id` (copied: the caller keeps its buffer); resolves when there is room for more. */
  async update(id: number, bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length; at += PIECE) {
      while (this.inFlight >= IN_FLIGHT && !this.failed) await new Promise<void>((r) => this.roomWaiters.push(r));
      if (this.failed) throw this.error(this.failed);
      const part = bytes.subarray(at, Math.min(at + PIECE, bytes.length));
      const piece = this.spares.pop() ?? new Uint8Array(PIECE);
      piece.set(part);
      this.inFlight++;
      this.worker!.postMessage({ id, piece, length: part.length }, [piece.buffer as ArrayBuffer]);
    }
  }

  digest(id: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (this.failed) return reject(this.error(this.failed));
      this.digests.set(id, { resolve, reject });
      this.worker!.postMessage({ id });
    }).finally(() => {
      if (--this.sessions === 0) this.worker?.unref();
    });
  }

  private onReply(m: Reply): void {
    if ('spare' in m) {
      this.inFlight--;
      if (this.spares.length < IN_FLIGHT) this.spares.push(m.spare);
      this.roomWaiters.shift()?.();
      return;
    }
    const d = this.digests.get(m.id);
    this.digests.delete(m.id);
    if ('hex' in m) d?.resolve(m.hex);
    else d?.reject(this.error(new Error(m.error)));
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const d of this.digests.values()) d.reject(this.error(e));
    this.digests.clear();
    for (const r of this.roomWaiters.splice(0)) r();
  }

  private error(e: Error): KilnError {
    return new KilnError('INTERNAL', `hashing a layer in its worker thread failed: ${e.message}`);
  }
}

let thread: HashThread | undefined;
const hashThread = () => (thread ??= new HashThread());

/**
 * Start the hashing worker ahead of a layer that may be big (a RUN's, while its process runs), so
 * that layer's hash need not wait for it. Costs one thread's start-up (~40 ms of CPU) once per process.
 * Resolves true once the worker is up, false when it could not start (layers are then hashed in
 * process); it never rejects.
 */
export function warmHashThread(): Promise<boolean> {
  return hashThread().warm();
}

/**
 * The sha256 of a stream of chunks, fed in order: in process, or in the worker once the stream
 * has reached OFF_THREAD_FROM bytes with the worker up. `update` may be awaited for room.
 * `offThread` (tests): hand over from this many bytes instead.
 */
export class LayerSha256 {
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private inProcess: Hash | undefined;
  private session: number | undefined;

  constructor(private readonly offThreadFrom = OFF_THREAD_FROM) {}

  /** Where the bytes went: still held (undecided), in process, or the worker. */
  get where(): 'held' | 'process' | 'thread' {
    return this.session !== undefined ? 'thread' : this.inProcess ? 'process' : 'held';
  }

  update(b: Uint8Array): Promise<void> | undefined {
    if (this.session !== undefined) return hashThread().update(this.session, b);
    if (this.inProcess) {
      this.inProcess.update(b);
      return undefined;
    }
    // Undecided: the chunks are kept (not copied; they are not changed once emitted) until the
    // stream is big enough to be worth the worker, or ends.
    this.held.push(b);
    this.heldBytes += b.length;
    if (this.heldBytes < this.offThreadFrom) return undefined;
    const t = hashThread();
    const held = this.held;
    this.held = [];
    if (t.ready) {
      this.session = t.open();
      return (async () => {
        for (const h of held) await t.update(this.session!, h);
      })();
    }
    // Not up: this layer stays in process, the next big one will find the worker started.
    void t.warm();
    this.inProcess = createHash('sha256');
    for (const h of held) this.inProcess.update(h);
    return undefined;
  }

  /** The stream failed: nothing more comes (the worker forgets the session; the process may exit). */
  abandon(): void {
    if (this.session !== undefined)
      hashThread()
        .digest(this.session)
        .catch(() => undefined);
    this.session = undefined;
    this.held = [];
  }

  /** The hex digest of everything fed. */
  async digest(): Promise<string> {
    if (this.session !== undefined) return hashThread().digest(this.session);
    const h = this.inProcess ?? createHash('sha256');
    for (const b of this.held) h.update(b);
    this.held = [];
    return h.digest('hex');
  }
}
