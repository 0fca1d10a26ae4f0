/** Rendering plans and instructions as text (`kiln plan --format text`, PlannedInstruction.expanded). */
import { type CommandForm, type Heredoc, type Instruction, type MountSpec } from '../dockerfile/index.js';
import type { BuildPlan, PlannedStage } from './types.js';
import type { MultiPlatformPlan } from './platforms.js';

/** A value as a Dockerfile word: bare when it is one, JSON-quoted otherwise. */
function word(v: string): string {
  return v !== '' && /^[^\s"']+$/u.test(v) ? v : JSON.stringify(v);
}

function bodies(heredocs: Heredoc[]): string {
  return heredocs.map((h) => `\n${h.content}${h.name}`).join('');
}

function command(c: CommandForm): string {
  return c.form === 'exec' ? JSON.stringify(c.args) : c.command + bodies(c.heredocs);
}

function mountText(m: MountSpec): string {
  const kv: [string, string | number | boolean | undefined][] = [['type', m.type]];
  switch (m.type) {
    case 'bind':
      kv.push(['target', m.target], ['source', m.source], ['from', m.from], ['rw', m.readwrite || undefined]);
      break;
    case 'cache':
      kv.push(
        ['target', m.target],
        ['id', m.id],
        ['source', m.source],
        ['from', m.from],
        ['sharing', m.sharing === 'shared' ? undefined : m.sharing],
        ['ro', m.readonly || undefined],
      );
      kv.push(['mode', m.mode === undefined ? undefined : `0${m.mode.toString(8)}`], ['uid', m.uid], ['gid', m.gid]);
      break;
    case 'tmpfs':
      kv.push(['target', m.target], ['size', m.size]);
      break;
    case 'secret':
    case 'ssh':
      kv.push(['id', m.id], ['target', m.target]);
      if (m.type === 'secret') kv.push(['env', m.env]);
      kv.push(
        ['required', m.required || undefined],
        ['mode', m.mode === undefined ? undefined : `0${m.mode.toString(8)}`],
        ['uid', m.uid],
        ['gid', m.gid],
      );
      break;
  }
  return kv
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => (v === true ? k : `${k}=${v}`))
    .join(',');
}

/** An instruction as one line of Dockerfile text (heredoc bodies on the following lines). */
export function formatInstruction(ins: Instruction): string {
  switch (ins.kind) {
    case 'ENV':
    case 'LABEL':
      return `${ins.kind} ${ins.pairs.map((p) => `${word(p.key)}=${word(p.value)}`).join(' ')}`;
    case 'ARG':
      return `ARG ${ins.args.map((a) => (a.default === undefined ? a.name : `${a.name}=${word(a.default)}`)).join(' ')}`;
    case 'COPY':
    case 'ADD': {
      const f: string[] = [];
      if (ins.from !== undefined) f.push(`--from=${ins.from}`);
      if (ins.chown !== undefined) f.push(`--chown=${ins.chown}`);
      if (ins.chmod !== undefined) f.push(`--chmod=${ins.chmod}`);
      if (ins.link) f.push('--link');
      if (ins.parents) f.push('--parents');
      for (const e of ins.exclude) f.push(`--exclude=${e}`);
      if (ins.checksum !== undefined) f.push(`--checksum=${ins.checksum}`);
      if (ins.keepGitDir) f.push('--keep-git-dir');
      if (ins.unpack !== undefined) f.push(`--unpack=${ins.unpack}`);
      const paths = [...ins.sources, ins.dest];
      const args = paths.some((p) => /\s/u.test(p)) ? JSON.stringify(paths) : paths.join(' ');
      return [ins.kind, ...f, args].join(' ') + bodies(ins.heredocs);
    }
    case 'RUN': {
      const f = ins.mounts.map((m) => `--mount=${mountText(m)}`);
      if (ins.network) f.push(`--network=${ins.network}`);
      if (ins.security) f.push(`--security=${ins.security}`);
      return ['RUN', ...f, command(ins.command)].join(' ');
    }
    case 'CMD':
    case 'ENTRYPOINT':
      return `${ins.kind} ${command(ins.command)}`;
    case 'EXPOSE':
      return `EXPOSE ${ins.ports.join(' ')}`;
    case 'VOLUME':
      return `VOLUME ${JSON.stringify(ins.paths)}`;
    case 'USER':
      return `USER ${ins.user}`;
    case 'WORKDIR':
      return `WORKDIR ${ins.path}`;
    case 'STOPSIGNAL':
      return `STOPSIGNAL ${ins.signal}`;
    case 'SHELL':
      return `SHELL ${JSON.stringify(ins.shell)}`;
    case 'MAINTAINER':
      return `MAINTAINER ${ins.name}`;
    default:
      return ins.original;
  }
}

