/**
 * Where the Dockerfile comes from, as docker decides: `-f FILE` (relative to the current
 * directory), `-f -` (stdin), else CONTEXT/Dockerfile (or CONTEXT/dockerfile).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../util/errors.js';

export interface DockerfileInput {
  /** Path as shown in messages (what the user typed, or "CONTEXT/Dockerfile"). */
  display: string;
  /** Absolute path, undefined for stdin. */
  path?: string;
  text: string;
}

export function readDockerfileInput(file: string | undefined, contextDir: string, stdin: () => string = () => readFileSync(0, 'utf8')): DockerfileInput {
  if (file === '-') return { display: '-', text: stdin() };
  let p: string;
  let display: string;
  if (file !== undefined) {
    p = path.resolve(file);
    display = file;
  } else {
    const candidates = ['Dockerfile', 'dockerfile'].map((n) => path.join(contextDir, n));
    p = candidates.find((c) => existsSync(c)) ?? candidates[0]!;
    display = path.relative(process.cwd(), p) || p;
  }
  if (!existsSync(p)) {
    throw new KilnError('NOT_FOUND', 'no Dockerfile found', { path: display }, { hint: file === undefined ? `put a Dockerfile in ${contextDir} or name one with -f FILE` : 'check the -f path' });
  }
  if (statSync(p).isDirectory()) throw new KilnError('USAGE', 'the Dockerfile path is a directory', { path: display }, { hint: 'give -f the file itself' });
  return { display, path: p, text: readFileSync(p, 'utf8') };
}
