/**
 * Splitting an instruction's argument text into words the way BuildKit's parser does before
 * expansion: whitespace separates, quotes and the escape character keep their text together.
 * Quotes and escapes are KEPT in the words (expansion removes them later).
 */

export interface RawWord {
  text: string;
  /** 0-based offset of the word in the argument text. */
  offset: number;
}

export function splitWords(s: string, escape: string): RawWord[] {
  const words: RawWord[] = [];
  let cur = '';
  let start = -1;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote === null && /\s/.test(ch)) {
      if (start >= 0) words.push({ text: cur, offset: start });
      cur = '';
      start = -1;
      continue;
    }
    if (start < 0) start = i;
    if (ch === escape && quote !== "'" && i + 1 < s.length) {
      cur += ch + s[i + 1]!;
      i++;
      continue;
    }
    if (quote === null && (ch === '"' || ch === "'")) quote = ch;
    else if (quote === ch) quote = null;
    cur += ch;
  }
  if (start >= 0) words.push({ text: cur, offset: start });
  return words;
}

/** Parse `[ "a", "b" ]` as BuildKit does: a JSON array of strings, else undefined (shell form). */
export function parseJSONArray(s: string): string[] | undefined {
  const t = s.trim();
  if (!t.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return undefined;
  return v as string[];
}

/** Split CSV-ish `a=b,c="d,e"` (RUN --mount, --secret) into fields, honouring double quotes. */
export function splitCsv(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '"') {
      if (q && s[i + 1] === '"') {
        cur += '"';
        i++;
      } else q = !q;
      continue;
    }
    if (ch === ',' && !q) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/** Go's time.ParseDuration subset docker accepts for HEALTHCHECK: "1h2m3.5s", "300ms", "0". Nanoseconds. */
export function parseDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  const unit: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let pos = 0;
  if (s === '') return undefined;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  return Math.round(total);
}
