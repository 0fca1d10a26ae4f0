/**
 * Dockerfile AST + build args + target → BuildPlan: stages with their bases and dependencies,
 * which are needed for the target, in what order (and which may run in parallel), every
 * instruction expanded with what is known before building. Pure.
 */
import type { Dockerfile, FromInstruction, Instruction } from '../dockerfile/ast.js';
import { ExpansionError, expandWord } from '../dockerfile/expand.js';
import { parseMount } from '../dockerfile/mounts.js';
import { KilnError } from '../util/errors.js';
import { PLATFORM_ARGS, PROXY_ARGS, StageScope, platformArgs } from './scope.js';
import { PLAN_SCHEMA_VERSION, type BuildPlan, type PlannedInstruction, type PlannedStage, type SourceRef, type StageBase } from './types.js';

export interface PlanOptions {
  buildArgs?: Record<string, string> | Map<string, string>;
  /** Stage name (case-insensitive); default: the last stage. */
  target?: string;
  /** "os/arch[/variant]"; default linux/amd64. */
  platform?: string;
  buildPlatform?: string;
}

export function createPlan(df: Dockerfile, opts: PlanOptions = {}): BuildPlan {
  return new Planner(df, opts).plan();
}

class Planner {
  private readonly buildArgs: Map<string, string>;
  private readonly automatic: Record<string, string>;
  private readonly esc: string;
  private readonly declared = new Set<string>();

  constructor(
    private readonly df: Dockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.buildArgs = opts.buildArgs instanceof Map ? new Map(opts.buildArgs) : new Map(Object.entries(opts.buildArgs ?? {}));
    this.automatic = platformArgs(opts.platform ?? 'linux/amd64', opts.buildPlatform ?? 'linux/amd64');
    this.esc = df.directives.escape;
  }

  private err(message: string, instr: { range: { start: { line: number; column: number } } } | undefined, hint?: string): KilnError {
    const line = instr?.range.start.line ?? 1;
    return new KilnError(
      'PLAN',
      message,
      { file: this.df.file, line, column: instr?.range.start.column ?? 1, source: this.df.lines[line - 1] ?? '' },
      { hint },
    );
  }

  private expand(word: string, lookup: (n: string) => string | undefined, instr: Instruction): string {
    try {
      return expandWord(word, lookup, { escape: this.esc });
    } catch (e) {
      if (e instanceof ExpansionError) throw this.err(e.message, instr);
      throw e;
    }
  }

