/**
 * Running a process in a prepared root filesystem, behind one interface with two backends:
 * - `oci`: an OCI runtime spec (config.json) run by crun or runc — crun first (a container costs it
 *   ~8 ms, runc ~25 ms), whichever is installed and works on this host, found by probing. crun gets
 *   no cgroups of its own (`--cgroup-manager=disabled`: the container stays in kiln's, nothing is
 *   left to clean up); on a hybrid cgroup host, which Debian's crun 1.8 refuses ("cgroups in hybrid
 *   mode not supported"), it runs in a private mount namespace where the cgroup2 mount
 *   (/sys/fs/cgroup/unified) was unmounted first: it sees a plain cgroup v1 host.
 * - `chroot`: util-linux alone — `unshare` (mount, pid, uts, ipc and optionally net namespaces),
 *   `setpriv` (groups, capability bounding set) and `unshare --root --wd --setuid` to enter the
 *   root as the user. Nothing from the image is needed to start the process.
 * Both give what a docker RUN step sees: /proc, a minimal /dev, read-only /sys, the host's
 * /etc/hosts and /etc/resolv.conf and an /etc/hostname (read-only, never part of the rootfs),
 * Docker's default capabilities (none effective for a non-root user, as docker run), the given
 * environment, working directory, user and groups, network host or none, stdin closed, stdout and
 * stderr streamed, the exit code (128+N for a signal). The process is PID 1 of its own PID
 * namespace: when it exits, whatever it left running is killed.
 *
 * Nothing outlives kiln: the runtime runs inside an `unshare --pid --kill-child` wrapper which
 * `setpriv --pdeathsig KILL` ties to kiln's own process, so even a SIGKILLed kiln takes the whole
 * process tree with it; what remains on disk (runtime state, cgroups) is removed by the next kiln
 * (see rundir.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  promises as fsp,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { KilnError, runCapture, which, idMapped, userNamespace, phaseDone, phaseStart } from '../util/index.js';
import { makePrivateDir, writePrivateFile } from './private-files.js';
import { rememberRefusal, rememberedSuccess } from './remembered.js';
import { BareRunner, bareTools, namespacesRefused } from './bare.js';
import { HostRootRunner, assertHostRootAllowed, chrootRefused, inContainer } from './host-root.js';
import { waitExit } from './wait.js';
import type { BackendKind, ProcessSpec, Runner } from './process.js';

export type { BackendKind, ProcessSpec, Runner, RuntimeMount, Ulimit } from './process.js';

/** devpts's tty group (5), as docker mounts it, where this user namespace maps it. */
function devptsGid(): string[] {
  return idMapped(userNamespace().gids, 5) ? ['gid=5'] : [];
}

const DEFAULT_SHM = 64 << 20;

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Files bind-mounted from the host into every run (relative to the root), never captured into a layer. */
export const HOST_FILES = ['etc/hosts', 'etc/resolv.conf', 'etc/hostname'];

/** Mount points every run needs in the rootfs (created as stubs outside the layer when missing). */
export const RUNTIME_MOUNT_POINTS: { path: string; kind: 'dir' | 'file' }[] = [
  { path: 'proc', kind: 'dir' },
  { path: 'sys', kind: 'dir' },
  { path: 'dev', kind: 'dir' },
  ...HOST_FILES.map((p) => ({ path: p, kind: 'file' as const })),
];

/** Host files the process sees at /etc/hosts, /etc/resolv.conf, /etc/hostname. */
export interface HostFiles {
  hosts: string;
  resolvConf: string;
  hostname: string;
}

