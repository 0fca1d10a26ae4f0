/**
 * kiln's library API: the same functions the CLI calls, with typed options (each takes the store
 * as `root` or an open `store`), events, results and `KilnError`. docs/api.md documents them.
 */
export { KilnError, isKilnError } from './util/index.js';
export { type ErrorCode, type ErrorPlace } from './util/index.js';
export * from './api/index.js';
// Build outputs (engine/outputs.ts) and events (engine/events.ts).
export {
  parseOutputSpec,
  type OutputSpec,
  type OutputResult,
  type StoreOutput,
  type RegistryOutput,
  type ArchiveOutput,
  type LocalOutput,
  type TarOutput,
  type LayerCompressionOptions,
} from './engine/index.js';
export { BUILD_EVENT_TYPES, type BuildEvent, type EventSink, type PlanStageInfo } from './engine/index.js';
export { type TransferEvent } from './registry/index.js';
export { type BuildPlan, type PlannedStage } from './plan/index.js';
export { type Store, type LoadedImage } from './store/index.js';
export { type LoadResult, type SavedEntry } from './archive/index.js';
// An image, whoever holds it (image/image.ts): the store's, an archive's, a registry's; any of them
// can be copied into a store, pushed, saved, analyzed, or given to a build as a named context.
export { type Image, type Layer } from './image/index.js';
export { openStoreImage, copyImageToStore } from './store/index.js';
export { openImageArchive } from './archive/index.js';
export { openRemoteImage, type RemoteImageOptions } from './registry/index.js';
export type { Mount } from './sandbox/index.js';
export { parseVolume } from './sandbox/index.js';
export { type ImageAnalysis, type SbomResult, type ImageSummary } from './analyze/index.js';
export { type ImageDiff } from './analyze/index.js';
export { type GateResult, type GateRuleResult, type GateRuleId, type GateFinding } from './analyze/index.js';
export { type HistoryRow } from './analyze/index.js';
export { type CiThresholds, type CiRuleResult } from './analyze/index.js';
export { type ScanResult, type Finding } from './analyze/index.js';
export { type LintResult, type LintFinding } from './analyze/index.js';
export { type TraceResult, type CopyReport, type CopyFinding } from './analyze/index.js';
export { type CopyProvenance, type ProvenancePackage } from './store/index.js';
// Lower-level pieces: the Dockerfile frontend, the planner, the HTML renderer, the SBOM documents.
export * as dockerfile from './dockerfile/index.js';
export { parseDockerfile } from './dockerfile/index.js';
export { createPlan } from './plan/index.js';
export { renderReport, type ReportInput } from './report/index.js';
export { toCycloneDx, toSpdx } from './analyze/index.js';
