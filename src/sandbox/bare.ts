/**
 * The `bare` backend: chroot(2) alone, for where no namespace can be made — inside a container
 * started without --privileged (Docker's default seccomp profile refuses unshare and clone of any
 * namespace; AppArmor's docker-default refuses mount), where chroot, chown, mknod and setuid are
 * allowed (Docker's default capabilities). What kaniko gets in a pod, with the stage's root kept
 * apart from the container's own files.
 *
 * The process is started by `env -i` (exact environment) → `setpriv` (Docker's bounding set, no
 * inheritable caps) → perl (Debian's perl-base: chroot, chdir, groups, gid, uid, exec — no tool
 * of util-linux chroots and sets the working directory at once). Its /dev holds the device nodes a
 * docker run has (made by runDir preparation, outside the layer); there is no /proc or /sys (they
 * cannot be mounted) and no mount of any kind (RUN --mount, kiln run -v are refused with a clear
 * message). It shares the container's PID, network, IPC and hostname: processes it leaves running
 * are killed when it exits (any process whose root is the stage's root).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { KilnError, runCapture, which } from '../util/index.js';
import type { ProcessSpec, Runner } from './process.js';
import { waitExit } from './wait.js';

/** Docker's default capability set, as setpriv names it (runtime.ts's DEFAULT_CAPS). */
const CAPS = [
  'chown',
  'dac_override',
  'fsetid',
  'fowner',
  'mknod',
  'net_raw',
  'setgid',
  'setuid',
  'setfcap',
  'setpcap',
  'net_bind_service',
  'sys_chroot',
  'kill',
  'audit_write',
];

const PERL_ENTER = [
  'use POSIX ();',
  'my ($root, $wd, $uid, $gid, $groups) = splice(@ARGV, 0, 5);',
  'chroot($root) or die "kiln: chroot $root: $!\\n";',
  'chdir($wd) or die "kiln: cannot enter the working directory $wd: $!\\n";',
  'umask 022;',
  '$) = join(" ", $gid, $groups eq "" ? $gid : split(/,/, $groups));',
  'POSIX::setgid($gid) or die "kiln: setgid $gid: $!\\n";',
  '$) = join(" ", $gid, $groups eq "" ? $gid : split(/,/, $groups));',
  'POSIX::setuid($uid) or die "kiln: setuid $uid: $!\\n" if $uid != 0;',
  'exec { $ARGV[0] } @ARGV;',
  'my $e = $!; print STDERR "kiln: exec $ARGV[0]: $e\\n"; exit($!{ENOENT} ? 127 : 126);',
].join(' ');

/** The device nodes of a docker run's /dev (major, minor), made in the root by the runner's caller. */
export const BARE_DEVICES: [string, number, number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

/** Can this process make namespaces (the chroot backend's unshare)? undefined: yes; else why not. */
export async function namespacesRefused(): Promise<string | undefined> {
  const r = await runCapture('unshare', ['--mount', '--pid', '--fork', '--uts', '--ipc', 'true']).catch((e: Error) => ({
    code: -1,
    stderr: e.message,
  }));
  return r.code === 0 ? undefined : r.stderr.trim() || `exit ${r.code}`;
}

export async function bareTools(): Promise<{ env: string; setpriv: string; perl: string }> {
  const [env, setpriv, perl] = await Promise.all(['env', 'setpriv', 'perl'].map((t) => which(t)));
  if (!env || !setpriv || !perl) {
    throw new KilnError(
      'SANDBOX',
      `the bare backend needs coreutils' env, util-linux's setpriv and perl (missing: ${[!env && 'env', !setpriv && 'setpriv', !perl && 'perl'].filter(Boolean).join(', ')})`,
      {},
      { hint: 'apt-get install coreutils util-linux perl-base' },
    );
  }
  return { env, setpriv, perl };
}

/**
 * Kill what a RUN left running: every process of the session it was started in (its own: the
 * runner starts it as a session leader), and (given `rootfs`) every other process whose root directory is `rootfs`
 * (one that left the session; its root is readable when it runs as root — another user's needs
 * CAP_SYS_PTRACE, which containers lack).
 */
export function killSession(sid: number, rootfs?: string): void {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let ours: boolean;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp session …: comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ours = Number(fields[3]) === sid;
    } catch {
      continue; // gone
    }
    try {
      ours ||= rootfs !== undefined && readlinkSync(`/proc/${pid}/root`) === rootfs;
    } catch {
      // not ours to see
    }
    if (ours) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

export class BareRunner implements Runner {
  readonly kind = 'bare' as const;
  readonly program = 'chroot';

  async run(rootfs: string, _bundleDir: string, _id: string, spec: ProcessSpec, signal?: AbortSignal): Promise<number> {
    if (spec.mounts?.length) {
      throw new KilnError(
        'SANDBOX',
        `mounts (${spec.mounts.map((m) => m.target).join(', ')}) need a mount namespace, which this host refuses (an unprivileged container): the bare backend runs with none`,
        {},
        {
          hint: 'drop RUN --mount / -v here, or run kiln where user namespaces are allowed (rootless) or with --privileged',
        },
      );
    }
    if (spec.network === 'none') {
      throw new KilnError(
        'SANDBOX',
        "network none needs a network namespace, which this host refuses (an unprivileged container): the bare backend shares the container's network",
        {},
        { hint: 'drop --network=none here' },
      );
    }
    const tools = await bareTools();
    const env = spec.env.filter((e) => e.indexOf('=') > 0);
    const argv = [
      tools.env,
      '-i',
      ...env,
      tools.setpriv,
      `--bounding-set=-all,${CAPS.map((c) => `+${c}`).join(',')}`,
      '--inh-caps=-all',
      '--',
      tools.perl,
      '-e',
      PERL_ENTER,
      rootfs,
      spec.cwd,
      String(spec.uid),
      String(spec.gid),
      spec.additionalGids.join(','),
      ...spec.args,
    ];
    // A session of its own (setsid): what it leaves running is found by its session id.
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [spec.stdin ?? 'ignore', 'pipe', 'pipe'], detached: true });
    // No PID namespace ends what the process left running: its exit does (their output pipes
    // would hold the close back), and so does an abort.
    const sid = child.pid!;
    child.once('exit', () => killSession(sid, rootfs));
    child.stdout.on('data', (b: Buffer) => spec.onStdout?.(b));
    child.stderr.on('data', (b: Buffer) => spec.onStderr?.(b));
    try {
      return await waitExit(child, signal);
    } finally {
      killSession(sid, rootfs);
    }
  }
}
