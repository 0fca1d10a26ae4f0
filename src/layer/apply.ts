/**
 * Applying a layer to a directory: for unpacked snapshots (overlay-marker form) and flattened
 * filesystems (`kiln export`, the native snapshotter). Safe against hostile tars: an entry may
 * never create or change anything outside `root` — absolute names, `..`, writing through a
 * symlink (planted earlier in the same tar or already there), hard links to outside — such a tar
 * is refused with KilnError('UNSAFE') naming the entry.
 */
import {
  promises as fsp,
  createWriteStream,
  chmodSync,
  closeSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  HashingStream,
  type Digest,
  KilnError,
  runChecked,
  lchownInNamespace,
  overlayXattrPrefix,
  userNamespace,
  xattr,
} from '../util/index.js';
import { openLayer } from './decompress.js';
import { readTar } from './tarstream.js';
import type { TarHeader } from './tarformat.js';

export interface ApplyOptions {
  /**
   * 'apply': whiteouts delete (flatten); 'overlay': write overlayfs markers for a lower dir;
   * 'none': `.wh.` members are plain files (an archive ADD unpacks, as docker's ADD does).
   */
  whiteouts: 'apply' | 'overlay' | 'none';
  expectedDiffId?: Digest;
  /** The blob is already a plain tar (skip compression detection). */
  uncompressed?: boolean;
  /**
   * Unpack only the entries whose path (relative, no leading slash) passes: a partial unpack for
   * a view that answers questions about a few paths (build/engine's COPY destination). Whiteouts
   * of paths that pass are applied; a hard link whose target was left out becomes an empty file.
   * The whole layer is still read, and checked against expectedDiffId.
   */
  only?: (rel: string) => boolean;
  /**
   * 'strict' (layers): an absolute name or any `..` is refused. 'docker' (ADD archives): a name is
   * cleaned as docker's unpacker cleans it (a leading / and inner `..` resolved) and refused only
   * when it still leaves the root.
   */
  names?: 'strict' | 'docker';
}

const WH = '.wh.';
/** Files up to this size are written with synchronous calls (no stream per file). */
const SMALL_FILE = 1 << 20;
const OPAQUE = '.wh..wh..opq';

function unsafe(name: string, why: string): KilnError {
  return new KilnError(
    'UNSAFE',
    `refusing layer entry "${name}": ${why}`,
    { path: name },
    { hint: 'the layer tar is malformed or hostile; nothing outside the target was written' },
  );
}

/** Clean an entry name to a relative path inside the root, or refuse it. */
export function cleanEntryName(name: string): string {
  if (name.includes('\0')) throw unsafe(name, 'NUL byte in name');
  if (name.startsWith('/')) throw unsafe(name, 'absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(name, 'path contains ".."');
  return parts.join('/');
}

/** docker's rule (filepath.Clean, then Join with the root): refused only when it leaves the root. */
export function cleanEntryNameAsDocker(name: string): string {
  if (name.includes('\0')) throw unsafe(name, 'NUL byte in name');
  const absolute = name.startsWith('/');
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p !== '..') parts.push(p);
    else if (parts.length) parts.pop();
    else if (!absolute) throw unsafe(name, 'path contains ".." that leaves the root');
  }
  return parts.join('/');
}

/** A hard link's target, cleaned like a name; a bad one is refused naming the link's entry. */
export function checkHardLinkTarget(
  entry: string,
  linkname: string | undefined,
  names: 'strict' | 'docker' = 'strict',
): string {
  let target: string;
  try {
    target = (names === 'docker' ? cleanEntryNameAsDocker : cleanEntryName)(linkname ?? '');
  } catch (e) {
    throw unsafe(
      entry,
      `hard link target "${linkname}": ${(e as KilnError).message.replace(/^refusing layer entry "[^"]*": /, '')}`,
    );
  }
  if (target === '') throw unsafe(entry, 'hard link without a target');
  return target;
}

