/**
 * Dockerfile text → AST, following BuildKit's parser (Dockerfile syntax 1.x,
 * frontend/dockerfile/parser and instructions): parser directives at the top, comments, line
 * continuations (comment and empty lines inside them are dropped), heredocs, instructions with
 * their flags, exec (JSON) vs shell form.
 *
 * Untrusted input: every failure is a KilnError('PARSE') with file:line:column and the line; the
 * work is linear in the size of the text.
 */
import { KilnError } from '../util/index.js';
import type { CommandForm, Directives, Dockerfile, Flag, Heredoc, Instruction, KeyValue, Warning } from './ast.js';
import { ExpansionError, isGoSpace, parseHeredocMarker, rawWords } from './expand.js';
import { MountError, parseMount } from './mounts.js';
import { classifyJSON, parseDuration, splitWhitespace, splitWords, type RawWord } from './words.js';

export interface ParseOptions {
  /** Name shown in errors (default "Dockerfile"). */
  file?: string;
}

const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
/** After the `#`: BuildKit's directive regexp (Go's \s is [\t\n\f\r ]). */
const DIRECTIVE_RE = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/;

interface FlagSpec {
  /** Several allowed (collected in order). */
  repeat?: boolean;
  /** `--name` alone means true; `--name=true|false`. */
  bool?: boolean;
}

/** Flags each instruction accepts (BuildKit's BFlags per instruction). */
const FLAGS: Record<string, Record<string, FlagSpec>> = {
  FROM: { platform: {} },
  RUN: { mount: { repeat: true }, network: {}, security: {} },
  COPY: { from: {}, chown: {}, chmod: {}, link: { bool: true }, parents: { bool: true }, exclude: { repeat: true } },
  ADD: {
    chown: {},
    chmod: {},
    link: { bool: true },
    'keep-git-dir': { bool: true },
    checksum: {},
    exclude: { repeat: true },
    unpack: { bool: true },
  },
  HEALTHCHECK: { interval: {}, timeout: {}, 'start-period': {}, 'start-interval': {}, retries: {} },
};

const INSTRUCTIONS = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
];
const HEREDOC_INSTRUCTIONS = new Set(['RUN', 'COPY', 'ADD']);

const NOT_STRINGS = 'when using JSON array syntax, arrays must be comprised of strings only';

/** Go's bytes.TrimLeftFunc(unicode.IsSpace) / strings.TrimSpace. */
function trimLeft(s: string): string {
  let i = 0;
  while (i < s.length && isGoSpace(s[i]!)) i++;
  return i === 0 ? s : s.slice(i);
}
function trimSpace(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && isGoSpace(s[i]!)) i++;
  while (j > i && isGoSpace(s[j - 1]!)) j--;
  return i === 0 && j === s.length ? s : s.slice(i, j);
}
/** BuildKit's reWhitespace (instruction keyword / legacy ENV split). */
const WS = /[\t\v\f\r ]+/;

/**
 * The largest Dockerfile kiln reads. Real ones are kilobytes; a bound keeps a hostile one (64 MiB
 * of continuations, say) from taking seconds and gigabytes before any error.
 */
export const MAX_DOCKERFILE_BYTES = 4 << 20;

