/**
 * Root filesystems for a process: overlayfs over the image's unpacked layer snapshots (a fresh
 * upper dir holds the changes), or a native fallback (a flattened copy, diffed afterwards) where
 * overlayfs cannot be mounted. Either way the result is a list of changes for layer/tarChanges.
 */
import { lstatSync, mkdirSync, readdirSync, symlinkSync, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type { Change } from '../layer/write.js';
import { runCapture } from '../util/proc.js';
import { KilnError } from '../util/errors.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as { getAttributeSync(p: string, n: string): Buffer };

export type SnapshotterKind = 'overlay' | 'native';

/**
 * Mount an overlay at `target`. Lower dirs are given bottom → top. The lowerdir option is made of
 * short names of symlinks in `runDir` (mount resolves them relative to its cwd), so 127 layers fit
 * in the one page the kernel allows for mount options.
 */
export async function mountOverlay(lowers: string[], runDir: string, upper: string, work: string, target: string): Promise<void> {
  const links = path.join(runDir, 'l');
  mkdirSync(links, { recursive: true });
  lowers.forEach((dir, i) => symlinkSync(dir, path.join(links, String(i))));
  const lowerOpt = lowers.map((_, i) => `l/${i}`).reverse().join(':');
  // overlayfs needs at least one lower dir: an empty one stands for scratch.
  const opt = lowers.length ? lowerOpt : 'l/empty';
  if (!lowers.length) mkdirSync(path.join(links, 'empty'));
  // No upper dir: a read-only view.
  const rw = upper ? `,upperdir=${path.relative(runDir, upper)},workdir=${path.relative(runDir, work)}` : '';
  const r = await runCapture('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${opt}${rw},index=off,metacopy=off,redirect_dir=off`, target], { cwd: runDir });
  if (r.code !== 0) throw new KilnError('SANDBOX', `cannot mount overlayfs: ${r.stderr.trim()}`, { path: target }, { hint: 'use --snapshotter native where overlayfs is not available (e.g. inside an unprivileged container)' });
}

export async function unmount(target: string): Promise<void> {
  const r = await runCapture('umount', [target]);
  if (r.code !== 0) {
    const lazy = await runCapture('umount', ['-l', target]);
    if (lazy.code !== 0 && !/not mounted|no mount point/.test(lazy.stderr)) throw new KilnError('SANDBOX', `cannot unmount ${target}: ${lazy.stderr.trim()}`);
  }
}

let overlayUsable: boolean | undefined;
/** Can this process mount overlayfs? (probed once) */
export async function canMountOverlay(scratch: string): Promise<boolean> {
  if (overlayUsable !== undefined) return overlayUsable;
  const d = path.join(scratch, `probe-${process.pid}`);
  try {
    for (const s of ['lower', 'upper', 'work', 'merged']) mkdirSync(path.join(d, s), { recursive: true });
    const r = await runCapture('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/lower,upperdir=${d}/upper,workdir=${d}/work`, `${d}/merged`]);
    overlayUsable = r.code === 0;
    if (overlayUsable) await unmount(`${d}/merged`);
  } catch {
    overlayUsable = false;
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
  return overlayUsable;
}

/** Changes recorded in an overlay upper dir: no walk of the lower filesystem. */
export function diffUpper(upper: string, exclude: Set<string>): Change[] {
  const out: Change[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(upper, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (exclude.has(r)) continue;
      const abs = path.join(upper, r);
      const st = lstatSync(abs);
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ kind: 'delete', path: r });
        continue;
      }
      out.push({ kind: 'add', path: r });
      if (st.isDirectory()) {
        let opaque = false;
        try {
          opaque = xattr.getAttributeSync(abs, 'trusted.overlay.opaque').toString() === 'y';
        } catch {
          opaque = false;
        }
        if (opaque) out.push({ kind: 'opaque', path: r });
        walk(r);
      }
    }
  };
  walk('');
  return out;
}

/** What the native snapshotter remembers of each path before the process runs. */
export type TreeState = Map<string, string>;

function fingerprint(st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o';
  // Directory sizes and mtimes change with their entries; their own metadata is mode and owner.
  if (type === 'd') return `d ${st.mode} ${st.uid} ${st.gid}`;
  return `${type} ${st.mode} ${st.uid} ${st.gid} ${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino} ${st.rdev}`;
}

export function snapshotTree(root: string, exclude: Set<string>): TreeState {
  const state: TreeState = new Map();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (exclude.has(r)) continue;
      const st = lstatSync(path.join(root, r));
      state.set(r, fingerprint(st));
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return state;
}

/** Native snapshotter: compare the tree after the run with its state before (same changes as overlay would record). */
export function diffTrees(root: string, before: TreeState, exclude: Set<string>): Change[] {
  const after = snapshotTree(root, exclude);
  const changed = new Set<string>();
  const addWithParents = (p: string) => {
    for (let cur = p; cur !== '.' && cur !== ''; cur = path.posix.dirname(cur)) {
      if (changed.has(cur)) break;
      changed.add(cur);
    }
  };
  for (const [p, fp] of after) if (before.get(p) !== fp) addWithParents(p);
  const out: Change[] = [];
  for (const p of before.keys()) {
    if (after.has(p)) continue;
    const parent = path.posix.dirname(p);
    if (parent !== '.' && !after.has(parent)) continue; // the whole parent went: one whiteout for it
    out.push({ kind: 'delete', path: p });
    if (parent !== '.') addWithParents(parent);
  }
  for (const p of changed) out.push({ kind: 'add', path: p });
  return out;
}
