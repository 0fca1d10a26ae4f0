/**
 * The `host-root` backend: kaniko's model, for where even chroot is refused (a container without
 * CAP_SYS_CHROOT). Each RUN executes in this container's own `/`, after kiln has emptied it (but
 * for what it must keep: mount points, the store, kiln itself, /workspace) and unpacked the
 * stage's root there; the changes are found by the native snapshotter. A RUN sees and changes the
 * container itself: it is only chosen inside a container (or forced with KILN_ALLOW_HOST_ROOT=1),
 * and only in a throwaway one is it safe. RUN steps take turns (one root at a time).
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError, runCapture } from '../util/index.js';
import type { ProcessSpec, Runner } from './process.js';
import { killSession } from './bare.js';
import { waitExit } from './wait.js';

/** Why this process looks like it runs in a container (undefined: it does not). */
export function inContainer(): string | undefined {
  if (existsSync('/.dockerenv')) return '/.dockerenv';
  if (existsSync('/run/.containerenv')) return '/run/.containerenv';
  if (process.env.container) return `container=${process.env.container}`;
  if (process.env.KUBERNETES_SERVICE_HOST) return 'KUBERNETES_SERVICE_HOST';
  try {
    const cg = readFileSync('/proc/1/cgroup', 'utf8');
    const m = /(docker|kubepods|containerd|libpod|lxc)/.exec(cg);
    if (m) return `/proc/1/cgroup (${m[1]})`;
  } catch {
    // unreadable: not known to be a container
  }
  return undefined;
}

/** Can this process chroot (the bare backend)? undefined: yes; else why not. */
export async function chrootRefused(): Promise<string | undefined> {
  const r = await runCapture('chroot', ['/', 'true']).catch((e: Error) => ({ code: -1, stderr: e.message }));
  return r.code === 0 ? undefined : r.stderr.trim() || `exit ${r.code}`;
}

/** The host-root backend may run here: in a container, or forced. Throws a user error otherwise. */
export function assertHostRootAllowed(): void {
  if (inContainer() || process.env.KILN_ALLOW_HOST_ROOT === '1') return;
  throw new KilnError(
    'SANDBOX',
    "the host-root backend runs each RUN in this machine's own / after emptying it: refused outside a container (no /.dockerenv, /run/.containerenv, container env or container cgroup found)",
    {},
    {
      hint: "use it only in a throwaway container; KILN_ALLOW_HOST_ROOT=1 forces it (it will replace this system's files)",
    },
  );
}

/** kiln's own installation: the directory above dist/ (with package.json), from this module's place. */
function installDir(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return undefined;
}

/**
 * What emptying `/` must leave alone (paths relative to /): every mount point (/proc, /sys, /dev,
 * /etc/hosts, volumes…), the store, kiln's installation and Node.js, /workspace, and the
 * colon-separated KILN_HOST_ROOT_KEEP.
 */
export function hostRootKeep(storeRoot: string): string[] {
  const keep = new Set<string>(['proc', 'sys', 'dev', 'workspace']);
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const p = line.split(' ')[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      if (p && p !== '/') keep.add(p.slice(1));
    }
  } catch {
    // no /proc: the fixed list only
  }
  const extra = (process.env.KILN_HOST_ROOT_KEEP ?? '').split(':').filter(Boolean);
  for (const p of [storeRoot, installDir(), process.execPath, ...extra]) {
    if (p && path.isAbsolute(p)) keep.add(path.resolve(p).slice(1));
  }
  keep.delete('');
  return [...keep];
}

/** Tests on relative paths: kept (a kept path or below one), or above a kept one. */
export function keepTests(keep: string[]): { kept: (rel: string) => boolean; above: (rel: string) => boolean } {
  const set = new Set(keep);
  return {
    kept: (rel) => {
      for (let cur = rel; cur && cur !== '.'; cur = path.posix.dirname(cur)) if (set.has(cur)) return true;
      return false;
    },
    above: (rel) => keep.some((k) => k.startsWith(`${rel}/`)),
  };
}

/** Remove everything under `/` (`root`) but what is kept and the directories on the way to it. */
export function emptyRoot(root: string, keep: string[]): void {
  const { kept, above } = keepTests(keep);
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (kept(r)) continue;
      const abs = path.join(root, r);
      if (above(r) && lstatSync(abs).isDirectory()) walk(r);
      else rmSync(abs, { recursive: true, force: true });
    }
  };
  walk('');
}

let turn: Promise<unknown> = Promise.resolve();
/** One RUN at a time owns `/`. */
export function hostRootTurn<T>(fn: () => Promise<T>): Promise<T> {
  const next = turn.then(fn, fn);
  turn = next.catch(() => undefined);
  return next;
}

/**
 * Runs the process in `/` (no chroot: `rootfs` must be `/`), as its uid and gid with exactly its
 * environment and working directory. Supplementary groups are dropped (Node.js sets none) and the
 * capability bounding set is the container's. What it leaves running in its session is killed.
 */
export class HostRootRunner implements Runner {
  readonly kind = 'host-root' as const;
  readonly program = 'host-root';

  async run(rootfs: string, _bundleDir: string, _id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    if (rootfs !== '/') throw new KilnError('INTERNAL', `the host-root backend runs in / only, not ${rootfs}`);
    if (spec.mounts?.length) {
      throw new KilnError(
        'SANDBOX',
        `mounts (${spec.mounts.map((m) => m.target).join(', ')}) cannot be made here (no mount, no chroot): the host-root backend runs with none`,
        {},
        { hint: 'drop RUN --mount / -v here, or give the container CAP_SYS_CHROOT or user namespaces' },
      );
    }
    if (spec.network === 'none') {
      throw new KilnError(
        'SANDBOX',
        'network none needs a network namespace, which this host refuses',
        {},
        {
          hint: 'drop --network=none here',
        },
      );
    }
    const env: Record<string, string> = {};
    for (const e of spec.env) {
      const i = e.indexOf('=');
      if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
    }
    const child = spawn(spec.args[0]!, spec.args.slice(1), {
      cwd: spec.cwd,
      env,
      uid: spec.uid,
      gid: spec.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const started = new Promise<number | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e: NodeJS.ErrnoException) => {
        spec.onStderr?.(Buffer.from(`kiln: exec ${spec.args[0]}: ${e.message}\n`));
        resolve(e.code === 'ENOENT' ? 127 : 126);
      });
    });
    const failed = await started;
    if (failed !== undefined) return failed;
    const sid = child.pid!;
    child.once('exit', () => killSession(sid));
    child.stdout!.on('data', (b: Buffer) => spec.onStdout?.(b));
    child.stderr!.on('data', (b: Buffer) => spec.onStderr?.(b));
    try {
      return await waitExit(child, signal);
    } finally {
      killSession(sid);
    }
  }
}