export async function applyLayer(blob: Readable, root: string, opts: ApplyOptions): Promise<{ diffId: Digest }> {
  const absRoot = path.resolve(root);
  await fsp.mkdir(absRoot, { recursive: true });
  const tar = opts.uncompressed ? blob : openLayer(blob);
  const hasher = new HashingStream();
  tar.on('error', (e) => hasher.destroy(e));
  tar.pipe(hasher);
  const created = new Set<string>(); // paths this layer wrote (opaque whiteouts keep them)
  const dirTimes: [string, number][] = [];

  // Directories (relative) known to be real directories made or checked by this apply. Synchronous
  // metadata calls on purpose: a layer is thousands of tiny operations, each a thread-pool round
  // trip when async. Any removal forgets what was known (it may have removed a checked directory).
  const realDirs = new Set<string>(['']);

  /** Make sure every parent of rel exists as a real directory (never a symlink). */
  const ensureParents = (rel: string, name: string) => {
    const parts = rel.split('/');
    let curRel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      curRel = curRel ? `${curRel}/${parts[i]}` : parts[i]!;
      if (realDirs.has(curRel)) continue;
      const cur = path.join(absRoot, curRel);
      const st = lstatSync(cur, { throwIfNoEntry: false });
      if (!st) {
        // 0755 whatever kiln's umask (a directory an archive implies: BuildKit's, docker's mode).
        mkdirSync(cur, { mode: 0o755 });
        chmodSync(cur, 0o755);
      } else if (st.isSymbolicLink())
        throw unsafe(name, `its parent "${parts.slice(0, i + 1).join('/')}" is a symbolic link`);
      else if (!st.isDirectory())
        throw unsafe(name, `its parent "${parts.slice(0, i + 1).join('/')}" is not a directory`);
      realDirs.add(curRel);
    }
  };

  const removeExisting = async (abs: string, keepDir: boolean) => {
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory() && keepDir) return;
    realDirs.clear();
    realDirs.add('');
    await fsp.rm(abs, { recursive: true, force: true });
  };

  for await (const { header, body } of readTar(hasher)) {
    const rel = opts.names === 'docker' ? cleanEntryNameAsDocker(header.name) : cleanEntryName(header.name);
    if (rel === '') {
      // the root itself ("./"): only its metadata
      if (header.type === 'directory') dirTimes.push([absRoot, header.mtime]);
      continue;
    }
    const base = path.posix.basename(rel);
    const dirRel = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    if (
      opts.only &&
      !opts.only(
        base === OPAQUE
          ? dirRel
          : base.startsWith(WH)
            ? dirRel
              ? `${dirRel}/${base.slice(WH.length)}`
              : base.slice(WH.length)
            : rel,
      )
    ) {
      for await (const _ of body) void _;
      continue;
    }
    if (base.startsWith(WH) && opts.whiteouts !== 'none') {
      ensureParents(rel, header.name);
      const dirAbs = path.join(absRoot, dirRel);
      if (base === OPAQUE) {
        if (opts.whiteouts === 'overlay') {
          await fsp.mkdir(dirAbs, { recursive: true });
          xattr().setAttributeSync(dirAbs, `${overlayXattrPrefix()}opaque`, 'y');
        } else {
          for (const child of await fsp.readdir(dirAbs).catch(() => [] as string[])) {
            const childRel = dirRel ? `${dirRel}/${child}` : child;
            if (!created.has(childRel)) {
              realDirs.clear();
              realDirs.add('');
              await fsp.rm(path.join(dirAbs, child), { recursive: true, force: true });
            }
          }
        }
        continue;
      }
      const target = base.slice(WH.length);
      if (target === '' || target === '.' || target === '..' || target.includes('/'))
        throw unsafe(header.name, 'malformed whiteout');
      const abs = path.join(dirAbs, target);
      await removeExisting(abs, false);
      if (opts.whiteouts === 'overlay') await runChecked('mknod', ['-m', '000', abs, 'c', '0', '0']);
      continue;
    }
    ensureParents(rel, header.name);
    const abs = path.join(absRoot, rel);
    // A user namespace may make no device but overlay's 0/0 whiteout: skipped, as rootless docker
    // and buildah do (a RUN sees /dev from the runtime; the layer's blob keeps the entry).
    if (
      (header.type === 'chardev' || header.type === 'blockdev') &&
      userNamespace().nested &&
      (header.devmajor ?? 0) + (header.devminor ?? 0) !== 0
    ) {
      for await (const _ of body) void _;
      continue;
    }
    // A partial unpack may have left a hard link's target out: the path is a file all the same.
    const h =
      opts.only &&
      header.type === 'hardlink' &&
      !created.has(checkHardLinkTarget(header.name, header.linkname, opts.names))
        ? { ...header, type: 'file' as const, size: 0 }
        : header;
    created.add(rel);
    await writeEntry(abs, rel, h, body, absRoot, removeExisting, opts.names ?? 'strict');
    if (header.type === 'directory') {
      realDirs.add(rel);
      dirTimes.push([abs, header.mtime]);
    } else if (header.type !== 'hardlink') lutimesSync(abs, header.mtime, header.mtime);
  }
  // Directory times last: writing children changed them.
  for (const [d, t] of dirTimes.reverse()) await fsp.utimes(d, t, t).catch(() => undefined);
  const diffId = hasher.digest();
  if (opts.expectedDiffId && diffId !== opts.expectedDiffId) {
    throw new KilnError(
      'DIGEST',
      `layer content does not match its diff_id: expected ${opts.expectedDiffId}, got ${diffId}`,
    );
  }
  return { diffId };
}

