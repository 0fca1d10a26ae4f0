/**
 * Which stages of a multi-platform build run once for every platform. Pure.
 *
 * The engine shares a step between the platforms when its cache key is the same for each of them
 * (engine/multi-platform.ts, cache/keys.ts): the key holds the stage's platform (`runsOn`), the
 * state the step starts from, the instruction after expansion, the variables it sees (ARG values
 * are in the expanded ARG lines) and the content it reads from other stages or images. A plan of
 * each platform knows all of these but the contents, which are the same when what they come from
 * is: so a stage runs once exactly when every platform's plan has it on the same platform, from
 * the same base, with the same expanded instructions, reading from the same images and only
 * from stages that run once themselves. `kiln plan --platform a,b` shows this.
 */
import type { BuildPlan, PlannedStage } from './types.js';

/** The stages (needed ones, by index) that `plans` — one Dockerfile planned for each target platform — build once. */
export function stagesRunOnce(plans: BuildPlan[]): Set<number> {
  const once = new Set<number>();
  const first = plans[0];
  if (!first) return once;
  for (const n of first.order) {
    const stages = plans.map((p) => p.stages[n]);
    if (stages.some((s) => s === undefined || !s.needed)) continue;
    const all = stages as PlannedStage[];
    const s0 = all[0]!;
    if (!all.every((s) => sameSteps(s, s0))) continue;
    if (s0.base.kind === 'stage' && !once.has(s0.base.index)) continue;
    if (!s0.dependsOn.every((d) => once.has(d))) continue;
    once.add(n);
  }
  return once;
}

/** Everything of a stage a step's key takes that a plan knows, but the stages it depends on. */
function sameSteps(a: PlannedStage, b: PlannedStage): boolean {
  const texts = (s: PlannedStage) =>
    JSON.stringify({
      runsOn: s.runsOn,
      base: s.base,
      images: s.images,
      dependsOn: s.dependsOn,
      steps: [...(s.onbuild ?? []), ...s.instructions].map((p) => [p.expanded, p.sources ?? []]),
    });
  return texts(a) === texts(b);
}

/** `kiln plan --platform a,b`: each platform's plan and which stages run once (docs/plan-schema.md). */
export interface MultiPlatformPlan {
  schemaVersion: BuildPlan['schemaVersion'];
  platforms: string[];
  /** The needed stages in build order: built once for all platforms, or once per platform. */
  stages: { index: number; name?: string; runs: 'once' | 'per-platform'; runsOn: string[] }[];
  /** One plan per platform, in the order of `platforms`. */
  plans: BuildPlan[];
}

/** The plans of one Dockerfile for each target platform, as one document. */
export function multiPlatformPlan(plans: BuildPlan[]): MultiPlatformPlan {
  const first = plans[0];
  if (!first) throw new Error('multiPlatformPlan: no plan');
  const once = stagesRunOnce(plans);
  return {
    schemaVersion: first.schemaVersion,
    platforms: plans.map((p) => p.platform.target),
    stages: first.order.map((n) => {
      const s = first.stages[n]!;
      return {
        index: n,
        ...(s.name !== undefined ? { name: s.name } : {}),
        runs: once.has(n) ? 'once' : 'per-platform',
        runsOn: once.has(n) ? [s.runsOn] : plans.map((p) => p.stages[n]!.runsOn),
      };
    }),
    plans,
  };
}
