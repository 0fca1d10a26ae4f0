/**
 * Alpine package version ordering. apk versions follow Gentoo's scheme,
 * {number}{.number}...{letter}{_suffix{N}}...{-rN}, compared part by part:
 * numbers (the first numerically; later ones as decimal fractions when either has a leading zero,
 * so 1.01 < 1.1), then the optional letter, then suffixes, where _alpha < _beta < _pre < _rc sort
 * before the release and _cvs < _svn < _git < _hg < _p after it, then the -rN revision.
 * Strings that do not follow the scheme compare as plain strings after every valid version.
 */

const SUFFIX_RANK: Record<string, number> = {
  alpha: -4,
  beta: -3,
  pre: -2,
  rc: -1,
  cvs: 1,
  svn: 2,
  git: 3,
  hg: 4,
  p: 5,
};

interface ApkVersion {
  numbers: string[];
  letter?: string;
  suffixes: { rank: number; n: number }[];
  revision: number;
}

const RE = /^(\d+(?:\.\d+)*)([a-z])?((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:-r(\d+))?$/;

export function parseApkVersion(s: string): ApkVersion | undefined {
  const m = RE.exec(s.trim());
  if (!m) return undefined;
  const suffixes = [...m[3]!.matchAll(/_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)/g)].map((x) => ({
    rank: SUFFIX_RANK[x[1]!]!,
    n: x[2] ? Number(x[2]) : 0,
  }));
  return { numbers: m[1]!.split('.'), letter: m[2], suffixes, revision: m[4] ? Number(m[4]) : 0 };
}

function cmp(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpComponent(a: string, b: string, first: boolean): number {
  if (!first && (a.startsWith('0') || b.startsWith('0'))) {
    // Fractional comparison: "01" vs "1" → ".01" vs ".1".
    return cmp(a.replace(/0+$/, ''), b.replace(/0+$/, ''));
  }
  return cmp(BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0, 0);
}

export function compareApkVersions(a: string, b: string): number {
  const x = parseApkVersion(a);
  const y = parseApkVersion(b);
  if (!x || !y) {
    if (x) return -1;
    if (y) return 1;
    return cmp(a, b);
  }
  const n = Math.min(x.numbers.length, y.numbers.length);
  for (let i = 0; i < n; i++) {
    const c = cmpComponent(x.numbers[i]!, y.numbers[i]!, i === 0);
    if (c) return c;
  }
  if (x.numbers.length !== y.numbers.length) return x.numbers.length > y.numbers.length ? 1 : -1;
  if (x.letter !== y.letter) {
    if (x.letter === undefined) return -1;
    if (y.letter === undefined) return 1;
    return cmp(x.letter, y.letter);
  }
  const m = Math.max(x.suffixes.length, y.suffixes.length);
  for (let i = 0; i < m; i++) {
    const s = x.suffixes[i];
    const t = y.suffixes[i];
    // A missing suffix is the release itself: rank 0.
    const c = cmp(s?.rank ?? 0, t?.rank ?? 0) || cmp(s?.n ?? 0, t?.n ?? 0);
    if (c) return c;
  }
  return cmp(x.revision, y.revision);
}