/** `bytes`: its size, or undefined when it was not read to its end (stdin). */
export function tooBig(file: string, bytes: number | undefined): KilnError {
  const size =
    bytes === undefined ? `larger than ${MAX_DOCKERFILE_BYTES >> 20} MiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return new KilnError(
    'PARSE',
    `the Dockerfile is ${size}; kiln reads Dockerfiles of at most ${MAX_DOCKERFILE_BYTES >> 20} MiB`,
    { file },
    { hint: 'move data into the build context and COPY it' },
  );
}

export function parseDockerfile(text: string, opts: ParseOptions = {}): Dockerfile {
  if (text.length > MAX_DOCKERFILE_BYTES) throw tooBig(opts.file ?? 'Dockerfile', Buffer.byteLength(text));
  return new Parser(text, opts.file ?? 'Dockerfile').parse();
}

/** A logical instruction line: continuations joined. */
interface LogicalLine {
  /** The joined text, left-trimmed (BuildKit's node.Original before TrimSpace). */
  text: string;
  /** First physical line, 1-based. */
  line: number;
  /** Last physical line of the instruction (continuations included, heredoc bodies not). */
  endLine: number;
  /** Column (1-based) where `text` starts in the first physical line. */
  column: number;
}

class Parser {
  /** Physical lines without their "\n" (a "\r" before it is kept: heredoc bodies keep it). */
  private readonly lines: string[];
  /** The lines as shown in error messages. */
  private readonly shown: string[];
  private readonly warnings: Warning[] = [];
  private readonly directives: Directives = { escape: '\\' };
  private contRe: RegExp = /(?:)/;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    const t = text.startsWith('\ufeff') ? text.slice(1) : text; // a UTF-8 BOM is ignored
    this.lines = t.split('\n');
    if (this.lines.length > 0 && this.lines[this.lines.length - 1] === '') this.lines.pop(); // text ends with "\n"
    this.shown = this.lines.map(trimNewline);
  }

  private err(message: string, line: number, column = 1, hint?: string): KilnError {
    return new KilnError(
      'PARSE',
      message,
      { file: this.file, line, column, source: this.shown[line - 1] ?? '' },
      { hint },
    );
  }

  parse(): Dockerfile {
    const start = this.parseDirectives();
    const esc = this.directives.escape === '`' ? '`' : '\\\\';
    // BuildKit: an escape at the end of a line continues it, unless it is itself escaped.
    this.contRe = new RegExp(`([^${esc}])${esc}[ \\t]*$|^${esc}[ \\t]*$`);
    const instructions: Instruction[] = [];
    let i = start;
    while (i < this.lines.length) {
      const logical = this.readLogicalLine(i);
      i = logical.next;
      if (!logical.line) continue;
      const { instruction, next } = this.parseInstruction(logical.line, i);
      i = next;
      instructions.push(instruction);
    }
    return { file: this.file, directives: this.directives, instructions, warnings: this.warnings, lines: this.shown };
  }

  /** Parser directives: only at the very top; the first line that is not one ends them. */
  private parseDirectives(): number {
    const seen = new Set<string>();
    let i = 0;
    for (; i < this.lines.length; i++) {
      const l = trimLeft(trimNewline(this.lines[i]!));
      if (!l.startsWith('#')) break;
      const m = DIRECTIVE_RE.exec(trimLeft(l.slice(1)));
      if (!m) break;
      const name = m[1]!.toLowerCase();
      if (!KNOWN_DIRECTIVES.has(name)) break; // an unknown directive is a comment, which ends directives
      if (seen.has(name)) throw this.err(`only one ${name} parser directive can be used`, i + 1);
      seen.add(name);
      const value = m[2]!;
      if (name === 'escape') {
        if (value !== '\\' && value !== '`')
          throw this.err(`invalid escape token '${value}' does not match \` or \\`, i + 1);
        this.directives.escape = value;
      } else if (name === 'syntax') this.directives.syntax = value;
      else this.directives.check = value;
    }
    return i;
  }

  private isComment(l: string): boolean {
    return trimLeft(trimNewline(l)).startsWith('#');
  }

  /** Strip a continuation escape: [text, endsHere]. */
  private cont(l: string): [string, boolean] {
    if (this.contRe.test(l)) return [l.replace(this.contRe, '$1'), false];
    return [l, true];
  }

  /** Join continuation lines from physical index `start` (BuildKit's main loop). */
  private readLogicalLine(start: number): { line?: LogicalLine; next: number } {
    const first = trimNewline(this.lines[start]!);
    const left = trimLeft(first);
    if (left.startsWith('#')) return { next: start + 1 }; // a comment
    let [text, eol] = this.cont(left);
    if (eol && text === '') return { next: start + 1 }; // an empty line
    let i = start + 1;
    let emptyLine = 0;
    while (!eol && i < this.lines.length) {
      const raw = this.lines[i++]!;
      if (this.isComment(raw)) continue;
      const l = trimNewline(raw);
      if (trimLeft(l) === '') {
        emptyLine ||= i;
        continue;
      }
      const [c, e] = this.cont(l);
      text += c;
      eol = e;
    }
    if (emptyLine)
      this.warnings.push({ message: 'Empty continuation line', line: emptyLine, rule: 'NoEmptyContinuation' });
    if (trimSpace(text) === '') return { next: i }; // only continuation characters
    return { line: { text, line: start + 1, endLine: i, column: first.length - left.length + 1 }, next: i };
  }

  /** One instruction from its logical line; reads heredoc bodies from physical index `next`. */
  private parseInstruction(l: LogicalLine, next: number): { instruction: Instruction; next: number } {
    const trimmed = trimSpace(l.text);
    const m = WS.exec(trimmed);
    const word = m ? trimmed.slice(0, m.index) : trimmed;
    const keyword = word.toUpperCase();
    if (!INSTRUCTIONS.includes(keyword))
      throw this.err(`unknown instruction: ${word}`, l.line, l.column, suggest(keyword));
    const argsText = m ? trimmed.slice(m.index + m[0].length) : '';
    const argsCol = l.column + (m ? m.index + m[0].length : trimmed.length);
    const ex = this.extractFlags(argsText, argsCol);
    const rest = trimSpace(ex.rest);
    const restCol = argsCol + ex.restOffset + (ex.rest.length - trimLeft(ex.rest).length);

    // Heredocs: RUN/COPY/ADD (also as an ONBUILD trigger) in shell form; markers anywhere on the line.
    let trigger = keyword;
    let triggerRest = rest;
    if (keyword === 'ONBUILD') {
      const t = WS.exec(rest);
      trigger = (t ? rest.slice(0, t.index) : rest).toUpperCase();
      triggerRest = this.extractFlags(t ? rest.slice(t.index + t[0].length) : '', restCol).rest;
    }
    let heredocs: Heredoc[] = [];
    let rawBodies: string[] = [];
    if (HEREDOC_INSTRUCTIONS.has(trigger) && classifyJSON(triggerRest).kind === 'not-json' && trimmed.includes('<<')) {
      const r = this.readHeredocs(trimmed, next, l);
      heredocs = r.heredocs;
      rawBodies = r.raw;
      next = r.next;
    }
    const flags = this.checkFlags(keyword, ex.flags, l.line);
    const base = { range: { start: { line: l.line, column: l.column }, endLine: l.endLine }, original: trimmed, flags };
    const instruction = this.build(keyword, base, rest, restCol, heredocs, rawBodies, l);
    return { instruction, next };
  }

  /**
   * BuildKit's extractBuilderFlags: leading words starting with `--` are flags (quotes removed,
   * backslash escapes processed); a bare `--` ends them.
   */
  private extractFlags(
    s: string,
    col: number,
  ): { flags: { word: string; column: number }[]; rest: string; restOffset: number } {
    const flags: { word: string; column: number }[] = [];
    let i = 0;
    for (;;) {
      while (i < s.length && isGoSpace(s[i]!)) i++;
      if (i >= s.length) return { flags, rest: '', restOffset: i };
      if (!s.startsWith('--', i)) return { flags, rest: s.slice(i), restOffset: i };
      const start = i;
      let word = '';
      let quote = '';
      for (; i < s.length; i++) {
        const ch = s[i]!;
        if (quote === '') {
          if (isGoSpace(ch)) break;
          if (ch === '"' || ch === "'") quote = ch;
          else if (ch === '\\') {
            if (i + 1 < s.length) word += s[++i];
          } else word += ch;
        } else if (ch === quote) quote = '';
        else if (ch === '\\') {
          if (i + 1 < s.length) word += s[++i];
          else quote = '';
        } else word += ch;
      }
      if (word === '--') {
        while (i < s.length && isGoSpace(s[i]!)) i++;
        return { flags, rest: s.slice(i), restOffset: i };
      }
      if (word !== '' || quote !== '' || s.slice(start, i).includes('"') || s.slice(start, i).includes("'"))
        flags.push({ word, column: col + start });
    }
  }

  /** BuildKit's BFlags.Parse for the instruction. */
  private checkFlags(keyword: string, words: { word: string; column: number }[], line: number): Flag[] {
    const allowed = FLAGS[keyword] ?? {};
    const out: Flag[] = [];
    for (const { word, column } of words) {
      const body = word.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const value = eq < 0 ? undefined : body.slice(eq + 1);
      const spec = allowed[name];
      if (!spec) {
        const names = Object.keys(allowed);
        throw this.err(
          `unknown flag: --${name}`,
          line,
          column,
          names.length ? `${keyword} accepts ${names.map((f) => `--${f}`).join(', ')}` : `${keyword} takes no flags`,
        );
      }
      if (!spec.repeat && out.some((f) => f.name === name))
        throw this.err(`duplicate flag specified: --${name}`, line, column);
      if (spec.bool) {
        if (value === '') throw this.err(`missing a value on flag: --${name}`, line, column);
        if (value !== undefined && !/^(true|false)$/i.test(value))
          throw this.err(`expecting boolean value for flag ${name}, not: ${value}`, line, column);
      } else if (value === undefined)
        throw this.err(`missing a value on flag: --${name}`, line, column, `use --${name}=VALUE`);
      out.push({ name, value, position: { line, column } });
    }
    return out;
  }

  /** Heredoc bodies, in the order of their markers on the line (BuildKit's heredocsFromLine). */
  private readHeredocs(
    text: string,
    next: number,
    l: LogicalLine,
  ): { heredocs: Heredoc[]; raw: string[]; next: number } {
    const heredocs: Heredoc[] = [];
    const raw: string[] = [];
    for (const w of rawWords(text) ?? []) {
      let marker;
      try {
        marker = parseHeredocMarker(w);
      } catch (e) {
        if (e instanceof ExpansionError) throw this.err(`invalid heredoc ${w}: ${e.message}`, l.line, l.column);
        throw e;
      }
      if (!marker) continue;
      let body = '';
      let found = false;
      while (next < this.lines.length) {
        const line = this.lines[next++]!;
        let t = trimNewline(line);
        if (marker.chomp) t = t.replace(/^\t+/, '');
        if (t === marker.name) {
          found = true;
          break;
        }
        body += `${line}\n`;
      }
      if (!found) throw this.err(`unterminated heredoc: no line "${marker.name}" closes ${w}`, l.line, l.column);
      raw.push(body);
      heredocs.push({
        name: marker.name,
        content: marker.chomp ? body.replace(/^\t+/gm, '') : body,
        chomp: marker.chomp,
        expand: marker.expand,
        ...(marker.fileDescriptor ? { fileDescriptor: marker.fileDescriptor } : {}),
      });
    }
    return { heredocs, raw, next };
  }

  /** RUN/CMD/ENTRYPOINT arguments: exec form when a JSON array of strings. */
  private command(rest: string, heredocs: Heredoc[], line: number, col: number): CommandForm {
    const c = classifyJSON(rest);
    if (c.kind === 'not-strings') throw this.err(NOT_STRINGS, line, col);
    if (c.kind === 'json') return { form: 'exec', args: c.args };
    return { form: 'shell', command: rest, heredocs };
  }

  /** COPY/ADD/VOLUME arguments: a JSON array, else words split on whitespace. */
  private list(rest: string, line: number, col: number): { args: string[]; json: boolean } {
    const c = classifyJSON(rest);
    if (c.kind === 'not-strings') throw this.err(NOT_STRINGS, line, col);
    if (c.kind === 'json') return { args: c.args, json: true };
    return { args: splitWhitespace(rest).map((w) => w.text), json: false };
  }

  private build(
    keyword: string,
    base: { range: Instruction['range']; original: string; flags: Flag[] },
    rest: string,
    restCol: number,
    heredocs: Heredoc[],
    rawBodies: string[],
    l: LogicalLine,
  ): Instruction {
    const line = l.line;
    const esc = this.directives.escape;
    const flag = (n: string) => base.flags.find((f) => f.name === n);
    const flagValue = (n: string) => flag(n)?.value;
    const boolFlag = (n: string) => {
      const f = flag(n);
      return f !== undefined && (f.value === undefined || f.value.toLowerCase() === 'true');
    };
    const requireArgs = (what = 'one argument') => {
      if (rest === '') throw this.err(`${keyword} requires at least ${what}`, line, restCol);
    };
    const at = (w: RawWord) => restCol + w.offset;
    switch (keyword) {
      case 'FROM': {
        const words = splitWhitespace(rest);
        if (words.length !== 1 && words.length !== 3)
          throw this.err(
            'FROM requires either one or three arguments',
            line,
            restCol,
            'FROM [--platform=…] IMAGE [AS NAME]',
          );
        if (words.length === 3 && words[1]!.text.toLowerCase() !== 'as')
          throw this.err(
            'FROM requires either one or three arguments',
            line,
            at(words[1]!),
            `the second argument must be AS, not "${words[1]!.text}"`,
          );
        const stageName = words.length === 3 ? words[2]!.text : undefined;
        if (stageName !== undefined && !/^[a-z][a-z0-9-_.]*$/.test(stageName.toLowerCase())) {
          throw this.err(
            `invalid name for build stage: "${stageName}", name can't start with a number or contain symbols`,
            line,
            at(words[2]!),
          );
        }
        return { kind: 'FROM', ...base, image: words[0]!.text, stageName, platform: flagValue('platform') };
      }
      case 'RUN': {
        requireArgs();
        const mountFlags = base.flags.filter((f) => f.name === 'mount').map((f) => f.value!);
        const mounts = base.flags
          .filter((f) => f.name === 'mount')
          .map((f) => {
            try {
              return parseMount(f.value!, { lenient: true });
            } catch (e) {
              if (e instanceof MountError) throw this.err(e.message, line, f.position.column);
              throw e;
            }
          });
        const network = flagValue('network');
        if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
          throw this.err(
            `unsupported network mode "${network}": expected default, none or host`,
            line,
            flag('network')!.position.column,
          );
        }
        const security = flagValue('security');
        if (security !== undefined && !['sandbox', 'insecure'].includes(security)) {
          throw this.err(
            `unsupported security mode "${security}": expected sandbox or insecure`,
            line,
            flag('security')!.position.column,
          );
        }
        return {
          kind: 'RUN',
          ...base,
          command: this.command(rest, heredocs, line, restCol),
          mounts,
          mountFlags,
          network: network as 'default' | 'none' | 'host' | undefined,
          security: security as 'sandbox' | 'insecure' | undefined,
        };
      }
      case 'CMD':
      case 'ENTRYPOINT':
        return { kind: keyword, ...base, command: this.command(rest, [], line, restCol) } as Instruction;
      case 'ENV':
      case 'LABEL': {
        requireArgs();
        return { kind: keyword, ...base, pairs: this.nameValues(keyword, rest, restCol, line) } as Instruction;
      }
      case 'ARG': {
        requireArgs();
        const args = splitWords(rest, esc).map((w) => {
          const eq = w.text.indexOf('=');
          const name = eq < 0 ? w.text : w.text.slice(0, eq);
          if (name === '') throw this.err('ARG names can not be blank', line, at(w));
          if (/[\s$=]/u.test(name)) throw this.err(`invalid ARG name "${name}"`, line, at(w));
          return eq < 0 ? { name } : { name, default: w.text.slice(eq + 1) };
        });
        return { kind: 'ARG', ...base, args };
      }
      case 'EXPOSE':
        requireArgs();
        return { kind: 'EXPOSE', ...base, ports: splitWhitespace(rest).map((w) => w.text) };
      case 'VOLUME': {
        requireArgs();
        const { args } = this.list(rest, line, restCol);
        if (args.length === 0) throw this.err('VOLUME requires at least one argument', line, restCol);
        if (args.some((p) => trimSpace(p) === ''))
          throw this.err('VOLUME specified can not be an empty string', line, restCol);
        return { kind: 'VOLUME', ...base, paths: args };
      }
      case 'COPY':
      case 'ADD': {
        const { args } = this.list(rest, line, restCol);
        if (args.length < 2)
          throw this.err(
            `${keyword} requires at least two arguments, but only ${args.length === 0 ? 'none was' : 'one was'} provided. Destination could not be determined`,
            line,
            restCol,
            `${keyword} SRC… DEST`,
          );
        const dest = args[args.length - 1]!;
        if (safeMarker(dest)) throw this.err(`${keyword} cannot accept a heredoc as a destination`, line, restCol);
        const instr: Instruction = {
          kind: keyword,
          ...base,
          sources: args.slice(0, -1),
          dest,
          heredocs,
          from: flagValue('from'),
          chown: flagValue('chown'),
          chmod: flagValue('chmod'),
          link: boolFlag('link'),
          parents: boolFlag('parents'),
          exclude: base.flags.filter((f) => f.name === 'exclude').map((f) => f.value!),
        };
        if (keyword === 'ADD') {
          instr.checksum = flagValue('checksum');
          instr.keepGitDir = flag('keep-git-dir') ? boolFlag('keep-git-dir') : undefined;
          instr.unpack = flag('unpack') ? boolFlag('unpack') : undefined;
        }
        return instr;
      }
      case 'USER':
        requireArgs();
        return { kind: 'USER', ...base, user: rest };
      case 'WORKDIR':
        requireArgs();
        return { kind: 'WORKDIR', ...base, path: rest };
      case 'STOPSIGNAL':
        requireArgs();
        return { kind: 'STOPSIGNAL', ...base, signal: rest };
      case 'MAINTAINER':
        requireArgs();
        this.warnings.push({
          message: 'MAINTAINER instruction is deprecated in favor of using label',
          line,
          rule: 'MaintainerDeprecated',
        });
        return { kind: 'MAINTAINER', ...base, name: rest };
      case 'SHELL': {
        const c = classifyJSON(rest);
        if (c.kind === 'not-strings') throw this.err(NOT_STRINGS, line, restCol);
        if (c.kind !== 'json')
          throw this.err(
            'SHELL requires the arguments to be in JSON form',
            line,
            restCol,
            'SHELL ["executable", "param1"]',
          );
        if (c.args.length === 0) throw this.err('SHELL requires at least one argument', line, restCol);
        return { kind: 'SHELL', ...base, shell: c.args };
      }
      case 'ONBUILD': {
        requireArgs();
        const t = WS.exec(rest);
        const trig = (t ? rest.slice(0, t.index) : rest).toUpperCase();
        if (trig === 'ONBUILD') throw this.err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", line, restCol);
        if (trig === 'FROM' || trig === 'MAINTAINER')
          throw this.err(`${trig} isn't allowed as an ONBUILD trigger`, line, restCol);
        const sub = this.parseSub({ text: rest, line, endLine: l.endLine, column: restCol }, heredocs, rawBodies);
        let expression = rest;
        heredocs.forEach((h, k) => (expression += `\n${rawBodies[k]}${h.name}`));
        return { kind: 'ONBUILD', ...base, expression, trigger: sub };
      }
      case 'HEALTHCHECK': {
        requireArgs();
        const m = /^(\S+)\s*([\s\S]*)$/u.exec(rest)!;
        const typ = m[1]!.toUpperCase();
        const cmdCol = restCol + rest.length - m[2]!.length;
        if (typ === 'NONE') {
          if (m[2]!.trim() !== '') throw this.err('HEALTHCHECK NONE takes no arguments', line, cmdCol);
          if (base.flags.length)
            throw this.err('HEALTHCHECK NONE takes no flags', line, base.flags[0]!.position.column);
          return { kind: 'HEALTHCHECK', ...base, none: true };
        }
        if (typ !== 'CMD') throw this.err(`Unknown type "${m[1]}" in HEALTHCHECK (try CMD)`, line, restCol);
        const command = this.command(m[2]!, [], line, cmdCol);
        if (
          (command.form === 'shell' && command.command === '') ||
          (command.form === 'exec' && command.args.length === 0)
        ) {
          throw this.err('Missing command after HEALTHCHECK CMD', line, cmdCol);
        }
        const dur = (n: string) => {
          const f = flag(n);
          if (!f || f.value === '') return undefined;
          const d = parseDuration(f.value!);
          if (d === undefined)
            throw this.err(
              `invalid duration for --${n}: "${f.value}"`,
              line,
              f.position.column,
              'use a Go duration such as 30s, 1m30s, 500ms',
            );
          if (d !== 0 && d < 1e6) throw this.err(`Interval "${n}" cannot be less than 1ms`, line, f.position.column);
          return d;
        };
        let retries: number | undefined;
        const rf = flag('retries');
        if (rf && rf.value !== '') {
          if (!/^[+-]?\d+$/.test(rf.value!) || Math.abs(Number(rf.value)) > 2 ** 31 - 1)
            throw this.err(`invalid --retries value "${rf.value}": expected an integer`, line, rf.position.column);
          retries = Number(rf.value);
          if (retries < 0) throw this.err(`--retries cannot be negative (${retries})`, line, rf.position.column);
        }
        return {
          kind: 'HEALTHCHECK',
          ...base,
          none: false,
          command,
          interval: dur('interval'),
          timeout: dur('timeout'),
          startPeriod: dur('start-period'),
          startInterval: dur('start-interval'),
          retries,
        };
      }
    }
    throw this.err(`unknown instruction: ${keyword}`, line, l.column);
  }

  /** An ONBUILD trigger: parsed like an instruction of its own (its heredocs were read already). */
  private parseSub(l: LogicalLine, heredocs: Heredoc[], rawBodies: string[]): Instruction {
    const trimmed = trimSpace(l.text);
    const m = WS.exec(trimmed);
    const word = m ? trimmed.slice(0, m.index) : trimmed;
    const keyword = word.toUpperCase();
    if (!INSTRUCTIONS.includes(keyword))
      throw this.err(`unknown instruction: ${word}`, l.line, l.column, suggest(keyword));
    const argsText = m ? trimmed.slice(m.index + m[0].length) : '';
    const argsCol = l.column + (m ? m.index + m[0].length : trimmed.length);
    const ex = this.extractFlags(argsText, argsCol);
    const rest = trimSpace(ex.rest);
    const restCol = argsCol + ex.restOffset + (ex.rest.length - trimLeft(ex.rest).length);
    const flags = this.checkFlags(keyword, ex.flags, l.line);
    const base = { range: { start: { line: l.line, column: l.column }, endLine: l.endLine }, original: trimmed, flags };
    return this.build(keyword, base, rest, restCol, heredocs, rawBodies, l);
  }

  /** ENV/LABEL: `k=v k2="v 2"` or the legacy `ENV k value with spaces` (BuildKit's parseNameVal). */
  private nameValues(keyword: string, rest: string, restCol: number, line: number): KeyValue[] {
    const words = splitWords(rest, this.directives.escape);
    if (words.length === 0) throw this.err(`${keyword} requires at least one argument`, line, restCol);
    if (!words[0]!.text.includes('=')) {
      // Legacy form: the first word is the name, the rest of the line the value.
      const m = WS.exec(rest);
      if (!m) throw this.err(`${keyword} must have two arguments`, line, restCol, `use ${keyword} NAME=VALUE`);
      const key = rest.slice(0, m.index);
      this.warnings.push({
        message: `"${keyword} key=value" should be used instead of legacy "${keyword} key value" format`,
        line,
        rule: 'LegacyKeyValueFormat',
      });
      return [{ key, value: rest.slice(m.index + m[0].length) }];
    }
    return words.map((w) => {
      const eq = w.text.indexOf('=');
      if (eq < 0)
        throw this.err(
          `Syntax error - can't find = in "${w.text}". Must be of the form: name=value`,
          line,
          restCol + w.offset,
        );
      const key = w.text.slice(0, eq);
      if (key === '') throw this.err(`${keyword} names can not be blank`, line, restCol + w.offset);
      return { key, value: w.text.slice(eq + 1) };
    });
  }
}

function trimNewline(s: string): string {
  let j = s.length;
  while (j > 0 && (s[j - 1] === '\r' || s[j - 1] === '\n')) j--;
  return j === s.length ? s : s.slice(0, j);
}

function safeMarker(w: string) {
  try {
    return parseHeredocMarker(w);
  } catch {
    return undefined;
  }
}

function suggest(keyword: string): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of INSTRUCTIONS) {
    const d = editDistance(k, keyword);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? `did you mean ${best}?` : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || b.length > 64) return 99;
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      dp[i]![j] = Math.min(
        dp[i - 1]![j]! + 1,
        dp[i]![j - 1]! + 1,
        dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
  return dp[a.length]![b.length]!;
}
