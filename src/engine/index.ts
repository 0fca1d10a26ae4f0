/** engine/: its entry for other folders (they import from here only; see docs/design.md). */
export { build } from './engine.js';
export { parseSecretFlag, parseSshFlag, pruneCacheMounts } from './run-mounts.js';
export { parseBuildContextFlag } from './named-contexts.js';
export { isRemoteContext, type PreparedContext, prepareRemoteContext } from './remote-context.js';
export { type BuildEvent, BUILD_EVENT_TYPES, type EventSink, type PlanStageInfo } from './events.js';
export { buildWithOutputs, type BuildWithOutputsOptions, type BuildWithOutputsResult } from './build-outputs.js';
export { type CacheSink, type CacheSource } from './cache-step.js';
export {
  type ArchiveOutput,
  isFilesOutput,
  type LayerCompressionOptions,
  type LocalOutput,
  type OutputResult,
  type OutputSpec,
  parseOutputSpec,
  type RegistryOutput,
  type StoreOutput,
  type TarOutput,
} from './outputs.js';
export {
  debugKeptStep,
  findKeptStep,
  listKeptSteps,
  pruneKeptSteps,
  removeKeptStep,
  type DebugOptions as DebugStepOptions,
  type KeptStep,
} from './kept-step.js';
export { buildPlatforms, parsePlatforms, type PlatformEvent, type PlatformBuild } from './multi-platform.js';
