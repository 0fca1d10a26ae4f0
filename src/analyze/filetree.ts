/**
 * The image's filesystem as the layers stack up, with overlay semantics (what a container sees):
 * a whiteout ".wh.NAME" deletes NAME (and everything under it) from the layers below, an opaque
 * marker ".wh..wh..opq" hides everything the layers below had in its directory; both are applied
 * before the layer's own entries, whatever their order in the tar. Per layer it records what was
 * added, modified (present below and different) and removed, with bytes.
 */
import type { LayerEntry } from './efficiency.js';
import { type EntryType } from '../layer/index.js';

export interface FileInfo {
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  hash?: string;
  /** Layer that wrote this version. */
  layer: number;
}

export class FsNode {
  children?: Map<string, FsNode>;
  info?: FileInfo;
  constructor(
    readonly name: string,
    readonly parent?: FsNode,
  ) {}
  path(): string {
    const names: string[] = [];
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the walk up starts at this node; nothing captures it
    for (let n: FsNode | undefined = this; n?.parent; n = n.parent) names.push(n.name);
    return names.reverse().join('/');
  }
  /** Regular files, links and other non-directories in this subtree (itself included). */
  *files(): Generator<FsNode> {
    if (this.info && this.info.type !== 'directory') yield this;
    if (this.children) for (const c of this.children.values()) yield* c.files();
  }
  /** Σ sizes in this subtree. */
  totalSize(): number {
    let s = this.info && this.info.type !== 'directory' ? this.info.size : 0;
    if (this.children) for (const c of this.children.values()) s += c.totalSize();
    return s;
  }
}

export class FsTree {
  readonly root = new FsNode('');

  get(p: string): FsNode | undefined {
    let n: FsNode | undefined = this.root;
    for (const name of p.split('/')) {
      if (!name) continue;
      n = n.children?.get(name);
      if (!n) return undefined;
    }
    return n;
  }

  /** Set the entry at p, creating parent directories (without info) as needed. */
  set(p: string, info: FileInfo): FsNode {
    let n = this.root;
    for (const name of p.split('/')) {
      if (!name) continue;
      n.children ??= new Map();
      let c = n.children.get(name);
      if (!c) {
        c = new FsNode(name, n);
        n.children.set(name, c);
      }
      n = c;
    }
    // A non-directory replacing a directory drops what was under it.
    if (info.type !== 'directory') n.children = undefined;
    n.info = info;
    return n;
  }

  remove(p: string): FsNode | undefined {
    const n = this.get(p);
    if (n?.parent) n.parent.children!.delete(n.name);
    return n;
  }

  /** Number of non-directory entries (files, links, devices). */
  countFiles(node: FsNode = this.root): number {
    let n = node !== this.root && node.info && node.info.type !== 'directory' ? 1 : 0;
    if (node.children) for (const c of node.children.values()) n += this.countFiles(c);
    return n;
  }

  /** Every node with info, depth-first, parents before children, names sorted. */
  *walk(node: FsNode = this.root): Generator<FsNode> {
    if (node !== this.root && node.info) yield node;
    if (node.children) for (const k of [...node.children.keys()].sort()) yield* this.walk(node.children.get(k)!);
  }
}

export interface ChangeStat {
  count: number;
  bytes: number;
}

export interface LayerChanges {
  added: ChangeStat;
  modified: ChangeStat;
  removed: ChangeStat;
  /** Paths (no leading "/") this layer removed from the layers below, largest first (capped). */
  removedPaths: { path: string; bytes: number }[];
}

export function splitWhiteout(
  p: string,
): { kind: 'whiteout'; target: string } | { kind: 'opaque'; dir: string } | undefined {
  const slash = p.lastIndexOf('/');
  const base = p.slice(slash + 1);
  const dir = slash < 0 ? '' : p.slice(0, slash);
  if (base === '.wh..wh..opq') return { kind: 'opaque', dir };
  if (base.startsWith('.wh.')) return { kind: 'whiteout', target: dir ? `${dir}/${base.slice(4)}` : base.slice(4) };
  return undefined;
}

function differs(a: FileInfo, b: FileInfo): boolean {
  if (
    a.type !== b.type ||
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    a.size !== b.size ||
    a.linkname !== b.linkname
  )
    return true;
  // Same size and metadata: the content decides when both were hashed; else count it as changed.
  if (a.type === 'file') return a.hash === undefined || b.hash === undefined || a.hash !== b.hash;
  return false;
}

