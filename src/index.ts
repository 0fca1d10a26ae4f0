/**
 * kiln's library API: the same functions the CLI calls, with typed options (each takes the store
 * as `root` or an open `store`), events, results and `KilnError`. docs/api.md documents them.
 */
export { KilnError, isKilnError } from './util/errors.js';
export type { ErrorCode, ErrorPlace } from './util/errors.js';
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
} from './engine/outputs.js';
export { BUILD_EVENT_TYPES, type BuildEvent, type EventSink, type PlanStageInfo } from './engine/events.js';
export type { TransferEvent } from './registry/pull.js';
export type { BuildPlan, PlannedStage } from './plan/types.js';
export type { Store, LoadedImage } from './store/store.js';
export type { LoadResult } from './archive/load.js';
export type { Mount } from './sandbox/index.js';
export { parseVolume } from './sandbox/index.js';
export type { ImageAnalysis, SbomResult, ImageSummary } from './analyze/analyze.js';
export type { ImageDiff } from './analyze/diff.js';
export type { HistoryRow } from './analyze/history.js';
export type { CiThresholds, CiRuleResult } from './analyze/efficiency.js';
export type { ScanResult, Finding } from './analyze/scan.js';
export type { LintResult, LintFinding } from './analyze/lint/index.js';
// Lower-level pieces: the Dockerfile frontend, the planner, the HTML renderer, the SBOM documents.
export * as dockerfile from './dockerfile/index.js';
export { parseDockerfile } from './dockerfile/parser.js';
export { createPlan } from './plan/planner.js';
export { renderReport, type ReportInput } from './report/index.js';
export { toCycloneDx, toSpdx } from './analyze/sbom/format.js';
