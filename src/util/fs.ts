/**
 * File-system helpers: atomic writes (temp + rename), existence checks, temp directories.
 */
import { randomBytes } from 'node:crypto';
import { type Dirent, lstatSync, promises as fsp, readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { joinPath } from './paths.js';

/** A unique temp name beside `target` (same file system, so rename is atomic). */
export function tempPathFor(target: string): string {
  return joinPath(
    path.dirname(target),
    `.tmp-${path.basename(target)}-${process.pid}-${randomBytes(6).toString('hex')}`,
  );
}

/**
 * Write a file atomically: data goes to a temp file, is fsynced, then renamed over `target`.
 * `durable: false` skips the fsync, for files a crash may lose or leave empty because every reader
 * validates them and treats a damaged one as absent (cache records): the rename still makes the
 * write all or nothing for a concurrent reader.
 */
export async function writeFileAtomic(
  target: string,
  data: string | Buffer | Iterable<string> | AsyncIterable<string>,
  mode = 0o644,
  opts: { durable?: boolean } = {},
): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    // Pieces (a large JSON document made as it is written): never the whole text at once.
    if (typeof data === 'string' || Buffer.isBuffer(data)) await fh.writeFile(data);
    else for await (const piece of data) await fh.write(piece);
    if (opts.durable !== false) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Make a fresh temp directory under `parent` (default: os.tmpdir()). */
export async function makeTempDir(prefix = 'kiln-', parent = os.tmpdir()): Promise<string> {
  await fsp.mkdir(parent, { recursive: true });
  return fsp.mkdtemp(joinPath(parent, prefix));
}

/**
 * A writable temp file beside `target`, opened before any work (so a missing directory or a
 * read-only one is one clear error naming `target`, never a raw ENOENT on a temp name).
 */
export async function openOutputFile(
  target: string,
): Promise<{ stream: import('node:stream').Writable; commit(): Promise<void>; abort(): Promise<void> }> {
  const tmp = tempPathFor(target);
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fsp.open(tmp, 'wx', 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const { KilnError } = await import('./errors.js');
    const why =
      code === 'ENOENT'
        ? `the directory ${path.dirname(target)} does not exist`
        : code === 'EACCES' || code === 'EPERM'
          ? `no permission to write in ${path.dirname(target)}`
          : code === 'ENOTDIR'
            ? `${path.dirname(target)} is not a directory`
            : (e as Error).message;
    throw new KilnError(
      code === 'ENOENT' ? 'NOT_FOUND' : 'USAGE',
      `cannot write ${target}: ${why}`,
      { path: target },
      { hint: 'give -o a path in an existing, writable directory' },
    );
  }
  const stream = fh.createWriteStream();
  return {
    stream,
    commit: async () => {
      await fsp.rename(tmp, target);
    },
    abort: async () => {
      stream.destroy();
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    },
  };
}

/** Unlinks in flight at once: the disk's queue kept busy (a sequential removal is 4× slower in wall time). */
const REMOVE_WINDOW = 512;

/**
 * `rm -rf path` in bounded memory. Node 20's `fs.promises.rm(…, { recursive: true })` starts an
 * unlink for every entry of a directory at once, and every directory at once: ~245 MB of RSS for
 * a tree of 100,000 files (a RUN's upper dir). This walks depth first, one directory's names at a
 * time, with at most REMOVE_WINDOW unlinks in flight. A missing path is no error.
 */
export async function removeTree(p: string): Promise<void> {
  const gone = (e: unknown) => {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  };
  const removeDir = async (dir: string): Promise<void> => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      gone(e);
    }
    let files: string[] = [];
    const unlinkAll = async () => {
      await Promise.all(files.map((f) => fsp.unlink(f).catch(gone)));
      files = [];
    };
    for (const d of entries) {
      const q = `${dir}/${d.name}`;
      if (d.isDirectory()) await removeDir(q);
      else if (files.push(q) >= REMOVE_WINDOW) await unlinkAll();
    }
    await unlinkAll();
    // Through the thread pool: the rmdir of a directory something was mounted on (a COPY view's
    // rootfs and parts, torn down while the next steps run) takes 1–6 ms in the kernel, which a
    // synchronous call took from the build's one JavaScript thread.
    await fsp.rmdir(dir).catch(gone);
  };
  const root = p.length > 1 ? p.replace(/\/+$/, '') : p;
  let isDir: boolean;
  try {
    isDir = lstatSync(root).isDirectory();
  } catch (e) {
    return gone(e);
  }
  if (isDir) await removeDir(root);
  else await fsp.unlink(root).catch(gone);
}
