/**
 * The build engine: walks the plan, builds the needed stages (independent ones in parallel, each
 * once) and writes the target stage as an image in the store. Each instruction is read once
 * (expand-step.ts) and that step is what the cache key describes and what is dispatched: config
 * changes to config-step.ts (pure), WORKDIR's directory to workdir-step.ts, COPY/ADD to
 * copy-step.ts, RUN to run-step.ts (its mounts: run-mounts.ts).
 */
import { withStop, settleAll } from './fail-fast.js';
import { BackgroundJobs } from './background.js';
import { LeftSourceViews } from './source-views.js';
import { BuildImages } from './base-image.js';
import { type ClientOptions, type TransferEvent } from '../registry/index.js';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { chainIds, Slots, type Digest, KilnError, type ErrorPlace, inStep, mark, timed } from '../util/index.js';
import {
  type Dockerfile,
  type Instruction,
  parseDockerfile,
  checkDirective,
  checkSyntax,
} from '../dockerfile/index.js';
import {
  createPlan,
  shippedStages,
  StageScope,
  platformArgs,
  type BuildPlan,
  type PlannedInstruction,
  type PlannedStage,
  type SourceRef,
} from '../plan/index.js';
import { BuildContext, WalkListings } from '../context/index.js';
import { type FileDigestLookup, type LayerInfo } from '../layer/index.js';
import { formatPlatform, hostPlatform, parsePlatform, type Compression, type Descriptor } from '../image/index.js';
import { isPlainLayer, type Store, compressedImage, compressionOf, PROVENANCE_VERSION } from '../store/index.js';
import {
  blobFromSnapshot,
  DEFAULT_PATH,
  describeIsolation,
  ensureEmulation,
  hostArchitecture,
  type BackendKind,
  type SnapshotterKind,
} from '../sandbox/index.js';
import { planStageInfo, pullProgress, stepExit, type EventSink } from './events.js';
import { StepCache, type CacheSink, type CacheSource, type CacheStats } from './cache-step.js';
import type { SecretSource, SshSource } from './run-flags.js';
import { contextKey, type NamedContext } from './named-contexts.js';
import { KeptRoots, settleViews, type Ulimit } from '../sandbox/index.js';
import { expandStep, type Step } from './expand-step.js';
import { applyConfig, historyEntry, isConfigInstruction, setEnvVar } from './config-step.js';
import { copyStep } from './copy-step.js';
import { runInstruction, type RunEnv } from './run-step.js';
import { makeWorkdir } from './workdir-step.js';
import { appendHistory, historyTime, type StageState, type StepAt } from './stage-state.js';
import { proveBuildHasNoSecrets, type MadeLayer } from './secret-proof.js';
import { squashImage } from './squash.js';

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
  /** The OCI runtime of RUN steps (name or path; it must work here): default crun, else runc (sandbox/runtime.ts). */
  runtime?: string;
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
  /**
   * A failing RUN: fail the build (default), or keep the step's state first — the filesystem it
   * left, the one before it, its mounts and settings — for `kiln debug` (engine/kept-step.ts); the
   * error then has `keptStep` (its id) and says how to enter it.
   */
  onError?: 'fail' | 'keep';
  /** Keep an image in which the secret proof found a secret (a warning, not an error; see secret-proof.ts). */
  allowSecretInImage?: boolean;
  /** RUN slots shared with other builds (a multi-platform build's platforms); default: one per CPU for this build. */
  runSlots?: Slots;
  /** Steps being run by other builds of this process (a multi-platform build's platforms): see cache-step.ts. */
  inflight?: Map<Digest, Promise<void>>;
  /**
   * `--squash` ('new': the layers above the final stage's base image into one, as podman's
   * --squash) or `--squash-all` ('all': every layer into one); see squash.ts.
   */
  squash?: 'new' | 'all';
  /**
   * Aborted when another part of the build failed first (a multi-platform build's other platform):
   * `signal` is aborted with it; the steps it stops are reported canceled, not failed.
   */
  stopped?: AbortSignal;
}