  plan(): BuildPlan {
    const instrs = this.df.instructions;
    if (instrs.length === 0) throw new KilnError('PLAN', 'the Dockerfile is empty', { file: this.df.file, line: 1, column: 1 }, { hint: 'a Dockerfile starts with FROM IMAGE' });

    // Global ARGs: before the first FROM.
    const globals = new Map<string, string | undefined>();
    const globalArgs: { name: string; value?: string }[] = [];
    let i = 0;
    for (; i < instrs.length && instrs[i]!.kind !== 'FROM'; i++) {
      const ins = instrs[i]!;
      if (ins.kind !== 'ARG') {
        throw this.err(`${ins.kind} before the first FROM: only ARG may come before FROM`, ins, 'start the Dockerfile with FROM IMAGE (ARGs may precede it)');
      }
      for (const a of ins.args) {
        this.declared.add(a.name);
        const lookup = StageScope.forFrom(globals, this.automatic);
        const v = this.buildArgs.has(a.name) ? this.buildArgs.get(a.name) : a.default !== undefined ? this.expand(a.default, lookup, ins) : undefined;
        globals.set(a.name, v);
        globalArgs.push(v === undefined ? { name: a.name } : { name: a.name, value: v });
      }
    }
    if (i === instrs.length) throw this.err('no FROM instruction: a Dockerfile needs at least one build stage', instrs[instrs.length - 1], 'add FROM IMAGE');

    // Stages.
    const stages: PlannedStage[] = [];
    const scopes: StageScope[] = [];
    const byName = new Map<string, number>();
    const fromLookup = StageScope.forFrom(globals, this.automatic);
    // Names are known before the stage bodies are resolved, so that --from can point forward (BuildKit allows it).
    const fromInstrs: FromInstruction[] = instrs.filter((x): x is FromInstruction => x.kind === 'FROM');
    fromInstrs.forEach((f, idx) => {
      if (f.stageName === undefined) return;
      const key = f.stageName.toLowerCase();
      if (byName.has(key)) throw this.err(`duplicate stage name "${f.stageName}"`, f, `stage ${byName.get(key)} already has this name`);
      byName.set(key, idx);
    });

    let cur: { stage: PlannedStage; scope: StageScope } | undefined;
    for (; i < instrs.length; i++) {
      const ins = instrs[i]!;
      if (ins.kind === 'FROM') {
        const index = stages.length;
        const image = this.expand(ins.image, fromLookup, ins);
        if (image === '') throw this.err(`FROM "${ins.image}" expands to an empty image name`, ins, 'give the ARG a default or pass --build-arg');
        const platform = ins.platform !== undefined ? this.expand(ins.platform, fromLookup, ins) : undefined;
        let base: StageBase;
        let scope: StageScope;
        const ref = byName.get(image.toLowerCase());
        if (image.toLowerCase() === 'scratch') {
          base = { kind: 'scratch' };
        } else if (ref !== undefined) {
          if (ref === index) throw this.err(`circular dependency: stage "${ins.stageName}" is based on itself`, ins);
          if (ref > index) throw this.err(`FROM ${image}: stage "${image}" is defined later in the Dockerfile`, ins, 'a stage can only be based on an earlier stage');
          base = { kind: 'stage', index: ref };
        } else {
          base = { kind: 'image', ref: image };
        }
        if (base.kind === 'stage') scope = scopes[base.index]!.child();
        else scope = new StageScope(globals, this.buildArgs, this.automatic);
        const stage: PlannedStage = {
          index,
          name: ins.stageName,
          position: ins.range.start,
          base,
          platform,
          dependsOn: base.kind === 'stage' ? [base.index] : [],
          images: [],
          needed: false,
          instructions: [],
        };
        stages.push(stage);
        scopes.push(scope);
        this.stagesSoFar = stages;
        cur = { stage, scope };
        continue;
      }
      const { stage, scope } = cur!;
      stage.instructions.push(this.planInstruction(ins, stage, scope, byName));
    }

    // Target and what it needs.
    let target = stages.length - 1;
    if (this.opts.target !== undefined) {
      const t = byName.get(this.opts.target.toLowerCase());
      if (t === undefined) {
        const names = stages.filter((s) => s.name).map((s) => s.name!);
        throw new KilnError('PLAN', `target stage "${this.opts.target}" could not be found`, { file: this.df.file }, { hint: names.length ? `stages: ${names.join(', ')}` : 'no stage has a name (FROM IMAGE AS NAME)' });
      }
      target = t;
    }
    this.checkCycles(stages);
    const mark = (n: number) => {
      const s = stages[n]!;
      if (s.needed) return;
      s.needed = true;
      s.dependsOn.forEach(mark);
    };
    mark(target);
    const order = topoOrder(stages);
    const waves = computeWaves(stages, order);

    const unusedBuildArgs = [...this.buildArgs.keys()].filter((k) => !this.declared.has(k) && !PROXY_ARGS.includes(k) && !PLATFORM_ARGS.includes(k));
    const warnings = [...this.df.warnings];
    if (unusedBuildArgs.length) warnings.push({ message: `one or more build args were not consumed: ${unusedBuildArgs.join(', ')}` });
    return {
      schemaVersion: PLAN_SCHEMA_VERSION,
      file: this.df.file,
      target,
      stages,
      order,
      waves,
      globalArgs,
      buildArgs: Object.fromEntries(this.buildArgs),
      unusedBuildArgs,
      warnings,
      platform: { target: this.automatic.TARGETPLATFORM!, build: this.automatic.BUILDPLATFORM! },
    };
  }

