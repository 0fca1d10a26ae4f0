/** `kiln diff IMAGE_A IMAGE_B`: files and packages added, removed and changed between two images, with sizes. */
import type { Command } from 'commander';
import { type ImageDiff } from '../../analyze/index.js';
import { diff } from '../../api/index.js';
import { formatDiffText } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('diff')
    .description(
      'compare two images: files and packages added, removed and changed, with sizes (e.g. the builder stage against the final image)',
    )
    .argument('<image-a>', 'the first image (name/ID in the store, an archive, or a registry reference)')
    .argument('<image-b>', 'the second image')
    .option('--format <format>', 'text or json', 'text')
    .option('--limit <n>', 'how many files to list in text output (largest first)', '50')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from multi-platform images')
    .action(
      async (
        a: string,
        b: string,
        flags: { format: string; limit: string; output?: string; platform?: string },
        cmd: Command,
      ) => {
        if (flags.format !== 'text' && flags.format !== 'json')
          throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 0) throw new KilnError('USAGE', `invalid --limit "${flags.limit}"`);
        const p = progress('diff');
        let d: ImageDiff;
        try {
          d = await diff(a, b, {
            store: await openStoreFromCli(cmd),
            platform: flags.platform,
            onLayer: (_w, i, n) => p.onLayer(i, n),
          });
        } finally {
          p.done();
        }
        await emit(
          flags.format === 'json' ? `${JSON.stringify(d, null, 2)}\n` : formatDiffText(d, limit),
          flags.output,
        );
      },
    );
}
