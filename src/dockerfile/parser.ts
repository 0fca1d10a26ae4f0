/**
 * Dockerfile text → AST, following BuildKit's parser (Dockerfile syntax 1.x): parser directives at
 * the top, comments, line continuations (comment and empty lines inside them are dropped),
 * heredocs, instructions with their flags, exec (JSON) vs shell form.
 *
 * Untrusted input: every failure is a KilnError('PARSE') with file:line:column and the line.
 */
import { KilnError } from '../util/errors.js';
import type {
  CommandForm,
  Directives,
  Dockerfile,
  Flag,
  Heredoc,
  Instruction,
  KeyValue,
  Position,
  Warning,
} from './ast.js';
import { parseMount } from './mounts.js';
import { parseDuration, parseJSONArray, splitWords } from './words.js';

export interface ParseOptions {
  /** Name shown in errors (default "Dockerfile"). */
  file?: string;
}

const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.*?)[ \t]*$/;

/** Flags each instruction accepts, and whether a flag may repeat. */
const FLAGS: Record<string, Record<string, { repeat?: boolean; bool?: boolean }>> = {
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

const INSTRUCTIONS = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT',
  'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
]);

/** A logical instruction line, continuations joined. */
interface LogicalLine {
  text: string;
  line: number; // first physical line, 1-based
  endLine: number;
  /** Column (1-based) where `text` starts in the first physical line. */
  column: number;
}

export function parseDockerfile(text: string, opts: ParseOptions = {}): Dockerfile {
  return new Parser(text, opts.file ?? 'Dockerfile').parse();
}

class Parser {
  private readonly lines: string[];
  private readonly warnings: Warning[] = [];
  private directives: Directives = { escape: '\\' };

  constructor(
    text: string,
    private readonly file: string,
  ) {
    // A UTF-8 BOM is ignored, as BuildKit does.
    const t = text.startsWith('\ufeff') ? text.slice(1) : text;
    this.lines = t.split(/\r?\n/);
  }

  private err(message: string, line: number, column = 1, hint?: string): KilnError {
    return new KilnError('PARSE', message, { file: this.file, line, column, source: this.lines[line - 1] ?? '' }, { hint });
  }

  parse(): Dockerfile {
    let i = this.parseDirectives();
    const instructions: Instruction[] = [];
    const esc = this.directives.escape;
    while (i < this.lines.length) {
      const raw = this.lines[i]!;
      if (raw.trim() === '' || /^\s*#/.test(raw)) {
        i++;
        continue;
      }
      const logical = this.readLogicalLine(i, esc);
      i = logical.endLine; // next physical index (endLine is 1-based last line)
      if (logical.text.trim() === '') continue; // only continuation characters
      const { instruction, next } = this.parseInstruction(logical, i);
      i = next;
      instructions.push(instruction);
    }
    return { file: this.file, directives: this.directives, instructions, warnings: this.warnings, lines: this.lines };
  }

  /** Parser directives: only at the very top; the first other line ends them. */
  private parseDirectives(): number {
    const seen = new Set<string>();
    let i = 0;
    for (; i < this.lines.length; i++) {
      const m = DIRECTIVE_RE.exec(this.lines[i]!);
      if (!m) break;
      const name = m[1]!.toLowerCase();
      if (!KNOWN_DIRECTIVES.has(name)) break; // an unknown directive is a comment, which ends directives
      if (seen.has(name)) throw this.err(`only one ${name} parser directive can be used`, i + 1);
      seen.add(name);
      const value = m[2]!;
      if (name === 'escape') {
        if (value !== '\\' && value !== '`') throw this.err(`invalid escape token '${value}': it must be \\ or \``, i + 1);
        this.directives.escape = value;
      } else if (name === 'syntax') this.directives.syntax = value;
      else this.directives.check = value;
    }
    return i;
  }

