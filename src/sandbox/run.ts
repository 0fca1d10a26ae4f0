/**
 * runStep: run a process on an image's filesystem and capture what it changed as a layer — the
 * machinery of a RUN step and of `kiln run`. Knows nothing about Dockerfiles.
 *
 *  1. rootfs: overlay of the image's snapshots (+ a stub dir for mount points) with a fresh upper
 *     dir, or (native) a flattened copy whose state is remembered;
 *  2. the user resolved in the image's own /etc/passwd and /etc/group, the working directory made
 *     when missing (part of the layer, as BuildKit), PATH and HOME defaulted as docker does;
 *  3. the process run by the oci or chroot backend, output streamed, exit code kept;
 *  4. the changes (upper dir, or the tree compared with its state before) written as a layer blob
 *     into the store;
 *  5. everything unmounted and removed, also on abort (signal) or SIGINT/SIGTERM/SIGHUP.
 */
import { copyFileSync, mkdirSync, existsSync, lstatSync, readdirSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { type Compression, type Descriptor } from '../image/index.js';
import {
  type Digest,
  KilnError,
  LeanStats,
  type PackedListing,
  resolveInImage,
  resolveUser,
  overlayXattrPrefix,
  singleIdMode,
  phaseDone,
  phaseStart,
  runCapture,
  xattr,
} from '../util/index.js';
import {
  plainLayerInfo,
  type LayerInfo,
  applyLayer,
  type Change,
  compareChanges,
  layerKeepsXattr,
  tarChangesInOrder,
  type EntryStats,
  FileDigestTable,
} from '../layer/index.js';
import { type Store } from '../store/index.js';
import {
  overlayRefusal,
  diffTrees,
  upperChanges,
  flattenLowerDirs,
  makeStubs,
  mountOverlay,
  refreshState,
  separateHardLinks,
  snapshotTree,
  unmount,
  type SnapshotterKind,
  type Stub,
  type TreeState,
} from './rootfs.js';
import {
  compareRoots,
  compareState,
  placeKeptRoot,
  settleKeptRoot,
  unmountInside,
  Scaffold,
  type KeptRoot,
  type KeptRoots,
} from './kept-root.js';
import { mountFuseOverlay } from './fuse-overlay.js';
import { pickSnapshotter } from './snapshotter.js';
import { mountsFile, prepareMounts, validateMounts, type Mount } from './mounts.js';
import {
  RUNTIME_MOUNT_POINTS,
  selectRunner,
  type BackendKind,
  type ProcessSpec,
  type Runner,
  type Ulimit,
} from './runtime.js';
import { emptyRoot, hostRootKeep, hostRootTurn, keepTests } from './host-root.js';
import { BARE_DEVICES } from './bare.js';
import { cleanupStaleRuns, createRunDir, mountsUnder, runRoot, runWithCleanup, teardownRunDir } from './rundir.js';

/** docker's PATH when the image sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunStepOptions {
  store: Store;
  /** The image's layers (bottom → top) and their diff_ids: their store snapshots are the rootfs. */
  layers?: Descriptor[];
  diffIds?: Digest[];
  /** Or: unpacked layer dirs in overlay-marker form, bottom → top (instead of layers/diffIds). */
  lowerDirs?: string[];
  args: string[];
  /** KEY=VALUE, the whole environment; PATH and HOME are added as docker does when absent. */
  env: string[];
  /** Working directory (default /), made when missing. */
  cwd?: string;
  /** USER spec ("name", "uid", "name:group", "uid:gid"…), resolved in the image's own files. */
  user?: string;
  network?: 'host' | 'none';
  mounts?: Mount[];
  hostname?: string;
  /** `--add-host` lines, `--shm-size` bytes, `--ulimit`s (sandbox/runtime.ts). */
  extraHosts?: [string, string][];
  shmSize?: number;
  ulimits?: Ulimit[];
  /** Capture the changes as a layer blob in the store (RUN: default); false for `kiln run`. */
  capture?: boolean;
  /**
   * Also return the captured changes in RunOutcome.changes (tests, tools). Off, the overlay
   * snapshotters stream them from the diff into the tar and hold none (a RUN making 300,000 files
   * stays in flat memory); the native snapshotter's list is returned either way (it settles the kept root).
   */
  listChanges?: boolean;
  /** Compression of the captured layer (default gzip). */
  compression?: Compression;
  /** Its level (gzip 1-9, zstd 1-19). */
  compressionLevel?: number;
  /**
   * Keep the captured layer as its snapshot only, with no blob, when the snapshot can be kept (the
   * overlay snapshotter): for a builder stage's layer that no image ships (see store's
   * isPlainLayer). The layer is then the uncompressed tar's descriptor.
   */
  snapshotOnly?: boolean;
  /**
   * Record the content digest of each small file the captured layer adds, read as it is tarred,
   * when the layer's snapshot is the upper directory itself (the files then keep the identity —
   * inode, size, mtime, ctime — they were read under): `fileDigests` of the outcome. A builder
   * stage's `COPY --from` key is then computed without opening them again.
   */
  recordFileDigests?: boolean;
  /**
   * Return in `listings` what the differ read of the directories the step made whole (a builder's
   * output directory: sandbox/rootfs.ts onListing), when the upper dir becomes the layer's snapshot:
   * each as a fresh walk of the snapshot would list it. The `COPY --from` key's walk of them, and
   * the copy's, then read no directory again.
   */
  recordListings?: boolean;
  /** Clamp timestamps in the layer (SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
  /** Default: overlay when it can be mounted here, else fuse-overlayfs when it can, else native. */
  snapshotter?: SnapshotterKind;
  /** Default: oci when runc or crun works here, else chroot. */
  backend?: BackendKind;
  /** OCI runtime binary (name or path); it must work here. */
  runtime?: string;
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
  /** 'inherit': the process reads kiln's stdin (`kiln debug`); default: closed, as a RUN's. */
  stdin?: 'inherit';
  /**
   * When the process fails (non-zero exit), keep the filesystem it left at this path (which must
   * not exist; on the store's file system) instead of capturing a layer: the overlay's upper dir
   * (the changes, in the snapshots' own form: a lower on top of the step's layers) or, with the
   * native snapshotter, the whole tree. Mounts are never in it (their points are stubs).
   */
  keepFailed?: string;
  /** Abort: the process is killed, everything torn down, runStep rejects (KilnError SANDBOX "interrupted"). */
  signal?: AbortSignal;
  /**
   * Once the run has ended (its layer, when captured, stored and its snapshot committed), its run
   * dir (the unmounted root, work dir, stubs, bundle) is torn down after runStep returns, and the
   * promise of that teardown handed here: the caller waits for it before it ends. Nothing of the
   * outcome lives there, so a build's next step need not wait (10–50 ms a RUN). Without it, or
   * when the run throws, runStep tears the dir down before it returns.
   */
  tearDownLater?: (tornDown: Promise<void>) => void;
  /**
   * The build's kept native roots (kept-root.ts): with the native snapshotter, a RUN on `layers`
   * takes the root a RUN before it left when it holds these layers (or the first of them), and
   * leaves its own there. Without it, every RUN flattens its layers afresh.
   */
  keptRoots?: KeptRoots;
}

