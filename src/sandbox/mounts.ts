/**
 * Extra mounts of a run — what `kiln run -v` and RUN --mount need — turned into plain binds and
 * tmpfs mounts for the backends:
 * - bind: a host file or directory at `target`, read-only, read-write (writes reach the source:
 *   `kiln run -v`), or read-write with its writes thrown away after the run (`discardWrites`:
 *   RUN --mount=type=bind,rw) through an overlay over the source (a copy where overlayfs cannot be
 *   mounted, or for a single file);
 * - tmpfs: a fresh tmpfs (`size` bytes at most);
 * - cache: a host directory kept between runs (RUN --mount=type=cache), made with `uid`, `gid` and
 *   `mode` when missing.
 * Nothing of a mount ever reaches the layer: their mount points come from stubs outside it.
 */
import { existsSync, mkdirSync, chmodSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError, runCapture, lchownInNamespace } from '../util/index.js';
import { mountOverlay } from './rootfs.js';
import type { RuntimeMount } from './runtime.js';

export interface Mount {
  type: 'bind' | 'tmpfs' | 'cache';
  /** bind: a host file or directory; cache: a host directory kept between runs (made when missing). */
  source?: string;
  /** Absolute path inside the container. */
  target: string;
  readonly?: boolean;
  /** bind that is not read-only: the process may write, its writes are discarded after the run. */
  discardWrites?: boolean;
  /** tmpfs: size in bytes (default: the kernel's, half the memory). */
  size?: number;
  /** cache: owner and mode of the directory when kiln makes it (default 0:0, 0755). */
  uid?: number;
  gid?: number;
  mode?: number;
}

/** Is the mount's target a file (a bind of a file) rather than a directory? */
export function mountsFile(m: Mount): boolean {
  return m.type === 'bind' && !!m.source && existsSync(m.source) && !statSync(m.source).isDirectory();
}

/** Check what callers give (clear errors before anything is set up). */
export function validateMounts(mounts: Mount[]): void {
  const seen = new Set<string>();
  for (const m of mounts) {
    if (!m.target.startsWith('/') || m.target.includes('\0'))
      throw new KilnError('USAGE', `mount target must be an absolute path: "${m.target}"`);
    const t = path.posix.normalize(m.target).replace(/\/+$/, '') || '/';
    if (t === '/') throw new KilnError('USAGE', 'cannot mount over the root directory "/"');
    if (seen.has(t)) throw new KilnError('USAGE', `duplicate mount point: ${t}`);
    seen.add(t);
    if (m.type === 'bind' || m.type === 'cache') {
      if (!m.source || !path.isAbsolute(m.source))
        throw new KilnError('USAGE', `${m.type} mount at ${t} needs an absolute host source path`);
      if (m.type === 'bind' && !existsSync(m.source))
        throw new KilnError('NOT_FOUND', `bind source path does not exist: ${m.source}`, { path: m.source });
    } else if (m.type !== 'tmpfs') {
      throw new KilnError('USAGE', `unknown mount type "${(m as { type: string }).type}"`);
    }
  }
}

/**
 * Make the mounts ready under `runDir` (overlays and copies for discarded writes, cache dirs) and
 * return them as the backends take them, parents before children. `realTarget` maps a target to
 * its real path in the rootfs (the image's symlinks resolved). Whatever is mounted here lives under
 * `runDir` and goes with its teardown.
 */
export async function prepareMounts(
  mounts: Mount[],
  runDir: string,
  overlay: boolean,
  realTarget: (t: string) => string,
): Promise<RuntimeMount[]> {
  const out: RuntimeMount[] = [];
  for (const [i, m] of mounts.entries()) {
    const target = realTarget(m.target);
    if (m.type === 'tmpfs') {
      out.push({ type: 'tmpfs', target, size: m.size });
      continue;
    }
    const source = m.source!;
    if (m.type === 'cache') {
      if (!existsSync(source)) {
        mkdirSync(source, { recursive: true });
        chmodSync(source, m.mode ?? 0o755);
        lchownInNamespace(source, m.uid ?? 0, m.gid ?? 0);
      }
      out.push({ type: 'bind', source, target, readonly: m.readonly });
      continue;
    }
    if (m.readonly || !m.discardWrites) {
      out.push({ type: 'bind', source, target, readonly: !!m.readonly });
      continue;
    }
    // Writable, writes discarded: an overlay over the source, or a copy of it.
    const dir = path.join(runDir, 'mounts', String(i));
    mkdirSync(dir, { recursive: true });
    if (overlay && statSync(source).isDirectory()) {
      for (const d of ['upper', 'work', 'merged']) mkdirSync(path.join(dir, d));
      await mountOverlay([source], dir, path.join(dir, 'upper'), path.join(dir, 'work'), path.join(dir, 'merged'));
      out.push({ type: 'bind', source: path.join(dir, 'merged'), target });
    } else {
      const copy = path.join(dir, 'copy');
      const r = await runCapture('cp', ['-a', '--reflink=auto', '--', source, copy]);
      if (r.code !== 0)
        throw new KilnError('SANDBOX', `cannot copy ${source} for a writable bind mount: ${r.stderr.trim()}`, {
          path: source,
        });
      out.push({ type: 'bind', source: copy, target });
    }
  }
  // Parents before children (a bind under a tmpfs goes on top of it), as docker sorts them.
  const depth = (t: string) => t.split('/').filter(Boolean).length;
  return out
    .map((m, i) => ({ m, i }))
    .sort((a, b) => depth(a.m.target) - depth(b.m.target) || a.i - b.i)
    .map((x) => x.m);
}
