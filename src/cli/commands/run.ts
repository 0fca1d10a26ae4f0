/** `kiln run IMAGE [CMD…]`: run an image's entrypoint and command in the foreground, as `docker run`. */
import type { Command } from 'commander';
import { constants as osConstants } from 'node:os';
import { run } from '../../api/index.js';
import { parsePlatform } from '../../image/index.js';
import { parseVolume } from '../../sandbox/index.js';
import { KilnError } from '../../util/index.js';
import { collect } from '../options.js';
import { openStoreFromCli } from '../store.js';

interface RunFlags {
  rm?: boolean;
  env?: string[];
  user?: string;
  workdir?: string;
  network: string;
  volume?: string[];
  entrypoint?: string;
  runtime?: string;
  snapshotter?: string;
  backend?: string;
  platform?: string;
}

export function register(program: Command): Command {
  return program
    .command('run')
    .description(
      "run a command in a new container from an image (the image's entrypoint and command by default), in the foreground like docker run; the container's changes are discarded",
    )
    .argument('<image>', 'image name or ID')
    .argument('[command...]', 'command and arguments (replace the image CMD)')
    .option('--rm', 'remove the container when it exits (always the case: kiln keeps no containers)')
    .option(
      '-e, --env <key=value>',
      'set an environment variable (repeatable; KEY alone takes it from this environment)',
      collect,
    )
    .option('-u, --user <user>', 'user[:group] or uid[:gid] to run as (names from the image)')
    .option('-w, --workdir <dir>', 'working directory inside the container (made when missing)')
    .option('--network <mode>', 'host or none', 'host')
    .option('-v, --volume <host:container[:ro]>', 'bind-mount a host directory or file (repeatable)', collect)
    .option('--entrypoint <cmd>', 'override the image\'s entrypoint ("" clears it)')
    .option('--runtime <path>', 'OCI runtime to use (default: crun, else runc, whichever works here first)')
    .option(
      '--snapshotter <kind>',
      'overlay, fuse-overlayfs or native (default: overlay when it can be mounted, else fuse-overlayfs when it can, else native; the sandbox line says why each was refused); one that cannot be mounted here fails with the reason',
    )
    .option(
      '--backend <kind>',
      'oci, chroot, bare (chroot alone, no namespaces: unprivileged containers) or host-root (no chroot: RUN in the / of this container, only in a container) (default: oci when a runtime works here, else chroot, else bare, else host-root in a container)',
    )
    .option(
      '--platform <os/arch[/variant]>',
      "the image of a multi-platform index to run (default: this machine's); another architecture runs under QEMU",
    )
    .passThroughOptions()
    .action(async (image: string, command: string[], f: RunFlags, cmd: Command) => {
      if (f.network !== 'host' && f.network !== 'none')
        throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      if (f.snapshotter && !['overlay', 'fuse-overlayfs', 'native'].includes(f.snapshotter))
        throw new KilnError('USAGE', `unknown --snapshotter "${f.snapshotter}": use overlay, fuse-overlayfs or native`);
      if (f.backend && !['oci', 'chroot', 'bare', 'host-root'].includes(f.backend))
        throw new KilnError('USAGE', `unknown --backend "${f.backend}": use oci, chroot, bare or host-root`);
      if (f.workdir !== undefined && !f.workdir.startsWith('/'))
        throw new KilnError(
          'USAGE',
          `the working directory "${f.workdir}" is invalid, it needs to be an absolute path`,
        );
      const volumes = (f.volume ?? []).map(parseVolume);
      const store = await openStoreFromCli(cmd);
      const ac = new AbortController();
      let caught: NodeJS.Signals | undefined;
      const onSig = (sig: NodeJS.Signals) => {
        caught ??= sig;
        ac.abort();
      };
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSig);
      try {
        const r = await run(image, {
          store,
          command,
          env: f.env,
          user: f.user,
          workdir: f.workdir,
          network: f.network,
          volumes,
          entrypoint: f.entrypoint,
          runtime: f.runtime,
          snapshotter: f.snapshotter as 'overlay' | 'fuse-overlayfs' | 'native' | undefined,
          backend: f.backend as 'oci' | 'chroot' | 'bare' | 'host-root' | undefined,
          platform: f.platform === undefined ? undefined : parsePlatform(f.platform),
          onStdout: (b) => process.stdout.write(b),
          onStderr: (b) => process.stderr.write(b),
          signal: ac.signal,
        });
        process.exitCode = r.exitCode;
      } catch (e) {
        if (ac.signal.aborted) {
          process.exitCode = 128 + (caught ? osConstants.signals[caught] : 2);
          return;
        }
        throw e;
      } finally {
        for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSig);
      }
    });
}
