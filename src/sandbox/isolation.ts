/**
 * What a RUN step's isolation is here, in one line for the progress output (and the mode's name
 * for machines). docs/rootless.md says what each mode isolates and what it does not.
 */
import { singleIdMode, userNamespace } from '../util/index.js';
import type { BackendKind } from './runtime.js';
import type { SnapshotterKind } from './rootfs.js';

export type IsolationMode = 'root' | 'rootless' | 'rootless-single-id' | 'chroot-only' | 'host-root';

export interface Isolation {
  mode: IsolationMode;
  description: string;
}

export function describeIsolation(
  backend: BackendKind | string,
  snapshotter: SnapshotterKind | string,
  overlayRefused?: string,
  fuseRefused?: string,
): Isolation {
  const ns = userNamespace();
  const fs =
    snapshotter === 'overlay'
      ? 'overlay snapshots'
      : snapshotter === 'fuse-overlayfs'
        ? `fuse-overlayfs snapshots (overlay in user space${overlayRefused ? `; kernel overlay refused: ${overlayRefused}` : ''})`
        : `native snapshotter (copied root${overlayRefused ? `; overlay refused: ${overlayRefused}` : ''}${fuseRefused ? `; fuse-overlayfs refused: ${fuseRefused}` : ''})`;
  if (backend === 'host-root') {
    return {
      mode: 'host-root',
      description: `HOST ROOT (kaniko-like), NOT ISOLATED: no namespace and no chroot can be made here; each RUN runs in this container's own / after kiln replaced its files with the stage's root: a RUN can see and change the container, use only in a throwaway container; ${fs}`,
    };
  }
  if (backend === 'bare') {
    return {
      mode: 'chroot-only',
      description: `chroot only: no namespace can be made here (an unprivileged container?); RUN shares this container's processes, network and hostname, has no /proc or /sys, and no mounts; ${fs}`,
    };
  }
  const runner =
    backend === 'oci'
      ? 'OCI runtime (pid, mount, ipc, uts namespaces)'
      : 'chroot backend (pid, mount, ipc, uts namespaces)';
  if (!ns.nested) return { mode: 'root', description: `root, ${runner}, ${fs}` };
  if (singleIdMode()) {
    return {
      mode: 'rootless-single-id',
      description: `rootless, single-id mode: files unpacked and made by RUN owned by root, RUN as root (no subordinate ids), ${runner}, ${fs}`,
    };
  }
  const mapped = ns.uids.reduce((n, r) => n + r.count, 0);
  return { mode: 'rootless', description: `rootless (user namespace, ${mapped} ids mapped), ${runner}, ${fs}` };
}
