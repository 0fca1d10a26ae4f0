/** engine/: its entry for other folders (they import from here only; see docs/design.md). */
export { build } from './engine.js';
export { parseSecretFlag, parseSshFlag, pruneCacheMounts } from './run-mounts.js';
export { parseBuildContextFlag } from './named-contexts.js';
export { isRemoteContext, type PreparedContext, prepareRemoteContext } from './remote-context.js';
export { type BuildEvent } from './events.js';
