/**
 * A cross-process lock for short critical sections (index.json updates, GC): a lock file created
 * with O_EXCL holding the owner's pid. A lock whose owner is gone (kill -9) is taken over.
 */
import { closeSync, mkdirSync, openSync, promises as fsp, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError, processAlive } from '../util/index.js';

export async function withFileLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const start = Date.now();
  let delay = 5;
  let madeDir = false;
  for (;;) {
    try {
      // Synchronous (a tag takes it on a build's critical path): three calls of ~10 µs, where each
      // trip through the thread pool waited behind the layer I/O of other work.
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !madeDir) {
        mkdirSync(path.dirname(file), { recursive: true });
        madeDir = true;
        continue;
      }
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim());
      if (pid > 0 && pid !== process.pid && !processAlive(pid)) {
        // The owner died holding it: take it over (rename is atomic; a racing taker fails the rm).
        await fsp.rm(file, { force: true });
        continue;
      }
      if (Date.now() - start > timeoutMs)
        throw new KilnError(
          'STORE',
          `the store is locked by process ${pid || '?'}`,
          { path: file },
          { hint: 'another kiln is working on this store; wait for it or remove the lock file if no kiln runs' },
        );
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}
