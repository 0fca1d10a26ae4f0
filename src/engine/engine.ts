/**
 * The build engine: walks the plan, builds the needed stages (independent ones in parallel, each
 * once), runs every instruction — RUN in the sandbox, COPY/ADD straight into layer tars, the rest
 * as config changes — and writes the target stage as an image in the store.
 */
import { BuildImages } from './base-image.js';
import { checkoutGit, parseGitSource } from './add-git.js';
import { type ClientOptions, type TransferEvent } from '../registry/index.js';
import { lstatSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Slots, type Digest, KilnError, type ErrorPlace, resolveChown } from '../util/index.js';
import * as path from 'node:path';
import {
  type CopyInstruction,
  type Dockerfile,
  type Instruction,
  type RunInstruction,
  expandHeredoc,
  expandWord,
  expandWords,
  ExpansionError,
  parsePortSpecs,
  parseDockerfile,
  checkDirective,
  checkSyntax,
  expandMount,
  MountError,
} from '../dockerfile/index.js';
import {
  createPlan,
  shippedStages,
  StageScope,
  platformArgs,
  type BuildPlan,
  type PlannedStage,
  type SourceRef,
} from '../plan/index.js';
import { BuildContext } from '../context/index.js';
import { type LayerInfo, layerSkeleton, tarEntries, type EntrySpec } from '../layer/index.js';
import {
  hostPlatform,
  type Compression,
  type ContainerConfig,
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
} from '../image/index.js';
import { isPlainLayer, type Store, compressedImage, compressionOf } from '../store/index.js';
import {
  blobFromSnapshot,
  openView,
  pathsAreLinkFree,
  resolveInRoot,
  topOf,
  type View,
  DEFAULT_PATH,
  describeIsolation,
  runStep,
  type BackendKind,
  type Mount,
  type SnapshotterKind,
} from '../sandbox/index.js';
import { parentEntries, planCopy, type CopyRequest } from './copy.js';
import { materializeHeredocs, heredocMarker, runArgs } from './heredoc.js';
import { goDuration, goList, goQuoteList, runHistoryText } from './history.js';
import { planStageInfo, pullProgress, stepExit, type EventSink } from './events.js';
import { StepCache, type CacheSink, type CacheSource, type CacheStats } from './cache-step.js';
import { prepareRunMounts, type FromSource, type RunMounts, type SecretSource, type SshSource } from './run-mounts.js';
import { isArchive, unpackArchive } from './add-archive.js';
import { downloadUrl, isHttpUrl } from './add-url.js';
import type { NamedContext } from './named-contexts.js';
import type { Ulimit } from '../sandbox/index.js';

export interface BuildOptions {
  store: Store;
  contextDir: string;
  dockerfileText: string;
  /** Dockerfile name for messages; absolute path for FILE.dockerignore lookup. */
  dockerfileName: string;
  dockerfilePath?: string;
  buildArgs?: Map<string, string>;
  target?: string;
  tags?: string[];
  labels?: Record<string, string>;
  network?: 'host' | 'none';
  platform?: string;
  snapshotter?: SnapshotterKind;
  backend?: BackendKind;
  /**
   * How the layers the build writes are stored (default none: plain tars, as docker's image store
   * keeps them; a push or an export compresses them then, see store/compressed.ts).
   */
  layerCompression?: Compression;
  /** Re-encode the image's layers compressed otherwise (base image, cache) too (BuildKit's force-compression). */
  forceCompression?: boolean;
  /** gzip or zstd level of the layers the build compresses (BuildKit's compression-level). */
  compressionLevel?: number;
  /** --build-context NAME=VALUE: named contexts (build/named-contexts.ts). */
  namedContexts?: NamedContext[];
  /** RUN's sandbox: `--add-host` [name, ip], `--shm-size` bytes, `--ulimit`s. Part of RUN's cache key, as BuildKit's. */
  extraHosts?: [string, string][];
  shmSize?: number;
  ulimits?: Ulimit[];
  signal?: AbortSignal;
  sourceDateEpoch?: number;
  /** Build cache: --no-cache, --no-cache-filter STAGE…, --cache-from, --cache-to (see build/cache-step.ts). */
  noCache?: boolean;
  noCacheFilter?: string[];
  cacheFrom?: CacheSource[];
  cacheTo?: CacheSink[];
  /** Re-resolve external images on their registries (--pull); registry client settings. */
  pull?: boolean;
  registry?: ClientOptions;
  /** Pull progress of external images. */
  onPull?: (ref: string, e: TransferEvent) => void;
  /** Secrets for RUN --mount=type=secret (--secret id=ID,src=FILE|env=VAR; see build/run-mounts.ts). */
  secrets?: SecretSource[];
  /** SSH agent sockets for RUN --mount=type=ssh (--ssh ID[=SOCKET]). */
  ssh?: SshSource[];
}

export interface BuildResult {
  imageId: Digest;
  descriptor: Descriptor;
  plan: BuildPlan;
  size: number;
  cache?: CacheStats;
}

interface StageState {
  config: ImageConfig;
  layers: Descriptor[];
  /** Set when CMD was given in this stage: ENTRYPOINT then keeps it. */
  cmdSet: boolean;
  shell: string[];
  /** ARGs declared in this stage (and the stages it is based on), in order: RUN's history shows them. */
  argNames: string[];
}

const MAX_LAYERS = 127;

