/** `kiln run IMAGE [CMD…]`: run an image's entrypoint and command in the foreground, as `docker run`. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { runStep, type Mount } from '../../sandbox/index.js';
import { KilnError } from '../../util/errors.js';
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
}

export function register(program: Command): Command {
  return program
    .command('run')
    .description("run a command in a new container from an image (the image's entrypoint and command by default)")
    .argument('<image>', 'image name or ID')
    .argument('[command...]', 'command and arguments (replace the image CMD)')
    .option('--rm', 'remove the container when it exits (always the case: kiln keeps no containers)')
    .option('-e, --env <key=value>', 'set an environment variable (repeatable; KEY alone takes it from this environment)', collect)
    .option('-u, --user <user>', 'user[:group] or uid[:gid] to run as (names from the image)')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--network <mode>', 'host or none', 'host')
    .option('-v, --volume <host:container[:ro]>', 'bind-mount a host directory (repeatable)', collect)
    .option('--entrypoint <cmd>', "override the image's entrypoint (\"\" clears it)")
    .option('--runtime <path>', 'OCI runtime to use (default: runc or crun, whichever works here)')
    .option('--snapshotter <kind>', 'overlay or native (default: overlay when it can be mounted)')
    .option('--backend <kind>', 'oci or chroot (default: oci when a runtime works)')
    .passThroughOptions()
    .action(async (image: string, command: string[], f: RunFlags, cmd: Command) => {
      if (f.network !== 'host' && f.network !== 'none') throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      if (f.snapshotter && f.snapshotter !== 'overlay' && f.snapshotter !== 'native') throw new KilnError('USAGE', `unknown --snapshotter "${f.snapshotter}": use overlay or native`);
      if (f.backend && f.backend !== 'oci' && f.backend !== 'chroot') throw new KilnError('USAGE', `unknown --backend "${f.backend}": use oci or chroot`);
      const store = await openStoreFromCli(cmd);
      const img = await store.resolveImage(image);
      const c = img.config.config ?? {};
      const entrypoint = f.entrypoint !== undefined ? (f.entrypoint === '' ? [] : [f.entrypoint]) : (c.Entrypoint ?? []);
      const args = [...entrypoint, ...(command.length ? command : f.entrypoint !== undefined ? [] : (c.Cmd ?? []))];
      if (args.length === 0) throw new KilnError('USAGE', `no command specified: image ${image} has no ENTRYPOINT or CMD`, { image }, { hint: 'give one after the image name' });
      const env = [...(c.Env ?? [])];
      for (const e of f.env ?? []) {
        const eq = e.indexOf('=');
        const kv = eq < 0 ? (process.env[e] !== undefined ? `${e}=${process.env[e]}` : undefined) : e;
        if (!kv) continue;
        const key = kv.slice(0, kv.indexOf('='));
        const i = env.findIndex((x) => x.startsWith(`${key}=`));
        if (i >= 0) env[i] = kv;
        else env.push(kv);
      }
      const mounts: Mount[] = (f.volume ?? []).map((v) => {
        const [src, dst, mode] = v.split(':');
        if (!src || !dst || !dst.startsWith('/') || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) throw new KilnError('USAGE', `invalid --volume "${v}": expected /host/path:/container/path[:ro]`);
        const abs = path.resolve(src);
        if (!existsSync(abs)) throw new KilnError('NOT_FOUND', 'bind source path does not exist', { path: abs });
        return { type: 'bind', source: abs, target: dst, readonly: mode === 'ro' };
      });
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      try {
        const r = await runStep({
          store,
          layers: img.manifest.layers,
          diffIds: img.config.rootfs.diff_ids,
          args,
          env,
          cwd: f.workdir ?? c.WorkingDir ?? '/',
          user: f.user ?? c.User ?? '',
          network: f.network,
          mounts,
          capture: false,
          snapshotter: f.snapshotter as 'overlay' | 'native' | undefined,
          backend: f.backend as 'oci' | 'chroot' | undefined,
          runtime: f.runtime,
          onStdout: (b) => process.stdout.write(b),
          onStderr: (b) => process.stderr.write(b),
          signal: ac.signal,
        });
        process.exitCode = r.exitCode;
      } catch (e) {
        if (ac.signal.aborted) {
          process.exitCode = 130;
          return;
        }
        throw e;
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });
}
