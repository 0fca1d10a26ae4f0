/** `kiln inspect IMAGE…`: JSON with docker inspect's field names, plus the manifest. */
import type { Command } from 'commander';
import { inspect } from '../../api/index.js';
import { parsePlatform } from '../../image/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('inspect')
    .description("show an image's config, manifest, digests and size as JSON (docker inspect's field names)")
    .argument('<images...>', 'image names or IDs')
    .option('--platform <os/arch[/variant]>', 'the image of a multi-platform image to show (default: this machine)')
    .action(async (images: string[], f: { platform?: string }, cmd: Command) => {
      const out = await inspect(images, {
        store: await openStoreFromCli(cmd),
        platform: f.platform === undefined ? undefined : parsePlatform(f.platform),
      });
      process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
    });
}
