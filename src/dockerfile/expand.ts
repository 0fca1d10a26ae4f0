/**
 * Word expansion as BuildKit's shell lexer does it for the instructions it expands (FROM, COPY,
 * ADD, ENV, ARG, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL, and flag values): quotes are
 * removed, the escape character escapes, `$name` and `${name…}` with the modifiers below are
 * substituted. RUN/CMD/ENTRYPOINT command text is left to the shell and never goes through here.
 *
 *   ${v:-w} ${v-w}   default          ${v#p} ${v##p}   remove shortest/longest prefix
 *   ${v:+w} ${v+w}   alternative      ${v%p} ${v%%p}   remove shortest/longest suffix
 *   ${v:?m} ${v?m}   error if unset   ${v/p/r} ${v//p/r} replace first/all
 *
 * Pure: the environment is a lookup function, so the build engine can run the same expansion
 * again with the base image's ENV.
 */

export type Lookup = (name: string) => string | undefined;

export class ExpansionError extends Error {
  constructor(
    message: string,
    /** 0-based offset in the word where the problem is. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExpansionError';
  }
}

export interface ExpandOptions {
  escape?: string;
  /** Record the names looked up (for "is this build arg used"). */
  onLookup?: (name: string) => void;
}

/** Expand one word to one string (quotes removed). */
export function expandWord(word: string, lookup: Lookup, opts: ExpandOptions = {}): string {
  const lx = new Lexer(word, lookup, opts.escape ?? '\\', opts.onLookup);
  return lx.word(false).join('');
}

/**
 * Expand and split into fields on unquoted whitespace (EXPOSE, VOLUME plain form, ARG/ENV pairs
 * before splitting). Quoted whitespace, and whitespace coming from a variable's value inside
 * quotes, does not split.
 */
export function expandWords(word: string, lookup: Lookup, opts: ExpandOptions = {}): string[] {
  const lx = new Lexer(word, lookup, opts.escape ?? '\\', opts.onLookup);
  return lx.word(true);
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

const NAME_CHAR = /[A-Za-z0-9_]/;

class Lexer {
  private pos = 0;
  constructor(
    private readonly s: string,
    private readonly lookup: Lookup,
    private readonly esc: string,
    private readonly onLookup?: (name: string) => void,
  ) {}

  private get(name: string): string | undefined {
    this.onLookup?.(name);
    return this.lookup(name);
  }

  /**
   * Process the whole input. With `split`, unquoted whitespace separates fields; a field exists
   * once anything (even an empty quoted string) was seen.
   */
  word(split: boolean): string[] {
    const fields: string[] = [];
    let cur = '';
    let have = false;
    const s = this.s;
    while (this.pos < s.length) {
      const ch = s[this.pos]!;
      if (split && /\s/.test(ch)) {
        if (have) fields.push(cur);
        cur = '';
        have = false;
        this.pos++;
        continue;
      }
      have = true;
      if (ch === this.esc) {
        this.pos++;
        if (this.pos >= s.length) {
          // A trailing escape stays as written.
          cur += ch;
          break;
        }
        cur += s[this.pos++]!;
      } else if (ch === "'") {
        cur += this.singleQuoted();
      } else if (ch === '"') {
        cur += this.doubleQuoted();
      } else if (ch === '$') {
        const v = this.dollar();
        if (split && !/\s/.test(v)) cur += v;
        else if (split) {
          // Unquoted expansion results are split on whitespace, like a shell's field splitting.
          const parts = v.split(/\s+/);
          for (let i = 0; i < parts.length; i++) {
            if (i > 0) {
              if (cur !== '' || have) fields.push(cur);
              cur = '';
            }
            cur += parts[i]!;
          }
          have = cur !== '';
        } else cur += v;
      } else {
        cur += ch;
        this.pos++;
      }
    }
    if (have || (!split && fields.length === 0)) fields.push(cur);
    return split ? fields.filter((f, i) => f !== '' || i < fields.length) : fields;
  }

  private singleQuoted(): string {
    const start = this.pos;
    this.pos++; // opening '
    const end = this.s.indexOf("'", this.pos);
    if (end < 0) throw new ExpansionError('unexpected end of statement while looking for matching single-quote', start);
    const out = this.s.slice(this.pos, end);
    this.pos = end + 1;
    return out;
  }

  private doubleQuoted(): string {
    const start = this.pos;
    this.pos++; // opening "
    let out = '';
    const s = this.s;
    while (this.pos < s.length) {
      const ch = s[this.pos]!;
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === this.esc) {
        const next = s[this.pos + 1];
        // Inside double quotes the escape only escapes ", $ and itself; otherwise it stays.
        if (next === '"' || next === '$' || next === this.esc) {
          out += next;
          this.pos += 2;
          continue;
        }
        out += ch;
        this.pos++;
        continue;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      out += ch;
      this.pos++;
    }
    throw new ExpansionError('unexpected end of statement while looking for matching double-quote', start);
  }

  /** At '$': returns the substitution (or a literal '$'). */
  private dollar(): string {
    const s = this.s;
    const start = this.pos;
    this.pos++; // $
    const ch = s[this.pos];
    if (ch === '{') {
      this.pos++;
      return this.braced(start);
    }
    if (ch !== undefined && NAME_CHAR.test(ch)) {
      let name = '';
      while (this.pos < s.length && NAME_CHAR.test(s[this.pos]!)) name += s[this.pos++]!;
      return this.get(name) ?? '';
    }
    return '$';
  }

  /** After '${'. */
  private braced(start: number): string {
    const s = this.s;
    let name = '';
    while (this.pos < s.length && NAME_CHAR.test(s[this.pos]!)) name += s[this.pos++]!;
    if (name === '') throw new ExpansionError(`bad substitution: missing variable name in \${…}`, start);
    const ch = s[this.pos];
    if (ch === undefined) throw new ExpansionError(`missing '}' in \${${name}`, start);
    if (ch === '}') {
      this.pos++;
      return this.get(name) ?? '';
    }
    const value = this.get(name);
    const set = value !== undefined;
    const nonEmpty = set && value !== '';
    if (ch === ':') {
      const mod = s[this.pos + 1];
      this.pos += 2;
      if (mod === '-' || mod === '+' || mod === '?') {
        const word = this.nestedWord(start);
        if (mod === '-') return nonEmpty ? value! : word;
        if (mod === '+') return nonEmpty ? word : '';
        if (!nonEmpty) throw new ExpansionError(`${name}: ${word || 'is not allowed to be empty or unset'}`, start);
        return value!;
      }
      throw new ExpansionError(`unsupported modifier (:${mod ?? ''}) in substitution of ${name}`, start);
    }
    if (ch === '-' || ch === '+' || ch === '?') {
      this.pos++;
      const word = this.nestedWord(start);
      if (ch === '-') return set ? value! : word;
      if (ch === '+') return set ? word : '';
      if (!set) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`, start);
      return value!;
    }
    if (ch === '#' || ch === '%') {
      this.pos++;
      const longest = s[this.pos] === ch;
      if (longest) this.pos++;
      const pattern = this.nestedWord(start, true);
      return trimPattern(value ?? '', pattern, ch === '#' ? 'prefix' : 'suffix', longest);
    }
    if (ch === '/') {
      this.pos++;
      const all = s[this.pos] === '/';
      if (all) this.pos++;
      const pattern = this.nestedWord(start, true, '/');
      let replacement = '';
      if (s[this.pos - 1] === '/' && this.lastStop === '/') replacement = this.nestedWord(start);
      return replacePattern(value ?? '', pattern, replacement, all);
    }
    throw new ExpansionError(`unsupported modifier (${ch}) in substitution of ${name}`, start);
  }

  private lastStop = '';

  /**
   * The word after a modifier, up to the matching '}' (or `stop`). It is expanded itself.
   * For patterns, glob characters stay special unless quoted or escaped (marked with \x00).
   */
  private nestedWord(start: number, pattern = false, stop?: string): string {
    const s = this.s;
    let out = '';
    while (this.pos < s.length) {
      const ch = s[this.pos]!;
      if (ch === '}') {
        this.pos++;
        this.lastStop = '}';
        return out;
      }
      if (stop !== undefined && ch === stop) {
        this.pos++;
        this.lastStop = stop;
        return out;
      }
      if (ch === this.esc) {
        const next = s[this.pos + 1];
        if (next === undefined) break;
        out += pattern ? quoteGlob(next) : next;
        this.pos += 2;
      } else if (ch === "'") {
        const q = this.singleQuoted();
        out += pattern ? quoteGlob(q) : q;
      } else if (ch === '"') {
        const q = this.doubleQuoted();
        out += pattern ? quoteGlob(q) : q;
      } else if (ch === '$') {
        out += this.dollar();
      } else {
        out += ch;
        this.pos++;
      }
    }
    throw new ExpansionError(`missing '}' in substitution`, start);
  }
}

/** Mark characters as literal inside a glob pattern. */
function quoteGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Shell glob → anchored-free regex source (`*`, `?`, `[…]`, `\x` literal). */
function globToRegex(pattern: string): string {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      re += escapeRe(pattern[++i]!);
    } else if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return re;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function trimPattern(value: string, pattern: string, side: 'prefix' | 'suffix', longest: boolean): string {
  const re = new RegExp(`^${globToRegex(pattern)}$`);
  if (side === 'prefix') {
    const lens = [...Array(value.length + 1).keys()];
    if (longest) lens.reverse();
    for (const n of lens) if (re.test(value.slice(0, n))) return value.slice(n);
    return value;
  }
  const starts = [...Array(value.length + 1).keys()];
  if (!longest) starts.reverse();
  for (const i of starts) if (re.test(value.slice(i))) return value.slice(0, i);
  return value;
}

function replacePattern(value: string, pattern: string, replacement: string, all: boolean): string {
  if (pattern === '') return value;
  const re = new RegExp(globToRegex(pattern), all ? 'g' : '');
  return value.replace(re, () => replacement);
}
