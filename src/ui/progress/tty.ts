/**
 * The live terminal view (BuildKit's look): a header with the elapsed time and steps done, every
 * stage and step with its number, state and time, the last lines of each running step's output,
 * pulls in progress; redrawn in place at most 10 times a second.
 *
 * `renderFrame` is pure (model + clock + terminal size → lines); `TtyProgress` draws frames on a
 * terminal: it moves the cursor back over the previous frame and overwrites it line by line
 * (each line cleared to its end, never the whole screen: no flicker), keeps every line narrower
 * than the terminal so nothing wraps, and after a resize (SIGWINCH) counts how the old lines
 * wrapped at the new width to find the frame's top again.
 */
import { type BuildEvent } from '../../engine/index.js';
import { displayWidth, firstLine, formatDuration, formatSize, padEnd, truncate } from '../text.js';
import {
  ProgressModel,
  TAIL_LINES,
  type PullView,
  type StageView,
  type StepView,
  type StepState,
  type StageState,
} from './model.js';

export interface FrameOptions {
  now: number;
  /** Terminal columns; lines are kept to width - 1 so the cursor never wraps. */
  width: number;
  /** Terminal rows: a live frame is cut to fit (finished stages collapse first). */
  height?: number;
  color?: boolean;
  /** The last frame, after the build ended: everything, with the failing step's output and the summary. */
  final?: boolean;
}

const COLORS = { blue: '\x1b[34m', red: '\x1b[31m', yellow: '\x1b[33m', dim: '\x1b[2m', reset: '\x1b[0m' };
type Color = keyof typeof COLORS | undefined;

interface Line {
  text: string;
  color?: Color;
  /** Not cut to the width (final messages a user must read whole). */
  whole?: boolean;
  /**
   * What goes last when a frame is still too tall for the terminal: 4 (default: finished and
   * waiting things) first, then 3 (output lines), 2 (running stages, pulls); 1 (running or failed
   * steps) and 0 (the header) stay.
   */
  prio?: number;
}

const STATE_WORD: Record<StepState | StageState, string> = {
  waiting: 'waiting',
  running: 'running',
  cached: 'CACHED',
  done: 'done',
  error: 'ERROR',
  canceled: 'CANCELED',
};
const STATE_COLOR: Record<StepState | StageState, Color> = {
  waiting: 'dim',
  running: undefined,
  cached: 'blue',
  done: 'blue',
  error: 'red',
  canceled: 'dim',
};
const RIGHT = 14; // "running  12.3s"

function row(left: string, state: string, time: string, width: number): string {
  const right = `${state.padStart(7)} ${time.padStart(6)}`;
  const avail = width - 1 - RIGHT - 1;
  if (avail < 12) return truncate(`${left} ${right.trim()}`, width - 1);
  return `${padEnd(truncate(left, avail), avail)} ${right}`;
}

interface Detail {
  collapseDone: boolean;
  hideWaitingSteps: boolean;
  hideWaitingStages: boolean;
  tail: number;
}

function stepTime(st: StepView, now: number): string {
  if (st.ms !== undefined) return formatDuration(st.ms);
  if (st.start !== undefined && st.state === 'running') return formatDuration(now - st.start);
  return '';
}

function stageTime(model: ProgressModel, s: StageView, now: number): string {
  if (s.ms !== undefined) return formatDuration(s.ms);
  if (s.start !== undefined) return formatDuration((model.end ?? now) - s.start);
  return '';
}

function stageLines(model: ProgressModel, s: StageView, o: FrameOptions, d: Detail): Line[] {
  const w = o.width;
  const label = `[${model.stageHeader(s)}]`;
  const base = s.base ? `FROM ${model.baseLabel(s)}` : '';
  const steps = s.steps;
  const out: Line[] = [];
  const collapsed = d.collapseDone && s.state === 'done' && !o.final;
  const extra = collapsed && steps.length ? ` (${steps.length} step${steps.length === 1 ? '' : 's'})` : '';
  out.push({
    text: row(` => ${label} ${base}${extra}`, STATE_WORD[s.state], stageTime(model, s, o.now), w),
    color: STATE_COLOR[s.state],
    prio: s.state === 'running' ? 2 : 4,
  });
  for (const p of model.pulls.values()) {
    // A pull shows while it runs, and in the final frame as done.
    if ((p.done && !o.final) || model.pullStage(p) !== s) continue;
    out.push(pullLine(model, p, o));
  }
  if (collapsed || (s.state === 'waiting' && (d.hideWaitingSteps || o.final))) return out;
  const tag = model.stageLabel(s);
  let hidden = 0;
  for (const st of steps) {
    // Steps a failed build never started are left out of its final frame.
    if (st.state === 'waiting' && o.final) continue;
    if (st.state === 'waiting' && d.hideWaitingSteps) {
      hidden++;
      continue;
    }
    const left = ` => ${st.state === 'cached' ? 'CACHED ' : ''}[${tag} ${st.step}/${steps.length}] ${firstLine(st.text)}`;
    out.push({
      text: row(left, STATE_WORD[st.state], stepTime(st, o.now), w),
      color: STATE_COLOR[st.state],
      prio: st.state === 'running' || st.state === 'error' ? 1 : 4,
    });
    if (st.state === 'running' && d.tail > 0) {
      for (const l of model.liveTail(st, d.tail))
        out.push({ text: truncate(` => => # ${l}`, w - 1), color: 'dim', prio: 3 });
    }
    if (st.state === 'error' && o.final) {
      for (const l of st.tail) out.push({ text: ` => => # ${l}`, color: 'dim', whole: true });
    }
  }
  if (hidden)
    out.push({ text: truncate(` =>   … ${hidden} more step${hidden === 1 ? '' : 's'} waiting`, w - 1), color: 'dim' });
  return out;
}

