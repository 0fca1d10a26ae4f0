/**
 * Each instruction is read once, as BuildKit's dispatch() reads a command: expanded with the
 * stage's variables at that point (the base image's ENV, then ENV and ARG as they come, which only
 * the engine knows), its --from / from= sources attached, and from then on that one value is what
 * the cache key describes and what the engine dispatches on (config-step.ts, copy-step.ts,
 * run-step.ts). Nothing downstream expands a word again.
 *
 * The words expanded are expandInstruction's (dockerfile/expand-instruction.ts), except ARG: its
 * defaults are expanded one after the other, each seeing the ARGs declared before it in the same
 * line, and only when no --build-arg overrides them; the expanded ARG carries the value each name
 * takes (StageScope.argValue), which its history text shows and every later step sees.
 */
import {
  type ArgInstruction,
  type Instruction,
  expandWord,
  ExpansionError,
  type Lookup,
  expandInstruction,
  MountError,
} from '../dockerfile/index.js';
import { type StageScope, type PlannedInstruction, type SourceRef } from '../plan/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';

/** An ARG after expansion: its defaults expanded, and the value each name takes. */
export interface ExpandedArg extends ArgInstruction {
  /** `values[i]` is what `args[i]` takes (StageScope.argValue); undefined: declared without a value. */
  values: (string | undefined)[];
}

/** An instruction whose words are expanded (ARG: with the values it gives). */
export type ExpandedInstruction = Exclude<Instruction, ArgInstruction> | ExpandedArg;

/** One instruction as the engine executes it: read once, then only dispatched on. */
export interface Step {
  ins: ExpandedInstruction;
  /**
   * What `COPY --from` (one) or RUN's `--mount from=` (one per mount with a from=, in order)
   * resolved to: the planner's, or resolved at expansion for a base image's ONBUILD trigger.
   */
  sources: SourceRef[];
  /** Where errors of this step point (an ONBUILD trigger: its stage's FROM line). */
  place: ErrorPlace;
}

export interface ExpandStepOptions {
  escape: '\\' | '`';
  place: ErrorPlace;
  /**
   * For --from / from=, after the stage's variables: the global ARGs, then the automatic platform
   * ARGs (the planner's rule, beyond BuildKit).
   */
  globals: Lookup;
  /** A --from / from= the planner did not see (a base image's ONBUILD trigger): a stage or an image. */
  resolveFrom(value: string): SourceRef;
}

/** Runs an expansion; its errors (bad substitution, `${X:?}`, a --mount option) become the step's. */
export function guardExpansion<T>(place: ErrorPlace, expand: () => T): T {
  try {
    return expand();
  } catch (e) {
    if (e instanceof ExpansionError || e instanceof MountError) throw new KilnError('BUILD', e.message, place);
    throw e;
  }
}

/** The step of a planned instruction with the stage's variables now (`scope`, which it does not change). */
export function expandStep(
  planned: Pick<PlannedInstruction, 'instruction' | 'sources'>,
  scope: StageScope,
  o: ExpandStepOptions,
): Step {
  const ins = planned.instruction;
  if (ins.kind === 'ARG') return { ins: expandArg(ins, scope, o), sources: [], place: o.place };
  const fromLookup: Lookup = (n) => scope.lookup(n) ?? o.globals(n);
  const x = guardExpansion(o.place, () => expandInstruction(ins, scope.lookup, { escape: o.escape, fromLookup }));
  return { ins: x, sources: planned.sources ?? unplannedSources(x, o.resolveFrom), place: o.place };
}

/** ARG's defaults in order, each declared on a probe scope before the next is expanded. */
function expandArg(ins: ArgInstruction, scope: StageScope, o: ExpandStepOptions): ExpandedArg {
  const probe = scope.child();
  const args: ArgInstruction['args'] = [];
  const values: (string | undefined)[] = [];
  for (const a of ins.args) {
    let def = a.default;
    const expandDefault = () =>
      (def = guardExpansion(o.place, () => expandWord(a.default!, probe.lookup, { escape: o.escape })));
    values.push(probe.declareArg(a.name, a.default === undefined ? undefined : expandDefault));
    args.push(def === undefined ? { name: a.name } : { name: a.name, default: def });
  }
  return { ...ins, args, values };
}

function unplannedSources(x: Instruction, resolve: (value: string) => SourceRef): SourceRef[] {
  if ((x.kind === 'COPY' || x.kind === 'ADD') && x.from !== undefined) return [resolve(x.from)];
  if (x.kind === 'RUN')
    return x.mounts.flatMap((m) =>
      (m.type === 'bind' || m.type === 'cache') && m.from !== undefined ? [resolve(m.from)] : [],
    );
  return [];
}
