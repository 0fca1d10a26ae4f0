/**
 * Reading images: history, dive's efficiency, per-layer changes, diff, SBOM catalogers, the
 * vulnerability scan against OSV records, and Dockerfile lint. Everything streams over the
 * layers; nothing is unpacked to disk.
 */
export {
  openImageSource,
  layerHistory,
  indexTarFile,
  type ImageSource,
  type LayerRef,
  type OpenOptions,
} from './source.js';
export {
  analyzeImage,
  catalogImage,
  imageSummary,
  displayName,
  type ImageAnalysis,
  type ImageSummary,
  type LayerReport,
  type SbomResult,
  type AnalyzeOptions,
} from './analyze.js';
export { imageHistory, layerUncompressedSize, type HistoryRow } from './history.js';
export { diffImages, type ImageDiff, type FileChange, type PackageChange } from './diff.js';
export {
  baseLayersFromHistory,
  DEFAULT_MAX_GROWTH_BYTES,
  DEFAULT_MAX_GROWTH_PERCENT,
  GATE_RULE_DESCRIPTIONS,
  GATE_RULES,
  gateImages,
  isRootUser,
  type GateFinding,
  type GateOptions,
  type GateResult,
  type GateRuleId,
  type GateRuleResult,
} from './gate.js';
export { walkImage, type WalkOptions, type WalkResult } from './walk.js';
export {
  computeEfficiency,
  evaluateCi,
  DIVE_CI_DEFAULTS,
  type EfficiencyResult,
  type Inefficiency,
  type CiThresholds,
  type CiRuleResult,
  type LayerEntry,
} from './efficiency.js';
export {
  FsTree,
  stackLayers,
  applyLayerEntries,
  largestDirectories,
  type LayerChanges,
  type DirSize,
} from './filetree.js';
export { Cataloger } from './sbom/catalog.js';
export { toCycloneDx, toSpdx, sbomTableRows, type SbomSubject } from './sbom/format.js';
export { makePurl } from './sbom/purl.js';
export type { Package, PackageType, OsRelease } from './sbom/types.js';
export {
  scanPackages,
  scanWithDatabase,
  filterSeverities,
  osvQuery,
  type Finding,
  type ScanResult,
  type SeverityCounts,
} from './scan.js';
export { OsvDatabase } from './osv/db.js';
export { parseOsvRecord, type OsvRecord } from './osv/schema.js';
export { matchRecord, evaluateRange, type PackageQuery } from './osv/match.js';
export { severityOf, type Severity, SEVERITIES, severityRank } from './osv/severity.js';
export { cvss3BaseScore, cvss2BaseScore } from './osv/cvss.js';
export {
  compareDpkgVersions,
  comparePep440,
  compareSemver,
  compareApkVersions,
  versionOrderFor,
} from './versions/index.js';
export {
  lintDockerfile,
  RULES as LINT_RULES,
  type LintFinding,
  type LintResult,
  type LintOptions,
  checkDirective,
  RULES,
  baseImageRefs,
  type BaseImageFacts,
} from './lint/index.js';
export { baseImageFacts, cachedBaseImageFacts } from './lint/base-facts.js';
export { formatLintText, formatLintJson, formatLintSarif } from './lint/format.js';
export {
  buildChecks,
  buildChecksKey,
  cachedBuildChecks,
  checkCall,
  type BuildChecks,
  type BuildChecksInput,
} from './lint/build-checks.js';
export {
  scanImageSecrets,
  maskSecret,
  type SecretFinding,
  type SecretScanOptions,
  type SecretScanResult,
  type SkippedFile,
} from './secrets.js';
export {
  imageProvenance,
  traceImage,
  copiedPackages,
  analyzeCopies,
  recordsFromDockerfile,
  copiedBytesByStage,
  fromLabel,
  RARELY_NEEDED,
  type TraceResult,
  type CopyReport,
  type CopyFinding,
} from './provenance.js';
