/**
 * File-system helpers: atomic writes (temp + rename), existence checks, temp directories.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';

/** A unique temp name beside `target` (same file system, so rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.tmp-${path.basename(target)}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Write a file atomically: data goes to a temp file, is fsynced, then renamed over `target`. */
export async function writeFileAtomic(target: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
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