function hostFiles(bundleDir: string, spec: ProcessSpec): HostFiles {
  const hostname = path.join(bundleDir, 'hostname');
  writeFileSync(hostname, `${spec.hostname ?? 'kiln'}\n`);
  const orEmpty = (p: string, name: string) => {
    if (existsSync(p)) return p;
    const f = path.join(bundleDir, name);
    writeFileSync(f, '');
    return f;
  };
  let hosts = orEmpty('/etc/hosts', 'hosts');
  if (spec.extraHosts?.length) {
    // The host's lines, then one line per --add-host ("IP<TAB>NAME", as BuildKit writes them).
    const own = path.join(bundleDir, 'hosts-extra');
    const base = readFileSync(hosts, 'utf8');
    writeFileSync(
      own,
      `${base}${base && !base.endsWith('\n') ? '\n' : ''}${spec.extraHosts.map(([name, ip]) => `${ip}\t${name}\n`).join('')}`,
    );
    hosts = own;
  }
  return { hosts, resolvConf: orEmpty('/etc/resolv.conf', 'resolv.conf'), hostname };
}

/** The OCI runtime spec (config.json) for a process: what docker would give a container. */
export function ociSpec(rootfs: string, spec: ProcessSpec, files: HostFiles): Record<string, unknown> {
  const mounts: unknown[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', ...devptsGid()],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${Math.floor((spec.shmSize ?? DEFAULT_SHM) / 1024)}k`],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    // A fresh sysfs shows the network namespace's devices; with the host's network it cannot be
    // mounted afresh and a read-only bind of the host's stands in (as docker for --network host).
    spec.network === 'none'
      ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] }
      : { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConf, options: ['rbind', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ['rbind', 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: files.hostname, options: ['rbind', 'ro'] },
  ];
  for (const m of spec.mounts ?? []) {
    if (m.type === 'tmpfs')
      mounts.push({
        destination: m.target,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=1777', ...(m.size ? [`size=${m.size}`] : [])],
      });
    else
      mounts.push({
        destination: m.target,
        type: 'bind',
        source: m.source,
        options: ['rbind', m.readonly ? 'ro' : 'rw'],
      });
  }
  const namespaces: { type: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  // A new network namespace: runc brings its loopback up.
  if (spec.network === 'none') namespaces.push({ type: 'network' });
  // docker run drops the permitted and effective sets for a non-root user (moby#36587).
  const effective = spec.uid === 0 ? DEFAULT_CAPS : [];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: spec.uid, gid: spec.gid, additionalGids: spec.additionalGids },
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      capabilities: { bounding: DEFAULT_CAPS, effective, permitted: effective, inheritable: [], ambient: [] },
      ...(spec.ulimits?.length
        ? { rlimits: spec.ulimits.map((u) => ({ type: u.type, soft: u.soft, hard: u.hard })) }
        : {}),
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    hostname: spec.hostname ?? 'kiln',
    mounts,
    linux: {
      namespaces,
      maskedPaths: [
        '/proc/asound',
        '/proc/acpi',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/proc/scsi',
        '/sys/firmware',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Tools of the host the chroot backend runs (absolute paths). */
export interface ChrootTools {
  env: string;
  setpriv: string;
  unshare: string;
  ip?: string;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The shell script the chroot backend runs as PID 1 of fresh mount/pid/uts/ipc(/net) namespaces:
 * mounts the API file systems and binds into the root, then execs the process in it through
 * `env -i` (exact environment), `setpriv` (gid, groups, docker's bounding set) and
 * `unshare --root --wd --setuid` (chroot, working directory, uid): the process replaces the
 * script as PID 1.
 */
export function chrootScript(rootfs: string, spec: ProcessSpec, files: HostFiles, tools: ChrootTools): string {
  const R = (p: string) => q(path.posix.join(rootfs, p));
  const lines = [
    'set -e',
    'mount --make-rprivate /',
    `mount -t proc -o nosuid,noexec,nodev proc ${R('/proc')}`,
    `mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs ${R('/dev')}`,
    ...['null', 'zero', 'full', 'random', 'urandom', 'tty'].map(
      (d) => `touch ${R(`/dev/${d}`)} && mount --bind /dev/${d} ${R(`/dev/${d}`)}`,
    ),
    `mkdir -p ${R('/dev/pts')} ${R('/dev/shm')} ${R('/dev/mqueue')}`,
    `mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620${devptsGid()
      .map((g) => `,${g}`)
      .join('')} devpts ${R('/dev/pts')}`,
    `mount -t tmpfs -o nosuid,noexec,nodev,mode=1777,size=${Math.floor((spec.shmSize ?? DEFAULT_SHM) / 1024)}k shm ${R('/dev/shm')}`,
    `mount -t mqueue -o nosuid,noexec,nodev mqueue ${R('/dev/mqueue')} 2>/dev/null || true`,
    `ln -s /proc/self/fd ${R('/dev/fd')} && ln -s /proc/self/fd/0 ${R('/dev/stdin')} && ln -s /proc/self/fd/1 ${R('/dev/stdout')} && ln -s /proc/self/fd/2 ${R('/dev/stderr')} && ln -s pts/ptmx ${R('/dev/ptmx')}`,
    spec.network === 'none'
      ? `mount -t sysfs -o ro,nosuid,noexec,nodev sysfs ${R('/sys')}`
      : `mount --rbind /sys ${R('/sys')} && mount -o remount,bind,ro,nosuid,noexec,nodev ${R('/sys')}`,
    ...(
      [
        ['/etc/hosts', files.hosts],
        ['/etc/resolv.conf', files.resolvConf],
        ['/etc/hostname', files.hostname],
      ] as const
    ).map(([dst, src]) => `mount --bind ${q(src)} ${R(dst)} && mount -o remount,bind,ro ${R(dst)}`),
    // Mount points exist in the rootfs already (stubs outside the layer); these only matter for a
    // mount inside an earlier one (e.g. a bind under a tmpfs), as runc creates them there too.
    ...(spec.mounts ?? []).map((m) =>
      m.type === 'tmpfs'
        ? `mkdir -p ${R(m.target)} && mount -t tmpfs -o nosuid,nodev,mode=1777${m.size ? `,size=${m.size}` : ''} tmpfs ${R(m.target)}`
        : `if [ -d ${q(m.source!)} ]; then mkdir -p ${R(m.target)}; elif [ ! -e ${R(m.target)} ]; then mkdir -p ${R(path.posix.dirname(m.target))} && touch ${R(m.target)}; fi && ` +
          `mount --rbind ${q(m.source!)} ${R(m.target)}${m.readonly ? ` && mount -o remount,bind,ro ${R(m.target)}` : ''}`,
    ),
    `hostname ${q(spec.hostname ?? 'kiln')}`,
    ...(spec.network === 'none' && tools.ip ? [`${q(tools.ip)} link set lo up`] : []),
    // --ulimit: set on this shell (PID 1 here), which the process replaces.
    ...(spec.ulimits ?? []).map(
      (u) => `prlimit --pid $$ --${u.type.slice('RLIMIT_'.length).toLowerCase()}=${u.soft}:${u.hard}`,
    ),
    'umask 022',
  ];
  const caps = DEFAULT_CAPS.map((c) => `+${c.slice(4).toLowerCase()}`).join(',');
  const groups = spec.additionalGids.length ? `--groups=${spec.additionalGids.join(',')}` : '--clear-groups';
  const env = spec.env.filter((e) => e.indexOf('=') > 0);
  lines.push(
    [
      'exec',
      q(tools.env),
      '-i',
      '--',
      ...env.map(q),
      q(tools.setpriv),
      `--regid=${spec.gid}`,
      groups,
      `--bounding-set=-all,${caps}`,
      '--inh-caps=-all',
      '--',
      q(tools.unshare),
      `--root=${q(rootfs)}`,
      `--wd=${q(spec.cwd)}`,
      ...(spec.uid !== 0 ? [`--setuid=${spec.uid}`] : []),
      '--',
      ...spec.args.map(q),
    ].join(' '),
  );
  return lines.join('\n');
}

function pipeOutput(child: ChildProcess, spec: ProcessSpec, errTail: { text: string }): void {
  child.stdout?.on('data', (b: Buffer) => spec.onStdout?.(b));
  child.stderr?.on('data', (b: Buffer) => {
    errTail.text = (errTail.text + b.toString()).slice(-4000);
    spec.onStderr?.(b);
  });
}

let pdeathsig: string[] | undefined;
/** `setpriv --pdeathsig KILL`: the wrapper dies with kiln, whatever kills kiln (probed once per boot: remembered.ts). */
async function deathWrapper(): Promise<string[]> {
  if (pdeathsig) return pdeathsig;
  const setpriv = await which('setpriv');
  const why = setpriv
    ? await rememberedSuccess('pdeathsig-works', fileFacts(setpriv), async () => {
        const r = await runCapture(setpriv, ['--pdeathsig', 'KILL', 'true']).catch(() => undefined);
        return r?.code === 0 ? undefined : `setpriv --pdeathsig exited with ${r?.code}`;
      })
    : 'no setpriv';
  pdeathsig = why === undefined ? [setpriv!, '--pdeathsig', 'KILL'] : [];
  return pdeathsig;
}

/** What a runtime failure looks like (as opposed to the process's own exit code). */
const RUNTIME_FAILURE =
  /cgroups in hybrid mode not supported|^crun: |level=error msg=|runc run failed|OCI runtime|unable to start container process/m;
/** The command could not be found (a shell's 127); runc logs in logfmt, its quotes escaped: exec: \"/x\": stat /x: … */
const EXEC_NOT_FOUND =
  /exec: \\?"[^"]*": (executable file not found|stat [^\n]*: no such file or directory)|executable file `[^`]*` not found/;
/** The command could not be executed (a shell's 126): runc's words, crun's (1.8: "open executable"). */
const EXEC_DENIED =
  /exec: \\?"[^"]*": permission denied|exec `[^`]*`: Permission denied|open executable: Permission denied/i;

/**
 * How a runtime is started here: `program`, its global `options`, and whether the cgroup2 mount of
 * a hybrid host must first be unmounted in its private mount namespace (`detachUnified`).
 */
export interface RuntimeInvocation {
  program: string;
  options: string[];
  detachUnified: boolean;
}

/** Where a hybrid cgroup host mounts cgroup2, the one path crun 1.8 looks at to call a host hybrid. */
export const UNIFIED_MOUNT = '/sys/fs/cgroup/unified';
const CGROUP2_SUPER_MAGIC = 0x63677270;
const TMPFS_MAGIC = 0x01021994;

export type CgroupMode = 'unified' | 'hybrid' | 'legacy';

/** The host's cgroup layout, as crun tells it (statfs of /sys/fs/cgroup, then of its `unified`). */
export function cgroupMode(): CgroupMode {
  const type = (p: string) => {
    try {
      return statfsSync(p).type;
    } catch {
      return undefined;
    }
  };
  const top = type('/sys/fs/cgroup');
  if (top === CGROUP2_SUPER_MAGIC) return 'unified';
  if (top === TMPFS_MAGIC && type(UNIFIED_MOUNT) === CGROUP2_SUPER_MAGIC) return 'hybrid';
  return 'legacy';
}

/** The global options kiln gives a runtime (all of them: rundir.ts accepts no other from a run's runtime.json). */
export const RUNTIME_OPTIONS = ['--cgroup-manager=disabled'];

/** crun (by its name): its options differ from runc's. */
export function isCrun(program: string): boolean {
  return /^crun/.test(path.basename(program));
}

/**
 * How `program` is started on a host of this cgroup mode. crun makes no cgroup
 * (`--cgroup-manager=disabled`): the container stays in kiln's own cgroups, as the chroot backend's
 * process does, so a killed kiln leaves none behind, and it cannot escape a limit put on kiln (with
 * its cgroupfs manager and no cgroupsPath crun 1.8 makes /<id> at the root of every v1 hierarchy).
 * On a hybrid host crun 1.8 refuses to start: there, the cgroup2 mount is unmounted first.
 */
export function runtimeInvocation(program: string, mode: CgroupMode = cgroupMode()): RuntimeInvocation {
  const crun = isCrun(program);
  return {
    program,
    options: crun ? [...RUNTIME_OPTIONS] : [],
    detachUnified: crun && mode === 'hybrid',
  };
}

/** The script that unmounts the cgroup2 mount (in a private mount namespace) and execs the runtime. */
const DETACH_UNIFIED = `umount -l ${UNIFIED_MOUNT} && exec "$0" "$@"`;

/**
 * argv of `runtime args…`, for a caller that is in a private mount namespace already (`private`),
 * or for one that is not (then in one of its own: `unshare --mount`, private propagation).
 */
export function runtimeArgv(inv: RuntimeInvocation, args: string[], where: 'private' | 'host'): string[] {
  const argv = [inv.program, ...inv.options, ...args];
  if (!inv.detachUnified) return argv;
  const detached = ['sh', '-c', DETACH_UNIFIED, ...argv];
  return where === 'private' ? detached : ['unshare', '--mount', '--propagation', 'private', ...detached];
}

/** crun's error-level messages in its JSON log (one a line), joined; '' when none. */
function logErrors(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const msgs: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { msg?: unknown; level?: unknown };
      if (e.level === 'error' && typeof e.msg === 'string') msgs.push(e.msg);
    } catch {
      msgs.push(line);
    }
  }
  return msgs.join('\n');
}

export class OciRunner implements Runner {
  readonly kind = 'oci' as const;
  readonly invocation: RuntimeInvocation;
  constructor(
    readonly program: string,
    invocation?: RuntimeInvocation,
  ) {
    this.invocation = invocation ?? runtimeInvocation(program);
  }

  async run(rootfs: string, bundleDir: string, id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    const files = hostFiles(bundleDir, spec);
    // The spec holds the environment (secrets too) and the runtime's state a copy of it: both on a
    // private tmpfs, never on disk (private-files.ts).
    const priv = makePrivateDir();
    const state = path.join(priv, 'state');
    const specFile = writePrivateFile(priv, bundleDir, 'config.json', JSON.stringify(ociSpec(rootfs, spec, files)));
    const inv = this.invocation;
    // For the next kiln, should this one die: which runtime state to delete, and how (rundir.ts).
    writeFileSync(
      path.join(bundleDir, 'runtime.json'),
      JSON.stringify({
        program: this.program,
        root: state,
        id,
        private: priv,
        options: inv.options,
        detachUnified: inv.detachUnified,
      }),
    );
    const wrapper = await deathWrapper();
    // crun says why it failed in its log too (stderr is the process's as well): that decides
    // between a runtime failure and the process's own exit code.
    const log = isCrun(this.program) ? path.join(priv, 'log.json') : undefined;
    // The runtime runs as PID 1 of a PID namespace of its own: killing it (abort, or kiln's death
    // through pdeathsig) kills the container's processes too.
    const argv = [
      ...wrapper,
      'unshare',
      '--mount',
      '--pid',
      '--fork',
      '--kill-child',
      '--mount-proc',
      ...runtimeArgv(
        inv,
        [...(log ? [`--log=${log}`, '--log-format=json'] : []), '--root', state, 'run', '--bundle', bundleDir, id],
        'private',
      ),
    ];
    const started = phaseStart();
    // Watched before the runtime starts: its state may appear (and go) at once.
    const unwatch = removeOnceStarted(specFile, state, id, () => phaseDone('RUN start (runtime up)', started));
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: [spec.stdin ?? 'ignore', 'pipe', 'pipe'] });
    } catch (e) {
      unwatch();
      rmSync(priv, { recursive: true, force: true });
      throw e;
    }
    const tail = { text: '' };
    pipeOutput(child, spec, tail);
    try {
      const code = await waitExit(child, signal);
      if (signal?.aborted || code === 0) return code;
      // What the runtime said: crun's log, or runc's lines among the output.
      const said = log ? logErrors(log) : tail.text;
      // The command itself could not be run: a shell's 127 / 126, as docker run reports them
      // (the runtime's message went to stderr already).
      if (EXEC_NOT_FOUND.test(said)) return 127;
      if (EXEC_DENIED.test(said)) return 126;
      if (log ? said !== '' : RUNTIME_FAILURE.test(said)) {
        throw new KilnError(
          'SANDBOX',
          `${path.basename(this.program)} could not start the process: ${said.trim().split('\n').slice(-2).join(' ')}`,
          {},
          { hint: 'try --backend chroot, or another --runtime' },
        );
      }
      return code;
    } finally {
      unwatch();
      await deleteContainer(inv, state, id);
      rmSync(priv, { recursive: true, force: true });
    }
  }
}

