/**
 * Word expansion as BuildKit's shell lexer does it (frontend/dockerfile/shell), for the words
 * BuildKit expands (FROM, COPY/ADD, ENV, ARG defaults, LABEL, EXPOSE, USER, WORKDIR, VOLUME,
 * STOPSIGNAL, RUN --mount options, COPY heredoc bodies). RUN/CMD/ENTRYPOINT command text is left to
 * the shell and never goes through here.
 *
 *   $v ${v}                          ${v#p} ${v##p}   remove shortest/longest prefix
 *   ${v:-w} ${v-w}   default         ${v%p} ${v%%p}   remove shortest/longest suffix
 *   ${v:+w} ${v+w}   alternative     ${v/p/r}         replace the first match
 *   ${v:?m} ${v?m}   error if unset  ${v//p/r}        replace every match
 *
 * BuildKit's rules, kept on purpose (they differ from a POSIX shell):
 * - single quotes are literal; inside double quotes the escape character only escapes `"`, `$` and
 *   itself; outside quotes it escapes anything; an escape at the very end of a word is dropped;
 * - `$1`, `$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`, `$0` are parameter names (always unset);
 * - patterns know `*` and `?` only (no `[…]`), never cross a newline, and quotes inside a pattern
 *   do NOT make `*`/`?` literal (only `\*`, `\?`, `\\` do); `${v/p/r}` needs the second `/`;
 * - a `$` in the replacement of `${v//p/r}` follows Go's regexp template (`$$` is a `$`).
 * Matching is done with an automaton, in time linear in the value: a hostile pattern cannot hang it.
 *
 * Pure: the environment is a lookup function, so the build engine runs the same expansion again
 * at build time with the base image's ENV (`FROM x` then `WORKDIR $HOME` uses x's HOME).
 */

/** Value of a variable, or undefined when it is not set. */
export type Lookup = (name: string) => string | undefined;

