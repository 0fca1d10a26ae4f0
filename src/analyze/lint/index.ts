/**
 * `kiln lint`: checks over the Dockerfile AST and the resolved stage graph. BuildKit's build checks
 * where they exist (same names, messages and the `# check=skip=…;error=true` directive), plus
 * kiln's multi-stage rules: what reaches the final image (root user, build tools, caches, apt
 * lists), unpinned bases, cache-busting COPY order, unused stages.
 */
import {
  checkDirective,
  parseDockerfile,
  expandWord,
  referencedNames,
  type CommandForm,
  type Dockerfile,
  type FromInstruction,
  type Instruction,
  type RunInstruction,
} from '../../dockerfile/index.js';
import {
  PLATFORM_ARGS,
  type BuildPlan,
  type PlannedStage,
  commentsAbove,
  createPlan,
  describedBy,
} from '../../plan/index.js';
import { parseReference } from '../../image/index.js';
import { isKilnError } from '../../util/index.js';
import { RULES, type LintLevel } from './rules.js';
import { checkVariables, type BaseImageFacts } from './variables.js';

export { RULES, type LintLevel, type RuleInfo } from './rules.js';
export type { BaseImageFacts } from './variables.js';

export interface LintFinding {
  rule: string;
  level: LintLevel;
  message: string;
  file: string;
  line: number;
  column?: number;
  endLine?: number;
  /** The source line, for text output. */
  source?: string;
  url?: string;
}

export interface LintOptions {
  file?: string;
  /** The stage being built (default: the last). */
  target?: string;
  buildArgs?: Map<string, string>;
  /**
   * The build context's `.dockerignore` (or FILE.dockerignore): whether a path relative to the
   * context (or one of its parents) is excluded. Given, COPY/ADD sources are checked against it
   * (BuildKit's CopyIgnoredFile); the caller opens the context (analyze/ does not read it).
   */
  ignored?: (rel: string) => boolean;
  /**
   * What the store knows of the base images, by the reference as planned (`baseImageRefs`): their
   * ENV names for UndefinedVar and their platform for InvalidBaseImagePlatform. A stage whose base
   * image is missing here is not checked for UndefinedVar (its names could come from that image).
   */
  baseImages?: Map<string, BaseImageFacts>;
  /** The platform being built, for InvalidBaseImagePlatform (default linux/amd64). */
  platform?: string;
}

export interface LintResult {
  file: string;
  findings: LintFinding[];
  errors: number;
  warnings: number;
}

// BuildKit's secret-key heuristic (frontend/dockerfile/dockerfile2llb): a token at a word edge.
const SECRET_DENY = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;

const BUILD_TOOL =
  /^(?:gcc|g\+\+|c\+\+|cpp|clang|clang-\d+|llvm|llvm-\d+|gcc-\d+|g\+\+-\d+|make|cmake|ninja-build|build-essential|build-base|autoconf|automake|libtool|pkg-config|pkgconf|binutils|gfortran|golang|golang-go|rustc|cargo|maven|gradle|openjdk-\d+-jdk|openjdk-\d+-jdk-headless|default-jdk)$/;
const DEV_PACKAGE = /-(?:dev|devel)$/;

const DEP_INSTALL =
  /\b(?:pip3?|python3?\s+-m\s+pip)\s+install\b|\bpoetry\s+install\b|\bpipenv\s+install\b|\buv\s+(?:pip\s+install|sync)\b|\bnpm\s+(?:install|ci|i)\b|\byarn(?:\s+install)?\b|\bpnpm\s+(?:install|i)\b|\bgo\s+mod\s+download\b|\bgo\s+build\b|\bbundle\s+install\b|\bcomposer\s+install\b|\bmvn\b|\bgradle\b|\bcargo\s+(?:build|fetch)\b/;

function commandText(c: CommandForm): string {
  if (c.form === 'exec') return c.args.join(' ');
  return [c.command, ...c.heredocs.map((h) => h.content)].join('\n');
}

function hasCacheMount(run: RunInstruction, targets: RegExp): boolean {
  return run.mounts.some((m) => m.type === 'cache' && targets.test(m.target));
}

