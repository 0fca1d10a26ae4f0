/**
 * What the progress views show, folded from build events: stages and steps with their state and
 * times, the last lines of each step's output, pulls, warnings, the result. Pure: the time of an
 * event is given by the caller, so renderers over this model are testable with a fake clock.
 */
import { type BuildEvent } from '../../engine/index.js';
import { LineSplitter, sanitizeLine } from '../text.js';

export type StepState = 'waiting' | 'running' | 'cached' | 'done' | 'error' | 'canceled';
export type StageState = 'waiting' | 'running' | 'done' | 'error';

/** Lines of output kept per step (the tty view shows the last few of the running step). */
export const TAIL_LINES = 6;

export interface StepView {
  stage: number;
  step: number;
  text: string;
  line?: number;
  state: StepState;
  /** Progress id (`#N` in plain mode), given when the step starts. */
  id?: number;
  start?: number;
  /** Duration once finished. */
  ms?: number;
  layer?: { digest: string; size: number };
  error?: string;
  exitCode?: number;
  /** Why it ran, or where its cache hit came from (the `explain` event). */
  explain?: { cached: boolean; text: string; changes: string[] };
  /** Last complete output lines (sanitized), at most TAIL_LINES. */
  tail: string[];
  splitters: Partial<Record<'stdout' | 'stderr', LineSplitter>>;
}

export interface PullView {
  ref: string;
  /** The platform whose build pulls it (a multi-platform build). */
  platform?: string;
  stage?: number;
  layers: Map<string, { current: number; total: number; done: boolean }>;
  done: boolean;
  start: number;
  ms?: number;
  /** Totals from the final event (without a layer). */
  current: number;
  total: number;
}

export interface StageView {
  stage: number;
  /** The target platform whose build it is, in a multi-platform build (each platform has its stages). */
  platform?: string;
  name?: string;
  base: string;
  state: StageState;
  /** 1-based position among the stages being built (for its platform). */
  position: number;
  id?: number;
  start?: number;
  ms?: number;
  steps: StepView[];
}

export interface BuildSummary {
  /** The platform whose image it is, in a multi-platform build. */
  platform?: string;
  imageId: string;
  manifestDigest: string;
  ms: number;
  layers: number;
  /** The bytes of its files (docker's image size); compressedSize: its compressed layers, when all are. */
  size: number;
  compressedSize?: number;
}

/** What one event changed, for renderers that print as they go (plain, json). */
export interface Applied {
  /** New complete output lines of a step (for step-output, and the unfinished one at its end). */
  lines?: string[];
  step?: StepView;
  stage?: StageView;
  pull?: PullView;
  /** A stage's FROM finished with this event (its first step started, or the stage ended). */
  fromDone?: StageView;
  /** A warning to show (not one another platform's build of a multi-platform build gave already). */
  warning?: string;
}

/** Where a stage or pull of a platform's build is kept: a multi-platform build's events carry their platform. */
function keyOf(platform: string | undefined, what: number | string): string {
  return platform === undefined ? String(what) : `${platform} ${what}`;
}

export class ProgressModel {
  /** By platform and stage number (see keyOf): two platforms' stage 0 are two stages. */
  readonly stages = new Map<string, StageView>();
  /** By platform and image reference. */
  readonly pulls = new Map<string, PullView>();
  readonly warnings: string[] = [];
  /** How RUN steps are isolated (the sandbox event). */
  sandbox?: string;
  /** The image built: the last one, and every platform's in a multi-platform build (in the order they ended). */
  summary?: BuildSummary;
  readonly summaries: BuildSummary[] = [];
  failed?: string;
  end?: number;
  private nextId = 1;
  /** Stages planned, and seen so far, per platform (undefined: a single-platform build). */
  private readonly planned = new Map<string | undefined, number>();
  private readonly seen = new Map<string | undefined, number>();
  /**
   * The target platforms of a multi-platform build, from their `plan` events. Only then does an
   * event's `platform` say whose build it is (a single-platform build's `stage-start` has a
   * `platform` too: the stage's).
   */
  private readonly platforms = new Set<string>();

  constructor(readonly start: number) {}

  /** A new progress id (`#N`) for something that is not a stage or a step (a pull, the export). */
  newId(): number {
    return this.nextId++;
  }

  /** Number of stages being built for the stage's platform (from the plan, or as seen so far). */
  stageCount(s: Pick<StageView, 'platform'>): number {
    return Math.max(this.planned.get(s.platform) ?? 0, this.seen.get(s.platform) ?? 0);
  }

  /** The stage's name (or `stage-N`), after its platform in a multi-platform build (buildx's `[linux/arm64 builder 2/3]`). */
  stageLabel(s: StageView): string {
    return `${s.platform !== undefined ? `${s.platform} ` : ''}${stageName(s)}`;
  }

