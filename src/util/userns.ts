/**
 * Which user namespace this process runs in, and what follows from it for the files kiln writes.
 *
 * A rootless kiln (cli/rootless.ts) runs as root of a user namespace that maps the user's
 * subordinate ids: there it owns files as any mapped id, mounts overlayfs (Linux ≥ 5.11) and runs
 * runc, as root does on the host. Two things differ, and both are decided here, once:
 * - overlayfs keeps its markers (opaque directories, xattr whiteouts, copy-up bookkeeping) in
 *   `user.overlay.*` xattrs (mount option `userxattr`): `trusted.*` needs CAP_SYS_ADMIN of the
 *   initial namespace;
 * - in the single-id mode (a user without subordinate ids: only root is mapped, to the user),
 *   nothing can be owned by another id: files are kept as root's, as the label says.
 */
import { lchownSync, readFileSync } from 'node:fs';
import { KilnError } from './errors.js';

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

export interface UserNamespaceInfo {
  /** Not the initial namespace (its map is not the identity over all 2^32 ids). */
  nested: boolean;
  uids: IdRange[];
  gids: IdRange[];
}

export function parseIdMap(text: string): IdRange[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every((n) => Number.isFinite(n)))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }));
}

let cached: UserNamespaceInfo | undefined;
export function userNamespace(): UserNamespaceInfo {
  if (cached) return cached;
  const read = (f: string) => {
    try {
      return parseIdMap(readFileSync(f, 'utf8'));
    } catch {
      return [{ inside: 0, outside: 0, count: 4294967295 }];
    }
  };
  const uids = read('/proc/self/uid_map');
  const gids = read('/proc/self/gid_map');
  const identity = (m: IdRange[]) =>
    m.length === 1 && m[0]!.inside === 0 && m[0]!.outside === 0 && m[0]!.count === 4294967295;
  cached = { nested: !identity(uids), uids, gids };
  return cached;
}

/** Is `id` mapped in `ranges` (an id outside them cannot own a file here)? */
export function idMapped(ranges: IdRange[], id: number): boolean {
  return ranges.some((r) => id >= r.inside && id < r.inside + r.count);
}

/**
 * The xattr prefix overlayfs uses for its markers here: `user.overlay.` in a user namespace
 * (mounted with `userxattr`), `trusted.overlay.` on the host. A store's snapshots are made and read
 * by the same kind of kiln (a rootless store is the user's own), so one prefix serves a store.
 */
export function overlayXattrPrefix(): string {
  return userNamespace().nested ? 'user.overlay.' : 'trusted.overlay.';
}

/**
 * Single-id mode: only one id is mapped (a user without subordinate ids). Files that a layer says
 * belong to another id are kept as root's; a RUN as another user runs as root.
 */
export function singleIdMode(): boolean {
  const ns = userNamespace();
  return ns.nested && ns.uids.reduce((n, r) => n + r.count, 0) <= 1;
}

/**
 * lchown as the namespace allows: in the single-id mode a file stays root's (the only id there);
 * an id the namespace does not map is a clear error (the subordinate range is too small).
 */
export function lchownInNamespace(p: string, uid: number, gid: number): void {
  if (singleIdMode()) return;
  try {
    lchownSync(p, uid, gid);
  } catch (e) {
    const ns = userNamespace();
    if (
      (e as NodeJS.ErrnoException).code === 'EINVAL' &&
      ns.nested &&
      (!idMapped(ns.uids, uid) || !idMapped(ns.gids, gid))
    ) {
      throw new KilnError(
        'SANDBOX',
        `cannot own ${p} as ${uid}:${gid}: this rootless user namespace maps ids 0-${Math.max(...ns.uids.map((r) => r.inside + r.count)) - 1} only`,
        { path: p },
        {
          hint: 'give the user a larger range in /etc/subuid and /etc/subgid (65536 ids at least; 2^31 for images with very high ids)',
        },
      );
    }
    throw e;
  }
}
