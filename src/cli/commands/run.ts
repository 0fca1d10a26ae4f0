/** `kiln run IMAGE [CMD…]`: run an image's entrypoint and command in the foreground, as `docker run`. */
import type { Command } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { runStep, type Mount } from '../../sandbox/index.js';
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
}

/** docker's environment for a container: HOSTNAME, then the image's ENV, then -e (later wins). */
export function containerEnv(
  imageEnv: string[],
  flags: string[],
  hostname: string,
  hostEnv: NodeJS.ProcessEnv = process.env,
): string[] {
  const env: string[] = [`HOSTNAME=${hostname}`];
  const set = (kv: string) => {
    const key = kv.slice(0, kv.indexOf('='));
    const i = env.findIndex((x) => x.startsWith(`${key}=`));
    if (i >= 0) env[i] = kv;
    else env.push(kv);
  };
  for (const e of imageEnv) if (e.indexOf('=') > 0) set(e);
  for (const e of flags) {
    const eq = e.indexOf('=');
    if (eq === 0) throw new KilnError('USAGE', `invalid environment variable "${e}": the name is empty`);
    if (eq > 0) set(e);
    else if (hostEnv[e] !== undefined) set(`${e}=${hostEnv[e]}`); // docker: a bare name takes the value from here, or is dropped
  }
  return env;
}

/** -v HOST:CONTAINER[:ro|rw] as docker takes it (a missing host directory is made). */
export function parseVolume(v: string): Mount {
  const parts = v.split(':');
  const [src, dst, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !src || !dst || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
    throw new KilnError('USAGE', `invalid --volume "${v}": expected /host/path:/container/path[:ro]`);
  }
  if (!dst.startsWith('/'))
    throw new KilnError('USAGE', `invalid --volume "${v}": the container path must be absolute`);
  if (!src.startsWith('/') && !src.startsWith('.')) {
    throw new KilnError(
      'UNSUPPORTED',
      `invalid --volume "${v}": named volumes are not supported, give a host path`,
      {},
      { hint: 'use ./dir for a directory here' },
    );
  }
  return { type: 'bind', source: path.resolve(src), target: dst, readonly: mode === 'ro' };
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
    .option('--runtime <path>', 'OCI runtime to use (default: runc or crun, whichever works here)')
    .option('--snapshotter <kind>', 'overlay or native (default: overlay when it can be mounted)')
    .option(
      '--backend <kind>',
      'oci, chroot or bare (chroot alone, no namespaces: unprivileged containers) (default: oci when a runtime works here, else chroot, else bare)',
    )
    .passThroughOptions()
    .action(async (image: string, command: string[], f: RunFlags, cmd: Command) => {
      if (f.network !== 'host' && f.network !== 'none')
        throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      if (f.snapshotter && f.snapshotter !== 'overlay' && f.snapshotter !== 'native')
        throw new KilnError('USAGE', `unknown --snapshotter "${f.snapshotter}": use overlay or native`);
      if (f.backend && f.backend !== 'oci' && f.backend !== 'chroot' && f.backend !== 'bare')
        throw new KilnError('USAGE', `unknown --backend "${f.backend}": use oci, chroot or bare`);
      if (f.workdir !== undefined && !f.workdir.startsWith('/'))
        throw new KilnError(
          'USAGE',
          `the working directory "${f.workdir}" is invalid, it needs to be an absolute path`,
        );
      const mounts = (f.volume ?? []).map(parseVolume);
      const store = await openStoreFromCli(cmd);
      const img = await store.resolveImage(image);
      const c = img.config.config ?? {};
      const entrypoint =
        f.entrypoint !== undefined ? (f.entrypoint === '' ? [] : [f.entrypoint]) : (c.Entrypoint ?? []);
      // docker: --entrypoint drops the image's CMD too.
      const args = [...entrypoint, ...(command.length ? command : f.entrypoint !== undefined ? [] : (c.Cmd ?? []))];
      if (args.length === 0)
        throw new KilnError(
          'USAGE',
          `no command specified: image ${image} has no ENTRYPOINT or CMD`,
          { image },
          { hint: 'give one after the image name' },
        );
      const hostname = randomBytes(6).toString('hex');
      const env = containerEnv(c.Env ?? [], f.env ?? [], hostname);
      for (const m of mounts) if (!existsSync(m.source!)) mkdirSync(m.source!, { recursive: true });
      const ac = new AbortController();
      let caught: NodeJS.Signals | undefined;
      const onSig = (sig: NodeJS.Signals) => {
        caught ??= sig;
        ac.abort();
      };
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSig);
      try {
        const r = await runStep({
          store,
          layers: img.manifest.layers,
          diffIds: img.config.rootfs.diff_ids,
          args,
          env,
          cwd: f.workdir ?? (c.WorkingDir || '/'),
          user: f.user ?? c.User ?? '',
          network: f.network,
          mounts,
          hostname,
          capture: false,
          snapshotter: f.snapshotter as 'overlay' | 'native' | undefined,
          backend: f.backend as 'oci' | 'chroot' | 'bare' | undefined,
          runtime: f.runtime,
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
