/** `kiln build`: a Dockerfile and a context → an image, with docker build's flags. */
import type { Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { build } from '../../build/engine.js';
import type { BuildEvent } from '../../build/events.js';
import { saveImagesToFile } from '../../archive/save.js';
import { normalizeImageName } from '../../image/reference.js';
import { KilnError } from '../../util/errors.js';
import { readDockerfileInput } from '../dockerfile-input.js';
import { collect, parseKeyValues } from '../options.js';
import { humanSize, openStoreFromCli } from '../store.js';

interface BuildFlags {
  file?: string;
  tag?: string[];
  buildArg?: string[];
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  network: string;
  label?: string[];
  platform: string;
  iidfile?: string;
  quiet?: boolean;
  output?: string;
  snapshotter?: string;
  backend?: string;
  sourceDateEpoch?: string;
}

function plainPrinter(names: Map<number, string>): (e: BuildEvent) => void {
  return (e) => {
    const label = (s: number) => names.get(s) ?? `stage-${s}`;
    switch (e.type) {
      case 'stage-start':
        names.set(e.stage, e.name ?? `stage-${e.stage}`);
        process.stderr.write(`#${e.stage} [${label(e.stage)}] FROM ${e.base}\n`);
        break;
      case 'step-start':
        process.stderr.write(`#${e.stage} [${label(e.stage)} ${e.step}/${e.total}] ${e.text.split('\n')[0]}\n`);
        break;
      case 'step-output':
        for (const line of e.data.toString().split('\n')) if (line !== '') process.stderr.write(`#${e.stage} ${line}\n`);
        break;
      case 'step-done':
        if (e.ms > 200 || e.layer) process.stderr.write(`#${e.stage} DONE ${(e.ms / 1000).toFixed(1)}s${e.layer ? ` (layer ${humanSize(e.layer.size)})` : ''}\n`);
        break;
      case 'warning':
        process.stderr.write(`warning: ${e.message}\n`);
        break;
      case 'done':
        process.stderr.write(`built ${e.imageId} in ${(e.ms / 1000).toFixed(1)}s: ${e.layers} layers, ${humanSize(e.size)}\n`);
        break;
      default:
        break;
    }
  };
}

export function register(program: Command): Command {
  return program
    .command('build')
    .description('build an image from a Dockerfile and a context directory')
    .argument('<context>', 'build context directory')
    .option('-f, --file <file>', 'Dockerfile ("-" reads stdin; default CONTEXT/Dockerfile)')
    .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect)
    .option('--build-arg <key=value>', 'set a build-time variable (repeatable)', collect)
    .option('--target <stage>', 'build this stage (and what it needs) only')
    .option('--no-cache', 'do not use the build cache (kiln has none yet: every build runs every step)')
    .option('--pull', 'always look for newer base images (needs the registry client)')
    .option('--network <mode>', 'network for RUN steps: host or none', 'host')
    .option('--label <key=value>', 'set a label on the image (repeatable)', collect)
    .option('--platform <os/arch>', 'target platform', 'linux/amd64')
    .option('--iidfile <file>', 'write the image ID to this file')
    .option('-q, --quiet', 'print only the image ID')
    .option('-o, --output <spec>', 'type=store (default), type=docker,dest=FILE or type=oci,dest=FILE')
    .option('--snapshotter <kind>', 'overlay or native (default: overlay when it can be mounted)')
    .option('--backend <kind>', 'oci or chroot (default: oci when a runtime works)')
    .option('--source-date-epoch <seconds>', 'pin timestamps for reproducible images (default: $SOURCE_DATE_EPOCH)')
    .action(async (context: string, f: BuildFlags, cmd: Command) => {
      if (f.network !== 'host' && f.network !== 'none' && f.network !== 'default') throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      if (f.platform !== 'linux/amd64' && f.platform !== 'linux/x86_64') throw new KilnError('USAGE', `--platform ${f.platform}: kiln builds for linux/amd64 only so far`);
      if (f.pull) throw new KilnError('UNSUPPORTED', '--pull needs the registry client, which kiln does not have yet');
      for (const t of f.tag ?? []) normalizeImageName(t);
      let output: { type: string; dest?: string } = { type: 'store' };
      if (f.output) {
        const kv = Object.fromEntries(f.output.split(',').map((p) => p.split('=', 2) as [string, string]));
        if (!['store', 'docker', 'oci'].includes(kv.type ?? '')) throw new KilnError('USAGE', `unsupported --output "${f.output}": use type=store, type=docker,dest=FILE or type=oci,dest=FILE`);
        if (kv.type !== 'store' && !kv.dest) throw new KilnError('USAGE', `--output type=${kv.type} needs dest=FILE`);
        output = { type: kv.type!, dest: kv.dest };
      }
      if (!existsSync(context)) throw new KilnError('NOT_FOUND', 'build context does not exist', { path: context });
      const input = readDockerfileInput(f.file, path.resolve(context));
      const buildArgs = parseKeyValues(f.buildArg, '--build-arg', (k) => process.env[k]);
      const labels = Object.fromEntries(parseKeyValues(f.label, '--label'));
      const sde = f.sourceDateEpoch ?? process.env.SOURCE_DATE_EPOCH;
      if (sde !== undefined && !/^\d+$/.test(sde)) throw new KilnError('USAGE', `invalid SOURCE_DATE_EPOCH "${sde}": expected seconds since 1970`);
      const store = await openStoreFromCli(cmd);
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      try {
        const r = await build(
          {
            store,
            contextDir: context,
            dockerfileText: input.text,
            dockerfileName: input.display,
            dockerfilePath: input.path,
            buildArgs,
            target: f.target,
            tags: f.tag,
            labels,
            network: f.network === 'none' ? 'none' : 'host',
            platform: 'linux/amd64',
            snapshotter: f.snapshotter as 'overlay' | 'native' | undefined,
            backend: f.backend as 'oci' | 'chroot' | undefined,
            signal: ac.signal,
            sourceDateEpoch: sde !== undefined ? Number(sde) : undefined,
          },
          f.quiet ? () => undefined : plainPrinter(new Map()),
        );
        if (output.type !== 'store') {
          const img = await store.resolveImage(r.descriptor.digest);
          await saveImagesToFile(store, [{ ...img, name: f.tag?.[0] ? normalizeImageName(f.tag[0]) : undefined }], output.type as 'docker' | 'oci', output.dest!);
        }
        if (f.iidfile) writeFileSync(f.iidfile, r.imageId);
        process.stdout.write(`${r.imageId}\n`);
      } catch (e) {
        if (ac.signal.aborted) {
          process.stderr.write('build interrupted\n');
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
