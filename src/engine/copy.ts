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
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { keptXattrs, layerSkeleton, SkeletonTracker, type EntrySpec, type SkeletonEntry } from '../layer/index.js';
import { hasWildcard, type BuildContext, type ContextEntry, type EntryStat } from '../context/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import { dirFs, isDirInFs, resolveInFs, resolveInRoot, type RootFs, topOf } from '../sandbox/index.js';
import { LineSpill } from './spill.js';

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
  /** The destination image's current file system: a read-only view's root, or a reader of its layers. */
  destRoot: string | RootFs;
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

/** A directory's path as a RootFs (a test's or a view's root); a RootFs as it is. */
function fsOf(root: string | RootFs): RootFs {
  return typeof root === 'string' ? dirFs(root) : root;
}

function isDirIn(root: string | RootFs, rel: string): boolean {
  return isDirInFs(fsOf(root), rel);
}

/** A selected source. e: the source with symlinks followed; name: its path as selected (the target's name comes from it). */
interface Selected {
  ctx: BuildContext;
  e: ContextEntry;
  name: string;
  keepOwner: boolean;
  unpacked: boolean;
}

async function selectSources(req: CopyRequest): Promise<Selected[]> {
  const selected: Selected[] = [];
  for (const s of req.sources)
    for (const { e, name } of await selectFollowed(s.ctx, s.pattern, req.place))
      selected.push({ ctx: s.ctx, e, name, keepOwner: s.keepOwner ?? req.keepOwner, unpacked: s.unpacked ?? false });
  return selected;
}

export async function planCopy(req: CopyRequest): Promise<EntrySpec[]> {
  return planSelected(req, await selectSources(req));
}

