/**
 * RUN of an expanded step (expand-step.ts): the command in the sandbox on the stage's layers, with
 * the stage's variables as BuildKit gives them, its --mount's made ready (run-mounts.ts), its
 * output streamed as events; the layer of what it changed. History text as BuildKit's.
 */
import { rm } from 'node:fs/promises';
import * as path from 'node:path';
import { type RunInstruction } from '../dockerfile/index.js';
import { type FileDigestLookup, type LayerInfo } from '../layer/index.js';
import { type StageScope } from '../plan/index.js';
import { runStep, type BackendKind, type KeptRoots, type Mount, type SnapshotterKind } from '../sandbox/index.js';
import { chainIds, type Digest, KilnError, type ErrorPlace, type Slots } from '../util/index.js';
import { historyEntry } from './config-step.js';
import type { Step } from './expand-step.js';
import { runArgs } from './heredoc.js';
import { discardKeptStepSlot, keptStepSlot, recordKeptStep, type KeptStep, type KeptStepSlot } from './kept-step.js';
import { runHistoryText } from './history.js';
import { prepareRunMounts, type FromSource, type RunMounts } from './run-mounts.js';
import { appendHistory, historyTime, pushLayer, type StageState, type StepAt, type StepEnv } from './stage-state.js';

/** What RUN uses from the build beyond other steps. */
export interface RunEnv extends StepEnv {
  /** RUN steps at once, across stages. */
  readonly runSlots: Slots;
  /** The build's kept native roots: a RUN starts from the root the RUN before it left (sandbox/kept-root.ts). */
  readonly keptRoots: KeptRoots;
  /** RUN layers of this stage are kept as snapshots only (no image ships them, no cache export needs them). */
  snapshotOnly(stage: number): boolean;
  /** A later `COPY/ADD --from` copies this stage (or one based on it). */
  copiedLater(stage: number): boolean;
  /** Where a builder stage's RUN layer leaves the digests of its files, by the layer's chain id (cache-step.ts reads them). */
  readonly fileDigests: Map<Digest, FileDigestLookup>;
  /** The sandbox a RUN ran in (the engine shows it once). */
  ranIn(backend: BackendKind, snapshotter: SnapshotterKind, overlayRefused?: string, fuseRefused?: string): void;
}

