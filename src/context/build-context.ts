/**
 * The build context: .dockerignore (docker's pattern rules via @balena/dockerignore, which follows
 * moby's matcher: `**`, `!` exceptions, leading `/`), and selecting COPY/ADD sources with
 * docker's wildcard rules (Go's filepath.Match per path segment). Symlinks found inside a copied
 * directory stay links; a source that is itself a link is followed by build/copy.ts (as BuildKit),
 * never out of the context.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { KilnError, type ErrorPlace } from '../util/index.js';

const require = createRequire(import.meta.url);
const dockerignore = require('@balena/dockerignore') as (opts?: { ignorecase?: boolean }) => {
  add(p: string | string[]): unknown;
  ignores(p: string): boolean;
};

export interface ContextEntry {
  /** Path relative to the context root, '/'-separated ('' for the root itself). */
  rel: string;
  abs: string;
  stat: Stats;
}

export class BuildContext {
  private readonly ig: { ignores(p: string): boolean } | undefined;

  private constructor(
    readonly root: string,
    /** The .dockerignore patterns in effect, in order (comments and blank lines dropped). */
    readonly ignorePatterns: string[],
  ) {
    const patterns = ignorePatterns;
    if (patterns.length) {
      const ig = dockerignore();
      ig.add(patterns);
      this.ig = ig;
    }
  }

  /** `FILE.dockerignore` beside a custom Dockerfile wins over CONTEXT/.dockerignore (BuildKit's rule). */
  static open(dir: string, opts: { dockerfile?: string } = {}): BuildContext {
    const root = path.resolve(dir);
    if (!existsSync(root) || !lstatSync(root).isDirectory())
      throw new KilnError(
        'NOT_FOUND',
        'build context is not a directory',
        { path: dir },
        { hint: 'give the directory with the files the Dockerfile copies' },
      );
    const candidates = [
      opts.dockerfile ? `${opts.dockerfile}.dockerignore` : undefined,
      path.join(root, '.dockerignore'),
    ].filter((x): x is string => !!x);
    const file = candidates.find((c) => existsSync(c));
    const patterns = file
      ? readFileSync(file, 'utf8')
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l && !l.startsWith('#'))
      : [];
    return new BuildContext(root, patterns);
  }

  /** A directory read as a source without .dockerignore (another stage's or an image's filesystem). */
  static plain(dir: string): BuildContext {
    return new BuildContext(path.resolve(dir), []);
  }

  ignores(rel: string): boolean {
    return rel !== '' && this.ig !== undefined && this.ig.ignores(rel);
  }

  /**
   * The context paths a COPY source names: a literal path or a wildcard pattern. Paths are clean
   * and clamped to the context ("../x" is "x", as BuildKit does). Ignored paths do not exist; a
   * wildcard may match nothing.
   */
  select(source: string, place: ErrorPlace): ContextEntry[] {
    const clean = path.posix.normalize(`/${source}`).slice(1).replace(/\/+$/, '');
    const parts = clean === '' ? [] : clean.split('/');
    let found: string[] = [''];
    for (const part of parts) {
      const next: string[] = [];
      for (const base of found) {
        const absBase = path.join(this.root, base);
        let st: Stats;
        try {
          st = lstatSync(absBase);
        } catch {
          continue;
        }
        if (!st.isDirectory()) continue;
        if (hasWildcard(part)) {
          const re = globSegment(part);
          for (const name of readdirSync(absBase).sort()) if (re.test(name)) next.push(base ? `${base}/${name}` : name);
        } else {
          const cand = base ? `${base}/${part}` : part;
          if (existsSync(path.join(this.root, cand)) || isLink(path.join(this.root, cand))) next.push(cand);
        }
      }
      found = next;
    }
    const out = found
      .filter((rel) => !this.ignores(rel))
      .map((rel) => ({ rel, abs: path.join(this.root, rel), stat: lstatSync(path.join(this.root, rel)) }));
    // A wildcard that matches nothing selects nothing, as BuildKit (its copy allows empty
    // wildcards): `COPY package.json yarn.lock* package-lock.json* ./` copies the lock file there is.
    if (out.length === 0 && hasWildcard(clean)) return out;
    if (out.length === 0) {
      throw new KilnError(
        'NOT_FOUND',
        `failed to compute cache key: "${source}" not found in the build context`,
        place,
        {
          hint: 'check the path (relative to the context) and .dockerignore',
        },
      );
    }
    return out;
  }

  /** Everything under a directory entry (depth-first, sorted), minus ignored paths. */
  *walk(rel: string): Generator<ContextEntry> {
    const abs = path.join(this.root, rel);
    // path.join(this.root, r) for each name (readdir's names have no slash and are never . or ..),
    // made as one concatenation: path.join builds its result piece by piece, and a COPY holds each
    // entry's source path until its layer is written (~400 bytes more an entry at 100,000 files).
    const prefix = abs.endsWith('/') ? abs : `${abs}/`;
    for (const name of readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const entryAbs = prefix + name;
      if (this.ignores(r)) {
        // An excluded directory may still have re-included children ("!dir/keep").
        const st = lstatSync(entryAbs);
        if (st.isDirectory() && this.mayReinclude()) yield* this.walkReincluded(r);
        continue;
      }
      const st = lstatSync(entryAbs);
      yield { rel: r, abs: entryAbs, stat: st };
      if (st.isDirectory()) yield* this.walk(r);
    }
  }

  private mayReinclude(): boolean {
    return this.ig !== undefined;
  }

  private *walkReincluded(rel: string): Generator<ContextEntry> {
    for (const name of readdirSync(path.join(this.root, rel)).sort()) {
      const r = `${rel}/${name}`;
      const st = lstatSync(path.join(this.root, r));
      if (!this.ignores(r)) {
        yield { rel: r, abs: path.join(this.root, r), stat: st };
        if (st.isDirectory()) yield* this.walk(r);
      } else if (st.isDirectory()) yield* this.walkReincluded(r);
    }
  }
}

export function hasWildcard(s: string): boolean {
  return /[*?[]/.test(s);
}

/** Go filepath.Match for one path segment: `*`, `?`, `[…]` (with `^`/`!` negation), `\\` escapes. */
export function globSegment(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new KilnError('INVALID', `syntax error in pattern "${pattern}"`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
