/**
 * An image's file system read straight from its layers' snapshot directories (overlay-marker form,
 * as overlayfs merges them), with no mount: what a `COPY --from` whose sources lie wholly in the top
 * layer (a builder's output directory) reads besides them, its provenance lookups (dpkg lists,
 * site-packages, a package.json or lockfile). A read-only overlay mount and unmount cost two
 * processes and the kernel's overlay set-up, 10-25 ms on a small build's critical path.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { type Descriptor } from '../image/index.js';
import { type Store } from '../store/index.js';
import { chainIds, type Digest } from '../util/index.js';
import { overlayMarkers } from './root-fs.js';
import { canMountOverlay } from './rootfs.js';
import { runRoot } from './rundir.js';
import { topLayerRoot } from './view.js';

/** Reads of a file system by relative path (no leading '/'), symbolic links followed inside it. */
export interface TreeReader {
  /** A regular file's text; undefined when there is none at `rel`. */
  readFile(rel: string): string | undefined;
  /** A directory's entry names (merged, hidden ones left out); throws ENOENT/ENOTDIR as readdirSync does. */
  readdir(rel: string): string[];
}

/**
 * The file system `top` (layer dirs, top first) shows as an overlay of them: a name is looked up in
 * the layers its parent directory merges, the topmost entry wins, a whiteout hides it, a directory
 * merges the layers below it until an opaque one or a non-directory (as view.ts's mergeWanted).
 */
export function layeredTree(top: string[]): TreeReader {
  const { isWhiteout, isOpaque } = overlayMarkers();
  /** An entry as the merge shows it: its host path (topmost layer), its kind, the layers a directory merges. */
  interface Entry {
    host: string;
    kind: 'dir' | 'link' | 'file' | 'other';
    stack?: string[];
  }
  const kindOf = (st: { isDirectory(): boolean; isSymbolicLink(): boolean; isFile(): boolean }): Entry['kind'] =>
    st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : 'other';
  // Relative path → its entry (undefined: nothing there); the root's directory merges every layer.
  const entries = new Map<string, Entry | undefined>([['', { host: top[0] ?? '/', kind: 'dir', stack: top }]]);
  const notFound = (rel: string, code: 'ENOENT' | 'ENOTDIR') =>
    Object.assign(new Error(`${code}: no such directory in the layers, readdir '${rel}'`), { code });

  /** The entry at `rel` (its parents real directories), looked up once. */
  const entry = (rel: string): Entry | undefined => {
    if (entries.has(rel)) return entries.get(rel);
    const slash = rel.lastIndexOf('/');
    const layers = entry(slash < 0 ? '' : rel.slice(0, slash))?.stack;
    let first: Entry | undefined;
    if (layers) {
      for (const layer of layers) {
        const host = `${layer}/${rel}`;
        let st: Stats;
        try {
          st = lstatSync(host);
        } catch {
          continue;
        }
        if (!first) {
          if (isWhiteout(host, st)) break;
          first = { host, kind: kindOf(st) };
          if (first.kind !== 'dir') break;
          first.stack = [layer];
        } else if (!st.isDirectory()) break;
        else first.stack!.push(layer);
        if (isOpaque(host)) break;
      }
    }
    entries.set(rel, first);
    return first;
  };

  /** `rel` with every symbolic link on the way followed (never above the root): its real relative path. */
  const resolve = (rel: string): string | undefined => {
    const parts = rel.split('/').filter((x) => x && x !== '.');
    const out: string[] = [];
    let hops = 0;
    while (parts.length) {
      const part = parts.shift()!;
      if (part === '..') {
        out.pop();
        continue;
      }
      const e = entry(out.length ? `${out.join('/')}/${part}` : part);
      if (!e) return undefined;
      if (e.kind === 'link') {
        if (++hops > 40) return undefined;
        const target = readlinkSync(e.host);
        if (target.startsWith('/')) out.length = 0;
        parts.unshift(...target.split('/').filter((x) => x && x !== '.'));
        continue;
      }
      out.push(part);
      if (parts.length && e.kind !== 'dir') return undefined;
    }
    return out.join('/');
  };

  return {
    readFile(rel) {
      const real = resolve(rel);
      const e = real ? entry(real) : undefined;
      return e?.kind === 'file' ? readFileSync(e.host, 'utf8') : undefined;
    },
    readdir(rel) {
      const real = resolve(rel);
      if (real === undefined) throw notFound(rel, 'ENOENT');
      const layers = entry(real)?.stack;
      if (!layers) throw notFound(rel, 'ENOTDIR');
      const seen = new Set<string>();
      const names: string[] = [];
      for (const layer of layers) {
        const dir = real ? `${layer}/${real}` : layer;
        for (const d of readdirSync(dir, { withFileTypes: true })) {
          // The topmost entry of a name wins: shown, unless it is a whiteout.
          if (seen.has(d.name)) continue;
          seen.add(d.name);
          const childRel = real ? `${real}/${d.name}` : d.name;
          const host = `${dir}/${d.name}`;
          if (d.isDirectory() || d.isSymbolicLink()) names.push(d.name);
          else if (d.isFile()) {
            // Known now: a file read next (a dpkg list) is not looked up layer by layer again. (An
            // empty file marked as a whiteout is looked for on a lookup, not here: the snapshots
            // views read hold overlay's 0/0 devices, as applyLayer and the kernel make them.)
            names.push(d.name);
            if (!entries.has(childRel)) entries.set(childRel, { host, kind: 'file' });
          } else if (!isWhiteout(host, lstatSync(host))) names.push(d.name);
        }
      }
      return names;
    },
  };
}

