/**
 * COPY and ADD without a container: select sources (context, another stage, an image), apply
 * docker's destination rules, and give the layer's entries with their final metadata.
 *   - a directory source copies its contents; a file goes to DEST/ when DEST ends in "/", when
 *     there are several sources, or when DEST is an existing directory; else it becomes DEST;
 *   - a source that is a symlink (named, or matched by a wildcard) is followed inside its root, as
 *     BuildKit's FollowSymlinks: `COPY link /d/` copies what it points to under the link's name;
 *     symlinked directories on the way to a source are followed too; symlinks inside a copied
 *     directory stay links;
 *   - ownership 0:0 from the context (--chown to change), kept from a stage or image;
 *   - --chmod on what is copied; mtimes kept;
 *   - destination parents that do not exist are created (0755, owned by --chown or 0:0); so is
 *     the destination of a directory's contents (fsutil's MkdirAll: it does not take the source
 *     directory's mode, owner or mtime). With --chmod, those directories get its permission bits
 *     instead, as current BuildKit (fsutil#228, umask-free since buildkit#6801); an archive ADD
 *     unpacks keeps 0755 (BuildKit's unpacker makes its destination without the mode).
 */
import { lstatSync, readlinkSync, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { type EntrySpec } from '../layer/index.js';
import { hasWildcard, type BuildContext, type ContextEntry, type EntryStat } from '../context/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import { resolveInRoot } from '../sandbox/index.js';

export interface CopyRequest {
  /**
   * keepOwner: keep the source's ownership (a stage, an image, an unpacked archive) unless --chown.
   * unpacked: an archive ADD unpacked; its members keep their modes (--chmod is not applied to
   * them, as BuildKit; --chown is, as BuildKit 0.23 and later).
   */
  sources: { ctx: BuildContext; pattern: string; keepOwner?: boolean; unpacked?: boolean }[];
  /** Destination as written after expansion; relative to workdir. */
  dest: string;
  workdir: string;
  /** Root of the destination image's current filesystem (a read-only view). */
  destRoot: string;
  owner?: { uid: number; gid: number };
  /** Keep source ownership (COPY --from a stage or image). */
  keepOwner: boolean;
  chmod?: number;
  /** The directories the copy makes are 0755 even with --chmod (a --link copy onto an empty root). */
  plainMadeDirs?: boolean;
  exclude?: string[];
  parents?: boolean;
  /** mtime (seconds) of the directories the copy makes (default: now); a git commit's time for ADD of a repository. */
  createdTime?: number;
  place: ErrorPlace;
  /** Filled with each target's source file (absolute path), for the layer's provenance (provenance.ts). */
  provenance?: Map<string, string>;
}

function isDirIn(root: string, rel: string): boolean {
  try {
    return statSync(path.join(root, rel)).isDirectory();
  } catch {
    return false;
  }
}

export async function planCopy(req: CopyRequest): Promise<EntrySpec[]> {
  const destAbs = path.posix.resolve('/', req.workdir || '/', req.dest);
  const created = req.createdTime ?? Math.floor(Date.now() / 1000);
  const destIsDir = req.dest.endsWith('/') || req.dest === '.' || req.dest.endsWith('/.');
  /** e: the source with symlinks followed; name: its path as selected (the target's name comes from it). */
  const selected: { ctx: BuildContext; e: ContextEntry; name: string; keepOwner: boolean; unpacked: boolean }[] = [];
  for (const s of req.sources)
    for (const { e, name } of await selectFollowed(s.ctx, s.pattern, req.place))
      selected.push({ ctx: s.ctx, e, name, keepOwner: s.keepOwner ?? req.keepOwner, unpacked: s.unpacked ?? false });
  const excluded = (rel: string) => (req.exclude ?? []).some((p) => globMatch(p, rel));
  // A wildcard that matches one file is that file (BuildKit: `COPY *.md /x` makes the file /x).
  const many = selected.length > 1;
  // The real destination directory inside the image (symlinked parents followed, as the container would).
  const destRel = await resolveInRoot(req.destRoot, destAbs);
  const existingDir = isDirIn(req.destRoot, destRel);
  // The directories this copy creates: --chmod's permission bits (BuildKit gives MkdirAll the mode),
  // 0755 without it or when only archives are unpacked.
  const madeDirMode =
    req.chmod !== undefined && !req.plainMadeDirs && selected.some((s) => !s.unpacked) ? req.chmod & 0o777 : 0o755;
  const entries = new Map<string, EntrySpec>();
  let keepOwner = req.keepOwner;
  let chmod = req.chmod;
  // One object of one shape per entry, without spreads (a spread gives each entry a larger object
  // with its own property store: a COPY of 100,000 files holds them all until its layer is written).
  const meta = (st: EntryStat) => ({
    uid: req.owner ? req.owner.uid : keepOwner ? st.uid : 0,
    gid: req.owner ? req.owner.gid : keepOwner ? st.gid : 0,
    mode: chmod ?? st.mode & 0o7777,
    mtime: Math.floor(st.mtimeMs / 1000),
  });
  /** target → the inode it was copied from, scoped to its source (see hardLinked). */
  const inodes = new Map<string, string>();
  let sourceNo = 0;
  let unpackedNow = false;
  const add = (target: string, e: ContextEntry) => {
    const st = e.stat;
    const m = meta(st);
    inodes.delete(target);
    req.provenance?.set(target, e.abs);
    if (st.isDirectory())
      entries.set(target, { path: target, type: 'directory', uid: m.uid, gid: m.gid, mode: m.mode, mtime: m.mtime });
    else if (st.isSymbolicLink())
      entries.set(target, {
        path: target,
        type: 'symlink',
        linkname: readlinkSafe(e.abs),
        uid: m.uid,
        gid: m.gid,
        mode: 0o777,
        mtime: m.mtime,
      });
    else if (st.isFile()) {
      entries.set(target, {
        path: target,
        type: 'file',
        source: e.abs,
        size: st.size,
        uid: m.uid,
        gid: m.gid,
        mode: m.mode,
        mtime: m.mtime,
      });
      if (st.nlink > 1) inodes.set(target, `${sourceNo}:${st.dev}:${st.ino}`);
    } else if (unpackedNow && (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO())) {
      // An archive's device nodes and fifos are kept, as docker's ADD keeps them.
      const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : 'blockdev';
      entries.set(target, {
        path: target,
        type,
        ...m,
        devmajor: Math.floor(st.rdev / 256) & 0xfff,
        devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
      });
    }
    // sockets, devices and fifos in a context are not copied (BuildKit skips them too)
  };
  for (const { ctx, e, name, keepOwner: keep, unpacked } of selected) {
    sourceNo++;
    keepOwner = keep;
    unpackedNow = unpacked;
    chmod = unpacked ? undefined : req.chmod;
    if (excluded(name)) continue;
    if (e.stat.isDirectory()) {
      const base = req.parents ? path.posix.join(destRel, name) : destRel;
      if (!isDirIn(req.destRoot, base) && base !== '') {
        // --parents copies the directory itself (its metadata); a directory's contents go into a
        // destination made as `mkdir -p` does: 0755 (or --chmod's), owned by --chown or root (BuildKit).
        if (req.parents) add(base, e);
        else
          entries.set(base, {
            path: base,
            type: 'directory',
            mode: madeDirMode,
            ...(req.owner ?? { uid: 0, gid: 0 }),
            mtime: created,
          });
      }
      for (const c of ctx.walk(e.rel)) {
        const sub = c.rel.slice(e.rel === '' ? 0 : e.rel.length + 1);
        if (excluded(c.rel) || excluded(sub)) continue;
        add(path.posix.join(base, sub), c);
      }
    } else {
      const target = req.parents
        ? path.posix.join(destRel, name)
        : destIsDir || many || existingDir
          ? path.posix.join(destRel, path.posix.basename(name))
          : destRel;
      if (target === '')
        throw new KilnError('BUILD', `cannot copy file ${name} to the root directory itself`, req.place);
      add(target, e);
    }
  }
  if (!destIsDir && !many && !existingDir && selected.length === 1 && !selected[0]!.e.stat.isDirectory()) {
    // single file to a file path: fine
  } else if (many && !destIsDir && !existingDir && selected.filter((s) => !s.e.stat.isDirectory()).length > 1) {
    throw new KilnError(
      'BUILD',
      `when using COPY with more than one source file, the destination must be a directory and end with a /`,
      req.place,
    );
  }
  const parents = parentEntries(
    req.destRoot,
    entries.keys(),
    req.owner ?? { uid: 0, gid: 0 },
    created,
    entries,
    madeDirMode,
  );
  return hardLinked(
    [...parents, ...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    inodes,
  );
}

/**
 * Files that are one inode in a copied source stay one in the layer: the first (in path order) is
 * written, the others as hard links to it. BuildKit's copier (fsutil) keeps links within each
 * source it copies, from the context or a stage alike: `COPY --from=busybox-builder /rootfs /`
 * keeps its 400 links to one binary, while `COPY a b /d/` with a and b linked gives two files.
 */
export function hardLinked(sorted: EntrySpec[], inodes: Map<string, string>): EntrySpec[] {
  if (inodes.size < 2) return sorted;
  const first = new Map<string, string>();
  return sorted.map((e) => {
    const key = e.type === 'file' ? inodes.get(e.path) : undefined;
    if (key === undefined) return e;
    const target = first.get(key);
    if (target === undefined) {
      first.set(key, e.path);
      return e;
    }
    const { source: _source, size: _size, ...rest } = e;
    return { ...rest, type: 'hardlink', linkname: target };
  });
}

/**
 * The parent directories a layer holding `paths` needs, as BuildKit's layers have them: one that
 * does not exist in the image is created (`mode`, default 0755, `owner`, `mtime`); one that exists is repeated
 * with its metadata as it is. Leaving an existing parent out is not neutral: an unpacker (kiln's
 * snapshots, docker, containerd) makes a missing parent root-owned 0755, and that directory then
 * hides the real one below it. `have`: entries the layer has anyway, each one of `paths`.
 */
export function parentEntries(
  root: string,
  paths: Iterable<string>,
  owner: { uid: number; gid: number },
  mtime: number,
  have: Map<string, EntrySpec> = new Map(),
  mode = 0o755,
): EntrySpec[] {
  const out = new Map<string, EntrySpec>();
  for (const p of paths) {
    for (
      let d = path.posix.dirname(p.replace(/^\/+/, ''));
      d !== '.' && d !== '/' && d !== '';
      d = path.posix.dirname(d)
    ) {
      // Done already: d's parents were seen with it (in `out`), or will be as a path of its own (`have`).
      if (have.has(d) || out.has(d)) break;
      let st: Stats | undefined;
      try {
        st = lstatSync(path.join(root, d));
      } catch {
        st = undefined;
      }
      if (!st) out.set(d, { path: d, type: 'directory', mode, ...owner, mtime });
      else if (st.isDirectory())
        out.set(d, {
          path: d,
          type: 'directory',
          mode: st.mode & 0o7777,
          uid: st.uid,
          gid: st.gid,
          mtime: Math.floor(st.mtimeMs / 1000),
        });
    }
  }
  return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * A source's entries as BuildKit's copy finds them (fsutil rootPath with FollowLinks): the
 * directories before the last component or the first wildcard are resolved through symlinks, and
 * each selected entry that is a symlink is replaced by what it points to; all of it inside the
 * root (an absolute link target is taken from the root, `..` stops there). A link to nothing (or
 * to an ignored path) is a missing source.
 */
async function selectFollowed(
  ctx: BuildContext,
  pattern: string,
  place: ErrorPlace,
): Promise<{ e: ContextEntry; name: string }[]> {
  const clean = path.posix.normalize(`/${pattern}`).slice(1).replace(/\/+$/, '');
  const parts = clean === '' ? [] : clean.split('/');
  const wild = parts.findIndex((p) => hasWildcard(p));
  const prefixLen = wild < 0 ? parts.length - 1 : wild;
  let selected: ContextEntry[];
  if (prefixLen > 0) {
    const literal = parts.slice(0, prefixLen).join('/');
    const real = await resolveInRoot(ctx.root, literal);
    if (real === literal) selected = ctx.select(pattern, place);
    else {
      try {
        selected = ctx.select([real, ...parts.slice(prefixLen)].filter((p) => p !== '').join('/'), place);
      } catch (err) {
        if (err instanceof KilnError)
          throw new KilnError(
            'NOT_FOUND',
            `failed to compute cache key: "${pattern}" not found in the build context`,
            place,
            { hint: `"${literal}" leads to "${real || '.'}"` },
          );
        throw err;
      }
    }
  } else selected = ctx.select(pattern, place);
  const out: { e: ContextEntry; name: string }[] = [];
  for (const e of selected) {
    if (!e.stat.isSymbolicLink()) {
      out.push({ e, name: e.rel });
      continue;
    }
    const real = await resolveInRoot(ctx.root, e.rel);
    const abs = path.join(ctx.root, real);
    let stat: Stats | undefined;
    try {
      stat = lstatSync(abs);
    } catch {
      stat = undefined;
    }
    if (!stat || ctx.ignores(real)) {
      throw new KilnError(
        'NOT_FOUND',
        `failed to compute cache key: "${e.rel}" is a symbolic link to "/${real}", which is not found in the build context`,
        place,
        {
          hint: 'a COPY source that is a link is followed (inside the context or the stage), as BuildKit does',
        },
      );
    }
    out.push({ e: { rel: real, abs, stat }, name: e.rel });
  }
  return out;
}

function readlinkSafe(p: string): string {
  return readlinkSync(p);
}

/** --exclude patterns: like .dockerignore lines (`**` allowed), matched against the path. */
function globMatch(pattern: string, rel: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/^\/+/, '')
      .split('/')
      .map((seg) =>
        seg === '**'
          ? '.*'
          : seg
              .replace(/[.+^${}()|\\]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]'),
      )
      .join('/')}(/.*)?$`,
  );
  return re.test(rel);
}
