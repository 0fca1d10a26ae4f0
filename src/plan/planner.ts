/**
 * Dockerfile AST + build args + target → BuildPlan: stages with their bases and dependencies,
 * which are needed for the target, in what order (and which may run in parallel), every
 * instruction expanded with what is known before building. Pure.
 *
 * Stage references follow BuildKit: names are case-insensitive; `FROM name` refers to an EARLIER
 * stage (a stage's own name is an image: `FROM nginx AS nginx`); `COPY --from` / `--mount from=`
 * take a stage name, a stage index or an image, and a stage can only use stages defined before it
 * (BuildKit refuses a later one when it dispatches). Going beyond BuildKit, `--from` may use an
 * ARG declared in the stage (BuildKit only allows global ARGs through an extra FROM stage).
 */
import {
  type Dockerfile,
  type FromInstruction,
  type Instruction,
  type Warning,
  ExpansionError,
  expandWord,
  type Lookup,
  expandInstruction,
  expandMount,
  MountError,
  parsePortSpecs,
  parseSignal,
} from '../dockerfile/index.js';
import { contextKey, parseReference } from '../image/index.js';
import { KilnError } from '../util/index.js';
import { formatInstruction } from './format.js';
import { StageScope, isPredefinedArg, normalizePlatform, platformArgs } from './scope.js';
import {
  PLAN_SCHEMA_VERSION,
  type BuildPlan,
  type PlannedInstruction,
  type PlannedStage,
  type SourceRef,
  type StageBase,
} from './types.js';

export interface PlanOptions {
  buildArgs?: Record<string, string> | Map<string, string>;
  /** Stage name (case-insensitive); default: the last stage. */
  target?: string;
  /** "os/arch[/variant]"; default linux/amd64. */
  platform?: string;
  /** "os/arch[/variant]" of the machine building; default linux/amd64. */
  buildPlatform?: string;
  /**
   * --build-context names (as `contextKey` gives them): `FROM NAME`, `--from=NAME` and `from=NAME`
   * are that context, an image to the plan, even where a stage has the name (BuildKit).
   */
  namedContexts?: string[];
}

export function createPlan(df: Dockerfile, opts: PlanOptions = {}): BuildPlan {
  return new Planner(df, opts).plan();
}

type Located = { range: { start: { line: number; column: number } } };

class Planner {
  private readonly buildArgs: Map<string, string>;
  private readonly automatic: Record<string, string>;
  private readonly esc: string;
  /** Every ARG name declared anywhere (for the unused --build-arg warning). */
  private readonly declared = new Set<string>();
  private readonly globals = new Map<string, string | undefined>();
  private readonly stages: PlannedStage[] = [];
  private readonly scopes: StageScope[] = [];
  /** Lower-cased stage name → index, for every stage of the file. */
  private readonly byName = new Map<string, number>();
  /** Number of stages in the file. */
  private stageCount = 0;
  private readonly warnings: Warning[] = [];
  /** Per stage: does its chain of bases end in scratch (so every ENV is known)? */
  private readonly fromScratch: boolean[] = [];

  constructor(
    private readonly df: Dockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.buildArgs =
      opts.buildArgs instanceof Map ? new Map(opts.buildArgs) : new Map(Object.entries(opts.buildArgs ?? {}));
    this.automatic = platformArgs(opts.platform ?? 'linux/amd64', opts.buildPlatform ?? 'linux/amd64');
    this.esc = df.directives.escape;
  }

  private err(message: string, at: Located | undefined, hint?: string): KilnError {
    const line = at?.range.start.line ?? 1;
    return new KilnError(
      'PLAN',
      message,
      { file: this.df.file, line, column: at?.range.start.column ?? 1, source: this.df.lines[line - 1] ?? '' },
      { hint },
    );
  }

