/**
 * The native snapshotter's kept roots (kaniko's model, made exact). A RUN with the native
 * snapshotter works in a flattened copy of the stage's layers; once it has run, that copy plus
 * what the RUN changed IS the stage's next state. Instead of flattening the stage again for the
 * next RUN, the root is kept for the build, keyed by the chain of layer diff_ids it holds:
 *
 * - the next RUN whose chain is that chain takes it as it is (no copy; its state before the run is
 *   the last walk's, read again only where something was made or removed: no second walk);
 * - a chain that extends it (COPY/ADD/WORKDIR layers, or cached steps, in between) takes it and
 *   has the extra layers applied over it from their blobs, as a fresh flatten applies them;
 * - any other chain flattens afresh.
 *
 * Exact: after a RUN the root is made what applying the new layer would make it (settle): the
 * mount-point stubs the run needed (and the bare backend's /dev and /etc files) are removed and
 * their parents' times put back, sockets (no layer carries them) removed, xattrs a layer does not
 * carry dropped, and every changed entry's times set as the layer's tar has them (whole seconds,
 * clamped to SOURCE_DATE_EPOCH; atime = mtime, as applyLayer sets them). A failed, killed or
 * interrupted RUN never gives its root back; a root taken is out of the pool (parallel stages never
 * share one); the pool lives in a run dir of this process (STORE/run/<pid>-roots-…), removed when
 * the build ends, on a signal, at exit, or by the next kiln's stale-run cleanup. The store's
 * snapshot dirs are never touched: the roots are made from layer blobs.
 *
 * KILN_CHECK_KEPT_ROOT=1 (tests): each reuse is compared with a fresh flatten of its chain and its
 * derived state with a walk; a difference fails the RUN (KilnError INTERNAL).
 */
import {
  lstatSync,
  lutimesSync,
  mkdirSync,
  readlinkSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
} from 'node:fs';
import * as path from 'node:path';
import { type Change, comparePaths, layerKeepsXattr } from '../layer/index.js';
import { type Digest, KilnError, removeTree, xattr } from '../util/index.js';
import { refreshState, sameContent, snapshotTree, unmount, xattrFingerprint, type TreeState } from './rootfs.js';
import { createRunDir, mountsUnder, teardownRunDir } from './rundir.js';

/** Nothing may stay mounted in a root that is kept (a backend's leftovers are unmounted). */
export async function unmountInside(root: string): Promise<void> {
  for (const p of mountsUnder(root)) await unmount(p);
  if (mountsUnder(root).length) throw new KilnError('SANDBOX', 'the root is still mounted on', { path: root });
}

/** A flattened root in the pool: the layers it holds and its state (as a walk would find it). */
export interface KeptRoot {
  dir: string;
  chain: Digest[];
  state: TreeState;
}

/**
 * A build's kept native roots. `limit`: how many at most (each is a whole stage's filesystem);
 * the least recently kept goes first.
 */
export class KeptRoots {
  private dir: string | undefined;
  private roots: KeptRoot[] = [];
  private n = 0;
  private closed = false;

  constructor(
    private readonly storeRoot: string,
    private readonly limit = 2,
  ) {}

  /** The kept root whose chain is the longest prefix of `chain`, out of the pool (one RUN uses it). */
  take(chain: readonly Digest[]): KeptRoot | undefined {
    let best = -1;
    for (const [i, r] of this.roots.entries()) {
      if (r.chain.length > chain.length || !r.chain.every((d, j) => d === chain[j])) continue;
      if (best < 0 || r.chain.length > this.roots[best]!.chain.length) best = i;
    }
    if (best < 0) return undefined;
    return this.roots.splice(best, 1)[0];
  }

