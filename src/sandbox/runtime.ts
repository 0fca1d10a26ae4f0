/**
 * Running a process in a prepared root filesystem, behind one interface with two backends:
 * - `oci`: an OCI runtime spec (config.json) run by runc or crun — whichever is installed and
 *   works on this host (Debian's crun 1.8 refuses cgroup v1/hybrid hosts; runc works there).
 * - `chroot`: util-linux `unshare` (mount, pid, uts, ipc and optionally net namespaces) + chroot,
 *   for hosts with no working OCI runtime.
 * Both give what a docker RUN step sees: /proc, a minimal /dev, read-only /sys, the host's
 * /etc/hosts, /etc/resolv.conf and an /etc/hostname, Docker's default capabilities.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../util/errors.js';
import { which } from '../util/proc.js';

export interface Mount {
  /** 'bind': host path → target; 'tmpfs': a fresh tmpfs. */
  type: 'bind' | 'tmpfs';
  source?: string;
  target: string;
  readonly?: boolean;
  /** tmpfs size in bytes */
  size?: number;
}

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  network: 'host' | 'none';
  hostname?: string;
  mounts?: Mount[];
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
}

export type BackendKind = 'oci' | 'chroot';

export const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** Files bind-mounted from the host into every run, never captured into a layer. */
export const HOST_FILES = ['etc/hosts', 'etc/resolv.conf', 'etc/hostname'];

export interface Runner {
  kind: BackendKind;
  /** The runtime binary (oci) or 'unshare' (chroot). */
  program: string;
  run(rootfs: string, bundleDir: string, id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number>;
}

function ociConfig(rootfs: string, spec: ProcessSpec, hostnameFile: string): unknown {
  const mounts: unknown[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    // With the host network /sys cannot be mounted afresh: bind it, read-only, in both cases.
    { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: existsSync('/etc/resolv.conf') ? '/etc/resolv.conf' : '/dev/null', options: ['rbind', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: existsSync('/etc/hosts') ? '/etc/hosts' : '/dev/null', options: ['rbind', 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: hostnameFile, options: ['rbind', 'ro'] },
  ];
  for (const m of spec.mounts ?? []) {
    if (m.type === 'tmpfs') mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(m.size ? [`size=${m.size}`] : [])] });
    else mounts.push({ destination: m.target, type: 'bind', source: m.source, options: ['rbind', m.readonly ? 'ro' : 'rw'] });
  }
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (spec.network === 'none') namespaces.push({ type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: spec.uid, gid: spec.gid, additionalGids: spec.additionalGids },
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    hostname: spec.hostname ?? 'kiln',
    mounts,
    linux: {
      namespaces,
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

function pipeOutput(child: ChildProcess, spec: ProcessSpec, errTail: { text: string }): void {
  child.stdout?.on('data', (b: Buffer) => spec.onStdout?.(b));
  child.stderr?.on('data', (b: Buffer) => {
    errTail.text = (errTail.text + b.toString()).slice(-4000);
    spec.onStderr?.(b);
  });
}

function waitExit(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => resolve(code ?? (sig ? 128 + 9 : 1)));
  });
}

/** A runtime failure before the process ran (as opposed to the process's own exit code). */
const RUNTIME_FAILURE = /cgroups in hybrid mode not supported|^crun: |level=error msg=|container_linux\.go|OCI runtime|unable to start container process/m;