  /** What a stage's FROM line is tagged with: `stage 1/3 builder`, after its platform in a multi-platform build. */
  stageHeader(s: StageView): string {
    const platform = s.platform !== undefined ? `${s.platform} ` : '';
    return `${platform}stage ${s.position}/${this.stageCount(s)}${s.name !== undefined ? ` ${s.name}` : ''}`;
  }

  /** What the stage's FROM names, with a base stage by its name (`FROM builder`, not `stage 0`). */
  baseLabel(s: StageView): string {
    const m = /^stage (\d+)$/.exec(s.base);
    const b = m ? this.stages.get(keyOf(s.platform, Number(m[1]))) : undefined;
    return b ? stageName(b) : s.base;
  }

  /** Steps finished (done or cached) and known in all. */
  counts(): { finished: number; total: number } {
    let finished = 0;
    let total = 0;
    for (const s of this.stages.values()) {
      total += s.steps.length;
      for (const st of s.steps) if (st.state === 'done' || st.state === 'cached') finished++;
    }
    return { finished, total };
  }

  /** The platform whose build an event belongs to (undefined in a single-platform build). */
  private platformOf(e: BuildEvent): string | undefined {
    const p = (e as { platform?: unknown }).platform;
    if (typeof p !== 'string') return undefined;
    if (e.type === 'plan') this.platforms.add(p);
    return this.platforms.has(p) ? p : undefined;
  }

  private stageOf(n: number, platform: string | undefined): StageView {
    const key = keyOf(platform, n);
    let s = this.stages.get(key);
    if (!s) {
      const position = (this.seen.get(platform) ?? 0) + 1;
      this.seen.set(platform, position);
      s = {
        stage: n,
        ...(platform !== undefined ? { platform } : {}),
        base: '',
        state: 'waiting',
        position,
        steps: [],
      };
      this.stages.set(key, s);
    }
    return s;
  }

  private stepOf(stage: StageView, n: number, text = ''): StepView {
    while (stage.steps.length < n)
      stage.steps.push({
        stage: stage.stage,
        step: stage.steps.length + 1,
        text,
        state: 'waiting',
        tail: [],
        splitters: {},
      });
    return stage.steps[n - 1]!;
  }

  /** The stage's FROM counts as done once its first step starts or it ends. */
  private finishFrom(stage: StageView): StageView | undefined {
    return stage.steps.every((s) => s.state === 'waiting') ? stage : undefined;
  }

  apply(e: BuildEvent, now: number): Applied {
    const platform = this.platformOf(e);
    switch (e.type) {
      case 'plan': {
        this.planned.set(platform, e.stages.length);
        for (const p of e.stages) {
          const s = this.stageOf(p.stage, platform);
          s.name = p.name;
          s.base = p.base;
          p.steps.forEach((t, i) => {
            const st = this.stepOf(s, i + 1);
            st.text = t.text;
            st.line = t.line;
          });
        }
        return {};
      }
      case 'stage-start': {
        const s = this.stageOf(e.stage, platform);
        s.name = e.name;
        s.base = e.base;
        s.state = 'running';
        s.start = now;
        s.id = this.nextId++;
        return { stage: s };
      }
      case 'step-start': {
        const s = this.stageOf(e.stage, platform);
        const fromDone = this.finishFrom(s);
        // ONBUILD triggers of an external base are only known now: the total grows, and the
        // texts the plan gave move down.
        if (e.total > s.steps.length && s.steps.every((st) => st.state === 'waiting')) {
          const extra = e.total - s.steps.length;
          const known = s.steps.map((st) => ({ text: st.text, line: st.line }));
          s.steps = [];
          for (let i = 0; i < e.total; i++) {
            const st = this.stepOf(s, i + 1);
            const k = known[i - extra];
            if (k) Object.assign(st, k);
          }
        }
        const st = this.stepOf(s, e.step);
        st.text = e.text;
        st.line = e.line;
        st.state = 'running';
        st.start = now;
        st.id = this.nextId++;
        return { step: st, stage: s, fromDone };
      }
      case 'step-output': {
        const s = this.stageOf(e.stage, platform);
        const st = this.stepOf(s, e.step);
        const sp = (st.splitters[e.stream] ??= new LineSplitter());
        const lines = sp.push(e.data).map(sanitizeLine);
        this.keep(st, lines);
        return { step: st, stage: s, lines };
      }
      case 'explain': {
        const s = this.stageOf(e.stage, platform);
        const st = this.stepOf(s, e.step);
        st.explain = { cached: e.cached, text: e.text, changes: e.changes };
        return { step: st, stage: s };
      }
      case 'step-cached': {
        const s = this.stageOf(e.stage, platform);
        const st = this.stepOf(s, e.step);
        st.state = 'cached';
        st.start ??= now;
        return { step: st, stage: s };
      }
      case 'step-done':
      case 'step-error': {
        const s = this.stageOf(e.stage, platform);
        const st = this.stepOf(s, e.step);
        const lines = this.flush(st);
        st.ms = e.ms;
        if (e.type === 'step-done') {
          if (st.state !== 'cached') st.state = 'done';
          st.layer = e.layer;
        } else if (e.canceled) {
          st.state = 'canceled';
          s.state = 'error';
        } else {
          st.state = 'error';
          st.error = e.message;
          st.exitCode = e.exitCode;
          s.state = 'error';
          this.failed ??= e.message;
        }
        return { step: st, stage: s, lines };
      }
      case 'stage-done': {
        const s = this.stageOf(e.stage, platform);
        const fromDone = this.finishFrom(s);
        s.state = 'done';
        s.ms = e.ms;
        return { stage: s, fromDone };
      }
      case 'warning':
        // Every platform's build checks the same Dockerfile: its warnings are shown once.
        if (platform !== undefined && this.warnings.includes(e.message)) return {};
        this.warnings.push(e.message);
        return { warning: e.message };
      case 'sandbox':
        this.sandbox = e.description;
        return {};
      case 'pull': {
        const key = keyOf(platform, e.ref);
        let p = this.pulls.get(key);
        if (!p) {
          p = { ref: e.ref, stage: e.stage, layers: new Map(), done: false, start: now, current: 0, total: 0 };
          if (platform !== undefined) p.platform = platform;
          this.pulls.set(key, p);
        }
        if (e.layer !== undefined) {
          p.layers.set(e.layer, { current: e.current, total: e.total, done: e.done });
        } else {
          p.current = e.current;
          p.total = e.total;
          if (e.done) {
            p.done = true;
            p.ms = now - p.start;
          }
        }
        return { pull: p };
      }
      case 'done':
        this.summary = {
          ...(platform !== undefined ? { platform } : {}),
          imageId: e.imageId,
          manifestDigest: e.manifestDigest,
          ms: e.ms,
          layers: e.layers,
          size: e.size,
          ...(e.compressedSize !== undefined ? { compressedSize: e.compressedSize } : {}),
        };
        this.summaries.push(this.summary);
        // A multi-platform build goes on until every platform's image is made.
        if (this.summaries.length >= this.platforms.size) this.end = now;
        return {};
    }
  }

