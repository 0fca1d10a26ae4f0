/**
 * JSON progress: one JSON object per line for every build event, schema version 1
 * (docs/progress-json.md). Output bytes become text: each step's stdout and stderr are decoded as
 * UTF-8 streams (a character split between two chunks stays whole; invalid bytes become U+FFFD).
 */
import { type BuildEvent } from '../../engine/index.js';
import { TextDecoder } from 'node:util';

/** Why a build failed, as the displays get it (see `progressError`). */
export interface ProgressError {
  message: string;
  /** KilnError's code (`BUILD`, `NOT_FOUND`, …), `INTERRUPTED` on Ctrl-C. */
  code?: string;
  file?: string;
  line?: number;
  hint?: string;
}

export const PROGRESS_JSON_VERSION = 1;

export class JsonRenderer {
  private readonly decoders = new Map<string, TextDecoder>();

  /** The JSON lines (without newlines) one event gives. */
  lines(e: BuildEvent, now: number): string[] {
    const head = { v: PROGRESS_JSON_VERSION, time: now };
    switch (e.type) {
      case 'step-output': {
        const key = `${e.stage}/${e.step}/${e.stream}`;
        let d = this.decoders.get(key);
        if (!d) {
          d = new TextDecoder('utf-8', { fatal: false });
          this.decoders.set(key, d);
        }
        const data = d.decode(e.data, { stream: true });
        return data === ''
          ? []
          : [JSON.stringify({ ...head, type: e.type, stage: e.stage, step: e.step, stream: e.stream, data })];
      }
      case 'step-done':
      case 'step-error': {
        // Bytes of an unfinished character at the end of the step's output.
        const out: string[] = [];
        for (const stream of ['stdout', 'stderr'] as const) {
          const key = `${e.stage}/${e.step}/${stream}`;
          const d = this.decoders.get(key);
          if (!d) continue;
          this.decoders.delete(key);
          const data = d.decode();
          if (data !== '')
            out.push(JSON.stringify({ ...head, type: 'step-output', stage: e.stage, step: e.step, stream, data }));
        }
        out.push(JSON.stringify({ ...head, ...e }));
        return out;
      }
      default:
        return [JSON.stringify({ ...head, ...e })];
    }
  }

  /** The last line of a failed build: its error. */
  error(err: ProgressError, now: number): string {
    const { message, code, file, line, hint } = err;
    return JSON.stringify({ v: PROGRESS_JSON_VERSION, time: now, type: 'error', message, code, file, line, hint });
  }
}

export class JsonProgress {
  private readonly r = new JsonRenderer();

  constructor(
    private readonly out: { write(s: string): unknown },
    private readonly now: () => number = Date.now,
  ) {}

  private finished = false;

  onEvent(e: BuildEvent): void {
    if (this.finished) return;
    const lines = this.r.lines(e, this.now());
    if (lines.length) this.out.write(`${lines.join('\n')}\n`);
  }

  /** The build ended: a failed build's last line is an `error` event. */
  finish(error?: ProgressError): void {
    if (this.finished) return;
    this.finished = true;
    if (error) this.out.write(`${this.r.error(error, this.now())}\n`);
  }
}
