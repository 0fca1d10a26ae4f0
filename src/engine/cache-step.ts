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
import { statSync } from 'node:fs';
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
import {
  FileHashCache,
  fileHashCachePath,
  hashSelection,
  BuildContext,
  hasWildcard,
  RecordedFileDigests,
  type RecordedFile,
  type WalkListings,
} from '../context/index.js';
import { isHttpUrl } from './add-url.js';
import { parseGitSource } from './add-git.js';
import {
  CacheIndex,
  chainId,
  contentMemoKey,
  EXPLAIN_MAX_FILES,
  explainMiss,
  instructionForKey,
  readExplain,
  stateId,
  stepIdentity,
  stepKey,
  writeExplain,
  type ExplainFile,
  type ExplainInput,
  type Explanation,
  type StepParts,
  type CacheRecord,
  type CacheSink,
  type CacheSource,
  type PreparedCacheExport,
  type StepState,
} from '../cache/index.js';
import { type LayerInfo } from '../layer/index.js';
import { type LoadedImage, type Store } from '../store/index.js';
import { closeViewLater, openView, snapshotSource, topLayerRoot } from '../sandbox/index.js';
import { canonicalJSON } from '../image/index.js';
import { chainIds, sha256, type Digest, type ErrorPlace, KilnError, phaseDone, phaseStart } from '../util/index.js';
import type { Step } from './expand-step.js';
import { linkedIndependently } from './copy-step.js';
import { type LeftSourceViews } from './source-views.js';

/**
 * What a step takes from a record: its whole state, or for a rebased `--link` step its layer and
 * history entry (cache-step's restore), as canonical JSON.
 */
function recordUse(rec: CacheRecord, rebase: boolean): string {
  return canonicalJSON(rebase ? { layer: rec.layer, history: rec.state.config.history?.at(-1) } : rec.state);
}

/** A function returning `value` (taken now: the state a record was made from changes as the build goes on). */
function constant(value: string): () => string {
  return () => value;
}

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
  /** The Dockerfile's part of a step's identity (cache/explain.ts): its absolute path. */
  dockerfileId?: string;
  /**
   * Steps another build of this process is running now, by key (the builds of a multi-platform
   * build share it): a lookup of such a key waits for that step, then finds its record, so a stage
   * that is the same for every platform (FROM --platform=$BUILDPLATFORM) runs once.
   */
  inflight?: Map<Digest, Promise<void>>;
  /**
   * The file digests this build's RUN layers recorded as they were tarred, by the chain id of the
   * layer (engine: run-step.ts): a `COPY --from` key over a stage's files reads only the others.
   */
  recordedDigests?: ReadonlyMap<Digest, { get(name: string): RecordedFile | undefined }>;
  /** What walks of a stage's or an image's files found, by chain id: the copy after the key walks them from it. */
  walkListings?: (chain: string) => WalkListings;
  /** A `COPY/ADD --from` key's view of its source, left for the step's copy (source-views.ts); else closed. */
  leftViews?: LeftSourceViews;
}

/** The stage and step a cache record is the state after. */
export interface RecordStep {
  stage: number;
  step: ErrorPlace & { text?: string };
}

/** A cache export made ready: its document and push (cache/), and the step of each record by key. */
export interface CacheExport {
  ready: PreparedCacheExport;
  steps: ReadonlyMap<Digest, RecordStep>;
}