export interface RunOutcome {
  /** The process's exit code (128+N when killed by signal N). */
  exitCode: number;
  /** The new layer, its blob committed to the store (and recorded): undefined when nothing changed or not captured. */
  layer?: LayerInfo;
  /** What changed, in layer order ([] when not captured; with overlay snapshotters only when listChanges). */
  changes: Change[];
  /** recordFileDigests: the layer's small files (path in the layer → identity and digest), when recorded. */
  fileDigests?: FileDigestTable;
  /** recordListings: directories of the layer's snapshot (path in it → its entries, as a walk lists them), when recorded. */
  listings?: Map<string, PackedListing>;
  backend: BackendKind;
  snapshotter: SnapshotterKind;
  /** keepFailed: what was kept there — the overlay's changes (`upper`) or the whole tree (`tree`). */
  kept?: 'upper' | 'tree';
  /** Why overlayfs could not be mounted, when another snapshotter was chosen for that reason. */
  overlayRefused?: string;
  /** Why fuse-overlayfs could not be mounted, when the native snapshotter was chosen for that reason. */
  fuseRefused?: string;
}

export async function runStep(o: RunStepOptions): Promise<RunOutcome> {
  const mounts = o.mounts ?? [];
  validateMounts(mounts);
  if (!o.args.length) throw new KilnError('USAGE', 'no command to run');
  if (!o.lowerDirs && (o.layers?.length ?? 0) !== (o.diffIds?.length ?? 0))
    throw new KilnError('INVALID', `image has ${o.layers?.length ?? 0} layers but ${o.diffIds?.length ?? 0} diff_ids`);
  const store = o.store;
  return runWithCleanup(o.signal, async (signal) => {
    await cleanupStaleRuns(store.root);
    const runDir = createRunDir(store.root, 'run');
    let outcome: RunOutcome;
    try {
      outcome = await runIn(runDir, o, mounts, signal);
    } catch (e) {
      await teardownRunDir(runDir);
      throw e;
    }
    if (o.tearDownLater) o.tearDownLater(teardownRunDir(runDir));
    else await teardownRunDir(runDir);
    return outcome;
  });
}

