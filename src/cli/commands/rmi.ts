/** `kiln rmi IMAGE…`: remove tags; the data goes with the next `kiln prune`. */
import type { Command } from 'commander';
import { normalizeImageName } from '../../image/index.js';
import { KilnError } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';
import { isIndexDescriptor } from '../../store/index.js';

export function register(program: Command): Command {
  return program
    .command('rmi')
    .description('remove one or more images (by name, or by ID: all its tags with -f)')
    .argument('<images...>', 'image names or IDs')
    .option('-f, --force', 'remove every tag of an image given by ID')
    .action(async (images: string[], flags: { force?: boolean }, cmd: Command) => {
      const store = await openStoreFromCli(cmd);
      let failed = 0;
      for (const ref of images) {
        try {
          // A tag naming a multi-platform image (an index) goes by its name, whatever this machine's platform.
          const tagged = await store.tagged(ref);
          if (tagged && isIndexDescriptor(tagged)) {
            const name = normalizeImageName(ref);
            await store.removeTag(name);
            process.stdout.write(`Untagged: ${name}\n`);
            continue;
          }
          const img = await store.resolveImage(ref);
          const records = await store.listImages();
          const sameImage = records.filter((r) => r.descriptor.digest === img.descriptor.digest).map((r) => r.name);
          let byName: string | undefined;
          try {
            byName = normalizeImageName(ref);
          } catch {
            byName = undefined;
          }
          const targets = byName && sameImage.includes(byName) ? [byName] : sameImage;
          if (targets.length > 1 && !flags.force)
            throw new KilnError(
              'USAGE',
              `image ${ref} has ${targets.length} names (${targets.join(', ')}): remove them by name, or use -f`,
            );
          for (const t of targets) {
            await store.removeTag(t);
            process.stdout.write(`Untagged: ${t}\n`);
          }
        } catch (e) {
          failed++;
          if (images.length === 1) throw e;
          process.stderr.write(`error: ${(e as Error).message}\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
