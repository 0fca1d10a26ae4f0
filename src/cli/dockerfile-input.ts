/**
 * Where the Dockerfile comes from, as docker decides: `-f FILE` (relative to the current
 * directory), `-f -` (stdin), else CONTEXT/Dockerfile (or CONTEXT/dockerfile).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../util/errors.js';
import { MAX_DOCKERFILE_BYTES, tooBig } from '../dockerfile/parser.js';

export interface DockerfileInput {
  /** Path as shown in messages (what the user typed, or "CONTEXT/Dockerfile"). */
  display: string;
  /** Absolute path, undefined for stdin. */
  path?: string;
  text: string;
}

export function readDockerfileInput(file: string | undefined, contextDir: string, stdin: () => string = () => readFileSync(0, 'utf8')): DockerfileInput {
  if (file === '-') return { display: '-', text: stdin() };
  const ctx = statSync(contextDir, { throwIfNoEntry: false });
  if (ctx && !ctx.isDirectory()) throw new KilnError('USAGE', 'the build context is not a directory', { path: contextDir }, { hint: 'give the directory holding the files to build from (a Dockerfile goes with -f FILE)' });
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
    throw new KilnError('NOT_FOUND', 'no Dockerfile found', { path: display }, { hint: file === undefined ? `put a Dockerfile in ${contextDir} or name one with -f FILE` : 'check the -f path' });
  }
  if (statSync(p).isDirectory()) throw new KilnError('USAGE', 'the Dockerfile path is a directory', { path: display }, { hint: 'give -f the file itself' });
  const size = statSync(p).size;
  if (size > MAX_DOCKERFILE_BYTES) throw tooBig(display, size);
  return { display, path: p, text: readFileSync(p, 'utf8') };
}