async function runIn(runDir: string, o: RunStepOptions, mounts: Mount[], signal: AbortSignal): Promise<RunOutcome> {
  const { store } = o;
  const rootfs = path.join(runDir, 'rootfs');
  const upper = path.join(runDir, 'upper');
  const bundle = path.join(runDir, 'bundle');
  let t = phaseStart();
  for (const d of [rootfs, bundle]) mkdirSync(d, { recursive: true });
  const runner = await selectRunner({ runtime: o.runtime, backend: o.backend, scratch: runDir });
  // The host-root backend unpacks the image into / and finds its changes there: native only.
  const choice = await pickSnapshotter(runRoot(store.root), o.snapshotter, runner.kind === 'host-root');
  const snapshotter: SnapshotterKind = choice.kind;
  const refused = { overlayRefused: choice.overlayRefused, fuseRefused: choice.fuseRefused };
  // Kernel overlay also serves writable bind mounts (RUN --mount=type=bind,rw): a copy otherwise.
  const overlayOk = runner.kind !== 'host-root' && (await overlayRefusal(runRoot(store.root))) === undefined;
  const layered = snapshotter !== 'native';
  const interrupted = () => new KilnError('SANDBOX', 'interrupted');
  if (runner.kind === 'host-root') {
    if (o.lowerDirs) throw new KilnError('UNSUPPORTED', 'the host-root backend runs images of the store only');
    return hostRootTurn(() => runInHostRoot(runDir, o, runner, signal, refused));
  }

  const stubs: Stub[] = [
    ...RUNTIME_MOUNT_POINTS.map((m) => ({ path: `/${m.path}`, kind: m.kind })),
    ...mounts.map((m) => ({ path: m.target, kind: mountsFile(m) ? ('file' as const) : ('dir' as const) })),
  ];
  let image: string | string[];
  let real: Map<string, string>;
  let before: TreeState | undefined;
  let lowers: string[] = [];
  // The native root is kept for the next RUN (kept-root.ts): what was made in it before the run.
  const chain = o.diffIds ?? [];
  // KILN_NATIVE_FRESH_ROOT=1: every RUN flattens its layers afresh (as before roots were kept).
  const keeping =
    snapshotter === 'native' &&
    !!o.keptRoots &&
    !o.lowerDirs &&
    o.capture !== false &&
    process.env.KILN_NATIVE_FRESH_ROOT !== '1';
  const scaffold = new Scaffold(rootfs);
  let reused: KeptRoot | undefined;
  if (layered) {
    lowers = o.lowerDirs ?? (await store.snapshots(o.layers ?? [], o.diffIds ?? []));
    image = lowers;
    const stubDir = path.join(runDir, 'stubs');
    mkdirSync(stubDir);
    if (runner.kind === 'bare') prepareBareRoot(stubDir, lowers);
    real = makeStubs(stubDir, lowers, stubs);
    for (const d of [upper, path.join(runDir, 'work')]) mkdirSync(d);
    if (snapshotter === 'overlay')
      await mountOverlay([...lowers, stubDir], runDir, upper, path.join(runDir, 'work'), rootfs);
    else await mountFuseOverlay([...lowers, stubDir], upper, path.join(runDir, 'work'), rootfs);
  } else {
    reused = keeping ? o.keptRoots!.take(chain) : undefined;
    if (reused) placeKeptRoot(reused, rootfs);
    // A kept root holds the first layers already: the others (COPY, ADD, WORKDIR, cached steps
    // since) are applied over it, as a fresh flatten applies them.
    if (o.lowerDirs) await flattenLowerDirs(o.lowerDirs, rootfs);
    else await applyLayers(o, rootfs, reused?.chain.length ?? 0);
    if (reused && process.env.KILN_CHECK_KEPT_ROOT === '1') {
      const fresh = path.join(runDir, 'check');
      await applyLayers(o, fresh, 0);
      const d = compareRoots(rootfs, fresh);
      if (d) throw new KilnError('INTERNAL', `the kept native root differs from its layers' flatten: ${d}`);
    }
    image = rootfs;
    if (runner.kind === 'bare') prepareBareRoot(rootfs, rootfs, scaffold.making);
    real = makeStubs(rootfs, rootfs, stubs, scaffold.making);
    // The state of a kept root taken as it is: the last run's walk, read again where stubs were made.
    const asItIs = !!reused && reused.chain.length === chain.length;
    if (asItIs) {
      before = reused!.state;
      refreshState(rootfs, before, scaffold.touched());
    } else before = snapshotTree(rootfs);
    // Each name of a hard-linked file its own file, as overlay's copy-up makes it (rootfs.ts).
    await separateHardLinks(rootfs, before);
    if (asItIs) checkState(rootfs, before);
  }
  phaseDone(`base snapshot (${snapshotter}${reused ? ', kept root' : ''})`, t);
  if (signal.aborted) throw interrupted();

  const spec = processSpec(o, image, rootfs);
  const runtimeMounts = await prepareMounts(
    mounts,
    runDir,
    overlayOk,
    (t) => `/${real.get(t) ?? t.replace(/^\/+/, '')}`,
  );
  if (signal.aborted) throw interrupted();
  t = phaseStart();
  const exitCode = await runner.run(rootfs, bundle, path.basename(runDir), { ...spec, mounts: runtimeMounts }, signal);
  phaseDone(`RUN process (${runner.kind}: runtime start, process, runtime delete)`, t);
  if (signal.aborted) throw interrupted();
  if (exitCode !== 0 && o.keepFailed) {
    // fuse-overlayfs' upper dir has its own markers (rootfs.ts): the merged tree is kept instead.
    const kept =
      snapshotter === 'fuse-overlayfs'
        ? await keepMergedTree(rootfs, o.keepFailed)
        : await keepFilesystem(snapshotter === 'overlay' ? upper : rootfs, rootfs, o.keepFailed);
    return { exitCode, changes: [], backend: runner.kind, snapshotter, kept };
  }

  let changes: Change[] = [];
  let layer: LayerInfo | undefined;
  let fileDigests: FileDigestTable | undefined;
  let listings: Map<string, PackedListing> | undefined;
  let after: TreeState | undefined;
  // Entries with xattrs no layer carries: a kept root loses them (the next RUN sees the layer's).
  const foreign: [string, string[]][] = [];
  if (o.capture !== false) {
    let src: string;
    // The changes in the layer's order. The overlay differs walk in that order and hand each change
    // to the tar writer as they find it (nothing held per path: a RUN of 300,000 files); the
    // native differ's list is needed again to settle the kept root.
    let found: Iterator<Change, void>;
    // The overlay is unmounted while its upper dir is read: nothing writes to it any more, and the
    // unmount's teardown (about 0.2 s for 30,000 new files) overlaps the diff and the tar.
    let unmounted: Promise<void> | undefined;
    // The upper dir is the new layer in the snapshots' own form (whiteout devices, opaque
    // markers): keep it as the snapshot, as BuildKit keeps a RUN's snapshot. Not with
    // SOURCE_DATE_EPOCH: the layer's mtimes are clamped, the upper's are not.
    const keepUpper = snapshotter === 'overlay' && !o.lowerDirs && o.sourceDateEpoch === undefined;
    // The listings of the directories the step made, as the differ reads them (bounded, as the digests).
    const handed = keepUpper && o.recordListings ? new HandedListings(MAX_RECORDED_DIGESTS) : undefined;
    t = phaseStart();
    if (snapshotter === 'overlay') {
      unmounted = unmount(rootfs);
      unmounted.catch(() => undefined); // awaited below
      // Compared with the image's layers: unchanged copy-ups are no change (BuildKit's differ).
      found = upperChanges(upper, lowers, 'overlay', handed ? { onListing: (rel, l) => handed.add(rel, l) } : {});
      src = upper;
    } else if (snapshotter === 'fuse-overlayfs') {
      // Unmounted first: the fuse-overlayfs process then has ended, nothing writes to the upper.
      await unmount(rootfs);
      found = upperChanges(upper, lowers, 'fuse-overlayfs');
      src = upper;
    } else {
      ({ changes, after } = diffTrees(rootfs, before!));
      changes.sort(compareChanges);
      found = changes[Symbol.iterator]();
      src = rootfs;
    }
    try {
      const first = found.next();
      phaseDone(layered ? 'diff (to the first change)' : 'diff', t);
      if (!first.done) {
        // overlayfs's bookkeeping xattrs, found while the tar lists every entry's xattrs.
        const internals: [string, string[]][] = [];
        const onXattrNames = keepUpper
          ? (rel: string, names: string[]) => void (names.some(isOverlayInternal) && internals.push([rel, names]))
          : keeping
            ? (rel: string, names: string[]) =>
                void (names.some((n) => !layerKeepsXattr(n)) && foreign.push([rel, names]))
            : undefined;
        // The files stay where they were read (the upper becomes the snapshot): their digests, as
        // tarred, serve the next key over them. A cap keeps memory bounded for huge layers.
        const recorded = keepUpper && o.recordFileDigests ? new FileDigestTable() : undefined;
        const onFileDigest =
          recorded &&
          ((name: string, st: EntryStats, digest: string) =>
            void (
              recorded.size < MAX_RECORDED_DIGESTS &&
              recorded.set(name, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, digest })
            ));
        const listed = layered && o.listChanges ? changes : undefined;
        function* all(): Generator<Change, void, undefined> {
          for (let n: IteratorResult<Change, void> = first; !n.done; n = found.next()) {
            listed?.push(n.value);
            yield n.value;
          }
        }
        t = phaseStart();
        const tar = tarChangesInOrder(src, all(), {
          sourceDateEpoch: o.sourceDateEpoch,
          onXattrNames,
          ...(onFileDigest ? { onFileDigest } : {}),
        });
        layer =
          keepUpper && o.snapshotOnly
            ? await plainLayerInfo(tar)
            : await store.putLayer(tar, { compression: o.compression, level: o.compressionLevel });
        // One stream: the changes found, the tar written, hashed (diff_id, digest) and stored as it is read.
        const diffed = layered ? 'diff + ' : '';
        phaseDone(
          `${diffed}${keepUpper && o.snapshotOnly ? 'tar + hash (snapshot only)' : 'tar + hash + blob stored'}`,
          t,
        );
        t = phaseStart();
        await unmounted;
        if (keepUpper) {
          stripOverlayInternals(upper, internals);
          // Stripping an xattr moved the entry's ctime: its directory is read again when walked.
          for (const [rel] of internals) handed?.drop(path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
          const snapshot = [...(o.diffIds ?? []), layer.diffId];
          // Not adopted: the same layer's snapshot was there already (other files, other inodes).
          const adopted = await store.adoptSnapshot(snapshot, upper);
          fileDigests = recorded;
          if (adopted && handed?.size) {
            listings = handed.listings;
            if (process.env.KILN_CHECK_HANDED_LISTINGS === '1') checkListings(store.snapshotPath(snapshot), listings);
          }
        }
        phaseDone('snapshot commit', t);
      }
    } finally {
      await unmounted;
    }
  }
  // The root is the stage's next state once settled: kept for the next RUN (a failed one's is not).
  if (keeping && exitCode === 0 && after && !signal.aborted) {
    t = phaseStart();
    await unmountInside(rootfs);
    const state = settleKeptRoot(rootfs, changes, after, {
      scaffold,
      sourceDateEpoch: o.sourceDateEpoch,
      foreignXattrs: foreign,
    });
    checkState(rootfs, state);
    await o.keptRoots!.keep(rootfs, layer ? [...chain, layer.diffId] : [...chain], state);
    phaseDone('native root kept', t);
  }
  return {
    exitCode,
    layer,
    changes,
    ...(fileDigests ? { fileDigests } : {}),
    ...(listings ? { listings } : {}),
    backend: runner.kind,
    snapshotter,
    ...definedOnly(refused),
  };
}

