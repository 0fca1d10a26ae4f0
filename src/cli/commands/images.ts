/** `kiln images`: the tagged images in the store, as `docker images` lists them. */
import type { Command } from 'commander';
import { digestHex, KilnError } from '../../util/index.js';
import { parseReference, familiarName, normalizeImageName } from '../../image/index.js';
import { humanAgo, humanSize, printTable } from '../../ui/index.js';
import { openStoreFromCli } from '../store.js';

const FIELDS = ['Repository', 'Tag', 'ID', 'Digest', 'CreatedAt', 'CreatedSince', 'Size'];
const HEADERS: Record<string, string> = {
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  ID: 'IMAGE ID',
  Digest: 'DIGEST',
  CreatedAt: 'CREATED AT',
  CreatedSince: 'CREATED',
  Size: 'SIZE',
};

/**
 * The part of docker's Go templates `images --format` is used with: `{{.Field}}`, `{{json .}}`,
 * `\t`, and a `table ` prefix. Anything else is refused, naming what was not understood.
 */
export function compileTemplate(format: string): {
  table: boolean;
  header: string;
  render(fields: Record<string, string>, json: string): string;
} {
  const table = format.startsWith('table ');
  const body = (table ? format.slice(6) : format).replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const parts: ({ text: string } | { field: string } | { json: true })[] = [];
  let rest = body;
  while (rest.length) {
    const open = rest.indexOf('{{');
    if (open < 0) {
      parts.push({ text: rest });
      break;
    }
    if (open > 0) parts.push({ text: rest.slice(0, open) });
    const close = rest.indexOf('}}', open);
    if (close < 0) throw new KilnError('USAGE', `--format ${JSON.stringify(format)}: unclosed "{{"`);
    const action = rest.slice(open + 2, close).trim();
    const m = /^\.(\w+)$/.exec(action);
    if (m) {
      if (!FIELDS.includes(m[1]!))
        throw new KilnError(
          'USAGE',
          `--format ${JSON.stringify(format)}: no field .${m[1]} (fields: ${FIELDS.map((f) => `.${f}`).join(', ')})`,
        );
      parts.push({ field: m[1]! });
    } else if (action === 'json .') parts.push({ json: true });
    else
      throw new KilnError(
        'USAGE',
        `--format ${JSON.stringify(format)}: cannot evaluate {{${action}}} (kiln understands {{.Field}} and {{json .}})`,
      );
    rest = rest.slice(close + 2);
  }
  const header = parts.map((p) => ('text' in p ? p.text : 'field' in p ? (HEADERS[p.field] ?? p.field) : '')).join('');
  return {
    table,
    header,
    render: (fields, json) => parts.map((p) => ('text' in p ? p.text : 'field' in p ? fields[p.field] : json)).join(''),
  };
}

export function register(program: Command): Command {
  return program
    .command('images')
    .description('list images in the store (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE)')
    .argument('[reference]', 'only images matching this name (repository or repository:tag)')
    .option('-q, --quiet', 'only show image IDs')
    .option('--no-trunc', "don't truncate image IDs")
    .option(
      '--format <format>',
      "table (default), json, or a Go template as docker's: '{{.Repository}}:{{.Tag}}' (fields: Repository, Tag, ID, Digest, CreatedAt, CreatedSince, Size; 'table ' prefix adds a header)",
    )
    .action(
      async (
        reference: string | undefined,
        flags: { quiet?: boolean; trunc: boolean; format?: string },
        cmd: Command,
      ) => {
        // A bad format fails before any work, and never falls back to the table.
        const template =
          flags.format !== undefined && flags.format !== 'table' && flags.format !== 'json'
            ? compileTemplate(flags.format)
            : undefined;
        const store = await openStoreFromCli(cmd);
        let records = await store.listImages();
        if (reference) {
          const want =
            reference.includes(':') || reference.includes('@')
              ? normalizeImageName(reference)
              : parseReference(reference).name();
          records = records.filter((r) => r.name === want || parseReference(r.name).name() === want);
        }
        const rows: {
          repository: string;
          tag: string;
          id: string;
          created: string | undefined;
          size: number;
          digest: string;
        }[] = [];
        for (const r of records) {
          const img = await store.loadImage(r.descriptor, { name: r.name });
          const ref = parseReference(r.name);
          rows.push({
            repository: familiarName(ref.name()),
            tag: ref.tag ?? '<none>',
            id: img.id,
            created: img.config.created,
            size: await store.imageSize(img),
            digest: r.descriptor.digest,
          });
        }
        if (flags.quiet) {
          for (const id of new Set(rows.map((r) => (flags.trunc ? digestHex(r.id).slice(0, 12) : r.id))))
            process.stdout.write(`${id}\n`);
          return;
        }
        if (flags.format === 'json') {
          for (const r of rows)
            process.stdout.write(
              `${JSON.stringify({ Repository: r.repository, Tag: r.tag, ID: r.id, Digest: r.digest, CreatedAt: r.created, Size: r.size })}\n`,
            );
          return;
        }
        if (template) {
          const fields = (r: (typeof rows)[number]): Record<string, string> => ({
            Repository: r.repository,
            Tag: r.tag,
            ID: flags.trunc ? digestHex(r.id).slice(0, 12) : r.id,
            Digest: r.digest,
            CreatedAt: r.created ?? '',
            CreatedSince: humanAgo(r.created),
            Size: humanSize(r.size),
          });
          if (template.table) process.stdout.write(`${template.header}\n`);
          for (const r of rows)
            process.stdout.write(
              `${template.render(fields(r), JSON.stringify({ Repository: r.repository, Tag: r.tag, ID: r.id, Digest: r.digest, CreatedAt: r.created, Size: r.size }))}\n`,
            );
          return;
        }
        printTable([
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
          ...rows.map((r) => [
            r.repository,
            r.tag,
            flags.trunc ? digestHex(r.id).slice(0, 12) : r.id,
            humanAgo(r.created),
            humanSize(r.size),
          ]),
        ]);
      },
    );
}