export async function build(o: BuildOptions, emit: EventSink = () => undefined): Promise<BuildResult> {
  const t0 = Date.now();
  const df = parseDockerfile(o.dockerfileText, { file: o.dockerfileName });
  const syntax = checkSyntax(df.directives.syntax);
  const syntaxLine = Math.max(1, df.lines.findIndex((l) => /^\s*#\s*syntax\s*=/i.test(l)) + 1);
  if (syntax.kind === 'error')
    throw new KilnError(
      'BUILD',
      syntax.message,
      { file: df.file, line: syntaxLine, source: df.lines[syntaxLine - 1] ?? '' },
      { hint: syntax.hint },
    );
  const platform = o.platform ?? 'linux/amd64';
  const plan = createPlan(df, {
    buildArgs: o.buildArgs,
    target: o.target,
    platform,
    namedContexts: o.namedContexts?.map((c) => c.name),
  });
  emit({ type: 'plan', target: plan.target, stages: plan.order.map((n) => planStageInfo(plan.stages[n]!)) });
  if (syntax.kind === 'warning') emit({ type: 'warning', message: `${plan.file}:${syntaxLine}: ${syntax.message}` });
  // A warning that is a build check `# check=skip=` names is not shown (BuildKit).
  const skipped = checkDirective(df).skip;
  for (const w of plan.warnings)
    if (!(w.rule && (skipped.has(w.rule) || skipped.has('all'))))
      emit({ type: 'warning', message: `${w.line !== undefined ? `${plan.file}:${w.line}: ` : ''}${w.message}` });
  const ctx = BuildContext.open(o.contextDir, { dockerfile: o.dockerfilePath });
  const engine = new Engine(o, df, plan, ctx, emit);
  const results = new Map<number, Promise<StageState>>();
  const stageResult = (n: number): Promise<StageState> => {
    let p = results.get(n);
    if (!p) {
      p = engine.buildStage(plan.stages[n]!, stageResult);
      results.set(n, p);
    }
    return p;
  };
  // Every needed stage starts at once, as BuildKit's solver does: a stage waits for another only
  // at the step that uses it (FROM, COPY --from, RUN --mount from=), so a final stage's own early
  // steps overlap its builders. RUN steps, the CPU-heavy part, are bounded by the CPU count.
  await Promise.all(plan.order.map(stageResult));
  const final = await stageResult(plan.target);
  await engine.cache.finish();
  const config = structuredClone(final.config);
  if (o.labels && Object.keys(o.labels).length)
    config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...o.labels } };
  const written = await o.store.writeImage(config, await engine.shippedLayers(final));
  // Layers from the cache or a base image compressed otherwise are re-encoded where asked.
  const img = await compressedImage(
    o.store,
    { descriptor: written.descriptor, manifest: written.manifest, config, id: written.id },
    { compression: o.layerCompression ?? 'none', force: o.forceCompression, level: o.compressionLevel },
  );
  for (const t of o.tags ?? []) await o.store.setTag(t, img.descriptor);
  const sizes = await o.store.imageSizes(img);
  const size = sizes.content;
  const compressed =
    img.manifest.layers.length > 0 &&
    img.manifest.layers.every((l) => {
      const c = compressionOf(l.mediaType);
      return c !== undefined && c !== 'none';
    });
  emit({
    type: 'done',
    imageId: img.id,
    manifestDigest: img.descriptor.digest,
    ms: Date.now() - t0,
    layers: final.layers.length,
    size,
    ...(compressed ? { compressedSize: sizes.blobs } : {}),
  });
  return { imageId: img.id, descriptor: img.descriptor, plan, size, cache: engine.cache.stats };
}

class Engine {
  private readonly automatic: Record<string, string>;
  private readonly globals: Map<string, string | undefined>;
  /** Each built stage's variables at its end: what a stage based on it starts with. */
  private readonly scopes = new Map<number, StageScope>();
  readonly cache: StepCache;
  /** External images (FROM, COPY --from): from the store, or pulled. */
  readonly images: BuildImages;
  /** Pulls in progress, by reference: their `pull` events. */
  private readonly pulls = new Map<string, ReturnType<typeof pullProgress>>();
  /** RUN steps at once, across stages: one per CPU. */
  private readonly runSlots = new Slots(availableParallelism());
  /**
   * Stages whose layers the image is made of: the target and the stages it is based on. The other
   * stages' RUN layers are kept as snapshots only: no image ships them, so compressing them into
   * blobs would be wasted (BuildKit does not either). A cache export needs blobs of every stage.
   */
  private readonly shipped: Set<number>;
  /** The sandbox event was sent (once, after the first RUN). */
  private sandboxShown = false;

  constructor(
    private readonly o: BuildOptions,
    private readonly df: Dockerfile,
    private readonly plan: BuildPlan,
    private readonly ctx: BuildContext,
    private readonly emit: EventSink,
  ) {
    this.automatic = platformArgs(plan.platform.target, plan.platform.build);
    this.globals = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
    // Pulls show in the build's progress as `pull` events (and go to onPull as they come).
    this.images = new BuildImages({
      store: o.store,
      namedContexts: o.namedContexts,
      pull: o.pull,
      registry: o.registry,
      onProgress: (ref, e) => {
        o.onPull?.(ref, e);
        let p = this.pulls.get(ref);
        if (!p) this.pulls.set(ref, (p = pullProgress(ref, emit)));
        p.onProgress(e);
      },
      onPulled: (ref) => {
        this.pulls.get(ref)?.finish();
        this.pulls.delete(ref);
      },
    });
    this.shipped = new Set(shippedStages(plan));
    this.cache = new StepCache({
      store: o.store,
      ctx,
      plan,
      escape: df.directives.escape,
      platform: plan.platform.target,
      sourceDateEpoch: o.sourceDateEpoch,
      network: o.network,
      noCache: o.noCache,
      noCacheFilter: o.noCacheFilter,
      from: o.cacheFrom,
      to: o.cacheTo,
      image: (ref) => this.images.get(ref, {}),
      runSandbox: runSandboxKey(o),
    });
  }

