/**
 * BuildKit's UndefinedVar and InvalidBaseImagePlatform checks. Both need what is known of the base
 * images (their ENV names, their platform): the caller gives it (`BaseImageFacts`, from the store)
 * and analyze/ reads nothing itself. A stage whose base image is not known is not checked for
 * UndefinedVar: any name could come from that image's ENV, and a false warning is worse than none.
 */
import { referencedNames, type FromInstruction, type Instruction } from '../../dockerfile/index.js';
import type { BuildPlan } from '../../plan/index.js';

/** What the store knows of a base image (by the reference as the plan resolved it). */
export interface BaseImageFacts {
  /** The names in the image config's Env. */
  env: string[];
  /** The image config's os/architecture[/variant]. */
  os?: string;
  architecture?: string;
  variant?: string;
}

export interface VariableFinding {
  rule: 'UndefinedVar' | 'InvalidBaseImagePlatform';
  message: string;
  ins: Instruction;
}

// BuildKit's nonEnvArgs (dockerfile2llb): build arguments it sets that are never reported.
const NON_ENV_ARGS = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

/** Levenshtein distance (insertions, deletions, substitutions of one character each). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** BuildKit's suggestion: the closest known name at distance under 3 (case-sensitive, as on Linux). */
export function suggestName(name: string, options: Iterable<string>): string | undefined {
  let best: string | undefined;
  let min = 3;
  for (const o of options) {
    const d = distance(name, o);
    if (d < min) [best, min] = [o, d];
  }
  return best;
}

/** The words of an instruction that BuildKit expands with the stage's ENV and ARGs (not RUN, CMD, ENTRYPOINT, ONBUILD). */
function expandedWords(ins: Instruction): string[] {
  switch (ins.kind) {
    case 'ENV':
      return ins.pairs.map((p) => p.value);
    case 'LABEL':
      return ins.pairs.flatMap((p) => [p.key, p.value]);
    case 'COPY':
    case 'ADD':
      return [
        ...(ins.chown !== undefined ? [ins.chown] : []),
        ...(ins.chmod !== undefined ? [ins.chmod] : []),
        ...(ins.kind === 'ADD' && ins.checksum !== undefined ? [ins.checksum] : []),
        ...ins.sources.filter((s) => !/^\d*<</.test(s)),
        ins.dest,
      ];
    case 'WORKDIR':
      return [ins.path];
    case 'USER':
      return [ins.user];
    case 'VOLUME':
      return ins.paths;
    case 'STOPSIGNAL':
      return [ins.signal];
    case 'EXPOSE':
      return ins.ports;
    default:
      return [];
  }
}

interface Scope {
  /** Declared ARGs (with or without a value) and ENV names: what expands without a warning. */
  defined: Set<string>;
  /** Whether every name the stage starts with is known (false: an image the store does not have). */
  known: boolean;
}

const normArch = (arch: string, variant: string | undefined): string =>
  arch === 'arm64' && variant === 'v8' ? 'arm64' : variant ? `${arch}/${variant}` : arch;

/**
 * UndefinedVar over every stage (BuildKit's lint request checks them all), and InvalidBaseImagePlatform
 * for the stages whose base image is known.
 */
export function checkVariables(
  stages: { from: FromInstruction; body: Instruction[] }[],
  plan: BuildPlan,
  escape: string,
  baseImages: Map<string, BaseImageFacts> | undefined,
  expectedPlatform: string,
): VariableFinding[] {
  const out: VariableFinding[] = [];
  const scopes: Scope[] = [];
  for (const planned of plan.stages) {
    const stage = stages[planned.index];
    if (!stage) continue;
    let scope: Scope;
    const base = planned.base;
    if (base.kind === 'stage') {
      const parent = scopes[base.index];
      scope = { defined: new Set(parent?.defined ?? []), known: parent?.known ?? false };
    } else if (base.kind === 'scratch') {
      scope = { defined: new Set(['PATH']), known: true };
    } else {
      const facts = baseImages?.get(base.ref);
      // BuildKit gives every stage a PATH when its base image has none.
      scope = { defined: new Set(['PATH', ...(facts?.env ?? [])]), known: facts !== undefined };
      if (facts?.os && facts.architecture) {
        const expected = planned.platform && !planned.platform.includes('$') ? planned.platform : expectedPlatform;
        const [eos, earch = '', evariant] = expected.toLowerCase().split('/');
        const actual = `${facts.os}/${normArch(facts.architecture, facts.variant)}`;
        if (facts.os !== eos || facts.architecture !== earch)
          out.push({
            rule: 'InvalidBaseImagePlatform',
            message: `Base image ${base.ref} was pulled with platform "${actual}", expected "${eos}/${normArch(earch, evariant)}" for current build`,
            ins: stage.from,
          });
      }
    }
    scopes[planned.index] = scope;
    for (const ins of stage.body) {
      if (scope.known) {
        const seen = new Set<string>();
        const words = ins.kind === 'ARG' ? [] : expandedWords(ins);
        for (const w of words)
          for (const n of referencedNames(w, escape)) if (!scope.defined.has(n) && !NON_ENV_ARGS.has(n)) seen.add(n);
        // ARG: each default sees the ARGs declared before it in the same instruction.
        if (ins.kind === 'ARG')
          for (const a of ins.args) {
            if (a.default !== undefined)
              for (const n of referencedNames(a.default, escape))
                if (!scope.defined.has(n) && !NON_ENV_ARGS.has(n)) seen.add(n);
            scope.defined.add(a.name);
          }
        for (const n of seen) {
          const s = suggestName(n, scope.defined);
          out.push({
            rule: 'UndefinedVar',
            message: `Usage of undefined variable '$${n}'${s ? ` (did you mean $${s}?)` : ''}`,
            ins,
          });
        }
      }
      if (ins.kind === 'ARG') for (const a of ins.args) scope.defined.add(a.name);
      if (ins.kind === 'ENV') for (const p of ins.pairs) scope.defined.add(p.key);
    }
  }
  return out;
}