export class ExpansionError extends Error {
  constructor(
    message: string,
    /** 0-based offset (in code points) in the word where the problem is. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExpansionError';
  }
}

export interface ExpandOptions {
  /** The Dockerfile's escape character (`# escape=`): `\` (default) or `` ` ``. */
  escape?: string;
  /** Called with every name looked up (for "which build args are used"). */
  onLookup?: (name: string) => void;
  /**
   * Keep a reference to an unset name as written instead of expanding it to '' (BuildKit's
   * SkipUnsetEnv): `true` for every name, or a predicate. The plan uses it for names that may come
   * from the base image's ENV, known only at build time.
   */
  keepUnset?: boolean | ((name: string) => boolean);
}

/** Expand one word to one string, quotes removed (BuildKit's ProcessWord). */
export function expandWord(word: string, lookup: Lookup, opts: ExpandOptions = {}): string {
  return lex(word, lookup, opts, {}).result;
}

/**
 * Expand and split into fields (BuildKit's ProcessWords, used for EXPOSE): unquoted whitespace
 * separates, and so does whitespace in the value of an unquoted variable; quoted text and
 * escaped characters stay in one field; an empty quoted string alone makes no field.
 */
export function expandWords(word: string, lookup: Lookup, opts: ExpandOptions = {}): string[] {
  return lex(word, lookup, opts, {}).words;
}

/**
 * Expand a COPY/ADD heredoc body whose delimiter was not quoted: `$var` and `${…}` are expanded
 * and `\` escapes the next character, but quotes are kept as they are (BuildKit expands heredoc
 * bodies with the backslash escape whatever `# escape=` says).
 */
export function expandHeredoc(content: string, lookup: Lookup, opts: Omit<ExpandOptions, 'escape'> = {}): string {
  return lex(content, lookup, { ...opts, escape: '\\' }, { skipQuotes: true }).result;
}

/** Names of the variables a word refers to (without expanding); used for dependency analysis. */
export function referencedNames(word: string, escape = '\\'): string[] {
  const names: string[] = [];
  try {
    expandWord(word, () => undefined, { escape, onLookup: (n) => names.push(n) });
  } catch {
    // a malformed word refers to what was seen before the error
  }
  return [...new Set(names)];
}

/**
 * Split a line into words keeping quotes and escapes as written and unset variables as written
 * (BuildKit's lexer with RawQuotes, RawEscapes and SkipUnsetEnv): how BuildKit finds heredoc
 * markers on an instruction line. Undefined when the line does not lex (unbalanced quotes).
 */
export function rawWords(line: string): string[] | undefined {
  try {
    return lex(line, () => undefined, { escape: '\\', keepUnset: true }, { rawQuotes: true, rawEscapes: true }).words;
  } catch {
    return undefined;
  }
}

interface LexModes {
  rawQuotes?: boolean;
  rawEscapes?: boolean;
  skipQuotes?: boolean;
}

/** Characters that make the lexer do anything but copy. */
const SPECIAL = /[$'"\\`]/;

function lex(word: string, lookup: Lookup, opts: ExpandOptions, modes: LexModes): { result: string; words: string[] } {
  if (!SPECIAL.test(word)) {
    // Nothing to expand, unquote or unescape: the word as it is (the common case).
    const words: string[] = [];
    let cur = '';
    for (const ch of word) {
      if (isSpace(ch)) {
        if (cur !== '') words.push(cur);
        cur = '';
      } else cur += ch;
    }
    if (cur !== '') words.push(cur);
    return { result: word, words };
  }
  const sw = new ShellWord(word, lookup, opts, modes);
  try {
    return sw.processStopOn(undefined, modes.rawEscapes ?? false);
  } catch (e) {
    if (e instanceof ExpansionError) throw new ExpansionError(`failed to process "${word}": ${e.message}`, e.offset);
    throw e;
  }
}

/** BuildKit's word accumulator: splits on whitespace except in raw (quoted/escaped) pieces. */
class Words {
  private word = '';
  private readonly words: string[] = [];
  private inWord = false;

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else this.addRawChar(ch);
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  get(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);
/** Go's unicode.IsSpace, for one character (or UTF-16 unit). */
export function isGoSpace(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}
const isSpace = isGoSpace;
const isDigit = (ch: string) => /^\p{Nd}$/u.test(ch);
const isLetter = (ch: string) => /^\p{L}$/u.test(ch);

class ShellWord {
  private readonly chars: string[];
  private pos = 0;
  private rawEscapes: boolean;
  /** Nesting depth of ${…}: bounds recursion on hostile input. */
  private depth = 0;

  constructor(
    src: string,
    private readonly lookup: Lookup,
    private readonly opts: ExpandOptions,
    private readonly modes: LexModes,
  ) {
    this.chars = Array.from(src);
    this.rawEscapes = modes.rawEscapes ?? false;
  }

  private get esc(): string {
    return this.opts.escape ?? '\\';
  }
  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    return this.pos < this.chars.length ? this.chars[this.pos++] : undefined;
  }

  private getEnv(name: string): { value: string; set: boolean } {
    this.opts.onLookup?.(name);
    const v = this.lookup(name);
    return v === undefined ? { value: '', set: false } : { value: v, set: true };
  }

  private keep(name: string): boolean {
    const k = this.opts.keepUnset;
    return k === true || (typeof k === 'function' && k(name));
  }

  /** Read up to `stop` (consumed) or the end; the end is an error when a stop was expected. */
  processStopOn(stop: string | undefined, rawEscapes: boolean): { result: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      for (;;) {
        const ch = this.peek();
        if (ch === undefined) break;
        if (stop !== undefined && ch === stop) {
          this.pos++;
          return { result, words: words.get() };
        }
        if (ch === '$') {
          const v = this.processDollar();
          result += v;
          words.addString(v);
        } else if (!this.modes.skipQuotes && ch === "'") {
          const v = this.processSingleQuote();
          result += v;
          words.addRawString(v);
        } else if (!this.modes.skipQuotes && ch === '"') {
          const v = this.processDoubleQuote();
          result += v;
          words.addRawString(v);
        } else {
          let c = this.next()!;
          if (c === this.esc) {
            if (this.rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            const n = this.next();
            if (n === undefined) break; // an escape at the end of the word is dropped
            c = n;
            words.addRawChar(c);
          } else words.addChar(c);
          result += c;
        }
      }
      if (stop !== undefined)
        throw new ExpansionError(`unexpected end of statement while looking for matching ${stop}`, this.pos);
      return { result, words: words.get() };
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    const start = this.pos;
    let out = this.next()!; // the opening quote
    if (!this.modes.rawQuotes) out = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined)
        throw new ExpansionError('unexpected end of statement while looking for matching single-quote', start);
      if (ch === "'") return this.modes.rawQuotes ? out + ch : out;
      out += ch;
    }
  }

  private processDoubleQuote(): string {
    const start = this.pos;
    let out = this.next()!;
    if (!this.modes.rawQuotes) out = '';
    for (;;) {
      const p = this.peek();
      if (p === undefined)
        throw new ExpansionError('unexpected end of statement while looking for matching double-quote', start);
      if (p === '"') {
        this.pos++;
        return this.modes.rawQuotes ? out + p : out;
      }
      if (p === '$') {
        out += this.processDollar();
        continue;
      }
      let ch = this.next()!;
      if (ch === this.esc) {
        if (this.rawEscapes) out += ch;
        const n = this.peek();
        if (n === undefined) continue; // then the missing quote is reported
        if (n === '"' || n === '$' || n === this.esc) ch = this.next()!;
      }
      out += ch;
    }
  }

  /** A name after `$`: letters/digits/_, or a run of digits, or one special parameter. */
  private processName(): string {
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (name === '' && isDigit(ch)) {
        while (this.peek() !== undefined && isDigit(this.peek()!)) name += this.next()!;
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) {
        this.pos++;
        return ch;
      }
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.next()!;
    }
    return name;
  }

