/**
 * What a sandbox backend runs and how it is asked to: the process (argv, environment, ids, mounts,
 * limits) and the `Runner` interface that runtime.ts (runc/crun, chroot in namespaces) and bare.ts
 * (chroot alone) implement. Types only, in a file of their own so that the backends need not import
 * each other.
 */

/** A mount as the backends see it: host paths ready to bind (see mounts.ts for what callers give). */
export interface RuntimeMount {
  type: 'bind' | 'tmpfs';
  source?: string;
  /** Absolute path inside the container. */
  target: string;
  readonly?: boolean;
  /** tmpfs size in bytes */
  size?: number;
}

export interface ProcessSpec {
  args: string[];
  /** KEY=VALUE, exactly the environment the process gets. */
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  network: 'host' | 'none';
  hostname?: string;
  mounts?: RuntimeMount[];
  /** `--add-host`: [name, address] lines added to /etc/hosts. */
  extraHosts?: [string, string][];
  /** `--shm-size`: bytes of /dev/shm (default 64 MiB, as docker). */
  shmSize?: number;
  /** `--ulimit`: resource limits of the process (`RLIMIT_NOFILE`…, as the OCI spec names them). */
  ulimits?: Ulimit[];
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
  /** 'inherit': the process reads kiln's own stdin (`kiln debug`'s shell); default: closed. */
  stdin?: 'inherit';
}

export interface Ulimit {
  type: string;
  soft: number;
  hard: number;
}

/**
 * oci: runc/crun; chroot: util-linux namespaces + chroot; bare: chroot alone (sandbox/bare.ts);
 * host-root: no chroot, the container's own / (sandbox/host-root.ts).
 */
export type BackendKind = 'oci' | 'chroot' | 'bare' | 'host-root';

export interface Runner {
  kind: BackendKind;
  /** The runtime binary (oci) or 'unshare' (chroot). */
  program: string;
  /** Run to completion; the exit code of the process (128+N when killed by signal N). */
  run(rootfs: string, bundleDir: string, id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number>;
}
