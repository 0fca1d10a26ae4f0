/**
 * The sandbox: root filesystems (overlay, fuse-overlayfs or native snapshotter) and running a process in them
 * (oci runtime or chroot backend), capturing what it changed as a layer. The build engine calls
 * runStep for RUN; `kiln run` too.
 *
 *   runStep({ store, layers, diffIds | lowerDirs, args, env, cwd?, user?, network?, mounts?,
 *             hostname?, capture? (default true), compression?, sourceDateEpoch?,
 *             snapshotter?, backend?, runtime?, onStdout?, onStderr?, signal? })
 *     → { exitCode, layer?: LayerInfo (blob committed to the store and recorded; undefined when
 *         nothing changed or capture is false), changes: Change[], backend, snapshotter }
 *   keptRoots (a build's KeptRoots): with the native snapshotter, the root a RUN leaves is kept for
 *   the next RUN on its layers (kept-root.ts) instead of flattening the stage again.
 *   A non-zero exit code is a result, not an error; setup failures throw KilnError('SANDBOX'…),
 *   an unknown USER throws KilnError('NOT_FOUND'), an abort rejects with KilnError('SANDBOX', 'interrupted').
 *
 *   mounts: { type: 'bind', source, target, readonly? }            host file/dir (kiln run -v)
 *           { type: 'bind', source, target, discardWrites: true }  rw, writes thrown away (RUN --mount=type=bind,rw)
 *           { type: 'tmpfs', target, size? }                       RUN --mount=type=tmpfs
 *           { type: 'cache', source, target, uid?, gid?, mode? }   persistent host dir (RUN --mount=type=cache)
 *   Mount points the image lacks never reach the layer; nor do /etc/hosts, /etc/resolv.conf,
 *   /etc/hostname (read-only binds from the host).
 *
 *   openView(store, layers, diffIds) → { root, close() }: a read-only view of an image's
 *   filesystem (COPY --from, USER/--chown lookups, WORKDIR checks); resolveInRoot(root, path).
 *   closeViewLater(view): its teardown off the caller's path; settleViews() awaits every such one.
 *   layeredDestination(store, layers, diffIds, paths, snapshotsAhead) → { fs: RootFs, close() } |
 *   'links' | undefined: what a partial view of `paths` shows, read from the layers with nothing
 *   mounted or made (COPY and WORKDIR destinations); RootFs: dirFs(root), layeredFs(layers),
 *   resolveInFs(fs, path), isDirInFs(fs, rel).
 *   snapshotSource(store, layers, diffIds, paths) → { root, tree } | undefined: a COPY --from whose
 *   sources the top layer alone holds, read from its snapshot with no view (layered-tree.ts).
 *   cleanupStaleRuns(storeRoot): tear down what killed kiln processes left (runStep and openView
 *   call it; a CLI start may too).
 */
export { runStep, DEFAULT_PATH, type RunStepOptions, type RunOutcome } from './run.js';
export { KeptRoots } from './kept-root.js';
export type { Mount } from './mounts.js';
export { containerArgs, containerEnv, parseVolume } from './container.js';
export {
  selectRunner,
  probeRuntime,
  ociSpec,
  chrootScript,
  DEFAULT_CAPS,
  HOST_FILES,
  type ProcessSpec,
  type Ulimit,
  type RuntimeMount,
  type BackendKind,
  type Runner,
} from './runtime.js';
export {
  canMountOverlay,
  overlayRefusal,
  diffUpper,
  diffTrees,
  snapshotTree,
  flattenLowerDirs,
  type SnapshotterKind,
} from './rootfs.js';
export { fuseRefusal } from './fuse-overlay.js';
export { chooseSnapshotter, pickSnapshotter, type SnapshotterChoice } from './snapshotter.js';
export { cleanupStaleRuns } from './rundir.js';
export { makePrivateDir, sweepPrivateDirs } from './private-files.js';
export { describeIsolation, type Isolation, type IsolationMode } from './isolation.js';
export {
  openView,
  layeredDestination,
  type Destination,
  closeViewLater,
  settleViews,
  resolveInRoot,
  type View,
  pathsAreLinkFree,
  topOf,
  topLayerRoot,
} from './view.js';
export { layeredTree, snapshotSource, undpkgedPaths, type TreeReader } from './layered-tree.js';
export { dirFs, isDirInFs, layeredFs, resolveInFs, type FsLayer, type FsStat, type RootFs } from './root-fs.js';
export { blobFromSnapshot } from './snapshot-blob.js';
export { emulationStatus, ensureEmulation, hostArchitecture, type EmulationStatus } from './emulation.js';
