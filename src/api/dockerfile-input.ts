/**
 * Where the Dockerfile comes from, as docker decides: `-f FILE` (relative to the current
 * directory), `-f -` (stdin), else CONTEXT/Dockerfile (or CONTEXT/dockerfile).
 */
import { existsSync, readFileSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../util/index.js';
import { MAX_DOCKERFILE_BYTES, tooBig } from '../dockerfile/index.js';

export interface DockerfileInput {
  /** Path as shown in messages (what the user typed, or "CONTEXT/Dockerfile"). */
  display: string;
  /** Absolute path, undefined for stdin. */
  path?: string;
  text: string;
}

/** stdin, up to one byte past the bound: a hostile stream is refused without being held in memory. */
function readBoundedStdin(): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > MAX_DOCKERFILE_BYTES) throw tooBig('-', undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function readDockerfileInput(
  file: string | undefined,
  contextDir: string,
  stdin: () => string = readBoundedStdin,
): DockerfileInput {
  if (file === '-') return { display: '-', text: stdin() };
  const ctx = statSync(contextDir, { throwIfNoEntry: false });
  if (ctx && !ctx.isDirectory())
    throw new KilnError(
      'USAGE',
      'the build context is not a directory',
      { path: contextDir },
      { hint: 'give the directory holding the files to build from (a Dockerfile goes with -f FILE)' },
    );
  let p: string;
  let display: string;
  if (file !== undefined) {
    p = path.resolve(file);
    display = file;
  } else {
    const candidates = ['Dockerfile', 'dockerfile'].map((n) => path.join(contextDir, n));
    p = candidates.find((c) => existsSync(c)) ?? candidates[0]!;
    // Relative when it is below the current directory, else absolute (no ../../.. chains).
    const rel = path.relative(process.cwd(), p);
    display = rel && !rel.startsWith('..') ? rel : p;
  }
  if (!existsSync(p)) {
    throw new KilnError(
      'NOT_FOUND',
      'no Dockerfile found',
      { path: display },
      { hint: file === undefined ? `put a Dockerfile in ${contextDir} or name one with -f FILE` : 'check the -f path' },
    );
  }
  if (statSync(p).isDirectory())
    throw new KilnError(
      'USAGE',
      'the Dockerfile path is a directory',
      { path: display },
      { hint: 'give -f the file itself' },
    );
  const size = statSync(p).size;
  if (size > MAX_DOCKERFILE_BYTES) throw tooBig(display, size);
  return { display, path: p, text: readFileSync(p, 'utf8') };
}
