/**
 * kiln's library API: the same functions the CLI calls, with typed options.
 */
export { KilnError } from './util/errors.js';
export type { ErrorCode, ErrorPlace } from './util/errors.js';
