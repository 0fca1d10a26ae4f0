/**
 * The small lexical pieces of BuildKit's Dockerfile parser: splitting an instruction's arguments
 * into words before expansion, JSON (exec) form detection, Go durations, CSV option strings.
 */
import { isGoSpace } from './expand.js';

export interface RawWord {
  text: string;
  /** 0-based offset of the word in the argument text. */
  offset: number;
}

/**
 * BuildKit's parseWords (ENV, LABEL, ARG): whitespace separates words; quotes and the escape
 * character keep text together and are KEPT in the words (expansion removes them later); an
 * escape character at the very end of the text is dropped.
 */
export function splitWords(s: string, escape: string): RawWord[] {
  const words: RawWord[] = [];
  let cur = '';
  let start = -1;
  let quote: string | null = null;
  let blankOK = false;
  const push = () => {
    if (blankOK || cur.length > 0) words.push({ text: cur, offset: start });
    cur = '';
    start = -1;
    blankOK = false;
  };
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote === null) {
      if (start < 0) {
        if (isGoSpace(ch)) continue;
        start = i;
      }
      if (isGoSpace(ch)) {
        push();
        continue;
      }
      if (ch === '"' || ch === "'") {
        quote = ch;
        blankOK = true;
      }
      if (ch === escape) {
        if (i + 1 === s.length) continue; // an escape at the end of the line is dropped
        cur += ch + s[++i]!;
        continue;
      }
      cur += ch;
      continue;
    }
    // inside quotes
    if (ch === quote) quote = null;
    if (ch === escape && quote !== "'" && quote !== null) {
      if (i + 1 === s.length) {
        quote = null;
        continue;
      }
      cur += ch + s[++i]!;
      continue;
    }
    cur += ch;
  }
  if (start >= 0) push();
  return words;
}

/**
 * BuildKit's parseStringsWhitespaceDelimited (FROM, EXPOSE, and COPY/ADD/VOLUME in shell form):
 * split on spaces and tabs only, quotes are NOT special here (`COPY "a b" c` is not one path in
 * BuildKit either: paths with spaces need the JSON form).
 */
export function splitWhitespace(s: string): RawWord[] {
  const words: RawWord[] = [];
  const re = /[^\t\v\f\r ]+/g;
  for (let m = re.exec(s); m; m = re.exec(s)) words.push({ text: m[0], offset: m.index });
  return words;
}

/** What the argument text of a JSON-capable instruction is. */
export type JSONForm = { kind: 'json'; args: string[] } | { kind: 'not-json' } | { kind: 'not-strings' };

/**
 * BuildKit's rule: text starting with `[` that parses as a JSON array of strings is the exec
 * form; a JSON array with a non-string element is an error; anything else is the shell form.
 */
export function classifyJSON(s: string): JSONForm {
  const t = s.replace(/^\s+/u, '');
  if (!t.startsWith('[')) return { kind: 'not-json' };
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { kind: 'not-json' };
  }
  if (!Array.isArray(v)) return { kind: 'not-json' };
  if (!v.every((x) => typeof x === 'string')) return { kind: 'not-strings' };
  return { kind: 'json', args: v as string[] };
}

/** `[ "a", "b" ]` → ['a', 'b']; undefined when the text is not a JSON array of strings. */
export function parseJSONArray(s: string): string[] | undefined {
  const c = classifyJSON(s);
  return c.kind === 'json' ? c.args : undefined;
}

/**
 * Split `a=b,c="d,e"` (RUN --mount) into fields like Go's encoding/csv reading one record: a field
 * that starts with `"` is quoted (`""` is a quote inside it); a quote anywhere else is an error.
 */
export function splitCsv(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (s[i] === '"') {
      let f = '';
      i++;
      for (;;) {
        if (i >= s.length) throw new Error('extraneous or missing " in quoted-field');
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            f += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        f += s[i++];
      }
      out.push(f);
      if (i >= s.length) return out;
      if (s[i] !== ',') throw new Error('extraneous or missing " in quoted-field');
      i++;
      continue;
    }
    const end = s.indexOf(',', i);
    const f = end < 0 ? s.slice(i) : s.slice(i, end);
    if (f.includes('"')) throw new Error('bare " in non-quoted-field');
    out.push(f);
    if (end < 0) return out;
    i = end + 1;
  }
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * Go's time.ParseDuration (HEALTHCHECK intervals): "1h2m3.5s", "300ms", ".5s", "-1s", "0".
 * Nanoseconds, or undefined when the text is not a duration.
 */
export function parseDuration(s: string): number | undefined {
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let total = 0;
  // µ (micro sign) and μ (Greek mu) escaped: the CLI bundle stays ASCII (scripts/bundle.mjs).
  const re = /^(\d*)(?:\.(\d*))?([a-z\u00b5\u03bc]+)/u;
  while (rest !== '') {
    const m = re.exec(rest);
    if (!m || (m[1] === '' && (m[2] ?? '') === '')) return undefined;
    const unit = DURATION_UNITS[m[3]!];
    if (unit === undefined) return undefined;
    total += Number(`${m[1] || '0'}.${m[2] ?? ''}0`) * unit;
    rest = rest.slice(m[0].length);
  }
  return sign * Math.round(total);
}

/** docker/go-units RAMInBytes (tmpfs size): "64m", "1.5g", "100", "2GiB" (powers of 1024). */
export function parseRAMInBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) return undefined;
  const pow = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.trunc(Number(m[1]) * 1024 ** pow);
}