function pullLine(model: ProgressModel, p: PullView, o: FrameOptions): Line {
  const t = model.pullTotals(p);
  const layers = t.layers ? ` (${t.layersDone}/${t.layers} layers)` : '';
  const bytes = t.total ? ` ${formatSize(t.current)} / ${formatSize(t.total)}` : '';
  const what = p.done
    ? `pulled ${p.ref}${t.total ? ` ${formatSize(t.total)}` : ''}`
    : `pulling ${p.ref}${bytes}${layers}`;
  return {
    text: row(` => => ${what}`, p.done ? 'done' : 'running', formatDuration(p.ms ?? o.now - p.start), o.width),
    color: p.done ? 'blue' : undefined,
    prio: 2,
  };
}

function build(model: ProgressModel, o: FrameOptions, d: Detail): Line[] {
  const { finished, total } = model.counts();
  const end = model.end ?? o.now;
  const status = o.final ? (model.failed !== undefined ? ' ERROR' : ' FINISHED') : '';
  const lines: Line[] = [
    {
      text: truncate(`[+] Building ${formatDuration(end - model.start)} (${finished}/${total})${status}`, o.width - 1),
      color: model.failed !== undefined && o.final ? 'red' : undefined,
      prio: 0,
    },
  ];
  // Pulls that belong to no stage (e.g. a COPY --from image) come first.
  for (const p of model.pulls.values())
    if ((!p.done || o.final) && !model.pullStage(p)) lines.push(pullLine(model, p, o));
  if (model.sandbox)
    lines.push({ text: truncate(` => sandbox: ${model.sandbox}`, o.width - 1), color: 'dim', prio: 1 });
  let waitingStages = 0;
  for (const s of model.stages.values()) {
    if (s.state === 'waiting' && d.hideWaitingStages && !o.final) {
      waitingStages++;
      continue;
    }
    lines.push(...stageLines(model, s, o, d));
  }
  if (waitingStages)
    lines.push({
      text: truncate(` => ${waitingStages} more stage${waitingStages === 1 ? '' : 's'} waiting`, o.width - 1),
      color: 'dim',
    });
  if (!o.final) {
    if (model.warnings.length)
      lines.push({
        text: truncate(
          ` ! ${model.warnings.length} warning${model.warnings.length === 1 ? '' : 's'} (shown at the end)`,
          o.width - 1,
        ),
        color: 'yellow',
      });
    return lines;
  }
  for (const w of model.warnings) lines.push({ text: `WARNING: ${w}`, color: 'yellow', whole: true });
  for (const sum of model.summaries) {
    const platform = sum.platform !== undefined ? ` (${sum.platform})` : '';
    const tag = sum.platform !== undefined ? `[${sum.platform}] ` : '';
    lines.push({ text: row(` => ${tag}writing image ${sum.imageId}`, 'done', '', o.width), color: 'blue' });
    lines.push({
      text: `Built ${sum.imageId}${platform} in ${formatDuration(sum.ms)}: ${sum.layers} layer${sum.layers === 1 ? '' : 's'}, ${formatSize(sum.size)}${sum.compressedSize !== undefined ? ` (${formatSize(sum.compressedSize)} compressed)` : ''}`,
      whole: true,
    });
    lines.push({ text: `  manifest ${sum.manifestDigest}`, whole: true, color: 'dim' });
  }
  return lines;
}

const LEVELS: Detail[] = [
  { collapseDone: false, hideWaitingSteps: false, hideWaitingStages: false, tail: TAIL_LINES },
  { collapseDone: true, hideWaitingSteps: false, hideWaitingStages: false, tail: TAIL_LINES },
  { collapseDone: true, hideWaitingSteps: true, hideWaitingStages: false, tail: TAIL_LINES },
  { collapseDone: true, hideWaitingSteps: true, hideWaitingStages: true, tail: 3 },
  { collapseDone: true, hideWaitingSteps: true, hideWaitingStages: true, tail: 1 },
];