  private place(ins: Instruction): ErrorPlace {
    const line = ins.range.start.line;
    return { file: this.df.file, line, column: ins.range.start.column, source: this.df.lines[line - 1] ?? '' };
  }

  private expand(word: string, scope: StageScope, ins: Instruction): string {
    try {
      return expandWord(word, scope.lookup, { escape: this.df.directives.escape });
    } catch (e) {
      if (e instanceof ExpansionError) throw new KilnError('BUILD', e.message, this.place(ins));
      throw e;
    }
  }

  private expandBody(body: string, scope: StageScope, ins: Instruction): string {
    try {
      return expandHeredoc(body, scope.lookup);
    } catch (e) {
      if (e instanceof ExpansionError) throw new KilnError('BUILD', e.message, this.place(ins));
      throw e;
    }
  }

  private expandFields(word: string, scope: StageScope, ins: Instruction): string[] {
    try {
      return expandWords(word, scope.lookup, { escape: this.df.directives.escape });
    } catch (e) {
      if (e instanceof ExpansionError) throw new KilnError('BUILD', e.message, this.place(ins));
      throw e;
    }
  }

  async buildStage(stage: PlannedStage, stageResult: (n: number) => Promise<StageState>): Promise<StageState> {
    const t0 = Date.now();
    let state: StageState;
    const baseLabel =
      stage.base.kind === 'image'
        ? stage.base.ref
        : stage.base.kind === 'stage'
          ? `stage ${stage.base.index}`
          : 'scratch';
    this.emit({ type: 'stage-start', stage: stage.index, name: stage.name, base: baseLabel });
    if (stage.base.kind === 'stage') {
      state = structuredClone(await stageResult(stage.base.index));
      state.cmdSet = false;
    } else if (stage.base.kind === 'scratch') {
      const p = hostPlatform();
      // BuildKit's empty image: WorkingDir "/" (and the default PATH, added below).
      state = {
        config: {
          architecture: p.architecture,
          os: p.os,
          config: { WorkingDir: '/' },
          rootfs: { type: 'layers', diff_ids: [] },
          history: [],
        },
        layers: [],
        cmdSet: false,
        shell: ['/bin/sh', '-c'],
        argNames: [],
      };
    } else {
      const ref = stage.base.ref;
      const img = await this.images.get(ref, this.placeOfStage(stage));
      const config = structuredClone(img.config);
      config.history ??= [];
      state = {
        config,
        layers: [...img.manifest.layers],
        cmdSet: false,
        shell: config.config?.Shell ?? ['/bin/sh', '-c'],
        argNames: [],
      };
    }
    // A base without PATH (e.g. an imported rootfs) gets the default one, as BuildKit does: in the
    // stage's ENV (so `ENV PATH=/x:$PATH` works) and in the image.
    if (!(state.config.config?.Env ?? []).some((e) => e.startsWith('PATH='))) this.setEnv(state, 'PATH', DEFAULT_PATH);
    // A stage based on another stage carries on with its variables (ENV and ARGs), as BuildKit.
    const parentScope = stage.base.kind === 'stage' ? this.scopes.get(stage.base.index) : undefined;
    const scope = parentScope
      ? parentScope.child()
      : new StageScope(
          this.globals,
          this.o.buildArgs ?? new Map(),
          this.automatic,
          (state.config.config?.Env ?? []).map(
            (e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string],
          ),
        );
    // ONBUILD triggers of the base run first, then are cleared: a base stage's as the planner
    // resolved them (their --from sources are known), an image's parsed from its config.
    const triggers: Instruction[] =
      stage.base.kind === 'stage'
        ? (stage.onbuild ?? []).map((p) => p.instruction)
        : (state.config.config?.OnBuild ?? []).map((t) => this.parseTrigger(t, stage));
    if (state.config.config) state.config.config.OnBuild = null;
    const instructions: Instruction[] = [...triggers, ...stage.instructions.map((p) => p.instruction)];
    for (const [i, ins] of instructions.entries()) {
      if (this.o.signal?.aborted) throw new KilnError('BUILD', 'build interrupted');
      const st = Date.now();
      this.emit({
        type: 'step-start',
        stage: stage.index,
        step: i + 1,
        total: instructions.length,
        text: ins.original,
        line: ins.range.start.line,
      });
      let layer: LayerInfo | undefined;
      try {
        const cached = await this.cache.lookup(ins, state, scope, stage, stageResult);
        if (cached.record) {
          if (cached.replayScope) await this.step(ins, state, scope, stage, stageResult, i + 1);
          this.cache.restore(cached, state);
          this.emit({ type: 'step-cached', stage: stage.index, step: i + 1 });
          layer = cached.record.layer;
        } else {
          layer = await this.step(ins, state, scope, stage, stageResult, i + 1);
          await this.cache.record(cached, state, layer);
        }
      } catch (e) {
        this.emit({
          type: 'step-error',
          stage: stage.index,
          step: i + 1,
          ms: Date.now() - st,
          message: e instanceof Error ? e.message : String(e),
          ...stepExit(e),
        });
        throw e;
      }
      this.emit({
        type: 'step-done',
        stage: stage.index,
        step: i + 1,
        ms: Date.now() - st,
        layer: layer ? { digest: layer.digest, size: layer.size } : undefined,
      });
    }
    this.emit({ type: 'stage-done', stage: stage.index, ms: Date.now() - t0 });
    this.scopes.set(stage.index, scope);
    return state;
  }