/**
 * A `COPY --from` source read with no view: when overlayfs is what views use here (the snapshots are
 * in its marker form) and each of `paths` (literal) is a directory the top layer alone holds
 * (view.ts's topLayerRoot), the top layer's snapshot dir to copy them from and a reader of the
 * whole file system. Undefined otherwise (open a view). The snapshots are made if missing, as a
 * view of the layers would make them.
 */
export async function snapshotSource(
  store: Store,
  layers: Descriptor[],
  diffIds: Digest[],
  paths: string[],
): Promise<{ root: string; tree: TreeReader } | undefined> {
  if (layers.length === 0 || paths.length === 0) return undefined;
  if (!(await canMountOverlay(runRoot(store.root)))) return undefined;
  const dirs = await store.snapshots(layers, diffIds);
  const root = topLayerRoot(store, diffIds, paths);
  return root === undefined ? undefined : { root, tree: layeredTree([...dirs].reverse()) };
}

/**
 * Of `paths` (literal, relative or absolute), those no dpkg list of the image can name a file
 * under, normalized (relative): every layer that holds the path (each component a real directory
 * there, the last anything) left dpkg's database alone (no var/lib/dpkg in its snapshot). dpkg
 * lists the files it unpacks in the step that unpacks them: a step that wrote under the path and
 * not the database installed no package there. A COPY --from of an application's directory then
 * does not search a full Debian image's lists (several MB of text, ~15-25 ms) for each of its
 * files (provenance.ts's SourceOwners `undpkged`). A path is left out when a snapshot is missing.
 */
export function undpkgedPaths(store: Store, diffIds: Digest[], paths: string[]): string[] {
  const dirs = chainIds(diffIds).map((c) => store.snapshotDir(c));
  const exists = (p: string) => {
    try {
      return lstatSync(p);
    } catch {
      return undefined;
    }
  };
  if (dirs.length === 0 || dirs.some((d) => !exists(d)?.isDirectory())) return [];
  const touchedDpkg = dirs.map((d) => exists(`${d}/var/lib/dpkg`) !== undefined);
  const out: string[] = [];
  for (const p of paths) {
    const rel = p.split('/').filter((x) => x && x !== '.');
    if (rel.length === 0 || rel.includes('..')) continue;
    const holds = (d: string) => {
      for (let i = 1; i <= rel.length; i++) {
        const st = exists(`${d}/${rel.slice(0, i).join('/')}`);
        if (!st) return false;
        if (i < rel.length && !st.isDirectory()) return false;
      }
      return true;
    };
    if (dirs.every((d, i) => !touchedDpkg[i] || !holds(d))) out.push(rel.join('/'));
  }
  return out;
}
