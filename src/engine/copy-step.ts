/**
 * COPY and ADD of an expanded step (expand-step.ts): sources from the context, another stage or an
 * image (--from), heredocs, and for ADD git repositories (add-git.ts), http(s) URLs (add-url.ts)
 * and local tar archives (add-archive.ts); what lands where is copy.ts's planCopy, written straight
 * into a layer tar. History text as BuildKit's.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { BuildContext, hasWildcard } from '../context/index.js';
import { type CopyInstruction } from '../dockerfile/index.js';
import { type LayerInfo } from '../layer/index.js';
import {
  closeViewLater,
  type Destination,
  dirFs,
  openView,
  snapshotSource,
  undpkgedPaths,
  type View,
} from '../sandbox/index.js';
import { chainId, type Digest, KilnError, phaseDone, phaseStart, resolveChown } from '../util/index.js';
import { archiveSources } from './add-archive.js';
import { checkoutGit, parseGitSource } from './add-git.js';
import { downloadUrl, isHttpUrl } from './add-url.js';
import { historyEntry } from './config-step.js';
import { planCopyLayer, type CopyRequest } from './copy.js';
import type { Step } from './expand-step.js';
import { heredocMarker, materializeHeredocs } from './heredoc.js';
import { recordCopied, SourceOwners } from './provenance.js';
import { type ProvenanceFrom } from '../store/index.js';
import {
  addPlannedLayer,
  appendHistory,
  destinationView,
  historyTime,
  type StageState,
  type StepAt,
  type StepEnv,
} from './stage-state.js';

/**
 * A `--link` COPY/ADD whose layer depends on nothing below it (BuildKit's meaning): its sources
 * are copied onto an empty root, so the destination's parents are made as plain directories (0755,
 * root or --chown), a symlink or an existing directory of the image is not looked at. Only a
 * `--chown` by name still reads the image (its /etc/passwd and /etc/group): such a step is keyed
 * on the layers below (cache-step.ts), as it then depends on them.
 */
export function linkedIndependently(ins: CopyInstruction): boolean {
  return ins.link && (ins.chown === undefined || /^\d+(:\d+)?$/.test(ins.chown));
}

