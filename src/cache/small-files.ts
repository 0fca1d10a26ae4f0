/**
 * The cache's small files (records, gc roots, explain records: a few KB each, one or two per step,
 * most of them on a build's critical path) are written with synchronous calls: ~10 µs each, where
 * a trip through the thread pool waited behind the layer I/O of the stages running beside it.
 * None is fsynced: every reader validates what it reads and takes a damaged or empty file for an
 * absent one (records.ts, explain.ts say what that costs each).
 */
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { tempPathFor } from '../util/index.js';

/** Write `data` to a fresh temp file beside `target` (its directory made when missing); its path and inode. */
export function writeTemp(target: string, data: string): { path: string; ino: string } {
  const tmp = tempPathFor(target);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(path.dirname(target), { recursive: true });
    fd = openSync(tmp, 'wx', 0o644);
  }
  try {
    const buf = Buffer.from(data);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
    return { path: tmp, ino: String(fstatSync(fd, { bigint: true }).ino) };
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `target` with `data` (temp + rename), not fsynced. The old file is removed first: a
 * rename over an existing file makes ext4 (auto_da_alloc) start writing the new one's data back
 * inside the rename, 0.2-0.3 ms on a quiet disk and several ms on a busy one, in the build's one
 * JavaScript thread, once per step that ran. So a concurrent reader may find the file absent for
 * a moment: only for files whose absence costs nothing but detail (explain records).
 */
export function replaceFile(target: string, data: string): void {
  const tmp = writeTemp(target, data).path;
  try {
    rmSync(target, { force: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
