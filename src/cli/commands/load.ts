/** `kiln load -i FILE`: images from a docker-archive or OCI layout tar into the store. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { load } from '../../api/index.js';
import { familiarName } from '../../image/index.js';
import { KilnError } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('load')
    .description('load images from a tar archive (docker save / kiln save output)')
    .option('-i, --input <file>', 'read from this file (default: stdin)')
    .option('-q, --quiet', 'print nothing')
    .action(async (flags: { input?: string; quiet?: boolean }, cmd: Command) => {
      if (flags.input && !existsSync(flags.input))
        throw new KilnError('NOT_FOUND', 'no such file', { path: flags.input });
      const store = await openStoreFromCli(cmd);
      const r = await load(
        flags.input ? { store, input: flags.input } : { store, stream: process.stdin, where: 'stdin' },
      );
      if (!flags.quiet)
        for (const i of r.images)
          process.stdout.write(i.name ? `Loaded image: ${familiarName(i.name)}\n` : `Loaded image ID: ${i.id}\n`);
    });
}
