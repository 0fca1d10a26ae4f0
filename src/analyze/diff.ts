/**
 * `kiln diff A B`: what changed between two images' filesystems and packages. Regular files of
 * the same size are compared by content digest (every file is hashed during the one streaming
 * pass; a file both images got from the same layer is the same without looking).
 */
import type { FileInfo, FsTree } from './filetree.js';
import type { Package } from './sbom/types.js';
import type { ImageSource } from './source.js';
import { imageSummary, type ImageSummary } from './analyze.js';
import { walkImage } from './walk.js';

export interface FileChange {
  path: string;
  kind: 'added' | 'removed' | 'changed';
  type: string;
  /** Size in A (removed/changed) and in B (added/changed). */
  sizeA?: number;
  sizeB?: number;
  /** What changed for a "changed" entry: content, size, mode, owner, type, link. */
  what?: string[];
}

export interface PackageChange {
  kind: 'added' | 'removed' | 'changed';
  type: Package['type'];
  name: string;
  versionA?: string;
  versionB?: string;
  location: string;
}

export interface ImageDiff {
  a: ImageSummary & { size: number; files: number; packages: number };
  b: ImageSummary & { size: number; files: number; packages: number };
  /** Layers (diff_ids) both images have. */
  sharedLayers: number;
  files: FileChange[];
  summary: Record<'added' | 'removed' | 'changed', { count: number; bytes: number }>;
  packages: PackageChange[];
}

function describeChange(x: FileInfo, y: FileInfo, sameLayerContent: boolean): string[] {
  const what: string[] = [];
  if (x.type !== y.type) what.push('type');
  if (x.size !== y.size) what.push('size');
  else if (
    x.type === 'file' &&
    !sameLayerContent &&
    (x.hash === undefined || y.hash === undefined || x.hash !== y.hash)
  )
    what.push('content');
  if (x.mode !== y.mode) what.push('mode');
  if (x.uid !== y.uid || x.gid !== y.gid) what.push('owner');
  if (x.linkname !== y.linkname) what.push('link');
  return what;
}

function files(tree: FsTree): Map<string, FileInfo> {
  const m = new Map<string, FileInfo>();
  for (const n of tree.walk()) m.set(n.path(), n.info!);
  return m;
}

function pkgKey(p: Package): string {
  return `${p.type}\0${p.name}\0${p.arch ?? ''}\0${p.type === 'deb' || p.type === 'apk' ? '' : p.location}`;
}

export async function diffImages(
  a: ImageSource,
  b: ImageSource,
  opts: { onLayer?: (image: 'a' | 'b', index: number, count: number) => void } = {},
): Promise<ImageDiff> {
  const shared = new Set(a.layers.map((l) => l.diffId).filter((d) => b.layers.some((x) => x.diffId === d)));
  const wa = await walkImage(a, {
    entries: true,
    catalog: true,
    hash: 'all',
    onLayer: (i, n) => opts.onLayer?.('a', i, n),
  });
  const wb = await walkImage(b, {
    entries: true,
    catalog: true,
    hash: 'all',
    onLayer: (i, n) => opts.onLayer?.('b', i, n),
  });
  const fa = files(wa.tree!);
  const fb = files(wb.tree!);
  const out: FileChange[] = [];
  const summary: ImageDiff['summary'] = {
    added: { count: 0, bytes: 0 },
    removed: { count: 0, bytes: 0 },
    changed: { count: 0, bytes: 0 },
  };
  for (const [p, x] of fa) {
    const y = fb.get(p);
    if (!y) {
      out.push({ path: p, kind: 'removed', type: x.type, sizeA: x.size });
      if (x.type !== 'directory') {
        summary.removed.count++;
        summary.removed.bytes += x.size;
      }
      continue;
    }
    // Same layer in both images (by diff_id) means the same bytes.
    const sameLayer = a.layers[x.layer]!.diffId === b.layers[y.layer]!.diffId;
    const what = describeChange(x, y, sameLayer);
    if (what.length && !(x.type === 'directory' && y.type === 'directory' && what.every((w) => w === 'size'))) {
      out.push({ path: p, kind: 'changed', type: y.type, sizeA: x.size, sizeB: y.size, what });
      if (y.type !== 'directory') {
        summary.changed.count++;
        summary.changed.bytes += y.size - x.size;
      }
    }
  }
  for (const [p, y] of fb) {
    if (fa.has(p)) continue;
    out.push({ path: p, kind: 'added', type: y.type, sizeB: y.size });
    if (y.type !== 'directory') {
      summary.added.count++;
      summary.added.bytes += y.size;
    }
  }
  out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const pa = new Map(wa.packages.map((p) => [pkgKey(p), p]));
  const pb = new Map(wb.packages.map((p) => [pkgKey(p), p]));
  const packages: PackageChange[] = [];
  for (const [k, p] of pa) {
    const q = pb.get(k);
    if (!q) packages.push({ kind: 'removed', type: p.type, name: p.name, versionA: p.version, location: p.location });
    else if (q.version !== p.version)
      packages.push({
        kind: 'changed',
        type: p.type,
        name: p.name,
        versionA: p.version,
        versionB: q.version,
        location: q.location,
      });
  }
  for (const [k, q] of pb)
    if (!pa.has(k))
      packages.push({ kind: 'added', type: q.type, name: q.name, versionB: q.version, location: q.location });
  packages.sort((x, y) =>
    x.type < y.type ? -1 : x.type > y.type ? 1 : x.name < y.name ? -1 : x.name > y.name ? 1 : 0,
  );
  const stat = (w: typeof wa) => {
    let size = 0;
    let n = 0;
    for (const node of w.tree!.walk()) {
      if (node.info!.type === 'directory') continue;
      size += node.info!.size;
      n++;
    }
    return { size, files: n, packages: w.packages.length };
  };
  return {
    a: { ...imageSummary(a), ...stat(wa) },
    b: { ...imageSummary(b), ...stat(wb) },
    sharedLayers: shared.size,
    files: out,
    summary,
    packages,
  };
}
