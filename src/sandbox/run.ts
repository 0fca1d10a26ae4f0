/**
 * Run a process on an image's filesystem and capture what it changed as a layer: the machinery
 * of a RUN step and of `kiln run`. Knows nothing about Dockerfiles.
 *
 * Run state lives in STORE/run/<pid>-<id>/ (rootfs mount, upper dir, bundle); a kiln killed
 * mid-run leaves it behind, and the next kiln cleans it (cleanupStaleRuns).
 */
import { mkdirSync, existsSync, promises as fsp, lstatSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Descriptor } from '../image/types.js';
import type { Digest } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { runCapture } from '../util/proc.js';
import { resolveUser } from '../util/users.js';
import { applyLayer } from '../layer/apply.js';
import { encodeLayer, type LayerInfo } from '../layer/compress.js';
import { tarChanges, type Change } from '../layer/write.js';
import type { Store } from '../store/store.js';
import { canMountOverlay, diffTrees, diffUpper, mountOverlay, snapshotTree, unmount, type SnapshotterKind } from './rootfs.js';
import { HOST_FILES, markRuntimeBroken, selectRunner, type BackendKind, type Mount, type Runner } from './runtime.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunStepOptions {
  store: Store;
  /** The image's layers (bottom → top) and their diff_ids. */
  layers: Descriptor[];
  diffIds: Digest[];
  args: string[];
  /** KEY=VALUE; PATH defaults to docker's when absent. */
  env: string[];
  cwd?: string;
  /** USER spec ("name", "uid[:gid]", …), resolved in the image's own /etc/passwd and /etc/group. */
  user?: string;
  network?: 'host' | 'none';
  mounts?: Mount[];
  /** Capture the changes as a layer blob in the store (RUN); false for `kiln run --rm`. */
  capture?: boolean;
  snapshotter?: SnapshotterKind;
  backend?: BackendKind;
  runtime?: string;
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
  signal?: AbortSignal;
  sourceDateEpoch?: number;
}

export interface RunOutcome {
  exitCode: number;
  /** The new layer (blob committed to the store), undefined when nothing changed or not captured. */
  layer?: LayerInfo;
  changes: Change[];
  backend: BackendKind;
  snapshotter: SnapshotterKind;
}

function runRoot(store: Store): string {
  return path.join(store.root, 'run');
}

/** Unmount and remove what a killed kiln left in STORE/run. */
export async function cleanupStaleRuns(store: Store): Promise<number> {
  const dir = runRoot(store);
  let n = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const pid = Number(name.split('-')[0]);
    if (pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        continue; // still running
      } catch {
        // dead owner: clean up
      }
    } else if (pid === process.pid) continue;
    await teardown(path.join(dir, name));
    n++;
  }
  return n;
}

