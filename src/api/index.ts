/** The library API (the functions the CLI calls): one entry for src/index.ts and cli/. */
export { openStore, type StoreOptions } from './store.js';
export {
  build,
  plan,
  lint,
  dockerfileInput,
  type BuildOptions,
  type BuildResult,
  type DockerfileOptions,
  type PlanOptions,
  type LintOptions,
} from './build.js';
export { readDockerfileInput, type DockerfileInput } from './dockerfile-input.js';
export {
  pull,
  push,
  save,
  load,
  inspect,
  run,
  type PullOptions,
  type PushOptions,
  type PushResult,
  type SaveOptions,
  type LoadOptions,
  type ImageInspect,
  type RunOptions,
} from './images.js';
export {
  analyze,
  sbom,
  scan,
  scanSecrets,
  diff,
  gate,
  history,
  report,
  trace,
  copies,
  openImage,
  type GateOptions,
  type ReadOptions,
  type AnalyzeOptions,
  type AnalyzeResult,
  type ScanOptions,
  type ScanReport,
  type SecretScanOptions,
  type SecretScanReport,
  type DiffOptions,
  type ReportOptions,
  type CopiesOptions,
} from './read.js';
export { debug, keptSteps, removeKeptSteps, type DebugOptions, type KeptStep } from './debug.js';