  /** Join continuation lines starting at physical index `start`. */
  private readLogicalLine(start: number, esc: string): LogicalLine {
    const contRe = new RegExp(`${esc === '\\' ? '\\\\' : '`'}[ \\t]*$`);
    let text = '';
    let i = start;
    const first = this.lines[start]!;
    const column = first.length - first.trimStart().length + 1;
    let line = first.trimStart();
    for (;;) {
      if (contRe.test(line)) {
        text += line.replace(contRe, '');
        i++;
        // Comment lines and empty lines inside a continuation are dropped.
        while (i < this.lines.length) {
          const next = this.lines[i]!;
          if (/^\s*#/.test(next)) {
            i++;
            continue;
          }
          if (next.trim() === '') {
            this.warnings.push({ message: 'Empty continuation line', line: i + 1, rule: 'NoEmptyContinuation' });
            i++;
            continue;
          }
          break;
        }
        if (i >= this.lines.length) break; // continuation at end of file
        line = this.lines[i]!;
        continue;
      }
      text += line;
      i++;
      break;
    }
    return { text: text.trim(), line: start + 1, endLine: i, column };
  }

  private parseInstruction(l: LogicalLine, nextIndex: number): { instruction: Instruction; next: number } {
    const m = /^(\S+)(\s*)([\s\S]*)$/.exec(l.text)!;
    const keyword = m[1]!.toUpperCase();
    const argsCol = l.column + m[1]!.length + m[2]!.length;
    if (!INSTRUCTIONS.has(keyword)) {
      throw this.err(`unknown instruction: ${m[1]}`, l.line, l.column, suggest(keyword));
    }
    const { flags, rest, restCol } = this.extractFlags(keyword, m[3]!, l.line, argsCol);
    // Heredocs (RUN, COPY, ADD in shell form): bodies follow the instruction line.
    let heredocs: Heredoc[] = [];
    let next = nextIndex;
    if ((keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD') && parseJSONArray(rest) === undefined) {
      const r = this.readHeredocs(rest, next, l.line);
      heredocs = r.heredocs;
      next = r.next;
    }
    const base = {
      range: { start: { line: l.line, column: l.column }, endLine: l.endLine },
      original: l.text,
      flags,
    };
    const instruction = this.build(keyword, base, rest, restCol, heredocs, l);
    return { instruction, next };
  }

  private extractFlags(keyword: string, args: string, line: number, col: number): { flags: Flag[]; rest: string; restCol: number } {
    const flags: Flag[] = [];
    let rest = args;
    let restCol = col;
    const allowed = FLAGS[keyword] ?? {};
    for (;;) {
      const m = /^--([^\s=]*)(?:=((?:"[^"]*"|'[^']*'|\S)*))?(\s*)/.exec(rest);
      if (!m || !rest.startsWith('--')) break;
      const name = m[1]!;
      if (name === '') {
        // A bare "--" ends the flags.
        rest = rest.slice(m[0].length);
        restCol += m[0].length;
        break;
      }
      const pos: Position = { line, column: restCol };
      const spec = allowed[name];
      if (!spec) throw this.err(`unknown flag: --${name}`, line, restCol, Object.keys(allowed).length ? `${keyword} accepts ${Object.keys(allowed).map((f) => `--${f}`).join(', ')}` : `${keyword} takes no flags`);
      if (!spec.repeat && flags.some((f) => f.name === name)) throw this.err(`duplicate flag specified: --${name}`, line, restCol);
      const value = m[2];
      if (value === undefined && !spec.bool) throw this.err(`missing a value on flag: --${name}`, line, restCol, `use --${name}=VALUE`);
      if (spec.bool && value !== undefined && !/^(true|false)$/i.test(value)) throw this.err(`expecting boolean value for flag ${name}, not: ${value}`, line, restCol);
      flags.push({ name, value, position: pos });
      rest = rest.slice(m[0].length);
      restCol += m[0].length;
    }
    return { flags, rest, restCol };
  }

  private readHeredocs(rest: string, next: number, line: number): { heredocs: Heredoc[]; next: number } {
    const heredocs: Heredoc[] = [];
    const words = splitWords(rest, this.directives.escape);
    for (const w of words) {
      const m = /^(?:[0-9]*)<<(-?)(["']?)([A-Za-z0-9_.][A-Za-z0-9_.-]*)\2$/.exec(w.text);
      if (!m) continue;
      const chomp = m[1] === '-';
      const name = m[3]!;
      const body: string[] = [];
      let found = false;
      while (next < this.lines.length) {
        let l = this.lines[next++]!;
        if (chomp) l = l.replace(/^\t+/, '');
        if (l === name) {
          found = true;
          break;
        }
        body.push(l);
      }
      if (!found) throw this.err(`unterminated heredoc: no line "${name}" closes <<${m[1]}${m[2]}${name}`, line, 1);
      heredocs.push({ name, content: body.length ? `${body.join('\n')}\n` : '', chomp, expand: m[2] === '' });
    }
    return { heredocs, next };
  }

  private command(rest: string, heredocs: Heredoc[]): CommandForm {
    const json = parseJSONArray(rest);
    if (json !== undefined) return { form: 'exec', args: json };
    return { form: 'shell', command: rest, heredocs };
  }

  private build(keyword: string, base: { range: Instruction['range']; original: string; flags: Flag[] }, rest: string, restCol: number, heredocs: Heredoc[], l: LogicalLine): Instruction {
    const line = l.line;
    const esc = this.directives.escape;
    const flag = (n: string) => base.flags.find((f) => f.name === n);
    const flagValue = (n: string) => flag(n)?.value;
    const boolFlag = (n: string) => {
      const f = flag(n);
      return f !== undefined && (f.value === undefined || f.value.toLowerCase() === 'true');
    };
    const requireArgs = (what = 'one argument') => {
      if (rest.trim() === '') throw this.err(`${keyword} requires at least ${what}`, line, restCol);
    };
    switch (keyword) {
      case 'FROM': {
        const words = splitWords(rest, esc);
        if (words.length !== 1 && words.length !== 3) {
          throw this.err('FROM requires either one or three arguments', line, restCol, 'FROM [--platform=…] IMAGE [AS NAME]');
        }
        if (words.length === 3 && words[1]!.text.toLowerCase() !== 'as') {
          throw this.err(`FROM expects "AS" as its second argument, not "${words[1]!.text}"`, line, restCol + words[1]!.offset);
        }
        const stageName = words.length === 3 ? words[2]!.text : undefined;
        if (stageName !== undefined && !/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(stageName)) {
          throw this.err(`invalid name for build stage: "${stageName}", name can't start with a number or contain symbols`, line, restCol + words[2]!.offset);
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
              throw this.err((e as Error).message, line, f.position.column);
            }
          });
        const network = flagValue('network');
        if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
          throw this.err(`invalid --network value "${network}": expected default, none or host`, line, flag('network')!.position.column);
        }
        const security = flagValue('security');
        if (security !== undefined && !['sandbox', 'insecure'].includes(security)) {
          throw this.err(`invalid --security value "${security}": expected sandbox or insecure`, line, flag('security')!.position.column);
        }
        return {
          kind: 'RUN',
          ...base,
          command: this.command(rest, heredocs),
          mounts,
          mountFlags,
          network: network as 'default' | 'none' | 'host' | undefined,
          security: security as 'sandbox' | 'insecure' | undefined,
        };
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const command = this.command(rest, []);
        return { kind: keyword, ...base, command } as Instruction;
      }
      case 'ENV':
      case 'LABEL': {
        requireArgs();
        const pairs = this.nameValues(keyword, rest, restCol, line);
        return { kind: keyword, ...base, pairs } as Instruction;
      }
      case 'ARG': {
        requireArgs();
        const args = splitWords(rest, esc).map((w) => {
          const eq = w.text.indexOf('=');
          const name = eq < 0 ? w.text : w.text.slice(0, eq);
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !/^[^\s=$]+$/.test(name)) throw this.err(`invalid ARG name "${name}"`, line, restCol + w.offset);
          if (name === '') throw this.err('ARG names can not be blank', line, restCol + w.offset);
          return eq < 0 ? { name } : { name, default: w.text.slice(eq + 1) };
        });
        return { kind: 'ARG', ...base, args };
      }
      case 'EXPOSE': {
        requireArgs();
        return { kind: 'EXPOSE', ...base, ports: splitWords(rest, esc).map((w) => w.text) };
      }
      case 'VOLUME': {
        requireArgs();
        const json = parseJSONArray(rest);
        const paths = json ?? splitWords(rest, esc).map((w) => w.text);
        if (paths.some((p) => p.trim() === '')) throw this.err('VOLUME specified can not be an empty string', line, restCol);
        return { kind: 'VOLUME', ...base, paths };
      }
      case 'COPY':
      case 'ADD': {
        const json = parseJSONArray(rest);
        const all = json ?? splitWords(rest, esc).map((w) => w.text);
        if (all.length < 2) throw this.err(`${keyword} requires at least two arguments, but only ${all.length} provided`, line, restCol, `${keyword} SRC… DEST`);
        const exclude = base.flags.filter((f) => f.name === 'exclude').map((f) => f.value!);
        const instr: Instruction = {
          kind: keyword,
          ...base,
          sources: all.slice(0, -1),
          dest: all[all.length - 1]!,
          heredocs,
          from: flagValue('from'),
          chown: flagValue('chown'),
          chmod: flagValue('chmod'),
          link: boolFlag('link'),
          parents: boolFlag('parents'),
          exclude,
        };
        if (keyword === 'ADD') {
          instr.checksum = flagValue('checksum');
          instr.keepGitDir = flag('keep-git-dir') ? boolFlag('keep-git-dir') : undefined;
          instr.unpack = flag('unpack') ? boolFlag('unpack') : undefined;
        }
        return instr;
      }
      case 'USER': {
        requireArgs();
        const words = splitWords(rest, esc);
        if (words.length !== 1) throw this.err('USER requires exactly one argument', line, restCol);
        return { kind: 'USER', ...base, user: words[0]!.text };
      }
      case 'WORKDIR': {
        requireArgs();
        return { kind: 'WORKDIR', ...base, path: rest };
      }
      case 'STOPSIGNAL': {
        requireArgs();
        const words = splitWords(rest, esc);
        if (words.length !== 1) throw this.err('STOPSIGNAL requires exactly one argument', line, restCol);
        return { kind: 'STOPSIGNAL', ...base, signal: words[0]!.text };
      }
      case 'MAINTAINER': {
        requireArgs();
        this.warnings.push({ message: 'MAINTAINER instruction is deprecated in favor of using label', line, rule: 'MaintainerDeprecated' });
        return { kind: 'MAINTAINER', ...base, name: rest };
      }
      case 'SHELL': {
        const json = parseJSONArray(rest);
        if (json === undefined) throw this.err('SHELL requires the arguments to be in JSON form', line, restCol, 'SHELL ["executable", "param1"]');
        if (json.length === 0) throw this.err('SHELL requires at least one argument', line, restCol);
        return { kind: 'SHELL', ...base, shell: json };
      }
      case 'ONBUILD': {
        requireArgs();
        const m = /^(\S+)/.exec(rest)!;
        const trig = m[1]!.toUpperCase();
        if (trig === 'ONBUILD') throw this.err('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed', line, restCol);
        if (trig === 'FROM' || trig === 'MAINTAINER') throw this.err(`${trig} isn't allowed as an ONBUILD trigger`, line, restCol);
        const sub = this.parseInstruction({ text: rest, line, endLine: l.endLine, column: restCol }, l.endLine);
        return { kind: 'ONBUILD', ...base, expression: rest, trigger: sub.instruction };
      }
      case 'HEALTHCHECK': {
        requireArgs();
        const m = /^(\S+)\s*([\s\S]*)$/.exec(rest)!;
        const typ = m[1]!.toUpperCase();
        if (typ === 'NONE') {
          if (m[2]!.trim() !== '') throw this.err('HEALTHCHECK NONE takes no arguments', line, restCol);
          if (base.flags.length) throw this.err('HEALTHCHECK NONE takes no flags', line, restCol);
          return { kind: 'HEALTHCHECK', ...base, none: true };
        }
        if (typ !== 'CMD') throw this.err(`unknown type "${m[1]}" in HEALTHCHECK (try CMD)`, line, restCol);
        if (m[2]!.trim() === '') throw this.err('HEALTHCHECK CMD requires a command', line, restCol);
        const dur = (n: string) => {
          const f = flag(n);
          if (!f) return undefined;
          const d = parseDuration(f.value!);
          if (d === undefined) throw this.err(`invalid duration for --${n}: "${f.value}"`, line, f.position.column);
          if (d !== 0 && d < 1e6) throw this.err(`--${n} cannot be less than 1ms`, line, f.position.column);
          return d;
        };
        let retries: number | undefined;
        const rf = flag('retries');
        if (rf) {
          retries = Number(rf.value);
          if (!Number.isInteger(retries) || retries < 0) throw this.err(`--retries must be a non-negative integer, not "${rf.value}"`, line, rf.position.column);
        }
        return {
          kind: 'HEALTHCHECK',
          ...base,
          none: false,
          command: this.command(m[2]!, []),
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

  /** ENV/LABEL: `k=v k2="v 2"` or the legacy `ENV k value with spaces`. */
  private nameValues(keyword: string, rest: string, restCol: number, line: number): KeyValue[] {
    const words = splitWords(rest, this.directives.escape);
    if (!words[0]!.text.includes('=')) {
      // Legacy form: the first word is the name, the rest of the line the value.
      const key = words[0]!.text;
      const value = rest.slice(words[0]!.offset + key.length).trim();
      if (value === '' && keyword === 'ENV') throw this.err(`ENV must have two arguments`, line, restCol, 'use ENV NAME=VALUE');
      this.warnings.push({ message: `"${keyword} key value" should be used as "${keyword} key=value"`, line, rule: 'LegacyKeyValueFormat' });
      return [{ key, value }];
    }
    return words.map((w) => {
      const eq = w.text.indexOf('=');
      if (eq < 0) throw this.err(`Syntax error - can't find = in "${w.text}". Must be of the form: name=value`, line, restCol + w.offset);
      const key = w.text.slice(0, eq);
      if (key === '') throw this.err(`${keyword} names can not be blank`, line, restCol + w.offset);
      return { key, value: w.text.slice(eq + 1) };
    });
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
  if (Math.abs(a.length - b.length) > 3) return 99;
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return dp[a.length]![b.length]!;
}
