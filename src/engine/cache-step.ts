/**
 * The build cache as the engine sees it: before a step, its key (cache/keys.ts) and, when the
 * store (or an imported remote cache) has a record for it, the state after the step; after a
 * step that ran, a record of its result. What a key needs from outside the state is computed
 * here: the content of COPY/ADD sources (context/hash.ts, with the per-store file-digest cache),
 * of `COPY --from` paths in another stage or image (remembered per chain id, so an unchanged
 * source stage is not unpacked again), of RUN --mount=type=bind sources.
 *
 * A step whose key cannot be computed (a source missing, an ADD URL without --checksum) simply
 * runs uncached; the step itself then reports the error if there is one.
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { type MountSpec } from '../dockerfile/index.js';
import {
  type BuildPlan,
  type PlannedStage,
  type SourceRef,
  shippedStages,
  PROXY_ARGS,
  type StageScope,
} from '../plan/index.js';
import { FileHashCache, fileHashCachePath, hashSelection, BuildContext } from '../context/index.js';
import { isHttpUrl } from './add-url.js';
import { parseGitSource } from './add-git.js';
import {
  CacheIndex,
  chainId,
  contentMemoKey,
  stateId,
  stepKey,
  type CacheRecord,
  type CacheSink,
  type CacheSource,
  type StepState,
} from '../cache/index.js';
import { type LayerInfo } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';
import { openView } from '../sandbox/index.js';
import { sha256, type Digest, KilnError } from '../util/index.js';
import type { Step } from './expand-step.js';
import { linkedIndependently } from './copy-step.js';

// Where records also come from and go (registry caches): cache/'s types, as the engine takes them.
export type { CacheSink, CacheSource } from '../cache/index.js';

export interface StepCacheOptions {
  store: Store;
  ctx: BuildContext;
  plan: BuildPlan;
  platform: string;
  sourceDateEpoch?: number;
  network?: 'host' | 'none';
  /** --no-cache: run every step (results are still recorded for later builds). */
  noCache?: boolean;
  /** --no-cache-filter: stage names or indexes whose steps run without lookups. */
  noCacheFilter?: string[];
  from?: CacheSource[];
  to?: CacheSink[];
  /** How the build finds an image a step reads (`--from`, `from=`): named contexts, pulls (default: the store). */
  image?: (ref: string) => Promise<LoadedImage>;
  /** RUN's sandbox options (--add-host, --shm-size, --ulimit) as text: in every RUN key when not empty. */
  runSandbox?: string;
}

export interface StepLookup {
  key?: Digest;
  /** Set on a cache hit: the state after the step. */
  record?: CacheRecord;
  /** ARG and ENV change the stage's variables: the engine runs them even on a hit. */
  replayScope: boolean;
  stage: number;
  /**
   * A `COPY --link` keyed without the layers below (BuildKit's rebase): a hit puts the recorded
   * layer on top of the stage as it is now, instead of replacing the stage's state.
   */
  rebase: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  uncacheable: number;
  /** Time spent hashing context sources (ms) and what the file-digest cache saved. */
  contextHashMs: number;
  files: { hits: number; misses: number; bytesRead: number };
  /** Time spent hashing paths copied from other stages or images (ms). */
  stageHashMs: number;
}

type StageResult = (n: number) => Promise<StepState>;

export class StepCache {
  readonly index: CacheIndex;
  private readonly files: FileHashCache;
  private readonly skipStages = new Set<number>();
  /** Keys met in this build per stage, in step order (hits and recorded), for export. */
  private readonly used = new Map<number, Digest[]>();
  private readonly memosUsed = new Map<Digest, Digest>();
  readonly stats: CacheStats = {
    hits: 0,
    misses: 0,
    uncacheable: 0,
    contextHashMs: 0,
    files: { hits: 0, misses: 0, bytesRead: 0 },
    stageHashMs: 0,
  };

