/**
 * Plain progress (BuildKit's `--progress plain`, for CI logs): one line per event, every line of
 * a step's output prefixed by the step's id and the seconds since it started:
 *
 *   #3 [builder 2/4] RUN make
 *   #3 0.412 cc -o app app.c
 *   #3 DONE 1.3s
 *
 * No escape sequences; a step's output is cleaned of them (colours, cursor moves) and of control
 * characters, and a carriage-return progress bar shows as its last state.
 */
import { type BuildEvent } from '../../engine/index.js';
import { firstLine, formatDuration, formatSize } from '../text.js';
import { ProgressModel, type PullView } from './model.js';

/** Milliseconds between two progress lines of one pulled layer. */
const PULL_LINE_EVERY = 2000;

export class PlainRenderer {
  readonly model: ProgressModel;
  private readonly pullIds = new Map<string, number>();
  private readonly pullPrinted = new Map<string, number>();

  constructor(start: number) {
    this.model = new ProgressModel(start);
  }

  /** The lines one event prints (pure apart from the model it updates). */
  lines(e: BuildEvent, now: number): string[] {
    const m = this.model;
    const a = m.apply(e, now);
    const out: string[] = [];
    if (a.fromDone?.id !== undefined && a.fromDone.start !== undefined)
      out.push(`#${a.fromDone.id} DONE ${formatDuration(now - a.fromDone.start)}`);
    switch (e.type) {
      case 'stage-start': {
        const s = a.stage!;
        out.push(`#${s.id} [${m.stageHeader(s)}] FROM ${m.baseLabel(s)}`);
        break;
      }
      case 'step-start': {
        const st = a.step!;
        out.push(`#${st.id} [${m.stageLabel(a.stage!)} ${st.step}/${a.stage!.steps.length}] ${firstLine(st.text)}`);
        break;
      }
      case 'step-output':
        out.push(...this.output(a.step!.id, a.step!.start, a.lines!, now));
        break;
      case 'step-cached':
        out.push(`#${a.step!.id ?? '?'} CACHED`);
        break;
      case 'step-done':
        out.push(...this.output(a.step!.id, a.step!.start, a.lines!, now));
        if (a.step!.state !== 'cached') out.push(`#${a.step!.id} DONE ${formatDuration(e.ms)}`);
        break;
      case 'step-error':
        out.push(...this.output(a.step!.id, a.step!.start, a.lines!, now));
        out.push(
          e.canceled
            ? `#${a.step!.id} CANCELED`
            : `#${a.step!.id} ERROR: ${e.exitCode !== undefined ? `exit code ${e.exitCode}` : firstLine(e.message)}`,
        );
        break;
      case 'warning':
        if (a.warning !== undefined) out.push(`WARNING: ${a.warning}`);
        break;
      case 'sandbox':
        out.push(`#0 sandbox: ${e.description}`);
        break;
      case 'pull':
        out.push(...this.pull(a.pull!, e, now));
        break;
      case 'done': {
        const id = m.newId();
        const platform = m.summary?.platform !== undefined ? ` (${m.summary.platform})` : '';
        out.push(`#${id} ${platform && `[${m.summary!.platform}] `}writing image ${e.imageId} done`);
        out.push(
          `Built ${e.imageId}${platform} in ${formatDuration(e.ms)}: ${e.layers} layer${e.layers === 1 ? '' : 's'}, ${formatSize(e.size)}${e.compressedSize !== undefined ? ` (${formatSize(e.compressedSize)} compressed)` : ''} (manifest ${e.manifestDigest})`,
        );
        break;
      }
      default:
        break;
    }
    return out;
  }

  private output(id: number | undefined, start: number | undefined, lines: string[], now: number): string[] {
    const secs = ((now - (start ?? now)) / 1000).toFixed(3);
    return lines.map((l) => `#${id ?? '?'} ${secs} ${l}`);
  }

  private pull(p: PullView, e: Extract<BuildEvent, { type: 'pull' }>, now: number): string[] {
    const out: string[] = [];
    const key = this.model.pullKey(p);
    let id = this.pullIds.get(key);
    if (id === undefined) {
      const stage = this.model.pullStage(p);
      id = stage?.id ?? this.model.newId();
      this.pullIds.set(key, id);
      out.push(`#${id} pulling ${p.ref}`);
    }
    if (e.layer !== undefined) {
      const layerKey = `${key} ${e.layer}`;
      const last = this.pullPrinted.get(layerKey);
      // A layer's first line, one every PULL_LINE_EVERY while it downloads, and one when done.
      if (e.done || (e.current < e.total && (last === undefined || now - last >= PULL_LINE_EVERY))) {
        if (!(e.done && last === -1))
          out.push(
            `#${id} ${e.layer.replace(/^sha256:/, '').slice(0, 12)} ${formatSize(e.current)} / ${formatSize(e.total)}${e.done ? ' done' : ''}`,
          );
        this.pullPrinted.set(layerKey, e.done ? -1 : now);
      }
    } else if (e.done) {
      out.push(`#${id} pulled ${p.ref} (${formatSize(e.total)}) in ${formatDuration(p.ms ?? 0)}`);
    }
    return out;
  }
}

/** Writes plain progress lines to a stream. */
export class PlainProgress {
  private readonly r: PlainRenderer;

  constructor(
    private readonly out: { write(s: string): unknown },
    private readonly now: () => number = Date.now,
  ) {
    this.r = new PlainRenderer(now());
  }

  private finished = false;

  onEvent(e: BuildEvent): void {
    // Stages still running when the build failed may go on reporting: the log has ended.
    if (this.finished) return;
    const lines = this.r.lines(e, this.now());
    if (lines.length) this.out.write(`${lines.join('\n')}\n`);
  }

  /** The build ended (its error, if any, is the command's to print). */
  finish(): void {
    this.finished = true;
  }
}
