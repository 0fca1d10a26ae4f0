/**
 * A read-only view of an image's filesystem (for COPY --from, USER/--chown name resolution, and
 * checking what exists before COPY/WORKDIR): a lower-dirs-only overlay of its snapshots, or a
 * flattened copy where overlayfs cannot be mounted.
 */
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import * as path from 'node:path';
import { type Descriptor } from '../image/index.js';
import { chainIds, type Digest, lchownInNamespace } from '../util/index.js';
import { applyLayer, type SkeletonEntry } from '../layer/index.js';
import { type Store } from '../store/index.js';
import { canMountOverlay, mountOverlay } from './rootfs.js';
import { cleanupStaleRuns, createRunDir, runRoot, teardownRunDir } from './rundir.js';
import { dirFs, type FsLayer, layeredFs, overlayMarkers, resolveInFs, type RootFs } from './root-fs.js';

export interface View {
  root: string;
  close(): Promise<void>;
}

export interface ViewOptions {
  /**
   * The view only answers questions about these absolute paths (what they are, their parent
   * directories) and /etc/passwd, /etc/group. A layer kiln made from known entries (its facts say
   * where it writes) with no snapshot yet is unpacked for them alone, in the view's own directory,
   * or not read at all when it writes elsewhere; a base image's layer gets its snapshot. For a
   * COPY's or a WORKDIR's destination after a COPY of 30,000 files: a second's unpacking saved.
   * What lies elsewhere may be missing from the view, so a symbolic link met on these paths calls
   * for a whole view (see pathsAreLinkFree).
   */
  paths?: string[];
  /**
   * With `paths`: every layer's snapshot is made first (a RUN of the stage will need them all), so
   * the view is merged from snapshots alone; a symbolic link met still calls for a whole view.
   */
  snapshotsAhead?: boolean;
}

