/** `kiln images`: the tagged images in the store, as `docker images` lists them. */
import type { Command } from 'commander';
import { digestHex } from '../../util/digest.js';
import { parseReference, familiarName, normalizeImageName } from '../../image/reference.js';
import { humanAgo, humanSize, openStoreFromCli, printTable } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('images')
    .description('list images in the store (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE)')
    .argument('[reference]', 'only images matching this name (repository or repository:tag)')
    .option('-q, --quiet', 'only show image IDs')
    .option('--no-trunc', "don't truncate image IDs")
    .option('--format <format>', 'table (default) or json')
    .action(async (reference: string | undefined, flags: { quiet?: boolean; trunc: boolean; format?: string }, cmd: Command) => {
      const store = await openStoreFromCli(cmd);
      let records = await store.listImages();
      if (reference) {
        const want = reference.includes(':') || reference.includes('@') ? normalizeImageName(reference) : parseReference(reference).name();
        records = records.filter((r) => r.name === want || parseReference(r.name).name() === want);
      }
      const rows = [];
      for (const r of records) {
        const img = await store.loadImage(r.descriptor, { name: r.name });
        const ref = parseReference(r.name);
        rows.push({ repository: familiarName(ref.name()), tag: ref.tag ?? '<none>', id: img.id, created: img.config.created, size: await store.imageSize(img), digest: r.descriptor.digest });
      }
      if (flags.quiet) {
        for (const id of new Set(rows.map((r) => (flags.trunc ? digestHex(r.id).slice(0, 12) : r.id)))) process.stdout.write(`${id}\n`);
        return;
      }
      if (flags.format === 'json') {
        for (const r of rows) process.stdout.write(`${JSON.stringify({ Repository: r.repository, Tag: r.tag, ID: r.id, Digest: r.digest, CreatedAt: r.created, Size: r.size })}\n`);
        return;
      }
      printTable([
        ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
        ...rows.map((r) => [r.repository, r.tag, flags.trunc ? digestHex(r.id).slice(0, 12) : r.id, humanAgo(r.created), humanSize(r.size)]),
      ]);
    });
}
