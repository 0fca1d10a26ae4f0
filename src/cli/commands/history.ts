/** `kiln history IMAGE`: one row per history entry, newest first — layer, created, created by, size (docker history). */
import type { Command } from 'commander';
import { history } from '../../api/index.js';
import { humanAgo, humanSize, printTable } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('history')
    .description("show an image's history: one row per step with its layer's size, command and creation time")
    .argument('<image>', 'image name or ID in the store, an image archive, or a registry reference')
    .option('--no-trunc', "don't truncate commands and layer IDs")
    .option('-H, --human <bool>', 'print sizes and dates in human readable format', 'true')
    .option('--format <format>', "table or json (one object per line, docker's field names)", 'table')
    .option('-q, --quiet', 'only show layer IDs')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(
      async (
        image: string,
        flags: { trunc: boolean; human: string; format: string; quiet?: boolean; platform?: string },
        cmd: Command,
      ) => {
        if (flags.format !== 'table' && flags.format !== 'json')
          throw new KilnError('USAGE', `unknown --format "${flags.format}": use table or json`);
        const rows = await history(image, { store: await openStoreFromCli(cmd), platform: flags.platform });
        const human = flags.human !== 'false';
        const layerId = (d: string | undefined) =>
          d ? (flags.trunc ? d.replace(/^sha256:/, '').slice(0, 12) : d) : '<missing>';
        if (flags.quiet) {
          for (const r of rows) process.stdout.write(`${layerId(r.diffId)}\n`);
          return;
        }
        if (flags.format === 'json') {
          for (const r of rows)
            process.stdout.write(
              `${JSON.stringify({ ID: r.diffId ?? '<missing>', CreatedAt: r.created ?? '', CreatedBy: r.createdBy, Size: r.size, Comment: r.comment ?? '', EmptyLayer: r.emptyLayer })}\n`,
            );
          return;
        }
        const cmdText = (s: string) => {
          const one = s.replace(/\s+/g, ' ');
          return flags.trunc && one.length > 45 ? `${one.slice(0, 44)}…` : one;
        };
        printTable([
          ['LAYER', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
          ...rows.map((r) => [
            layerId(r.diffId),
            human ? humanAgo(r.created) : (r.created ?? ''),
            cmdText(r.createdBy),
            human ? humanSize(r.size) : String(r.size),
            r.comment ?? '',
          ]),
        ]);
      },
    );
}
