/**
 * The sandbox: root filesystems (overlay or native snapshotter) and running a process in them
 * (oci runtime or chroot backend). The build engine calls runStep for RUN; `kiln run` too.
 *
 *   runStep({ store, layers, diffIds, args, env, cwd, user, network, mounts, capture,
 *             snapshotter?, backend?, runtime?, onStdout, onStderr, signal })
 *     → { exitCode, layer?: LayerInfo (blob committed), changes, backend, snapshotter }
 */
export { runStep, cleanupStaleRuns, DEFAULT_PATH, type RunStepOptions, type RunOutcome } from './run.js';
export { selectRunner, DEFAULT_CAPS, type Mount, type ProcessSpec, type BackendKind } from './runtime.js';
export { canMountOverlay, diffUpper, diffTrees, snapshotTree, type SnapshotterKind } from './rootfs.js';