/** The differ's listings of a RUN's new directories, up to `max` entries in all (past it, a walk reads the others). */
class HandedListings {
  readonly listings = new Map<string, PackedListing>();
  private entries = 0;
  constructor(private readonly max: number) {}
  get size(): number {
    return this.listings.size;
  }
  add(rel: string, l: PackedListing): void {
    if (this.entries + l.names.length > this.max) return;
    this.entries += l.names.length;
    this.listings.set(rel, l);
  }
  drop(rel: string): void {
    this.listings.delete(rel);
  }
}

/** KILN_CHECK_HANDED_LISTINGS: each listing handed on is what a walk of the committed snapshot reads. */
function checkListings(snapshot: string, listings: Map<string, PackedListing>): void {
  for (const [rel, l] of listings) {
    const dir = path.join(snapshot, rel);
    const names = readdirSync(dir).sort();
    const stats = new Float64Array(names.length * LeanStats.PACKED);
    names.forEach((n, i) => new LeanStats(lstatSync(path.join(dir, n))).pack(stats, i));
    const at = stats.findIndex((v, i) => !Object.is(v, l.stats[i]));
    if (names.join('/') !== l.names.join('/') || stats.length !== l.stats.length || at >= 0)
      throw new KilnError(
        'INTERNAL',
        `the RUN's listing of /${rel} differs from a walk of its snapshot` +
          (at >= 0 ? ` (${names[Math.floor(at / LeanStats.PACKED)]}, field ${at % LeanStats.PACKED})` : ' (names)'),
      );
  }
}