async function planSelected(req: CopyRequest, selected: Selected[]): Promise<EntrySpec[]> {
  const destAbs = path.posix.resolve('/', req.workdir || '/', req.dest);
  const created = req.createdTime ?? Math.floor(Date.now() / 1000);
  const destIsDir = req.dest.endsWith('/') || req.dest === '.' || req.dest.endsWith('/.');
  const excluded = (rel: string) => (req.exclude ?? []).some((p) => globMatch(p, rel));
  // A wildcard that matches one file is that file (BuildKit: `COPY *.md /x` makes the file /x).
  const many = selected.length > 1;
  // The real destination directory inside the image (symlinked parents followed, as the container would).
  const destRel = resolveInFs(fsOf(req.destRoot), destAbs);
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
    inodes.delete(target);
    req.provenance?.set(target, e.abs);
    const spec = entryOf(target, e, meta(e.stat), unpackedNow);
    if (!spec) return;
    entries.set(target, spec);
    if (spec.type === 'file' && e.stat.nlink > 1) inodes.set(target, `${sourceNo}:${e.stat.dev}:${e.stat.ino}`);
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

/** A non-directory entry of a COPY layer and the file it was copied from (the provenance record's input). */
export interface CopiedFile {
  path: string;
  /** The source, absolute. */
  abs: string;
  /** A regular file's size (0 for a link). */
  size: number;
  /** A symlink or a hard link. */
  link: boolean;
}

/** A list of entries' non-directory ones with their source (`sources`: entry path → absolute source), in order. */
export async function* copiedFiles(entries: EntrySpec[], sources: Map<string, string>): AsyncGenerator<CopiedFile> {
  for (const e of entries) {
    if (e.type === 'directory') continue;
    const abs = sources.get(e.path);
    if (abs === undefined) continue;
    yield {
      path: e.path,
      abs,
      size: e.type === 'file' ? (e.size ?? 0) : 0,
      link: e.type === 'symlink' || e.type === 'hardlink',
    };
  }
}

/**
 * A COPY/ADD layer's plan: its entries in the layer's order, and once they are read, what the
 * layer's facts and provenance record take of them. A copy of one directory (the `COPY --from=build
 * /out /app` of many files) is streamed: its tree is walked in the layer's order as the tar is
 * written, and nothing is held per file (the files' sources are spilled for the record).
 */
export interface CopyPlan {
  /** The entries, in the layer's order; read once. */
  entries: Iterable<EntrySpec>;
  /** Whether there are no entries (known before they are read). */
  empty: boolean;
  /** After the entries were read: the layer's top-level names (sorted) and skeleton (layer/write.ts). */
  facts(opts: { sourceDateEpoch?: number }): {
    tops: string[];
    skeleton: { root: string; entries: SkeletonEntry[] } | undefined;
  };
  /** After the entries were read: the entries with a source file, in the layer's order; read once. */
  copied(): AsyncIterable<CopiedFile>;
  /** Drops what the plan holds (when its copied files are not read). */
  dispose(): void;
}

/**
 * planCopy as a CopyPlan: streamed when the request copies the contents of one directory (no
 * --exclude, no .dockerignore, no archive), else planCopy's list. `tmpDir`: where a streamed plan
 * spills its sources.
 */
export async function planCopyLayer(req: CopyRequest, tmpDir: string): Promise<CopyPlan> {
  const selected = await selectSources(req);
  const streamed = await planStreamed(req, selected, tmpDir);
  if (streamed) return streamed;
  const provenance = new Map<string, string>();
  const entries = await planSelected({ ...req, provenance }, selected);
  return {
    entries,
    empty: entries.length === 0,
    facts: (opts) => ({
      tops: [...new Set(entries.map((e) => topOf(e.path)))].sort(),
      skeleton: layerSkeleton(entries, opts),
    }),
    copied: () => copiedFiles(entries, provenance),
    dispose: () => undefined,
  };
}

/** One selected directory, copied whole: its plan streamed (planCopyLayer), or undefined when the request is not so. */
async function planStreamed(req: CopyRequest, selected: Selected[], tmpDir: string): Promise<CopyPlan | undefined> {
  if (selected.length !== 1 || req.exclude?.length) return undefined;
  const { ctx, e, name, keepOwner, unpacked } = selected[0]!;
  if (unpacked || ctx.ignorePatterns.length || !e.stat.isDirectory()) return undefined;
  const destAbs = path.posix.resolve('/', req.workdir || '/', req.dest);
  const created = req.createdTime ?? Math.floor(Date.now() / 1000);
  const destRel = resolveInFs(fsOf(req.destRoot), destAbs);
  const madeDirMode = req.chmod !== undefined && !req.plainMadeDirs ? req.chmod & 0o777 : 0o755;
  const meta = (st: EntryStat) => ({
    uid: req.owner ? req.owner.uid : keepOwner ? st.uid : 0,
    gid: req.owner ? req.owner.gid : keepOwner ? st.gid : 0,
    mode: req.chmod ?? st.mode & 0o7777,
    mtime: Math.floor(st.mtimeMs / 1000),
  });
  const base = req.parents ? path.posix.join(destRel, name) : destRel;
  // As planCopy: the destination directory is an entry when the image does not have it.
  let baseEntry: EntrySpec | undefined;
  if (!isDirIn(req.destRoot, base) && base !== '') {
    if (req.parents) baseEntry = entryOf(base, e, meta(e.stat), false);
    else
      baseEntry = {
        path: base,
        type: 'directory',
        mode: madeDirMode,
        ...(req.owner ?? { uid: 0, gid: 0 }),
        mtime: created,
      };
  }
  const top = ctx.list(e.rel);
  const copiesSomething = top.some(([, st]) => copiedType(st, false));
  if (!baseEntry && !copiesSomething)
    return {
      entries: [],
      empty: true,
      facts: () => ({ tops: [], skeleton: undefined }),
      copied: async function* () {},
      dispose: () => undefined,
    };
  // The parents of what the layer holds are base's (everything else is under base, its directories entries).
  const have = new Map<string, EntrySpec>(baseEntry ? [[base, baseEntry]] : []);
  const parents = parentEntries(
    req.destRoot,
    [baseEntry ? base : `${base}/\0`],
    req.owner ?? { uid: 0, gid: 0 },
    created,
    have,
    madeDirMode,
  );
  const tops = new Set<string>();
  const skeleton = new SkeletonTracker();
  const spill = new LineSpill(tmpDir);
  const prefix = base === '' ? '' : `${base}/`;
  const skip = e.rel === '' ? 0 : e.rel.length + 1;
  function* entries(): Generator<EntrySpec> {
    const seen = (spec: EntrySpec) => {
      tops.add(topOf(spec.path));
      skeleton.entry(spec);
    };
    for (const p of parents) {
      seen(p);
      yield p;
    }
    if (baseEntry) {
      seen(baseEntry);
      if (!copiesSomething) skeleton.leaf(baseEntry.path);
      yield baseEntry;
    }
    /** The first path of each inode (hardLinked's rule, in the same order: the layer's). */
    const firstOfInode = new Map<string, string>();
    for (const c of layerOrder(ctx, e.rel, top)) {
      if (typeof c === 'string') {
        skeleton.leaf(prefix + c.slice(skip));
        continue;
      }
      const target = prefix + c.rel.slice(skip);
      let spec = entryOf(target, c, meta(c.stat), false);
      if (!spec) continue;
      if (spec.type === 'file' && c.stat.nlink > 1) {
        const key = `${c.stat.dev}:${c.stat.ino}`;
        const first = firstOfInode.get(key);
        if (first === undefined) firstOfInode.set(key, target);
        else
          spec = {
            path: target,
            type: 'hardlink',
            linkname: first,
            uid: spec.uid,
            gid: spec.gid,
            mode: spec.mode,
            mtime: spec.mtime,
          };
      }
      seen(spec);
      if (spec.type !== 'directory') {
        skeleton.leaf(target);
        // "f<size> <sub>" or "l0 <sub>": the target and its source are the same path under two
        // prefixes (a name with a newline in it, rare: as JSON).
        const sub = c.rel.slice(skip);
        const kind = spec.type === 'file' ? 'f' : 'l';
        const size = spec.type === 'file' ? (spec.size ?? 0) : 0;
        spill.push(sub.includes('\n') ? `j${JSON.stringify([kind, size, sub])}` : `${kind}${size} ${sub}`);
      }
      yield spec;
    }
  }
  return {
    entries: entries(),
    empty: false,
    facts: (opts) => ({ tops: [...tops].sort(), skeleton: skeleton.result(opts) }),
    async *copied() {
      const sourcePrefix = `${ctx.root.endsWith('/') ? ctx.root : `${ctx.root}/`}${e.rel === '' ? '' : `${e.rel}/`}`;
      for await (const line of spill.lines()) {
        let kind: string, size: number, sub: string;
        if (line.startsWith('j')) [kind, size, sub] = JSON.parse(line.slice(1)) as [string, number, string];
        else {
          const space = line.indexOf(' ');
          kind = line[0]!;
          size = Number(line.slice(1, space));
          sub = line.slice(space + 1);
        }
        yield { path: prefix + sub, abs: sourcePrefix + sub, size, link: kind === 'l' };
      }
    },
    dispose: () => spill.dispose(),
  };
}

/** Whether an entry of this type is copied (planCopy's add: an archive's devices and fifos only). */
function copiedType(st: EntryStat, unpacked: boolean): boolean {
  return (
    st.isDirectory() ||
    st.isSymbolicLink() ||
    st.isFile() ||
    (unpacked && (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()))
  );
}

/** The layer entry of a source entry (planCopy's rules), or undefined for what is not copied (sockets…). */
function entryOf(
  target: string,
  e: ContextEntry,
  m: { uid: number; gid: number; mode: number; mtime: number },
  unpacked: boolean,
): EntrySpec | undefined {
  const spec = plainEntryOf(target, e, m, unpacked);
  // A copy keeps the xattrs a layer carries (security.capability, user.*…), as BuildKit's copier;
  // not a symlink's (a RUN layer's writer reads none either).
  if (spec && spec.type !== 'symlink') {
    const x = keptXattrs(e.abs);
    if (x) spec.xattrs = x;
  }
  return spec;
}

function plainEntryOf(
  target: string,
  e: ContextEntry,
  m: { uid: number; gid: number; mode: number; mtime: number },
  unpacked: boolean,
): EntrySpec | undefined {
  const st = e.stat;
  if (st.isDirectory())
    return { path: target, type: 'directory', uid: m.uid, gid: m.gid, mode: m.mode, mtime: m.mtime };
  if (st.isSymbolicLink())
    return {
      path: target,
      type: 'symlink',
      linkname: readlinkSafe(e.abs),
      uid: m.uid,
      gid: m.gid,
      mode: 0o777,
      mtime: m.mtime,
    };
  if (st.isFile())
    return {
      path: target,
      type: 'file',
      source: e.abs,
      size: st.size,
      uid: m.uid,
      gid: m.gid,
      mode: m.mode,
      mtime: m.mtime,
    };
  if (unpacked && (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO())) {
    // An archive's device nodes and fifos are kept, as docker's ADD keeps them.
    const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : 'blockdev';
    return {
      path: target,
      type,
      ...m,
      devmajor: Math.floor(st.rdev / 256) & 0xfff,
      devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
    };
  }
  // sockets, devices and fifos in a context are not copied (BuildKit skips them too)
  return undefined;
}

/**
 * A directory's tree in its layer's order (paths sorted as whole strings: `a`, `a-b`, `a/c`), one
 * listing per level held: a directory's entry sorts by its name, its contents by its name and "/".
 * An empty directory is also told as its path (a leaf, for the layer's skeleton).
 */
function* layerOrder(
  ctx: BuildContext,
  rel: string,
  listing: readonly (readonly [string, EntryStat])[],
): Generator<ContextEntry | string> {
  // Nothing under it in the layer (sockets are not copied): a leaf.
  if (!listing.some(([, st]) => copiedType(st, false))) {
    yield rel;
    return;
  }
  const dirPrefix = rel === '' ? '' : `${rel}/`;
  const absPrefix = ctx.root.endsWith('/') ? `${ctx.root}${dirPrefix}` : `${ctx.root}/${dirPrefix}`;
  const items: { key: string; name: string; stat: EntryStat; contents: boolean }[] = [];
  for (const [name, stat] of listing) {
    items.push({ key: name, name, stat, contents: false });
    if (stat.isDirectory()) items.push({ key: `${name}/`, name, stat, contents: true });
  }
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const it of items) {
    const r = dirPrefix + it.name;
    if (it.contents) yield* layerOrder(ctx, r, ctx.list(r));
    else yield { rel: r, abs: absPrefix + it.name, stat: it.stat };
  }
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
    // A link's header carries no xattrs (the file's does), as a RUN layer's (layer/write.ts).
    const { source: _source, size: _size, xattrs: _xattrs, ...rest } = e;
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
  root: string | RootFs,
  paths: Iterable<string>,
  owner: { uid: number; gid: number },
  mtime: number,
  have: Map<string, EntrySpec> = new Map(),
  mode = 0o755,
): EntrySpec[] {
  const fs = fsOf(root);
  const out = new Map<string, EntrySpec>();
  for (const p of paths) {
    for (
      let d = path.posix.dirname(p.replace(/^\/+/, ''));
      d !== '.' && d !== '/' && d !== '';
      d = path.posix.dirname(d)
    ) {
      // Done already: d's parents were seen with it (in `out`), or will be as a path of its own (`have`).
      if (have.has(d) || out.has(d)) break;
      const st = fs.lstat(d);
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
