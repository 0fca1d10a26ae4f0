/**
 * Run-state directories: everything a run or a view mounts or writes (rootfs mount point, upper
 * and work dirs, stubs, bundle, runtime state) lives in STORE/run/<pid>-<kind>-<random>/, with an
 * owner.json naming the kiln process (pid and start time, so a reused pid is not mistaken for it).
 *
 * Teardown kills a container the runtime still knows, unmounts everything under the directory
 * (deepest first) and removes it. A kiln that is interrupted tears its runs down before it exits
 * (the callers' AbortSignal, or the signal handlers runWithCleanup installs); one that is killed
 * leaves the directory behind and the next kiln's cleanupStaleRuns tears it down.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { deleteContainer, RUNTIME_OPTIONS } from './runtime.js';
import { unmount } from './rootfs.js';
import { processStartTime, removeTree } from '../util/index.js';
import { tmpfsBase } from './private-files.js';
import { storeLayout } from '../store/index.js';

interface Owner {
  pid: number;
  start: string;
}

const me: Owner = { pid: process.pid, start: processStartTime(process.pid) ?? '' };

/** Run dirs of this process not torn down yet: unmounted synchronously if the process exits anyway. */
const live = new Set<string>();
let exitHook = false;

/** The store's run-state directory (the store owns its root's layout). */
export function runRoot(storeRoot: string): string {
  return storeLayout(storeRoot).runDir;
}

/** A fresh run-state directory owned by this process. */
export function createRunDir(storeRoot: string, kind: string): string {
  const dir = path.join(runRoot(storeRoot), `${process.pid}-${kind}-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'owner.json'), JSON.stringify(me));
  live.add(dir);
  if (!exitHook) {
    exitHook = true;
    // Last resort for a process.exit() in the middle of a run: lazy unmounts, synchronously.
    process.on('exit', () => {
      for (const d of live) {
        for (const p of mountsUnder(d)) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
        rmSync(d, { recursive: true, force: true });
      }
    });
  }
  return dir;
}

/** Mount points under `dir` in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return info
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Kill what still runs, unmount everything under `dir`, remove it. */
export async function teardownRunDir(dir: string): Promise<void> {
  const rt = path.join(dir, 'bundle', 'runtime.json');
  if (existsSync(rt)) {
    try {
      const {
        program,
        root,
        id,
        private: priv,
        options,
        detachUnified,
      } = JSON.parse(readFileSync(rt, 'utf8')) as {
        program?: string;
        root?: string;
        id?: string;
        private?: string;
        options?: unknown;
        detachUnified?: unknown;
      };
      // Invoked as the run did (crun's options, a hybrid host's unmount): only options kiln gives.
      if (typeof program === 'string' && root && id)
        await deleteContainer(
          {
            program,
            options: Array.isArray(options) ? options.filter((o) => RUNTIME_OPTIONS.includes(o as string)) : [],
            detachUnified: detachUnified === true,
          },
          root,
          id,
        );
      removePrivateDir(priv);
    } catch {
      // unreadable: nothing to delete
    }
  }
  for (const p of mountsUnder(dir)) await unmount(p).catch(() => undefined);
  await removeTree(dir);
  live.delete(dir);
}

/** A run's private tmpfs dir (private-files.ts), only if it is one: runtime.json is not trusted further. */
function removePrivateDir(priv: string | undefined): void {
  if (
    typeof priv !== 'string' ||
    !/^kiln-rt-\d+-[A-Za-z0-9]+$/.test(path.basename(priv)) ||
    path.dirname(priv) !== tmpfsBase()
  )
    return;
  rmSync(priv, { recursive: true, force: true });
}

function ownerAlive(dir: string): boolean {
  let owner: Owner;
  try {
    owner = JSON.parse(readFileSync(path.join(dir, 'owner.json'), 'utf8')) as Owner;
  } catch {
    // No owner file: made by an older kiln or torn mid-creation; alive only if its pid prefix is.
    // This process's own are its overlay and fuse-overlayfs probes (rootfs.ts, fuse-overlay.ts),
    // which a cleanup of another stage's run must not remove while they mount (one of an earlier
    // process that had this pid is left to the next kiln).
    const pid = Number(path.basename(dir).split('-')[0]);
    if (pid === process.pid) return true;
    return pid > 0 && processStartTime(pid) !== undefined;
  }
  if (owner.pid === me.pid && owner.start === me.start) return live.has(dir);
  return processStartTime(owner.pid) === owner.start;
}

/** Tear down the run dirs of kiln processes that are gone. How many there were. */
export async function cleanupStaleRuns(store: string | { root: string }): Promise<number> {
  const root = runRoot(typeof store === 'string' ? store : store.root);
  let n = 0;
  for (const name of await fsp.readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    if (ownerAlive(dir)) continue;
    try {
      await teardownRunDir(dir);
      n++;
    } catch {
      // Busy or vanished (another kiln tearing it down at the same time): not this build's concern;
      // a later cleanup retries.
    }
  }
  return n;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Run `fn` with an AbortSignal that fires on `signal` or, when the caller gives none, on
 * SIGINT/SIGTERM/SIGHUP to this process; in that case, once `fn` has cleaned up, the signal is
 * raised again with nothing of ours listening (the process ends as it would have).
 */
export async function runWithCleanup<T>(
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (signal) return fn(signal);
  const ac = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    caught ??= sig;
    ac.abort();
  };
  for (const s of SIGNALS) process.on(s, handler);
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of SIGNALS) process.off(s, handler);
    if (caught && process.listenerCount(caught) === 0) process.kill(process.pid, caught);
  }
}
