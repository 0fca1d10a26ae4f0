/**
 * Build progress displays: `progressDisplay(mode, stream)` gives an event sink for `build()` and a
 * `finish()` to call when the build ends (with its error if it failed).
 *   tty   — live view redrawn in place (tty.ts)
 *   plain — one line per event, output prefixed by the step id (plain.ts)
 *   json  — one JSON object per line, docs/progress-json.md (json.ts)
 *   quiet — nothing
 * `auto` is tty on a terminal that can move its cursor, plain otherwise.
 */
import { type BuildEvent } from '../../engine/index.js';
import { isKilnError } from '../../util/index.js';
import { JsonProgress, type ProgressError } from './json.js';
import { PlainProgress } from './plain.js';
import { TtyProgress, type Terminal } from './tty.js';

export const PROGRESS_MODES = ['auto', 'tty', 'plain', 'json', 'quiet'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export interface ProgressDisplay {
  onEvent(e: BuildEvent): void;
  /** The build ended (with its error if it failed): the last frame, the cursor back. Idempotent. */
  finish(error?: ProgressError): void;
}

/** What the displays show of an error the build threw. */
export function progressError(e: unknown): ProgressError {
  if (isKilnError(e)) {
    const out: ProgressError = { message: e.message, code: e.code };
    if (e.place.file !== undefined) out.file = e.place.file;
    if (e.place.line !== undefined) out.line = e.place.line;
    if (e.hint !== undefined) out.hint = e.hint;
    return out;
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

export function isProgressMode(s: string): s is ProgressMode {
  return (PROGRESS_MODES as readonly string[]).includes(s);
}

/** The mode `auto` stands for on this stream. */
export function resolveProgressMode(
  mode: ProgressMode,
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Exclude<ProgressMode, 'auto'> {
  if (mode !== 'auto') return mode;
  return stream.isTTY === true && env.TERM !== 'dumb' ? 'tty' : 'plain';
}

export function progressDisplay(
  mode: ProgressMode,
  stream: Terminal & { isTTY?: boolean },
  opts: { now?: () => number; env?: NodeJS.ProcessEnv } = {},
): ProgressDisplay {
  const env = opts.env ?? process.env;
  const m = resolveProgressMode(mode, stream, env);
  switch (m) {
    case 'tty': {
      const color = stream.isTTY === true && env.NO_COLOR === undefined && env.TERM !== 'dumb';
      const t = new TtyProgress(stream, { now: opts.now, color });
      return { onEvent: (e) => t.onEvent(e), finish: (err) => t.finish(err?.message) };
    }
    case 'plain': {
      const p = new PlainProgress(stream, opts.now);
      return { onEvent: (e) => p.onEvent(e), finish: () => p.finish() };
    }
    case 'json':
      return new JsonProgress(stream, opts.now);
    case 'quiet':
      return { onEvent: () => undefined, finish: () => undefined };
  }
}

export { ProgressModel } from './model.js';
export { renderFrame, TtyProgress } from './tty.js';
export { PlainRenderer } from './plain.js';
export { JsonRenderer, PROGRESS_JSON_VERSION, type ProgressError } from './json.js';