/** recordFileDigests keeps at most this many files' digests (about 25 MB): past it, a key reads them. */
const MAX_RECORDED_DIGESTS = 100_000;

function definedOnly(r: { overlayRefused?: string; fuseRefused?: string }): {
  overlayRefused?: string;
  fuseRefused?: string;
} {
  return {
    ...(r.overlayRefused !== undefined ? { overlayRefused: r.overlayRefused } : {}),
    ...(r.fuseRefused !== undefined ? { fuseRefused: r.fuseRefused } : {}),
  };
}

/** The image's layers from `from` on, applied over `root` from their blobs (the native snapshotter). */
async function applyLayers(o: RunStepOptions, root: string, from: number, only?: (rel: string) => boolean) {
  for (const [i, l] of (o.layers ?? []).entries())
    if (i >= from)
      await applyLayer(o.store.openBlob(l.digest), root, {
        whiteouts: 'apply',
        expectedDiffId: o.diffIds![i],
        ...(only ? { only } : {}),
      });
}

/** KILN_CHECK_KEPT_ROOT: a state derived without a walk is the walk's. */
function checkState(root: string, state: TreeState, skip?: (rel: string) => boolean): void {
  if (process.env.KILN_CHECK_KEPT_ROOT !== '1') return;
  const d = compareState(root, state, skip);
  if (d) throw new KilnError('INTERNAL', `the kept native root's state differs from a walk: ${d}`);
}