function paint(l: Line, color: boolean): string {
  return color && l.color ? `${COLORS[l.color]}${l.text}${COLORS.reset}` : l.text;
}

/** One frame of the view, as lines (no newlines; escape codes only for colour). */
export function renderFrame(model: ProgressModel, o: FrameOptions): string[] {
  // A narrow terminal gets the same lines cut shorter (states and times go first: see row()).
  const width = Math.max(2, o.width);
  const opts = { ...o, width };
  if (o.final) return build(model, opts, LEVELS[0]!).map((l) => paint(l, !!o.color));
  const max = Math.max(2, (o.height ?? Infinity) - 1);
  let lines: Line[] = [];
  for (const d of LEVELS) {
    lines = build(model, opts, d);
    if (lines.length <= max) break;
  }
  // Still too tall: drop the least needed lines (from the bottom up), then keep the header and
  // the last lines.
  for (let p = 4; p >= 2 && lines.length > max; p--) {
    for (let i = lines.length - 1; i > 0 && lines.length > max; i--)
      if ((lines[i]!.prio ?? 4) === p) lines.splice(i, 1);
  }
  if (lines.length > max) lines = [lines[0]!, ...lines.slice(lines.length - (max - 1))];
  return lines.map((l) => paint(l, !!o.color));
}

/** The parts of a terminal the live view uses (process.stderr is one). */
export interface Terminal {
  write(s: string): unknown;
  columns?: number;
  rows?: number;
  on?(event: 'resize', f: () => void): unknown;
  off?(event: 'resize', f: () => void): unknown;
}

export interface TtyOptions {
  now?: () => number;
  color?: boolean;
  /** Milliseconds between redraws (default 100: 10 frames a second). */
  interval?: number;
  /** Start the redraw timer (default true; tests draw by calling `draw()`). */
  timer?: boolean;
}

const SGR = /\x1b\[[0-9;]*m/g;

export class TtyProgress {
  readonly model: ProgressModel;
  private readonly now: () => number;
  private drawn: string[] = [];
  private drawnWidth = 0;
  private timer?: NodeJS.Timeout;
  private dirty = true;
  private finished = false;
  private readonly onResize = () => {
    this.dirty = true;
  };
  private readonly restoreCursor = () => {
    this.term.write('\x1b[?25h');
  };

  constructor(
    private readonly term: Terminal,
    private readonly opts: TtyOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.model = new ProgressModel(this.now());
    term.on?.('resize', this.onResize);
    // The cursor is hidden while frames are drawn; whatever happens, it comes back.
    this.term.write('\x1b[?25l');
    process.once('exit', this.restoreCursor);
    if (opts.timer !== false) {
      this.timer = setInterval(() => this.draw(), opts.interval ?? 100);
      this.timer.unref();
    }
  }

  onEvent(e: BuildEvent): void {
    this.model.apply(e, this.now());
    this.dirty = true;
  }

  private width(): number {
    return this.term.columns || 80;
  }

  /** Rows the last frame takes now, at the current width (lines wrap when the terminal narrows). */
  private drawnRows(): number {
    const w = this.width();
    if (w >= this.drawnWidth) return this.drawn.length;
    let rows = 0;
    for (const l of this.drawn) rows += Math.max(1, Math.ceil(displayWidth(l.replace(SGR, '')) / w));
    return rows;
  }

  private frame(lines: string[]): void {
    const up = this.drawnRows();
    let s = up ? `\r\x1b[${up}A` : '\r';
    for (const l of lines) s += `${l}\x1b[K\n`;
    if (lines.length < up) s += '\x1b[J';
    this.term.write(s);
    this.drawn = lines;
    this.drawnWidth = this.width();
  }

  /** Redraw now if anything changed or a clock is running. */
  draw(): void {
    if (this.finished) return;
    const running = [...this.model.stages.values()].some((s) => s.state === 'running');
    if (!this.dirty && !running) return;
    this.dirty = false;
    const lines = renderFrame(this.model, {
      now: this.now(),
      width: this.width(),
      height: this.term.rows,
      color: this.opts.color,
    });
    if (
      lines.length === this.drawn.length &&
      lines.every((l, i) => l === this.drawn[i]) &&
      this.width() === this.drawnWidth
    )
      return;
    this.frame(lines);
  }

  /** The final frame (everything, the summary or the error) and the cursor back. */
  finish(error?: string): void {
    if (this.finished) return;
    if (this.timer) clearInterval(this.timer);
    if (error !== undefined) this.model.fail(error, this.now());
    else this.model.end ??= this.now();
    this.frame(renderFrame(this.model, { now: this.now(), width: this.width(), color: this.opts.color, final: true }));
    this.finished = true;
    this.term.write('\x1b[?25h');
    this.term.off?.('resize', this.onResize);
    process.off('exit', this.restoreCursor);
  }
}