export interface BuildResult {
  imageId: Digest;
  descriptor: Descriptor;
  plan: BuildPlan;
  size: number;
  cache?: CacheStats;
  /** The layers the steps made or took from the cache, by diff id, with the step (file:line). */
  made?: Map<Digest, MadeLayer>;
  /**
   * Whether a rebuild of the same inputs takes every step from the build cache and makes this
   * same image, and the records it reads then: each record's file and inode, when every step had
   * a cache key and each key's record holds what this build took from it or carried on with;
   * undefined when not. Reads the records again (call it only when wanted; the CLI's no-op memo does).
   */
  rebuildRecords?: () => Promise<{ path: string; ino: string }[] | undefined>;
}

export async function build(o: BuildOptions, emit: EventSink = () => undefined): Promise<BuildResult> {
  // The views steps closed (closeViewLater) are torn down while the build goes on: all of them
  // before it returns, failed or not.
  let result: BuildResult;
  try {
    result = await buildImage(o, emit);
  } catch (e) {
    await settleViews().catch(() => undefined);
    throw e;
  }
  await settleViews();
  return result;
}

async function buildImage(o: BuildOptions, emit: EventSink): Promise<BuildResult> {
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
  const buildPlatform = formatPlatform(hostPlatform());
  const platform = o.platform ?? buildPlatform;
  const plan = createPlan(df, {
    buildArgs: o.buildArgs,
    target: o.target,
    platform,
    buildPlatform,
    namedContexts: o.namedContexts?.map((c) => c.name),
  });
  mark('Dockerfile parsed and planned');
  emit({ type: 'plan', target: plan.target, stages: plan.order.map((n) => planStageInfo(plan.stages[n]!)) });
  if (syntax.kind === 'warning') emit({ type: 'warning', message: `${plan.file}:${syntaxLine}: ${syntax.message}` });
  // A warning that is a build check `# check=skip=` names is not shown (BuildKit).
  const skipped = checkDirective(df).skip;
  for (const w of plan.warnings)
    if (!(w.rule && (skipped.has(w.rule) || skipped.has('all'))))
      emit({ type: 'warning', message: `${w.line !== undefined ? `${plan.file}:${w.line}: ` : ''}${w.message}` });
  // A RUN for another architecture needs QEMU in binfmt_misc: without it, fail now, not at the
  // first such RUN (and never run the wrong architecture).
  for (const n of plan.order) {
    const stage = plan.stages[n]!;
    if (!stage.instructions.some((p) => p.instruction.kind === 'RUN')) continue;
    ensureEmulation(
      parsePlatform(stage.runsOn).architecture,
      `the RUN steps of stage ${stage.name ?? n} (${stage.runsOn}, on this ${buildPlatform} machine)`,
    );
  }
  const ctx = BuildContext.open(o.contextDir, { dockerfile: o.dockerfilePath });
  // The first stage to fail stops the others (fail-fast.ts).
  const stopOthers = new AbortController();
  const stopped = withStop(o.stopped, stopOthers);
  const engine = new Engine({ ...o, signal: withStop(o.signal, stopOthers), stopped }, df, plan, ctx, emit);
  mark('context opened, cache index ready');
  // Every needed stage starts at once, as BuildKit's solver does: a stage waits for another only
  // at the step that uses it (FROM, COPY --from, RUN --mount from=), so a final stage's own early
  // steps overlap its builders. RUN steps, the CPU-heavy part, are bounded by the CPU count.
  let final: StageState;
  try {
    await settleAll(
      plan.order.map((n) => engine.stageResult(n)),
      stopOthers,
    );
    final = await engine.stageResult(plan.target);
    // What the steps left to finish (provenance records): a failure there fails the build.
    await engine.background.settle();
  } finally {
    engine.leftViews.closeAll();
    await engine.background.drain();
    await engine.forgetUnfinishedRecords();
    await engine.keptRoots.close();
  }
  mark('steps (stages in parallel)');
  let config = structuredClone(final.config);
  if (o.labels && Object.keys(o.labels).length)
    config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...o.labels } };
  let layers = await engine.shippedLayers(final);
  if (o.squash) {
    const base = o.squash === 'all' ? { layers: 0, history: 0 } : await engine.baseImageOf(plan.target);
    const r = await squashImage(config, layers, {
      store: o.store,
      keep: base.layers,
      baseHistory: base.history,
      compression: o.layerCompression ?? 'none',
      level: o.compressionLevel,
      created: historyTime(o.sourceDateEpoch),
      createdBy: o.squash === 'all' ? 'kiln build --squash-all' : 'kiln build --squash',
    });
    config = r.config;
    layers = r.layers;
    // The merged layer holds what the build's layers held: the secret proof searches it as theirs.
    if (r.squashed)
      engine.made.set(r.squashed.diffId, {
        layer: r.squashed,
        stage: plan.target,
        step: { file: plan.file, text: o.squash === 'all' ? '--squash-all' : '--squash' },
      });
  }
  const written = await timed('image written (manifest, config)', async () => o.store.writeImage(config, layers));
  // Layers from the cache or a base image compressed otherwise are re-encoded where asked.
  const img = await timed('layers compressed where asked', () =>
    compressedImage(
      o.store,
      { descriptor: written.descriptor, manifest: written.manifest, config, id: written.id },
      { compression: o.layerCompression ?? 'none', force: o.forceCompression, level: o.compressionLevel },
    ),
  );
  mark('image written');
  // The cache exports made ready, nothing sent: the proof searches the documents they will push.
  const cacheExports = await engine.cache.prepareExports();
  mark('cache exports made ready');
  // Before anything leaves the machine (a cache export here, a push or an output after): no secret in it.
  await proveBuildHasNoSecrets({
    ...o,
    allow: o.allowSecretInImage,
    shippedStages: engine.shipped,
    made: engine.made,
    image: img,
    cacheExports,
    stageLabel: (n) => plan.stages[n]?.name ?? String(n),
    warn: (message) => emit({ type: 'warning', message }),
  });
  mark('secret proof');
  await engine.cache.finish(cacheExports);
  mark('file digests saved, cache exported');
  for (const t of o.tags ?? []) await o.store.setTag(t, img.descriptor);
  mark('tagged');
  const sizes = await o.store.imageSizes(img);
  mark('sized');
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
    layers: layers.length,
    size,
    ...(compressed ? { compressedSize: sizes.blobs } : {}),
  });
  return {
    imageId: img.id,
    descriptor: img.descriptor,
    plan,
    size,
    cache: engine.cache.stats,
    made: engine.made,
    // --squash's merged layer and history entry are made anew at each build (its time): no rebuild is the same.
    ...(o.squash ? {} : { rebuildRecords: () => engine.cache.rebuildRecords() }),
  };
}

