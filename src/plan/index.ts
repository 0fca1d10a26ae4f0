/**
 * AST + build args + target → resolved stage graph. Pure.
 *
 *   createPlan(df, { buildArgs, target, platform, buildPlatform })   BuildPlan or KilnError('PLAN')
 *   StageScope          BuildKit's ARG/ENV scoping (the engine runs one per stage at build time)
 *   formatPlanText(plan) / formatInstruction(ins)                    text renderings
 */
export * from './types.js';
export { createPlan, type PlanOptions, shippedStages } from './planner.js';
export { StageScope, normalizePlatform, platformArgs, isPredefinedArg, PROXY_ARGS, PLATFORM_ARGS } from './scope.js';
export { formatPlanText, formatInstruction, formatMultiPlatformPlanText } from './format.js';
export { stagesRunOnce, multiPlatformPlan, type MultiPlatformPlan } from './platforms.js';
export {
  listTargets,
  outline,
  formatTargets,
  formatOutline,
  commentsAbove,
  describedBy,
  type TargetInfo,
  type Outline,
} from './subrequests.js';
