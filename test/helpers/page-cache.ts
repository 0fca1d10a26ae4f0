/**
 * The page cache in tests of cold reads: files written so that their pages can be dropped, and
 * dropped for one test's files alone (not `drop_caches`, which would slow every other test).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, writeFileSync } from 'node:fs';

/** Write `body` to `file` and make it reach the disk (clean pages can be evicted). */
export function writeSynced(file: string, body: string): void {
  writeFileSync(file, body);
  const fd = openSync(file, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

/** Drop `files`' pages from the page cache (POSIX_FADV_DONTNEED through dd). */
export function evict(files: string[]): void {
  for (const f of files) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
}
