/**
 * PEP 440 version ordering (what pip and PyPI use): [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local],
 * with the normalisations PEP 440 allows (case, separators, "alpha"/"c"/"pre"/"preview" spellings,
 * implicit numbers, "-N" as a post release, a leading "v"). Ordering as the `packaging` library's
 * sort key: epoch, release without trailing zeros, then pre/post/dev with the special cases for
 * "X.devN" (before X's pre-releases) and absent segments, then the local version.
 */

export interface Pep440Version {
  epoch: number;
  release: number[];
  pre?: { kind: 'a' | 'b' | 'rc'; n: number };
  post?: number;
  dev?: number;
  local?: (number | string)[];
}

const RE = new RegExp(
  '^\\s*v?' +
    '(?:(?<epoch>[0-9]+)!)?' +
    '(?<release>[0-9]+(?:\\.[0-9]+)*)' +
    '(?<pre>[-_.]?(?<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?<pre_n>[0-9]+)?)?' +
    '(?<post>(?:-(?<post_n1>[0-9]+))|(?:[-_.]?(?<post_l>post|rev|r)[-_.]?(?<post_n2>[0-9]+)?))?' +
    '(?<dev>[-_.]?(?<dev_l>dev)[-_.]?(?<dev_n>[0-9]+)?)?' +
    '(?:\\+(?<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?' +
    '\\s*$',
  'i',
);

/** Parse a PEP 440 version; undefined when the string is not one (a "legacy" version). */
export function parsePep440(s: string): Pep440Version | undefined {
  const m = RE.exec(s);
  if (!m?.groups) return undefined;
  const g = m.groups;
  const v: Pep440Version = {
    epoch: g.epoch ? Number(g.epoch) : 0,
    release: g.release!.split('.').map(Number),
  };
  if (g.pre_l) {
    const l = g.pre_l.toLowerCase();
    const kind = l === 'alpha' || l === 'a' ? 'a' : l === 'beta' || l === 'b' ? 'b' : 'rc';
    v.pre = { kind, n: g.pre_n ? Number(g.pre_n) : 0 };
  }
  if (g.post) v.post = Number(g.post_n1 ?? g.post_n2 ?? 0);
  if (g.dev) v.dev = g.dev_n ? Number(g.dev_n) : 0;
  if (g.local)
    v.local = g.local
      .toLowerCase()
      .split(/[-_.]/)
      .map((p) => (/^[0-9]+$/.test(p) ? Number(p) : p));
  return v;
}

/** The canonical (normalised) spelling, e.g. "1.0RC1" → "1.0rc1", "1.0-1" → "1.0.post1". */
export function normalizePep440(s: string): string | undefined {
  const v = parsePep440(s);
  if (!v) return undefined;
  let out = v.epoch ? `${v.epoch}!` : '';
  out += v.release.join('.');
  if (v.pre) out += `${v.pre.kind}${v.pre.n}`;
  if (v.post !== undefined) out += `.post${v.post}`;
  if (v.dev !== undefined) out += `.dev${v.dev}`;
  if (v.local) out += `+${v.local.join('.')}`;
  return out;
}

const PRE_RANK = { a: 0, b: 1, rc: 2 } as const;

function cmpNum(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpRelease(a: number[], b: number[]): number {
  // Trailing zeros do not count: 1.0 == 1.0.0.
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = cmpNum(a[i] ?? 0, b[i] ?? 0);
    if (c) return c;
  }
  return 0;
}

/** Pre-release rank: [-inf for X.devN without pre/post, +inf without pre, else (kind, n)]. */
function preKey(v: Pep440Version): [number, number] {
  if (!v.pre && v.post === undefined && v.dev !== undefined) return [-Infinity, 0];
  if (!v.pre) return [Infinity, 0];
  return [PRE_RANK[v.pre.kind], v.pre.n];
}

function cmpLocal(a: (number | string)[] | undefined, b: (number | string)[] | undefined): number {
  if (!a && !b) return 0;
  if (!a) return -1;
  if (!b) return 1;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    // Numeric segments sort after alphanumeric ones; strings compare lexicographically.
    if (typeof x === 'number' && typeof y === 'number') {
      const c = cmpNum(x, y);
      if (c) return c;
    } else if (typeof x === 'number') return 1;
    else if (typeof y === 'number') return -1;
    else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function comparePep440Parsed(a: Pep440Version, b: Pep440Version): number {
  let c = cmpNum(a.epoch, b.epoch);
  if (c) return c;
  c = cmpRelease(a.release, b.release);
  if (c) return c;
  const [pa, pan] = preKey(a);
  const [pb, pbn] = preKey(b);
  c = cmpNum(pa, pb) || cmpNum(pan, pbn);
  if (c) return c;
  c = cmpNum(a.post ?? -Infinity, b.post ?? -Infinity);
  if (c) return c;
  c = cmpNum(a.dev ?? Infinity, b.dev ?? Infinity);
  if (c) return c;
  return cmpLocal(a.local, b.local);
}

/**
 * <0, 0, >0 as pip orders a and b. Strings that are not PEP 440 versions sort before every valid
 * version (as packaging's LegacyVersion did) and among themselves as plain strings.
 */
export function comparePep440(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  if (x && y) return comparePep440Parsed(x, y);
  if (x) return 1;
  if (y) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}