export class OciRunner implements Runner {
  readonly kind = 'oci' as const;
  constructor(readonly program: string) {}
  async run(rootfs: string, bundleDir: string, id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    const hostnameFile = path.join(bundleDir, 'hostname');
    writeFileSync(hostnameFile, `${spec.hostname ?? 'kiln'}\n`);
    writeFileSync(path.join(bundleDir, 'config.json'), JSON.stringify(ociConfig(rootfs, spec, hostnameFile)));
    const args = ['--root', path.join(bundleDir, 'state'), 'run', '--bundle', bundleDir, id];
    const child = spawn(this.program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail = { text: '' };
    pipeOutput(child, spec, tail);
    // On abort: kill every process of the container, then runc. Do not wait for the output pipes
    // to close ('close'): a process that escaped the kill would keep them open.
    let aborted: (() => void) | undefined;
    const abortedP = new Promise<number>((resolve) => (aborted = () => child.once('exit', () => resolve(130))));
    const onAbort = () => {
      aborted?.();
      const k = spawn(this.program, ['--root', path.join(bundleDir, 'state'), 'kill', '--all', id, 'KILL'], { stdio: 'ignore' });
      k.on('close', () => child.kill('SIGKILL'));
      k.on('error', () => child.kill('SIGKILL'));
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const code = await Promise.race([waitExit(child), abortedP]);
      if (code !== 0 && RUNTIME_FAILURE.test(tail.text)) {
        throw new KilnError('SANDBOX', `${path.basename(this.program)} could not start the process: ${tail.text.trim().split('\n').slice(-2).join(' ')}`);
      }
      return code;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await new Promise<void>((resolve) => spawn(this.program, ['--root', path.join(bundleDir, 'state'), 'delete', '-f', id], { stdio: 'ignore' }).on('close', () => resolve()).on('error', () => resolve()));
    }
  }
}

/** unshare + chroot: what util-linux alone can do. */
export class ChrootRunner implements Runner {
  readonly kind = 'chroot' as const;
  readonly program = 'unshare';
  async run(rootfs: string, bundleDir: string, _id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    const hostnameFile = path.join(bundleDir, 'hostname');
    writeFileSync(hostnameFile, `${spec.hostname ?? 'kiln'}\n`);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const R = q(rootfs);
    const lines = [
      'set -e',
      'mount --make-rprivate /',
      `mount -t proc proc ${R}/proc`,
      `mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs ${R}/dev`,
      ...['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((d) => `touch ${R}/dev/${d} && mount --bind /dev/${d} ${R}/dev/${d}`),
      `mkdir -p ${R}/dev/pts ${R}/dev/shm && mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts ${R}/dev/pts && mount -t tmpfs -o mode=1777 shm ${R}/dev/shm`,
      `ln -sf /proc/self/fd ${R}/dev/fd && ln -sf pts/ptmx ${R}/dev/ptmx`,
      `mkdir -p ${R}/sys && mount --rbind -o ro /sys ${R}/sys && mount -o remount,bind,ro ${R}/sys`,
      ...HOST_FILES.map((f) => {
        const src = f === 'etc/hostname' ? hostnameFile : `/${f}`;
        return `if [ -e ${q(src)} ]; then mkdir -p ${R}/etc; [ -e ${R}/${f} ] || touch ${R}/${f}; mount --bind -o ro ${q(src)} ${R}/${f}; fi`;
      }),
      ...(spec.mounts ?? []).map((m) =>
        m.type === 'tmpfs'
          ? `mkdir -p ${R}${q(m.target)} && mount -t tmpfs ${m.size ? `-o size=${m.size} ` : ''}tmpfs ${R}${q(m.target)}`
          : `mkdir -p ${R}${q(m.target)} && mount --rbind ${q(m.source!)} ${R}${q(m.target)}${m.readonly ? ` && mount -o remount,bind,ro ${R}${q(m.target)}` : ''}`,
      ),
      `hostname ${q(spec.hostname ?? 'kiln')}`,
      `cd ${R}`,
      // setpriv drops to the user with its groups; chroot enters the root; env -i sets exactly the env given.
      // The host's chroot enters the root and drops to the user and groups; env -i sets exactly the
      // env given; the image's sh changes to the working directory (an image without /bin/sh and
      // /usr/bin/env needs the oci backend).
      `exec chroot --userspec=${spec.uid}:${spec.gid} --groups=${[spec.gid, ...spec.additionalGids].join(',')} ${R} /usr/bin/env -i ${spec.env.map(q).join(' ')} /bin/sh -c 'cd "$0" && exec "$@"' ${q(spec.cwd)} ${spec.args.map(q).join(' ')}`,
    ];
    const nsArgs = ['--mount', '--pid', '--fork', '--uts', '--ipc', '--kill-child', ...(spec.network === 'none' ? ['--net'] : [])];
    const child = spawn('unshare', [...nsArgs, 'sh', '-c', lines.join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail = { text: '' };
    pipeOutput(child, spec, tail);
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await waitExit(child);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** Pick the backend: an explicit runtime path, else runc, then crun, else chroot. */
export async function selectRunner(opts: { runtime?: string; backend?: BackendKind } = {}): Promise<Runner> {
  if (opts.backend === 'chroot') return new ChrootRunner();
  if (opts.runtime) {
    if (!existsSync(opts.runtime) && !(await which(opts.runtime))) throw new KilnError('NOT_FOUND', `OCI runtime not found: ${opts.runtime}`, { path: opts.runtime });
    return new OciRunner(opts.runtime);
  }
  for (const rt of runtimeCandidates) {
    if (broken.has(rt)) continue;
    const p = await which(rt);
    if (p) return new OciRunner(p);
  }
  if (opts.backend === 'oci') throw new KilnError('NOT_FOUND', 'no working OCI runtime (runc or crun) found', {}, { hint: 'apt-get install runc, or use the chroot backend' });
  return new ChrootRunner();
}

const runtimeCandidates = ['runc', 'crun'];
const broken = new Set<string>();
/** Remember that a runtime cannot start containers on this host (e.g. crun on cgroup v1). */
export function markRuntimeBroken(program: string): void {
  broken.add(path.basename(program));
}
