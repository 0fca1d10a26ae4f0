/**
 * File-system helpers: atomic writes (temp + rename), existence checks, temp directories.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';

/** A unique temp name beside `target` (same file system, so rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(
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
  data: string | Buffer,
  mode = 0o644,
  opts: { durable?: boolean } = {},
): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
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
  return fsp.mkdtemp(path.join(parent, prefix));
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