/**
 * Files a runtime writes in a container's state directory once the container is made, the spec
 * read: runc's state.json, crun's status (crun makes the directory itself before it reads the spec).
 */
const STATE_FILES = ['state.json', 'status'];

/**
 * Once the runtime has made the container's state, it has read the spec: the spec (and the
 * secrets in it) is then removed. Seen by inotify on the state root (`stateRoot`, made here) and
 * on the container's directory in it, so at once; by a 20 ms poll where inotify is refused.
 * Returns a function that stops watching.
 */
function removeOnceStarted(specFile: string, stateRoot: string, id: string, onStarted?: () => void): () => void {
  const stateDir = path.join(stateRoot, id);
  let done = false;
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    done = true;
    for (const w of watchers) w.close();
    if (timer) clearInterval(timer);
  };
  const check = () => {
    if (done || !STATE_FILES.some((f) => existsSync(path.join(stateDir, f)))) return;
    stop();
    rmSync(specFile, { force: true });
    onStarted?.();
  };
  const watchDir = (dir: string, onChange: (name: string | null) => void): boolean => {
    try {
      const w = watch(dir, { persistent: false }, (_e, name) => onChange(name));
      w.on('error', () => undefined);
      watchers.push(w);
      return true;
    } catch {
      return false;
    }
  };
  let watchingState = false;
  const onRoot = (name: string | null) => {
    if (done || (name !== null && name !== id)) return;
    // The container's directory: its state files are written there next.
    if (!watchingState && existsSync(stateDir)) watchingState = watchDir(stateDir, check);
    check();
  };
  mkdirSync(stateRoot, { recursive: true, mode: 0o700 });
  if (!watchDir(stateRoot, onRoot)) timer = setInterval(check, 20);
  return stop;
}