/**
 * The stage walker and scheduler: builds each needed stage once (stages in parallel, each waiting
 * for another only at the step that uses it), reads each instruction once (expand-step.ts), asks
 * the cache with that step, and dispatches it: config instructions to config-step.ts (pure),
 * WORKDIR's directory to workdir-step.ts, COPY/ADD to copy-step.ts, RUN to run-step.ts.
 */
class Engine implements RunEnv {
  private readonly automatic: Record<string, string>;
  private readonly globals: Map<string, string | undefined>;
  /** Each built stage's variables at its end: what a stage based on it starts with. */
  private readonly scopes = new Map<number, StageScope>();
  /** Each stage's build, started once. */
  private readonly results = new Map<number, Promise<StageState>>();
  readonly cache: StepCache;
  /** External images (FROM, COPY --from): from the store, or pulled. */
  readonly images: BuildImages;
  /** Pulls in progress, by reference: their `pull` events. */
  private readonly pulls = new Map<string, ReturnType<typeof pullProgress>>();
  /** RUN steps at once, across stages: one per CPU. */
  readonly runSlots: Slots;
  /**
   * The native snapshotter's roots kept between RUN steps (sandbox/kept-root.ts): at most four
   * (each is a stage's whole filesystem), dropped when the steps are over.
   */
  readonly keptRoots: KeptRoots;
  /**
   * Stages whose layers the image is made of: the target and the stages it is based on. The other
   * stages' RUN layers are kept as snapshots only: no image ships them, so compressing them into
   * blobs would be wasted (BuildKit does not either). A cache export needs blobs of every stage.
   */
  readonly shipped: Set<number>;
  /** The layers this build's steps made or took from the cache, by diff id: what the secret proof searches. */
  readonly made = new Map<Digest, MadeLayer>();
  /** Digests of the files builder stages' RUN layers recorded as they were tarred, by the layer's chain id (cache-step.ts keys COPY --from with them). */
  readonly fileDigests = new Map<Digest, FileDigestLookup>();
  /** What walks of a stage's or an image's files found, by chain id (a COPY --from key's walk, then its copy's). */
  private readonly listings = new Map<string, WalkListings>();
  /**
   * `COPY/ADD --from` steps still to run, by the stage they copy from and each stage it is based on:
   * keys still to make (a stage's recorded digests are freed when it comes to 0) and copies still to
   * make (its walk listings, freed then). They serve those steps only; 100,000 files' worth is ~45 MB
   * of heap, which the copy's own entries would come on top of. See releaseCopied.
   */
  private readonly keysAhead = new Map<number, number>();
  private readonly copiesAhead = new Map<number, number>();
  /** Work steps left to finish while the next steps run (background.ts). */
  readonly background = new BackgroundJobs();
  /** A `COPY/ADD --from` key's view of its source, left for the step's copy (source-views.ts). */
  readonly leftViews = new LeftSourceViews();
  /** The cache keys recorded for the layers this build's steps made, by diff id: see forgetUnfinishedRecords. */
  private readonly layerRecords = new Map<Digest, Digest[]>();
  /** The sandbox event was sent (once, after the first RUN). */
  private sandboxShown = false;

