/**
 * The build engine: walks the plan, builds the needed stages (independent ones in parallel, each
 * once), runs every instruction — RUN in the sandbox, COPY/ADD straight into layer tars, the rest
 * as config changes — and writes the target stage as an image in the store.
 */
import { lstatSync, mkdirSync, openSync, readSync, closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { runCapture } from '../util/proc.js';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import type { CopyInstruction, Dockerfile, Instruction, RunInstruction } from '../dockerfile/ast.js';
import { expandWord, ExpansionError } from '../dockerfile/expand.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { createPlan } from '../plan/planner.js';
import { StageScope, platformArgs, PROXY_ARGS } from '../plan/scope.js';
import type { BuildPlan, PlannedStage } from '../plan/types.js';
import { BuildContext } from '../context/index.js';
import { encodeLayer, type LayerInfo } from '../layer/compress.js';
import { tarEntries, type EntrySpec } from '../layer/write.js';
import { hostPlatform } from '../image/platform.js';
import type { ContainerConfig, Descriptor, HistoryEntry, ImageConfig } from '../image/types.js';
import type { Store } from '../store/store.js';
import { DEFAULT_PATH, runStep, type BackendKind, type SnapshotterKind } from '../sandbox/index.js';
import { openView, resolveInRoot } from '../sandbox/view.js';
import type { Digest } from '../util/digest.js';
import { KilnError, type ErrorPlace } from '../util/errors.js';
import { resolveChown, resolveUser } from '../util/users.js';
import { planCopy } from './copy.js';
import type { EventSink } from './events.js';

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
  signal?: AbortSignal;
  sourceDateEpoch?: number;
}

export interface BuildResult {
  imageId: Digest;
  descriptor: Descriptor;
  plan: BuildPlan;
  size: number;
}

interface StageState {
  config: ImageConfig;
  layers: Descriptor[];
  /** Set when CMD was given in this stage: ENTRYPOINT then keeps it. */
  cmdSet: boolean;
  shell: string[];
}

const MAX_LAYERS = 127;

export async function build(o: BuildOptions, emit: EventSink = () => undefined): Promise<BuildResult> {
  const t0 = Date.now();
  const df = parseDockerfile(o.dockerfileText, { file: o.dockerfileName });
  const platform = o.platform ?? 'linux/amd64';
  const plan = createPlan(df, { buildArgs: o.buildArgs, target: o.target, platform });
  for (const w of plan.warnings) emit({ type: 'warning', message: `${w.line !== undefined ? `${plan.file}:${w.line}: ` : ''}${w.message}` });
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
  // Waves of independent stages run in parallel (bounded by the CPU count).
  const limit = Math.max(1, availableParallelism());
  for (const wave of plan.waves) {
    for (let i = 0; i < wave.length; i += limit) await Promise.all(wave.slice(i, i + limit).map(stageResult));
  }
  const final = await stageResult(plan.target);
  const config = structuredClone(final.config);
  if (o.labels && Object.keys(o.labels).length) config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...o.labels } };
  const img = await o.store.writeImage(config, final.layers);
  for (const t of o.tags ?? []) await o.store.setTag(t, img.descriptor);
  const loaded = { descriptor: img.descriptor, manifest: img.manifest, config, id: img.id };
  const size = await o.store.imageSize(loaded);
  emit({ type: 'done', imageId: img.id, manifestDigest: img.descriptor.digest, ms: Date.now() - t0, layers: final.layers.length, size });
  return { imageId: img.id, descriptor: img.descriptor, plan, size };
}

class Engine {
  private readonly automatic: Record<string, string>;
  private readonly globals: Map<string, string | undefined>;

