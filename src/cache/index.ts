/**
 * The build cache: step keys (keys.ts), the index from key to the step's result in the store
 * (records.ts), and sharing records through a registry (registry.ts: --cache-from/--cache-to).
 * The engine uses it through engine/cache-step.ts; `CacheSource`/`CacheSink` are the interfaces a
 * remote cache implements (here, as registry.ts implements them: the engine imports cache/, not back).
 */
export { chainId } from '../util/index.js';
export {
  CACHE_KEY_VERSION,
  contentMemoKey,
  instructionForKey,
  stateId,
  stepKey,
  timelessConfig,
  type StepKeyInput,
  type StepState,
} from './keys.js';
export {
  CacheIndex,
  parseRecord,
  type CacheRecord,
  type CacheSink,
  type CacheSource,
  type PreparedCacheExport,
  type RecordInfo,
} from './records.js';
export {
  CACHE_CONFIG_MEDIA_TYPE,
  parseCacheSpec,
  RegistryCacheSink,
  RegistryCacheSource,
  type CacheSpec,
} from './registry.js';
export {
  EXPLAIN_MAX_FILES,
  explainMiss,
  pruneExplain,
  readExplain,
  stepIdentity,
  writeExplain,
  type ExplainContext,
  type ExplainFile,
  type ExplainInput,
  type ExplainReason,
  type ExplainRecord,
  type Explanation,
  type StepParts,
} from './explain.js';