/** Remove a container's runtime state and cgroups (a no-op after a normal run). */
export async function deleteContainer(
  runtime: string | RuntimeInvocation,
  stateRoot: string,
  id: string,
): Promise<void> {
  if (!existsSync(path.join(stateRoot, id))) return;
  const inv = typeof runtime === 'string' ? runtimeInvocation(runtime) : runtime;
  const [cmd, ...args] = runtimeArgv(inv, ['--root', stateRoot, 'delete', '--force', id], 'host');
  await runCapture(cmd!, args).catch(() => undefined);
}

/** util-linux alone: unshare + setpriv. */
export class ChrootRunner implements Runner {
  readonly kind = 'chroot' as const;
  readonly program = 'unshare';

  async run(rootfs: string, bundleDir: string, _id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    const files = hostFiles(bundleDir, spec);
    const tools = await chrootTools();
    const script = chrootScript(rootfs, spec, files, tools);
    // The script holds the environment (secrets too): on a private tmpfs, never on disk.
    const priv = makePrivateDir();
    writeFileSync(path.join(bundleDir, 'runtime.json'), JSON.stringify({ private: priv }));
    const scriptFile = writePrivateFile(priv, bundleDir, 'run.sh', script);
    const wrapper = await deathWrapper();
    const nsArgs = [
      '--mount',
      '--pid',
      '--fork',
      '--uts',
      '--ipc',
      '--kill-child',
      ...(spec.network === 'none' ? ['--net'] : []),
    ];
    const argv = [...wrapper, tools.unshare, ...nsArgs, 'sh', scriptFile];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [spec.stdin ?? 'ignore', 'pipe', 'pipe'] });
    const tail = { text: '' };
    pipeOutput(child, spec, tail);
    try {
      return await waitExit(child, signal);
    } finally {
      rmSync(priv, { recursive: true, force: true });
    }
  }
}

