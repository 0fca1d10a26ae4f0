/**
 * kiln's library API: the same functions the CLI calls, with typed options.
 */
export { KilnError } from './util/errors.js';
export type { ErrorCode, ErrorPlace } from './util/errors.js';
// Reading images (analyze/) and the HTML report (report/).
export * as analyze from './analyze/index.js';
export { renderReport, type ReportInput } from './report/index.js';