  private processDollar(): string {
    const start = this.pos;
    this.pos++; // $
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const { value, set } = this.getEnv(name);
      if (!set && this.keep(name)) return `$${name}`;
      return value;
    }
    this.pos++; // {
    const p = this.peek();
    if (p === undefined) throw new ExpansionError("syntax error: missing '}'", start);
    if (p === '{' || p === '}' || p === ':') throw new ExpansionError('syntax error: bad substitution', start);
    if (++this.depth > 200) throw new ExpansionError('substitutions nested too deeply', start);
    try {
      return this.braced(start);
    } finally {
      this.depth--;
    }
  }

  /** After `${`: the name, a modifier and its word, up to the closing `}`. */
  private braced(start: number): string {
    const name = this.processName();
    let ch = this.next();
    if (ch === undefined) throw new ExpansionError("syntax error: missing '}'", start);
    let chs = ch;
    if (ch === '}') {
      const { value, set } = this.getEnv(name);
      if (!set && this.keep(name)) return `\${${name}}`;
      return value;
    }
    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      chs += ch ?? '';
    }
    if (nullIsUnset || ch === '+' || ch === '-' || ch === '?' || ch === '#' || ch === '%') {
      const word = this.stopOnOrMissing('}', ch === '#' || ch === '%', "syntax error: missing '}'", start);
      const { value, set } = this.getEnv(name);
      if (!set && this.keep(name)) return `\${${name}${chs}${word}}`;
      switch (ch) {
        case '-':
          return !set || (nullIsUnset && value === '') ? word : value;
        case '+':
          return !set || (nullIsUnset && value === '') ? '' : word;
        case '?':
          if (!set) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`, start);
          if (nullIsUnset && value === '')
            throw new ExpansionError(`${name}: ${word || 'is not allowed to be empty'}`, start);
          return value;
        case '#':
        case '%': {
          let pattern = word;
          let greedy = false;
          if (pattern.startsWith(ch)) {
            greedy = true;
            pattern = pattern.slice(1);
          }
          const tokens = compilePattern(pattern, start);
          return ch === '#' ? trimPrefix(tokens, value, greedy) : trimSuffix(tokens, value, greedy);
        }
        default:
          throw new ExpansionError(`unsupported modifier (${chs}) in substitution`, start);
      }
    }
    if (ch === '/') {
      const all = this.peek() === '/';
      if (all) this.pos++;
      const pattern = this.stopOnOrMissing('/', true, "syntax error: missing '/' in ${}", start);
      const replacement = this.stopOnOrMissing('}', true, "syntax error: missing '}'", start);
      const { value, set } = this.getEnv(name);
      if (!set && this.keep(name)) return `\${${name}/${pattern}/${replacement}}`;
      return replacePattern(compilePattern(pattern, start), value, replacement, all);
    }
    throw new ExpansionError(`unsupported modifier (${chs}) in substitution`, start);
  }

  private stopOnOrMissing(stop: string, rawEscapes: boolean, missing: string, start: number): string {
    try {
      return this.processStopOn(stop, rawEscapes).result;
    } catch (e) {
      if (e instanceof ExpansionError && this.peek() === undefined) throw new ExpansionError(missing, start);
      throw e;
    }
  }
}

// ---- patterns: `*` any run, `?` one character, anything else literal; never across a newline ----

type Token = { kind: 'star' } | { kind: 'any' } | { kind: 'lit'; ch: string };

/** BuildKit's shell pattern: `\*` `\?` `\\` are literal, `\}` and `\/` drop the backslash. */
function compilePattern(pattern: string, offset: number): Token[] {
  const cs = Array.from(pattern);
  const out: Token[] = [];
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i]!;
    if (c === '*') out.push({ kind: 'star' });
    else if (c === '?') out.push({ kind: 'any' });
    else if (c === '\\') {
      const n = cs[i + 1];
      if (n === '}' || n === '/') continue;
      if (n !== '*' && n !== '?' && n !== '\\')
        throw new ExpansionError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${n ?? ''}'`, offset);
      out.push({ kind: 'lit', ch: n });
      i++;
    } else out.push({ kind: 'lit', ch: c });
  }
  return out;
}

