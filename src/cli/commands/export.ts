/** `kiln export IMAGE -o rootfs.tar`: the image's flattened filesystem. */
import type { Command } from 'commander';
import { exportImage } from '../../archive/index.js';
import { KilnError, openOutputFile } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('export')
    .description("write an image's flattened filesystem as a tar archive")
    .argument('<image>', 'image name or ID')
    .option('-o, --output <file>', 'write to this file (default: stdout)')
    .action(async (image: string, flags: { output?: string }, cmd: Command) => {
      if (!flags.output && process.stdout.isTTY)
        throw new KilnError(
          'USAGE',
          'refusing to write an archive to a terminal',
          {},
          { hint: 'use -o FILE or redirect stdout' },
        );
      const store = await openStoreFromCli(cmd);
      const img = await store.resolveImage(image);
      if (!flags.output) return exportImage(store, img, process.stdout);
      const out = await openOutputFile(flags.output);
      try {
        await exportImage(store, img, out.stream);
        await out.commit();
      } catch (e) {
        await out.abort();
        throw e;
      }
    });
}