  /** Resolve a --from / from= value: a stage name, a stage index, or an image. */
  private resolveSource(value: string, stage: PlannedStage, byName: Map<string, number>, ins: Instruction): SourceRef {
    const named = byName.get(value.toLowerCase());
    if (named !== undefined) {
      if (named === stage.index) throw this.err(`circular dependency: "--from=${value}" refers to its own stage`, ins);
      return { kind: 'stage', index: named };
    }
    if (/^\d+$/.test(value)) {
      const n = Number(value);
      if (n >= stage.index) throw this.err(`invalid --from=${value}: it refers to ${n === stage.index ? 'the current' : 'a later'} build stage`, ins, 'a numeric --from is the index of an earlier stage (0 is the first)');
      return { kind: 'stage', index: n };
    }
    if (value === '') throw this.err('--from expands to an empty value', ins);
    return { kind: 'image', ref: value };
  }

  private addSource(stage: PlannedStage, src: SourceRef): void {
    if (src.kind === 'stage') {
      if (!stage.dependsOn.includes(src.index)) stage.dependsOn.push(src.index);
      stage.dependsOn.sort((a, b) => a - b);
    } else if (!stage.images.includes(src.ref)) stage.images.push(src.ref);
  }

  private planInstruction(ins: Instruction, stage: PlannedStage, scope: StageScope, byName: Map<string, number>): PlannedInstruction {
    // Stage scope first; the global ARGs as a fallback, for --from (kiln goes beyond BuildKit here).
    // A name the Dockerfile does not define may come from the base image's ENV, known only at
    // build time: the plan shows it as written ($NAME) rather than guessing it empty.
    const baseEnvUnknown = !this.chainIsScratch(stage);
    const x = (w: string) => this.expand(w, (n) => scope.lookup(n) ?? (baseEnvUnknown && !scope.has(n) ? `$${n}` : undefined), ins);
    const planned: PlannedInstruction = { instruction: ins, expanded: ins.original };
    switch (ins.kind) {
      case 'ARG': {
        for (const a of ins.args) {
          this.declared.add(a.name);
          scope.declareArg(a.name, a.default !== undefined ? x(a.default) : undefined);
        }
        planned.expanded = `ARG ${ins.args.map((a) => (a.default !== undefined ? `${a.name}=${x(a.default)}` : a.name)).join(' ')}`;
        break;
      }
      case 'ENV': {
        const parts: string[] = [];
        // All values of one ENV line are expanded before any is set (BuildKit does the same).
        const values = ins.pairs.map((p) => ({ key: x(p.key), value: x(p.value) }));
        for (const p of values) {
          scope.setEnv(p.key, p.value);
          parts.push(`${p.key}=${p.value}`);
        }
        planned.expanded = `ENV ${parts.join(' ')}`;
        break;
      }
      case 'LABEL':
        planned.expanded = `LABEL ${ins.pairs.map((p) => `${x(p.key)}=${JSON.stringify(x(p.value))}`).join(' ')}`;
        break;
      case 'COPY':
      case 'ADD': {
        const flags: string[] = [];
        if (ins.from !== undefined) {
          const from = this.expandFrom(ins.from, scope, ins);
          const src = this.resolveSource(from, stage, byName, ins);
          planned.sources = [src];
          this.addSource(stage, src);
          flags.push(`--from=${from}`);
        }
        if (ins.chown !== undefined) flags.push(`--chown=${x(ins.chown)}`);
        if (ins.chmod !== undefined) flags.push(`--chmod=${x(ins.chmod)}`);
        if (ins.link) flags.push('--link');
        if (ins.parents) flags.push('--parents');
        for (const e of ins.exclude) flags.push(`--exclude=${x(e)}`);
        if (ins.checksum !== undefined) flags.push(`--checksum=${x(ins.checksum)}`);
        const srcs = ins.sources.map((s) => (s.startsWith('<<') ? s : x(s)));
        planned.expanded = [ins.kind, ...flags, ...srcs, x(ins.dest)].join(' ');
        break;
      }
      case 'RUN': {
        const srcs: SourceRef[] = [];
        for (const m of ins.mountFlags) {
          let spec;
          try {
            spec = parseMount(x(m));
          } catch (e) {
            if (e instanceof KilnError) throw e;
            throw this.err((e as Error).message, ins);
          }
          if ((spec.type === 'bind' || spec.type === 'cache') && spec.from !== undefined) {
            const src = this.resolveSource(this.expandFrom(spec.from, scope, ins), stage, byName, ins);
            srcs.push(src);
            this.addSource(stage, src);
          }
        }
        if (srcs.length) planned.sources = srcs;
        break;
      }
      case 'WORKDIR':
        planned.expanded = `WORKDIR ${x(ins.path)}`;
        break;
      case 'USER':
        planned.expanded = `USER ${x(ins.user)}`;
        break;
      case 'EXPOSE':
        planned.expanded = `EXPOSE ${ins.ports.map(x).join(' ')}`;
        break;
      case 'VOLUME':
        planned.expanded = `VOLUME ${JSON.stringify(ins.paths.map(x))}`;
        break;
      case 'STOPSIGNAL':
        planned.expanded = `STOPSIGNAL ${x(ins.signal)}`;
        break;
      default:
        break;
    }
    return planned;
  }

