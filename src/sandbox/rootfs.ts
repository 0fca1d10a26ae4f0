/**
 * Root filesystems for a process and what the process changed in them.
 *
 * overlay: the image's unpacked layer snapshots are read-only lower dirs, a fresh upper dir takes
 * the changes; the new layer is read from the upper dir alone (no walk of the image): a 0/0
 * character device is a deleted path, trusted.overlay.opaque=y a directory whose lower contents
 * are gone. Copy-up is whole (metacopy=off) so a metadata-only change carries the file, and
 * redirect_dir=off so a renamed lower directory is a copy plus a whiteout, as OCI layers say it.
 *
 * native (where overlayfs cannot be mounted, e.g. in an unprivileged container): a flattened copy
 * of the image, whose state (type, mode, owner, size, times, inode, birth time) is remembered before
 * the run and compared after it. Same change list as overlay for the same process: a replaced
 * directory (new inode) is opaque, metadata-only changes count, parents of changes are included.
 *
 * Mount points the runtime needs (/proc, /etc/hosts, RUN --mount targets…) that the image lacks
 * come from an extra top lower dir of stubs, so they never reach the upper dir or the layer.
 */
import {
  lstatSync,
  statSync,
  mkdirSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  lutimesSync,
  chmodSync,
  openSync,
  readSync,
  closeSync,
  readlinkSync,
  renameSync,
  promises as fsp,
  type BigIntStats,
  type Stats,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rememberedSuccess } from './remembered.js';
import { mountTool } from './mount-shell.js';
import { type Change, LeanStats } from '../layer/index.js';
import {
  type DirectoryListing,
  type LstatFields,
  nativeFs,
  nativeFsLoaded,
  type PackedListing,
  runCapture,
  KilnError,
  resolveInImage,
  lchownInNamespace,
  overlayXattrPrefix,
  userNamespace,
  xattr,
} from '../util/index.js';

const xattrRemove = (p: string, n: string) => xattr().removeAttributeSync(p, n);

export type SnapshotterKind = 'overlay' | 'fuse-overlayfs' | 'native';

/** The form an upper dir's markers take: the kernel's, or fuse-overlayfs' (see diffUpper). */
export type UpperFormat = 'overlay' | 'fuse-overlayfs';

/** fuse-overlayfs' whiteout-file prefix and its opaque-directory marker file (the OCI layer names). */
const WH = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';

const OVERLAY_OPTS = ',index=off,metacopy=off,redirect_dir=off';

/** In a user namespace overlayfs keeps its markers in user.overlay.* xattrs (see util/userns.ts). */
const userxattr = () => (userNamespace().nested ? ',userxattr' : '');

/**
 * Mount an overlay at `target`: lower dirs bottom → top; no upper dir (`upper` '') gives a
 * read-only view (it needs two lower dirs at least). The lowerdir option is made of short names of
 * symlinks in `runDir` (mount resolves them relative to its working directory), so 127 layers fit
 * in the one page the kernel allows for mount options.
 */
