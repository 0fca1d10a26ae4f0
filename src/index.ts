/**
 * kiln's library API: the same functions the CLI calls, with typed options.
 */
export { KilnError } from './util/index.js';
export { type ErrorCode, type ErrorPlace } from './util/index.js';
// Reading images (analyze/) and the HTML report (report/).
export * as analyze from './analyze/index.js';
export { renderReport, type ReportInput } from './report/index.js';
// The Dockerfile frontend (dockerfile/) and the resolved build (plan/).
export * as dockerfile from './dockerfile/index.js';
export * as plan from './plan/index.js';
export { parseDockerfile } from './dockerfile/index.js';
export { createPlan } from './plan/index.js';