  constructor(private readonly o: StepCacheOptions) {
    this.index = CacheIndex.forStore(o.store);
    this.files = new FileHashCache(fileHashCachePath(this.index.filesDir, o.ctx.root));
    this.stats.files = this.files.stats;
    for (const f of o.noCacheFilter ?? []) {
      const name = f.trim().toLowerCase();
      if (name === '') continue;
      const st =
        o.plan.stages.find((s) => s.name?.toLowerCase() === name) ??
        (/^\d+$/.test(name) ? o.plan.stages[Number(name)] : undefined);
      if (!st)
        throw new KilnError(
          'USAGE',
          `--no-cache-filter: no stage named "${f}"`,
          {},
          { hint: `stages: ${o.plan.stages.map((s) => s.name ?? String(s.index)).join(', ')}` },
        );
      this.skipStages.add(st.index);
    }
  }

  /**
   * The key of the step (read once by expand-step.ts: the key describes exactly what runs) and,
   * unless caching is off for it, the recorded result. `scope`: the stage's variables before it.
   */
  async lookup(
    step: Step,
    state: StepState,
    scope: StageScope,
    stage: PlannedStage,
    stageResult: StageResult,
  ): Promise<StepLookup> {
    const replayScope = step.ins.kind === 'ARG' || step.ins.kind === 'ENV';
    const rebase = (step.ins.kind === 'COPY' || step.ins.kind === 'ADD') && linkedIndependently(step.ins);
    const out: StepLookup = { replayScope, stage: stage.index, rebase };
    try {
      out.key = await this.key(step, state, scope, stageResult);
    } catch {
      out.key = undefined;
    }
    if (out.key === undefined) {
      this.stats.uncacheable++;
      return out;
    }
    this.note(stage.index, out.key);
    if (this.o.noCache || this.skipStages.has(stage.index)) {
      this.stats.misses++;
      return out;
    }
    let rec = await this.index.get(out.key);
    if (rec && !(await this.blobsPresent(rec, rebase))) rec = undefined;
    if (rec) await this.index.touch(out.key);
    for (const src of this.o.from ?? []) {
      if (rec) break;
      rec = await src.record(out.key, this.o.store).catch(() => undefined);
      if (rec) {
        if (rec.layer)
          await this.o.store.recordLayer(rec.layer.digest, {
            diffId: rec.layer.diffId,
            uncompressedSize: rec.layer.uncompressedSize,
            ...(rec.layer.contentSize !== undefined ? { contentSize: rec.layer.contentSize } : {}),
          });
        rec = await this.index.put(rec);
      }
    }
    if (rec) {
      this.stats.hits++;
      out.record = rec;
    } else this.stats.misses++;
    return out;
  }

  /**
   * Put the recorded state in place of the engine's (in place: the engine holds the object); for a
   * rebased `--link` step, the recorded layer and history entry on top of the engine's state: only
   * the diff_id chain and the config change, the layer is reused as it is.
   */
  restore(l: StepLookup, state: StepState): void {
    if (l.rebase) {
      const rec = l.record!;
      if (rec.layer) {
        state.layers.push({ mediaType: rec.layer.mediaType, digest: rec.layer.digest, size: rec.layer.size });
        state.config.rootfs.diff_ids.push(rec.layer.diffId);
      }
      const h = rec.state.config.history?.at(-1);
      if (h) {
        (state.config.history ??= []).push(structuredClone(h));
        if (h.created !== undefined) state.config.created = h.created;
      }
      return;
    }
    const s = structuredClone(l.record!.state);
    state.config = s.config;
    state.layers = s.layers;
    state.cmdSet = s.cmdSet;
    state.shell = s.shell;
  }