  /** The build failed (with an error that may not come from a step). */
  fail(message: string, now: number): void {
    this.failed ??= message;
    this.end = now;
    for (const s of this.stages.values()) {
      if (s.state === 'running') s.state = 'error';
      for (const st of s.steps) {
        if (st.state !== 'running') continue;
        st.state = 'error';
        st.ms = now - (st.start ?? now);
      }
    }
  }

  /** Totals of a pull so far. */
  pullTotals(p: PullView): { current: number; total: number; layers: number; layersDone: number } {
    if (p.done && p.layers.size === 0) return { current: p.current, total: p.total, layers: 0, layersDone: 0 };
    let current = 0;
    let total = 0;
    let layersDone = 0;
    for (const l of p.layers.values()) {
      current += l.current;
      total += l.total;
      if (l.done) layersDone++;
    }
    return { current, total, layers: p.layers.size, layersDone };
  }

  /** The stage a pull belongs to: the one it names, or the one whose FROM is that image. */
  pullStage(p: PullView): StageView | undefined {
    if (p.stage !== undefined) return this.stages.get(keyOf(p.platform, p.stage));
    for (const s of this.stages.values()) if (s.base === p.ref && s.platform === p.platform) return s;
    return undefined;
  }

  /** Where a pull is kept (and a renderer's memory of it). */
  pullKey(p: PullView): string {
    return keyOf(p.platform, p.ref);
  }

  private keep(st: StepView, lines: string[]): void {
    if (!lines.length) return;
    st.tail.push(...lines);
    if (st.tail.length > TAIL_LINES) st.tail.splice(0, st.tail.length - TAIL_LINES);
  }

  /** The unfinished last lines of a step's streams, at its end. */
  private flush(st: StepView): string[] {
    const lines: string[] = [];
    for (const k of ['stdout', 'stderr'] as const) {
      const sp = st.splitters[k];
      if (!sp) continue;
      const last = sp.end();
      if (last !== '') lines.push(sanitizeLine(last));
    }
    st.splitters = {};
    this.keep(st, lines);
    return lines;
  }

  /** Last output lines of a running step, with the unfinished line (a progress bar) last. */
  liveTail(st: StepView, n: number): string[] {
    const partials: string[] = [];
    for (const k of ['stdout', 'stderr'] as const) {
      const p = st.splitters[k]?.partial();
      if (p) partials.push(sanitizeLine(p));
    }
    return [...st.tail, ...partials].slice(-n);
  }
}

/** A stage's name, or `stage-N` (BuildKit's name of an unnamed stage). */
function stageName(s: StageView): string {
  return s.name ?? `stage-${s.stage}`;
}