let tools: ChrootTools | undefined;
async function chrootTools(): Promise<ChrootTools> {
  if (tools) return tools;
  const [env, setpriv, unshare, ip] = await Promise.all(['env', 'setpriv', 'unshare', 'ip'].map((t) => which(t)));
  if (!env || !setpriv || !unshare) {
    throw new KilnError(
      'SANDBOX',
      `the chroot backend needs util-linux's unshare and setpriv and coreutils' env (missing: ${[!env && 'env', !setpriv && 'setpriv', !unshare && 'unshare'].filter(Boolean).join(', ')})`,
      {},
      { hint: 'apt-get install util-linux, or install runc for the oci backend' },
    );
  }
  tools = { env, setpriv, unshare, ip };
  return tools;
}

const probes = new Map<string, Promise<string | undefined>>();

/**
 * Can `runtime` (runc, crun, …, as invoked here) start a container on this host? It runs a
 * container whose rootfs is empty: a runtime that works gets as far as looking for the executable
 * and says it is missing; one that does not fails earlier (crun 1.8 on a hybrid host, run as is:
 * "cgroups in hybrid mode not supported"). Undefined when it works, else the reason. Probed once
 * per process.
 */
export function probeRuntime(runtime: string | RuntimeInvocation, scratch: string): Promise<string | undefined> {
  const inv = typeof runtime === 'string' ? runtimeInvocation(runtime) : runtime;
  const key = invocationFacts(inv);
  let p = probes.get(key);
  if (!p) {
    p = probeOnce(inv, scratch);
    probes.set(key, p);
  }
  return p;
}