/** Package names after "apt-get install", "apt install", "apk add", "yum/dnf install" in a shell command. */
export function installedPackages(cmd: string): string[] {
  const out: string[] = [];
  const re =
    /\b(?:apt-get|apt|aptitude|yum|dnf|microdnf)\s+(?:[^;&|\n]*?\s)?install\b([^;&|\n]*)|\bapk\s+(?:[^;&|\n]*?\s)?add\b([^;&|\n]*)/g;
  for (const m of cmd.matchAll(re)) {
    const args = (m[1] ?? m[2] ?? '').split(/\s+/);
    for (const a of args) {
      if (!a || a.startsWith('-') || a === '\\') continue;
      out.push(a.replace(/^['"]|['"]$/g, '').replace(/[=:].*$/, ''));
    }
  }
  return out;
}

function keywordOf(original: string): string {
  return original.trimStart().split(/\s+/, 1)[0] ?? '';
}

interface Ctx {
  df: Dockerfile;
  findings: LintFinding[];
  skip: Set<string>;
  allErrors: boolean;
  experimental: Set<string>;
}

function report(
  ctx: Ctx,
  rule: string,
  message: string,
  at: { line: number; column?: number; endLine?: number },
  level?: LintLevel,
): void {
  // An experimental check asked for by name runs even under skip=all (BuildKit).
  if (ctx.skip.has(rule) || (ctx.skip.has('all') && !ctx.experimental.has(rule))) return;
  const info = RULES[rule]!;
  if (info.experimental && !ctx.experimental.has(rule) && !ctx.experimental.has('all')) return;
  const f: LintFinding = {
    rule,
    level: ctx.allErrors ? 'error' : (level ?? info.level),
    message,
    file: ctx.df.file,
    line: at.line,
  };
  if (at.column !== undefined) f.column = at.column;
  if (at.endLine !== undefined && at.endLine !== at.line) f.endLine = at.endLine;
  const src = ctx.df.lines[at.line - 1];
  if (src !== undefined) f.source = src;
  if (info.url) f.url = info.url;
  ctx.findings.push(f);
}

const pos = (i: Instruction) => ({ line: i.range.start.line, column: i.range.start.column, endLine: i.range.endLine });

export { checkDirective };

/** Instructions grouped by stage (index), with the global ARGs before the first FROM. */
function stagesOf(df: Dockerfile): {
  globals: Instruction[];
  stages: { from: FromInstruction; body: Instruction[] }[];
} {
  const globals: Instruction[] = [];
  const stages: { from: FromInstruction; body: Instruction[] }[] = [];
  for (const ins of df.instructions) {
    if (ins.kind === 'FROM') stages.push({ from: ins, body: [] });
    else if (stages.length) stages[stages.length - 1]!.body.push(ins);
    else globals.push(ins);
  }
  return { globals, stages };
}

export function lintDockerfile(text: string, opts: LintOptions = {}): LintResult {
  const file = opts.file ?? 'Dockerfile';
  let df: Dockerfile;
  try {
    df = parseDockerfile(text, { file });
  } catch (e) {
    if (!isKilnError(e)) throw e;
    const f: LintFinding = {
      rule: 'InvalidDockerfile',
      level: 'error',
      message: e.message,
      file,
      line: e.place.line ?? 1,
    };
    if (e.place.column !== undefined) f.column = e.place.column;
    if (e.place.source !== undefined) f.source = e.place.source;
    return { file, findings: [f], errors: 1, warnings: 0 };
  }
  const dir = checkDirective(df);
  const ctx: Ctx = { df, findings: [], skip: dir.skip, allErrors: dir.error, experimental: dir.experimental };
  const { globals, stages } = stagesOf(df);

  // Parser warnings that are BuildKit checks (NoEmptyContinuation, MaintainerDeprecated, LegacyKeyValueFormat).
  for (const w of df.warnings)
    if (w.rule && RULES[w.rule]) report(ctx, w.rule, w.message, { line: w.line ?? 1, column: w.column });

  checkCasing(ctx);
  const globalArgs = new Map<string, string | undefined>();
  for (const g of globals) if (g.kind === 'ARG') for (const a of g.args) globalArgs.set(a.name, a.default);
  checkStages(ctx, stages, globalArgs);
  for (const ins of df.instructions) checkSecrets(ctx, ins);
  for (const ins of df.instructions) if (ins.kind === 'EXPOSE') checkExpose(ctx, ins);
  checkDescriptions(ctx);
  if (opts.ignored) checkIgnoredSources(ctx, opts.ignored);

  let plan: BuildPlan | undefined;
  try {
    plan = createPlan(df, { target: opts.target, buildArgs: opts.buildArgs });
  } catch (e) {
    if (!isKilnError(e)) throw e;
    // Duplicate names were reported above with BuildKit's rule.
    if (!/duplicate stage name/.test(e.message))
      report(ctx, 'InvalidDockerfile', e.message, { line: e.place.line ?? 1, column: e.place.column }, 'error');
  }
  if (plan) {
    checkPlan(ctx, plan, stages);
    for (const f of checkVariables(stages, plan, df.directives.escape, opts.baseImages, opts.platform ?? 'linux/amd64'))
      report(ctx, f.rule, f.message, pos(f.ins));
  }

  const findings = ctx.findings.sort(
    (a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0) || (a.rule < b.rule ? -1 : 1),
  );
  return {
    file,
    findings,
    errors: findings.filter((f) => f.level === 'error').length,
    warnings: findings.filter((f) => f.level === 'warning').length,
  };
}

/** The external base images a Dockerfile's stages start from (as planned), for `LintOptions.baseImages`. */
export function baseImageRefs(text: string, opts: Pick<LintOptions, 'file' | 'target' | 'buildArgs'> = {}): string[] {
  try {
    const plan = createPlan(parseDockerfile(text, { file: opts.file ?? 'Dockerfile' }), {
      target: opts.target,
      buildArgs: opts.buildArgs,
    });
    return [...new Set(plan.stages.flatMap((s) => (s.base.kind === 'image' ? [s.base.ref] : [])))];
  } catch (e) {
    if (!isKilnError(e)) throw e;
    return [];
  }
}

function checkCasing(ctx: Ctx): void {
  const kws = ctx.df.instructions.map((i) => keywordOf(i.original));
  const upper = kws.filter((k) => k === k.toUpperCase()).length;
  const lower = kws.filter((k) => k === k.toLowerCase()).length;
  const majorityUpper = upper >= lower;
  ctx.df.instructions.forEach((ins, i) => {
    const k = kws[i]!;
    const ok = majorityUpper ? k === k.toUpperCase() : k === k.toLowerCase();
    if (!ok)
      report(
        ctx,
        'ConsistentInstructionCasing',
        `Command '${k}' should match the case of the command majority (${majorityUpper ? 'uppercase' : 'lowercase'})`,
        pos(ins),
      );
  });
}

function checkStages(
  ctx: Ctx,
  stages: { from: FromInstruction; body: Instruction[] }[],
  globalArgs: Map<string, string | undefined>,
): void {
  const seen = new Map<string, number>();
  for (const { from, body } of stages) {
    // FROM ... AS name
    if (from.stageName) {
      const name = from.stageName;
      if (name !== name.toLowerCase())
        report(ctx, 'StageNameCasing', `Stage name '${name}' should be lowercase`, pos(from));
      const words = from.original.trim().split(/\s+/);
      const asWord = words.find((w, i) => i > 0 && w.toLowerCase() === 'as');
      const fromWord = words[0]!;
      if (asWord && (fromWord === fromWord.toUpperCase()) !== (asWord === asWord.toUpperCase()))
        report(ctx, 'FromAsCasing', `'${asWord}' and '${fromWord}' keywords' casing do not match`, pos(from));
      const key = name.toLowerCase();
      if (seen.has(key))
        report(ctx, 'DuplicateStageName', `Duplicate stage name "${name}", stage names should be unique`, pos(from));
      else seen.set(key, from.range.start.line);
      if (key === 'scratch' || key === 'context')
        report(
          ctx,
          'ReservedStageName',
          `Stage name should not use the same name as reserved stage "${name}"`,
          pos(from),
        );
    }
    // FROM --platform
    if (from.platform !== undefined) {
      if (/^\$\{?TARGETPLATFORM\}?$/.test(from.platform.trim()))
        report(
          ctx,
          'RedundantTargetPlatform',
          `Setting platform to predefined ${from.platform.trim()} in FROM is redundant as this is the default behavior`,
          pos(from),
        );
      else if (!from.platform.includes('$'))
        report(
          ctx,
          'FromPlatformFlagConstDisallowed',
          `FROM --platform flag should not use constant value "${from.platform}"`,
          pos(from),
        );
    }
    // ARGs in FROM must be declared before the first FROM.
    for (const n of referencedNames(from.image, ctx.df.directives.escape)) {
      if (!globalArgs.has(n) && !PLATFORM_ARGS.includes(n))
        report(ctx, 'UndefinedArgInFrom', `FROM argument '${n}' is not declared`, pos(from), 'error');
    }
    if (referencedNames(from.image, ctx.df.directives.escape).length) {
      let expanded: string;
      try {
        expanded = expandWord(
          from.image,
          (n) => globalArgs.get(n) ?? (PLATFORM_ARGS.includes(n) ? 'linux/amd64' : undefined),
          { escape: ctx.df.directives.escape },
        );
      } catch {
        expanded = '';
      }
      let valid = expanded !== '';
      if (valid && expanded.toLowerCase() !== 'scratch' && !seen.has(expanded.toLowerCase())) {
        try {
          parseReference(expanded);
        } catch {
          valid = false;
        }
      }
      if (!valid)
        report(
          ctx,
          'InvalidDefaultArgInFrom',
          `Default value for ARG ${from.image} results in empty or invalid base image name`,
          pos(from),
        );
    }
    // Per-stage instruction checks.
    const counts = new Map<string, Instruction[]>();
    let customShell = false;
    let absoluteWorkdir = false;
    for (const ins of body) {
      if (ins.kind === 'SHELL') customShell = true;
      if ((ins.kind === 'CMD' || ins.kind === 'ENTRYPOINT') && ins.command.form === 'shell' && !customShell) {
        report(
          ctx,
          'JSONArgsRecommended',
          `JSON arguments recommended for ${ins.kind} to prevent unintended behavior related to OS signals`,
          pos(ins),
        );
      }
      if (ins.kind === 'CMD' || ins.kind === 'ENTRYPOINT' || ins.kind === 'HEALTHCHECK')
        counts.set(ins.kind, [...(counts.get(ins.kind) ?? []), ins]);
      if (ins.kind === 'WORKDIR') {
        const p = ins.path.replace(/^["']|["']$/g, '');
        if (p.startsWith('/') || p.startsWith('$')) absoluteWorkdir = true;
        else if (!absoluteWorkdir)
          report(
            ctx,
            'WorkdirRelativePath',
            `Relative workdir "${p}" can have unexpected results if the base image changes`,
            pos(ins),
          );
      }
    }
    for (const [kind, list] of counts) {
      for (const ins of list.slice(0, -1))
        report(
          ctx,
          'MultipleInstructionsDisallowed',
          `Multiple ${kind} instructions should not be used in the same stage because only the last one will be used`,
          pos(ins),
        );
    }
  }
}

function checkSecrets(ctx: Ctx, ins: Instruction): void {
  const check = (key: string, hasValue: boolean) => {
    if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key)) {
      // A literal value is baked into the image config or history: an error; a bare ARG still
      // shows up in the history of the RUN steps that use it: a warning.
      report(
        ctx,
        'SecretsUsedInArgOrEnv',
        `Do not use ARG or ENV instructions for sensitive data (${ins.kind} "${key}")`,
        pos(ins),
        hasValue ? 'error' : 'warning',
      );
    }
  };
  if (ins.kind === 'ARG') for (const a of ins.args) check(a.name, a.default !== undefined && a.default !== '');
  if (ins.kind === 'ENV') for (const p of ins.pairs) check(p.key, p.value !== '');
}

/** The stages whose layers end up in the target image: the target and its FROM-stage chain. */
function finalChain(plan: BuildPlan): PlannedStage[] {
  const out: PlannedStage[] = [];
  for (let s: PlannedStage | undefined = plan.stages[plan.target]; s;) {
    out.push(s);
    s = s.base.kind === 'stage' ? plan.stages[s.base.index] : undefined;
  }
  return out;
}

function checkPlan(ctx: Ctx, plan: BuildPlan, stages: { from: FromInstruction; body: Instruction[] }[]): void {
  // Unused stages.
  for (const s of plan.stages) {
    if (!s.needed)
      report(
        ctx,
        'UnusedStage',
        `stage ${s.name ? `"${s.name}"` : s.index} is not used by the target stage${plan.stages[plan.target]?.name ? ` "${plan.stages[plan.target]!.name}"` : ''}: it is never built`,
        s.position,
      );
  }
  // Base images without a tag, or "latest".
  for (const s of plan.stages) {
    if (!s.needed || s.base.kind !== 'image') continue;
    const from = stages[s.index]?.from;
    let r;
    try {
      r = parseReference(s.base.ref);
    } catch {
      continue; // InvalidDefaultArgInFrom / plan errors cover it
    }
    if (r.digest) continue;
    if (r.tag === undefined)
      report(
        ctx,
        'BaseImageLatestTag',
        `base image "${s.base.ref}" has no tag: it means "latest", which changes over time; pin a version tag (or a digest)`,
        from ? pos(from) : s.position,
      );
    else if (r.tag === 'latest')
      report(
        ctx,
        'BaseImageLatestTag',
        `base image "${s.base.ref}" uses the "latest" tag, which changes over time; pin a version tag (or a digest)`,
        from ? pos(from) : s.position,
      );
  }
  // COPY of the whole context before a dependency install, in any needed stage.
  for (const s of plan.stages) {
    if (!s.needed) continue;
    let copyAll: Instruction | undefined;
    for (const pi of s.instructions) {
      const ins = pi.instruction;
      if (
        (ins.kind === 'COPY' || ins.kind === 'ADD') &&
        !ins.from &&
        ins.sources.some((src) => ['.', './', '*', './*'].includes(src))
      )
        copyAll ??= ins;
      if (ins.kind === 'RUN' && copyAll && DEP_INSTALL.test(commandText(ins.command))) {
        report(
          ctx,
          'CopyAllBeforeDependencyInstall',
          `"${copyAll.original.trim()}" on line ${copyAll.range.start.line} copies the whole context before this dependency install: any source change re-runs it; copy the dependency manifests (requirements.txt, package*.json, go.mod...) first, install, then copy the rest`,
          pos(ins),
        );
        break;
      }
    }
  }
  // What reaches the final image.
  const chain = finalChain(plan);
  const target = chain[0];
  if (!target) return;
  const chainIdx = new Set(chain.map((s) => s.index));
  // USER: the last one in the chain, target first.
  let user: { value: string; ins: Instruction } | undefined;
  for (const s of chain) {
    for (let i = s.instructions.length - 1; i >= 0 && !user; i--) {
      const ins = s.instructions[i]!.instruction;
      if (ins.kind === 'USER') user = { value: ins.user, ins };
    }
    if (user) break;
  }
  const rootOf = chain[chain.length - 1]!;
  const baseName = rootOf.base.kind === 'image' ? rootOf.base.ref : rootOf.base.kind === 'scratch' ? 'scratch' : '';
  if (!user && rootOf.base.kind !== 'scratch') {
    const from = stages[target.index]?.from;
    report(
      ctx,
      'RootUserInFinalStage',
      `the final stage${target.name ? ` "${target.name}"` : ''} has no USER instruction: it runs as the base image's user (${baseName}), root unless that image sets one; add "USER <name or uid>" after installing`,
      from ? pos(from) : target.position,
    );
  } else if (user && /^(?:root|0)(?::(?:root|0))?$/.test(user.value.trim())) {
    report(
      ctx,
      'RootUserInFinalStage',
      `the final stage runs as root ("${user.ins.original.trim()}"): switch to an unprivileged user before CMD/ENTRYPOINT`,
      pos(user.ins),
    );
  }
  // COPY --from of a whole tree into the final image, nothing excluded (kiln analyze --copies measures it).
  for (const s of chain)
    for (const pi of s.instructions) {
      const ins = pi.instruction;
      if ((ins.kind !== 'COPY' && ins.kind !== 'ADD') || !ins.from || ins.exclude?.length) continue;
      const broad = ins.sources.find((src) => BROAD_COPY.test(src));
      if (broad === undefined) continue;
      report(
        ctx,
        'BroadCopyFromStage',
        `"${ins.original.trim()}" copies all of ${broad} from ${ins.from}: headers, docs, man pages, static libraries, caches and dev dependencies come along; copy only what the runtime needs (e.g. its lib/ and bin/) or add --exclude (kiln analyze --copies IMAGE measures what it would save)`,
        pos(ins),
      );
    }
  // Toolchain images as the final base.
  if (rootOf.base.kind === 'image') {
    const ref = rootOf.base.ref.toLowerCase();
    const repo = ref.split('@')[0]!.replace(/:[^/:]*$/, '');
    const tag = /:([^/:@]+)(?:@|$)/.exec(ref)?.[1] ?? '';
    const last = repo.split('/').pop() ?? '';
    if (
      ['golang', 'rust', 'maven', 'gradle', 'gcc', 'buildpack-deps'].includes(last) ||
      /(?:^|[-.])(?:sdk|devel|dev|jdk)(?:$|[-.])/.test(tag) ||
      /\/sdk$/.test(repo)
    ) {
      const from = stages[rootOf.index]?.from;
      report(
        ctx,
        'BuildToolsInFinalStage',
        `the final image is based on the toolchain image "${rootOf.base.ref}": build in an earlier stage and copy the result into a runtime image`,
        from ? pos(from) : rootOf.position,
      );
    }
  }
  // ENV in the chain that disables pip's cache.
  let pipNoCache = false;
  for (const s of [...chain].reverse()) {
    for (const pi of s.instructions) {
      const ins = pi.instruction;
      if (
        ins.kind === 'ENV' &&
        ins.pairs.some((p) => p.key === 'PIP_NO_CACHE_DIR' && !/^(?:0|false|no|off)$/i.test(p.value))
      )
        pipNoCache = true;
      if (ins.kind !== 'RUN') continue;
      const cmd = commandText(ins.command);
      const tools = installedPackages(cmd).filter((p) => BUILD_TOOL.test(p) || DEV_PACKAGE.test(p));
      if (tools.length && chainIdx.has(s.index)) {
        report(
          ctx,
          'BuildToolsInFinalStage',
          `build tools installed in the final image: ${tools.join(', ')}; install them in a build stage and COPY --from it only what runs`,
          pos(ins),
        );
      }
      if (
        /\bapt(?:-get)?\s+(?:[^;&|\n]*\s)?install\b/.test(cmd) &&
        !/\brm\s+(?:-\w+\s+)*[^;&|\n]*\/var\/lib\/apt\/lists/.test(cmd) &&
        !hasCacheMount(ins, /^\/var\/lib\/apt(?:\/lists)?\/?$/)
      ) {
        report(
          ctx,
          'AptListsNotCleaned',
          'apt-get install without "rm -rf /var/lib/apt/lists/*" in the same RUN: the package lists (tens of MB) stay in this layer',
          pos(ins),
        );
      }
      if (
        /\b(?:pip3?|python3?\s+-m\s+pip)\s+(?:install|wheel)\b/.test(cmd) &&
        !/--no-cache-dir\b/.test(cmd) &&
        !pipNoCache &&
        !hasCacheMount(ins, /^\/root\/\.cache(?:\/pip)?\/?$/) &&
        !/\brm\s+[^;&|\n]*\.cache\/pip/.test(cmd)
      ) {
        report(
          ctx,
          'PackageCacheInFinalStage',
          "pip install without --no-cache-dir: pip's download cache (/root/.cache/pip) stays in the final image; add --no-cache-dir or a cache mount",
          pos(ins),
        );
      }
      if (
        /\bnpm\s+(?:install|ci|i)\b/.test(cmd) &&
        !/\bnpm\s+cache\s+clean\b/.test(cmd) &&
        !hasCacheMount(ins, /^\/root\/\.npm\/?$/)
      ) {
        report(
          ctx,
          'PackageCacheInFinalStage',
          'npm install without "npm cache clean --force" in the same RUN: npm\'s cache (/root/.npm) stays in the final image; clean it or use a cache mount',
          pos(ins),
        );
      }
      if (
        /\byarn(?:\s+install)?\s*(?:$|[;&|\n]|--)/.test(cmd) &&
        /\byarn\b/.test(cmd) &&
        !/\byarn\s+cache\s+clean\b/.test(cmd) &&
        !hasCacheMount(ins, /yarn/)
      ) {
        report(
          ctx,
          'PackageCacheInFinalStage',
          'yarn install without "yarn cache clean" in the same RUN: yarn\'s cache stays in the final image',
          pos(ins),
        );
      }
    }
    if (!chainIdx.has(s.index)) continue;
  }
}

/**
 * EXPOSE port[/proto]: BuildKit's ExposeInvalidFormat (an IP or a host port: `8080:80`,
 * `127.0.0.1:80:80`) and ExposeProtoCasing (`80/TCP`). Words with variables are left alone (their
 * value is known at build time only).
 */
/** A COPY --from source that is a whole tree: the root, /usr, /usr/local, /opt, a node_modules. */
const BROAD_COPY = /^(?:\/?\.?\/?|\/usr\/?|\/usr\/local\/?|\/opt\/?|(?:.*\/)?node_modules\/?)$/;

function checkExpose(ctx: Ctx, ins: Instruction & { kind: 'EXPOSE' }): void {
  for (const p of ins.ports) {
    if (p.includes('$')) continue;
    if (p.includes(':'))
      report(
        ctx,
        'ExposeInvalidFormat',
        `EXPOSE instruction should not define an IP address or host-port mapping, found '${p}'`,
        pos(ins),
      );
    const proto = p.split('/')[1];
    if (proto !== undefined && proto !== proto.toLowerCase())
      report(ctx, 'ExposeProtoCasing', `Defined protocol '${p}' in EXPOSE instruction should be lowercase`, pos(ins));
  }
}

/**
 * InvalidDefinitionDescription (experimental in BuildKit): a comment block directly above a named
 * stage's FROM or a one-name ARG is its description only when a line starts with the name.
 */
function checkDescriptions(ctx: Ctx): void {
  for (const ins of ctx.df.instructions) {
    let what: string | undefined;
    let name: string | undefined;
    if (ins.kind === 'FROM' && ins.stageName) [what, name] = ['build stage', ins.stageName];
    else if (ins.kind === 'ARG' && ins.args.length === 1) [what, name] = ['build argument', ins.args[0]!.name];
    if (!what || !name) continue;
    const comments = commentsAbove(ctx.df.lines, ins.range.start.line).filter(
      (c) => !/^(?:syntax|escape|check)\s*=/i.test(c),
    ); // parser directives are no comments
    if (comments.length && describedBy(comments, name) === undefined)
      report(
        ctx,
        'InvalidDefinitionDescription',
        `Comment for ${what} should follow the format: \`# ${name} <description>\``,
        pos(ins),
      );
  }
}

/**
 * CopyIgnoredFile (experimental in BuildKit): a COPY/ADD source from the build context that its
 * `.dockerignore` excludes (the path or a parent), so the copy fails or copies less than it says.
 * Sources with variables, heredocs, `--from` and ADD's URLs are not checked.
 */
function checkIgnoredSources(ctx: Ctx, ignored: (rel: string) => boolean): void {
  for (const ins of ctx.df.instructions) {
    if ((ins.kind !== 'COPY' && ins.kind !== 'ADD') || ins.from !== undefined) continue;
    for (const src of ins.sources) {
      if (/^\d*<</.test(src) || src.includes('$') || /^[a-z][a-z0-9+.-]*:\/\/|^git@/i.test(src)) continue;
      const rel = src.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
      if (rel === '' || rel === '.') continue;
      let hit = false;
      for (let p = rel; p !== '.' && p !== '' && !hit; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '')
        hit = ignored(p);
      if (hit)
        report(
          ctx,
          'CopyIgnoredFile',
          `Attempting to ${ins.kind === 'COPY' ? 'Copy' : 'Add'} file "${src}" that is excluded by .dockerignore`,
          pos(ins),
        );
    }
  }
}
