/** Self-contained HTML reports from analyze's results. */
export { renderReport, stageContributions, shortCommand, human, type ReportInput } from './html.js';
export { squarify, type Rect } from './treemap.js';
