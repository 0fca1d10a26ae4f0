/**
 * fuse-overlayfs: the overlay snapshotter in user space, for where the kernel refuses overlayfs
 * (kernels before 5.11 in a user namespace, some container setups) but FUSE is allowed. The same
 * layout as kernel overlay (image snapshots as lower dirs, a fresh upper dir, a work dir); the upper
 * dir is read by diffUpper in its 'fuse-overlayfs' form (rootfs.ts says how it differs).
 *
 * It needs the `fuse-overlayfs` binary and a /dev/fuse this process can open: a distribution makes
 * it crw-rw-rw-; a Docker container has it only with `--device /dev/fuse`.
 */
import { accessSync, constants as fsConstants, mkdirSync, statSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { KilnError, runCapture, userNamespace, which } from '../util/index.js';
import { probedOnce, unmount } from './rootfs.js';

/**
 * Mount fuse-overlayfs at `target`: lower dirs bottom → top, `upper` and `work` as kernel overlay
 * takes them. fuse-overlayfs forks into the background once mounted (its own options add
 * allow_other and default_permissions, so the step's USER can use the mount and the kernel checks
 * permissions); unmounting it ends that process.
 */
export async function mountFuseOverlay(lowers: string[], upper: string, work: string, target: string): Promise<void> {
  if (!lowers.length) throw new KilnError('INTERNAL', 'fuse-overlayfs needs a lower dir');
  const r = await runCapture('fuse-overlayfs', [
    '-o',
    // fuse-overlayfs lists lower dirs top first, as overlayfs does.
    `lowerdir=${[...lowers].reverse().map(escapeOption).join(':')},upperdir=${escapeOption(upper)},workdir=${escapeOption(work)}`,
    target,
  ]);
  if (r.code !== 0) {
    throw new KilnError(
      'SANDBOX',
      `cannot mount fuse-overlayfs: ${fuseError(r.stderr) || `exit code ${r.code}`}`,
      { path: target },
      { hint: 'use --snapshotter native where fuse-overlayfs cannot be mounted' },
    );
  }
}

/** FUSE's option parser splits at commas: a comma in a path is escaped. */
function escapeOption(p: string): string {
  return p.replace(/[\\,]/g, (c) => `\\${c}`);
}

/** fuse-overlayfs' complaint in a few words: its last meaningful line (it warns about ignored options first). */
function fuseError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^unknown argument ignored/.test(l));
  return (lines[lines.length - 1] ?? '').replace(/^fuse-overlayfs: /, '').replace(/\.$/, '');
}

/** What /dev/fuse is at `dev`, as far as this process can use it. */
export interface FuseDevice {
  /** stat's mode, or undefined when the node is absent. */
  mode?: number;
  /** This process may open it for reading and writing. */
  accessible: boolean;
}

export function fuseDevice(dev = '/dev/fuse'): FuseDevice {
  let mode: number;
  try {
    mode = statSync(dev).mode;
  } catch {
    return { accessible: false };
  }
  try {
    accessSync(dev, fsConstants.R_OK | fsConstants.W_OK);
    return { mode, accessible: true };
  } catch {
    return { mode, accessible: false };
  }
}

/**
 * Why fuse-overlayfs cannot be used, from what was found (pure: unit-tested); undefined when nothing
 * found so far stands in the way (the probe mount decides then). `user`: the id that opens /dev/fuse
 * (outside a user namespace), named in the advice.
 */
export function fusePrerequisiteRefusal(binary: string | undefined, dev: FuseDevice, user: number): string | undefined {
  if (!binary) return 'fuse-overlayfs is not installed (Debian/Ubuntu: apt-get install fuse-overlayfs)';
  if (dev.mode === undefined)
    return '/dev/fuse is absent (in a container: start it with --device /dev/fuse; on a host: modprobe fuse)';
  if (!dev.accessible) {
    const perms = (dev.mode & 0o777).toString(8).padStart(3, '0');
    return `/dev/fuse is not accessible (mode ${perms}): chmod 666 /dev/fuse (distributions' default), or setfacl -m u:${user}:rw /dev/fuse`;
  }
  return undefined;
}

/**
 * Why fuse-overlayfs cannot be mounted with its upper dir in `scratch`; undefined when it can
 * (probed once per directory: the binary, /dev/fuse, then a real mount).
 */
export const fuseRefusal: (scratch: string) => Promise<string | undefined> = probedOnce((scratch) =>
  probeFuse(scratch),
);

async function probeFuse(scratch: string): Promise<string | undefined> {
  const ns = userNamespace();
  const outer = ns.nested ? (ns.uids.find((r) => r.inside === 0)?.outside ?? 0) : (process.getuid?.() ?? 0);
  const before = fusePrerequisiteRefusal(await which('fuse-overlayfs'), fuseDevice(), outer);
  if (before) return before;
  // Named <pid>-… so that another kiln's stale-run cleanup sees its owner alive (sandbox/rundir.ts).
  const d = path.join(scratch, `${process.pid}-fuse-probe`);
  try {
    for (const s of ['lower', 'upper', 'work', 'merged']) mkdirSync(path.join(d, s), { recursive: true });
    try {
      await mountFuseOverlay([`${d}/lower`], `${d}/upper`, `${d}/work`, `${d}/merged`);
    } catch (e) {
      return (e as Error).message.replace(/^cannot mount fuse-overlayfs: /, '');
    }
    await unmount(`${d}/merged`);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await fsp.rm(d, { recursive: true, force: true }).catch(() => undefined);
  }
}