export async function mountOverlay(
  lowers: string[],
  runDir: string,
  upper: string,
  work: string,
  target: string,
): Promise<void> {
  if (!lowers.length) throw new KilnError('INTERNAL', 'overlay needs a lower dir');
  const links = path.join(runDir, 'l');
  mkdirSync(links, { recursive: true });
  lowers.forEach((dir, i) => symlinkSync(dir, path.join(links, String(i))));
  // overlayfs lists lower dirs top first.
  const lowerOpt = lowers
    .map((_, i) => `l/${i}`)
    .reverse()
    .join(':');
  const rw = upper ? `,upperdir=${path.relative(runDir, upper)},workdir=${path.relative(runDir, work)}` : '';
  const r = await mountWithFallback(
    (opts) =>
      mountTool('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowerOpt}${rw}${opts}`, target], runDir),
    !!upper,
  );
  if (r.code !== 0) {
    throw new KilnError(
      'SANDBOX',
      `cannot mount overlayfs: ${r.stderr.trim()}`,
      { path: target },
      { hint: 'use --snapshotter native where overlayfs is not available (e.g. inside an unprivileged container)' },
    );
  }
}

type MountResult = { code: number | null; stderr: string };

/** A refusal of an option (as opposed to a missing dir, a permission…): mount(8)'s words for EINVAL. */
const refusedOption = /invalid argument|bad option|wrong fs type|unknown|unrecognized/i;

/**
 * Whether this process found the kernel refusing overlayfs' `volatile` (before 5.10, or a user
 * namespace or build that refuses it): then RUN overlays are mounted without it, not tried again.
 */
let volatileRefused = false;

/**
 * Mount with the options kiln wants, falling back to fewer where the kernel refuses them.
 *
 * `writable` (an upper dir: a RUN's root, a throw-away RUN --mount): `volatile` (Linux ≥ 5.10).
 * Unmounting a non-volatile overlay syncs its upper dir's whole file system (the store's, every
 * dirty page of the build so far: 1.6 s measured on a cold many-files build); a volatile one does
 * not, and fsync/syncfs inside the RUN (dpkg, pip, npm) are no-ops on it. The upper is either
 * thrown away or adopted as a snapshot, which the store distrusts after a reboot (store.ts
 * snapshotPresent): nothing relies on the sync. A refusal is remembered for the process.
 *
 * Then index=off,metacopy=off,redirect_dir=off (kernels before 4.19 refuse them, and behave so
 * by default), and userxattr in a user namespace.
 */
export async function mountWithFallback(
  attempt: (opts: string) => Promise<MountResult>,
  writable: boolean,
): Promise<MountResult> {
  const tryVolatile = writable && !volatileRefused;
  let r = await attempt(OVERLAY_OPTS + (tryVolatile ? ',volatile' : '') + userxattr());
  if (r.code === 0 || !refusedOption.test(r.stderr)) return r;
  if (tryVolatile) r = await attempt(OVERLAY_OPTS + userxattr());
  if (r.code !== 0 && refusedOption.test(r.stderr)) r = await attempt(userxattr());
  // Mounted once `volatile` was left out: the kernel refuses it.
  if (tryVolatile && r.code === 0) volatileRefused = true;
  return r;
}

/** Whether RUN overlays of this process are mounted `volatile` (not refused so far). */
export function overlayVolatile(): boolean {
  return !volatileRefused;
}

/** Tests: forget what mountWithFallback learnt of the kernel. */
export function forgetVolatileRefusal(): void {
  volatileRefused = false;
}

export async function unmount(target: string): Promise<void> {
  const r = await mountTool('umount', [target]);
  if (r.code === 0 || /not mounted|no mount point/.test(r.stderr)) return;
  const lazy = await mountTool('umount', ['-l', target]);
  if (lazy.code !== 0 && !/not mounted|no mount point/.test(lazy.stderr))
    throw new KilnError('SANDBOX', `cannot unmount ${target}: ${lazy.stderr.trim()}`);
}

/** `probe(dir)` run once per directory: later calls share the first one's answer. */
export function probedOnce(
  probe: (dir: string) => Promise<string | undefined>,
): (dir: string) => Promise<string | undefined> {
  const answers = new Map<string, Promise<string | undefined>>();
  return (dir) => {
    let p = answers.get(dir);
    if (!p) {
      p = probe(dir);
      answers.set(dir, p);
    }
    return p;
  };
}

/** Can this process mount overlayfs with its upper dir in `scratch`? (probed once per directory) */
export async function canMountOverlay(scratch: string): Promise<boolean> {
  return (await overlayRefusal(scratch)) === undefined;
}

/**
 * Why overlayfs cannot be mounted with its upper dir in `scratch`; undefined when it can (probed
 * once per directory, and a success remembered until the next boot for the directory's file
 * system, the kernel and the user: remembered.ts).
 */
export const overlayRefusal: (scratch: string) => Promise<string | undefined> = probedOnce((scratch) =>
  rememberedSuccess('overlay-works', dirFacts(scratch), () => probeOverlay(scratch)),
);

/** What overlay's answer for `scratch` depends on: where it is, its file system, the kernel. */
function dirFacts(dir: string): string | undefined {
  try {
    const st = statSync(dir);
    return `${path.resolve(dir)} dev ${st.dev} ino ${st.ino} kernel ${os.release()}`;
  } catch {
    return undefined; // made by the probe: remembered from the next process on
  }
}

async function probeOverlay(scratch: string): Promise<string | undefined> {
  // Named <pid>-… so that another kiln's stale-run cleanup sees its owner alive (sandbox/rundir.ts).
  const d = path.join(scratch, `${process.pid}-overlay-probe`);
  try {
    for (const s of ['lower', 'upper', 'work', 'merged']) mkdirSync(path.join(d, s), { recursive: true });
    const r = await mountTool('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${d}/lower,upperdir=${d}/upper,workdir=${d}/work${userxattr()}`,
      `${d}/merged`,
    ]);
    if (r.code !== 0) return mountError(r.stderr, `${d}/merged`) || `mount exited with ${r.code}`;
    await unmount(`${d}/merged`);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await fsp.rm(d, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** mount(8)'s complaint in a few words: its first line, without "mount: <target>: " (the next ones point at dmesg). */
export function mountError(stderr: string, target: string): string {
  const line = stderr.split('\n').find((l) => l.trim()) ?? '';
  return line
    .trim()
    .replace(/^mount: /, '')
    .replace(`${target}: `, '')
    .replace(/\.$/, '')
    .trim();
}

function attr(p: string, name: string): string | undefined {
  try {
    return xattr().getAttributeSync(p, name).toString();
  } catch {
    return undefined;
  }
}

/**
 * Changes recorded in an overlay upper dir (read after unmounting): no walk of the lower filesystem.
 *
 * `lowers` (the image's layer dirs, bottom → top): an entry overlay copied up but left as it was
 * (a file opened for writing and not written, as useradd's /etc/.pwd.lock; a directory copied up
 * only for such a file) is not a change, as BuildKit's overlay differ (`sameDirent`) and the native
 * snapshotter say: the layer is the same whichever snapshotter made it.
 *
 * An opaque marker on a directory the lower layers do not have (fuse-overlayfs marks every
 * directory it makes) hides nothing: it is no change, as the native snapshotter says.
 *
 * `format` 'fuse-overlayfs' (its main.c, v1.10): a deleted path is a 0/0 character device when it
 * could mknod one, else an empty file `.wh.NAME`; an opaque directory has the xattr
 * trusted.overlay.opaque=y (root), user.fuseoverlayfs.opaque=y (where trusted.* is refused: a user
 * namespace) and always a `.wh..wh..opq` file; other `.wh.`-prefixed entries are its own
 * bookkeeping. A copy-up keeps mode, owner, times and xattrs (not its user.fuseoverlayfs.origin);
 * `ln` of a lower file copies it up and links the copy, as the kernel does.
 */
export function diffUpper(upper: string, lowers: string[] = [], format: UpperFormat = 'overlay'): Change[] {
  return [...upperChanges(upper, lowers, format)];
}

/** What upperChanges is told besides the changes. */
export interface UpperWalkOptions {
  /**
   * Told the listing of each directory the upper dir holds whole — one no lower layer has, under no
   * opaque directory (a builder's output directory) — as a walk of the upper dir read it: its names
   * sorted as strings, with their lstat fields packed (LeanStats.pack). Only a directory read in
   * one native call (so in byte order) whose names sort the same both ways, and with no overlay
   * marker (whiteout), no socket and no file with other names in it: what a fresh walk of it finds,
   * in a view of the layers as in the upper dir (a hard link's device number would differ there).
   * Told when its entries have been walked (its subdirectories' before it).
   */
  onListing?: (rel: string, listing: PackedListing) => void;
}

/**
 * diffUpper's changes one at a time, in the layer's order (write.ts comparePaths, a directory's
 * entry before its opaque marker), as the walk finds them: nothing is held for the whole layer.
 * The layer's order is a pre-order walk with each directory's names in byte order, so each
 * directory's names are sorted and emitted as they are read. A directory the lower layers have
 * is held back (on `held`, with its ancestors that are held too) until it is decided: the first
 * change below it emits it, else it is a change only when it differs from the lower one.
 *
 * Each directory is read with the native helper when it can (every entry's lstat and whether it
 * has xattrs, in one call, already in byte order; see NATIVE_LISTING_FROM): an entry with no
 * xattrs is not asked for markers, and its change says so (`noXattrs`), so the tar writer does not
 * list them again.
 */
export function* upperChanges(
  upper: string,
  lowers: string[] = [],
  format: UpperFormat = 'overlay',
  opts: UpperWalkOptions = {},
): Generator<Change, void, undefined> {
  const top = [...lowers].reverse();
  const prefix = overlayXattrPrefix();
  const fuse = format === 'fuse-overlayfs';
  const onListing = opts.onListing;
  // Does a lower layer have `r` (inLower: its parent may have entries below)? Without lowers (not
  // known), every marker counts.
  const hides = (r: string, inLower: boolean) => !top.length || (inLower && !!lowerEntry(top, r));
  const isOpaque = (abs: string) =>
    fuse
      ? ['trusted.overlay.opaque', 'user.overlay.opaque', 'user.fuseoverlayfs.opaque'].some(
          (n) => attr(abs, n) === 'y',
        ) || lstatOrUndefined(path.join(abs, WH_OPAQUE)) !== undefined
      : attr(abs, `${prefix}opaque`) === 'y';
  // Directories of the lower layers not yet decided, outermost first: emitted before the first
  // change below them (each `yield` of a change is preceded by theirs).
  const held: Change[] = [];
  // The upper dir with a slash: paths below it are joined by hand (path.join per entry was a
  // measurable part of a many-file layer's tar).
  const base = upper.endsWith('/') ? upper : `${upper}/`;
  // `inLower`: the directory may have entries below it (false under a directory that is new or
  // opaque: nothing of it was copied up). `whole`: no lower layer has it nor anything below it (a
  // directory made by the step, under no opaque one): its listing may be handed on (onListing).
  function* walk(rel: string, inLower: boolean, whole: boolean): Generator<Change, void, undefined> {
    const dir = rel ? base + rel : upper;
    const { names: read, listing } = readUpperDirectory(dir);
    // Each name with the path it changes (a fuse-overlayfs whiteout file `.wh.NAME` deletes NAME),
    // in byte order of that path; of one path, the entry itself before a whiteout file. The native
    // listing is in byte order already, and the kernel's upper dir has no whiteout files.
    const items: { name: string; wh: boolean; i: number }[] = [];
    if (listing && !fuse) listing.names.forEach((name, i) => items.push({ name, wh: false, i }));
    else {
      const keyed: { name: string; key: Buffer; wh: boolean; i: number }[] = [];
      read.forEach((name, i) => {
        if (fuse && name.startsWith(WH)) {
          const hidden = name.slice(WH.length);
          // `.wh..wh..opq` (read with its directory), and whiteouts of such names, are markers.
          if (hidden && !hidden.startsWith(WH)) keyed.push({ name, key: Buffer.from(hidden), wh: true, i });
          return;
        }
        keyed.push({ name, key: Buffer.from(name), wh: false, i });
      });
      keyed.sort((a, b) => Buffer.compare(a.key, b.key) || Number(a.wh) - Number(b.wh));
      items.push(...keyed);
    }
    // The listing handed on (onListing), while every entry is one a fresh walk reads as it is here.
    const names = listing?.names;
    let handed: Float64Array | undefined =
      onListing && whole && !fuse && names && !names.some((n) => SURROGATE.test(n))
        ? new Float64Array(names.length * LeanStats.PACKED)
        : undefined;
    // fuse-overlayfs' whiteout files, and a character-device whiteout may say the same path again.
    let lastDeleted: string | undefined;
    for (const { name, wh, i } of items) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = base + r;
      if (wh) {
        const d = join(rel, name.slice(WH.length));
        if (d !== lastDeleted && lstatSync(abs).isFile() && hides(d, inLower)) {
          lastDeleted = d;
          if (held.length) yield* held.splice(0);
          yield { kind: 'delete', path: d };
        }
        continue;
      }
      const listed = listing?.stats(i);
      const st: LstatFields = listed ?? lstatSync(abs);
      // Without the helper's answer, an entry may have xattrs.
      const xattrs = !listing || listing.mayHaveXattrs(i);
      if (handed) {
        if (!listed || st.isSocket() || (!st.isDirectory() && st.nlink > 1)) handed = undefined;
        else listed.pack(handed, i);
      }
      // A whiteout: a 0/0 character device, or (kernels ≥ 6.7 in nested setups) an empty file
      // marked with trusted.overlay.whiteout.
      if (
        (st.isCharacterDevice() && st.rdev === 0) ||
        (!fuse && st.isFile() && st.size === 0 && xattrs && attr(abs, `${prefix}whiteout`) !== undefined)
      ) {
        handed = undefined;
        // A whiteout of what no lower layer has hides nothing (fuse-overlayfs leaves them where a
        // step made and removed a file, as useradd's /etc/passwd.lock): no change, as native says.
        if (hides(r, inLower)) {
          lastDeleted = r;
          if (held.length) yield* held.splice(0);
          yield { kind: 'delete', path: r };
        }
        continue;
      }
      const lower = inLower ? lowerEntry(top, r) : undefined;
      // Handed to the tar writer at once: the lean copy (~250 B, not ~900 B) only while it is held.
      const add: Change = {
        kind: 'add',
        path: r,
        stats: listed ?? new LeanStats(st),
        ...(xattrs ? {} : { noXattrs: true }),
      };
      if (st.isDirectory()) {
        const opaque = (!top.length || !!lower) && (fuse || xattrs) && isOpaque(abs);
        if (opaque || !lower) {
          if (held.length) yield* held.splice(0);
          yield add;
          if (opaque) yield { kind: 'opaque', path: r };
          // Made by the step (under a directory that is, or one the lower layers have): whole.
          yield* walk(r, false, !opaque && (whole || inLower));
          continue;
        }
        held.push(add);
        yield* walk(r, true, false);
        if (held.at(-1) !== add) continue; // a change below emitted it
        held.pop();
        // fuse-overlayfs moves each copy-up into its directory (the kernel then restores the
        // directory's times): a directory with entries has its mtime from that, not from the step.
        if (!sameEntry(abs, st, lower.host, lower.stat, fuse && readdirSync(abs).length > 0)) {
          if (held.length) yield* held.splice(0);
          yield add;
        }
        continue;
      }
      // An unchanged copy-up is no change, unless the step hard-linked it (`ln a b`: the upper's inode
      // has other names): the layer keeps it so the new name stays a link, as BuildKit's image has it.
      if (lower && !(st.isFile() && st.nlink > 1) && sameEntry(abs, st, lower.host, lower.stat)) continue;
      // Directories of the lower layers held so far come first (emitted by the first change below them).
      if (held.length) yield* held.splice(0);
      yield add;
    }
    if (handed && names) onListing!(rel, { names, stats: handed });
  }
  yield* walk('', top.length > 0, false);
}

/**
 * Entries a directory has at least before the differ loads the native helper to read it: its
 * dlopen (1–2 ms of CPU) is more than a few dozen lstats, and a RUN that changed a few files (a
 * one-file rebuild's) need not pay it. Once loaded (by a large directory, the tar's file reads, the
 * deflater), every directory is read with it.
 */
const NATIVE_LISTING_FROM = 32;

/** A directory of the upper dir: its names (byte order when `listing`, the native helper's, is there). */
function readUpperDirectory(dir: string): { names: string[]; listing?: DirectoryListing } {
  if (!nativeFsLoaded()) {
    const names = readdirSync(dir);
    if (names.length < NATIVE_LISTING_FROM) return { names };
  }
  const listing = nativeFs().readDirectory(dir);
  return listing ? { names: listing.names, listing } : { names: readdirSync(dir) };
}

/** A character of a name above U+FFFF: its names then sort as strings in another order than as bytes. */
const SURROGATE = /[\ud800-\udfff]/;

const join = (rel: string, name: string) => (rel ? `${rel}/${name}` : name);

/** The entry at `rel` in the topmost of `top` (layer dirs, top first) that has it, unless a layer above hides it. */
function lowerEntry(top: string[], rel: string): { host: string; stat: Stats } | undefined {
  const parts = rel.split('/');
  for (const layer of top) {
    const host = path.join(layer, rel);
    const st = lstatOrUndefined(host);
    if (st) return st.isCharacterDevice() && st.rdev === 0 ? undefined : { host, stat: st };
    // Not here: does this layer hide the ones below (a whiteout, a non-directory or an opaque
    // directory on the way)?
    for (let i = 1; i < parts.length; i++) {
      const dir = path.join(layer, ...parts.slice(0, i));
      const d = lstatOrUndefined(dir);
      if (!d) break;
      if (!d.isDirectory() || attr(dir, `${overlayXattrPrefix()}opaque`) === 'y') return undefined;
    }
  }
  return undefined;
}

/**
 * BuildKit's sameDirent (util/overlay): same type, mode, owner, device, xattrs (capabilities…);
 * for a non-directory the same size and mtime, and when both mtimes are whole seconds (as a
 * layer's tar leaves them, so a rewrite in the same second cannot be told by time) the same
 * content or link target. A directory's mtime counts too, as the native snapshotter counts it,
 * unless `anyDirMtime` (fuse-overlayfs' upper dir with copied-up entries: its mtime is theirs).
 */
export function sameEntry(a: string, sa: LstatFields, b: string, sb: LstatFields, anyDirMtime = false): boolean {
  if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid || sa.rdev !== sb.rdev) return false;
  if (!sameXattrs(a, b, sa.isSymbolicLink())) return false;
  if (sa.isDirectory() && anyDirMtime) return true;
  const ma = lstatSync(a, { bigint: true }).mtimeNs;
  const mb = lstatSync(b, { bigint: true }).mtimeNs;
  if (ma !== mb) return false;
  if (sa.isDirectory()) return true;
  if (sa.size !== sb.size) return false;
  if (ma % 1_000_000_000n !== 0n) return true;
  if (sa.isSymbolicLink()) return readlinkSync(a) === readlinkSync(b);
  return !sa.isFile() || sa.size === 0 || sameContent(a, b);
}

/** The xattrs of `p` whose names `keep` takes, as one comparable string ('' when none or unreadable). */
export function xattrFingerprint(p: string, keep: (name: string) => boolean): string {
  let names: string[];
  try {
    names = xattr().listAttributesSync(p);
  } catch {
    return '';
  }
  return names
    .filter(keep)
    .sort()
    .map((n) => {
      try {
        return `${n}=${xattr().getAttributeSync(p, n).toString('hex')}`;
      } catch {
        return `${n}?`;
      }
    })
    .join('\0');
}

const notOverlayInternal = (n: string) =>
  !n.startsWith('trusted.overlay.') && !n.startsWith('user.overlay.') && !n.startsWith('user.fuseoverlayfs.');

/** The xattrs of both, overlayfs's own left out (a copy-up adds origin, impure…). */
function sameXattrs(a: string, b: string, symlink: boolean): boolean {
  if (symlink) return true; // the calls would follow the link; layers carry no symlink xattrs
  return xattrFingerprint(a, notOverlayInternal) === xattrFingerprint(b, notOverlayInternal);
}

/** Whether two regular files have the same bytes (read side by side, 64 KiB at a time). */
export function sameContent(a: string, b: string): boolean {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(1 << 16);
    const bb = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null);
      const nb = readSync(fb, bb, 0, bb.length, null);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/** What the native snapshotter remembers of each path before the process runs. */
export type TreeState = Map<string, string>;

function fingerprint(st: BigIntStats): string {
  // 'h': a file with other names (separateHardLinks finds them in the state, without a walk).
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? (st.nlink > 1 ? 'h' : 'f') : 'o';
  // A directory's ctime moves when an entry is added or removed (then a descendant changed and the
  // directory is included anyway, as overlay copies it up) or when its own metadata changes.
  return `${type} ${st.mode} ${st.uid} ${st.gid} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.ino} ${st.birthtimeNs} ${st.rdev}`;
}

/** Identity of a directory: a replaced one (removed and made again) has another. */
function identity(fp: string): string {
  const f = fp.split(' ');
  return `${f[0]} ${f[7]} ${f[8]}`;
}

/**
 * overlayfs with index=off (kiln's mounts, and containerd's, so BuildKit's) copies up one name of a
 * lower file that has several: a write, chmod or touch through it leaves the other names as they
 * were. In a native root the names share one inode, so each such file is given its own copy before
 * a RUN (its directory's times kept): the RUN changes what it would change under overlay, and the
 * layer says it as overlay's does. `state`: the tree's (type 'h' in it), brought up to date.
 * Returns the paths (relative) copied and their directories.
 */
export async function separateHardLinks(root: string, state: TreeState): Promise<string[]> {
  const linked = [...state].filter(([, fp]) => fp.startsWith('h ')).map(([r]) => r);
  const touched = new Set<string>();
  for (const r of linked) {
    const abs = path.join(root, r);
    const dir = path.dirname(abs);
    const ns = lstatSync(dir, { bigint: true }).mtimeNs;
    const mtime = `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
    const tmp = path.join(dir, `.kiln-own-copy-${path.basename(abs)}`);
    const c = await runCapture('cp', ['-a', '--', abs, tmp]);
    if (c.code !== 0)
      throw new KilnError('SANDBOX', `cannot copy the hard-linked file /${r}: ${c.stderr.trim()}`, { path: abs });
    renameSync(tmp, abs);
    const t = await runCapture('touch', ['-h', '-m', '-d', mtime, '--', dir]);
    if (t.code !== 0)
      throw new KilnError('SANDBOX', `cannot set the time of /${path.posix.dirname(r)}: ${t.stderr.trim()}`);
    touched.add(r);
    if (path.posix.dirname(r) !== '.') touched.add(path.posix.dirname(r));
  }
  refreshState(root, state, touched);
  return [...touched];
}

/** `skip`: paths (relative) left out with what is below them (the host-root backend's kept paths). */
export function snapshotTree(root: string, skip?: (rel: string) => boolean): TreeState {
  const state: TreeState = new Map();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip?.(r)) continue;
      const st = lstatSync(path.join(root, r), { bigint: true });
      state.set(r, fingerprint(st));
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return state;
}

/**
 * The state of `rels` (paths relative to `root`) read again into `state`: what a walk would now
 * find there, without the walk (a path gone is dropped, with what the state had below it when it
 * was a directory). For the few paths a caller changed in a tree whose state it holds.
 */
export function refreshState(root: string, state: TreeState, rels: Iterable<string>): void {
  for (const r of rels) {
    if (r === '' || r === '.') continue; // the root itself is no entry
    const st = lstatSync(path.join(root, r), { bigint: true, throwIfNoEntry: false });
    if (st) {
      state.set(r, fingerprint(st));
      continue;
    }
    state.delete(r);
    for (const k of state.keys()) if (k.startsWith(`${r}/`)) state.delete(k);
  }
}

/**
 * Native snapshotter: the changes between the tree's state before the run and now, as overlay
 * would record them, and the state now (the walk that found them: the state before the next run
 * of a root that is kept).
 */
export function diffTrees(
  root: string,
  before: TreeState,
  skip?: (rel: string) => boolean,
): { changes: Change[]; after: TreeState } {
  const after = snapshotTree(root, skip);
  const added = new Set<string>();
  const addWithParents = (p: string) => {
    for (let cur = p; cur !== '.' && cur !== ''; cur = path.posix.dirname(cur)) {
      if (added.has(cur)) break;
      added.add(cur);
    }
  };
  // Directories that replaced what was there (a directory removed and made again, or a file made a
  // directory): overlay marks them opaque, and nothing below them needs a whiteout.
  const opaque = new Set<string>();
  for (const [p, fp] of after) {
    const old = before.get(p);
    if (old === fp) continue;
    addWithParents(p);
    if (fp.startsWith('d ') && old !== undefined && identity(old) !== identity(fp)) opaque.add(p);
  }
  const underOpaque = (p: string) => {
    for (let cur = path.posix.dirname(p); cur !== '.'; cur = path.posix.dirname(cur)) if (opaque.has(cur)) return true;
    return false;
  };
  const out: Change[] = [];
  for (const p of before.keys()) {
    if (after.has(p)) continue;
    const parent = path.posix.dirname(p);
    // The whole parent went (its whiteout covers this) or is no directory now (a file replaced it:
    // no whiteout can be under a file, and the file hides what was there).
    if (parent !== '.' && !after.get(parent)?.startsWith('d ')) continue;
    if (underOpaque(p)) continue;
    out.push({ kind: 'delete', path: p });
    if (parent !== '.') addWithParents(parent);
  }
  for (const p of added) out.push({ kind: 'add', path: p });
  for (const p of opaque) out.push({ kind: 'opaque', path: p });
  return { changes: out, after };
}

export interface Stub {
  /** Absolute path inside the container. */
  path: string;
  kind: 'dir' | 'file';
}

/**
 * Make the mount points `stubs` exist in `dir`, symlinks of the image resolved inside it:
 * - overlay: `dir` is an extra top lower dir and `image` the layer dirs (bottom → top); copies of
 *   the image's directories on the way keep their mode, owner and times, so the merged view shows
 *   the image's, and nothing reaches the upper dir (or the layer);
 * - native: `dir` is the rootfs itself (`image` the same dir), remembered before the run.
 * `onMake` is told each path (relative) just before it is made: a kept native root loses them again.
 * Returns the real paths of the mount points (relative to the root), for the runtime.
 */
export function makeStubs(
  dir: string,
  image: string | string[],
  stubs: Stub[],
  onMake?: (rel: string) => void,
): Map<string, string> {
  const real = new Map<string, string>();
  const times: { host: string; atime: Date; mtime: Date }[] = [];
  for (const s of stubs) {
    const where = resolveInImage(image, s.path);
    real.set(s.path, where.rel);
    if (where.stat || !where.rel) continue; // the image has it
    const parts = where.rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      const here = path.join(dir, rel);
      if (lstatOrUndefined(here)) continue;
      const img = resolveInImage(image, `/${rel}`, { followLast: false }).stat;
      if (img && !img.isDirectory()) break; // a non-directory of the image is in the way: the runtime will say so
      onMake?.(rel);
      if (img) {
        mkdirSync(here);
        chmodSync(here, img.mode & 0o7777);
        lchownInNamespace(here, img.uid, img.gid);
        times.push({ host: here, atime: img.atime, mtime: img.mtime });
      } else if (i === parts.length && s.kind === 'file') {
        writeFileSync(here, '', { mode: 0o644 });
      } else {
        mkdirSync(here, { mode: 0o755 });
      }
    }
  }
  // Times last, deepest first: making a child changed its parent's.
  for (const t of times.reverse()) lutimesSync(t.host, t.atime, t.mtime);
  return real;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Flatten unpacked layer dirs (overlay-marker form, bottom → top) into `dest`: each layer copied
 * over the previous ones by tar (modes, owners, times, xattrs, links, devices kept), its whiteouts
 * deleting what they hide and its opaque directories emptied first.
 */
export async function flattenLowerDirs(lowers: string[], dest: string): Promise<void> {
  mkdirSync(dest, { recursive: true });
  for (const layer of lowers) {
    const whiteouts: string[] = [];
    const opaques: string[] = [];
    const walk = (rel: string) => {
      for (const name of readdirSync(path.join(layer, rel))) {
        const r = rel ? `${rel}/${name}` : name;
        const st = lstatSync(path.join(layer, r));
        if (st.isCharacterDevice() && st.rdev === 0) whiteouts.push(r);
        else if (st.isDirectory()) {
          if (attr(path.join(layer, r), `${overlayXattrPrefix()}opaque`) === 'y') opaques.push(r);
          walk(r);
        }
      }
    };
    walk('');
    for (const r of [...whiteouts, ...opaques]) await fsp.rm(path.join(dest, r), { recursive: true, force: true });
    const r = await runCapture('sh', [
      '-c',
      'tar -C "$1" --xattrs "--xattrs-include=*" -cf - . | tar -C "$2" --xattrs "--xattrs-include=*" --same-owner -xpf -',
      'sh',
      layer,
      dest,
    ]);
    if (r.code !== 0)
      throw new KilnError('SANDBOX', `cannot copy layer ${layer}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`, {
        path: layer,
      });
    for (const w of whiteouts) await fsp.rm(path.join(dest, w), { force: true });
    for (const d of opaques) {
      try {
        xattrRemove(path.join(dest, d), `${overlayXattrPrefix()}opaque`);
      } catch {
        // not copied: fine
      }
    }
  }
}
