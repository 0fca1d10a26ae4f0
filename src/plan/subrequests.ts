/**
 * BuildKit's frontend subrequests, which `docker buildx build --call=targets|outline` answer
 * without building (frontend/subrequests in BuildKit; the printed forms are buildx's):
 *   - targets: every stage, its name, whether it is the default (the last), its description;
 *   - outline: the target, its description, the build arguments it uses (value, description),
 *     the secrets and SSH agents its RUN steps mount.
 * A description is a comment line directly above the FROM or ARG that starts with the stage's
 * or argument's name (`# builder compiles the app` above `FROM … AS builder`), as BuildKit's
 * parser keeps it: a blank line or an empty `#` between them ends the comment block. Pure.
 */
import { type Instruction } from '../dockerfile/index.js';
import type { BuildPlan } from './types.js';

export interface TargetInfo {
  name?: string;
  default: boolean;
  description?: string;
  base: string;
  line: number;
}

export interface Outline {
  name?: string;
  description?: string;
  args: { name: string; value?: string; description?: string }[];
  secrets: { name: string; required: boolean }[];
  ssh: { name: string; required: boolean }[];
}

/** The comment lines directly above line `line` (1-based), top first. */
export function commentsAbove(lines: string[], line: number): string[] {
  const out: string[] = [];
  for (let i = line - 2; i >= 0; i--) {
    const t = lines[i]!.trim();
    if (!t.startsWith('#')) break;
    const text = t.slice(1).trim();
    if (text === '') break;
    out.unshift(text);
  }
  return out;
}

/** BuildKit's getComment: the text after `NAME ` of the first comment line that starts so. */
export function describedBy(comments: string[], name: string | undefined): string | undefined {
  if (!name) return undefined;
  const l = comments.find((c) => c.startsWith(`${name} `));
  return l?.slice(name.length + 1);
}

export function listTargets(plan: BuildPlan, text: string): TargetInfo[] {
  const lines = text.split(/\r?\n/);
  return plan.stages.map((s) => ({
    name: s.name,
    default: s.index === plan.stages.length - 1,
    description: describedBy(commentsAbove(lines, s.position.line), s.name),
    base:
      s.base.kind === 'image'
        ? s.base.ref
        : s.base.kind === 'scratch'
          ? 'scratch'
          : (plan.stages[s.base.index]!.name ?? String(s.base.index)),
    line: s.position.line,
  }));
}

export function outline(plan: BuildPlan, text: string): Outline {
  const lines = text.split(/\r?\n/);
  const target = plan.stages[plan.target]!;
  const args = new Map<string, { name: string; value?: string; description?: string }>();
  const secrets = new Map<string, boolean>();
  const ssh = new Map<string, boolean>();
  const globals = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
  const fromLines = new Set<number>();
  for (const n of plan.order) {
    const s = plan.stages[n]!;
    fromLines.add(s.position.line);
    for (const p of s.instructions) {
      const ins: Instruction = p.instruction;
      if (ins.kind === 'ARG') {
        for (const a of ins.args) {
          if (args.has(a.name)) continue;
          const value = plan.buildArgs[a.name] ?? a.default ?? globals.get(a.name);
          args.set(a.name, {
            name: a.name,
            value,
            description: describedBy(commentsAbove(lines, ins.range.start.line), a.name),
          });
        }
      } else if (ins.kind === 'RUN') {
        for (const m of ins.mounts) {
          if (m.type === 'secret') {
            const id = m.id ?? (m.target ? m.target.split('/').pop()! : '');
            if (id) secrets.set(id, (secrets.get(id) ?? false) || (m.required ?? false));
          } else if (m.type === 'ssh') {
            const id = m.id ?? 'default';
            ssh.set(id, (ssh.get(id) ?? false) || (m.required ?? false));
          }
        }
      }
    }
  }
  // Global ARGs the needed stages' FROM lines use (`FROM base:${VERSION}`).
  const fromText = [...fromLines].map((l) => lines[l - 1] ?? '').join('\n');
  for (const g of plan.globalArgs) {
    if (args.has(g.name) || !new RegExp(`\\$\\{?${g.name}\\b`).test(fromText)) continue;
    const declared = lines.findIndex((l) => new RegExp(`^\\s*ARG\\s+${g.name}\\b`, 'i').test(l));
    args.set(g.name, {
      name: g.name,
      value: g.value,
      description: declared >= 0 ? describedBy(commentsAbove(lines, declared + 1), g.name) : undefined,
    });
  }
  return {
    name: target.name,
    description: describedBy(commentsAbove(lines, target.position.line), target.name),
    args: [...args.values()],
    secrets: [...secrets].map(([name, required]) => ({ name, required })),
    ssh: [...ssh].map(([name, required]) => ({ name, required })),
  };
}

/** Columns as Go's tabwriter pads them (minwidth 0, padding `pad`, spaces). */
function table(rows: string[][], pad: number): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map(
      (r) =>
        r
          .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + pad)))
          .join('')
          .trimEnd() + '\n',
    )
    .join('');
}

/** As `docker buildx build --call=targets` prints it. */
export function formatTargets(targets: TargetInfo[]): string {
  if (targets.length === 0) return 'No targets found\n';
  return table(
    [
      ['TARGET', 'DESCRIPTION'],
      ...targets.map((t) => [
        t.default ? (t.name ? `${t.name} (default)` : '(default)') : (t.name ?? ''),
        t.description ?? '',
      ]),
    ],
    1,
  );
}

/** As `docker buildx build --call=outline` prints it. */
export function formatOutline(o: Outline): string {
  let out =
    table([['TARGET:', o.name ?? '(default)'], ...(o.description ? [['DESCRIPTION:', o.description]] : [])], 1) + '\n';
  if (o.args.length)
    out +=
      table(
        [
          ['BUILD ARG', 'VALUE', 'DESCRIPTION'],
          ...o.args.map((a) => [a.name, a.value ?? '<null>', a.description ?? '']),
        ],
        3,
      ) + '\n';
  if (o.secrets.length)
    out += table([['SECRET', 'REQUIRED'], ...o.secrets.map((s) => [s.name, s.required ? 'true' : ''])], 3) + '\n';
  if (o.ssh.length)
    out += table([['SSH', 'REQUIRED'], ...o.ssh.map((s) => [s.name, s.required ? 'true' : ''])], 3) + '\n';
  return out;
}
