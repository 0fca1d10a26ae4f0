/** `kiln trace IMAGE PATH…`: where each file of an image came from (the build's provenance records). */
import type { Command } from 'commander';
import { trace } from '../../api/index.js';
import { formatTraceText } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('trace')
    .description(
      'where a file of an image came from: the layer and Dockerfile line that wrote it, and through COPY --from chains the stage, step and source path it was copied from, and the package that owned it there',
    )
    .argument('<image>', 'image name or ID in the store (built by kiln with this store), or an image archive')
    .argument('<path...>', 'absolute paths of files in the image')
    .option('--format <format>', 'text or json', 'text')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, paths: string[], flags: { format: string; platform?: string }, cmd: Command) => {
      if (flags.format !== 'text' && flags.format !== 'json')
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
      const p = progress('trace');
      let r;
      try {
        r = await trace(image, paths, { store: await openStoreFromCli(cmd), platform: flags.platform });
      } finally {
        p.done();
      }
      await emit(flags.format === 'json' ? `${JSON.stringify(r, null, 2)}\n` : formatTraceText(r), undefined);
      // A path not in the image is an answer, but not the one asked for: exit 1, as `ls` would.
      if (r.some((x) => x.missing)) process.exitCode = 1;
    });
}