/** A read-only view of the image made of `layers` (empty for scratch). Close it when done. */
export async function openView(
  store: Store,
  layers: Descriptor[],
  diffIds: Digest[],
  opts: ViewOptions = {},
): Promise<View> {
  await cleanupStaleRuns(store.root);
  const dir = createRunDir(store.root, 'view');
  const root = path.join(dir, 'rootfs');
  mkdirSync(root, { recursive: true });
  const close = () => teardownRunDir(dir);
  const only = opts.paths ? onlyFor(opts.paths) : undefined;
  try {
    if (layers.length === 0) return { root, close };
    if (await canMountOverlay(runRoot(store.root))) {
      const lowers: string[] = [];
      if (!only) lowers.push(...(await store.snapshots(layers, diffIds)));
      else {
        if (opts.snapshotsAhead) await store.snapshots(layers, diffIds);
        const wanted = wantedPaths(opts.paths!);
        const wantedTops = new Set(wanted.map(topOf));
        const chains = chainIds(diffIds);
        for (const [i, l] of layers.entries()) {
          const snapshot = store.snapshotDir(chains[i]!);
          if (await store.hasSnapshot(diffIds.slice(0, i + 1))) {
            lowers.push(snapshot);
            continue;
          }
          const facts = await store.layerFacts(l.digest);
          const tops = facts?.tops;
          const skeleton = facts?.skeleton && skeletonAnswers(facts.skeleton, wanted, only);
          if (skeleton) {
            // What the layer holds on the wanted paths is in its skeleton: made from it, not read.
            if (skeleton.length) lowers.push(makeSkeleton(path.join(dir, `part-${i}`), skeleton));
          } else if (!tops) {
            // A layer kiln did not write (a base image's): its snapshot is worth making, once, for
            // this build and the next ones.
            lowers.push((await store.snapshots(layers.slice(0, i + 1), diffIds.slice(0, i + 1))).at(-1)!);
          } else if (tops.every((t) => !wantedTops.has(t))) {
            // Nothing of this layer lies on the wanted paths (its facts say where it writes): not read.
          } else {
            const part = path.join(dir, `part-${i}`);
            await applyLayer(store.openBlob(l.digest), part, {
              whiteouts: 'overlay',
              expectedDiffId: diffIds[i],
              only,
            });
            lowers.push(part);
          }
        }
      }
      // Every layer lies off the wanted paths (a scratch stage's COPY to /a, then one to /b): the
      // view of those paths is empty, and overlayfs cannot mount nothing.
      if (lowers.length === 0) return { root, close };
      // The wanted paths merged from the layer dirs as overlayfs merges them, made in the root: no
      // mount and unmount (two processes and the kernel's overlay set-up, ~20-40 ms a view on a
      // small build's critical path, once per COPY and WORKDIR).
      if (only) {
        mergeWanted([...lowers].reverse(), root, wantedPaths(opts.paths!));
        return { root, close };
      }
      // Without an upper dir overlayfs is read-only but wants two lower dirs at least.
      const empty = path.join(dir, 'empty');
      mkdirSync(empty);
      await mountOverlay([empty, ...lowers], dir, '', '', root);
      return { root, close };
    }
    for (const [i, l] of layers.entries())
      await applyLayer(store.openBlob(l.digest), root, { whiteouts: 'apply', expectedDiffId: diffIds[i], only });
    return { root, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** What a COPY or WORKDIR reads of the image below it: its file system, closed when done. */
export interface Destination {
  fs: RootFs;
  close(): Promise<void>;
  /** Read from the layers (layeredDestination), no view made. */
  layered?: boolean;
}

/**
 * The file system a partial view of `paths` shows (openView with `paths`), read straight from the
 * layers (root-fs.ts's layeredFs) with nothing made on disk and nothing to tear down: a view's
 * run dir, its merged entries and their removal cost 5-20 ms a COPY or WORKDIR on a small build's
 * critical path. Each layer is read as openView would read it: its snapshot; its skeleton (a
 * layer kiln wrote, not unpacked yet, whose facts answer for the paths); nothing (a layer that
 * writes elsewhere); a base image's layer gets its snapshot made. It answers for `paths`, their
 * parents and the user and group files alone, as a partial view; when a symbolic link is met on
 * them (destinationView then opens a whole view), the whole file system if every layer is a
 * snapshot (links followed anywhere in it, as through a whole view), else 'links': open a whole
 * view. Undefined when a layer would have to be unpacked, or where overlayfs is not what views
 * use (the snapshots are not in its marker form): open a view.
 */
export async function layeredDestination(
  store: Store,
  layers: Descriptor[],
  diffIds: Digest[],
  paths: string[],
  snapshotsAhead: boolean,
): Promise<Destination | 'links' | undefined> {
  const close = () => Promise.resolve();
  if (layers.length === 0) return { fs: layeredFs([]), close, layered: true };
  if (!(await canMountOverlay(runRoot(store.root)))) return undefined;
  if (snapshotsAhead) await store.snapshots(layers, diffIds);
  const wanted = wantedPaths(paths);
  const wantedTops = new Set(wanted.map(topOf));
  const only = onlyFor(paths);
  const chains = chainIds(diffIds);
  const lowers: FsLayer[] = [];
  let whole = true;
  for (const [i, l] of layers.entries()) {
    if (await store.hasSnapshot(diffIds.slice(0, i + 1))) {
      lowers.push(store.snapshotDir(chains[i]!));
      continue;
    }
    const facts = await store.layerFacts(l.digest);
    const tops = facts?.tops;
    const skeleton = facts?.skeleton && skeletonAnswers(facts.skeleton, wanted, only);
    if (skeleton) {
      whole = false;
      if (skeleton.length) lowers.push(skeleton);
    } else if (tops && tops.every((t) => !wantedTops.has(t))) whole = false;
    else if (!tops || (whole && l.size <= SNAPSHOT_FOR_DESTINATION))
      // A base image's layer, or a small one of kiln's (a WORKDIR's directory, a COPY of a few
      // files: a few KB) on the paths, every layer below a snapshot: its snapshot is worth making,
      // once, for this build and the next ones (a rebuild's COPY onto it then reads it as it is).
      lowers.push((await store.snapshots(layers.slice(0, i + 1), diffIds.slice(0, i + 1))).at(-1)!);
    else return undefined;
  }
  const top = lowers.reverse();
  // As a partial view, then pathsAreLinkFree on it: it answers for the wanted paths alone; a link
  // on the way may lead where it knows nothing: the whole file system then, as a whole view.
  const fs = layeredFs(top, only);
  for (const w of wanted) {
    let real: string | undefined;
    try {
      real = resolveInFs(fs, `/${w}`);
    } catch {
      real = undefined;
    }
    if (real !== w) return whole ? { fs: layeredFs(top), close, layered: true } : 'links';
  }
  return { fs, close, layered: true };
}

/** The largest layer of kiln's a destination's read makes a snapshot of (bytes of its blob). */
const SNAPSHOT_FOR_DESTINATION = 256 * 1024;

/** Views closed by closeViewLater whose teardown has not finished. */
const closing = new Set<Promise<void>>();
let closeError: unknown;

/**
 * Close a view off the caller's path: a build step is done with it, and its teardown (a read-only
 * overlay's unmount waits for the kernel's RCU grace period, 10-80 ms on a busy machine; then the
 * run dir's removal) overlaps the next steps instead of delaying them. settleViews awaits it.
 */
export function closeViewLater(view: { close(): Promise<void> }): void {
  const p: Promise<void> = view
    .close()
    .catch((e: unknown) => void (closeError ??= e))
    .finally(() => closing.delete(p));
  closing.add(p);
}

/** Every view closeViewLater took torn down; the first teardown that failed throws (once). */
export async function settleViews(): Promise<void> {
  while (closing.size) await Promise.all([...closing]);
  const e = closeError;
  closeError = undefined;
  if (e !== undefined) throw e;
}

/** A layer dir's entry as the merge met it. */
interface Met {
  host: string;
  stat: Stats;
}

/**
 * Make in `root` the entries overlayfs would show at `wanted` (relative paths) and their parents,
 * from `top` (layer dirs in the snapshots' overlay form, top first): directories with their mode,
 * owner and times, symbolic links, regular files with their content. A name is looked up in the
 * layers its parent directory merges (overlayfs' lower stack): the topmost entry wins; a whiteout
 * (a 0/0 character device, or an empty file marked so) hides it; a directory merges the layers
 * below it until an opaque one or a non-directory. Nothing is looked up below a symbolic link (it
 * is made as a link: pathsAreLinkFree then asks for a whole view).
 */
export function mergeWanted(top: string[], root: string, wanted: string[]): void {
  const markers = overlayMarkers();
  const isWhiteout = (m: Met) => markers.isWhiteout(m.host, m.stat);
  // rel → the layers its directory merges (top first); undefined: no directory there.
  const stacks = new Map<string, string[] | undefined>([['', top]]);
  const made: { rel: string; stat: Stats }[] = [];
  const lookup = (rel: string): string[] | undefined => {
    if (stacks.has(rel)) return stacks.get(rel);
    const parent = lookup(rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
    let stack: string[] | undefined;
    if (parent) {
      let first: Met | undefined;
      for (const layer of parent) {
        const host = path.join(layer, rel);
        let st: Stats;
        try {
          st = lstatSync(host);
        } catch {
          continue;
        }
        if (!first) {
          first = { host, stat: st };
          if (isWhiteout(first)) break;
          make(root, rel, first);
          made.push({ rel, stat: st });
          if (!st.isDirectory()) break;
          stack = [layer];
        } else if (!st.isDirectory()) break;
        else stack!.push(layer);
        if (markers.isOpaque(host)) break;
      }
    }
    stacks.set(rel, stack);
    return stack;
  };
  for (const w of wanted) {
    const parts = w.split('/').filter((x) => x && x !== '.');
    for (let i = 1; i <= parts.length; i++) if (!lookup(parts.slice(0, i).join('/'))) break;
  }
  // Modes and times last, deepest first: making a child moves its parent's mtime.
  for (const { rel, stat } of made.reverse()) {
    const p = path.join(root, rel);
    if (!stat.isSymbolicLink()) chmodSync(p, stat.mode & 0o7777);
    lutimesSync(p, stat.atime, stat.mtime);
  }
}

function make(root: string, rel: string, m: Met): void {
  const p = path.join(root, rel);
  if (m.stat.isDirectory()) mkdirSync(p, { mode: 0o700 });
  else if (m.stat.isSymbolicLink()) symlinkSync(readlinkSync(m.host), p);
  else if (m.stat.isFile()) copyFileSync(m.host, p);
  // A device, fifo or socket on a wanted path: an empty file stands for it (only its being there
  // and not a directory can matter to a COPY or WORKDIR destination).
  else writeFileSync(p, '');
  lchownInNamespace(p, m.stat.uid, m.stat.gid);
}

/**
 * The top layer's snapshot directory, when each of `paths` (relative, literal) is a directory the
 * top layer holds (its parents real directories there) and no layer below holds at all: such a
 * directory is not merged with anything, so its tree in a view of these layers is the snapshot's own
 * (same entries, same lstat but st_dev; no whiteout can lie in it, as nothing below it was deleted).
 * Walking it there spares a fresh overlay mount's lookups: 30,000 lstats cost about 0.14 s of CPU
 * on the snapshot, 0.25 s through the overlay. Undefined when any of that is not so, or a snapshot is
 * missing. `viewRoot`: an open view of the layers, which must then show the snapshot's directory
 * (a check only: what is said above makes it so).
 */
export function topLayerRoot(store: Store, diffIds: Digest[], paths: string[], viewRoot?: string): string | undefined {
  const chains = chainIds(diffIds);
  const top = chains.at(-1);
  if (top === undefined || paths.length === 0) return undefined;
  const topDir = store.snapshotDir(top);
  const lstat = (p: string) => {
    try {
      return lstatSync(p);
    } catch {
      return undefined;
    }
  };
  for (const p of paths) {
    const parts = path.posix.normalize(`/${p}`).slice(1).replace(/\/+$/, '').split('/');
    if (parts[0] === '' || parts.some((c) => c === '..' || c === '.')) return undefined;
    // Every component a real directory in the top layer (no link to follow).
    for (let i = 1; i <= parts.length; i++)
      if (!lstat(path.join(topDir, ...parts.slice(0, i)))?.isDirectory()) return undefined;
    // Held by no layer below: each stops at a missing or non-directory component on the way.
    for (const c of chains.slice(0, -1)) {
      const dir = store.snapshotDir(c);
      if (!lstat(dir)?.isDirectory()) return undefined;
      for (let i = 1; i <= parts.length; i++) {
        const st = lstat(path.join(dir, ...parts.slice(0, i)));
        if (!st || (i < parts.length && !st.isDirectory())) break;
        if (i === parts.length) return undefined;
      }
    }
    // And the view shows that very directory.
    if (viewRoot === undefined) continue;
    const inView = lstat(path.join(viewRoot, ...parts));
    const inTop = lstat(path.join(topDir, ...parts));
    if (!inView?.isDirectory() || !inTop || inView.ino !== inTop.ino) return undefined;
  }
  return topDir;
}

/** The first component of a path ("" for the root). */
export function topOf(p: string): string {
  // Called for every entry of a layer (its facts' top-level names): no regex, no split.
  let start = 0;
  while (p.charCodeAt(start) === 0x2f) start++;
  const end = p.indexOf('/', start);
  return end < 0 ? p.slice(start) : p.slice(start, end);
}

/** The paths a partial view answers for (relative): the given ones, the user and group files. */
function wantedPaths(paths: string[]): string[] {
  return [...paths.map((p) => path.posix.normalize(`/${p}`).slice(1).replace(/\/+$/, '')), 'etc/passwd', 'etc/group'];
}

/** The entries a partial view keeps: the wanted paths and their ancestors. */
function onlyFor(paths: string[]): (rel: string) => boolean {
  const wanted = wantedPaths(paths);
  return (rel) => wanted.some((w) => w === rel || w.startsWith(`${rel}/`));
}

/**
 * The skeleton entries a partial view needs from a layer, or undefined when the skeleton cannot
 * tell (a wanted path lies inside its root, or a file on the way would need its content).
 */
function skeletonAnswers(
  k: { root: string; entries: SkeletonEntry[] },
  wanted: string[],
  only: (rel: string) => boolean,
): SkeletonEntry[] | undefined {
  if (wanted.some((w) => w.startsWith(`${k.root}/`))) return undefined;
  const needed = k.entries.filter((e) => only(e.path));
  return needed.every((e) => e.type === 'directory' || e.type === 'symlink') ? needed : undefined;
}

/** Directories and links as an unpacker makes them (owner, mode, times; parents as mkdir -p). */
function makeSkeleton(dir: string, entries: SkeletonEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const e of sorted) {
    const p = path.join(dir, e.path);
    mkdirSync(path.dirname(p), { recursive: true });
    if (e.type === 'symlink') symlinkSync(e.linkname ?? '', p);
    else {
      mkdirSync(p, { recursive: true });
      chmodSync(p, e.mode & 0o7777);
    }
    lchownInNamespace(p, e.uid, e.gid);
  }
  // Times last, deepest first: making a child moves its parent's mtime.
  for (const e of sorted.reverse()) lutimesSync(path.join(dir, e.path), e.mtime, e.mtime);
  return dir;
}

/** In a partial view: `p` resolves to itself (no symbolic link on the way, which could lead out of what the view holds). */
export async function pathsAreLinkFree(root: string, paths: string[]): Promise<boolean> {
  for (const p of paths)
    if ((await resolveInRoot(root, p)) !== path.posix.normalize(`/${p}`).slice(1).replace(/\/+$/, '')) return false;
  return true;
}

/**
 * Resolve `p` (absolute, inside the image) following symlinks the way the container would, but
 * never leaving `root`: the real path inside the image, as a path relative to root (root-fs.ts's
 * walk, on the directory).
 */
export async function resolveInRoot(root: string, p: string): Promise<string> {
  return resolveInFs(dirFs(root), p);
}
