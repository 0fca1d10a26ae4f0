/** `kiln import FILE|- NAME[:TAG]`: a root filesystem tar becomes an image, as `docker import`. */
import type { Command } from 'commander';
import { createReadStream, existsSync } from 'node:fs';
import { importRootfs } from '../../archive/index.js';
import { parseDockerfile, expandWord, type Instruction } from '../../dockerfile/index.js';
import { type ContainerConfig, normalizeImageName, parsePlatform } from '../../image/index.js';
import { KilnError } from '../../util/index.js';
import { collect } from '../options.js';
import { openStoreFromCli } from '../store.js';

const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

/** docker import's --change: Dockerfile config instructions applied to the new image's config. */
export function applyChanges(changes: string[]): ContainerConfig {
  const cfg: ContainerConfig = {};
  const env = new Map<string, string>();
  const lookup = (n: string) => env.get(n);
  for (const ch of changes) {
    const df = parseDockerfile(ch, { file: '--change' });
    for (const ins of df.instructions as Instruction[]) {
      if (!ALLOWED.includes(ins.kind))
        throw new KilnError('USAGE', `--change "${ch}": ${ins.kind} is not allowed (use one of ${ALLOWED.join(', ')})`);
      const x = (w: string) => expandWord(w, lookup);
      const cmdArgs = (c: { form: 'exec'; args: string[] } | { form: 'shell'; command: string }) =>
        c.form === 'exec' ? c.args : ['/bin/sh', '-c', c.command];
      switch (ins.kind) {
        case 'CMD':
          cfg.Cmd = cmdArgs(ins.command);
          break;
        case 'ENTRYPOINT':
          cfg.Entrypoint = cmdArgs(ins.command);
          break;
        case 'ENV':
          for (const p of ins.pairs) env.set(x(p.key), x(p.value));
          cfg.Env = [...env].map(([k, v]) => `${k}=${v}`);
          break;
        case 'EXPOSE':
          cfg.ExposedPorts ??= {};
          for (const p of ins.ports) cfg.ExposedPorts[x(p).includes('/') ? x(p) : `${x(p)}/tcp`] = {};
          break;
        case 'LABEL':
          cfg.Labels ??= {};
          for (const p of ins.pairs) cfg.Labels[x(p.key)] = x(p.value);
          break;
        case 'ONBUILD':
          (cfg.OnBuild ??= []).push(ins.expression);
          break;
        case 'STOPSIGNAL':
          cfg.StopSignal = x(ins.signal);
          break;
        case 'USER':
          cfg.User = x(ins.user);
          break;
        case 'VOLUME':
          cfg.Volumes ??= {};
          for (const v of ins.paths) cfg.Volumes[x(v)] = {};
          break;
        case 'WORKDIR':
          cfg.WorkingDir = x(ins.path);
          break;
      }
    }
  }
  return cfg;
}

export function register(program: Command): Command {
  return program
    .command('import')
    .description('create an image from a root filesystem tarball (plain, gzip or zstd; "-" reads stdin)')
    .argument('<file>', 'rootfs tar file, or - for stdin')
    .argument('[reference]', 'name[:tag] for the image')
    .option(
      '-c, --change <instruction>',
      'apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable',
      collect,
    )
    .option('-m, --message <text>', 'commit message for the history entry')
    .option('--platform <os/arch[/variant]>', "the platform the image is for (default: this machine's)")
    .action(
      async (
        file: string,
        reference: string | undefined,
        flags: { change?: string[]; message?: string; platform?: string },
        cmd: Command,
      ) => {
        if (reference) normalizeImageName(reference); // a bad name fails before the work
        if (file !== '-' && !existsSync(file)) throw new KilnError('NOT_FOUND', 'no such file', { path: file });
        const platform = flags.platform === undefined ? undefined : parsePlatform(flags.platform);
        const config = applyChanges(flags.change ?? []);
        const store = await openStoreFromCli(cmd);
        const src = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
        const img = await importRootfs(store, src, {
          name: reference,
          config,
          source: file,
          message: flags.message,
          platform,
        });
        process.stdout.write(`${img.id}\n`);
      },
    );
}