  /**
   * Keep `rootfs` (on the store's file system; nothing mounted in it), which now holds `chain` in
   * `state`: moved into the pool. False when the pool is closed (the build is over): the caller's
   * teardown removes it.
   */
  async keep(rootfs: string, chain: Digest[], state: TreeState): Promise<boolean> {
    if (this.closed) return false;
    this.dir ??= createRunDir(this.storeRoot, 'roots');
    const dir = path.join(this.dir, String(this.n++));
    renameSync(rootfs, dir);
    this.roots.push({ dir, chain, state });
    while (this.roots.length > this.limit) {
      const old = this.roots.shift()!;
      await removeTree(old.dir);
    }
    return true;
  }

  /** The build is over: nothing is kept any more. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Drop every kept root (the end of the build). Roots given back later are not kept. */
  async close(): Promise<void> {
    this.closed = true;
    this.roots = [];
    if (this.dir) await teardownRunDir(this.dir);
    this.dir = undefined;
  }
}

/**
 * What a run made in the root before it ran (mount-point stubs, the bare backend's files), with the
 * times of the directories they were made in as they were before: a kept root loses them again.
 */
export class Scaffold {
  /** Paths (relative), in the order they were made (parents first). */
  readonly made: string[] = [];
  /** Directories that got a made entry, with their times before (ns). */
  readonly parents = new Map<string, { atimeNs: bigint; mtimeNs: bigint }>();
  private readonly madeSet = new Set<string>();

  constructor(private readonly root: string) {}

  /** Told just before `rel` is made. */
  making = (rel: string): void => {
    const parent = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    if (!this.madeSet.has(parent) && !this.parents.has(parent)) {
      const st = lstatSync(path.join(this.root, parent), { bigint: true });
      this.parents.set(parent, { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs });
    }
    this.made.push(rel);
    this.madeSet.add(rel);
  };

  /** The paths whose state making changed: what `refreshState` reads again. */
  touched(): string[] {
    return [...this.made, ...this.parents.keys()];
  }
}

/** Seconds (a number utimes takes) of a time in ns: whole seconds stay exact. */
const secs = (ns: bigint) => Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;

/**
 * Make a root a successful RUN left (its changes found, its layer written) the state a fresh
 * flatten of the layers with the new one on top would be, and return that state, `after` (the
 * walk's) updated where settling changed something. `foreignXattrs`: entries (relative) with
 * xattrs a layer does not carry, as the tar listed them.
 */
