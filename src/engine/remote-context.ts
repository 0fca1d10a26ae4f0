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
import { createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../util/index.js';
import { checkoutGit, parseGitSource } from './add-git.js';
import { downloadUrl, isHttpUrl } from './add-url.js';
import { isArchive, unpackArchive } from './add-archive.js';

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

export async function prepareRemoteContext(
  spec: string,
  o: { tmpDir: string; stdin: Readable; signal?: AbortSignal },
): Promise<PreparedContext> {
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
    // kiln's safe applier, as for ADD: a hostile entry is refused, naming it; members keep their modes.
    const from = `the build context from ${spec === '-' ? 'stdin' : spec}`;
    if ((await unpackArchive(file, spec, dir, {}, from)) === 'copy')
      throw new KilnError(
        'BUILD',
        `${from} is not a readable archive`,
        {},
        { hint: 'give a tar (plain, gzip, bzip2 or xz) or a Dockerfile' },
      );
    if (readdirSync(dir).length === 0)
      throw new KilnError('BUILD', `the build context from ${spec === '-' ? 'stdin' : spec} is an empty archive`);
    return { dir, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}
