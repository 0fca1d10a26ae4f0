/** `kiln export IMAGE -o rootfs.tar`: the image's flattened filesystem. */
import type { Command } from 'commander';
import { createWriteStream, promises as fsp } from 'node:fs';
import { exportImage } from '../../archive/export.js';
import { KilnError } from '../../util/errors.js';
import { tempPathFor } from '../../util/fs.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('export')
    .description("write an image's flattened filesystem as a tar archive")
    .argument('<image>', 'image name or ID')
    .option('-o, --output <file>', 'write to this file (default: stdout)')
    .action(async (image: string, flags: { output?: string }, cmd: Command) => {
      if (!flags.output && process.stdout.isTTY) throw new KilnError('USAGE', 'refusing to write an archive to a terminal', {}, { hint: 'use -o FILE or redirect stdout' });
      const store = await openStoreFromCli(cmd);
      const img = await store.resolveImage(image);
      if (!flags.output) return exportImage(store, img, process.stdout);
      const tmp = tempPathFor(flags.output);
      try {
        await exportImage(store, img, createWriteStream(tmp, { flags: 'wx' }));
        await fsp.rename(tmp, flags.output);
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    });
}
