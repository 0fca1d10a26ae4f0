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
import {
  KilnError,
  LeanStats,
  type ErrorPlace,
  type LstatFields,
  type PackedListing,
  joinPath,
} from '../util/index.js';

const require = createRequire(import.meta.url);
const dockerignore = require('@balena/dockerignore') as (opts?: { ignorecase?: boolean }) => {
  add(p: string | string[]): unknown;
  ignores(p: string): boolean;
};

export interface ContextEntry {
  /** Path relative to the context root, '/'-separated ('' for the root itself). */
  rel: string;
  abs: string;
  stat: EntryStat;
}

/** What readers of a context entry take of its lstat: an fs.Stats has it, and so has a LeanStats. */
export type EntryStat = LstatFields;

/**
 * What walks of one immutable tree found, directory by directory (its entries in walk order, with
 * their lstat): two views of the same layers (a `COPY --from` key's, then the copy's) list the
 * tree once. Only for trees that cannot change (a stage's or an image's layers, by chain id).
 */
export class WalkListings {
  /** Each directory's names, and their lstat fields packed (LeanStats.pack): ~100 bytes an entry, not ~350 as objects. */
  private readonly dirs = new Map<string, PackedListing>();
  private entries = 0;
  /**
   * The walk to come is the last one (the stage's last copy): each directory's listing is dropped as
   * it is served, so the copy's own entries take the place of what it has walked. A directory asked
   * for again is read from the disk.
   */
  draining = false;
  constructor(private readonly maxEntries = 200_000) {}

  get(rel: string): readonly [string, LeanStats][] | undefined {
    const list = this.dirs.get(rel);
    if (!list) return undefined;
    if (this.draining) this.dirs.delete(rel);
    return list.names.map((name, i) => [name, LeanStats.unpack(list.stats, i)]);
  }

  /** Remember a directory's entries, unless the tree is too large to keep in memory. */
  put(rel: string, list: [string, LeanStats][]): void {
    if (this.entries + list.length > this.maxEntries) return;
    const stats = new Float64Array(list.length * LeanStats.PACKED);
    const names: string[] = [];
    for (const [i, [name, st]] of list.entries()) {
      names.push(name);
      st.pack(stats, i);
    }
    this.adopt(rel, { names, stats });
  }

  /**
   * Remember a directory's entries as another reader listed them (a RUN's differ, the directories it
   * made: sandbox's recordListings), in this walk's order — names sorted as strings — with what
   * lstat says now; unless the tree is too large to keep in memory.
   */
  adopt(rel: string, listing: PackedListing): void {
    const n = listing.names.length;
    if (this.dirs.has(rel) || this.entries + n > this.maxEntries) return;
    this.entries += n;
    this.dirs.set(rel, listing);
  }
}

export class BuildContext {
  private readonly ig: { ignores(p: string): boolean } | undefined;

  private constructor(
    readonly root: string,
    /** The .dockerignore patterns in effect, in order (comments and blank lines dropped). */
    readonly ignorePatterns: string[],
    private readonly listings?: WalkListings,
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
      joinPath(root, '.dockerignore'),
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

  /**
   * A directory read as a source without .dockerignore (another stage's or an image's filesystem).
   * `listings`: what earlier walks of the same immutable tree found (elsewhere mounted), to walk it from.
   */
  static plain(dir: string, listings?: WalkListings): BuildContext {
    return new BuildContext(path.resolve(dir), [], listings);
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
        const absBase = joinPath(this.root, base);
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
          if (existsSync(joinPath(this.root, cand)) || isLink(joinPath(this.root, cand))) next.push(cand);
        }
      }
      found = next;
    }
    const out = found
      .filter((rel) => !this.ignores(rel))
      .map((rel) => ({ rel, abs: joinPath(this.root, rel), stat: lstatSync(joinPath(this.root, rel)) }));
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

  /**
   * One directory's entries (sorted by name, with their lstat), for a walk in another order
   * (engine/copy.ts walks a tree in its layer's order); from an earlier walk's listing when there is
   * one (taken as walk() takes it). Not for a context with .dockerignore patterns: nothing is ignored.
   */
  list(rel: string): readonly (readonly [string, EntryStat])[] {
    const listed = this.listings?.get(rel);
    if (listed) return listed;
    const dir = joinPath(this.root, rel);
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    return readdirSync(dir)
      .sort()
      .map((name) => [name, lstatSync(prefix + name)] as const);
  }

  /** Everything under a directory entry (depth-first, sorted), minus ignored paths. */
  *walk(rel: string): Generator<ContextEntry> {
    const dir = joinPath(this.root, rel);
    // A name from readdir has no slash and is never . or ..: joined by hand (path.join per entry
    // is a measurable part of walking 30,000 files).
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const listed = this.listings?.get(rel);
    if (listed) {
      for (const [name, st] of listed) {
        const r = rel ? `${rel}/${name}` : name;
        yield { rel: r, abs: prefix + name, stat: st };
        if (st.isDirectory()) yield* this.walk(r);
      }
      return;
    }
    const list: [string, LeanStats][] | undefined = this.listings && !this.ig ? [] : undefined;
    for (const name of readdirSync(dir).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = prefix + name;
      if (this.ignores(r)) {
        // An excluded directory may still have re-included children ("!dir/keep").
        const st = lstatSync(abs);
        if (st.isDirectory() && this.mayReinclude()) yield* this.walkReincluded(r);
        continue;
      }
      // A listed entry keeps a compact copy of its lstat (the walk's consumers get that same one).
      let st: EntryStat = lstatSync(abs);
      if (list) {
        const kept = new LeanStats(st as Stats);
        list.push([name, kept]);
        st = kept;
      }
      yield { rel: r, abs, stat: st };
      if (st.isDirectory()) yield* this.walk(r);
    }
    // Complete only when the walk went to the end (a consumer may stop early).
    if (list) this.listings!.put(rel, list);
  }

  /**
   * Every path a walk of the whole context looks at, relative ('' the root): the paths it does not
   * ignore and the ignored directories it reads for re-included children (cli/noop-memo.ts watches
   * them all: a file added or removed changes its directory).
   */
  watchedPaths(): string[] {
    const out = [''];
    const visit = (rel: string): void => {
      for (const name of readdirSync(joinPath(this.root, rel)).sort()) {
        const r = rel ? `${rel}/${name}` : name;
        const dir = lstatSync(joinPath(this.root, r)).isDirectory();
        if (!this.ignores(r)) {
          out.push(r);
          if (dir) visit(r);
        } else if (dir && this.mayReinclude()) {
          out.push(r);
          visit(r);
        }
      }
    };
    visit('');
    return out;
  }

  private mayReinclude(): boolean {
    return this.ig !== undefined;
  }

  private *walkReincluded(rel: string): Generator<ContextEntry> {
    for (const name of readdirSync(joinPath(this.root, rel)).sort()) {
      const r = `${rel}/${name}`;
      const st = lstatSync(joinPath(this.root, r));
      if (!this.ignores(r)) {
        yield { rel: r, abs: joinPath(this.root, r), stat: st };
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
