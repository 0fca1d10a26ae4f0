/**
 * A cross-process lock for short critical sections (index.json updates, GC): a lock file created
 * with O_EXCL holding the owner's pid. A lock whose owner is gone (kill -9) is taken over.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { KilnError, processAlive } from '../util/index.js';

export async function withFileLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const start = Date.now();
  let delay = 5;
  for (;;) {
    try {
      const fh = await fsp.open(file, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (e) {
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
    await fsp.rm(file, { force: true });
  }
}