/** The stage root the last host-root RUN left in `/`, settled, for the next RUN of its build. */
let hostRootLeft: { owner: KeptRoots; keep: string; chain: Digest[]; state: TreeState } | undefined;

/**
 * The host-root backend (kaniko's model): `/` emptied but for what it must keep, the image
 * unpacked there, the process run in it, the changes found by the native snapshotter. Called in
 * turn (hostRootTurn): one RUN owns `/` at a time.
 */
async function runInHostRoot(
  runDir: string,
  o: RunStepOptions,
  runner: Runner,
  signal: AbortSignal,
  refused: { overlayRefused?: string; fuseRefused?: string },
): Promise<RunOutcome> {
  const { store } = o;
  const keep = hostRootKeep(store.root);
  const { kept, above } = keepTests(keep);
  // The stage root the RUN before this one left in / (settled), when this RUN's layers start with
  // its: / is not emptied and filled again (kept-root.ts, the same rules).
  const chain = o.diffIds ?? [];
  const keeping = !!o.keptRoots && o.capture !== false && process.env.KILN_NATIVE_FRESH_ROOT !== '1';
  const left = hostRootLeft;
  hostRootLeft = undefined; // / is this RUN's now: unless it succeeds, it holds no known state
  const reused =
    keeping &&
    left &&
    left.owner === o.keptRoots &&
    !left.owner.isClosed &&
    left.keep === keep.join('\0') &&
    left.chain.length <= chain.length &&
    left.chain.every((d, i) => d === chain[i])
      ? left
      : undefined;
  if (!reused) emptyRoot('/', keep);
  await applyLayers(o, '/', reused?.chain.length ?? 0, (rel) => !kept(rel) && !above(rel));
  if (signal.aborted) throw new KilnError('SANDBOX', 'interrupted');
  let before: TreeState;
  if (reused && reused.chain.length === chain.length) {
    before = reused.state;
    checkState('/', before, kept);
  } else before = snapshotTree('/', kept);
  // The runner refuses mounts (none can be made here): their targets say which.
  const spec = processSpec(o, '/', '/');
  const mounts = (o.mounts ?? []).map((m) => ({ type: 'bind' as const, target: m.target }));
  const exitCode = await runner.run(
    '/',
    path.join(runDir, 'bundle'),
    path.basename(runDir),
    { ...spec, mounts },
    signal,
  );
  if (signal.aborted) throw new KilnError('SANDBOX', 'interrupted');
  let changes: Change[] = [];
  let layer: LayerInfo | undefined;
  let after: TreeState | undefined;
  const foreign: [string, string[]][] = [];
  if (o.capture !== false) {
    ({ changes, after } = diffTrees('/', before, kept));
    changes.sort(compareChanges);
    const onXattrNames = (rel: string, names: string[]) =>
      void (names.some((n) => !layerKeepsXattr(n)) && foreign.push([rel, names]));
    if (changes.length)
      layer = await store.putLayer(
        tarChangesInOrder('/', changes, { sourceDateEpoch: o.sourceDateEpoch, onXattrNames }),
        {
          compression: o.compression,
          level: o.compressionLevel,
        },
      );
  }
  if (keeping && exitCode === 0 && after && !signal.aborted) {
    const state = settleKeptRoot('/', changes, after, {
      sourceDateEpoch: o.sourceDateEpoch,
      foreignXattrs: foreign,
      timesAsFound: above,
    });
    checkState('/', state, kept);
    hostRootLeft = {
      owner: o.keptRoots!,
      keep: keep.join('\0'),
      chain: layer ? [...chain, layer.diffId] : chain,
      state,
    };
  }
  return {
    exitCode,
    layer,
    changes,
    backend: runner.kind,
    snapshotter: 'native',
    ...definedOnly(refused),
  };
}