  /** An ONBUILD trigger of a base image, parsed as one instruction (errors name the FROM line). */
  private parseTrigger(text: string, stage: PlannedStage): Instruction {
    const place = this.placeOfStage(stage);
    let ins: Instruction | undefined;
    try {
      ins = parseDockerfile(text, { file: `${this.df.file} (ONBUILD of the base image)` }).instructions[0];
    } catch (e) {
      throw new KilnError(
        'BUILD',
        `invalid ONBUILD trigger of the base image "${text}": ${(e as Error).message}`,
        place,
      );
    }
    if (!ins) throw new KilnError('BUILD', `empty ONBUILD trigger in the base image`, place);
    if (['FROM', 'ONBUILD', 'MAINTAINER'].includes(ins.kind))
      throw new KilnError('BUILD', `${ins.kind} isn't allowed as an ONBUILD trigger`, place);
    // Report it at the FROM line: the trigger has no line of its own in this Dockerfile.
    return { ...ins, range: { start: stage.position, endLine: stage.position.line } } as Instruction;
  }

  /**
   * A --from / from= the planner did not see (an ONBUILD trigger of a base image): a stage built
   * before this one, by name or index, else an image.
   */
  private resolveFrom(value: string, stage: PlannedStage, place: ErrorPlace): SourceRef {
    const named = this.plan.stages.find((s) => s.name !== undefined && s.name.toLowerCase() === value.toLowerCase());
    const index = named?.index ?? (/^\d+$/.test(value) ? Number(value) : undefined);
    if (index === undefined) return { kind: 'image', ref: value };
    if (index >= stage.index)
      throw new KilnError('BUILD', `--from=${value}: a stage can only use stages defined before it`, place);
    return { kind: 'stage', index };
  }

  private placeOfStage(stage: PlannedStage): ErrorPlace {
    return {
      file: this.df.file,
      line: stage.position.line,
      column: stage.position.column,
      source: this.df.lines[stage.position.line - 1] ?? '',
    };
  }

  private cfg(state: StageState): ContainerConfig {
    state.config.config ??= {};
    return state.config.config;
  }

  private history(state: StageState, createdBy: string, empty: boolean): void {
    const created =
      this.o.sourceDateEpoch !== undefined
        ? new Date(this.o.sourceDateEpoch * 1000).toISOString()
        : new Date().toISOString();
    const h: HistoryEntry = { created, created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
    if (empty) h.empty_layer = true;
    (state.config.history ??= []).push(h);
    state.config.created = created;
  }

  /** A layer of known entries (COPY, ADD, WORKDIR): where it writes is remembered with it. */
  private async addLayer(state: StageState, entries: EntrySpec[], ins: Instruction): Promise<LayerInfo> {
    if (state.layers.length >= MAX_LAYERS)
      throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, this.place(ins), {
        hint: 'merge RUN steps or use a multi-stage build',
      });
    const tops = [...new Set(entries.map((e) => topOf(e.path)))].sort();
    const opts = { sourceDateEpoch: this.o.sourceDateEpoch };
    return this.pushLayer(
      state,
      await this.o.store.putLayer(tarEntries(entries, opts), {
        compression: this.compression,
        level: this.o.compressionLevel,
        tops,
        skeleton: layerSkeleton(entries, opts),
      }),
      ins,
    );
  }

  /**
   * A view of the stage's file system for questions about `paths` (a COPY or WORKDIR destination:
   * what is there, its parents, the owner names): partial when it can be (sandbox/view.ts), whole
   * when a symbolic link on those paths could lead elsewhere.
   */
  private async destinationView(
    state: StageState,
    paths: string[],
    stage: PlannedStage,
    ins: Instruction,
  ): Promise<View> {
    const ids = state.config.rootfs.diff_ids;
    // Where a RUN will need whole snapshots anyway (a later RUN of this stage, or another stage
    // built on it), unpack them now, once, rather than partly for each step before it.
    const at = stage.instructions.findIndex((p) => p.instruction === ins);
    const snapshotsAhead =
      stage.index !== this.plan.target ||
      at < 0 ||
      stage.instructions.slice(at + 1).some((p) => p.instruction.kind === 'RUN');
    if (snapshotsAhead) return openView(this.o.store, state.layers, ids);
    const partial = await openView(this.o.store, state.layers, ids, { paths });
    // The user and group files too: --chown and USER names are read from them.
    if (await pathsAreLinkFree(partial.root, [...paths, '/etc/passwd', '/etc/group'])) return partial;
    await partial.close();
    return openView(this.o.store, state.layers, ids);
  }

  /** The final state's layers as blobs: a snapshot-only layer (from a cache hit) is encoded now. */
  async shippedLayers(state: StageState): Promise<Descriptor[]> {
    const ids = state.config.rootfs.diff_ids;
    return Promise.all(
      state.layers.map(async (l, i) => {
        if (!isPlainLayer(l, ids[i]) || (await this.o.store.hasBlob(l.digest))) return l;
        const info = await blobFromSnapshot(
          this.o.store,
          ids.slice(0, i + 1),
          this.compression,
          this.o.compressionLevel,
        );
        return { mediaType: info.mediaType, digest: info.digest, size: info.size };
      }),
    );
  }