  /** Run an expansion; its errors become plan errors at the instruction. */
  private guard<T>(at: Located, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ExpansionError || e instanceof MountError) throw this.err(e.message, at);
      throw e;
    }
  }

  plan(): BuildPlan {
    const instrs = this.df.instructions;
    if (instrs.length === 0)
      throw new KilnError(
        'PLAN',
        'the Dockerfile is empty',
        { file: this.df.file, line: 1, column: 1 },
        { hint: 'a Dockerfile starts with FROM IMAGE' },
      );

    // Global ARGs: before the first FROM.
    const globalArgs: { name: string; value?: string }[] = [];
    let i = 0;
    const fromLookup = StageScope.forFrom(this.globals, this.automatic, this.buildArgs);
    for (; i < instrs.length && instrs[i]!.kind !== 'FROM'; i++) {
      const ins = instrs[i]!;
      if (ins.kind !== 'ARG')
        throw this.err(
          `${ins.kind} before the first FROM: only ARG may come before FROM`,
          ins,
          'start the Dockerfile with FROM IMAGE (ARGs may precede it)',
        );
      for (const a of ins.args) {
        this.declared.add(a.name);
        let v: string | undefined;
        if (this.buildArgs.has(a.name)) v = this.buildArgs.get(a.name);
        else if (a.default !== undefined)
          v = this.guard(ins, () => expandWord(a.default!, fromLookup, { escape: this.esc }));
        // Declared without a value: keeps an automatic value (ARG TARGETARCH), else stays unset.
        if (v !== undefined || !this.globals.has(a.name)) this.globals.set(a.name, v);
        globalArgs.push(v === undefined ? { name: a.name } : { name: a.name, value: v });
      }
    }
    if (i === instrs.length)
      throw this.err(
        'no FROM instruction: a Dockerfile needs at least one build stage',
        instrs[instrs.length - 1],
        'add FROM IMAGE',
      );

    // Stage names, all known up front (to tell "a later stage" from "an image").
    const froms = instrs.filter((x): x is FromInstruction => x.kind === 'FROM');
    this.stageCount = froms.length;
    froms.forEach((f, idx) => {
      if (f.stageName === undefined) return;
      const key = f.stageName.toLowerCase();
      const prev = this.byName.get(key);
      if (prev !== undefined)
        throw this.err(
          `duplicate stage name "${f.stageName}"`,
          f,
          `stage ${prev} (line ${this.stageFrom(prev).range.start.line}) already has this name`,
        );
      this.byName.set(key, idx);
    });

    let cur: { stage: PlannedStage; scope: StageScope } | undefined;
    for (; i < instrs.length; i++) {
      const ins = instrs[i]!;
      if (ins.kind === 'FROM') {
        cur = this.startStage(ins, fromLookup);
        continue;
      }
      cur!.stage.instructions.push(this.planInstruction(ins, cur!.stage, cur!.scope));
    }

    // Target and what it needs.
    let target = this.stages.length - 1;
    if (this.opts.target !== undefined) {
      const t = this.byName.get(this.opts.target.toLowerCase());
      if (t === undefined) {
        const names = this.stages.filter((s) => s.name).map((s) => s.name!);
        throw new KilnError(
          'PLAN',
          `target stage "${this.opts.target}" could not be found`,
          { file: this.df.file },
          { hint: names.length ? `stages: ${names.join(', ')}` : 'no stage has a name (FROM IMAGE AS NAME)' },
        );
      }
      target = t;
    }
    this.checkCycles();
    // Iterative walks (here and below): a chain of thousands of stages must not overflow the stack.
    for (const stack = [target]; stack.length;) {
      const s = this.stages[stack.pop()!]!;
      if (s.needed) continue;
      s.needed = true;
      stack.push(...s.dependsOn);
    }
    const order = topoOrder(this.stages);
    const waves = computeWaves(this.stages, order);

    const unusedBuildArgs = [...this.buildArgs.keys()].filter((k) => !this.declared.has(k) && !isPredefinedArg(k));
    const warnings = [...this.df.warnings, ...this.warnings];
    if (unusedBuildArgs.length)
      warnings.push({
        message: `one or more build args were not consumed: ${unusedBuildArgs.join(', ')}`,
        rule: 'UnusedBuildArg',
      });
    return {
      schemaVersion: PLAN_SCHEMA_VERSION,
      file: this.df.file,
      ...(this.df.directives.syntax !== undefined ? { syntax: this.df.directives.syntax } : {}),
      target,
      stages: this.stages,
      order,
      waves,
      globalArgs,
      buildArgs: Object.fromEntries(this.buildArgs),
      unusedBuildArgs,
      warnings,
      platform: { target: this.automatic.TARGETPLATFORM!, build: this.automatic.BUILDPLATFORM! },
    };
  }

  private stageFrom(index: number): FromInstruction {
    return this.df.instructions.filter((x): x is FromInstruction => x.kind === 'FROM')[index]!;
  }

  private startStage(ins: FromInstruction, fromLookup: Lookup): { stage: PlannedStage; scope: StageScope } {
    const index = this.stages.length;
    const image = this.guard(ins, () => expandWord(ins.image, fromLookup, { escape: this.esc }));
    if (image === '')
      throw this.err(`base name (${ins.image}) should not be blank`, ins, 'give the ARG a default or pass --build-arg');
    let platform: string | undefined;
    if (ins.platform !== undefined) {
      platform = this.guard(ins, () => expandWord(ins.platform!, fromLookup, { escape: this.esc }));
      if (platform === '') throw this.err(`empty platform value from expression ${ins.platform}`, ins);
      if (!/^[a-z0-9_.()-]+(\/[a-z0-9_.-]+){0,2}$/i.test(platform))
        throw this.err(`invalid platform "${platform}"`, ins, 'use os/arch[/variant], e.g. linux/arm64');
      platform = normalizePlatform(platform);
    }
    let base: StageBase;
    const ref = this.isNamedContext(image) ? undefined : this.byName.get(image.toLowerCase());
    if (this.isNamedContext(image)) base = { kind: 'image', ref: image };
    else if (ref !== undefined && ref < index) base = { kind: 'stage', index: ref };
    else if (ref !== undefined && ref > index) {
      throw this.err(
        `FROM ${image}: stage "${image}" is defined later in the Dockerfile`,
        ins,
        `a stage can only be based on an earlier stage (for the image, write docker.io/library/${image})`,
      );
    } else if (image.toLowerCase() === 'scratch') base = { kind: 'scratch' };
    else {
      // Its own name (FROM nginx AS nginx) or no stage: an image, as BuildKit.
      try {
        parseReference(image);
      } catch (e) {
        if (e instanceof KilnError) throw this.err(`invalid base image reference "${image}": ${e.message}`, ins);
        throw e;
      }
      base = { kind: 'image', ref: image };
      this.warnIfTypo(image, ins);
    }
    const scope =
      base.kind === 'stage'
        ? this.scopes[base.index]!.child()
        : new StageScope(this.globals, this.buildArgs, this.automatic);
    const stage: PlannedStage = {
      index,
      name: ins.stageName,
      position: ins.range.start,
      base,
      platform,
      runsOn: platform ?? (base.kind === 'stage' ? this.stages[base.index]!.runsOn : this.automatic.TARGETPLATFORM!),
      dependsOn: base.kind === 'stage' ? [base.index] : [],
      images: [],
      needed: false,
      instructions: [],
    };
    this.stages.push(stage);
    this.scopes.push(scope);
    this.fromScratch.push(base.kind === 'scratch' || (base.kind === 'stage' && this.fromScratch[base.index]!));
    // ONBUILD triggers of a base stage run first in this one (BuildKit); they may add sources.
    if (base.kind === 'stage') {
      const triggers = this.stages[base.index]!.instructions.filter((p) => p.instruction.kind === 'ONBUILD');
      if (triggers.length) {
        stage.onbuild = triggers.map((p) =>
          this.planInstruction((p.instruction as Instruction & { kind: 'ONBUILD' }).trigger, stage, scope),
        );
      }
    }
    return { stage, scope };
  }

  /** Resolve a --from / from= value: a stage name, a stage index, or an image. */
  private resolveSource(value: string, stage: PlannedStage, ins: Instruction, what: string): SourceRef {
    if (value === '') throw this.err(`${what} expands to an empty value`, ins);
    if (this.isNamedContext(value)) return { kind: 'image', ref: value };
    const named = this.byName.get(value.toLowerCase());
    const index = named ?? (/^\d+$/.test(value) ? Number(value) : undefined);
    if (index === undefined) {
      try {
        parseReference(value);
      } catch (e) {
        if (e instanceof KilnError)
          throw this.err(`${what}: "${value}" is neither a stage nor a valid image reference (${e.message})`, ins);
        throw e;
      }
      this.warnIfTypo(value, ins);
      return { kind: 'image', ref: value };
    }
    const label = named !== undefined ? `stage "${value}"` : `stage ${index}`;
    const count = this.stageCount;
    if (index >= count)
      throw this.err(
        `${what}: invalid stage index ${index}: the Dockerfile has ${count} stage(s)`,
        ins,
        'a numeric --from is the index of an earlier stage (0 is the first)',
      );
    if (index === stage.index) throw this.err(`circular dependency: ${what} refers to its own ${label}`, ins);
    if (index > stage.index)
      throw this.err(
        `${what}: ${label} is defined later in the Dockerfile; a stage can only use stages defined before it`,
        ins,
        'move that stage above this one',
      );
    return { kind: 'stage', index };
  }

  private isNamedContext(name: string): boolean {
    if (!this.opts.namedContexts?.length) return false;
    const key = contextKey(name);
    return key !== undefined && this.opts.namedContexts.includes(key);
  }

  /** A bare image name close to a stage name is probably a misspelt stage (an image is tried). */
  private warnIfTypo(name: string, ins: Instruction): void {
    if (/[/:@.]/.test(name)) return;
    const n = name.toLowerCase();
    for (const stage of this.byName.keys()) {
      if (stage !== n && editDistance(stage, n) <= 2 && Math.min(stage.length, n.length) > 2) {
        this.warnings.push({
          message: `"${name}" is no stage of this Dockerfile, so it is used as an image: did you mean stage "${stage}"?`,
          line: ins.range.start.line,
          column: ins.range.start.column,
          rule: 'StageNameTypo',
        });
        return;
      }
    }
  }

  private addSource(stage: PlannedStage, src: SourceRef): void {
    if (src.kind === 'stage') {
      if (!stage.dependsOn.includes(src.index)) stage.dependsOn.push(src.index);
      stage.dependsOn.sort((a, b) => a - b);
    } else if (!stage.images.includes(src.ref)) stage.images.push(src.ref);
  }

  private planInstruction(ins: Instruction, stage: PlannedStage, scope: StageScope): PlannedInstruction {
    // A name the Dockerfile does not define may come from the base image's ENV, known only at
    // build time: the plan shows it as written ($NAME, ${NAME:-x}) rather than guessing it empty.
    // (An `ARG X` without a value does not hide the base image's X either, as in BuildKit.)
    const keepUnset = !this.fromScratch[stage.index];
    const opts = { escape: this.esc, keepUnset };
    // --from / from=: the stage's variables first, then the global ARGs (kiln goes beyond BuildKit).
    const fromLookup: Lookup = (n) =>
      scope.lookup(n) ?? StageScope.forFrom(this.globals, this.automatic, this.buildArgs)(n);
    const fromOpts = { escape: this.esc };
    const planned: PlannedInstruction = { instruction: ins, expanded: ins.original };
    switch (ins.kind) {
      case 'ARG': {
        const parts: string[] = [];
        for (const a of ins.args) {
          this.declared.add(a.name);
          const v = scope.declareArg(
            a.name,
            a.default === undefined
              ? undefined
              : () => this.guard(ins, () => expandWord(a.default!, scope.lookup, opts)),
          );
          parts.push(v === undefined ? a.name : `${a.name}=${v}`);
        }
        planned.expanded = `ARG ${parts.join(' ')}`;
        return planned;
      }
      case 'ENV': {
        // All values of one ENV line are expanded before any is set (as BuildKit).
        const e = this.guard(ins, () => expandInstruction(ins, scope.lookup, opts));
        for (const p of e.pairs) scope.setEnv(p.key, p.value);
        planned.expanded = formatInstruction(e);
        return planned;
      }
      case 'COPY':
      case 'ADD': {
        if (ins.from !== undefined) {
          const from = this.guard(ins, () => expandWord(ins.from!, fromLookup, fromOpts));
          const src = this.resolveSource(from, stage, ins, `--from=${ins.from}`);
          planned.sources = [src];
          this.addSource(stage, src);
        }
        const e = this.guard(ins, () => expandInstruction(ins, scope.lookup, { ...opts, fromLookup }));
        if (e.kind === 'ADD' && e.checksum !== undefined) {
          // BuildKit: "checksum can't be specified for non-HTTP(S) sources" (git sources take a commit).
          const local = e.sources.find(
            (src) =>
              !/^\d*<</.test(src) &&
              !src.includes('$') &&
              !/^(https?:\/\/|git@|git:\/\/|ssh:\/\/)/.test(src) &&
              !/\.git(#|$)/.test(src),
          );
          if (local !== undefined)
            throw this.err(
              `ADD --checksum can't be used with the local source "${local}": only HTTP(S) and git sources have a checksum`,
              ins,
            );
        }
        planned.expanded = formatInstruction(e);
        return planned;
      }
      case 'RUN': {
        const srcs: SourceRef[] = [];
        for (const m of ins.mountFlags) {
          const spec = this.guard(ins, () => expandMount(m, scope.lookup, { escape: this.esc, keepUnset, fromLookup }));
          if ((spec.type === 'bind' || spec.type === 'cache') && spec.from !== undefined) {
            const src = this.resolveSource(spec.from, stage, ins, `--mount from=${spec.from}`);
            srcs.push(src);
            this.addSource(stage, src);
          }
        }
        if (srcs.length) planned.sources = srcs;
        planned.expanded = formatInstruction(
          this.guard(ins, () => expandInstruction(ins, scope.lookup, { ...opts, fromLookup })),
        );
        return planned;
      }
      case 'EXPOSE': {
        const e = this.guard(ins, () => expandInstruction(ins, scope.lookup, opts));
        if (!e.ports.some((p) => p.includes('$'))) {
          try {
            parsePortSpecs(e.ports);
          } catch (err) {
            throw this.err(`EXPOSE: ${(err as Error).message}`, ins, 'EXPOSE PORT[/tcp|udp|sctp] or a range 8000-8010');
          }
        }
        planned.expanded = formatInstruction(e);
        return planned;
      }
      case 'STOPSIGNAL': {
        const e = this.guard(ins, () => expandInstruction(ins, scope.lookup, opts));
        if (!e.signal.includes('$') && parseSignal(e.signal) === undefined)
          throw this.err(`invalid signal: ${e.signal}`, ins, 'a signal name (SIGTERM, TERM) or number');
        planned.expanded = formatInstruction(e);
        return planned;
      }
      case 'VOLUME': {
        const e = this.guard(ins, () => expandInstruction(ins, scope.lookup, opts));
        if (e.paths.some((p) => p === '')) throw this.err('VOLUME specified can not be an empty string', ins);
        planned.expanded = formatInstruction(e);
        return planned;
      }
      default:
        planned.expanded = formatInstruction(this.guard(ins, () => expandInstruction(ins, scope.lookup, opts)));
        return planned;
    }
  }

  private checkCycles(): void {
    const stages = this.stages;
    const state = new Map<number, 'visiting' | 'done'>();
    // Depth-first with an explicit stack: `path` is the chain being visited, `next` each one's next dependency.
    for (const start of stages) {
      if (state.get(start.index) === 'done') continue;
      const path: number[] = [start.index];
      const next: number[] = [0];
      state.set(start.index, 'visiting');
      while (path.length) {
        const n = path[path.length - 1]!;
        const deps = stages[n]!.dependsOn;
        const i = next[next.length - 1]!;
        if (i >= deps.length) {
          state.set(n, 'done');
          path.pop();
          next.pop();
          continue;
        }
        next[next.length - 1] = i + 1;
        const d = deps[i]!;
        if (state.get(d) === 'done') continue;
        if (state.get(d) === 'visiting') {
          const cycle = [...path.slice(path.indexOf(d)), d].map((k) => stages[k]!.name ?? String(k));
          const s = stages[d]!;
          throw new KilnError('PLAN', `circular dependency between stages: ${cycle.join(' -> ')}`, {
            file: this.df.file,
            line: s.position.line,
            column: s.position.column,
            source: this.df.lines[s.position.line - 1] ?? '',
          });
        }
        state.set(d, 'visiting');
        path.push(d);
        next.push(0);
      }
    }
  }
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64 || b.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function topoOrder(stages: PlannedStage[]): number[] {
  const out: number[] = [];
  const done = new Set<number>();
  // Post-order without recursion: a stage goes out after all its dependencies, in their order.
  for (const s of stages) {
    if (!s.needed || done.has(s.index)) continue;
    const path = [s.index];
    const next = [0];
    done.add(s.index);
    while (path.length) {
      const n = path[path.length - 1]!;
      const deps = stages[n]!.dependsOn;
      const i = next[next.length - 1]!;
      if (i >= deps.length) {
        out.push(n);
        path.pop();
        next.pop();
        continue;
      }
      next[next.length - 1] = i + 1;
      const d = deps[i]!;
      if (done.has(d)) continue;
      done.add(d);
      path.push(d);
      next.push(0);
    }
  }
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

/** The target stage and the stages it is based on (FROM <stage>), target first: the image's layers come from these. */
export function shippedStages(plan: BuildPlan): number[] {
  const out: number[] = [];
  for (
    let s: PlannedStage | undefined = plan.stages[plan.target];
    s;
    s = s.base.kind === 'stage' ? plan.stages[s.base.index] : undefined
  )
    out.push(s.index);
  return out;
}