async function writeEntry(
  abs: string,
  rel: string,
  h: TarHeader,
  body: AsyncIterable<Buffer>,
  absRoot: string,
  removeExisting: (abs: string, keepDir: boolean) => Promise<void>,
  names: 'strict' | 'docker',
): Promise<void> {
  await removeExisting(abs, h.type === 'directory');
  switch (h.type) {
    case 'directory': {
      if (!lstatSync(abs, { throwIfNoEntry: false })?.isDirectory()) mkdirSync(abs);
      break;
    }
    case 'file': {
      // 'wx': never follow anything that appeared at this path.
      if (h.size <= SMALL_FILE) {
        const fd = openSync(abs, 'wx', 0o600);
        try {
          for await (const chunk of body) {
            for (let off = 0; off < chunk.length;) off += writeSync(fd, chunk, off, chunk.length - off);
          }
        } finally {
          closeSync(fd);
        }
      } else await pipeline(body, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
      break;
    }
    case 'symlink': {
      await fsp.symlink(h.linkname ?? '', abs);
      break;
    }
    case 'hardlink': {
      const target = checkHardLinkTarget(h.name, h.linkname, names);
      const tAbs = path.join(absRoot, target);
      // The target must be inside the root and reached without symlinks.
      const parts = target.split('/');
      let cur = absRoot;
      for (let i = 0; i < parts.length; i++) {
        cur = path.join(cur, parts[i]!);
        const st = await fsp.lstat(cur).catch(() => undefined);
        if (!st) throw unsafe(h.name, `hard link target "${target}" does not exist in the layer or below`);
        if (i < parts.length - 1 && st.isSymbolicLink())
          throw unsafe(h.name, `hard link target "${target}" goes through a symbolic link`);
        if (i === parts.length - 1 && st.isDirectory()) throw unsafe(h.name, 'hard link to a directory');
      }
      await fsp.link(tAbs, abs);
      return; // a hard link shares the target's metadata
    }
    case 'chardev':
    case 'blockdev': {
      await runChecked('mknod', [
        abs,
        h.type === 'chardev' ? 'c' : 'b',
        String(h.devmajor ?? 0),
        String(h.devminor ?? 0),
      ]);
      break;
    }
    case 'fifo': {
      await runChecked('mkfifo', [abs]);
      break;
    }
  }
  lchownInNamespace(abs, h.uid, h.gid);
  if (h.type !== 'symlink') {
    chmodSync(abs, h.mode & 0o7777);
    if (h.xattrs) for (const [k, v] of Object.entries(h.xattrs)) xattr().setAttributeSync(abs, k, v);
  }
  void rel;
}
