/**
 * The build cache: step keys (keys.ts), the index from key to the step's result in the store
 * (records.ts), and sharing records through a registry (registry.ts: --cache-from/--cache-to).
 * The engine uses it through build/cache-step.ts.
 */
export { chainId } from '../util/digest.js';
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
export { CacheIndex, parseRecord, type CacheRecord, type RecordInfo } from './records.js';
export {
  CACHE_CONFIG_MEDIA_TYPE,
  parseCacheSpec,
  RegistryCacheSink,
  RegistryCacheSource,
  type CacheSpec,
} from './registry.js';
