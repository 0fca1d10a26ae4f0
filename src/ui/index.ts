/** ui/: its entry for other folders (they import from here only; see docs/design.md). */
export { transferView } from './transfer.js';
export {
  isProgressMode,
  PROGRESS_MODES,
  progressDisplay,
  progressError,
  resolveProgressMode,
} from './progress/index.js';
export {
  formatAnalysisText,
  formatCiText,
  formatDiffText,
  formatSbomTable,
  formatScanSarif,
  formatScanTable,
} from './analysis.js';
export { humanAgo, humanSize, printTable } from './table.js';
export { ExplainTable } from './explain.js';
export { formatGateSarif, formatGateText } from './gate.js';
export { formatSecretsText } from './secrets.js';
export { formatTraceText, formatCopiesText } from './provenance.js';