/** Threads of the pattern automaton: state index → earliest start reaching it. */
type Threads = Map<number, number>;

function addThread(t: Threads, tokens: Token[], state: number, start: number): void {
  // Follow the epsilon edges (a star may match nothing) forward.
  for (let s = state; s <= tokens.length; s++) {
    const have = t.get(s);
    if (have === undefined || start < have) t.set(s, start);
    if (tokens[s]?.kind !== 'star') break;
  }
}

function step(t: Threads, tokens: Token[], ch: string): Threads {
  const next: Threads = new Map();
  for (const [s, start] of t) {
    const tok = tokens[s];
    if (!tok || ch === '\n') continue;
    if (tok.kind === 'star') addThread(next, tokens, s, start);
    else if (tok.kind === 'any' || tok.ch === ch) addThread(next, tokens, s + 1, start);
  }
  return next;
}

/** Ends e such that value[0:e] matches the whole pattern: the first and the last one. */
function prefixMatchEnds(tokens: Token[], value: string[]): { first: number; last: number } | undefined {
  let t: Threads = new Map();
  addThread(t, tokens, 0, 0);
  let first = -1;
  let last = -1;
  for (let pos = 0; ; pos++) {
    if (t.has(tokens.length)) {
      if (first < 0) first = pos;
      last = pos;
    }
    if (pos === value.length || t.size === 0) break;
    t = step(t, tokens, value[pos]!);
  }
  return first < 0 ? undefined : { first, last };
}

function trimPrefix(tokens: Token[], value: string, greedy: boolean): string {
  const v = Array.from(value);
  const m = prefixMatchEnds(tokens, v);
  if (!m) return value;
  return v.slice(greedy ? m.last : m.first).join('');
}

function trimSuffix(tokens: Token[], value: string, greedy: boolean): string {
  const v = Array.from(value).reverse();
  const m = prefixMatchEnds([...tokens].reverse(), v);
  if (!m) return value;
  return v
    .slice(greedy ? m.last : m.first)
    .reverse()
    .join('');
}