/** What tells invocations of one binary apart (options, the hybrid host's unmount). */
function invocationFacts(inv: RuntimeInvocation): string {
  return `${inv.program} ${inv.options.join(' ')}${inv.detachUnified ? ' detach-unified' : ''}`;
}

async function probeOnce(inv: RuntimeInvocation, scratch: string): Promise<string | undefined> {
  const dir = path.join(scratch, `probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const id = path.basename(dir);
  const state = path.join(dir, 'state');
  try {
    // crun makes the default devices in the root's /dev: the directory must be there.
    for (const d of ['proc', 'dev']) mkdirSync(path.join(dir, 'rootfs', d), { recursive: true });
    const config = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/kiln-probe'], env: ['PATH=/'], cwd: '/' },
      root: { path: path.join(dir, 'rootfs'), readonly: false },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    };
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const [cmd, ...args] = runtimeArgv(inv, ['--root', state, 'run', '--bundle', dir, id], 'host');
    const r = await runCapture(cmd!, args).catch((e: Error) => ({
      code: -1,
      stdout: '',
      stderr: e.message,
    }));
    const text = `${r.stdout}\n${r.stderr}`;
    if (/kiln-probe/.test(text) && /no such file|not found/i.test(text)) return undefined;
    return text.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit code ${r.code}`;
  } finally {
    await deleteContainer(inv, state, id);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/**
 * probeRuntime, remembered across kiln processes until the next boot (remembered.ts), per runtime
 * binary (path, inode, size, mtime) and invocation. Spares each build ~20-50 ms.
 */
function probeRemembered(inv: RuntimeInvocation, scratch: string): Promise<string | undefined> {
  return rememberedSuccess('runtime-works', rememberedFacts(inv), () => probeRuntime(inv, scratch));
}

/** What a runtime's remembered answer is keyed by (undefined: its binary cannot be read). */
function rememberedFacts(inv: RuntimeInvocation): string | undefined {
  const facts = fileFacts(inv.program);
  return facts && `${facts} ${invocationFacts(inv)}`;
}

/** A binary as remembered.ts keys it: path, inode, size, mtime (undefined when it cannot be read). */
function fileFacts(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${file} ${st.ino} ${st.size} ${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** Tried in this order: crun starts a container in a third of runc's time. */
export const RUNTIME_CANDIDATES = ['crun', 'runc'];

/**
 * Pick the backend: the runtime at `runtime` (must work), else the first of crun and runc that
 * works here, else chroot (unless `backend: 'oci'` insists). `scratch`: a directory for probes.
 */
export async function selectRunner(opts: {
  runtime?: string;
  backend?: BackendKind;
  scratch: string;
}): Promise<Runner> {
  if (opts.backend === 'host-root' && !opts.runtime) {
    assertHostRootAllowed();
    return new HostRootRunner();
  }
  if (opts.backend === 'bare' && !opts.runtime) {
    await bareTools();
    return new BareRunner();
  }
  if (opts.backend === 'chroot' && !opts.runtime) {
    await chrootTools();
    return new ChrootRunner();
  }
  if (opts.runtime) {
    const p = existsSync(opts.runtime) ? path.resolve(opts.runtime) : await which(opts.runtime);
    if (!p) throw new KilnError('NOT_FOUND', `OCI runtime not found: ${opts.runtime}`, { path: opts.runtime });
    let inv = runtimeInvocation(p);
    let why = await probeRuntime(inv, opts.scratch);
    // Another runtime that refuses hybrid hosts as crun 1.8 does: it may work once cgroup2 is out of sight.
    if (why && /hybrid mode not supported/.test(why) && !inv.detachUnified && cgroupMode() === 'hybrid') {
      const detached = { ...inv, detachUnified: true };
      if (!(await probeRuntime(detached, opts.scratch))) [inv, why] = [detached, undefined];
    }
    if (why)
      throw new KilnError(
        'SANDBOX',
        `OCI runtime ${opts.runtime} cannot start containers on this host: ${why}`,
        { path: p },
        { hint: 'use another --runtime, or --backend chroot' },
      );
    return new OciRunner(p, inv);
  }
  // Once the host-root backend was chosen, / is an image's: the host's tools may be gone.
  if (hostRootChosen && !opts.backend) return new HostRootRunner();
  const refused: string[] = [];
  const refusedHere: { inv: RuntimeInvocation; why: string }[] = [];
  for (const name of RUNTIME_CANDIDATES) {
    const p = await which(name);
    if (!p) continue;
    const inv = runtimeInvocation(p);
    const why = await probeRemembered(inv, opts.scratch);
    if (!why) {
      // The ones before it refused while this one works: the host is as it will stay until the
      // next boot (or an upgrade of their binaries), so they are not probed again by every kiln
      // (a host where crun cannot run paid its probe on each build). No runtime working: all are
      // probed again next time.
      for (const r of refusedHere) rememberRefusal('runtime-works', rememberedFacts(r.inv), r.why);
      return new OciRunner(p, inv);
    }
    refused.push(`${name}: ${why}`);
    refusedHere.push({ inv, why });
  }
  if (opts.backend === 'oci') {
    throw new KilnError(
      'SANDBOX',
      `no working OCI runtime${refused.length ? ` (${refused.join('; ')})` : ' (neither runc nor crun is installed)'}`,
      {},
      { hint: 'apt-get install runc, or use --backend chroot' },
    );
  }
  await chrootTools();
  // No namespace can be made here (an unprivileged container): chroot alone; where even chroot
  // is refused (no CAP_SYS_CHROOT), in a container, its own / (kaniko's model).
  if (await namespacesRefusedOnce()) {
    const noChroot = await chrootRefusedOnce();
    if (noChroot) {
      if (!inContainer() && process.env.KILN_ALLOW_HOST_ROOT !== '1') {
        throw new KilnError(
          'SANDBOX',
          `no namespace can be made here and chroot is refused (${noChroot}): RUN steps cannot be isolated`,
          {},
          {
            hint: 'run kiln as root, rootless with user namespaces, or in a throwaway container (the host-root backend)',
          },
        );
      }
      hostRootChosen = true;
      return new HostRootRunner();
    }
    await bareTools();
    return new BareRunner();
  }
  return new ChrootRunner();
}

let hostRootChosen = false;
let chrootRefusal: Promise<string | undefined> | undefined;
function chrootRefusedOnce(): Promise<string | undefined> {
  chrootRefusal ??= chrootRefused();
  return chrootRefusal;
}

let refusal: Promise<string | undefined> | undefined;
function namespacesRefusedOnce(): Promise<string | undefined> {
  refusal ??= namespacesRefused();
  return refusal;
}