function stageLabel(plan: BuildPlan, n: number): string {
  const s = plan.stages[n]!;
  return s.name ? `${s.name} (#${n})` : `#${n}`;
}

function baseLabel(plan: BuildPlan, s: PlannedStage): string {
  if (s.base.kind === 'image') return `image ${s.base.ref}`;
  if (s.base.kind === 'stage') return `stage ${stageLabel(plan, s.base.index)}`;
  return 'scratch';
}

export function formatPlanText(plan: BuildPlan): string {
  const out: string[] = [];
  const t = plan.stages[plan.target]!;
  out.push(
    `${plan.file}: ${plan.stages.length} stage(s), target ${stageLabel(plan, t.index)}, platform ${plan.platform.target}`,
  );
  if (plan.syntax !== undefined)
    out.push(`syntax: ${plan.syntax} (read as docker/dockerfile:1, kiln's built-in frontend)`);
  if (plan.globalArgs.length)
    out.push(
      `global args: ${plan.globalArgs.map((a) => (a.value === undefined ? a.name : `${a.name}=${a.value}`)).join(' ')}`,
    );
  out.push(`build order: ${plan.waves.map((w) => w.map((n) => stageLabel(plan, n)).join(' + ')).join(' -> ')}`);
  out.push('');
  const ordered = [...plan.order, ...plan.stages.filter((s) => !s.needed).map((s) => s.index)];
  for (const n of ordered) {
    const s = plan.stages[n]!;
    const deps = s.dependsOn.length ? `, needs ${s.dependsOn.map((d) => stageLabel(plan, d)).join(', ')}` : '';
    const imgs = s.images.length ? `, copies from ${s.images.join(', ')}` : '';
    out.push(
      `stage ${stageLabel(plan, n)} FROM ${baseLabel(plan, s)}${s.platform ? ` --platform=${s.platform}` : ''}${deps}${imgs}${s.needed ? '' : '  [skipped]'}`,
    );
    for (const pi of s.onbuild ?? [])
      out.push(
        `  ${String(pi.instruction.range.start.line).padStart(4)}  (ONBUILD) ${pi.expanded.replace(/\n/g, '\n        ')}`,
      );
    for (const pi of s.instructions)
      out.push(`  ${String(pi.instruction.range.start.line).padStart(4)}  ${pi.expanded.replace(/\n/g, '\n        ')}`);
  }
  for (const w of plan.warnings)
    out.push(`warning: ${w.line !== undefined ? `${plan.file}:${w.line}: ` : ''}${w.message}`);
  return `${out.join('\n')}\n`;
}

/**
 * `kiln plan --platform a,b`: which stages run once and which per platform, then each platform's
 * plan (their expanded instructions differ where a stage reads TARGET*).
 */
export function formatMultiPlatformPlanText(mp: MultiPlatformPlan): string {
  const first = mp.plans[0]!;
  const out = [`platforms: ${mp.platforms.join(', ')}`];
  for (const s of mp.stages)
    out.push(
      `  stage ${stageLabel(first, s.index)}: ${s.runs === 'once' ? `once, on ${s.runsOn[0]}` : `per platform, on ${s.runsOn.join(', ')}`}`,
    );
  for (const p of mp.plans) out.push('', `# ${p.platform.target}`, formatPlanText(p).trimEnd());
  return `${out.join('\n')}\n`;
}
