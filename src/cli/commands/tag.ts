/** `kiln tag SOURCE TARGET`: another name for an image. */
import type { Command } from 'commander';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('tag')
    .description('create a tag TARGET that refers to SOURCE')
    .argument('<source>', 'image name or ID')
    .argument('<target>', 'new name[:tag]')
    .action(async (source: string, target: string, _f: unknown, cmd: Command) => {
      const store = await openStoreFromCli(cmd);
      const img = await store.resolveImage(source);
      await store.setTag(target, img.descriptor);
    });
}