async function teardown(runDir: string): Promise<void> {
  // Unmount everything under the run dir, deepest first.
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p && (p === runDir || p.startsWith(`${runDir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await unmount(p).catch(() => undefined);
  await fsp.rm(runDir, { recursive: true, force: true });
}

/** Paths the runtime may create as mount points: not part of the layer unless the image had them. */
function runtimeArtifacts(lowerHas: (rel: string) => boolean, mounts: Mount[]): Set<string> {
  const out = new Set<string>();
  for (const f of [...HOST_FILES, 'proc', 'sys', 'dev', 'dev/pts', 'dev/shm', 'dev/mqueue', ...mounts.map((m) => m.target.replace(/^\/+/, ''))]) {
    if (!lowerHas(f)) out.add(f);
  }
  // the parents that only exist for them (e.g. etc/ in an empty image)
  for (const f of [...out]) {
    const parent = path.posix.dirname(f);
    if (parent !== '.' && !lowerHas(parent)) out.add(parent);
  }
  return out;
}

export async function runStep(o: RunStepOptions): Promise<RunOutcome> {
  const store = o.store;
  await cleanupStaleRuns(store);
  const runDir = path.join(runRoot(store), `${process.pid}-${randomBytes(6).toString('hex')}`);
  const rootfs = path.join(runDir, 'rootfs');
  const upper = path.join(runDir, 'upper');
  const work = path.join(runDir, 'work');
  const bundle = path.join(runDir, 'bundle');
  for (const d of [rootfs, upper, work, bundle]) mkdirSync(d, { recursive: true });
  const onSignal = () => undefined; // the caller's handlers decide; teardown below always runs
  let snapshotter: SnapshotterKind = o.snapshotter ?? ((await canMountOverlay(runDir)) ? 'overlay' : 'native');
  const mounts = o.mounts ?? [];
  let mounted = false;
  try {
    let lowers: string[] = [];
    let before: Map<string, string> | undefined;
    if (snapshotter === 'overlay') {
      lowers = await store.snapshots(o.layers, o.diffIds);
      await mountOverlay(lowers, runDir, upper, work, rootfs);
      mounted = true;
    } else {
      for (const [i, l] of o.layers.entries()) await applyLayer(store.openBlob(l.digest), rootfs, { whiteouts: 'apply', expectedDiffId: o.diffIds[i] });
    }
    const lowerHas = (rel: string) => {
      if (snapshotter === 'native') return existsSync(path.join(rootfs, rel)) || isLink(path.join(rootfs, rel));
      return lowers.some((d) => existsSync(path.join(d, rel)) || isLink(path.join(d, rel)));
    };
    const exclude = runtimeArtifacts(lowerHas, mounts);
    if (snapshotter === 'native') before = snapshotTree(rootfs, exclude);

    const user = resolveUser(snapshotter === 'overlay' ? [rootfs] : [rootfs], o.user ?? '');
    const env = o.env.some((e) => e.startsWith('PATH=')) ? o.env : [`PATH=${DEFAULT_PATH}`, ...o.env];
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/root'}`);
    const cwd = o.cwd || '/';
    // The working directory is created if missing (docker does), owned by root as docker does.
    const cwdAbs = path.join(rootfs, cwd);
    if (!existsSync(cwdAbs)) mkdirSync(cwdAbs, { recursive: true, mode: 0o755 });
    for (const m of mounts) mkdirSync(path.join(rootfs, m.target), { recursive: true });

    let runner: Runner = await selectRunner({ runtime: o.runtime, backend: o.backend });
    const spec = { args: o.args, env, cwd, uid: user.uid, gid: user.gid, additionalGids: user.additionalGids, network: o.network ?? 'host', mounts, onStdout: o.onStdout, onStderr: o.onStderr };
    let exitCode: number;
    for (;;) {
      try {
        exitCode = await runner.run(rootfs, bundle, path.basename(runDir), spec, o.signal);
        break;
      } catch (e) {
        // A runtime that cannot start containers here (crun on cgroup v1): try the next backend.
        if (e instanceof KilnError && e.code === 'SANDBOX' && runner.kind === 'oci' && !o.runtime && o.backend !== 'oci') {
          markRuntimeBroken(runner.program);
          runner = await selectRunner({});
          continue;
        }
        throw e;
      }
    }
    if (o.signal?.aborted) throw new KilnError('SANDBOX', 'interrupted');

    let changes: Change[] = [];
    let layer: LayerInfo | undefined;
    if (o.capture !== false) {
      if (snapshotter === 'overlay') {
        await unmount(rootfs);
        mounted = false;
        changes = diffUpper(upper, exclude);
      } else {
        changes = diffTrees(rootfs, before!, exclude);
      }
      if (changes.length) {
        const src = snapshotter === 'overlay' ? upper : rootfs;
        const w = await store.createBlobWriter();
        try {
          layer = await encodeLayer(tarChanges(src, changes, { sourceDateEpoch: o.sourceDateEpoch }), w.stream, { compression: 'gzip' });
        } catch (e) {
          await w.abort();
          throw e;
        }
        await w.commit({ digest: layer.digest, size: layer.size });
        await store.recordLayer(layer.digest, { diffId: layer.diffId, uncompressedSize: layer.uncompressedSize });
      }
    }
    return { exitCode, layer, changes, backend: runner.kind, snapshotter };
  } finally {
    void onSignal;
    if (mounted) await unmount(rootfs).catch(() => undefined);
    await teardown(runDir);
    snapshotter = snapshotter as SnapshotterKind;
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export { runCapture };
