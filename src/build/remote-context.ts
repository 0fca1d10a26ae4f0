/**
 * Build contexts that are not a local directory, as `docker build` takes them:
 *   - `-`: stdin, a tar archive (plain, gzip, bzip2, xz) of the context, or a Dockerfile alone
 *     (the context is then empty);
 *   - a git repository (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`):
 *     checked out shallowly as `ADD` of a repository is (build/add-git.ts), without .git;
 *   - an `http(s)://` URL: a tarball (unpacked) or a text file (the Dockerfile).
 * The context lands in a temporary directory under the store, removed after the build. stdin and
 * downloads are streamed to disk, never held in memory.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../util/errors.js';
import { runCapture } from '../util/proc.js';
import { checkoutGit, parseGitSource } from './add-git.js';
import { downloadUrl, isHttpUrl } from './add-url.js';

export interface PreparedContext {
  /** The context directory. */
  dir: string;
  /** The Dockerfile, when the input was one rather than a context (stdin or a URL of a text file). */
  dockerfileText?: string;
  /** Remove what was fetched. */
  cleanup(): void;
}

/** Is this context argument something to fetch (not a local directory)? */
export function isRemoteContext(spec: string): boolean {
  return spec === '-' || isHttpUrl(spec) || parseGitSource(spec) !== undefined;
}

export async function prepareRemoteContext(spec: string, o: { tmpDir: string; stdin: Readable; signal?: AbortSignal }): Promise<PreparedContext> {
  const work = path.join(o.tmpDir, `tmp-${process.pid}-context-${randomBytes(6).toString('hex')}`);
  mkdirSync(work, { recursive: true });
  const cleanup = () => rmSync(work, { recursive: true, force: true });
  try {
    const git = parseGitSource(spec);
    if (git) {
      const c = await checkoutGit({ source: git, keepGitDir: false, tmpDir: work, place: {} });
      return { dir: c.root, cleanup };
    }
    let file: string;
    if (spec === '-') {
      file = path.join(work, 'stdin');
      await pipeline(o.stdin, createWriteStream(file), { signal: o.signal });
    } else {
      const d = await downloadUrl({ url: spec, tmpDir: work, place: {}, signal: o.signal });
      file = path.join(d.dir, d.name);
    }
    const dir = path.join(work, 'context');
    mkdirSync(dir);
    if (!isArchive(file)) return { dir, dockerfileText: readFileSync(file, 'utf8'), cleanup };
    // As the unpacking of ADD: members keep their modes, implied directories are 0755.
    const r = await runCapture('tar', ['-x', '-p', '-f', file, '-C', dir], { umask: 0o022 });
    if (r.code !== 0) throw new KilnError('BUILD', `the build context from ${spec === '-' ? 'stdin' : spec} is not a readable archive: ${r.stderr.trim().split('\n').at(-1) ?? ''}`, {}, { hint: 'give a tar (plain, gzip, bzip2 or xz) or a Dockerfile' });
    if (readdirSync(dir).length === 0) throw new KilnError('BUILD', `the build context from ${spec === '-' ? 'stdin' : spec} is an empty archive`);
    return { dir, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** A tar archive, plain or compressed (gzip, bzip2, xz), by its first bytes. */
export function isArchive(file: string): boolean {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(512);
  const n = readSync(fd, b, 0, 512, 0);
  closeSync(fd);
  if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
  if (n >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (n >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
  return n >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}
