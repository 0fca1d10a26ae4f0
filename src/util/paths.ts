/**
 * `joinPath`: node's path.join for the store's and the cache's file names, without its cost.
 * path.join normalizes the joined string a character at a time in JavaScript: in a short-lived
 * command its code never leaves V8's interpreter, ~20–30 µs a call, and a one-file rebuild made
 * ~500 of them (~15 ms of CPU), nearly all joining a clean root to a clean name. `normalizePath`
 * likewise for path.normalize (the lines of a Python package's RECORD, thousands a COPY --from).
 */
import * as path from 'node:path';

/** A joined path path.normalize would change: `//`, a `.` or `..` segment, a trailing `/`. */
const NOT_NORMAL = /\/\/|(?:^|\/)\.{1,2}(?:\/|$)|\/$/;

/** Exactly path.join(...parts): the parts joined by `/` when that is already normal (a regular expression tells), else path.join. */
export function joinPath(...parts: string[]): string {
  let joined = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p === '') return path.join(...parts);
    joined = i === 0 ? p : `${joined}/${p}`;
  }
  return joined === '' || NOT_NORMAL.test(joined) ? path.join(...parts) : joined;
}

/** Exactly path.normalize(p): `p` itself when it is already normal (a regular expression tells), else path.normalize. */
export function normalizePath(p: string): string {
  return p === '' || NOT_NORMAL.test(p) ? path.normalize(p) : p;
}
