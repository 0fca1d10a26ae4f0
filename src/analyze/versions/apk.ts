/**
 * Alpine (apk-tools) version ordering: {digit}{.digit}...{letter}{_suffix{N}}...{-rN}. Pre-release
 * suffixes (_alpha, _beta, _pre, _rc) sort before the release, post suffixes (_cvs, _svn, _git,
 * _hg, _p) after; leading zeros in a component after a '.' make it a fraction (1.01 < 1.1).
 * The token machine follows apk-tools' version.c.
 */

const enum T {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

const PRE = ['alpha', 'beta', 'pre', 'rc'];
const POST = ['cvs', 'svn', 'git', 'hg', 'p'];

class Cursor {
  pos = 0;
  type: T = T.Digit;
  constructor(readonly s: string) {}
  get left(): number {
    return this.s.length - this.pos;
  }
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isLower = (c: string | undefined) => c !== undefined && c >= 'a' && c <= 'z';

function nextToken(c: Cursor): void {
  let n: T = T.Invalid;
  const ch = c.s[c.pos];
  if (c.left === 0 || ch === '\0') n = T.End;
  else if ((c.type === T.Digit || c.type === T.DigitOrZero) && isLower(ch)) n = T.Letter;
  else if (c.type === T.Letter && isDigit(ch)) n = T.Digit;
  else if (c.type === T.Suffix && isDigit(ch)) n = T.SuffixNo;
  else {
    if (ch === '.') n = T.DigitOrZero;
    else if (ch === '_') n = T.Suffix;
    else if (ch === '-') {
      if (c.left > 1 && c.s[c.pos + 1] === 'r') {
        n = T.RevisionNo;
        c.pos++;
      } else n = T.Invalid;
    }
    c.pos++;
  }
  if (n < c.type) {
    const allowed = (n === T.DigitOrZero && c.type === T.Digit) || (n === T.Suffix && c.type === T.SuffixNo) || (n === T.Digit && c.type === T.Letter);
    if (!allowed) n = T.Invalid;
  }
  c.type = n;
}

function getToken(c: Cursor): number {
  if (c.left <= 0) {
    c.type = T.End;
    return 0;
  }
  let v = 0;
  let i = 0;
  let nt: T = T.Invalid;
  const at = (k: number) => c.s[c.pos + k];
  switch (c.type) {
    case T.DigitOrZero:
      if (at(0) === '0') {
        while (i < c.left && at(i) === '0') i++;
        nt = T.Digit;
        v = -i;
        break;
      }
    // falls through: a component after '.' without leading zeros is a plain number
    case T.Digit:
    case T.SuffixNo:
    case T.RevisionNo:
      while (i < c.left && isDigit(at(i))) v = v * 10 + (at(i++)!.charCodeAt(0) - 48);
      break;
    case T.Letter:
      v = at(i++)!.charCodeAt(0);
      break;
    case T.Suffix: {
      const rest = c.s.slice(c.pos);
      const pre = PRE.findIndex((p) => rest.startsWith(p));
      if (pre >= 0) {
        i = PRE[pre]!.length;
        v = pre - PRE.length;
        break;
      }
      const post = POST.findIndex((p) => rest.startsWith(p));
      if (post >= 0) {
        i = POST[post]!.length;
        v = post;
        break;
      }
      c.type = T.Invalid;
      return -1;
    }
    default:
      c.type = T.Invalid;
      return -1;
  }
  c.pos += i;
  if (c.left === 0) c.type = T.End;
  else if (nt !== T.Invalid) c.type = nt;
  else nextToken(c);
  return v;
}

/** <0, 0, >0 as `apk version -t a b` orders them. */
export function compareApkVersions(a: string, b: string): number {
  const x = new Cursor(a);
  const y = new Cursor(b);
  let av = 0;
  let bv = 0;
  while (x.type === y.type && x.type !== T.End && x.type !== T.Invalid && av === bv) {
    av = getToken(x);
    bv = getToken(y);
  }
  if (av < bv) return -1;
  if (av > bv) return 1;
  if (x.type === y.type) return 0;
  if (x.type === T.Suffix && getToken(new CursorAt(x)) < 0) return -1;
  if (y.type === T.Suffix && getToken(new CursorAt(y)) < 0) return 1;
  if (x.type > y.type) return -1;
  if (y.type > x.type) return 1;
  return 0;
}

/** A copy of a cursor, so peeking at a suffix does not move the original. */
class CursorAt extends Cursor {
  constructor(from: Cursor) {
    super(from.s);
    this.pos = from.pos;
    this.type = from.type;
  }
}
