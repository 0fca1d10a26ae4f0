/**
 * Rootless kiln: a user who is not root runs the command again as root of a user namespace of its
 * own (with a mount namespace), as `podman unshare` and rootless buildah do. There:
 * - uid/gid 0 is the user, 1…N the user's subordinate ids from /etc/subuid and /etc/subgid,
 *   mapped by newuidmap/newgidmap (Debian's `uidmap`): files owned by root, by 65532 or by a
 *   `useradd`ed user of the image keep those owners in snapshots and layers; on the host they
 *   belong to the user and to the user's subordinate ids;
 * - overlayfs mounts (Linux ≥ 5.11, with `userxattr`), runc runs (its rootless cgroup manager),
 *   mounts vanish with the namespace;
 * - the store is the user's: `$XDG_DATA_HOME/kiln` (or --root, $KILN_ROOT).
 * A user without subordinate ids (or without newuidmap) gets the single-id mode: only root is
 * mapped, every file of the image is root's and a RUN as another user runs as root, which kiln says
 * before it starts, with what to add to have owners kept.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { constants as osConstants } from 'node:os';
import { KilnError, runCapture, which } from '../util/index.js';
import { defaultStoreRoot } from '../store/index.js';

/** Commands that work without the store (or only with the registry): run as they are. */
const WITHOUT_STORE = new Set(['plan', 'lint', 'login', 'logout', 'help']);
/** Commands that run processes in images: they cannot work without a user namespace. */
const SANDBOXED = new Set(['build', 'run']);

export interface SubIdRange {
  start: number;
  count: number;
}

/** The first range of /etc/subuid (or subgid) text given to `user` (by name or by uid). */
export function subIdRange(text: string, user: string, id: number): SubIdRange | undefined {
  for (const line of text.split('\n')) {
    const f = line.trim().split(':');
    if (f.length !== 3 || line.trim().startsWith('#')) continue;
    if (f[0] !== user && f[0] !== String(id)) continue;
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (Number.isInteger(start) && Number.isInteger(count) && count > 0) return { start, count };
  }
  return undefined;
}

export type RootlessMode = 'subids' | 'single-id';

export interface RootlessPlan {
  mode: RootlessMode;
  /** unshare's arguments (the user and mount namespaces, the maps). */
  unshareArgs: string[];
  /** What kiln says before it starts (the single-id mode, and what to add to leave it). */
  notice?: string;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** How this user gets a user namespace: with the subordinate ids, or the single-id mode. */
export async function rootlessPlan(): Promise<RootlessPlan> {
  const uid = process.getuid!();
  const name = os.userInfo().username;
  const uids = subIdRange(readOr('/etc/subuid'), name, uid);
  const gids = subIdRange(readOr('/etc/subgid'), name, uid);
  const tools = (await which('newuidmap')) && (await which('newgidmap'));
  const base = ['--user', '--mount', '--map-root-user'];
  if (uids && gids && tools) {
    return {
      mode: 'subids',
      unshareArgs: [...base, `--map-users=${uids.start},1,${uids.count}`, `--map-groups=${gids.start},1,${gids.count}`],
    };
  }
  const missing =
    !uids || !gids
      ? `no subordinate ids for ${name} in ${[!uids && '/etc/subuid', !gids && '/etc/subgid'].filter(Boolean).join(' and ')}`
      : 'newuidmap/newgidmap are not installed';
  const fix =
    !uids || !gids
      ? `add "${name}:100000:65536" to /etc/subuid and /etc/subgid (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${name})`
      : 'apt-get install uidmap';
  return {
    mode: 'single-id',
    unshareArgs: base,
    notice: `kiln: rootless, single-id mode (${missing}): files of the base image and files RUN steps make are owned by root, RUN steps run as root and cannot chown to another user. To keep owners (root, 65532, users the image adds), ${fix}.`,
  };
}

/** Can this process make a user namespace at all? (some hosts and containers refuse it) */
async function userNamespacesAllowed(): Promise<string | undefined> {
  const r = await runCapture('unshare', ['--user', '--map-root-user', 'true']).catch((e: Error) => ({
    code: -1,
    stderr: e.message,
  }));
  return r.code === 0 ? undefined : r.stderr.trim() || `exit ${r.code}`;
}

/**
 * As a user who is not root, for a command that uses the store: run this same command again in a
 * user namespace and return its exit code. undefined: run the command here (root, already inside,
 * or a command that needs no store).
 */
export async function runInUserNamespace(argv: string[], command: string | undefined): Promise<number | undefined> {
  if (process.getuid?.() !== 0 && process.env.KILN_USERNS !== undefined) return undefined; // inside already, as not-root: no nesting
  if (
    process.getuid?.() === 0 ||
    !command ||
    WITHOUT_STORE.has(command) ||
    argv.includes('--help') ||
    argv.includes('-h')
  )
    return undefined;
  const refused = await userNamespacesAllowed();
  if (refused) {
    if (!SANDBOXED.has(command)) return undefined;
    throw new KilnError(
      'SANDBOX',
      `kiln ${command} as a user who is not root needs a user namespace, and this host refuses one: ${refused}`,
      {},
      {
        hint: 'allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or run kiln as root (e.g. in a container: see docs/rootless.md)',
      },
    );
  }
  const plan = await rootlessPlan();
  if (plan.notice && SANDBOXED.has(command)) process.stderr.write(`${plan.notice}\n`);
  const script = process.argv[1]!;
  const env = { ...process.env, KILN_USERNS: plan.mode, KILN_ROOT: process.env.KILN_ROOT || defaultStoreRoot() };
  const child = spawn('unshare', [...plan.unshareArgs, '--', process.execPath, ...process.execArgv, script, ...argv], {
    stdio: 'inherit',
    env,
  });
  // Ctrl-C reaches the child through the terminal's process group (this process waits for it to
  // end); a SIGTERM or SIGHUP sent to this process alone is passed on.
  const forward = (sig: NodeJS.Signals) => () => void (sig !== 'SIGINT' && child.kill(sig));
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (e) =>
        reject(
          new KilnError(
            'SANDBOX',
            `cannot start unshare for a rootless ${command}: ${e.message}`,
            {},
            { hint: 'apt-get install util-linux uidmap' },
          ),
        ),
      );
      child.on('exit', (code, sig) => resolve(code ?? 128 + (sig ? (osConstants.signals[sig] ?? 9) : 9)));
    });
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
}

/** Inside a rootless kiln: its mode (for the progress output), else undefined. */
export function rootlessMode(): RootlessMode | undefined {
  const m = process.env.KILN_USERNS;
  return m === 'subids' || m === 'single-id' ? m : undefined;
}