  private get compression(): Compression {
    return this.o.layerCompression ?? 'none';
  }

  private pushLayer(state: StageState, info: LayerInfo, ins: Instruction): LayerInfo {
    if (state.layers.length >= MAX_LAYERS)
      throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, this.place(ins));
    state.layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
    state.config.rootfs.diff_ids.push(info.diffId);
    return info;
  }

  private envList(state: StageState): string[] {
    return state.config.config?.Env ?? [];
  }

  /** A variable set again keeps its place in the list (BuildKit's addEnv); a new one goes last. */
  private setEnv(state: StageState, key: string, value: string): void {
    const env = [...this.envList(state)];
    const at = env.findIndex((e) => e.startsWith(`${key}=`));
    if (at >= 0) env[at] = `${key}=${value}`;
    else env.push(`${key}=${value}`);
    this.cfg(state).Env = env;
  }

  private async step(
    ins: Instruction,
    state: StageState,
    scope: StageScope,
    stage: PlannedStage,
    stageResult: (n: number) => Promise<StageState>,
    stepNo: number,
  ): Promise<LayerInfo | undefined> {
    const x = (w: string) => this.expand(w, scope, ins);
    const c = () => this.cfg(state);
    // `CMD []` and `ENTRYPOINT []` unset the value (null), as BuildKit's nil slice: docker treats
    // an empty list otherwise when a user passes arguments.
    const cmdForm = (f: { form: 'exec'; args: string[] } | { form: 'shell'; command: string }) =>
      f.form === 'exec' ? (f.args.length ? f.args : null) : [...state.shell, f.command];
    switch (ins.kind) {
      case 'ARG': {
        // History shows each ARG with the value it took (a --build-arg, the expanded default, the
        // global or automatic value), as BuildKit.
        const parts: string[] = [];
        for (const a of ins.args) {
          let shown: string | undefined;
          scope.declareArg(a.name, a.default !== undefined ? () => (shown = x(a.default!)) : undefined);
          if (this.o.buildArgs?.has(a.name)) shown = this.o.buildArgs.get(a.name);
          else if (a.default === undefined)
            shown =
              this.globals.get(a.name) ?? (Object.hasOwn(this.automatic, a.name) ? this.automatic[a.name] : undefined);
          if (!state.argNames.includes(a.name)) state.argNames.push(a.name);
          parts.push(shown === undefined ? a.name : `${a.name}=${shown}`);
        }
        this.history(state, `ARG ${parts.join(' ')}`, true);
        return undefined;
      }
      case 'ENV': {
        const vals = ins.pairs.map((p) => [x(p.key), x(p.value)] as const);
        for (const [k, v] of vals) {
          scope.setEnv(k, v);
          this.setEnv(state, k, v);
        }
        this.history(state, `ENV ${vals.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
        return undefined;
      }
      case 'LABEL': {
        const labels = (c().Labels ??= {});
        for (const p of ins.pairs) labels[x(p.key)] = x(p.value);
        this.history(state, `LABEL ${ins.pairs.map((p) => `${x(p.key)}=${x(p.value)}`).join(' ')}`, true);
        return undefined;
      }
      case 'MAINTAINER':
        state.config.author = ins.name;
        this.history(state, `MAINTAINER ${ins.name}`, true);
        return undefined;
      case 'EXPOSE': {
        const ports = (c().ExposedPorts ??= {});
        let specs: string[];
        try {
          specs = parsePortSpecs(ins.ports.flatMap((p) => this.expandFields(p, scope, ins)));
        } catch (e) {
          throw new KilnError('BUILD', `EXPOSE: ${(e as Error).message}`, this.place(ins), {
            hint: 'EXPOSE PORT[/tcp|udp|sctp] or a range 8000-8010',
          });
        }
        for (const p of specs) ports[p] = {};
        this.history(state, `EXPOSE ${goList(specs)}`, true);
        return undefined;
      }
      case 'VOLUME': {
        const vols = (c().Volumes ??= {});
        for (const v of ins.paths.map(x)) vols[v] = {};
        this.history(state, `VOLUME ${goList(ins.paths.map(x))}`, true);
        return undefined;
      }
      case 'USER':
        c().User = x(ins.user);
        this.history(state, `USER ${c().User}`, true);
        return undefined;
      case 'STOPSIGNAL':
        c().StopSignal = x(ins.signal);
        this.history(state, `STOPSIGNAL ${c().StopSignal}`, true);
        return undefined;
      case 'SHELL':
        state.shell = ins.shell;
        c().Shell = ins.shell;
        this.history(state, `SHELL ${goList(ins.shell)}`, true);
        return undefined;
      case 'CMD':
        c().Cmd = cmdForm(ins.command);
        state.cmdSet = true;
        this.history(state, `CMD ${goQuoteList(c().Cmd ?? [])}`, true);
        return undefined;
      case 'ENTRYPOINT':
        c().Entrypoint = cmdForm(ins.command);
        // An ENTRYPOINT set in a stage clears the CMD inherited from the base (docker's rule).
        if (!state.cmdSet) c().Cmd = null;
        this.history(state, `ENTRYPOINT ${goQuoteList(c().Entrypoint ?? [])}`, true);
        return undefined;
      case 'HEALTHCHECK': {
        if (ins.none) c().Healthcheck = { Test: ['NONE'] };
        else {
          const cmd = ins.command!;
          c().Healthcheck = {
            Test: cmd.form === 'exec' ? ['CMD', ...cmd.args] : ['CMD-SHELL', cmd.command],
            ...(ins.interval !== undefined ? { Interval: ins.interval } : {}),
            ...(ins.timeout !== undefined ? { Timeout: ins.timeout } : {}),
            ...(ins.startPeriod !== undefined ? { StartPeriod: ins.startPeriod } : {}),
            ...(ins.startInterval !== undefined ? { StartInterval: ins.startInterval } : {}),
            ...(ins.retries !== undefined ? { Retries: ins.retries } : {}),
          };
        }
        const h = c().Healthcheck!;
        const d = (n: number | undefined) => goDuration(n ?? 0);
        this.history(
          state,
          `HEALTHCHECK {Test:${goList(h.Test ?? [])} Interval:${d(h.Interval)} Timeout:${d(h.Timeout)} StartPeriod:${d(h.StartPeriod)} StartInterval:${d(h.StartInterval)} Retries:${h.Retries ?? 0}}`,
          true,
        );
        return undefined;
      }
      case 'ONBUILD':
        // Stored for the images built on this one; BuildKit writes no history entry for it.
        (c().OnBuild ??= []).push(ins.expression);
        return undefined;
      case 'WORKDIR': {
        // BuildKit's NormalizeWorkdir: an absolute path is kept as written (`/w2/` keeps its
        // slash in the config and the history), a relative one is joined to the current one
        // (and so cleaned). The directory made is the clean path.
        const given = x(ins.path);
        const wd = given.startsWith('/') ? given : path.posix.resolve(c().WorkingDir || '/', given);
        const dir = path.posix.resolve(wd);
        c().WorkingDir = wd;
        // Created if missing, owned by the current USER (as BuildKit does).
        const view = await this.destinationView(state, [dir], stage, ins);
        const entries: EntrySpec[] = [];
        try {
          const real = await resolveInRoot(view.root, dir);
          // BuildKit's mkdir takes USER as a file operation's owner (--chown rules: "1000" is 1000:1000).
          const owner = c().User ? resolveChown(view.root, c().User!) : { uid: 0, gid: 0 };
          const mtime = this.o.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
          for (let d = real; d !== '' && d !== '.'; d = path.posix.dirname(d) === '.' ? '' : path.posix.dirname(d)) {
            if (pathExists(view.root, d)) break;
            entries.unshift({ path: d, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime });
          }
          // Its existing parents go in the layer as they are (else an unpacker makes them root's).
          if (entries.length) entries.unshift(...parentEntries(view.root, [entries[0]!.path], owner, mtime));
        } finally {
          await view.close();
        }
        if (entries.length === 0) {
          this.history(state, `WORKDIR ${wd}`, true);
          return undefined;
        }
        const l = await this.addLayer(state, entries, ins);
        this.history(state, `WORKDIR ${wd}`, false);
        return l;
      }
      case 'COPY':
      case 'ADD':
        return this.copy(ins, state, scope, stage, stageResult);
      case 'RUN':
        return this.run(ins, state, scope, stage, stepNo, stageResult);
      case 'FROM':
        throw new KilnError('INTERNAL', 'FROM inside a stage');
    }
    return undefined;
  }

  private async copy(
    ins: CopyInstruction,
    state: StageState,
    scope: StageScope,
    stage: PlannedStage,
    stageResult: (n: number) => Promise<StageState>,
  ): Promise<LayerInfo | undefined> {
    const x = (w: string) => this.expand(w, scope, ins);
    const store = this.o.store;
    const place = this.place(ins);
    // Heredoc sources (`<<EOF`) are not words to expand; their bodies are, unless quoted.
    const heredocSources = ins.sources.filter((s) => heredocMarker(s) !== undefined);
    const pathSources = ins.sources.filter((s) => heredocMarker(s) === undefined).map(x);
    const planned = [...(stage.onbuild ?? []), ...stage.instructions].find((p) => p.instruction === ins);
    let srcView: { root: string; close(): Promise<void> } | undefined;
    let srcCtx = this.ctx;
    let keepOwner = false;
    if (ins.from !== undefined) {
      const src = planned?.sources?.[0] ?? this.resolveFrom(x(ins.from), stage, place);
      if (src.kind === 'stage') {
        const s = await stageResult(src.index);
        srcView = await openView(store, s.layers, s.config.rootfs.diff_ids);
      } else {
        const img = await this.images.get(src.ref, place);
        srcView = await openView(store, img.manifest.layers, img.config.rootfs.diff_ids);
      }
      srcCtx = BuildContext.plain(srcView.root);
      keepOwner = true;
    }
    // --parents reads the destination below its root too: a whole view then.
    const destAbs = path.posix.resolve(this.cfg(state).WorkingDir || '/', x(ins.dest));
    const destView = ins.parents
      ? await openView(store, state.layers, state.config.rootfs.diff_ids)
      : await this.destinationView(state, [destAbs], stage, ins);
    const cleanups: string[] = [];
    try {
      const owner = ins.chown !== undefined ? resolveChown(destView.root, x(ins.chown)) : undefined;
      let chmod: number | undefined;
      if (ins.chmod !== undefined) {
        const m = x(ins.chmod);
        if (!/^[0-7]{3,4}$/.test(m))
          throw new KilnError('BUILD', `invalid --chmod "${m}": expected an octal mode like 0755`, place);
        chmod = parseInt(m, 8);
      }
      // ADD of a local tar archive (plain, gzip, bzip2, xz) unpacks it, keeping its ownership.
      const sources: CopyRequest['sources'] = [];
      // Directories a git checkout's copy makes take the commit's time: same commit, same layer.
      let createdTime: number | undefined;
      for (const s of pathSources) {
        // ADD of a git repository: a shallow checkout of the ref, copied like a directory (build/add-git.ts).
        const git = ins.kind === 'ADD' && ins.from === undefined ? parseGitSource(s) : undefined;
        if (git) {
          const c = await checkoutGit({
            source: git,
            keepGitDir: ins.keepGitDir ?? false,
            checksum: ins.checksum !== undefined ? x(ins.checksum) : undefined,
            tmpDir: store.tmpDir,
            place,
          });
          cleanups.push(c.dir);
          createdTime = c.time;
          sources.push({ ctx: BuildContext.plain(c.root), pattern: '.' });
          continue;
        }
        // ADD of an http(s) URL: downloaded (never unpacked), then copied like a file (build/add-url.ts).
        if (ins.kind === 'ADD' && ins.from === undefined && isHttpUrl(s)) {
          const d = await downloadUrl({
            url: s,
            tmpDir: store.tmpDir,
            checksum: ins.checksum !== undefined ? x(ins.checksum) : undefined,
            place,
            signal: this.o.signal,
          });
          cleanups.push(d.dir);
          sources.push({ ctx: BuildContext.plain(d.dir), pattern: d.name });
          continue;
        }
        if (ins.kind === 'ADD' && ins.from === undefined && ins.unpack !== false) {
          const archives = srcCtx.select(s, place).filter((e) => e.stat.isFile() && isArchive(e.abs));
          if (archives.length) {
            for (const a of archives) {
              const dir = path.join(store.tmpDir, `tmp-${process.pid}-add-${randomBytes(6).toString('hex')}`);
              mkdirSync(dir, { recursive: true });
              cleanups.push(dir);
              // kiln's safe applier, never GNU tar: a hostile entry fails the build, naming it. Not a
              // tar after all (e.g. a lone .gz file): docker copies it as it is.
              if ((await unpackArchive(a.abs, a.rel, dir, place)) === 'copy')
                sources.push({ ctx: srcCtx, pattern: a.rel });
              else sources.push({ ctx: BuildContext.plain(dir), pattern: '.', keepOwner: true, unpacked: true });
            }
            const rest = srcCtx.select(s, place).filter((e) => !archives.some((a) => a.rel === e.rel));
            for (const e of rest) sources.push({ ctx: srcCtx, pattern: e.rel });
            continue;
          }
        }
        sources.push({ ctx: srcCtx, pattern: s });
      }
      if (heredocSources.length) {
        const bodies = ins.heredocs.map((h) =>
          h.expand ? { ...h, content: this.expandBody(h.content, scope, ins) } : h,
        );
        const docs = materializeHeredocs(
          bodies,
          heredocSources,
          store.tmpDir,
          this.o.sourceDateEpoch ?? Math.floor(Date.now() / 1000),
          place,
        );
        cleanups.push(docs.dir);
        const docCtx = BuildContext.plain(docs.dir);
        for (const src of heredocSources) sources.push({ ctx: docCtx, pattern: docs.names.get(src)! });
      }
      const entries = await planCopy({
        sources,
        dest: x(ins.dest),
        workdir: this.cfg(state).WorkingDir || '/',
        destRoot: destView.root,
        owner,
        keepOwner,
        chmod,
        exclude: ins.exclude.map(x),
        parents: ins.parents,
        createdTime,
        place,
      });
      // BuildKit's commit message: flags it shows (not --from), path sources, heredocs, dest.
      const text =
        [
          ins.kind,
          ...(ins.parents ? ['--parents'] : []),
          ...(ins.chown !== undefined ? [`--chown=${x(ins.chown)}`] : []),
          ...(ins.chmod !== undefined ? [`--chmod=${x(ins.chmod)}`] : []),
          ...pathSources,
          ...heredocSources.map((h) => `<<${heredocMarker(h)}`),
          x(ins.dest),
        ].join(' ') + ' # buildkit';
      // Only wildcards that matched nothing: BuildKit goes on (an empty layer there; none here,
      // as for any step that changes nothing).
      if (entries.length === 0) {
        this.history(state, text, true);
        return undefined;
      }
      const l = await this.addLayer(state, entries, ins);
      this.history(state, text, false);
      return l;
    } finally {
      await destView.close();
      await srcView?.close();
      for (const d of cleanups) await rm(d, { recursive: true, force: true });
    }
  }

  private async run(
    ins: RunInstruction,
    state: StageState,
    scope: StageScope,
    stage: PlannedStage,
    stepNo: number,
    stageResult: (n: number) => Promise<StageState>,
  ): Promise<LayerInfo | undefined> {
    const place = this.place(ins);
    const cmd = ins.command;
    const cfg = this.cfg(state);
    // The stage's variables as BuildKit gives them to RUN: base ENV, ENV and ARG values (the last
    // set wins), proxy build args; ARG values never reach the image config.
    const env = scope.runEnv().map(([k, v]) => `${k}=${v}`);
    const scratch: string[] = [];
    const prepared = runArgs(cmd, state.shell, this.o.store.tmpDir);
    scratch.push(...prepared.scratch);
    const args = prepared.args;
    const mounts: Mount[] = [...prepared.mounts];
    const tail: string[] = [];
    const keep = (b: Buffer, stream: 'stdout' | 'stderr') => {
      this.emit({ type: 'step-output', stage: stage.index, step: stepNo, stream, data: b });
      tail.push(...b.toString().split('\n'));
      if (tail.length > 40) tail.splice(0, tail.length - 40);
    };
    const network = ins.network === 'none' ? 'none' : ins.network === 'host' ? 'host' : (this.o.network ?? 'host');
    let out: Awaited<ReturnType<typeof runStep>>;
    let runMounts: RunMounts | undefined;
    try {
      if (ins.mountFlags.length) {
        runMounts = await this.runMounts(ins, scope, stage, stageResult, env, cfg.WorkingDir || '/');
        mounts.push(...runMounts.mounts);
      }
      out = await this.runSlots.with(() =>
        runStep({
          store: this.o.store,
          layers: state.layers,
          diffIds: state.config.rootfs.diff_ids,
          args,
          env: runMounts?.env ?? env,
          mounts,
          cwd: cfg.WorkingDir || '/',
          user: cfg.User ?? '',
          network,
          extraHosts: this.o.extraHosts,
          shmSize: this.o.shmSize,
          ulimits: this.o.ulimits,
          capture: true,
          snapshotter: this.o.snapshotter,
          snapshotOnly: !this.shipped.has(stage.index) && !this.cache.needsBlobs,
          compression: this.compression,
          compressionLevel: this.o.compressionLevel,
          backend: this.o.backend,
          signal: this.o.signal,
          sourceDateEpoch: this.o.sourceDateEpoch,
          onStdout: (b) => keep(b, 'stdout'),
          onStderr: (b) => keep(b, 'stderr'),
        }),
      );
    } finally {
      for (const d of scratch) await rm(d, { recursive: true, force: true });
      await runMounts?.release();
    }
    if (!this.sandboxShown) {
      this.sandboxShown = true;
      const iso = describeIsolation(out.backend, out.snapshotter);
      this.emit({
        type: 'sandbox',
        mode: iso.mode,
        backend: out.backend,
        snapshotter: out.snapshotter,
        description: iso.description,
      });
    }
    const createdBy = `RUN ${runHistoryText(
      args,
      state.argNames.map((n) => [n, scope.lookup(n) ?? '']),
    )} # buildkit`;
    if (out.exitCode !== 0) {
      const last = tail
        .filter((l) => l.trim() !== '')
        .slice(-10)
        .join('\n      ');
      const err = new KilnError(
        'BUILD',
        `stage ${stage.name ?? stage.index}: RUN failed with exit code ${out.exitCode}: ${cmd.form === 'exec' ? JSON.stringify(cmd.args) : cmd.command}${last ? `\n    last output:\n      ${last}` : ''}`,
        place,
      );
      throw Object.assign(err, { stepExitCode: out.exitCode });
    }
    if (!out.layer) {
      this.history(state, createdBy, true);
      return undefined;
    }
    this.pushLayer(state, out.layer, ins);
    this.history(state, createdBy, false);
    return out.layer;
  }

  /**
   * RUN --mount: the flags expanded with the stage's variables (as BuildKit), from= resolved as
   * the planner did (or now, for an ONBUILD trigger), then made ready (build/run-mounts.ts).
   */
  private async runMounts(
    ins: RunInstruction,
    scope: StageScope,
    stage: PlannedStage,
    stageResult: (n: number) => Promise<StageState>,
    env: string[],
    workdir: string,
  ): Promise<RunMounts> {
    const place = this.place(ins);
    const specs = ins.mountFlags.map((m) => {
      try {
        return expandMount(m, scope.lookup, { escape: this.df.directives.escape });
      } catch (e) {
        if (e instanceof ExpansionError || e instanceof MountError) throw new KilnError('BUILD', e.message, place);
        throw e;
      }
    });
    const planned = [...(stage.onbuild ?? []), ...stage.instructions].find((p) => p.instruction === ins);
    const from = async (value: string, i: number): Promise<FromSource> => {
      const src = planned?.sources?.[i] ?? this.resolveFrom(value, stage, place);
      if (src.kind === 'stage') {
        const s = await stageResult(src.index);
        return { layers: s.layers, diffIds: s.config.rootfs.diff_ids };
      }
      const img = await this.images.get(src.ref, place);
      return { layers: img.manifest.layers, diffIds: img.config.rootfs.diff_ids };
    };
    return prepareRunMounts({
      specs,
      place,
      store: this.o.store,
      ctx: this.ctx,
      workdir,
      env,
      from,
      secrets: this.o.secrets,
      ssh: this.o.ssh,
      signal: this.o.signal,
    });
  }
}

function pathExists(root: string, rel: string): boolean {
  try {
    lstatSync(path.join(root, rel));
    return true;
  } catch {
    return false;
  }
}

/** What of RUN's sandbox the options change (BuildKit keys ExecOp's extra hosts, shm size and ulimits): '' when nothing. */
function runSandboxKey(o: BuildOptions): string {
  const parts: string[] = [];
  if (o.extraHosts?.length) parts.push(`hosts=${o.extraHosts.map(([n, ip]) => `${n}:${ip}`).join(',')}`);
  if (o.shmSize !== undefined) parts.push(`shm=${o.shmSize}`);
  if (o.ulimits?.length) parts.push(`ulimits=${o.ulimits.map((u) => `${u.type}=${u.soft}:${u.hard}`).join(',')}`);
  return parts.join(' ');
}