/** Apply one layer's entries to `tree` (mutating it) and report what changed. */
export function applyLayerEntries(
  tree: FsTree,
  entries: LayerEntry[],
  layer: number,
  maxRemovedPaths = 50,
): LayerChanges {
  const ch: LayerChanges = {
    added: { count: 0, bytes: 0 },
    modified: { count: 0, bytes: 0 },
    removed: { count: 0, bytes: 0 },
    removedPaths: [],
  };
  const removedPaths: { path: string; bytes: number }[] = [];
  const adds: LayerEntry[] = [];
  const dropped = new Map<string, FileInfo>(); // what deletions took away, to tell "re-added" from "added"
  for (const e of entries) {
    const w = splitWhiteout(e.path);
    if (!w) {
      adds.push(e);
      continue;
    }
    const victims: FsNode[] = [];
    if (w.kind === 'whiteout') {
      const n = tree.get(w.target);
      if (n) victims.push(n);
    } else {
      const n = tree.get(w.dir);
      if (n?.children) victims.push(...n.children.values());
    }
    for (const v of victims) {
      let bytes = 0;
      for (const f of v.files()) {
        ch.removed.count++;
        ch.removed.bytes += f.info!.size;
        bytes += f.info!.size;
        dropped.set(f.path(), f.info!);
      }
      removedPaths.push({ path: v.path(), bytes });
      tree.remove(v.path());
    }
  }
  for (const e of adds) {
    const info: FileInfo = { type: e.type, size: e.size, mode: e.mode, uid: e.uid, gid: e.gid, layer };
    if (e.linkname !== undefined) info.linkname = e.linkname;
    if (e.hash !== undefined) info.hash = e.hash;
    const before = tree.get(e.path)?.info ?? dropped.get(e.path);
    if (e.type !== 'directory') {
      if (!before || before.type === 'directory') {
        ch.added.count++;
        ch.added.bytes += e.size;
      } else if (differs(before, info)) {
        ch.modified.count++;
        ch.modified.bytes += e.size;
      }
      if (before && dropped.has(e.path)) {
        // Deleted and written again in the same layer: a modification, not a removal.
        ch.removed.count--;
        ch.removed.bytes -= before.size;
      }
    }
    tree.set(e.path, info);
  }
  ch.removedPaths = removedPaths
    .sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1))
    .slice(0, maxRemovedPaths);
  return ch;
}

/** Stack all layers: the final filesystem and each layer's changes. */
export function stackLayers(layers: LayerEntry[][]): { tree: FsTree; changes: LayerChanges[] } {
  const tree = new FsTree();
  const changes = layers.map((entries, i) => applyLayerEntries(tree, entries, i));
  return { tree, changes };
}

export interface DirSize {
  path: string;
  bytes: number;
  children?: DirSize[];
}

/**
 * The largest directories of a tree, nested, for a treemap: a directory is listed when it holds
 * at least `minFraction` of the total, down to `maxDepth` levels; the rest of a directory's bytes
 * are its "files" share.
 */
export function largestDirectories(tree: FsTree, opts: { minFraction?: number; maxDepth?: number } = {}): DirSize {
  const minFraction = opts.minFraction ?? 0.01;
  const maxDepth = opts.maxDepth ?? 4;
  const total = tree.root.totalSize();
  const sizes = new Map<FsNode, number>();
  const sizeOf = (n: FsNode): number => {
    let s = sizes.get(n);
    if (s === undefined) {
      s = n.info && n.info.type !== 'directory' ? n.info.size : 0;
      if (n.children) for (const c of n.children.values()) s += sizeOf(c);
      sizes.set(n, s);
    }
    return s;
  };
  const build = (n: FsNode, depth: number): DirSize => {
    const d: DirSize = { path: `/${n.path()}`, bytes: sizeOf(n) };
    if (depth < maxDepth && n.children) {
      const kids = [...n.children.values()].filter(
        (c) => c.children && sizeOf(c) >= total * minFraction && sizeOf(c) > 0,
      );
      if (kids.length) d.children = kids.sort((a, b) => sizeOf(b) - sizeOf(a)).map((c) => build(c, depth + 1));
    }
    return d;
  };
  return build(tree.root, 0);
}