/** Leftmost match at or after `from`, the longest one there (greedy), as [start, end). */
function findMatch(tokens: Token[], v: string[], from: number): [number, number] | undefined {
  let t: Threads = new Map();
  let best: [number, number] | undefined;
  for (let pos = from; ; pos++) {
    if (!best) addThread(t, tokens, 0, pos);
    const s = t.get(tokens.length);
    if (s !== undefined && (!best || s < best[0] || (s === best[0] && pos > best[1]))) best = [s, pos];
    if (best) for (const [k, st] of t) if (st > best[0]) t.delete(k);
    if (pos === v.length || (best && t.size === 0)) break;
    t = step(t, tokens, v[pos]!);
  }
  return best;
}

function replacePattern(tokens: Token[], value: string, replacement: string, all: boolean): string {
  const v = Array.from(value);
  if (!all) {
    const m = findMatch(tokens, v, 0);
    return m ? [...v.slice(0, m[0]), replacement, ...v.slice(m[1])].join('') : value;
  }
  // Go's ReplaceAllString: successive non-overlapping matches; an empty match right after a match
  // is skipped; the replacement is a template ($$ is a $, $0 / ${0} the match).
  let out = '';
  let lastEnd = 0;
  let search = 0;
  while (search <= v.length) {
    const m = findMatch(tokens, v, search);
    if (!m) break;
    out += v.slice(lastEnd, m[0]).join('');
    if (m[1] > lastEnd || m[0] === 0) out += goTemplate(replacement, v.slice(m[0], m[1]).join(''));
    lastEnd = m[1];
    search = search + 1 > m[1] ? search + 1 : m[1];
  }
  return out + v.slice(lastEnd).join('');
}

/** Go's regexp template expansion for a pattern without capture groups. */
function goTemplate(template: string, match: string): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const d = template.indexOf('$', i);
    if (d < 0) break;
    out += template.slice(i, d);
    i = d + 1;
    if (template[i] === '$') {
      out += '$';
      i++;
      continue;
    }
    const m = /^(?:\{([\p{L}\p{Nd}_]+)\}|([\p{L}\p{Nd}_]+))/u.exec(template.slice(i));
    if (!m) {
      out += '$';
      continue;
    }
    i += m[0].length;
    if ((m[1] ?? m[2]) === '0') out += match;
  }
  return out + template.slice(i);
}

/** A heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<'E'OF`) as BuildKit reads it. */
export interface HeredocMarker {
  /** Delimiter, quotes removed. */
  name: string;
  /** `<<-`: leading tabs are stripped from the body and the delimiter line. */
  chomp: boolean;
  /** No part of the delimiter was quoted: the body is expanded (COPY/ADD). */
  expand: boolean;
  /** `3<<EOF`: the file descriptor (0 when not written). */
  fileDescriptor: number;
}

/**
 * Is this word (as split by {@link rawWords}) a heredoc marker? BuildKit's rule: `N<<` or `N<<-`
 * followed by one word without `<`; the body is expanded unless some part of the word is quoted.
 * Throws an ExpansionError when the word does not lex.
 */
export function parseHeredocMarker(word: string): HeredocMarker | undefined {
  const m = /^(\d*)<<(-?)([^<]*)$/.exec(word);
  if (!m || m[3] === '') return undefined;
  const rest = m[3]!;
  const words = lex(rest, () => undefined, { escape: '\\', keepUnset: true }, {}).words;
  if (words.length !== 1) return undefined;
  const raw = lex(rest, () => undefined, { escape: '\\', keepUnset: true }, { rawQuotes: true }).words;
  const quotes = (s: string) => (s.match(/["']/g) ?? []).length;
  return {
    name: words[0]!,
    chomp: m[2] === '-',
    expand: quotes(words[0]!) === quotes(raw[0] ?? ''),
    fileDescriptor: m[1] ? Number(m[1]) : 0,
  };
}
