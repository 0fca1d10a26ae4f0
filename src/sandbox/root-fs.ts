/**
 * An image's file system as a COPY's or WORKDIR's destination reads it (RootFs): a directory (a
 * view's root), or its layers' snapshot dirs and skeletons merged as overlayfs merges them, with
 * nothing mounted or made on disk (layeredFs; view.ts's layeredDestination chooses the layers).
 */
import { lstatSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { type SkeletonEntry } from '../layer/index.js';
import { overlayXattrPrefix, readImageFile, xattr } from '../util/index.js';

/** overlayfs' markers in a layer dir: a whiteout (a 0/0 character device, or an empty file marked so), an opaque dir. */
export function overlayMarkers(): {
  isWhiteout(host: string, st: Stats): boolean;
  isOpaque(host: string): boolean;
} {
  const prefix = overlayXattrPrefix();
  const marked = (p: string, name: string): string | undefined => {
    try {
      return xattr().getAttributeSync(p, `${prefix}${name}`).toString();
    } catch {
      return undefined;
    }
  };
  return {
    isWhiteout: (host, st) =>
      (st.isCharacterDevice() && st.rdev === 0) ||
      (st.isFile() && st.size === 0 && marked(host, 'whiteout') !== undefined),
    isOpaque: (host) => marked(host, 'opaque') === 'y',
  };
}

/** What lstat tells of an entry, as far as a COPY's or WORKDIR's destination asks (fs.Stats has it). */
export interface FsStat {
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFile(): boolean;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

/**
 * An image's file system read by relative path (no leading '/'): a directory (a view's root), or
 * its layers merged as overlayfs merges them (layeredFs), with nothing made on disk.
 */
export interface RootFs {
  /** The entry at `rel` (no link followed), undefined when there is none. */
  lstat(rel: string): FsStat | undefined;
  /** A symbolic link's target. */
  readlink(rel: string): string;
  /** A regular file's text at `abs` (links followed inside the root), undefined when there is none. */
  readImageFile(abs: string): string | undefined;
}

/** A directory as a RootFs (a view's root, the empty root of --link). */
export function dirFs(root: string): RootFs & { root: string } {
  return {
    root,
    lstat(rel) {
      try {
        return lstatSync(rel === '' ? root : `${root}/${rel}`);
      } catch {
        return undefined;
      }
    },
    readlink: (rel) => readlinkSync(`${root}/${rel}`),
    readImageFile: (abs) => readImageFile(root, abs),
  };
}

/**
 * Resolve `p` (absolute, inside the image) in `fs`, following symbolic links as the container
 * would but never leaving the root (view.ts's resolveInRoot, on a RootFs): the real path, relative.
 * A missing component ends the walk (the rest kept as given); so does a non-directory.
 */
export function resolveInFs(fs: RootFs, p: string): string {
  const parts = p.split('/').filter((x) => x && x !== '.');
  const out: string[] = [];
  let hops = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '..') {
      out.pop();
      continue;
    }
    const rel = out.length ? `${out.join('/')}/${part}` : part;
    const st = fs.lstat(rel);
    if (!st) {
      out.push(part, ...parts);
      break;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many levels of symbolic links in ${p}`);
      const target = fs.readlink(rel);
      const tparts = target.split('/').filter((x) => x && x !== '.');
      if (target.startsWith('/')) out.length = 0;
      parts.unshift(...tparts);
      continue;
    }
    out.push(part);
  }
  return out.join('/');
}

/** Whether `rel` is a directory, links followed inside the root (stat, not lstat). */
export function isDirInFs(fs: RootFs, rel: string): boolean {
  try {
    return fs.lstat(resolveInFs(fs, `/${rel}`))?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/**
 * A layer as layeredFs reads it: its snapshot directory (overlay-marker form), or the skeleton
 * entries of a layer kiln wrote (its facts: directories and links on the paths asked about) that
 * has no snapshot, as view.ts's makeSkeleton would make them, but in memory.
 */
export type FsLayer = string | SkeletonEntry[];

/**
 * The file system `top` (layers, top first) shows as an overlay of them, as layeredTree reads it,
 * answering lstat/readlink/file reads with nothing mounted or made. `only`: the paths it may answer
 * for (the others are missing), when some layers are known only on those paths (skeletons, layers
 * left out because they write elsewhere).
 */
export function layeredFs(top: FsLayer[], only?: (rel: string) => boolean): RootFs {
  const { isWhiteout, isOpaque } = overlayMarkers();
  interface Found {
    stat: FsStat;
    host?: string;
    linkname?: string;
    whiteout: boolean;
    opaque: boolean;
  }
  interface Entry {
    stat: FsStat;
    host?: string;
    linkname?: string;
    stack?: FsLayer[];
  }
  const virtual = new Map<SkeletonEntry[], Map<string, Found>>();
  const inSkeleton = (entries: SkeletonEntry[], rel: string): Found | undefined => {
    let m = virtual.get(entries);
    if (!m) {
      m = new Map();
      // Parents no entry names are made as mkdir -p makes them (makeSkeleton): root's, 0755, now.
      const now = Date.now();
      for (const e of entries) {
        const p = e.path;
        for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1))
          if (!m.has(p.slice(0, i))) m.set(p.slice(0, i), virtualFound('directory', 0o755, 0, 0, now));
      }
      for (const e of entries) {
        const f = virtualFound(e.type, e.mode, e.uid, e.gid, e.mtime * 1000);
        if (e.type === 'symlink') f.linkname = e.linkname ?? '';
        m.set(e.path, f);
      }
      virtual.set(entries, m);
    }
    return m.get(rel);
  };
  const inDir = (layer: string, rel: string): Found | undefined => {
    const host = `${layer}/${rel}`;
    let st: Stats;
    try {
      st = lstatSync(host);
    } catch {
      return undefined;
    }
    const whiteout = isWhiteout(host, st);
    return { stat: st, host, whiteout, opaque: !whiteout && st.isDirectory() && isOpaque(host) };
  };
  const rootStat = virtualFound('directory', 0o755, 0, 0, 0).stat;
  const entries = new Map<string, Entry | undefined>([['', { stat: rootStat, stack: top }]]);
  const entry = (rel: string): Entry | undefined => {
    if (entries.has(rel)) return entries.get(rel);
    const slash = rel.lastIndexOf('/');
    const layers = entry(slash < 0 ? '' : rel.slice(0, slash))?.stack;
    let first: Entry | undefined;
    if (layers) {
      for (const layer of layers) {
        const f = typeof layer === 'string' ? inDir(layer, rel) : inSkeleton(layer, rel);
        if (!f) continue;
        if (!first) {
          if (f.whiteout) break;
          first = { stat: f.stat, ...(f.host !== undefined ? { host: f.host } : {}) };
          if (f.linkname !== undefined) first.linkname = f.linkname;
          if (!f.stat.isDirectory()) break;
          first.stack = [layer];
        } else if (!f.stat.isDirectory()) break;
        else first.stack!.push(layer);
        if (f.opaque) break;
      }
    }
    entries.set(rel, first);
    return first;
  };
  const fs: RootFs = {
    lstat(rel) {
      const r = rel.replace(/^\/+/, '').replace(/\/+$/, '');
      if (r !== '' && only && !only(r)) return undefined;
      return entry(r)?.stat;
    },
    readlink(rel) {
      const e = entry(rel.replace(/^\/+/, '').replace(/\/+$/, ''));
      if (e?.linkname !== undefined) return e.linkname;
      if (e?.host !== undefined && e.stat.isSymbolicLink()) return readlinkSync(e.host);
      throw Object.assign(new Error(`EINVAL: not a symbolic link in the layers, readlink '${rel}'`), {
        code: 'EINVAL',
      });
    },
    readImageFile(abs) {
      let real: string;
      try {
        real = resolveInFs(fs, abs);
      } catch {
        return undefined;
      }
      const e = fs.lstat(real) && entry(real);
      if (!e?.stat.isFile() || e.host === undefined) return undefined;
      try {
        return readFileSync(e.host, 'utf8');
      } catch {
        return undefined;
      }
    },
  };
  return fs;
}

function virtualFound(
  type: SkeletonEntry['type'],
  mode: number,
  uid: number,
  gid: number,
  mtimeMs: number,
): { stat: FsStat; linkname?: string; whiteout: boolean; opaque: boolean } {
  const dir = type === 'directory';
  const link = type === 'symlink';
  return {
    stat: {
      isDirectory: () => dir,
      isSymbolicLink: () => link,
      isFile: () => type === 'file',
      mode: mode & 0o7777,
      uid,
      gid,
      mtimeMs,
    },
    whiteout: false,
    opaque: false,
  };
}
