/**
 * The resolved build: what `kiln plan` prints and the build engine executes. Stable schema
 * (docs/plan-schema.md); bump PLAN_SCHEMA_VERSION on any incompatible change.
 */
import { type Instruction, type Position, type Warning } from '../dockerfile/index.js';

export const PLAN_SCHEMA_VERSION = 1;

/** What FROM names, after expanding the global ARGs. */
export type StageBase =
  | { kind: 'image'; ref: string } // an external image (name after expansion, as written)
  | { kind: 'stage'; index: number } // FROM <earlier stage> (its ENV and ARGs are inherited)
  | { kind: 'scratch' };

/** Where a `COPY --from` / `RUN --mount from=` points after resolution. */
export type SourceRef = { kind: 'stage'; index: number } | { kind: 'image'; ref: string };

export interface PlannedInstruction {
  /**
   * The instruction as parsed (words unexpanded). The engine reads it once with the stage's
   * variables at build time (engine/expand-step.ts) and executes that.
   */
  instruction: Instruction;
  /**
   * The instruction as text, with every word BuildKit expands expanded with what is known at plan
   * time (`expandInstruction`); a name that may come from the base image's ENV stays as written.
   */
  expanded: string;
  /**
   * For COPY/ADD --from and RUN --mount from=: what they resolved to, in the order of the flags
   * (for RUN: the mounts that have a from=). Resolved with the stage's ARGs (beyond BuildKit).
   */
  sources?: SourceRef[];
}

export interface PlannedStage {
  index: number;
  /** Stage name as written in `AS name` (matching is case-insensitive). */
  name?: string;
  position: Position;
  base: StageBase;
  /** FROM --platform after expansion (normalized: linux/arm64, not linux/aarch64). */
  platform?: string;
  /**
   * The platform the stage is built for, as BuildKit decides it: its FROM --platform, else the
   * platform of the stage it is based on, else the build's target. It picks the base image's
   * manifest from an index and is the architecture its RUN steps execute (emulated when foreign).
   */
  runsOn: string;
  /** Stages this one needs (base stage, COPY --from, mounts), sorted. */
  dependsOn: number[];
  /** External images used by COPY --from / RUN --mount from= (not the base). */
  images: string[];
  /** Needed for the target (transitively); skipped stages are never built. */
  needed: boolean;
  /**
   * For a stage based on another stage: that stage's ONBUILD triggers, which BuildKit runs first
   * in this stage (their --from sources are in dependsOn). Absent when there are none.
   */
  onbuild?: PlannedInstruction[];
  /** The stage's instructions after FROM, in order. */
  instructions: PlannedInstruction[];
}

export interface BuildPlan {
  schemaVersion: typeof PLAN_SCHEMA_VERSION;
  file: string;
  /** The `# syntax=` directive as written (kiln reads every file as docker/dockerfile:1; see dockerfile/syntax.ts). */
  syntax?: string;
  /** Index of the target stage (--target, or the last stage). */
  target: number;
  stages: PlannedStage[];
  /** Needed stages in an order where each comes after what it depends on. */
  order: number[];
  /**
   * Needed stages grouped in waves: every stage of a wave depends only on earlier waves, so the
   * stages of one wave can run in parallel.
   */
  waves: number[][];
  /** ARGs declared before the first FROM, with their values after --build-arg. */
  globalArgs: { name: string; value?: string }[];
  /** The effective --build-arg values. */
  buildArgs: Record<string, string>;
  /** --build-arg names no ARG declares (a warning, as docker gives). */
  unusedBuildArgs: string[];
  warnings: Warning[];
  platform: { target: string; build: string };
}