/**
 * The process of a run, as both paths (a rootfs, or the host-root backend's /) give it to their
 * runner: the user resolved in the image's own /etc/passwd and /etc/group (`image`: the rootfs, or
 * overlay's layer dirs), PATH and HOME defaulted as docker does, the working directory made in
 * `root` when missing (root-owned 0755, part of the layer, as BuildKit). Mounts are the caller's.
 */
function processSpec(o: RunStepOptions, image: string | string[], root: string): Omit<ProcessSpec, 'mounts'> {
  const resolved = resolveUser(image, o.user ?? '');
  // The single-id mode maps root alone: a RUN as another user runs as root (as the mode says).
  const user = singleIdMode() && resolved.uid !== 0 ? { ...resolved, uid: 0, gid: 0, additionalGids: [] } : resolved;
  const env = o.env.filter((e) => e.indexOf('=') > 0);
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(`PATH=${DEFAULT_PATH}`);
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
  const cwd = path.posix.resolve('/', o.cwd || '/');
  const cwdReal = resolveInImage(root, cwd).rel;
  if (!existsSync(path.join(root, cwdReal))) mkdirSync(path.join(root, cwdReal), { recursive: true, mode: 0o755 });
  return {
    args: o.args,
    env,
    cwd,
    uid: user.uid,
    gid: user.gid,
    additionalGids: user.additionalGids,
    network: o.network ?? 'host',
    hostname: o.hostname,
    extraHosts: o.extraHosts,
    shmSize: o.shmSize,
    ulimits: o.ulimits,
    onStdout: o.onStdout,
    onStderr: o.onStderr,
    stdin: o.stdin,
  };
}

/**
 * Move a failed run's filesystem to `dest`: unmounted first (the overlay, or whatever a backend
 * left mounted inside the native tree), then renamed (same file system: the store's). An upper dir
 * loses overlayfs's bookkeeping xattrs, as a snapshot does, since it becomes a lower.
 */
async function keepFilesystem(src: string, rootfs: string, dest: string): Promise<'upper' | 'tree'> {
  for (const p of mountsUnder(rootfs)) await unmount(p);
  mkdirSync(path.dirname(dest), { recursive: true });
  renameSync(src, dest);
  if (src === rootfs) return 'tree';
  stripOverlayTree(dest);
  return 'upper';
}

/**
 * A failed fuse-overlayfs run's filesystem: the merged view copied to `dest` as a whole tree (what the
 * native snapshotter keeps), then unmounted.
 */