  private stagesSoFar: PlannedStage[] = [];
  /** Does the stage's chain of bases end in scratch (so every ENV is known)? */
  private chainIsScratch(stage: PlannedStage): boolean {
    let s: PlannedStage | undefined = stage;
    while (s && s.base.kind === 'stage') s = this.stagesSoFar[s.base.index];
    return s?.base.kind === 'scratch';
  }

  private expandFrom(word: string, scope: StageScope, ins: Instruction): string {
    const globals = new Map<string, string | undefined>();
    // Stage-scoped first (ARG redeclared or ENV), then global ARG values: the dependency is
    // resolved here, at plan time.
    return this.expand(
      word,
      (n) => {
        const v = scope.lookup(n);
        if (v !== undefined) return v;
        return globals.get(n) ?? this.globalValue(n);
      },
      ins,
    );
  }

  private globalCache: Map<string, string | undefined> | undefined;
  private globalValue(name: string): string | undefined {
    if (!this.globalCache) {
      this.globalCache = new Map();
      for (const ins of this.df.instructions) {
        if (ins.kind === 'FROM') break;
        if (ins.kind === 'ARG')
          for (const a of ins.args) {
            const v = this.buildArgs.get(a.name) ?? (a.default !== undefined ? expandWord(a.default, (n) => this.globalCache!.get(n) ?? this.automatic[n], { escape: this.esc }) : undefined);
            this.globalCache.set(a.name, v);
          }
      }
    }
    return this.globalCache.get(name) ?? this.automatic[name];
  }

  private checkCycles(stages: PlannedStage[]): void {
    const state = new Map<number, 'visiting' | 'done'>();
    const visit = (n: number, path: number[]) => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'visiting') {
        const cycle = [...path.slice(path.indexOf(n)), n].map((k) => stages[k]!.name ?? String(k));
        const s = stages[n]!;
        throw new KilnError('PLAN', `circular dependency between stages: ${cycle.join(' -> ')}`, {
          file: this.df.file,
          line: s.position.line,
          column: s.position.column,
          source: this.df.lines[s.position.line - 1] ?? '',
        });
      }
      state.set(n, 'visiting');
      for (const d of stages[n]!.dependsOn) visit(d, [...path, n]);
      state.set(n, 'done');
    };
    for (const s of stages) visit(s.index, []);
  }
}

function topoOrder(stages: PlannedStage[]): number[] {
  const out: number[] = [];
  const done = new Set<number>();
  const visit = (n: number) => {
    if (done.has(n)) return;
    done.add(n);
    for (const d of stages[n]!.dependsOn) visit(d);
    out.push(n);
  };
  for (const s of stages) if (s.needed) visit(s.index);
  return out;
}

function computeWaves(stages: PlannedStage[], order: number[]): number[][] {
  const level = new Map<number, number>();
  for (const n of order) {
    const deps = stages[n]!.dependsOn;
    level.set(n, deps.length ? Math.max(...deps.map((d) => level.get(d)!)) + 1 : 0);
  }
  const waves: number[][] = [];
  for (const n of order) (waves[level.get(n)!] ??= []).push(n);
  return waves.map((w) => w.sort((a, b) => a - b));
}