/** RUN: its layer (none when it changed nothing). A non-zero exit fails with the output's last lines. */
export async function runInstruction(
  env: RunEnv,
  step: Step & { ins: RunInstruction },
  state: StageState,
  scope: StageScope,
  at: StepAt,
): Promise<LayerInfo | undefined> {
  const { ins, place } = step;
  const o = env.o;
  const cmd = ins.command;
  const cfg = (state.config.config ??= {});
  const workdir = cfg.WorkingDir || '/';
  // The stage's variables as BuildKit gives them to RUN: base ENV, ENV and ARG values (the last
  // set wins), proxy build args; ARG values never reach the image config.
  const vars = scope.runEnv().map(([k, v]) => `${k}=${v}`);
  const prepared = runArgs(cmd, state.shell, o.store.tmpDir);
  const args = prepared.args;
  const mounts: Mount[] = [...prepared.mounts];
  const tail: string[] = [];
  const keep = (b: Buffer, stream: 'stdout' | 'stderr') => {
    env.emit({ type: 'step-output', stage: at.stage.index, step: at.no, stream, data: b });
    tail.push(...b.toString().split('\n'));
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  const network = ins.network === 'none' ? 'none' : ins.network === 'host' ? 'host' : (o.network ?? 'host');
  let out: Awaited<ReturnType<typeof runStep>>;
  let runMounts: RunMounts | undefined;
  // --on-error=keep: where the filesystem of a failing command goes (kept-step.ts).
  const slot = o.onError === 'keep' ? keptStepSlot(o.store) : undefined;
  const fromSources: FromSource[] = [];
  try {
    if (ins.mounts.length) {
      // from= as the step resolved it, i-th source for the i-th mount with a from=.
      let from = async (_value: string, i: number): Promise<FromSource> => {
        const src = step.sources[i];
        if (!src) throw new KilnError('INTERNAL', `RUN --mount from=${_value}: no source resolved`, place);
        if (src.kind === 'stage') {
          const s = await env.stageResult(src.index);
          return { layers: s.layers, diffIds: s.config.rootfs.diff_ids };
        }
        const img = await env.images.get(src.ref, place);
        return { layers: img.manifest.layers, diffIds: img.config.rootfs.diff_ids };
      };
      const resolveFrom = from;
      from = async (value: string, i: number) => (fromSources[i] = await resolveFrom(value, i));
      runMounts = await prepareRunMounts({
        specs: ins.mounts,
        place,
        store: o.store,
        ctx: env.ctx,
        workdir,
        env: vars,
        from,
        secrets: o.secrets,
        ssh: o.ssh,
        signal: o.signal,
      });
      mounts.push(...runMounts.mounts);
    }
    out = await env.runSlots.with(() =>
      runStep({
        store: o.store,
        layers: state.layers,
        diffIds: state.config.rootfs.diff_ids,
        args,
        env: runMounts?.env ?? vars,
        mounts,
        cwd: workdir,
        user: cfg.User ?? '',
        network,
        extraHosts: o.extraHosts,
        shmSize: o.shmSize,
        ulimits: o.ulimits,
        capture: true,
        snapshotter: o.snapshotter,
        snapshotOnly: env.snapshotOnly(at.stage.index),
        // A builder stage is there to be copied from: its files' digests key that copy, and the
        // listings of the directories it made serve that key's walk and the copy's.
        recordFileDigests: env.snapshotOnly(at.stage.index) && env.copiedLater(at.stage.index),
        recordListings: env.snapshotOnly(at.stage.index) && env.copiedLater(at.stage.index),
        compression: o.layerCompression ?? 'none',
        compressionLevel: o.compressionLevel,
        backend: o.backend,
        runtime: o.runtime,
        signal: o.signal,
        sourceDateEpoch: o.sourceDateEpoch,
        onStdout: (b) => keep(b, 'stdout'),
        onStderr: (b) => keep(b, 'stderr'),
        keepFailed: slot?.fsDir,
        keptRoots: env.keptRoots,
        // The run dir's removal overlaps the next steps; the build waits for it before it returns.
        tearDownLater: (tornDown) => env.background.track(tornDown),
      }),
    );
  } catch (e) {
    if (slot) await discardKeptStepSlot(slot);
    throw e;
  } finally {
    for (const d of prepared.scratch) await rm(d, { recursive: true, force: true });
    await runMounts?.release();
  }
  env.ranIn(out.backend, out.snapshotter, out.overlayRefused, out.fuseRefused);
  const createdBy = `RUN ${runHistoryText(
    args,
    state.argNames.map((n) => [n, scope.lookup(n) ?? '']),
  )} # buildkit`;
  if (out.exitCode !== 0) {
    const last = tail
      .filter((l) => l.trim() !== '')
      .slice(-10)
      .join('\n      ');
    const shown = cmd.form === 'exec' ? JSON.stringify(cmd.args) : cmd.command;
    const kept =
      slot && out.kept
        ? await keepFailedStep(env, slot, {
            place,
            stage: `${at.stage.name ?? at.stage.index}`,
            command: shown,
            args,
            exitCode: out.exitCode,
            env: vars,
            user: cfg.User ?? '',
            workdir,
            network,
            backend: out.backend,
            snapshotter: out.snapshotter,
            kept: out.kept,
            state,
            mounts: ins.mounts,
            fromSources,
          })
        : undefined;
    const err = new KilnError(
      'BUILD',
      `stage ${at.stage.name ?? at.stage.index}: RUN failed with exit code ${out.exitCode}: ${shown}${last ? `\n    last output:\n      ${last}` : ''}`,
      place,
      kept ? { hint: `the failed step is kept: kiln debug ${kept} (--before: the state before it)` } : {},
    );
    throw Object.assign(err, { stepExitCode: out.exitCode }, kept ? { keptStep: kept } : {});
  }
  if (slot) await discardKeptStepSlot(slot);
  if (!out.layer) {
    appendHistory(state, historyEntry(historyTime(o.sourceDateEpoch), createdBy, true));
    return undefined;
  }
  pushLayer(state, out.layer, place);
  const chain = chainIds(state.config.rootfs.diff_ids).at(-1)!;
  if (out.fileDigests) env.fileDigests.set(chain, out.fileDigests);
  if (out.listings) {
    const walked = env.walkListings(chain);
    for (const [rel, listing] of out.listings) walked.adopt(rel, listing);
  }
  appendHistory(state, historyEntry(historyTime(o.sourceDateEpoch), createdBy, false));
  return out.layer;
}

/** Record a failed RUN kept in `slot` (kept-step.ts): its id, or undefined when it could not be kept (a warning). */
async function keepFailedStep(
  env: RunEnv,
  slot: KeptStepSlot,
  // What the step was, as the record keeps it; the rest (sources, context, sandbox flags) comes from the build.
  s: Pick<
    KeptStep,
    | 'stage'
    | 'command'
    | 'args'
    | 'exitCode'
    | 'env'
    | 'user'
    | 'workdir'
    | 'network'
    | 'backend'
    | 'snapshotter'
    | 'kept'
    | 'mounts'
    | 'fromSources'
  > & { place: ErrorPlace; state: StageState },
): Promise<string | undefined> {
  const o = env.o;
  // Sources only (a file's absolute path, a variable's name): never a secret's bytes.
  const ids = new Set(s.mounts.map((m) => (m.type === 'secret' ? m.id || path.posix.basename(m.target ?? '') : '')));
  const sshIds = new Set(s.mounts.map((m) => (m.type === 'ssh' ? m.id || 'default' : '')));
  try {
    const rec = await recordKeptStep(o.store, slot, {
      created: new Date().toISOString(),
      file: s.place.file,
      line: s.place.line,
      stage: s.stage,
      command: s.command,
      args: s.args,
      exitCode: s.exitCode,
      env: s.env,
      user: s.user,
      workdir: s.workdir,
      network: s.network,
      backend: s.backend,
      snapshotter: s.snapshotter,
      kept: s.kept,
      layers: s.state.layers,
      diffIds: s.state.config.rootfs.diff_ids,
      mounts: s.mounts,
      fromSources: s.fromSources,
      contextDir: env.ctx.root,
      dockerfilePath: o.dockerfilePath,
      secrets: (o.secrets ?? [])
        .filter((x) => ids.has(x.id))
        .map((x) => ({ id: x.id, ...(x.src !== undefined ? { src: path.resolve(x.src) } : { env: x.env }) })),
      ssh: (o.ssh ?? []).filter((x) => sshIds.has(x.id)).map((x) => ({ id: x.id, socket: path.resolve(x.socket) })),
      extraHosts: o.extraHosts,
      shmSize: o.shmSize,
      ulimits: o.ulimits,
    });
    return rec.id;
  } catch (e) {
    await discardKeptStepSlot(slot);
    env.emit({ type: 'warning', message: `the failed step could not be kept: ${(e as Error).message}` });
    return undefined;
  }
}