  constructor(
    readonly o: BuildOptions,
    private readonly df: Dockerfile,
    private readonly plan: BuildPlan,
    readonly ctx: BuildContext,
    readonly emit: EventSink,
  ) {
    this.automatic = platformArgs(plan.platform.target, plan.platform.build);
    this.runSlots = o.runSlots ?? new Slots(availableParallelism());
    this.keptRoots = new KeptRoots(o.store.root, 4);
    this.globals = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
    // Pulls show in the build's progress as `pull` events (and go to onPull as they come).
    this.images = new BuildImages({
      store: o.store,
      platform: parsePlatform(plan.platform.target),
      namedContexts: o.namedContexts,
      signal: o.signal,
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
    for (const st of plan.stages)
      if (st.needed)
        for (const p of [...(st.onbuild ?? []), ...st.instructions])
          for (const n of this.copiedStages(p)) {
            this.keysAhead.set(n, (this.keysAhead.get(n) ?? 0) + 1);
            this.copiesAhead.set(n, (this.copiesAhead.get(n) ?? 0) + 1);
          }
    this.cache = new StepCache({
      store: o.store,
      ctx,
      plan,
      platform: plan.platform.target,
      sourceDateEpoch: o.sourceDateEpoch,
      network: o.network,
      noCache: o.noCache,
      noCacheFilter: o.noCacheFilter,
      from: o.cacheFrom,
      to: o.cacheTo,
      image: (ref) => this.images.get(ref, {}),
      runSandbox: runSandboxKey(o),
      recordedDigests: this.fileDigests,
      walkListings: (chain) => this.walkListings(chain),
      leftViews: this.leftViews,
      // A step's identity for --explain starts with the Dockerfile: where it is (stdin: the context's).
      dockerfileId: path.resolve(o.dockerfilePath ?? path.join(o.contextDir, o.dockerfileName)),
      inflight: o.inflight,
    });
  }

  /** A stage's final state: its build starts on the first call, later calls wait for the same one. */
  stageResult(n: number): Promise<StageState> {
    let p = this.results.get(n);
    if (!p) {
      p = this.buildStage(this.plan.stages[n]!);
      this.results.set(n, p);
    }
    return p;
  }

  /**
   * A layer whose provenance record failed to be written (in the background, after its cache record
   * was) is not left in the cache: a rebuild hitting that record would ship the layer with no record
   * of where its files came from. Its step runs again next time.
   */
  async forgetUnfinishedRecords(): Promise<void> {
    for (const diffId of this.background.failed)
      for (const key of this.layerRecords.get(diffId) ?? []) await this.cache.index.remove(key).catch(() => undefined);
  }

  walkListings(chain: string): WalkListings {
    let l = this.listings.get(chain);
    if (!l) this.listings.set(chain, (l = new WalkListings()));
    return l;
  }

  /** Whether a later `COPY/ADD --from` copies this stage (or one based on it): its RUN layers then record digests. */
  copiedLater(stage: number): boolean {
    return (this.keysAhead.get(stage) ?? 0) > 0;
  }

  /** The stages a planned COPY/ADD copies from, each with the stages it is based on. */
  private copiedStages(p: Pick<PlannedInstruction, 'instruction' | 'sources'>): number[] {
    if (p.instruction.kind !== 'COPY' && p.instruction.kind !== 'ADD') return [];
    const out: number[] = [];
    for (const src of p.sources ?? [])
      for (let n: number | undefined = src.kind === 'stage' ? src.index : undefined; n !== undefined;) {
        out.push(n);
        const base = this.plan.stages[n]?.base;
        n = base?.kind === 'stage' ? base.index : undefined;
      }
    return out;
  }

  /**
   * A planned COPY/ADD --from has its key (`done` 'key': the stages it copies drop the digests their
   * RUN layers recorded, once no later key wants them) or is done ('copy': they drop the listings of
   * their files' walks). A stage drops its own layers' digests (those of its base stage go with that
   * one). A later step that still wanted either would only read the files again.
   */
  private async releaseCopied(
    p: Pick<PlannedInstruction, 'instruction' | 'sources'>,
    done: 'key' | 'copy',
  ): Promise<void> {
    const ahead = done === 'key' ? this.keysAhead : this.copiesAhead;
    for (const n of this.copiedStages(p)) {
      const left = (ahead.get(n) ?? 0) - 1;
      ahead.set(n, left);
      const result = this.results.get(n);
      if (!result) continue;
      const chains = chainIds((await result).config.rootfs.diff_ids);
      // Keyed, the last copy of the stage is the last walk of its listings: they go as it walks.
      const listing = done === 'key' && this.copiesAhead.get(n) === 1 && this.listings.get(chains.at(-1) ?? '');
      if (listing) listing.draining = true;
      if (left > 0) continue;
      const base = this.plan.stages[n]?.base;
      const baseResult = base?.kind === 'stage' ? this.results.get(base.index) : undefined;
      const own = baseResult ? (await baseResult).config.rootfs.diff_ids.length : 0;
      if (done === 'copy') {
        // With its top's, the listings its RUN layers handed on (run-step.ts): an earlier RUN's too.
        const top = chains.at(-1);
        if (top !== undefined) this.listings.delete(top);
        for (const c of chains.slice(own)) this.listings.delete(c);
        continue;
      }
      for (const c of chains.slice(own)) this.fileDigests.delete(c);
    }
  }

  stageName(n: number): string | undefined {
    return this.plan.stages[n]?.name;
  }

  snapshotOnly(stage: number): boolean {
    return !this.shipped.has(stage) && !this.cache.needsBlobs;
  }

  ranIn(backend: BackendKind, snapshotter: SnapshotterKind, overlayRefused?: string, fuseRefused?: string): void {
    if (this.sandboxShown) return;
    this.sandboxShown = true;
    const iso = describeIsolation(backend, snapshotter, overlayRefused, fuseRefused);
    this.emit({
      type: 'sandbox',
      mode: iso.mode,
      backend,
      snapshotter,
      ...(overlayRefused !== undefined ? { overlayRefused } : {}),
      ...(fuseRefused !== undefined ? { fuseRefused } : {}),
      description: iso.description,
    });
  }

  private place(ins: Instruction): ErrorPlace {
    const line = ins.range.start.line;
    return { file: this.df.file, line, column: ins.range.start.column, source: this.df.lines[line - 1] ?? '' };
  }

  private async buildStage(stage: PlannedStage): Promise<StageState> {
    const t0 = Date.now();
    let state: StageState;
    const baseLabel =
      stage.base.kind === 'image'
        ? stage.base.ref
        : stage.base.kind === 'stage'
          ? `stage ${stage.base.index}`
          : 'scratch';
    const platform = parsePlatform(stage.runsOn);
    const emulated = platform.architecture !== hostArchitecture();
    this.emit({
      type: 'stage-start',
      stage: stage.index,
      name: stage.name,
      base: baseLabel,
      platform: stage.runsOn,
      ...(emulated ? { emulated } : {}),
    });
    if (stage.base.kind === 'stage') {
      state = structuredClone(await this.stageResult(stage.base.index));
      state.cmdSet = false;
    } else if (stage.base.kind === 'scratch') {
      const p = platform;
      // BuildKit's empty image: WorkingDir "/" (and the default PATH, added below), for the stage's platform.
      state = {
        config: {
          architecture: p.architecture,
          os: p.os,
          ...(p.variant ? { variant: p.variant } : {}),
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
      const img = await this.images.get(ref, this.placeOfStage(stage), platform);
      this.cache.noteBase(stage.index, `${ref}@${img.descriptor.digest}`);
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
    if (!(state.config.config?.Env ?? []).some((e) => e.startsWith('PATH=')))
      setEnvVar(state.config, 'PATH', DEFAULT_PATH);
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
    // The architecture the stage's programs are: its base's (a single-platform image of another
    // architecture than the stage's platform — BuildKit's InvalidBaseImagePlatform, a build check
    // — is what its RUN steps execute, so under that architecture's emulator, checked now: never
    // as if it were the stage's).
    const runsAs = state.config.architecture || platform.architecture;
    const runPlatform = runsAs === platform.architecture ? stage.runsOn : `${platform.os}/${runsAs}`;
    if (runsAs !== platform.architecture && stage.instructions.some((p) => p.instruction.kind === 'RUN'))
      ensureEmulation(
        runsAs,
        `the RUN steps of stage ${stage.name ?? stage.index} (its base ${baseLabel} is ${runPlatform}, not ${stage.runsOn})`,
      );
    const runEmulated = runsAs !== hostArchitecture();
    // ONBUILD triggers of the base run first, then are cleared: a base stage's as the planner
    // resolved them (their --from sources are known), an image's parsed from its config (their
    // --from resolved when they are expanded).
    const triggers: Pick<PlannedInstruction, 'instruction' | 'sources'>[] =
      stage.base.kind === 'stage'
        ? (stage.onbuild ?? [])
        : (state.config.config?.OnBuild ?? []).map((t) => ({ instruction: this.parseTrigger(t, stage) }));
    if (state.config.config) state.config.config.OnBuild = null;
    const steps = [...triggers, ...stage.instructions];
    for (const [i, planned] of steps.entries()) {
      if (this.o.signal?.aborted) throw new KilnError('BUILD', 'build interrupted');
      const ins = planned.instruction;
      const st = Date.now();
      this.emit({
        type: 'step-start',
        stage: stage.index,
        step: i + 1,
        total: steps.length,
        text: ins.original,
        line: ins.range.start.line,
        ...(runEmulated && ins.kind === 'RUN' ? { emulated: runPlatform } : {}),
      });
      let layer: LayerInfo | undefined;
      // The step's expanded instruction: what its key left for its copy is named by it.
      let expanded: object | undefined;
      try {
        // Read once: the cache key describes exactly the step that runs.
        const place = this.place(ins);
        const step = expandStep(planned, scope, {
          escape: this.df.directives.escape,
          place,
          globals: StageScope.forFrom(this.globals, this.automatic, this.o.buildArgs),
          resolveFrom: (value) => this.resolveFrom(value, stage, place),
        });
        expanded = step.ins;
        const at: StepAt = { stage, no: i + 1, snapshotsAhead: this.snapshotsAhead(stage, i - triggers.length) };
        // --profile: the phases of this step carry it (stage/step).
        const label = `${stage.index}/${i + 1} ${ins.kind}`;
        const cached = await inStep(label, () =>
          timed('cache lookup', () => this.cache.lookup(step, state, scope, stage, (n) => this.stageResult(n), i + 1)),
        );
        await this.releaseCopied(planned, 'key');
        const x = cached.explain;
        this.emit({
          type: 'explain',
          stage: stage.index,
          step: i + 1,
          cached: cached.record !== undefined,
          reason: x.reason,
          text: x.text,
          changes: x.changes,
          ...(x.record !== undefined ? { record: x.record } : {}),
          ...(x.causeStep !== undefined ? { causeStep: x.causeStep } : {}),
        });
        if (cached.record) {
          if (cached.replayScope) await this.dispatch(step, state, scope, at);
          this.cache.restore(cached, state);
          this.emit({ type: 'step-cached', stage: stage.index, step: i + 1 });
          layer = cached.record.layer;
        } else {
          try {
            layer = await inStep(label, () => timed(`${ins.kind} step`, () => this.dispatch(step, state, scope, at)));
            await inStep(label, () => timed('cache record', () => this.cache.record(cached, state, layer)));
            if (layer && cached.key)
              this.layerRecords.set(layer.diffId, [...(this.layerRecords.get(layer.diffId) ?? []), cached.key]);
          } finally {
            cached.release?.();
          }
          // A COPY/ADD layer's record lists its files (copy-step.ts); the others name their step only
          // (written while the next steps run, as a COPY's).
          const kind = step.ins.kind;
          if (layer && (kind === 'RUN' || kind === 'WORKDIR')) {
            const diffId = layer.diffId;
            this.background.start(diffId, () =>
              this.o.store.putProvenance({
                version: PROVENANCE_VERSION,
                diffId,
                kind,
                step: {
                  file: place.file ?? 'Dockerfile',
                  line: place.line ?? 0,
                  text: ins.original,
                  stage: { index: stage.index, ...(stage.name !== undefined ? { name: stage.name } : {}) },
                },
                from: { kind: 'none' },
                packages: [],
                files: [],
              }),
            );
          }
        }
      } catch (e) {
        this.emit({
          type: 'step-error',
          stage: stage.index,
          step: i + 1,
          ms: Date.now() - st,
          message: e instanceof Error ? e.message : String(e),
          ...stepExit(e),
          // Stopped because another stage failed first (not by the user's interrupt).
          ...(this.o.stopped?.aborted ? { canceled: true as const } : {}),
        });
        throw e;
      } finally {
        // A view the key left that the copy did not take (a cache hit, a failure).
        if (expanded) this.leftViews.closeLeft(expanded);
      }
      await this.releaseCopied(planned, 'copy');
      if (layer)
        this.made.set(layer.diffId, { layer, stage: stage.index, step: { ...this.place(ins), text: ins.original } });
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

  /**
   * One step, by kind (BuildKit's dispatch switch): COPY/ADD, RUN, or a config change (with
   * WORKDIR's directory). The stage's variables change here too (ENV, ARG).
   */
  private async dispatch(step: Step, state: StageState, scope: StageScope, at: StepAt): Promise<LayerInfo | undefined> {
    const x = step.ins;
    switch (x.kind) {
      case 'COPY':
      case 'ADD':
        return copyStep(this, { ...step, ins: x }, state, at);
      case 'RUN':
        return runInstruction(this, { ...step, ins: x }, state, scope, at);
    }
    if (!isConfigInstruction(x)) throw new KilnError('INTERNAL', `${x.kind} inside a stage`, step.place);
    // All values of one ENV line were expanded before any is set (as BuildKit).
    if (x.kind === 'ENV') for (const p of x.pairs) scope.setEnv(p.key, p.value);
    if (x.kind === 'ARG') x.args.forEach((a, i) => scope.setArg(a.name, x.values[i]));
    const r = applyConfig(state, x, { created: historyTime(this.o.sourceDateEpoch), place: step.place });
    Object.assign(state, r.state);
    const layer = x.kind === 'WORKDIR' ? await makeWorkdir(this.o, state, at.snapshotsAhead, step.place) : undefined;
    if (r.history)
      appendHistory(state, layer ? historyEntry(r.history.created!, r.history.created_by!, false) : r.history);
    return layer;
  }

  /**
   * Whether a RUN will need whole snapshots of this stage anyway: another stage than the target, or
   * a RUN later in it (`at`: the step's index in the stage's own instructions, < 0 for a trigger).
   */
  private snapshotsAhead(stage: PlannedStage, at: number): boolean {
    return (
      stage.index !== this.plan.target ||
      at < 0 ||
      stage.instructions.slice(at + 1).some((p) => p.instruction.kind === 'RUN')
    );
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
   * A --from / from= the planner did not see (an ONBUILD trigger of a base image): a named context
   * (--build-context), else a stage built before this one, by name or index, else an image.
   */
  private resolveFrom(value: string, stage: PlannedStage, place: ErrorPlace): SourceRef {
    // A --build-context of that name wins over a stage of that name, as in the planner (BuildKit).
    const key = contextKey(value);
    if (key !== undefined && this.o.namedContexts?.some((c) => c.name === key)) return { kind: 'image', ref: value };
    const named = this.plan.stages.find((s) => s.name !== undefined && s.name.toLowerCase() === value.toLowerCase());
    const index = named?.index ?? (/^\d+$/.test(value) ? Number(value) : undefined);
    if (index === undefined) return { kind: 'image', ref: value };
    if (index >= stage.index)
      throw new KilnError('BUILD', `--from=${value}: a stage can only use stages defined before it`, place);
    return { kind: 'stage', index };
  }

  /**
   * The image a stage is ultimately based on (through base stages): how many layers and history
   * entries are its (none for scratch). What `--squash` keeps.
   */
  async baseImageOf(n: number): Promise<{ layers: number; history: number }> {
    let stage = this.plan.stages[n]!;
    while (stage.base.kind === 'stage') stage = this.plan.stages[stage.base.index]!;
    if (stage.base.kind !== 'image') return { layers: 0, history: 0 };
    const img = await this.images.get(stage.base.ref, this.placeOfStage(stage));
    return { layers: img.manifest.layers.length, history: img.config.history?.length ?? 0 };
  }

  private placeOfStage(stage: PlannedStage): ErrorPlace {
    return {
      file: this.df.file,
      line: stage.position.line,
      column: stage.position.column,
      source: this.df.lines[stage.position.line - 1] ?? '',
    };
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
          state.layers.slice(0, i),
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
}

/** What of RUN's sandbox the options change (BuildKit keys ExecOp's extra hosts, shm size and ulimits): '' when nothing. */
function runSandboxKey(o: BuildOptions): string {
  const parts: string[] = [];
  if (o.extraHosts?.length) parts.push(`hosts=${o.extraHosts.map(([n, ip]) => `${n}:${ip}`).join(',')}`);
  if (o.shmSize !== undefined) parts.push(`shm=${o.shmSize}`);
  if (o.ulimits?.length) parts.push(`ulimits=${o.ulimits.map((u) => `${u.type}=${u.soft}:${u.hard}`).join(',')}`);
  return parts.join(' ');
}