  /** Record what a step that ran produced. */
  async record(l: StepLookup, state: StepState, layer: LayerInfo | undefined): Promise<void> {
    if (l.key === undefined) return;
    const rec: CacheRecord = {
      v: 1,
      key: l.key,
      created: new Date().toISOString(),
      ...(layer
        ? {
            layer: {
              mediaType: layer.mediaType,
              digest: layer.digest,
              size: layer.size,
              diffId: layer.diffId,
              uncompressedSize: layer.uncompressedSize,
              ...(layer.contentSize !== undefined ? { contentSize: layer.contentSize } : {}),
            },
          }
        : {}),
      state: { config: state.config, layers: state.layers, cmdSet: state.cmdSet, shell: state.shell },
    };
    // A concurrent build that recorded the same key first wins: carry on from its result, so the
    // records of the steps after this one chain up with it (not with a result nobody can find).
    // Under --cache-to, a step that ran replaces a record whose layers are snapshot-only.
    const replace = this.o.noCache === true || this.skipStages.has(l.stage) || this.needsBlobs;
    const inEffect = await this.index.put(rec, { replace });
    // A rebased step's layer is the same files whoever recorded it first: keep the one just made.
    if (inEffect !== rec && !l.rebase) this.restore({ ...l, record: inEffect }, state);
  }

  /** End of a successful build: remember file digests, export records where asked. */
  async finish(): Promise<void> {
    await this.files.save().catch(() => undefined);
    for (const sink of this.o.to ?? []) {
      const stages = sink.mode === 'max' ? [...this.used.keys()] : shippedStages(this.o.plan);
      const records: CacheRecord[] = [];
      const seen = new Set<string>();
      for (const s of stages) {
        for (const k of this.used.get(s) ?? []) {
          if (seen.has(k)) continue;
          seen.add(k);
          const r = await this.index.get(k);
          if (r) records.push(r);
        }
      }
      await sink.export(this.o.store, records, this.memosUsed);
    }
  }

  /** Save what was learned even when the build failed. */
  async abandon(): Promise<void> {
    await this.files.save().catch(() => undefined);
  }

  private note(stage: number, key: Digest): void {
    const list = this.used.get(stage) ?? [];
    list.push(key);
    this.used.set(stage, list);
  }

  /**
   * A record is usable while its layers are: blobs, or snapshots for snapshot-only layers — but
   * only blobs when the records go to a cache export, which carries blobs.
   */
  private async blobsPresent(rec: CacheRecord, rebase: boolean): Promise<boolean> {
    // A rebased step needs its own layer only (a COPY's layer is always a blob).
    if (rebase) return rec.layer === undefined || this.o.store.hasBlob(rec.layer.digest);
    if (!this.needsBlobs) return this.o.store.layersPresent(rec.state.layers, rec.state.config.rootfs.diff_ids);
    const have = await Promise.all(rec.state.layers.map((l) => this.o.store.hasBlob(l.digest)));
    return have.every(Boolean);
  }

  /** Every layer must be a blob (not snapshot-only): the build exports its cache (--cache-to). */
  get needsBlobs(): boolean {
    return (this.o.to?.length ?? 0) > 0;
  }

