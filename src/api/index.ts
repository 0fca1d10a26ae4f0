/** The library API (the functions the CLI calls): one entry for src/index.ts and cli/. */
export { openStore, type StoreOptions } from './store.js';
export {
  build,
  plan,
  lint,
  lintBaseImages,
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
  diff,
  history,
  report,
  openImage,
  type ReadOptions,
  type AnalyzeOptions,
  type AnalyzeResult,
  type ScanOptions,
  type ScanReport,
  type DiffOptions,
  type ReportOptions,
} from './read.js';
