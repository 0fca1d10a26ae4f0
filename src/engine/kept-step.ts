/**
 * Failed RUN steps kept for `kiln debug` (`kiln build --on-error=keep|shell`): one directory each,
 * STORE/kept-steps/<id>/, holding
 *
 *   fs/           the filesystem the failed command left: the overlay's upper dir (its changes, a
 *                 lower on top of the step's layers) or, with the native snapshotter, the whole tree
 *   record.json   everything else the step ran with: its layers (the state before it), command,
 *                 environment, user, working directory, network, sandbox mode, its --mount specs,
 *                 the filesystems its from= mounts named, the build context's path, and the
 *                 *sources* of its secrets (file path or variable name) and ssh agents — never a
 *                 secret's bytes: `kiln debug` reads them again, or refuses when they are gone.
 *
 * A gc root (gc-roots/kept-<id>) keeps the step's layers and snapshots, and those of its from=
 * mounts, until the kept step is removed (`kiln debug --rm ID`, `kiln prune`). The record is
 * written last and the directory renamed into place: a half-kept step is never listed.
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BuildContext } from '../context/index.js';
import { type MountSpec } from '../dockerfile/index.js';
import { type Descriptor } from '../image/index.js';
import { runStep, type BackendKind, type Mount, type SnapshotterKind, type Ulimit } from '../sandbox/index.js';
import { SNAPSHOT_ROOT, storeLayout, type Store } from '../store/index.js';
import { chainIds, KilnError, writeFileAtomic, type Digest } from '../util/index.js';
import { readSecret, type SecretSource, type SshSource } from './run-flags.js';
import { prepareRunMounts, type FromSource } from './run-mounts.js';

export interface KeptStep {
  version: 1;
  id: string;
  /** When the step failed (ISO 8601). */
  created: string;
  /** The Dockerfile and line of the RUN. */
  file?: string;
  line?: number;
  stage: string;
  /** The command as written (shell form's text, exec form's JSON). */
  command: string;
  /** The argv the sandbox ran (shell and heredoc resolved). */
  args: string[];
  exitCode: number;
  /** The step's environment (KEY=VALUE), without the secrets' variables (added at debug time). */
  env: string[];
  user: string;
  workdir: string;
  network: 'host' | 'none';
  backend: BackendKind;
  snapshotter: SnapshotterKind;
  /** What fs/ holds: the overlay's changes, or the whole tree. */
  kept: 'upper' | 'tree';
  /** The state before the step. */
  layers: Descriptor[];
  diffIds: Digest[];
  mounts: MountSpec[];
  /** The filesystems of the mounts with a from=, in their order. */
  fromSources: FromSource[];
  /** The build context (bind mounts without from=) and the Dockerfile (its .dockerignore). */
  contextDir: string;
  dockerfilePath?: string;
  /** Where the secrets and agents the mounts use came from: sources only. */
  secrets: SecretSource[];
  ssh: SshSource[];
  extraHosts?: [string, string][];
  shmSize?: number;
  ulimits?: Ulimit[];
}

/** A place for a failed step's filesystem, before its record makes it a kept step. */
export interface KeptStepSlot {
  id: string;
  /** Where runStep's keepFailed moves the filesystem. */
  fsDir: string;
  dir: string;
}

const ID = /^[0-9a-f]{12}$/;

/** A fresh slot under STORE/kept-steps/ (a temporary name until recorded). */
export function keptStepSlot(store: Store): KeptStepSlot {
  const id = randomBytes(6).toString('hex');
  const dir = path.join(storeLayout(store.root).keptStepsDir, `tmp-${process.pid}-${id}`);
  return { id, dir, fsDir: path.join(dir, 'fs') };
}

