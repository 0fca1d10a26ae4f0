/** `kiln inspect IMAGE…`: JSON with docker inspect's field names, plus the manifest. */
import type { Command } from 'commander';
import { inspect } from '../../api/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('inspect')
    .description("show an image's config, manifest, digests and size as JSON (docker inspect's field names)")
    .argument('<images...>', 'image names or IDs')
    .action(async (images: string[], _f: unknown, cmd: Command) => {
      const out = await inspect(images, { store: await openStoreFromCli(cmd) });
      process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
    });
}
