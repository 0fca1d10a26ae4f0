/**
 * Running a process in a prepared root filesystem, behind one interface with two backends:
 * - `oci`: an OCI runtime spec (config.json) run by runc or crun — whichever is installed and
 *   works on this host, found by probing (Debian's crun 1.8 refuses cgroup v1/hybrid hosts with
 *   "cgroups in hybrid mode not supported"; runc works there).
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
import { existsSync, mkdirSync, promises as fsp, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { KilnError, runCapture, which, idMapped, userNamespace, phaseDone, phaseStart } from '../util/index.js';
import { makePrivateDir, writePrivateFile } from './private-files.js';
import { rememberedSuccess } from './remembered.js';
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

export class OciRunner implements Runner {
  readonly kind = 'oci' as const;
  constructor(readonly program: string) {}

  async run(rootfs: string, bundleDir: string, id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    const files = hostFiles(bundleDir, spec);
    // The spec holds the environment (secrets too) and the runtime's state a copy of it: both on a
    // private tmpfs, never on disk (private-files.ts).
    const priv = makePrivateDir();
    const state = path.join(priv, 'state');
    const specFile = writePrivateFile(priv, bundleDir, 'config.json', JSON.stringify(ociSpec(rootfs, spec, files)));
    // For the next kiln, should this one die: which runtime state to delete (rundir.ts).
    writeFileSync(
      path.join(bundleDir, 'runtime.json'),
      JSON.stringify({ program: this.program, root: state, id, private: priv }),
    );
    const wrapper = await deathWrapper();
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
      this.program,
      '--root',
      state,
      'run',
      '--bundle',
      bundleDir,
      id,
    ];
    const started = phaseStart();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [spec.stdin ?? 'ignore', 'pipe', 'pipe'] });
    const unwatch = removeOnceStarted(specFile, path.join(state, id), () =>
      phaseDone('RUN start (runtime up, seen by a 20 ms poll)', started),
    );
    const tail = { text: '' };
    pipeOutput(child, spec, tail);
    try {
      const code = await waitExit(child, signal);
      if (signal?.aborted) return code;
      // The command itself could not be run: a shell's 127 / 126, as docker run reports them
      // (the runtime's message went to stderr already).
      // (runc logs in logfmt, its quotes escaped: exec: \"/x\": stat /x: no such file or directory)
      if (
        code !== 0 &&
        /exec: \\?"[^"]*": (executable file not found|stat [^\n]*: no such file or directory)|executable file `[^`]*` not found/.test(
          tail.text,
        )
      )
        return 127;
      if (code !== 0 && /exec: \\?"[^"]*": permission denied|exec `[^`]*`: Permission denied/i.test(tail.text))
        return 126;
      if (code !== 0 && RUNTIME_FAILURE.test(tail.text)) {
        throw new KilnError(
          'SANDBOX',
          `${path.basename(this.program)} could not start the process: ${tail.text.trim().split('\n').slice(-2).join(' ')}`,
          {},
          { hint: 'try --backend chroot, or another --runtime' },
        );
      }
      return code;
    } finally {
      unwatch();
      await deleteContainer(this.program, state, id);
      rmSync(priv, { recursive: true, force: true });
    }
  }
}

/**
 * The runtime reads the spec before it makes the container's state: once that state exists, the
 * spec (and the secrets in it) is removed. Returns a function that stops watching.
 */
function removeOnceStarted(specFile: string, stateDir: string, onStarted?: () => void): () => void {
  const timer = setInterval(() => {
    if (!existsSync(stateDir)) return;
    rmSync(specFile, { force: true });
    clearInterval(timer);
    onStarted?.();
  }, 20);
  return () => clearInterval(timer);
}

/** Remove a container's runtime state and cgroups (a no-op after a normal run). */
export async function deleteContainer(program: string, stateRoot: string, id: string): Promise<void> {
  if (!existsSync(path.join(stateRoot, id))) return;
  await runCapture(program, ['--root', stateRoot, 'delete', '--force', id]).catch(() => undefined);
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
 * Can `program` (runc, crun, …) start a container on this host? It runs a container whose rootfs
 * is empty: a runtime that works gets as far as looking for the executable and says it is missing;
 * one that does not fails earlier (crun 1.8 on a cgroup v1/hybrid host: "cgroups in hybrid mode
 * not supported"). Undefined when it works, else the reason. Probed once per process.
 */
export function probeRuntime(program: string, scratch: string): Promise<string | undefined> {
  let p = probes.get(program);
  if (!p) {
    p = probeOnce(program, scratch);
    probes.set(program, p);
  }
  return p;
}

async function probeOnce(program: string, scratch: string): Promise<string | undefined> {
  const dir = path.join(scratch, `probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const id = path.basename(dir);
  const state = path.join(dir, 'state');
  try {
    mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    const config = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/kiln-probe'], env: ['PATH=/'], cwd: '/' },
      root: { path: path.join(dir, 'rootfs'), readonly: false },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    };
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const r = await runCapture(program, ['--root', state, 'run', '--bundle', dir, id]).catch((e: Error) => ({
      code: -1,
      stdout: '',
      stderr: e.message,
    }));
    const text = `${r.stdout}\n${r.stderr}`;
    if (/kiln-probe/.test(text) && /no such file|not found/i.test(text)) return undefined;
    return text.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit code ${r.code}`;
  } finally {
    await deleteContainer(program, state, id);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/**
 * probeRuntime, remembered across kiln processes until the next boot (remembered.ts), per runtime
 * binary (path, inode, size, mtime). Spares each build ~50 ms.
 */
function probeRemembered(program: string, scratch: string): Promise<string | undefined> {
  return rememberedSuccess('runtime-works', fileFacts(program), () => probeRuntime(program, scratch));
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

const RUNTIME_CANDIDATES = ['runc', 'crun'];

/**
 * Pick the backend: the runtime at `runtime` (must work), else the first of runc and crun that
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
    const why = await probeRuntime(p, opts.scratch);
    if (why)
      throw new KilnError(
        'SANDBOX',
        `OCI runtime ${opts.runtime} cannot start containers on this host: ${why}`,
        { path: p },
        { hint: 'use another --runtime, or --backend chroot' },
      );
    return new OciRunner(p);
  }
  // Once the host-root backend was chosen, / is an image's: the host's tools may be gone.
  if (hostRootChosen && !opts.backend) return new HostRootRunner();
  const refused: string[] = [];
  for (const name of RUNTIME_CANDIDATES) {
    const p = await which(name);
    if (!p) continue;
    const why = await probeRemembered(p, opts.scratch);
    if (!why) return new OciRunner(p);
    refused.push(`${name}: ${why}`);
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