/** Make the slot a kept step: its gc root, its record, then its final name. */
export async function recordKeptStep(store: Store, slot: KeptStepSlot, rec: Omit<KeptStep, 'id' | 'version'>) {
  const layout = storeLayout(store.root);
  const full: KeptStep = { version: 1, id: slot.id, ...rec };
  const pinned = [{ layers: rec.layers, diffIds: rec.diffIds }, ...rec.fromSources];
  const lines: string[] = [];
  for (const s of pinned) {
    for (const l of s.layers) lines.push(l.digest);
    for (const c of chainIds(s.diffIds)) lines.push(`${SNAPSHOT_ROOT}${c}`);
  }
  await fsp.mkdir(layout.gcRootsDir, { recursive: true });
  await writeFileAtomic(path.join(layout.gcRootsDir, `kept-${slot.id}`), `${lines.join('\n')}\n`);
  await writeFileAtomic(path.join(slot.dir, 'record.json'), `${JSON.stringify(full, null, 2)}\n`, 0o600);
  await fsp.rename(slot.dir, path.join(layout.keptStepsDir, slot.id));
  return full;
}

/** Remove a slot whose step could not be recorded. */
export async function discardKeptStepSlot(slot: KeptStepSlot): Promise<void> {
  await fsp.rm(slot.dir, { recursive: true, force: true });
}

/** The kept steps, newest first. */
export async function listKeptSteps(storeRoot: string): Promise<KeptStep[]> {
  const dir = storeLayout(storeRoot).keptStepsDir;
  const out: KeptStep[] = [];
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!ID.test(name)) continue;
    try {
      out.push(parseRecord(await fsp.readFile(path.join(dir, name, 'record.json'), 'utf8'), name));
    } catch {
      // unreadable record: prune removes it
    }
  }
  // In code units (ISO times, hex ids): localeCompare's first call loads ICU's collator (~9 ms).
  return out.sort((a, b) =>
    a.created !== b.created ? (a.created < b.created ? 1 : -1) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
  );
}

function parseRecord(text: string, id: string): KeptStep {
  const r = JSON.parse(text) as Partial<KeptStep>;
  if (r.version !== 1 || r.id !== id || !Array.isArray(r.args) || !Array.isArray(r.layers) || !Array.isArray(r.mounts))
    throw new KilnError('INVALID', `kept step ${id}: unreadable record`);
  return r as KeptStep;
}

/** A kept step by id (or a unique prefix of it); the newest when no id is given. */
export async function findKeptStep(storeRoot: string, id?: string): Promise<KeptStep> {
  const all = await listKeptSteps(storeRoot);
  if (id === undefined) {
    const newest = all[0];
    if (!newest)
      throw new KilnError(
        'NOT_FOUND',
        'no failed step is kept',
        {},
        { hint: 'build with --on-error=keep: a failing RUN is kept for kiln debug' },
      );
    return newest;
  }
  const hits = all.filter((k) => k.id.startsWith(id));
  if (hits.length === 1) return hits[0]!;
  throw new KilnError(
    'NOT_FOUND',
    hits.length ? `kept step id "${id}" is ambiguous` : `no kept step ${id}`,
    {},
    { hint: 'kiln debug --list shows the kept steps' },
  );
}

/** Remove a kept step: its directory and its gc root (the next gc frees its snapshots). */
export async function removeKeptStep(storeRoot: string, id: string): Promise<void> {
  if (!ID.test(id)) throw new KilnError('NOT_FOUND', `no kept step ${id}`);
  const layout = storeLayout(storeRoot);
  // The directory goes first under a name no listing takes, then the root that pins its layers.
  const dir = path.join(layout.keptStepsDir, id);
  const gone = path.join(layout.keptStepsDir, `rm-${process.pid}-${id}`);
  await fsp.rename(dir, gone).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await fsp.rm(gone, { recursive: true, force: true });
  await fsp.rm(path.join(layout.gcRootsDir, `kept-${id}`), { force: true });
}

