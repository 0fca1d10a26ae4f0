/** ui/: its entry for other folders (they import from here only; see docs/design.md). */
export { transferView } from './transfer.js';
export {
  isProgressMode,
  PROGRESS_MODES,
  progressDisplay,
  progressError,
  resolveProgressMode,
} from './progress/index.js';
