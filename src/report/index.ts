/** Self-contained HTML reports from analyze's results. */
export { renderReport, stageContributions, shortCommand, type ReportInput } from './html.js';
export { human } from '../util/index.js';
export { squarify, type Rect } from './treemap.js';
