/**
 * Typed build events: the engine emits them, ui/ (and library users) decide how they look.
 *
 * Order for one step: `step-start`, `explain` (once the cache was consulted), then any `step-output`/`pull`/`warning`, then exactly one of
 * `step-done` (ran, or came from the cache after a `step-cached`) or `step-error` (the build then
 * fails). Stages: `stage-start` … `stage-done`. Independent stages run at once, so events of two
 * stages interleave. The schema of their JSON form is docs/progress-json.md.
 */
import { type PlannedStage } from '../plan/index.js';
import { type ExplainReason } from '../cache/index.js';

export interface PlanStageInfo {
  stage: number;
  name?: string;
  /** What FROM names: an image reference, `stage N` or `scratch`. */
  base: string;
  /**
   * Instructions after FROM as written (a base stage's ONBUILD triggers first; those of an
   * external image are not known yet: `step-start`'s `total` then counts them).
   */
  steps: { text: string; line: number }[];
}

export type BuildEvent =
  /** First event: the stages that will be built (only the needed ones), in build order. */
  | { type: 'plan'; stages: PlanStageInfo[]; target: number }
  /** platform: what the stage is built for (its FROM --platform, else the target); emulated: not this machine's architecture. */
  | { type: 'stage-start'; stage: number; name?: string; base: string; platform?: string; emulated?: boolean }
  /** emulated: a RUN that executes under QEMU (binfmt_misc), with the platform it runs as. */
  | {
      type: 'step-start';
      stage: number;
      step: number;
      total: number;
      text: string;
      line: number;
      emulated?: string;
    }
  | { type: 'step-output'; stage: number; step: number; stream: 'stdout' | 'stderr'; data: Buffer }
  /**
   * Why the step is not a cache hit — what changed since the last build of the same step on this
   * store (cache/explain.ts) — or, for a hit, which record it came from (`record`: `local` or the
   * --cache-from reference). Once per step, before `step-cached` or the step's output.
   */
  | {
      type: 'explain';
      stage: number;
      step: number;
      cached: boolean;
      reason: ExplainReason;
      text: string;
      changes: string[];
      record?: string;
      causeStep?: number;
    }
  /** The step's result comes from the build cache (its `step-done` follows). */
  | { type: 'step-cached'; stage: number; step: number }
  | { type: 'step-done'; stage: number; step: number; ms: number; layer?: { digest: string; size: number } }
  /**
   * The step failed; the build fails with this error right after. `canceled`: it did not fail of
   * itself, it was stopped because a step of another stage failed first (BuildKit's CANCELED).
   */
  | { type: 'step-error'; stage: number; step: number; ms: number; message: string; exitCode?: number; canceled?: true }
  | { type: 'stage-done'; stage: number; ms: number }
  | { type: 'warning'; message: string; stage?: number; step?: number }
  /** How the first RUN step was isolated (once per build; sandbox/isolation.ts describes each mode). */
  | {
      type: 'sandbox';
      mode: string;
      backend: string;
      snapshotter: string;
      /** Why overlayfs could not be mounted (fuse-overlayfs or the native snapshotter was chosen for it). */
      overlayRefused?: string;
      /** Why fuse-overlayfs could not be mounted either (the native snapshotter was chosen for it). */
      fuseRefused?: string;
      description: string;
    }
  /**
   * Progress of pulling an image (a base or a `--from` image): one event per update of a layer
   * (`layer` is its digest; `current`/`total` in bytes), and one without `layer` with `done` when
   * the whole image is in the store.
   */
  | { type: 'pull'; ref: string; layer?: string; current: number; total: number; done: boolean; stage?: number }
  /**
   * size: the bytes of the image's files, as `docker images` counts them. compressedSize: its
   * layers' compressed bytes (what a pull downloads), when every layer is compressed.
   */
  | {
      type: 'done';
      imageId: string;
      manifestDigest: string;
      ms: number;
      layers: number;
      size: number;
      compressedSize?: number;
    };

export type EventSink = (e: BuildEvent) => void;

/** Every event type, in the order a build gives them (docs/progress-json.md documents each). */
export const BUILD_EVENT_TYPES = [
  'plan',
  'stage-start',
  'step-start',
  'explain',
  'step-output',
  'step-cached',
  'step-done',
  'step-error',
  'stage-done',
  'warning',
  'sandbox',
  'pull',
  'done',
] as const satisfies readonly BuildEvent['type'][];
// A type added to BuildEvent but not to the list above fails to compile here.
const allListed: [Exclude<BuildEvent['type'], (typeof BUILD_EVENT_TYPES)[number]>] extends [never] ? true : false =
  true;
void allListed;

/** What the registry client reports while pulling (structural: registry/ owns the real type). */
export type TransferProgress =
  | { type: 'resolved'; ref: string; digest: string; layers: { digest: string; size: number }[] }
  | { type: 'blob'; digest: string; state: string; current: number; total: number }
  | { type: string };

/**
 * An `onProgress` callback for the registry's pull that turns its reports into `pull` events, and
 * `finish()` to call once the image is in the store.
 */
export function pullProgress(
  ref: string,
  emit: EventSink,
  stage?: number,
): { onProgress: (e: TransferProgress) => void; finish: () => void } {
  const sizes = new Map<string, { current: number; total: number }>();
  const at = stage === undefined ? {} : { stage };
  const totals = () => {
    let current = 0;
    let total = 0;
    for (const s of sizes.values()) {
      current += s.current;
      total += s.total;
    }
    return { current, total };
  };
  return {
    onProgress(e) {
      if (e.type === 'resolved' && 'layers' in e) {
        for (const l of e.layers) if (!sizes.has(l.digest)) sizes.set(l.digest, { current: 0, total: l.size });
        return;
      }
      if (e.type !== 'blob' || !('digest' in e)) return;
      const done = e.state === 'done' || e.state === 'present' || e.state === 'exists' || e.state === 'mounted';
      const total = e.total || sizes.get(e.digest)?.total || 0;
      const current = done ? total : e.current;
      sizes.set(e.digest, { current, total });
      emit({ type: 'pull', ref, layer: e.digest, current, total, done, ...at });
    },
    finish() {
      const t = totals();
      emit({ type: 'pull', ref, current: t.total, total: t.total, done: true, ...at });
    },
  };
}

/** The `plan` event's description of a stage. */
export function planStageInfo(stage: PlannedStage): PlanStageInfo {
  const base =
    stage.base.kind === 'image'
      ? stage.base.ref
      : stage.base.kind === 'stage'
        ? `stage ${stage.base.index}`
        : 'scratch';
  return {
    stage: stage.index,
    ...(stage.name !== undefined ? { name: stage.name } : {}),
    base,
    steps: [...(stage.onbuild ?? []), ...stage.instructions].map((p) => ({
      text: p.instruction.original,
      line: p.instruction.range.start.line,
    })),
  };
}

/** A failed RUN's exit code, which the engine attaches to its error as `stepExitCode`. */
export function stepExit(e: unknown): { exitCode?: number } {
  const code = (e as { stepExitCode?: unknown } | null)?.stepExitCode;
  return typeof code === 'number' ? { exitCode: code } : {};
}