/** COPY or ADD: its layer (none when only wildcards that matched nothing). */
export async function copyStep(
  env: StepEnv,
  step: Step & { ins: CopyInstruction },
  state: StageState,
  at: StepAt,
): Promise<LayerInfo | undefined> {
  const { ins, place } = step;
  const store = env.o.store;
  // Heredoc sources (`<<EOF`) are markers, their bodies (expanded unless quoted) in ins.heredocs.
  const heredocSources = ins.sources.filter((s) => heredocMarker(s) !== undefined);
  const pathSources = ins.sources.filter((s) => heredocMarker(s) === undefined);
  let srcView: { root: string; close(): Promise<void> } | undefined;
  // Who owns a copied file in the source (--from): its packages, for the provenance record.
  let owners: SourceOwners | undefined;
  let srcCtx = env.ctx;
  // Where the files come from, for the layer's provenance record (provenance.ts).
  let from: ProvenanceFrom = { kind: 'context' };
  let sourceDiffIds: Digest[] | undefined;
  let keepOwner = false;
  const cleanups: string[] = [];
  let t = phaseStart();
  try {
    if (ins.from !== undefined) {
      const src = step.sources[0];
      if (!src) throw new KilnError('INTERNAL', `${ins.kind} --from=${ins.from}: no source resolved`, place);
      let srcRoot: string;
      if (src.kind === 'stage') {
        const s = await env.stageResult(src.index);
        sourceDiffIds = s.config.rootfs.diff_ids;
        // A builder's output directory (sources the top layer alone holds: literal paths, no
        // wildcard) is read from that layer's snapshot, the rest of the stage (provenance's
        // lookups) from its layers' snapshots: no view mounted and unmounted.
        const direct = pathSources.some(hasWildcard)
          ? undefined
          : await snapshotSource(store, s.layers, sourceDiffIds, pathSources);
        // No dpkg list names what the top layer made when that layer did not touch dpkg's database.
        if (direct)
          owners = new SourceOwners(
            direct.tree,
            existsSync(path.join(direct.root, 'var/lib/dpkg'))
              ? []
              : pathSources.map((p) => path.posix.normalize(`/${p}`).slice(1).replace(/\/+$/, '')),
          );
        // The key's view of the same layers, when it mounted one (source-views.ts).
        else
          srcView = env.leftViews.take(ins, chainId(sourceDiffIds)) ?? (await openView(store, s.layers, sourceDiffIds));
        srcRoot = direct?.root ?? srcView!.root;
        const name = env.stageName(src.index);
        from = { kind: 'stage', index: src.index, ...(name !== undefined ? { name } : {}) };
      } else {
        const img = await env.images.get(src.ref, place);
        srcView =
          env.leftViews.take(ins, chainId(img.config.rootfs.diff_ids)) ??
          (await openView(store, img.manifest.layers, img.config.rootfs.diff_ids));
        srcRoot = srcView.root;
        from = { kind: 'image', ref: src.ref };
        sourceDiffIds = img.config.rootfs.diff_ids;
      }
      // Directories whose files no dpkg list names (the layers that wrote there left dpkg alone): their
      // files are not searched for in the lists.
      owners ??= new SourceOwners(
        srcRoot,
        pathSources.some(hasWildcard) ? [] : undpkgedPaths(store, sourceDiffIds, pathSources),
      );
      // The key's walk of the same layers (cache-step.ts) lists the tree: not walked again.
      srcCtx = BuildContext.plain(srcRoot, env.walkListings(chainId(sourceDiffIds)));
      keepOwner = true;
      phaseDone(srcView ? 'COPY source view opened' : "COPY source read in the top layer's snapshot", t);
    }
    const workdir = (state.config.config ??= {}).WorkingDir || '/';
    // --parents reads the destination below its root too: a whole view then.
    const destAbs = path.posix.resolve(workdir, ins.dest);
    // --link: the layer is made on an empty root (the image below is not read; see linkedIndependently).
    t = phaseStart();
    const destView: Destination = ins.link
      ? await emptyView(store.tmpDir)
      : ins.parents
        ? viewFs(await openView(store, state.layers, state.config.rootfs.diff_ids))
        : await destinationView(store, state, [destAbs], at.snapshotsAhead);
    phaseDone(destView.layered ? 'COPY destination read from the layers' : 'COPY destination view opened', t);
    try {
      let owner: { uid: number; gid: number } | undefined;
      if (ins.chown !== undefined && ins.link && !linkedIndependently(ins)) {
        const users = await destinationView(store, state, ['/etc/passwd', '/etc/group'], at.snapshotsAhead);
        try {
          owner = resolveChown(users.fs, ins.chown);
        } finally {
          await users.close();
        }
      } else if (ins.chown !== undefined) owner = resolveChown(destView.fs, ins.chown);
      let chmod: number | undefined;
      if (ins.chmod !== undefined) {
        if (!/^[0-7]{3,4}$/.test(ins.chmod))
          throw new KilnError('BUILD', `invalid --chmod "${ins.chmod}": expected an octal mode like 0755`, place);
        chmod = parseInt(ins.chmod, 8);
      }
      const sources: CopyRequest['sources'] = [];
      // Directories a git checkout's copy makes take the commit's time: same commit, same layer.
      let createdTime: number | undefined;
      const remote = ins.kind === 'ADD' && ins.from === undefined;
      for (const s of pathSources) {
        // ADD of a git repository: a shallow checkout of the ref, copied like a directory (add-git.ts).
        const git = remote ? parseGitSource(s) : undefined;
        if (git) {
          const c = await checkoutGit({
            source: git,
            keepGitDir: ins.keepGitDir ?? false,
            checksum: ins.checksum,
            tmpDir: store.tmpDir,
            place,
          });
          cleanups.push(c.dir);
          createdTime = c.time;
          from = { kind: 'remote', what: s };
          sources.push({ ctx: BuildContext.plain(c.root), pattern: '.' });
          continue;
        }
        // ADD of an http(s) URL: downloaded (never unpacked), then copied like a file (add-url.ts).
        if (remote && isHttpUrl(s)) {
          const d = await downloadUrl({
            url: s,
            tmpDir: store.tmpDir,
            checksum: ins.checksum,
            place,
            signal: env.o.signal,
          });
          cleanups.push(d.dir);
          from = { kind: 'remote', what: s };
          sources.push({ ctx: BuildContext.plain(d.dir), pattern: d.name });
          continue;
        }
        // ADD of a local tar archive (plain, gzip, bzip2, xz) unpacks it, keeping its ownership.
        const unpacked =
          remote && ins.unpack !== false ? await archiveSources(srcCtx, s, store.tmpDir, place, cleanups) : undefined;
        if (unpacked) sources.push(...unpacked);
        else sources.push({ ctx: srcCtx, pattern: s });
      }
      if (heredocSources.length) {
        const docs = materializeHeredocs(
          ins.heredocs,
          heredocSources,
          store.tmpDir,
          env.o.sourceDateEpoch ?? Math.floor(Date.now() / 1000),
          place,
        );
        cleanups.push(docs.dir);
        const docCtx = BuildContext.plain(docs.dir);
        for (const src of heredocSources) sources.push({ ctx: docCtx, pattern: docs.names.get(src)! });
      }
      t = phaseStart();
      const plan = await planCopyLayer(
        {
          sources,
          dest: ins.dest,
          workdir,
          destRoot: destView.fs,
          owner,
          keepOwner,
          chmod,
          // On the empty root of --link every parent is "made": plain 0755, not --chmod's mode, or
          // the layer would change the base's /usr, /etc… (BuildKit does not link a --chmod copy).
          plainMadeDirs: ins.link,
          exclude: ins.exclude,
          parents: ins.parents,
          createdTime,
          place,
        },
        store.tmpDir,
      );
      phaseDone('COPY planned', t);
      // BuildKit's commit message: flags it shows (not --from), path sources, heredocs, dest.
      const text =
        [
          ins.kind,
          ...(ins.parents ? ['--parents'] : []),
          ...(ins.chown !== undefined ? [`--chown=${ins.chown}`] : []),
          ...(ins.chmod !== undefined ? [`--chmod=${ins.chmod}`] : []),
          ...pathSources,
          ...heredocSources.map((h) => `<<${heredocMarker(h)}`),
          ins.dest,
        ].join(' ') + ' # buildkit';
      // Only wildcards that matched nothing: BuildKit goes on (an empty layer there; none here,
      // as for any step that changes nothing).
      if (plan.empty) {
        appendHistory(state, historyEntry(historyTime(env.o.sourceDateEpoch), text, true));
        return undefined;
      }
      // The plan's spill of its files' sources goes when the record is written (or the store had it).
      let recording = false;
      try {
        t = phaseStart();
        const l = await addPlannedLayer(env.o, state, plan, place);
        phaseDone('COPY layer written', t);
        appendHistory(state, historyEntry(historyTime(env.o.sourceDateEpoch), text, false));
        const stageName = env.stageName(at.stage.index);
        // The provenance record is read after the build (kiln trace, sbom) or by a later copy from
        // this stage (which waits for it): written while the next steps run. It holds the plan's
        // spill and the source view until it is written.
        const view = srcView;
        env.background.start(
          l.diffId,
          async () => {
            const t = phaseStart();
            try {
              await recordCopied({
                store,
                tmpDir: store.tmpDir,
                diffId: l.diffId,
                kind: ins.kind,
                step: {
                  file: place.file ?? 'Dockerfile',
                  line: place.line ?? 0,
                  text: ins.original,
                  stage: { index: at.stage.index, ...(stageName !== undefined ? { name: stageName } : {}) },
                },
                from,
                exclude: ins.exclude,
                copied: plan.copied(),
                sourceRoot: srcCtx.root,
                owners,
                sourceDiffIds,
              });
              phaseDone('COPY provenance recorded (in the background)', t);
            } finally {
              plan.dispose();
              if (view) closeViewLater(view);
            }
          },
          sourceDiffIds,
        );
        recording = true;
        srcView = undefined;
        return l;
      } finally {
        if (!recording) plan.dispose();
      }
    } finally {
      // Torn down while the next steps run (the build settles them before it returns).
      closeViewLater(destView);
    }
  } finally {
    if (srcView) closeViewLater(srcView);
    for (const d of cleanups) await rm(d, { recursive: true, force: true });
  }
}

/** An empty directory standing for the root a `--link` step copies onto. */
async function emptyView(tmpDir: string): Promise<Destination> {
  const root = await mkdtemp(path.join(tmpDir, 'link-'));
  return { fs: dirFs(root), close: () => rm(root, { recursive: true, force: true }) };
}

/** A view as a destination (its root read as a directory). */
function viewFs(v: View): Destination {
  return { fs: dirFs(v.root), close: () => v.close() };
}