export interface StepLookup {
  key?: Digest;
  /** Set on a cache hit: the state after the step. */
  record?: CacheRecord;
  /** ARG and ENV change the stage's variables: the engine runs them even on a hit. */
  replayScope: boolean;
  stage: number;
  /** Why the step missed, or where its hit came from (`build --explain`). */
  explain: Explanation;
  /** What went into the key, kept for the next build's explanation once the step is done. */
  parts?: StepParts;
  identity: string;
  /** Set on a miss under `inflight`: call once the step is recorded (or failed), to let waiters look again. */
  release?: () => void;
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
  /** The step each key met in this build belongs to (the secret proof names it). */
  private readonly steps = new Map<Digest, RecordStep>();
  /** Per stage: its base as explanations name it, and the first step that missed for a cause of its own. */
  private readonly bases = new Map<number, string>();
  private readonly firstChanged = new Map<number, { step: number; text: string }>();
  private readonly changedStages = new Set<number>();
  /**
   * Layers a lookup of this build found in the store (digest and chain id): the records of one
   * stage share their lower layers, so each is looked at once per build, not once per hit (the
   * stats of ~130 layers in a 13-step rebuild, ~30 ms of CPU). The build uses them moments later.
   */
  private readonly layersFound = new Set<string>();
  /**
   * Per step of this build that had a key, in order: the key, and what the step took from its
   * record (a hit) or left in it and carried on with (a step that ran), as `recordUse` says it:
   * what `rebuildRecords` compares with the records once the build is done.
   */
  private readonly uses: { key: Digest; rebase: boolean; used: () => string; ino?: string }[] = [];
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
    no = 0,
  ): Promise<StepLookup> {
    const replayScope = step.ins.kind === 'ARG' || step.ins.kind === 'ENV';
    // The platforms of a multi-platform build (sharing `inflight`) each keep their own last key.
    const label = this.o.inflight ? `${stageLabel(stage)} [${this.o.platform}]` : stageLabel(stage);
    const identity = stepIdentity(this.o.dockerfileId ?? this.o.plan.file, label, no);
    const rebase = (step.ins.kind === 'COPY' || step.ins.kind === 'ADD') && linkedIndependently(step.ins);
    const out: StepLookup = {
      replayScope,
      stage: stage.index,
      rebase,
      identity,
      explain: {
        reason: 'uncacheable',
        text: 'not cacheable (a source is missing, or an ADD URL has no --checksum)',
        changes: [],
      },
    };
    try {
      const k = await this.key(step, state, scope, stage.runsOn, stageResult, stage);
      out.key = k?.key;
      out.parts = k?.parts;
    } catch {
      out.key = undefined;
    }
    if (out.key === undefined) {
      this.stats.uncacheable++;
      this.changed(stage.index, no, step);
      return out;
    }
    this.note(stage.index, out.key, step);
    const skip = this.o.noCache ? 'all' : this.skipStages.has(stage.index) ? 'stage' : undefined;
    if (skip) {
      this.stats.misses++;
      out.explain = await this.explain(out, stage, no, skip);
      this.changed(stage.index, no, step, out.explain);
      return out;
    }
    const inflight = this.o.inflight;
    for (let running = inflight?.get(out.key); running; running = inflight?.get(out.key)) await running;
    // Claimed before the next await: another build looking this key up now waits for this one.
    if (inflight) {
      const key = out.key;
      let done = () => undefined as void;
      inflight.set(key, new Promise<void>((r) => (done = r)));
      out.release = () => {
        inflight.delete(key);
        done();
      };
    }
    let rec: CacheRecord | undefined;
    let from = 'local';
    try {
      const t = phaseStart();
      rec = await this.index.get(out.key);
      if (rec && !(await this.blobsPresent(rec, rebase))) rec = undefined;
      if (rec) await this.index.touch(out.key);
      phaseDone('cache record read', t);
      for (const src of this.o.from ?? []) {
        if (rec) break;
        rec = await src.record(out.key, this.o.store).catch(() => undefined);
        if (rec) {
          from = src.name ?? 'a --cache-from cache';
          if (rec.layer)
            await this.o.store.recordLayer(rec.layer.digest, {
              diffId: rec.layer.diffId,
              uncompressedSize: rec.layer.uncompressedSize,
              ...(rec.layer.contentSize !== undefined ? { contentSize: rec.layer.contentSize } : {}),
            });
          rec = await this.index.put(rec);
        }
      }
    } catch (e) {
      out.release?.();
      throw e;
    }
    if (rec) {
      this.stats.hits++;
      out.record = rec;
      // The inode of the record read: a file still there at the build's end holds what `used` says.
      const ino = from === 'local' ? this.index.inodeOf(out.key) : undefined;
      // What it took, as canonical JSON only if rebuildRecords must compare it (a record replaced
      // since): not on every hit. The record read is this build's own object, never changed (restore
      // copies it); were it changed, the comparison would only fail, and no memo be recorded.
      const read = rec;
      this.uses.push({ key: out.key, rebase, used: () => recordUse(read, rebase), ...(ino ? { ino } : {}) });
      out.release?.();
      delete out.release;
      out.explain = {
        reason: 'hit',
        text: `cache hit: ${from === 'local' ? 'local record' : `record from ${from}`} ${rec.key.slice(7, 19)}${rec.created ? ` (built ${rec.created})` : ''}`,
        changes: [],
        record: from,
      };
      // A hit is the no-op rebuild's hot path: rewrite the step's explain record only when it names
      // another key (a hit on an older record), not on every build.
      if ((await readExplain(this.index.dir, out.identity))?.key !== out.key) await this.remember(out);
    } else {
      this.stats.misses++;
      out.explain = await this.explain(out, stage, no);
      this.changed(stage.index, no, step, out.explain);
    }
    return out;
  }

  /** The stage's base as an explanation names it (the engine tells it once the base is resolved). */
  noteBase(stage: number, base: string): void {
    this.bases.set(stage, base);
  }

  private async explain(l: StepLookup, stage: PlannedStage, no: number, skip?: 'all' | 'stage'): Promise<Explanation> {
    const prev = await readExplain(this.index.dir, l.identity);
    const stages = new Map<number, { label: string; changed: boolean }>();
    for (const s of this.o.plan.stages)
      stages.set(s.index, { label: stageLabel(s), changed: this.changedStages.has(s.index) });
    const first = no === 1;
    return explainMiss(prev, l.key!, l.parts!, {
      ...(skip ? { noCache: skip } : {}),
      ...(this.firstChanged.has(stage.index) ? { firstChangedStep: this.firstChanged.get(stage.index)! } : {}),
      ...(stage.base.kind === 'stage' ? { baseStage: stages.get(stage.base.index)! } : {}),
      stages,
      first,
    });
  }

  /** A step that missed: later steps of its stage and stages built on it name it as their cause. */
  private changed(stage: number, no: number, step: Step, e?: Explanation): void {
    this.changedStages.add(stage);
    if (this.firstChanged.has(stage)) return;
    if (e && (e.reason === 'earlier-step' || e.reason === 'base-stage')) return;
    this.firstChanged.set(stage, { step: no, text: truncate(step.ins.original ?? '', 40) });
  }

  /** Keep what went into the step's key for the next build's explanation (best effort). */
  private async remember(l: StepLookup): Promise<void> {
    if (!l.parts || !l.key) return;
    await writeExplain(this.index.dir, {
      v: 1,
      identity: l.identity,
      key: l.key,
      time: new Date().toISOString(),
      parts: l.parts,
    }).catch(() => undefined);
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
    await this.remember(l);
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
    // The record file now holds what `used` says unless a rebased step kept its own layer over another's.
    const ino = l.rebase && inEffect !== rec ? undefined : this.index.inodeOf(l.key);
    this.uses.push({
      key: l.key,
      rebase: l.rebase,
      used: constant(recordUse(l.rebase ? rec : inEffect, l.rebase)),
      ...(ino ? { ino } : {}),
    });
  }

  /**
   * What a rebuild of the same inputs would read, when it would take every step from the cache and
   * make the image this build made: every step had a key, and each key's record now holds exactly
   * what this build's step took from it or carried on with (not so when a record was replaced
   * since, e.g. by two stages of this build running the same step under --no-cache, or by another
   * build). Then the records' files, each with its inode as read here (records are replaced by
   * rename, never rewritten in place: the same inode is the same record). Reads again only a record whose file is not the one this build read or wrote.
   */
  async rebuildRecords(): Promise<{ path: string; ino: string }[] | undefined> {
    if (this.stats.uncacheable > 0) return undefined;
    const out = new Map<Digest, { path: string; ino: string }>();
    for (const u of this.uses) {
      let file = out.get(u.key);
      if (!file) {
        const p = this.index.recordFile(u.key);
        const st = statSync(p, { bigint: true, throwIfNoEntry: false });
        if (!st) return undefined;
        out.set(u.key, (file = { path: p, ino: String(st.ino) }));
      }
      // Still the file this build read or wrote, whose record `used` was taken from: not read again.
      if (u.ino === file.ino) continue;
      const r = this.index.readWithInode(u.key);
      if (!r || r.ino !== file.ino || recordUse(r.record, u.rebase) !== u.used()) return undefined;
    }
    return [...out.values()];
  }

  /**
   * End of a successful build, first half: the exports made ready (layers compressed, each cache
   * config document serialized), nothing sent: what the secret proof searches before `finish`.
   */
  async prepareExports(): Promise<CacheExport[]> {
    const out: CacheExport[] = [];
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
      const ready = await sink.prepare(this.o.store, records, this.memosUsed);
      if (ready) out.push({ ready, steps: this.steps });
    }
    return out;
  }

  /** End of a successful build: remember file digests, send the exports `prepareExports` made ready. */
  async finish(exports: CacheExport[]): Promise<void> {
    await this.files.save().catch(() => undefined);
    for (const e of exports) await e.ready.push();
  }

  /** Save what was learned even when the build failed. */
  async abandon(): Promise<void> {
    await this.files.save().catch(() => undefined);
  }

  private note(stage: number, key: Digest, step: Step): void {
    if (!this.steps.has(key)) this.steps.set(key, { stage, step: { ...step.place, text: step.ins.original } });
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
    if (!this.needsBlobs)
      return this.o.store.layersPresent(rec.state.layers, rec.state.config.rootfs.diff_ids, this.layersFound);
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
    /** The stage's platform (not the build's target: a FROM --platform=$BUILDPLATFORM stage is the same for every target). */
    platform: string,
    stageResult: StageResult,
    stage: PlannedStage,
  ): Promise<{ key: Digest; parts: StepParts } | undefined> {
    const x = step.ins;
    const inputs: string[] = [];
    const parts: ExplainInput[] = [];
    const other = (text: string) => {
      inputs.push(text);
      parts.push({ kind: 'other', label: text, digest: sha256(text) });
    };
    let network: string | undefined;
    if (x.kind === 'COPY' || x.kind === 'ADD') {
      const local: string[] = [];
      for (const s of x.sources) {
        if (/^\d*<</.test(s)) continue; // a heredoc: its body is in the instruction
        if (x.kind === 'ADD' && (isHttpUrl(s) || parseGitSource(s) !== undefined)) {
          if (x.checksum === undefined) return undefined; // remote content unknown until fetched
          other(`url ${s} ${x.checksum}`);
          continue;
        }
        local.push(s);
      }
      if (local.length) {
        if (x.from !== undefined) {
          const src = step.sources[0];
          if (!src) return undefined;
          inputs.push(await this.hashFromSource(src, local, stageResult, parts, x));
        } else inputs.push(await this.hashContext(local, parts));
      }
    } else if (x.kind === 'ARG') {
      // The values the ARGs take (a --build-arg, the default, a global or automatic value): they
      // are in the step's history text, and every later step sees them.
      x.args.forEach((a, i) => {
        const v = x.values[i];
        other(v === undefined ? `arg ${a.name}` : `arg ${a.name}=${v}`);
      });
    } else if (x.kind === 'RUN') {
      network = x.network === 'none' ? 'none' : x.network === 'host' ? 'host' : (this.o.network ?? 'host');
      if (this.o.runSandbox) other(`sandbox ${this.o.runSandbox}`);
      let fromIndex = 0;
      for (const m of x.mounts) {
        const from = 'from' in m && m.from !== undefined ? step.sources[fromIndex++] : undefined;
        if (m.type !== 'bind') continue;
        const source = bindSource(m);
        if ('from' in m && m.from !== undefined) {
          if (!from) return undefined;
          inputs.push(await this.hashFromSource(from, [source], stageResult, parts));
        } else inputs.push(await this.hashContext([source], parts));
      }
    }
    const env = scope.runEnv().filter(([k]) => !PROXY_ARGS.includes(k));
    // COPY --link: its layer is made from its sources alone (copy-step.ts), so neither the layers
    // below nor the variables (already expanded into the instruction) are in its key; the working
    // directory is, as a relative destination depends on it.
    const linked = (x.kind === 'COPY' || x.kind === 'ADD') && linkedIndependently(x);
    const parent = linked ? sha256(`kiln-link workdir=${state.config.config?.WorkingDir || '/'}`) : stateId(state);
    const keyEnv = linked ? [] : env;
    const key = stepKey({
      parent,
      instruction: x,
      env: keyEnv,
      platform,
      sourceDateEpoch: this.o.sourceDateEpoch,
      network,
      inputs,
    });
    const argNames = new Set(scope.argEntries().map(([k]) => k));
    return {
      key,
      parts: {
        parent,
        base: this.bases.get(stage.index) ?? baseLabel(stage),
        // An ARG's values are its inputs (above): compared there, to name the build arg.
        instruction: canonicalJSON(instructionForKey(x.kind === 'ARG' ? { ...x, values: undefined } : x)),
        text: x.original ?? '',
        env: keyEnv,
        args: keyEnv.map(([k]) => k).filter((k) => argNames.has(k)),
        platform,
        sourceDateEpoch: this.o.sourceDateEpoch ?? null,
        network: network ?? null,
        inputs: parts,
      },
    };
  }

  private async hashContext(sources: string[], parts: ExplainInput[]): Promise<Digest> {
    const t = performance.now();
    let files: ExplainFile[] | undefined = [];
    const onEntry = (e: ExplainFile) => {
      if (files && files.length >= EXPLAIN_MAX_FILES) files = undefined;
      files?.push(e);
    };
    try {
      const digest = await hashSelection(this.o.ctx, sources, { files: this.files, onEntry });
      parts.push({ kind: 'context', label: sources.join(' '), digest, ...(files ? { files } : {}) });
      return digest;
    } finally {
      this.stats.contextHashMs += performance.now() - t;
      phaseDone('context hashed', t);
    }
  }

  /** Content of paths in another stage's or an image's file system, remembered per chain id. */
  private async hashFromSource(
    src: SourceRef,
    sources: string[],
    stageResult: StageResult,
    parts: ExplainInput[],
    /** The COPY/ADD whose copy reads the same source next: a view mounted here is left for it. */
    copy?: object,
  ): Promise<Digest> {
    const d = await this.hashFromSourceOnly(src, sources, stageResult, copy);
    parts.push(
      src.kind === 'stage'
        ? { kind: 'stage', label: `${sources.join(' ')} of stage ${src.index}`, digest: d, stage: src.index }
        : { kind: 'image', label: `${sources.join(' ')} of ${src.ref}`, digest: d },
    );
    return d;
  }

  private async hashFromSourceOnly(
    src: SourceRef,
    sources: string[],
    stageResult: StageResult,
    copy?: object,
  ): Promise<Digest> {
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
      // Sources wholly in the top layer (a builder's output directory) are walked in its snapshot,
      // with no view mounted when none is needed to tell (sandbox's snapshotSource).
      const literal = sources.every((src) => !hasWildcard(src));
      const direct = literal ? await snapshotSource(this.o.store, layers, diffIds, sources) : undefined;
      const view = direct ? undefined : await openView(this.o.store, layers, diffIds);
      // The stage's files whose RUN layer recorded their digests (the top layer's first) are not read.
      let inTopLayer = false;
      const recorded = chainIds(diffIds)
        .reverse()
        .flatMap((c) => this.o.recordedDigests?.get(c) ?? []);
      try {
        const files = recorded.length ? new RecordedFileDigests(recorded) : undefined;
        const top = direct?.root ?? (literal ? topLayerRoot(this.o.store, diffIds, sources, view!.root) : undefined);
        inTopLayer = top !== undefined;
        d = await hashSelection(BuildContext.plain(top ?? view!.root, this.o.walkListings?.(chain)), sources, {
          keepOwner: true,
          ...(files ? { files } : {}),
        });
      } finally {
        if (view) {
          if (copy && this.o.leftViews) this.o.leftViews.leave(copy, chain, view);
          else closeViewLater(view);
        }
        this.stats.stageHashMs += performance.now() - t;
        phaseDone(inTopLayer ? "stage paths hashed (in the top layer's snapshot)" : 'stage paths hashed', t);
      }
      await this.index.putMemo(memoKey, d);
    }
    this.memosUsed.set(memoKey, d);
    return d;
  }
}

function stageLabel(s: PlannedStage): string {
  return s.name ?? String(s.index);
}

function baseLabel(s: PlannedStage): string {
  return s.base.kind === 'image' ? s.base.ref : s.base.kind === 'stage' ? `stage ${s.base.index}` : 'scratch';
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** The source path of a bind mount (BuildKit: the root of the context or stage by default). */
function bindSource(m: Extract<MountSpec, { type: 'bind' }>): string {
  return path.posix.normalize(`/${m.source ?? '.'}`).slice(1) || '.';
}