  constructor(
    private readonly o: BuildOptions,
    private readonly df: Dockerfile,
    private readonly plan: BuildPlan,
    private readonly ctx: BuildContext,
    private readonly emit: EventSink,
  ) {
    this.automatic = platformArgs(plan.platform.target, plan.platform.build);
    this.globals = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
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

  async buildStage(stage: PlannedStage, stageResult: (n: number) => Promise<StageState>): Promise<StageState> {
    const t0 = Date.now();
    const store = this.o.store;
    let state: StageState;
    const baseLabel = stage.base.kind === 'image' ? stage.base.ref : stage.base.kind === 'stage' ? `stage ${stage.base.index}` : 'scratch';
    this.emit({ type: 'stage-start', stage: stage.index, name: stage.name, base: baseLabel });
    if (stage.base.kind === 'stage') {
      state = structuredClone(await stageResult(stage.base.index));
    } else if (stage.base.kind === 'scratch') {
      const p = hostPlatform();
      state = { config: { architecture: p.architecture, os: p.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] }, layers: [], cmdSet: false, shell: ['/bin/sh', '-c'] };
    } else {
      const ref = stage.base.ref;
      const img = await store.resolveImage(ref).catch((e: unknown) => {
        if (e instanceof KilnError && e.code === 'NOT_FOUND') {
          throw new KilnError('NOT_FOUND', `base image ${ref} is not in the store`, { ...this.placeOfStage(stage), image: ref }, { hint: `bring it in with 'kiln import ROOTFS.tar ${ref}' or 'kiln load' (registry pulls come with the registry client)` });
        }
        throw e;
      });
      const config = structuredClone(img.config);
      config.history ??= [];
      state = { config, layers: [...img.manifest.layers], cmdSet: false, shell: config.config?.Shell ?? ['/bin/sh', '-c'] };
    }
    // A base without PATH (e.g. an imported rootfs) gets the default one, as BuildKit does: in the
    // stage's ENV (so `ENV PATH=/x:$PATH` works) and in the image.
    if (!(state.config.config?.Env ?? []).some((e) => e.startsWith('PATH='))) this.setEnv(state, 'PATH', DEFAULT_PATH);
    const scope = new StageScope(this.globals, this.o.buildArgs ?? new Map(), this.automatic, (state.config.config?.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]));
    // ONBUILD triggers of an external base run first, then are cleared.
    const triggers = stage.base.kind === 'image' ? (state.config.config?.OnBuild ?? []) : [];
    if (state.config.config) state.config.config.OnBuild = null;
    const instructions: Instruction[] = [...triggers.map((t) => parseDockerfile(t, { file: `${this.df.file} (ONBUILD)` }).instructions[0]!).filter(Boolean), ...stage.instructions.map((p) => p.instruction)];
    for (const [i, ins] of instructions.entries()) {
      if (this.o.signal?.aborted) throw new KilnError('BUILD', 'build interrupted');
      const st = Date.now();
      this.emit({ type: 'step-start', stage: stage.index, step: i + 1, total: instructions.length, text: ins.original, line: ins.range.start.line });
      const layer = await this.step(ins, state, scope, stage, stageResult, i + 1);
      this.emit({ type: 'step-done', stage: stage.index, step: i + 1, ms: Date.now() - st, layer: layer ? { digest: layer.digest, size: layer.size } : undefined });
    }
    this.emit({ type: 'stage-done', stage: stage.index, ms: Date.now() - t0 });
    return state;
  }

  private placeOfStage(stage: PlannedStage): ErrorPlace {
    return { file: this.df.file, line: stage.position.line, column: stage.position.column, source: this.df.lines[stage.position.line - 1] ?? '' };
  }

  private cfg(state: StageState): ContainerConfig {
    state.config.config ??= {};
    return state.config.config;
  }

  private history(state: StageState, createdBy: string, empty: boolean): void {
    const created = this.o.sourceDateEpoch !== undefined ? new Date(this.o.sourceDateEpoch * 1000).toISOString() : new Date().toISOString();
    const h: HistoryEntry = { created, created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
    if (empty) h.empty_layer = true;
    (state.config.history ??= []).push(h);
    state.config.created = created;
  }

  private async addLayer(state: StageState, tar: NodeJS.ReadableStream, ins: Instruction): Promise<LayerInfo> {
    if (state.layers.length >= MAX_LAYERS) throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, this.place(ins), { hint: 'merge RUN steps or use a multi-stage build' });
    const w = await this.o.store.createBlobWriter();
    let info: LayerInfo;
    try {
      info = await encodeLayer(tar as never, w.stream, { compression: 'gzip' });
    } catch (e) {
      await w.abort();
      throw e;
    }
    await w.commit({ digest: info.digest, size: info.size });
    await this.o.store.recordLayer(info.digest, { diffId: info.diffId, uncompressedSize: info.uncompressedSize });
    return this.pushLayer(state, info, ins);
  }

  private pushLayer(state: StageState, info: LayerInfo, ins: Instruction): LayerInfo {
    if (state.layers.length >= MAX_LAYERS) throw new KilnError('BUILD', `this step would give the image more than ${MAX_LAYERS} layers`, this.place(ins));
    state.layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
    state.config.rootfs.diff_ids.push(info.diffId);
    return info;
  }

  private envList(state: StageState): string[] {
    return state.config.config?.Env ?? [];
  }

  private setEnv(state: StageState, key: string, value: string): void {
    const env = this.envList(state).filter((e) => !e.startsWith(`${key}=`));
    env.push(`${key}=${value}`);
    this.cfg(state).Env = env;
  }

  private async step(ins: Instruction, state: StageState, scope: StageScope, stage: PlannedStage, stageResult: (n: number) => Promise<StageState>, stepNo: number): Promise<LayerInfo | undefined> {
    const x = (w: string) => this.expand(w, scope, ins);
    const c = () => this.cfg(state);
    const cmdForm = (f: { form: 'exec'; args: string[] } | { form: 'shell'; command: string }) => (f.form === 'exec' ? f.args : [...state.shell, f.command]);
    switch (ins.kind) {
      case 'ARG': {
        for (const a of ins.args) scope.declareArg(a.name, a.default !== undefined ? x(a.default) : undefined);
        this.history(state, `ARG ${ins.args.map((a) => (a.default !== undefined ? `${a.name}=${x(a.default)}` : a.name)).join(' ')}`, true);
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
        for (const raw of ins.ports.map(x)) {
          const [range, proto = 'tcp'] = raw.split('/');
          const [lo, hi] = range!.split('-').map(Number);
          if (!Number.isInteger(lo) || (hi !== undefined && !Number.isInteger(hi))) throw new KilnError('BUILD', `invalid port "${raw}"`, this.place(ins));
          for (let p = lo!; p <= (hi ?? lo!); p++) ports[`${p}/${proto.toLowerCase()}`] = {};
        }
        this.history(state, `EXPOSE map[${Object.keys(ports).join(' ')}]`, true);
        return undefined;
      }
      case 'VOLUME': {
        const vols = (c().Volumes ??= {});
        for (const v of ins.paths.map(x)) vols[v] = {};
        this.history(state, `VOLUME ${JSON.stringify(ins.paths.map(x))}`, true);
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
        this.history(state, `SHELL ${JSON.stringify(ins.shell)}`, true);
        return undefined;
      case 'CMD':
        c().Cmd = cmdForm(ins.command);
        state.cmdSet = true;
        this.history(state, `CMD ${JSON.stringify(c().Cmd)}`, true);
        return undefined;
      case 'ENTRYPOINT':
        c().Entrypoint = cmdForm(ins.command);
        // An ENTRYPOINT set in a stage clears the CMD inherited from the base (docker's rule).
        if (!state.cmdSet) c().Cmd = null;
        this.history(state, `ENTRYPOINT ${JSON.stringify(c().Entrypoint)}`, true);
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
        this.history(state, `HEALTHCHECK ${ins.none ? 'NONE' : JSON.stringify(c().Healthcheck!.Test)}`, true);
        return undefined;
      }
      case 'ONBUILD':
        (c().OnBuild ??= []).push(ins.expression);
        this.history(state, `ONBUILD ${ins.expression}`, true);
        return undefined;
      case 'WORKDIR': {
        const wd = path.posix.resolve(c().WorkingDir || '/', x(ins.path));
        c().WorkingDir = wd;
        // Created if missing, owned by the current USER (as BuildKit does).
        const view = await openView(this.o.store, state.layers, state.config.rootfs.diff_ids);
        let entries: EntrySpec[] = [];
        try {
          const real = await resolveInRoot(view.root, wd);
          const owner = c().User ? resolveUser(view.root, c().User!) : { uid: 0, gid: 0 };
          const mtime = this.o.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
          for (let d = real; d !== '' && d !== '.'; d = path.posix.dirname(d) === '.' ? '' : path.posix.dirname(d)) {
            if (pathExists(view.root, d)) break;
            entries.unshift({ path: d, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime });
          }
        } finally {
          await view.close();
        }
        if (entries.length === 0) {
          this.history(state, `WORKDIR ${wd}`, true);
          return undefined;
        }
        const l = await this.addLayer(state, tarEntries(entries), ins);
        this.history(state, `WORKDIR ${wd}`, false);
        entries = [];
        return l;
      }
      case 'COPY':
      case 'ADD':
        return this.copy(ins, state, scope, stage, stageResult);
      case 'RUN':
        return this.run(ins, state, scope, stage, stepNo);
      case 'FROM':
        throw new KilnError('INTERNAL', 'FROM inside a stage');
    }
    return undefined;
  }

  private async copy(ins: CopyInstruction, state: StageState, scope: StageScope, stage: PlannedStage, stageResult: (n: number) => Promise<StageState>): Promise<LayerInfo | undefined> {
    const x = (w: string) => this.expand(w, scope, ins);
    const store = this.o.store;
    const place = this.place(ins);
    if (ins.kind === 'ADD' && ins.sources.some((s) => /^(https?|git):\/\//.test(x(s)))) {
      throw new KilnError('UNSUPPORTED', 'ADD of a URL is not supported yet', place, { hint: 'download it in a RUN step, or COPY a local file' });
    }
    if (ins.heredocs.length) throw new KilnError('UNSUPPORTED', 'COPY/ADD heredocs are not supported yet', place);
    const planned = stage.instructions.find((p) => p.instruction === ins);
    let srcView: { root: string; close(): Promise<void> } | undefined;
    let srcCtx = this.ctx;
    let keepOwner = false;
    if (ins.from !== undefined) {
      const src = planned?.sources?.[0];
      if (!src) throw new KilnError('INTERNAL', 'unresolved --from', place);
      if (src.kind === 'stage') {
        const s = await stageResult(src.index);
        srcView = await openView(store, s.layers, s.config.rootfs.diff_ids);
      } else {
        const img = await store.resolveImage(src.ref).catch(() => {
          throw new KilnError('NOT_FOUND', `COPY --from image ${src.ref} is not in the store`, { ...place, image: src.ref }, { hint: `bring it in with 'kiln import' or 'kiln load'` });
        });
        srcView = await openView(store, img.manifest.layers, img.config.rootfs.diff_ids);
      }
      srcCtx = BuildContext.plain(srcView.root);
      keepOwner = true;
    }
    const destView = await openView(store, state.layers, state.config.rootfs.diff_ids);
    const cleanups: string[] = [];
    try {
      const owner = ins.chown !== undefined ? resolveChown(destView.root, x(ins.chown)) : undefined;
      let chmod: number | undefined;
      if (ins.chmod !== undefined) {
        const m = x(ins.chmod);
        if (!/^[0-7]{3,4}$/.test(m)) throw new KilnError('BUILD', `invalid --chmod "${m}": expected an octal mode like 0755`, place);
        chmod = parseInt(m, 8);
      }
      // ADD of a local tar archive (plain, gzip, bzip2, xz) unpacks it, keeping its ownership.
      const sources: { ctx: BuildContext; pattern: string; keepOwner?: boolean }[] = [];
      for (const s of ins.sources.map(x)) {
        if (ins.kind === 'ADD' && ins.from === undefined && ins.unpack !== false) {
          const archives = srcCtx.select(s, place).filter((e) => e.stat.isFile() && isArchive(e.abs));
          if (archives.length) {
            for (const a of archives) {
              const dir = path.join(store.tmpDir, `tmp-${process.pid}-add-${randomBytes(6).toString('hex')}`);
              mkdirSync(dir, { recursive: true });
              cleanups.push(dir);
              const r = await runCapture('tar', ['-x', '-f', a.abs, '-C', dir]);
              // Not a tar after all (e.g. a lone .gz file): docker copies it as it is.
              if (r.code !== 0) sources.push({ ctx: srcCtx, pattern: a.rel });
              else sources.push({ ctx: BuildContext.plain(dir), pattern: '.', keepOwner: true });
            }
            const rest = srcCtx.select(s, place).filter((e) => !archives.some((a) => a.rel === e.rel));
            for (const e of rest) sources.push({ ctx: srcCtx, pattern: e.rel });
            continue;
          }
        }
        sources.push({ ctx: srcCtx, pattern: s });
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
        place,
      });
      const text = `${ins.kind} ${ins.from !== undefined ? `--from=${x(ins.from)} ` : ''}${ins.chown !== undefined ? `--chown=${x(ins.chown)} ` : ''}${ins.sources.map(x).join(' ')} ${x(ins.dest)} # buildkit`;
      const l = await this.addLayer(state, tarEntries(entries, { sourceDateEpoch: this.o.sourceDateEpoch }), ins);
      this.history(state, text, false);
      return l;
    } finally {
      await destView.close();
      await srcView?.close();
      for (const d of cleanups) await rm(d, { recursive: true, force: true });
    }
  }

  private async run(ins: RunInstruction, state: StageState, scope: StageScope, stage: PlannedStage, stepNo: number): Promise<LayerInfo | undefined> {
    const place = this.place(ins);
    if (ins.mountFlags.length) throw new KilnError('UNSUPPORTED', 'RUN --mount is not supported yet', place, { hint: 'it comes with the build cache issue' });
    let args: string[];
    const cmd = ins.command;
    if (cmd.form === 'exec') args = cmd.args;
    else if (cmd.heredocs.length && /^<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(cmd.command.trim())) {
      args = [...state.shell, cmd.heredocs[0]!.content];
    } else if (cmd.heredocs.length) {
      args = [...state.shell, `${cmd.command}\n${cmd.heredocs.map((h) => `${h.content}${h.name}\n`).join('')}`];
    } else args = [...state.shell, cmd.command];
    const cfg = this.cfg(state);
    const env = [...(cfg.Env ?? [])];
    for (const [k, v] of [...scope.argEntries(), ...scope.proxyEntries()]) if (!env.some((e) => e.startsWith(`${k}=`))) env.push(`${k}=${v}`);
    const tail: string[] = [];
    const keep = (b: Buffer, stream: 'stdout' | 'stderr') => {
      this.emit({ type: 'step-output', stage: stage.index, step: stepNo, stream, data: b });
      tail.push(...b.toString().split('\n'));
      if (tail.length > 40) tail.splice(0, tail.length - 40);
    };
    const network = ins.network === 'none' ? 'none' : ins.network === 'host' ? 'host' : (this.o.network ?? 'host');
    const out = await runStep({
      store: this.o.store,
      layers: state.layers,
      diffIds: state.config.rootfs.diff_ids,
      args,
      env,
      cwd: cfg.WorkingDir || '/',
      user: cfg.User ?? '',
      network,
      capture: true,
      snapshotter: this.o.snapshotter,
      backend: this.o.backend,
      signal: this.o.signal,
      sourceDateEpoch: this.o.sourceDateEpoch,
      onStdout: (b) => keep(b, 'stdout'),
      onStderr: (b) => keep(b, 'stderr'),
    });
    const createdBy = cmd.form === 'exec' ? `RUN ${JSON.stringify(cmd.args)} # buildkit` : `RUN ${state.shell.join(' ')} ${cmd.command} # buildkit`;
    if (out.exitCode !== 0) {
      const last = tail.filter((l) => l.trim() !== '').slice(-10).join('\n      ');
      throw new KilnError('BUILD', `stage ${stage.name ?? stage.index}: RUN failed with exit code ${out.exitCode}: ${cmd.form === 'exec' ? JSON.stringify(cmd.args) : cmd.command}${last ? `\n    last output:\n      ${last}` : ''}`, place);
    }
    if (!out.layer) {
      this.history(state, createdBy, true);
      return undefined;
    }
    this.pushLayer(state, out.layer, ins);
    this.history(state, createdBy, false);
    void PROXY_ARGS;
    return out.layer;
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

/** A tar archive, plain or gzip/bzip2/xz-compressed, by its magic bytes (docker's ADD rule). */
function isArchive(file: string): boolean {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(512);
  const n = readSync(fd, b, 0, 512, 0);
  closeSync(fd);
  if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
  if (n >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (n >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
  return n >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}
