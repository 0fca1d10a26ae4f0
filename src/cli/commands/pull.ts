/** `kiln pull REF`: an image from a registry into the store, as `docker pull`. */
import type { Command } from 'commander';
import { familiarName } from '../../image/index.js';
import { closeIdleConnections } from '../../registry/index.js';
import { pull } from '../../api/index.js';
import { transferView } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { addRegistryOptions, clientOptionsFrom, platformFrom, type RegistryFlags } from '../registry-options.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  const cmd = program
    .command('pull')
    .description('pull an image from a registry into the store')
    .argument('<reference>', 'image reference: [registry[:port]/]name[:tag|@digest]')
    .option('-q, --quiet', 'print only the image reference')
    .option('--all-platforms', 'pull every image of a multi-platform reference and keep its index under the name');
  addRegistryOptions(cmd, { platform: true });
  return cmd.action(
    async (reference: string, flags: RegistryFlags & { quiet?: boolean; allPlatforms?: boolean }, c: Command) => {
      if (flags.allPlatforms && flags.platform)
        throw new KilnError(
          'USAGE',
          '--all-platforms and --platform cannot be given together',
          {},
          { hint: 'drop one' },
        );
      const store = await openStoreFromCli(c);
      const view = transferView('pull', process.stderr, { quiet: flags.quiet });
      try {
        let fetched = 0;
        const img = await pull(reference, {
          store,
          ...clientOptionsFrom(flags),
          platform: platformFrom(flags),
          allPlatforms: flags.allPlatforms,
          onProgress: (e) => {
            if (e.type === 'blob' && e.state === 'done') fetched++;
            view.onEvent(e);
          },
        });
        view.finish();
        if (!flags.quiet)
          process.stderr.write(
            `Digest: ${img.descriptor.digest}\nStatus: ${fetched ? 'Downloaded newer image for' : 'Image is up to date for'} ${familiarName(img.name ?? reference)}\n`,
          );
        process.stdout.write(`${img.name ?? reference}\n`);
      } finally {
        closeIdleConnections();
      }
    },
  );
}