  private async key(
    step: Step,
    state: StepState,
    scope: StageScope,
    stageResult: StageResult,
  ): Promise<Digest | undefined> {
    const x = step.ins;
    const inputs: string[] = [];
    let network: string | undefined;
    if (x.kind === 'COPY' || x.kind === 'ADD') {
      const local: string[] = [];
      for (const s of x.sources) {
        if (/^\d*<</.test(s)) continue; // a heredoc: its body is in the instruction
        if (x.kind === 'ADD' && (isHttpUrl(s) || parseGitSource(s) !== undefined)) {
          if (x.checksum === undefined) return undefined; // remote content unknown until fetched
          inputs.push(`url ${s} ${x.checksum}`);
          continue;
        }
        local.push(s);
      }
      if (local.length) {
        if (x.from !== undefined) {
          const src = step.sources[0];
          if (!src) return undefined;
          inputs.push(await this.hashFromSource(src, local, stageResult));
        } else inputs.push(await this.hashContext(local));
      }
    } else if (x.kind === 'ARG') {
      // The values the ARGs take (a --build-arg, the default, a global or automatic value): they
      // are in the step's history text, and every later step sees them.
      x.args.forEach((a, i) => {
        const v = x.values[i];
        inputs.push(v === undefined ? `arg ${a.name}` : `arg ${a.name}=${v}`);
      });
    } else if (x.kind === 'RUN') {
      network = x.network === 'none' ? 'none' : x.network === 'host' ? 'host' : (this.o.network ?? 'host');
      if (this.o.runSandbox) inputs.push(`sandbox ${this.o.runSandbox}`);
      let fromIndex = 0;
      for (const m of x.mounts) {
        const from = 'from' in m && m.from !== undefined ? step.sources[fromIndex++] : undefined;
        if (m.type !== 'bind') continue;
        const source = bindSource(m);
        if ('from' in m && m.from !== undefined) {
          if (!from) return undefined;
          inputs.push(await this.hashFromSource(from, [source], stageResult));
        } else inputs.push(await this.hashContext([source]));
      }
    }
    const env = scope.runEnv().filter(([k]) => !PROXY_ARGS.includes(k));
    // COPY --link: its layer is made from its sources alone (copy-step.ts), so neither the layers
    // below nor the variables (already expanded into the instruction) are in its key; the working
    // directory is, as a relative destination depends on it.
    const linked = (x.kind === 'COPY' || x.kind === 'ADD') && linkedIndependently(x);
    return stepKey({
      parent: linked ? sha256(`kiln-link workdir=${state.config.config?.WorkingDir || '/'}`) : stateId(state),
      instruction: x,
      env: linked ? [] : env,
      platform: this.o.platform,
      sourceDateEpoch: this.o.sourceDateEpoch,
      network,
      inputs,
    });
  }

  private async hashContext(sources: string[]): Promise<Digest> {
    const t = performance.now();
    try {
      return await hashSelection(this.o.ctx, sources, { files: this.files });
    } finally {
      this.stats.contextHashMs += performance.now() - t;
    }
  }

  /** Content of paths in another stage's or an image's file system, remembered per chain id. */
  private async hashFromSource(src: SourceRef, sources: string[], stageResult: StageResult): Promise<Digest> {
    let layers;
    let diffIds: Digest[];
    if (src.kind === 'stage') {
      const s = await stageResult(src.index);
      layers = s.layers;
      diffIds = s.config.rootfs.diff_ids;
    } else {
      const img = await (this.o.image ? this.o.image(src.ref) : this.o.store.resolveImage(src.ref));
      layers = img.manifest.layers;
      diffIds = img.config.rootfs.diff_ids;
    }
    const chain = chainId(diffIds);
    // The whole file system: its chain id is its content identity, no need to read it.
    if (sources.every((s) => path.posix.normalize(`/${s}`) === '/')) return sha256(`kiln-fs ${chain}`);
    const memoKey = contentMemoKey(chain, { sources, keepOwner: true });
    let d = await this.index.getMemo(memoKey);
    for (const r of this.o.from ?? []) {
      if (d) break;
      d = await r.memo(memoKey).catch(() => undefined);
    }
    if (!d) {
      const t = performance.now();
      const view = await openView(this.o.store, layers, diffIds);
      try {
        d = await hashSelection(BuildContext.plain(view.root), sources, { keepOwner: true });
      } finally {
        await view.close();
        this.stats.stageHashMs += performance.now() - t;
      }
      await this.index.putMemo(memoKey, d);
    }
    this.memosUsed.set(memoKey, d);
    return d;
  }
}

/** The source path of a bind mount (BuildKit: the root of the context or stage by default). */
function bindSource(m: Extract<MountSpec, { type: 'bind' }>): string {
  return path.posix.normalize(`/${m.source ?? '.'}`).slice(1) || '.';
}
