/**
 * A stage being built (its config, layers and shell), what the steps that write layers share
 * (COPY/ADD in copy-step.ts, WORKDIR in workdir-step.ts, RUN in run-step.ts): the build's options
 * and services, appending a layer or a history entry, a view of the stage's file system.
 */
import type { BuildContext, WalkListings } from '../context/index.js';
import { type ClientOptions } from '../registry/index.js';
import { type Compression, type Descriptor, type HistoryEntry } from '../image/index.js';
import { type LayerInfo, layerSkeleton, tarEntries, type EntrySpec } from '../layer/index.js';
import { type PlannedStage } from '../plan/index.js';
import {
  type Destination,
  dirFs,
  layeredDestination,
  openView,
  pathsAreLinkFree,
  topOf,
  type View,
  type BackendKind,
  type SnapshotterKind,
  type Ulimit,
} from '../sandbox/index.js';
import { type Store } from '../store/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import type { BackgroundJobs } from './background.js';
import type { BuildImages } from './base-image.js';
import type { CopyPlan } from './copy.js';
import type { ConfigState } from './config-step.js';
import type { EventSink } from './events.js';
import type { SecretSource, SshSource } from './run-flags.js';
import type { LeftSourceViews } from './source-views.js';

/** A stage's state between steps (what the cache records, plus the ARG names). */
export interface StageState extends ConfigState {
  layers: Descriptor[];
}

/** The build options the steps read (engine.ts's BuildOptions has them all). */
export interface StepOptions {
  store: Store;
  network?: 'host' | 'none';
  snapshotter?: SnapshotterKind;
  backend?: BackendKind;
  /** The OCI runtime of RUN steps (name or path). */
  runtime?: string;
  layerCompression?: Compression;
  compressionLevel?: number;
  extraHosts?: [string, string][];
  shmSize?: number;
  ulimits?: Ulimit[];
  signal?: AbortSignal;
  sourceDateEpoch?: number;
  registry?: ClientOptions;
  secrets?: SecretSource[];
  ssh?: SshSource[];
  /** A failing RUN: fail the build (default), or keep its state for `kiln debug` first (kept-step.ts). */
  onError?: 'fail' | 'keep';
  /** The Dockerfile's path (a kept step's .dockerignore). */
  dockerfilePath?: string;
}

/** What a step that writes layers uses from the build. */
export interface StepEnv {
  readonly o: StepOptions;
  readonly ctx: BuildContext;
  /** External images (COPY --from, from=): from the store, or pulled. */
  readonly images: BuildImages;
  readonly emit: EventSink;
  /** A stage's final state (built once; waits for it). */
  stageResult(n: number): Promise<StageState>;
  /** A stage's name (AS …), if it has one. */
  stageName(n: number): string | undefined;
  /** What walks of the file system of these layers found (by chain id): a `COPY --from` key's walk serves the copy. */
  walkListings(chain: string): WalkListings;
  /** Work a step leaves to finish while the next steps run (a COPY's provenance record): background.ts. */
  readonly background: BackgroundJobs;
  /** A `COPY/ADD --from` key's view of its source, left for the step's copy (source-views.ts). */
  readonly leftViews: LeftSourceViews;
}

/** Where the step is in its stage. */
export interface StepAt {
  stage: PlannedStage;
  /** The step's number in the stage (1-based, ONBUILD triggers first). */
  no: number;
  /**
   * A RUN will need whole snapshots of this stage anyway (a later RUN of it, or another stage built
   * on it): a destination view unpacks them now, once, rather than partly for each step before it.
   */
  snapshotsAhead: boolean;
}

export const MAX_LAYERS = 127;

/** The time of a history entry: SOURCE_DATE_EPOCH's, else now. */
export function historyTime(sourceDateEpoch: number | undefined): string {
  return sourceDateEpoch !== undefined ? new Date(sourceDateEpoch * 1000).toISOString() : new Date().toISOString();
}

/** Append a step's history entry; the config's `created` is the last step's time. */
export function appendHistory(state: StageState, h: HistoryEntry): void {
  (state.config.history ??= []).push(h);
  if (h.created !== undefined) state.config.created = h.created;
}

export function pushLayer(state: StageState, info: LayerInfo, place: ErrorPlace): LayerInfo {
  if (state.layers.length >= MAX_LAYERS)
    throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, place);
  state.layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
  state.config.rootfs.diff_ids.push(info.diffId);
  return info;
}

/** A layer of known entries (COPY, ADD, WORKDIR): where it writes is remembered with it. */
export async function addLayer(
  o: StepOptions,
  state: StageState,
  entries: EntrySpec[],
  place: ErrorPlace,
): Promise<LayerInfo> {
  if (state.layers.length >= MAX_LAYERS)
    throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, place, {
      hint: 'merge RUN steps or use a multi-stage build',
    });
  const tops = [...new Set(entries.map((e) => topOf(e.path)))].sort();
  const opts = { sourceDateEpoch: o.sourceDateEpoch };
  return pushLayer(
    state,
    await o.store.putLayer(tarEntries(entries, opts), {
      compression: o.layerCompression ?? 'none',
      level: o.compressionLevel,
      tops,
      skeleton: layerSkeleton(entries, opts),
    }),
    place,
  );
}

/** A COPY/ADD layer of a plan (copy.ts): its entries written as they are planned, its facts after. */
export async function addPlannedLayer(
  o: StepOptions,
  state: StageState,
  plan: CopyPlan,
  place: ErrorPlace,
): Promise<LayerInfo> {
  if (state.layers.length >= MAX_LAYERS)
    throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, place, {
      hint: 'merge RUN steps or use a multi-stage build',
    });
  const opts = { sourceDateEpoch: o.sourceDateEpoch };
  return pushLayer(
    state,
    await o.store.putLayer(tarEntries(plan.entries, opts), {
      compression: o.layerCompression ?? 'none',
      level: o.compressionLevel,
      factsAfter: () => plan.facts(opts),
    }),
    place,
  );
}

/**
 * The stage's file system for questions about `paths` (a COPY or WORKDIR destination: what is
 * there, its parents, the owner names): read from its layers with no view when they can answer
 * (sandbox/view.ts's layeredDestination), else a view, partial when it can be, whole when a
 * symbolic link on those paths could lead elsewhere. When snapshots are needed ahead, they are
 * made first.
 */
export async function destinationView(
  store: Store,
  state: StageState,
  paths: string[],
  snapshotsAhead: boolean,
): Promise<Destination> {
  const ids = state.config.rootfs.diff_ids;
  const layered = await layeredDestination(store, state.layers, ids, paths, snapshotsAhead);
  if (layered !== undefined && layered !== 'links') return layered;
  const viewFs = (v: View): Destination => ({ fs: dirFs(v.root), close: () => v.close() });
  if (layered === 'links') return viewFs(await openView(store, state.layers, ids));
  const partial = await openView(store, state.layers, ids, { paths, snapshotsAhead });
  // The user and group files too: --chown and USER names are read from them.
  if (await pathsAreLinkFree(partial.root, [...paths, '/etc/passwd', '/etc/group'])) return viewFs(partial);
  await partial.close();
  return viewFs(await openView(store, state.layers, ids));
}
