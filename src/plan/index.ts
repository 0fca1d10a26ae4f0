/** AST + build args + target → resolved stage graph. Pure. */
export * from './types.js';
export { createPlan, type PlanOptions } from './planner.js';
export { StageScope, platformArgs, PROXY_ARGS, PLATFORM_ARGS } from './scope.js';
export { formatPlanText } from './format.js';
