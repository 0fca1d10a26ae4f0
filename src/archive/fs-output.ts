/**
 * The filesystem outputs of `kiln build` (BuildKit's `local` and `tar` exporters): the final
 * stage's files, not an image. `-o type=local,dest=DIR` writes them into DIR; `-o
 * type=tar,dest=FILE` (or `dest=-`, stdout) writes one tar of them. No config, no history.
 *
 * As BuildKit's client writes them (fsutil's receiver in merge mode):
 *   - DIR is made 0700 when missing; what is already in it stays unless a file of the output has
 *     its path (then it is replaced);
 *   - files keep their modes, contents, link targets and mtimes; they belong to the user who runs
 *     the build (the image's owners are not kept: a wheel exported by root is root's, by a user
 *     that user's);
 *   - the tar keeps the image's owners, paths relative without "./".
 * The layers are flattened in a staging directory beside DIR (the same filesystem, so the
 * entries are moved into place, not copied) or under the store for a tar.
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { applyLayer, tarDirectory } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';
import { KilnError, tempPathFor } from '../util/index.js';

/** Where the files go: a directory, a tar file, or a tar on a stream (stdout for `dest=-`). */
export type FilesystemOutput =
  { type: 'local'; dest: string } | { type: 'tar'; dest: string } | { type: 'tar'; stream: Writable };

export async function writeFilesystemOutput(store: Store, img: LoadedImage, out: FilesystemOutput): Promise<void> {
  if (out.type === 'local') return writeLocal(store, img, path.resolve(out.dest));
  if ('stream' in out) return writeTar(store, img, out.stream);
  const tmp = tempPathFor(out.dest);
  try {
    await writeTar(store, img, createWriteStream(tmp, { flags: 'wx' }));
    await fsp.rename(tmp, out.dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

async function flatten(store: Store, img: LoadedImage, dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (const [i, l] of img.manifest.layers.entries()) {
    await applyLayer(store.openBlob(l.digest), dir, {
      whiteouts: 'apply',
      expectedDiffId: img.config.rootfs.diff_ids[i],
    });
  }
}

async function writeTar(store: Store, img: LoadedImage, out: Writable): Promise<void> {
  const dir = path.join(store.tmpDir, `tmp-${process.pid}-fsout-${randomBytes(6).toString('hex')}`);
  try {
    await flatten(store, img, dir);
    await pipeline(tarDirectory(dir), out);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function writeLocal(store: Store, img: LoadedImage, dest: string): Promise<void> {
  const st = await fsp.lstat(dest).catch(() => undefined);
  if (st && !st.isDirectory())
    throw new KilnError(
      'USAGE',
      `--output type=local: ${dest} exists and is not a directory`,
      { path: dest },
      { hint: 'give a directory (made when missing) or use type=tar,dest=FILE' },
    );
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const staging = path.join(
    path.dirname(dest),
    `.${path.basename(dest)}.kiln-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    await flatten(store, img, staging);
    await ownAll(staging, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    if (!st) {
      await fsp.chmod(staging, 0o700);
      await fsp.rename(staging, dest);
      return;
    }
    await mergeInto(staging, dest);
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/** Every entry under `dir` (not `dir` itself) given to the user running the build. */
async function ownAll(dir: string, uid: number, gid: number): Promise<void> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    await fsp.lchown(p, uid, gid);
    if (e.isDirectory()) await ownAll(p, uid, gid);
  }
}

/**
 * Move `from`'s entries into `to`: a directory met by a directory merges (and takes the output's
 * mode and times, as BuildKit's receiver sets them), anything else replaces.
 */
async function mergeInto(from: string, to: string): Promise<void> {
  for (const e of await fsp.readdir(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    const there = await fsp.lstat(dst).catch(() => undefined);
    if (there?.isDirectory() && e.isDirectory()) {
      await mergeInto(src, dst);
      const st = await fsp.lstat(src);
      await fsp.chmod(dst, st.mode & 0o7777);
      await fsp.utimes(dst, st.atime, st.mtime);
      continue;
    }
    if (there) await fsp.rm(dst, { recursive: true, force: true });
    await fsp.rename(src, dst);
  }
}