/** Remove every kept step (and the leftovers of kilns that died while keeping one). How many. */
export async function pruneKeptSteps(storeRoot: string): Promise<number> {
  const layout = storeLayout(storeRoot);
  let n = 0;
  for (const name of await fsp.readdir(layout.keptStepsDir).catch(() => [] as string[])) {
    if (ID.test(name)) {
      await removeKeptStep(storeRoot, name);
      n++;
    } else {
      const pid = Number(/^(?:tmp|rm)-(\d+)-/.exec(name)?.[1]);
      if (pid && pid !== process.pid && !pidAlive(pid))
        await fsp.rm(path.join(layout.keptStepsDir, name), { recursive: true, force: true });
    }
  }
  return n;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DebugOptions {
  /** The kept step (default: the newest). */
  id?: string;
  /** The state before the step instead of the one it failed in. */
  before?: boolean;
  /** What to run (default /bin/sh). */
  args?: string[];
  stdin?: 'inherit';
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
  signal?: AbortSignal;
}

/**
 * Run a command (default: a shell) in a kept step's filesystem, as the step ran: its user,
 * working directory, environment, network, sandbox mode and --mounts (cache directories by key,
 * bind sources, secrets read again from their sources). What it changes is thrown away. Its exit code.
 */
export async function debugKeptStep(store: Store, o: DebugOptions): Promise<{ exitCode: number; step: KeptStep }> {
  const step = await findKeptStep(store.root, o.id);
  const dir = path.join(storeLayout(store.root).keptStepsDir, step.id);
  const refuse = (msg: string, hint: string) =>
    new KilnError('NOT_FOUND', `kept step ${step.id}: ${msg}`, {}, { hint });
  // The secrets and agents its mounts use: refused at once when a source is gone.
  for (const m of step.mounts) {
    if (m.type === 'secret') {
      const id = m.id || (m.target ? path.posix.basename(m.target) : '');
      const src = step.secrets.find((s) => s.id === id);
      if (!src) continue; // not given to the build: not mounted then either
      if (readSecret(src) === undefined)
        throw refuse(
          `secret "${id}" is no longer there (${src.src !== undefined ? `file ${src.src}` : `variable ${src.env}`})`,
          src.src !== undefined
            ? 'put the file back where the build read it: kept steps never store secrets'
            : `set ${src.env} in kiln debug's environment: kept steps never store secrets`,
        );
    } else if (m.type === 'ssh') {
      const src = step.ssh.find((s) => s.id === (m.id || 'default'));
      if (src && !existsSync(src.socket))
        throw refuse(`ssh agent "${src.id}" is gone (${src.socket})`, 'start the agent again at that socket');
    }
  }
  const needsContext = step.mounts.some((m) => m.type === 'bind' && m.from === undefined);
  if (needsContext && !existsSync(step.contextDir))
    throw refuse(`its build context ${step.contextDir} is gone`, 'its bind mounts read from it; put it back');
  const ctx = BuildContext.open(needsContext ? step.contextDir : store.tmpDir, { dockerfile: step.dockerfilePath });
  const place = { file: step.file, line: step.line };
  const runMounts = await prepareRunMounts({
    specs: step.mounts,
    place,
    store,
    ctx,
    workdir: step.workdir,
    env: step.env,
    from: (value, i) => {
      const src = step.fromSources[i];
      if (!src) throw new KilnError('INTERNAL', `kept step ${step.id}: no filesystem recorded for from=${value}`);
      return Promise.resolve(src);
    },
    secrets: step.secrets,
    ssh: step.ssh,
    signal: o.signal,
  });
  try {
    const fsDir = path.join(dir, 'fs');
    const source = o.before
      ? { layers: step.layers, diffIds: step.diffIds }
      : step.kept === 'upper'
        ? { lowerDirs: [...(await store.snapshots(step.layers, step.diffIds)), fsDir] }
        : { lowerDirs: [fsDir] };
    const mounts: Mount[] = runMounts.mounts;
    const r = await runStep({
      store,
      ...source,
      args: o.args?.length ? o.args : ['/bin/sh'],
      env: runMounts.env,
      mounts,
      cwd: step.workdir,
      user: step.user,
      network: step.network,
      extraHosts: step.extraHosts,
      shmSize: step.shmSize,
      ulimits: step.ulimits,
      capture: false,
      snapshotter: step.snapshotter,
      backend: step.backend,
      stdin: o.stdin,
      onStdout: o.onStdout ?? (() => undefined),
      onStderr: o.onStderr ?? (() => undefined),
      signal: o.signal,
    });
    return { exitCode: r.exitCode, step };
  } finally {
    await runMounts.release();
  }
}
