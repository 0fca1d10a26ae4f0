/**
 * RUN --mount=type=cache directories: STORE/cache-mounts/<sha256 of the key>/<n>/, their sharing
 * and pruning. Sharing: `shared` users share one directory; `locked` waits until nobody else uses
 * it; `private` takes a directory nobody uses, a new one when all are busy. Holders are files
 * naming the process (pid and start time), so a killed kiln never blocks a cache.
 * `pruneCacheMounts` removes the ones nobody holds. What a cache starts from (from=, uid/gid/mode)
 * is run-mounts.ts's.
 */
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { withFileLock, storeLayout } from '../store/index.js';
import { sha256, digestHex, KilnError, processStartTime } from '../util/index.js';

export function cacheMountsDir(storeRoot: string): string {
  return storeLayout(storeRoot).cacheMountsDir;
}

const myStart = processStartTime(process.pid) ?? '0';

interface Holder {
  file: string;
  exclusive: boolean;
}

/** The live holders of an instance directory (those of dead processes are removed). */
function holders(instance: string): Holder[] {
  const dir = path.join(instance, 'holders');
  const out: Holder[] = [];
  for (const name of readdirSafe(dir)) {
    const m = /^(\d+)-(\d+)-[0-9a-f]+\.(shared|excl)$/.exec(name);
    const file = path.join(dir, name);
    if (!m) continue;
    const pid = Number(m[1]);
    const liveProc = pid === process.pid ? m[2] === myStart : processStartTime(pid) === m[2];
    if (!liveProc) {
      rmSync(file, { force: true });
      continue;
    }
    out.push({ file, exclusive: m[3] === 'excl' });
  }
  return out;
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new KilnError('BUILD', 'build interrupted');
  await new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
  if (signal?.aborted) throw new KilnError('BUILD', 'build interrupted');
}

/**
 * Take a cache directory for one RUN: STORE/cache-mounts/<hex>/<n>/ (its content in data/).
 * shared: instance 0 unless someone holds it exclusively (then the first that nobody holds
 * exclusively); private: the first instance nobody holds, a new one when all are busy; locked:
 * instance 0, waiting until nobody holds it.
 */
export async function holdCache(
  storeRoot: string,
  key: string,
  id: string,
  sharing: 'shared' | 'private' | 'locked',
  signal?: AbortSignal,
): Promise<{ dir: string; release(): void }> {
  const base = path.join(cacheMountsDir(storeRoot), digestHex(sha256(key)));
  mkdirSync(base, { recursive: true });
  const lock = path.join(base, '.lock');
  let delay = 20;
  for (;;) {
    const got = await withFileLock(lock, async () => {
      if (!existsSync(path.join(base, 'id'))) await fsp.writeFile(path.join(base, 'id'), `${id}\n`);
      for (let n = 0; ; n++) {
        const instance = path.join(base, String(n));
        const hs = existsSync(instance) ? holders(instance) : [];
        const ok = sharing === 'shared' ? !hs.some((h) => h.exclusive) : hs.length === 0;
        if (!ok) {
          if (sharing === 'locked') return undefined; // wait for instance 0
          continue;
        }
        mkdirSync(path.join(instance, 'holders'), { recursive: true });
        const file = path.join(
          instance,
          'holders',
          `${process.pid}-${myStart}-${randomBytes(4).toString('hex')}.${sharing === 'shared' ? 'shared' : 'excl'}`,
        );
        closeSync(openSync(file, 'wx'));
        return { dir: instance, release: () => rmSync(file, { force: true }) };
      }
    });
    if (got) return got;
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * `kiln prune` of cache mounts: remove every cache directory nobody holds (all of them when no
 * build runs). What was freed.
 */
export async function pruneCacheMounts(storeRoot: string): Promise<{ dirs: number; bytes: number }> {
  const root = cacheMountsDir(storeRoot);
  let dirs = 0;
  let bytes = 0;
  for (const name of readdirSafe(root)) {
    const base = path.join(root, name);
    await withFileLock(path.join(base, '.lock'), async () => {
      for (const n of readdirSafe(base)) {
        if (!/^\d+$/.test(n)) continue;
        const instance = path.join(base, n);
        if (holders(instance).length) continue;
        bytes += du(instance);
        await fsp.rm(instance, { recursive: true, force: true });
        dirs++;
      }
    });
  }
  return { dirs, bytes };
}

function du(p: string): number {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const c of readdirSafe(p)) n += du(path.join(p, c));
  return n;
}

function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}