export function settleKeptRoot(
  root: string,
  changes: Change[],
  after: TreeState,
  o: {
    scaffold?: Scaffold;
    sourceDateEpoch?: number;
    foreignXattrs: [string, string[]][];
    /** Directories whose times no layer sets (the host-root backend's, above what it keeps). */
    timesAsFound?: (rel: string) => boolean;
  },
): TreeState {
  const { scaffold = new Scaffold(root), sourceDateEpoch, foreignXattrs } = o;
  const adds = changes.filter((c) => c.kind === 'add').map((c) => c.path);
  const added = new Set(adds);
  // The times the tar wrote, read before anything below is removed (a removal moves its parent's).
  const times = new Map<string, number>();
  const sockets: string[] = [];
  for (const p of adds) {
    const st = lstatSync(path.join(root, p), { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isSocket()) sockets.push(p);
    if (o.timesAsFound?.(p)) continue;
    const m = Math.floor(st.mtimeMs / 1000);
    times.set(p, sourceDateEpoch !== undefined && m > sourceDateEpoch ? sourceDateEpoch : m);
  }
  const touched = new Set<string>();
  for (const p of sockets) {
    unlinkSync(path.join(root, p));
    times.delete(p);
    touched.add(p);
  }
  // The stubs the layer does not hold, deepest first; what is left of them is in the layer.
  for (const rel of [...scaffold.made].reverse()) {
    if (added.has(rel)) continue;
    const abs = path.join(root, rel);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    touched.add(rel);
    if (!st) continue; // the run removed it (a whiteout of what the image never had)
    if (st.isDirectory()) rmdirSync(abs);
    else unlinkSync(abs);
  }
  for (const [rel, names] of foreignXattrs) {
    for (const n of names.filter((x) => !layerKeepsXattr(x))) {
      try {
        xattr().removeAttributeSync(path.join(root, rel), n);
      } catch {
        // gone, or a name the tar saw only: the state walk below reads what is there
      }
      touched.add(rel);
    }
  }
  // Times: children before their parents (setting a parent's after its children is final).
  for (const p of [...times.keys()].sort(comparePaths).reverse()) {
    const t = times.get(p)!;
    lutimesSync(path.join(root, p), t, t);
  }
  for (const [rel, t] of scaffold.parents) {
    if (added.has(rel) || !lstatSync(path.join(root, rel), { throwIfNoEntry: false })) continue;
    lutimesSync(path.join(root, rel), secs(t.mtimeNs), secs(t.mtimeNs));
    touched.add(rel);
  }
  refreshState(root, after, [...adds, ...touched, ...scaffold.touched()]);
  return after;
}

/**
 * KILN_CHECK_KEPT_ROOT: `root` against `fresh` (the same chain flattened afresh) — every entry's
 * type, mode, owner, size, mtime, link target, carried xattrs and content. The first difference,
 * or undefined.
 */
export function compareRoots(root: string, fresh: string): string | undefined {
  const walk = (rel: string): string | undefined => {
    const a = readdirSync(path.join(root, rel)).sort();
    const b = readdirSync(path.join(fresh, rel)).sort();
    if (a.join('\0') !== b.join('\0')) {
      const only = a.filter((x) => !b.includes(x)).map((x) => `+${x}`);
      const missing = b.filter((x) => !a.includes(x)).map((x) => `-${x}`);
      return `/${rel}: entries differ (${[...only, ...missing].slice(0, 5).join(' ')})`;
    }
    for (const name of a) {
      const r = rel ? `${rel}/${name}` : name;
      const [pa, pb] = [path.join(root, r), path.join(fresh, r)];
      const [sa, sb] = [lstatSync(pa), lstatSync(pb)];
      const desc = (s: typeof sa) =>
        `${s.mode} ${s.uid}:${s.gid} ${s.isDirectory() ? '' : s.size} ${Math.floor(s.mtimeMs / 1000)}`;
      if (desc(sa) !== desc(sb)) return `/${r}: ${desc(sa)} (kept) vs ${desc(sb)} (fresh)`;
      if (sa.isSymbolicLink()) {
        if (readlinkSync(pa) !== readlinkSync(pb)) return `/${r}: link targets differ`;
        continue;
      }
      const xa = xattrFingerprint(pa, layerKeepsXattr);
      if (xa !== xattrFingerprint(pb, layerKeepsXattr)) return `/${r}: xattrs differ (${xa} kept)`;
      if (sa.isFile() && !sameContent(pa, pb)) return `/${r}: contents differ`;
      if (sa.isDirectory()) {
        const d = walk(r);
        if (d) return d;
      }
    }
    return undefined;
  };
  return walk('');
}

/** The state a root holds, checked against a walk (KILN_CHECK_KEPT_ROOT): the first difference. */
export function compareState(root: string, state: TreeState, skip?: (rel: string) => boolean): string | undefined {
  const walked = snapshotTree(root, skip);
  for (const [p, fp] of walked) if (state.get(p) !== fp) return `/${p}: ${state.get(p) ?? 'absent'} vs ${fp} (walk)`;
  for (const p of state.keys()) if (!walked.has(p)) return `/${p}: in the state, not in the tree`;
  return undefined;
}

/** Move a kept root into place as a run's rootfs (an empty directory made for it, or none). */
export function placeKeptRoot(kept: KeptRoot, rootfs: string): void {
  try {
    rmdirSync(rootfs);
  } catch {
    // not made yet
  }
  mkdirSync(path.dirname(rootfs), { recursive: true });
  renameSync(kept.dir, rootfs);
}