async function keepMergedTree(rootfs: string, dest: string): Promise<'tree'> {
  for (const p of mountsUnder(rootfs).filter((m) => m !== rootfs)) await unmount(p);
  mkdirSync(path.dirname(dest), { recursive: true });
  const r = await runCapture('cp', ['-a', '--reflink=auto', '--', rootfs, dest]);
  if (r.code !== 0)
    throw new KilnError('SANDBOX', `cannot keep the failed step's filesystem: ${r.stderr.trim()}`, { path: dest });
  await unmount(rootfs);
  return 'tree';
}

/** stripOverlayInternals over a whole tree (a kept upper dir: no tar listed its entries). */
function stripOverlayTree(dir: string): void {
  const marked: [string, string[]][] = [];
  const walk = (rel: string) => {
    for (const d of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isSymbolicLink()) continue;
      try {
        const names = xattr().listAttributesSync(path.join(dir, r));
        if (names.some(isOverlayInternal)) marked.push([r, names]);
      } catch {
        // no xattrs here
      }
      if (d.isDirectory()) walk(r);
    }
  };
  walk('');
  stripOverlayInternals(dir, marked);
}

/**
 * The bare backend mounts nothing: what the runtimes mount is made in the root (`dir`: the rootfs,
 * or overlay's stub dir) where the image lacks it, before the native snapshotter's state is taken,
 * so never part of the layer: docker's device nodes in /dev and the host's /etc/hosts and
 * /etc/resolv.conf. An /etc/hostname the image lacks stays empty.
 */
function prepareBareRoot(dir: string, image: string | string[], onMake?: (rel: string) => void): void {
  const missing = (p: string) => !resolveInImage(image, p).stat;
  const made = (rel: string) => existsSync(path.join(dir, rel)) || onMake?.(rel);
  if (missing('/dev')) {
    made('dev');
    mkdirSync(path.join(dir, 'dev'), { recursive: true, mode: 0o755 });
  }
  const devRel = resolveInImage(image, '/dev').rel;
  const dev = path.join(dir, devRel);
  if (!existsSync(dev)) made(devRel);
  mkdirSync(dev, { recursive: true });
  for (const [name, major, minor] of BARE_DEVICES) {
    if (!missing(`/dev/${name}`)) continue;
    made(`${devRel}/${name}`);
    const r = spawnSync('mknod', ['-m', '666', path.join(dev, name), 'c', String(major), String(minor)], {
      encoding: 'utf8',
    });
    if (r.status !== 0)
      throw new KilnError('SANDBOX', `cannot make /dev/${name} for the bare backend: ${r.stderr.trim()}`, {
        path: path.join(dev, name),
      });
  }
  for (const f of ['hosts', 'resolv.conf']) {
    if (!missing(`/etc/${f}`) || !existsSync(`/etc/${f}`)) continue;
    const etc = path.join(dir, 'etc');
    if (missing('/etc')) {
      made('etc');
      mkdirSync(etc, { recursive: true, mode: 0o755 });
    } else mkdirSync(path.join(dir, resolveInImage(image, '/etc').rel), { recursive: true });
    const etcRel = resolveInImage(image, '/etc').rel || 'etc';
    made(`${etcRel}/${f}`);
    copyFileSync(`/etc/${f}`, path.join(dir, etcRel, f));
  }
}

/** overlayfs's own xattrs but the two a lower layer needs (opaque directories, xattr whiteouts). */
function isOverlayInternal(name: string): boolean {
  const p = overlayXattrPrefix();
  return name.startsWith(p) && name !== `${p}opaque` && name !== `${p}whiteout`;
}

/**
 * overlayfs bookkeeping xattrs on a copied-up upper (origin, impure, nlink, …) mean nothing once
 * the dir is a lower layer, and some would be read there: drop them. The opaque marker stays: it is
 * how a snapshot says "this directory replaces the one below". `marked`: the entries the tar found
 * with such xattrs (it never lists a symbolic link's: the calls would follow it to its target).
 */
function stripOverlayInternals(upper: string, marked: [string, string[]][]): void {
  // The upper's root too (no entry of the layer): the kernel marks it (uuid, impure).
  let rootNames: string[] = [];
  try {
    rootNames = xattr().listAttributesSync(upper);
  } catch {
    // no xattr support: nothing to strip
  }
  for (const [rel, names] of [['', rootNames] as [string, string[]], ...marked]) {
    const p = path.join(upper, rel);
    for (const n of names.filter(isOverlayInternal)) {
      try {
        xattr().removeAttributeSync(p, n);
      } catch {
        // vanished or not removable: the snapshot keeps it, overlayfs ignores it on a lower
      }
    }
  }
}
