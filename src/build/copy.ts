/**
 * COPY and ADD without a container: select sources (context, another stage, an image), apply
 * docker's destination rules, and give the layer's entries with their final metadata.
 *   - a directory source copies its contents; a file goes to DEST/ when DEST ends in "/", when
 *     there are several sources, or when DEST is an existing directory; else it becomes DEST;
 *   - ownership 0:0 from the context (--chown to change), kept from a stage or image;
 *   - --chmod on what is copied; mtimes kept; symlinks copied as links;
 *   - destination parents that do not exist are created (0755).
 */
import { existsSync, readlinkSync, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { EntrySpec } from '../layer/write.js';
import type { BuildContext, ContextEntry } from '../context/index.js';
import { KilnError, type ErrorPlace } from '../util/errors.js';
import { resolveInRoot } from '../sandbox/view.js';

export interface CopyRequest {
  /** keepOwner: keep the source's ownership (a stage, an image, an unpacked archive) unless --chown. */
  sources: { ctx: BuildContext; pattern: string; keepOwner?: boolean }[];
  /** Destination as written after expansion; relative to workdir. */
  dest: string;
  workdir: string;
  /** Root of the destination image's current filesystem (a read-only view). */
  destRoot: string;
  owner?: { uid: number; gid: number };
  /** Keep source ownership (COPY --from a stage or image). */
  keepOwner: boolean;
  chmod?: number;
  exclude?: string[];
  parents?: boolean;
  place: ErrorPlace;
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
  const destIsDir = req.dest.endsWith('/') || req.dest === '.' || req.dest.endsWith('/.');
  const selected: { ctx: BuildContext; e: ContextEntry; keepOwner: boolean }[] = [];
  for (const s of req.sources) for (const e of s.ctx.select(s.pattern, req.place)) selected.push({ ctx: s.ctx, e, keepOwner: s.keepOwner ?? req.keepOwner });
  const excluded = (rel: string) => (req.exclude ?? []).some((p) => globMatch(p, rel));
  const many = selected.length > 1 || req.sources.some((s) => /[*?[]/.test(s.pattern));
  // The real destination directory inside the image (symlinked parents followed, as the container would).
  const destRel = await resolveInRoot(req.destRoot, destAbs);
  const existingDir = isDirIn(req.destRoot, destRel);
  const entries = new Map<string, EntrySpec>();
  let keepOwner = req.keepOwner;
  const meta = (st: Stats, isDir: boolean) => {
    const own = req.owner ?? (keepOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
    const mode = req.chmod !== undefined ? req.chmod : st.mode & 0o7777;
    return { ...own, mode: isDir && req.chmod === undefined ? st.mode & 0o7777 : mode, mtime: Math.floor(st.mtimeMs / 1000) };
  };
  const add = (target: string, e: ContextEntry) => {
    const st = e.stat;
    const m = meta(st, st.isDirectory());
    if (st.isDirectory()) entries.set(target, { path: target, type: 'directory', ...m });
    else if (st.isSymbolicLink()) entries.set(target, { path: target, type: 'symlink', linkname: readlinkSafe(e.abs), ...m, mode: 0o777 });
    else if (st.isFile()) entries.set(target, { path: target, type: 'file', source: e.abs, size: st.size, ...m });
    // sockets, devices and fifos in a context are not copied (BuildKit skips them too)
  };
  for (const { ctx, e, keepOwner: keep } of selected) {
    keepOwner = keep;
    if (excluded(e.rel)) continue;
    if (e.stat.isDirectory()) {
      const base = req.parents ? path.posix.join(destRel, e.rel) : destRel;
      // The destination directory takes the source directory's metadata when it is created.
      if (!isDirIn(req.destRoot, base) && base !== '') add(base, e);
      for (const c of ctx.walk(e.rel)) {
        const sub = c.rel.slice(e.rel === '' ? 0 : e.rel.length + 1);
        if (excluded(c.rel) || excluded(sub)) continue;
        add(path.posix.join(base, sub), c);
      }
    } else {
      const target = req.parents ? path.posix.join(destRel, e.rel) : destIsDir || many || existingDir ? path.posix.join(destRel, path.posix.basename(e.rel)) : destRel;
      if (target === '') throw new KilnError('BUILD', `cannot copy file ${e.rel} to the root directory itself`, req.place);
      add(target, e);
    }
  }
  if (!destIsDir && !many && !existingDir && selected.length === 1 && !selected[0]!.e.stat.isDirectory()) {
    // single file to a file path: fine
  } else if (many && !destIsDir && !existingDir && selected.filter((s) => !s.e.stat.isDirectory()).length > 1) {
    throw new KilnError('BUILD', `when using COPY with more than one source file, the destination must be a directory and end with a /`, req.place);
  }
  // Parents of everything that do not exist in the image: created 0755, owned like the copy.
  const parents = new Map<string, EntrySpec>();
  const own = req.owner ?? { uid: 0, gid: 0 };
  for (const target of entries.keys()) {
    for (let d = path.posix.dirname(target); d !== '.' && d !== '/' && d !== ''; d = path.posix.dirname(d)) {
      if (entries.has(d) || parents.has(d)) continue;
      if (existsSync(path.join(req.destRoot, d))) break;
      parents.set(d, { path: d, type: 'directory', mode: 0o755, ...own, mtime: Math.floor(Date.now() / 1000) });
    }
  }
  return [...parents.values(), ...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
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
      .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
      .join('/')}(/.*)?$`,
  );
  return re.test(rel);
}
